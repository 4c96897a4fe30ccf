"""The measurement scripts run as a user runs them, on the shipped weights."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_measure_stability_shows_the_editor_base_rescuing_an_unusual_face() -> None:
    proc = subprocess.run(
        [sys.executable, "scripts/measure_stability.py", "assets/faces"], cwd=REPO,
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "2 faces (0 photos without a usable face)" in out, out
    assert re.search(r"edit base smoothing \(px at 64 px\): 0: 1 \(50%\), 0\.75: 1 \(50%\)", out)
    match = re.search(r"from the exact encoding (\d+)/48 .*from the editor's base (\d+)/48", out)
    assert match, out
    exact, base = map(int, match.groups())
    # Grace Hopper explodes from her exact encoding; from the smoothed base nearly all
    # slider ends decode to faces (measured with the edit ranges 33 -> 48 of 48; with plain
    # linear edits, `--linear`, 26 -> 45)
    assert exact <= 36 and base >= 43, (exact, base)
