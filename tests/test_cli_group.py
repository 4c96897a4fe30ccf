"""The command line on group photos (--faces) and custom sliders (learn-direction,
--direction), run as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
FACES = REPO / "assets" / "faces"
GROUP = FACES / "group" / "four_portraits.jpg"


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "glow_demo", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(np.int16)


def test_edit_all_faces_of_a_group_photo(tmp_path: Path) -> None:
    group = tmp_path / "team.png"  # PNG in, PNG out: no JPEG noise in the comparison
    Image.open(GROUP).save(group)
    largest = run("edit", str(group), "-o", str(tmp_path / "one"), "--smile", "1").stdout
    every = run("edit", str(group), "-o", str(tmp_path / "all"), "--smile", "1",
                "--faces", "all").stdout
    assert "(4 faces)" in every and "faces)" not in largest, (largest, every)
    original = rgb(group)
    one, all_ = rgb(tmp_path / "one" / group.name), rgb(tmp_path / "all" / group.name)
    assert one.shape == all_.shape == original.shape
    # the largest face is on the right: alone, the left half stays as it was
    left = slice(0, 500)
    assert np.abs(one[:, left] - original[:, left]).mean() < 0.5
    assert np.abs(all_[:, left] - original[:, left]).mean() > 1.0
    run("edit", str(GROUP), "-o", str(tmp_path / "crops"), "--crop", "--faces", "1,3",
        "--smile", "1")
    assert sorted(p.name for p in (tmp_path / "crops").iterdir()) == \
        [f"four_portraits_face{i}.jpg" for i in (1, 2, 3, 4)]  # numbered as --faces
    bad = run("edit", str(GROUP), "-o", str(tmp_path / "bad"), "--faces", "7", ok=False)
    assert bad.returncode == 1 and "no face number 7" in bad.stderr
    zero = run("edit", str(GROUP), "-o", str(tmp_path / "bad"), "--faces", "0", ok=False)
    assert zero.returncode == 1 and "face 1 is the leftmost" in zero.stderr


def test_learn_a_direction_then_edit_with_it(tmp_path: Path) -> None:
    sides = {}
    for name in ("grace_hopper.jpg", "astronaut.png"):
        with Image.open(FACES / name) as im:
            image = im.convert("RGB")
        folder = tmp_path / name.split(".")[0]
        folder.mkdir()
        image.save(folder / "a.png")
        ImageOps.mirror(image).save(folder / "b.png")
        image.resize((image.width * 3 // 4, image.height * 3 // 4)).save(folder / "c.png")
        sides[name] = folder
    file = tmp_path / "mine.safetensors"
    out = run("learn-direction", "navy", "--with", str(sides["grace_hopper.jpg"]),
              "--without", str(sides["astronaut.png"]), "-o", str(file)).stdout
    assert "Learned from 3 with and 3 without" in out and file.is_file(), out
    run("edit", str(FACES / "astronaut.png"), "-o", str(tmp_path / "edited"),
        "--direction", str(file), "navy=0.5")
    edited = rgb(tmp_path / "edited" / "astronaut.png")
    assert np.abs(edited - rgb(FACES / "astronaut.png")).mean() > 0.5
    # a custom slider has no edit range: pushed far, it is scaled back, and says so
    # (measured: navy=8 to 12 %)
    far = run("edit", str(FACES / "astronaut.png"), "-o", str(tmp_path / "far"),
              "--direction", str(file), "navy=8").stdout
    assert re.search(r"astronaut\.png -> .*scaled back to \d+% of its strength", far), far
    missing = run("edit", str(FACES / "astronaut.png"), "-o", str(tmp_path / "x"),
                  "--direction", str(file), "hat=1", ok=False)
    assert missing.returncode != 0 and "no direction 'hat'" in missing.stderr
    few = run("learn-direction", "cap", "--with", str(sides["grace_hopper.jpg"] / "a.png"),
              "--without", str(sides["astronaut.png"]), "-o", str(tmp_path / "f.safetensors"),
              ok=False)
    assert few.returncode != 0 and "Give 3 to 64 faces with" in few.stderr
    assert "Traceback" not in few.stderr + missing.stderr


def test_learn_a_direction_from_example_faces(tmp_path: Path) -> None:
    listed = run("example-faces", "-o", str(tmp_path / "examples")).stdout
    files = sorted(p.name for p in (tmp_path / "examples").iterdir())
    assert files[0] == "example01.png" and len(files) >= 26, files
    assert " 1: model sample, seed 0, temperature 0.6" in listed
    assert "public-domain portrait grace_hopper.jpg" in listed
    file = tmp_path / "picked.safetensors"
    out = run("learn-direction", "picked", "--with-examples", "1,2,3", "--without",
              str(FACES / "astronaut.png"), "--without-examples", "4,5", "-o",
              str(file)).stdout
    assert "Learned from 3 with and 3 without" in out and file.is_file(), out
    bad = run("learn-direction", "bad", "--with-examples", "0,1,2", "--without-examples",
              "4,5,6", "-o", str(tmp_path / "bad.safetensors"), ok=False)
    assert bad.returncode != 0 and "No example face 0" in bad.stderr
    assert "Traceback" not in bad.stderr
