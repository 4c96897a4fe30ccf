"""A slider of your own from a few examples: the estimate, the files, and real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from safetensors.torch import save_file

from glow_demo.custom_directions import (
    CustomDirection,
    CustomDirectionError,
    describe_reliability,
    direction_from_latents,
    learn_direction,
    load_directions,
    load_for,
    reliability_with,
    save_directions,
    with_custom,
)
from glow_demo.editor import FaceEditor

FACES = Path(__file__).resolve().parents[1] / "assets" / "faces"
ASTRONAUT = FACES / "astronaut.png"
HOPPER = FACES / "grace_hopper.jpg"


def variants(path: Path) -> list[Image.Image]:
    """Three photos of one public-domain portrait: as it is, mirrored, and smaller."""
    image = Image.open(path).convert("RGB")
    return [image, ImageOps.mirror(image), image.resize((image.width * 3 // 4,
                                                        image.height * 3 // 4))]


@pytest.fixture(scope="module")
def editor() -> FaceEditor:
    return FaceEditor.load()


@pytest.fixture(scope="module")
def learned(editor: FaceEditor) -> CustomDirection:
    """"Navy": Grace Hopper (cap, glasses, uniform) three times against the astronaut."""
    return learn_direction(editor, "navy", variants(HOPPER), variants(ASTRONAUT),
                           label="Navy look")


@pytest.mark.parametrize("n", [3, 6, 20])
def test_reliability_estimates_the_cosine_with_the_true_direction(n: int) -> None:
    """Synthetic latents: a true difference v plus each example's own look (unit noise
    per coordinate). The estimate tracks the actual cosine of the learned direction with
    v, which grows with the number of examples."""
    gen = torch.Generator().manual_seed(n)
    dim = 12288
    v = torch.randn(dim, generator=gen)
    v *= 90 / v.norm()  # as long as the people-noise of 3 + 3 examples
    with_ = v + torch.randn(n, dim, generator=gen)
    without = torch.randn(n, dim, generator=gen)
    d, reliability = direction_from_latents(with_, without)
    cosine = float(d @ v / (d.norm() * v.norm()))
    assert abs(reliability - cosine) < 0.05, (reliability, cosine)
    expected = (1 + (2 * dim / n) / 90**2) ** -0.5
    assert abs(cosine - expected) < 0.05, (cosine, expected)


def test_reliability_in_words() -> None:
    assert "reliable" in describe_reliability(0.95, 10, 10)
    rough = describe_reliability(0.5, 3, 3)
    assert "rough" in rough and "3 with and 3 without" in rough and "50%" in rough
    assert "With about" in rough  # and how many examples would help
    assert "mostly the particular people" in describe_reliability(0.1, 3, 3)
    assert reliability_with(0.5, 3, 3, 3) == pytest.approx(0.5)
    assert 0.5 < reliability_with(0.5, 3, 3, 12) < 1


def test_too_few_examples_or_a_taken_name_are_refused(editor: FaceEditor) -> None:
    with pytest.raises(CustomDirectionError, match="Give 3 to 64 faces with"):
        learn_direction(editor, "cap", [HOPPER, HOPPER], [ASTRONAUT] * 3)
    with pytest.raises(CustomDirectionError, match="already a slider"):
        learn_direction(editor, "smile", [HOPPER] * 3, [ASTRONAUT] * 3)
    with pytest.raises(CustomDirectionError, match="letters, digits"):
        learn_direction(editor, "3d", [HOPPER] * 3, [ASTRONAUT] * 3)


def test_a_photo_without_a_face_is_named(editor: FaceEditor) -> None:
    wall = Image.new("RGB", (200, 200), (90, 120, 200))
    with pytest.raises(CustomDirectionError, match="Photo 3 without the attribute: No face"):
        learn_direction(editor, "cap", [HOPPER] * 3, [ASTRONAUT, ASTRONAUT, wall])


def test_a_learned_slider_edits_like_a_shipped_one(editor: FaceEditor, learned) -> None:
    hopper = [editor.prepare(p).base for p in variants(HOPPER)]
    astronaut = [editor.prepare(p).base for p in variants(ASTRONAUT)]
    expected = torch.stack(hopper).mean(0) - torch.stack(astronaut).mean(0)
    assert torch.allclose(learned.vector, expected, atol=1e-5)
    assert learned.label == "Navy look" and (learned.n_with, learned.n_without) == (3, 3)
    assert 0.0 <= learned.reliability <= 1.0
    # three photos of one person against three of another: examples that differ little
    # within a side, so the estimate calls the difference mostly signal (measured 0.81);
    # 3 + 3 different CelebA people give 0.0-0.13 (the README's table)
    assert learned.reliability > 0.7
    directions = with_custom(editor.directions, [learned])
    assert [a.label for a in directions.attributes if a.name == "navy"] == ["Navy look"]
    face = editor.prepare(ASTRONAUT)
    zero = editor.edit(face, {"navy": 0.0}, directions=directions)
    assert np.array_equal(np.asarray(zero.photo), face.photo)
    result = editor.edit(face, {"navy": 0.5}, directions=directions)
    assert 0 < result.applied <= 1.0
    assert np.abs(np.asarray(result.crop, np.float32)
                  - face.aligned.crop.astype(np.float32)).mean() > 2
    with pytest.raises(CustomDirectionError, match="already a slider"):
        with_custom(directions, [learned])


def test_save_and_load_round_trip(editor: FaceEditor, learned, tmp_path: Path) -> None:
    path = save_directions(tmp_path / "mine.safetensors", [learned])
    assert path.stat().st_size < 60_000  # one float32 vector of 12,288 and a header
    (back,) = load_for(editor, path)
    assert back.name == "navy" and back.label == "Navy look"
    assert torch.equal(back.vector, learned.vector)
    assert back.reliability == pytest.approx(learned.reliability, abs=1e-4)
    with pytest.raises(CustomDirectionError, match="another model"):
        load_directions(path, model_digest="0" * 16)
    with pytest.raises(CustomDirectionError, match="does not fit"):
        load_directions(path, latent_dim=100)


def test_files_that_are_not_ours_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    plain = tmp_path / "plain.safetensors"
    save_file({"hat": torch.zeros(4)}, str(plain))  # a safetensors file, but not ours
    pickled = tmp_path / "pickled.safetensors"
    torch.save({"hat": torch.zeros(4)}, pickled)  # a pickle is never opened as one
    for path, message in ((garbage, "not a readable"), (plain, "not a glow-demo"),
                          (pickled, "not a readable"), (tmp_path / "none", "cannot read")):
        with pytest.raises(CustomDirectionError, match=message):
            load_directions(path)
