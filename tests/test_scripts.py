"""The measurement scripts run as a user runs them, on the shipped weights."""

from __future__ import annotations

import json
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


def test_record_training_appends_a_run_and_asks_for_the_wall_time_it_cannot_tell(
        tmp_path: Path) -> None:
    """A run's images are added to the record's cumulative count and its curve shifted by
    the images seen before; a log with one validation has no pace, so its wall time must
    be given (``--wall-minutes``) instead of being recorded as 0."""
    record = tmp_path / "training.json"
    record.write_text((REPO / "weights" / "training.json").read_text())
    before = json.loads(record.read_text())
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "model" / "glow.json").write_text((REPO / "weights" / "glow.json").read_text())
    (run / "log.jsonl").write_text(json.dumps(
        {"step": 517, "images_seen": 16544, "val_bpd": 1.1405, "time": 1796049865.5}) + "\n")
    command = [sys.executable, "scripts/record_training.py", str(run), "--record", str(record),
               "--command", "train ...", "--hardware", "2 CPU cores", "--data", "faces64"]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "--wall-minutes" in proc.stderr, proc.stderr
    assert json.loads(record.read_text()) == before  # nothing written
    proc = subprocess.run([*command, "--wall-minutes", "110"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    after = json.loads(record.read_text())
    assert after["images_seen"] == before["images_seen"] + 16544
    assert after["wall_minutes"] == round(before["wall_minutes"] + 110, 1)
    assert after["runs"][-1]["wall_minutes"] == 110 and after["validation_bpd"] == 1.1405
    assert after["validation_curve"][str(before["images_seen"] + 16544)] == 1.1405
