"""The command line, run as a user runs it (a subprocess) on the shipped weights."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glow_demo.data import DEFAULT_CELEBA

REPO = Path(__file__).resolve().parents[1]
FACES = REPO / "assets" / "faces"


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "glow_demo", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_sample_writes_a_seeded_grid(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    run("sample", "-n", "4", "--temperature", "0.7", "--seed", "3", "-o", str(a))
    run("sample", "-n", "4", "--temperature", "0.7", "--seed", "3", "-o", str(b))
    with Image.open(a) as im:
        assert im.size == (2 * 64 + 6, 2 * 64 + 6)
        assert np.array_equal(np.asarray(im), np.asarray(Image.open(b)))


@pytest.mark.needs_data(DEFAULT_CELEBA)
def test_bpd_prints_the_mean_and_the_bit_depth() -> None:
    files = sorted((DEFAULT_CELEBA / "images").glob("0099*.jpg"))[:5]
    out = run("bpd", *map(str, files)).stdout
    match = re.search(r"5 images, mean (\d+\.\d+) bits/dim \(5-bit\)", out)
    assert match, out
    assert 0.5 < float(match.group(1)) < 3.0


def test_align_edit_and_crop_keep_input_names(tmp_path: Path) -> None:
    photos = [str(FACES / "astronaut.png"), str(FACES / "grace_hopper.jpg")]
    run("align", *photos, "-o", str(tmp_path / "aligned"), "--size", "64")
    assert sorted(p.name for p in (tmp_path / "aligned").iterdir()) == \
        ["astronaut.png", "grace_hopper.png"]

    run("edit", *photos, "-o", str(tmp_path / "edit"), "--smile", "1.0", "--age", "-0.5")
    out = sorted(p.name for p in (tmp_path / "edit").iterdir())
    assert out == ["astronaut.png", "grace_hopper.jpg"]
    with Image.open(tmp_path / "edit" / "astronaut.png") as im, \
            Image.open(FACES / "astronaut.png") as original:
        assert im.size == original.size
        assert not np.array_equal(np.asarray(im), np.asarray(original.convert("RGB")))

    run("edit", photos[0], "-o", str(tmp_path / "crop"), "--crop", "--smile", "1")
    with Image.open(tmp_path / "crop" / "astronaut.png") as im:
        assert im.width == im.height and im.width >= 64


def test_a_slider_pushed_far_past_its_end_stops_at_its_range(tmp_path: Path) -> None:
    """The built-in directions stop softly at the edge of what held-out faces show, so
    even 4x a slider's end decodes to a face with nothing to scale back (a custom slider,
    which has no range, is scaled back and says so: tests/test_cli_group.py)."""
    out = run("edit", str(FACES / "astronaut.png"), "-o", str(tmp_path), "--glasses", "6").stdout
    assert "astronaut.png -> " in out and "scaled back" not in out, out
    with Image.open(tmp_path / "astronaut.png") as im, \
            Image.open(FACES / "astronaut.png") as original:
        assert not np.array_equal(np.asarray(im), np.asarray(original.convert("RGB")))


def test_edit_reports_bad_photos_and_carries_on(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 300), (120, 160, 200)).save(blank)
    proc = run("edit", str(text), str(blank), str(FACES / "astronaut.png"),
               "-o", str(tmp_path / "out"), "--smile", "1", ok=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "notes.png" in proc.stderr and "blank.png" in proc.stderr
    assert "No face found" in proc.stderr
    assert (tmp_path / "out" / "astronaut.png").is_file()


def test_mix_writes_a_gif(tmp_path: Path) -> None:
    gif = tmp_path / "morph.gif"
    run("mix", str(FACES / "astronaut.png"), str(FACES / "grace_hopper.jpg"),
        "--steps", "4", "--size", "96", "-o", str(gif))
    with Image.open(gif) as im:
        assert im.size == (96, 96) and im.n_frames == 6


def test_bench_prints_latency_and_throughput() -> None:
    out = run("bench", "--repeats", "3", "--train-steps", "1", "--no-compile").stdout
    for path in ("modules", "folded"):  # the compiled decoder: test_model.py
        assert re.search(rf"encode \(batch 1, {path}\): +p50 +\d+\.\d ms +p95 +\d+\.\d ms",
                         out), out
        assert re.search(rf"decode \(batch 1, {path}\): +p50 +\d+\.\d ms", out), out
    for dtype in ("float32", "bf16 couplings"):
        assert re.search(rf"training \(batch 32, {dtype}\): \d+\.\d images/s", out), out


def test_corrupt_weights_give_one_clear_line(tmp_path: Path) -> None:
    for f in (REPO / "weights").iterdir():
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "glow.safetensors").write_bytes(b"garbage")
    proc = run("sample", "--weights", str(tmp_path), "-o", str(tmp_path / "x.png"), ok=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: weights file") and "glow.safetensors" in proc.stderr
    assert "Traceback" not in proc.stderr
