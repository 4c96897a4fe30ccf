"""Skin keeps its colour through edits that are not about colour (glow_demo/skin.py): the
mask, the limit, which edits get it, and the editor's pictures with the shipped weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from glow_demo.align import load_template
from glow_demo.editor import FaceEditor
from glow_demo.images import pil_to_tensor
from glow_demo.skin import (
    LUMA,
    SKIN_TOLERANCE,
    limit_skin_colour,
    limits_skin_colour,
    skin_brightness,
    skin_mask,
)

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "faces"
R = 64


def _at(points: np.ndarray) -> tuple[int, int]:
    """(row, column) at the model's resolution of the mean of some template landmarks."""
    x, y = points.mean(0) * R
    return int(y), int(x)


def test_skin_brightness_reads_the_skin_of_each_face() -> None:
    faces = torch.zeros(2, 3, R, R)
    faces[0] = 0.5  # a grey face: its skin is as bright as it is
    faces[1, :, :10] = 1.0  # white hair only: no skin brightened
    brightness = skin_brightness(faces)
    assert brightness.shape == (2,)
    assert brightness.tolist() == pytest.approx([0.5, 0.0], abs=1e-6)
    assert float(skin_brightness(faces[0])) == pytest.approx(0.5)


def test_the_mask_is_the_skin_not_eyes_mouth_hair_or_background() -> None:
    mask = skin_mask(R)[0]
    marks = load_template().landmarks
    left_cheek = np.stack([marks[2], marks[31], marks[41]])  # jaw, nose side, under the eye
    right_cheek = np.stack([marks[14], marks[35], marks[46]])
    assert mask[_at(left_cheek)] > 0.9 and mask[_at(right_cheek)] > 0.9
    assert mask[_at(marks[27:31])] > 0.9  # the nose bridge
    for part in (marks[36:42], marks[42:48], marks[48:60], marks[17:22]):  # eyes, mouth, brow
        assert mask[_at(part)] < 0.1
    assert mask[:8].max() == 0 and mask[:, :6].max() == 0  # hair and background
    assert 0.1 < float(mask.mean()) < 0.4


def _change(colour: tuple[float, float, float], light: float = 0.0) -> torch.Tensor:
    """A change of one colour over the whole image plus a brightness change."""
    return torch.tensor(colour).view(3, 1, 1).expand(3, R, R) + light


def test_brightness_passes_and_colour_on_the_skin_is_limited_with_its_hue() -> None:
    before = torch.full((3, R, R), 0.5)
    mask = skin_mask(R)[0]
    cheek = _at(np.stack([load_template().landmarks[i] for i in (2, 31, 41)]))
    # a change of brightness alone is kept everywhere, exactly
    lighter = before + _change((0, 0, 0), 0.1)
    assert torch.allclose(limit_skin_colour(before, lighter), lighter, atol=1e-6)
    # a red patch: on the skin cut to SKIN_TOLERANCE long, hue kept; elsewhere untouched
    red = (0.2, -0.1, -0.1)
    luma = sum(c * w for c, w in zip(red, LUMA, strict=True))
    after = before + _change(red, 0.05)
    out = limit_skin_colour(before, after)
    change = out - before
    light = (change * torch.tensor(LUMA).view(3, 1, 1)).sum(0)
    colour = change - light
    assert torch.allclose(light, torch.full((R, R), 0.05 + luma), atol=1e-6)
    assert float(colour[:, cheek[0], cheek[1]].norm()) == pytest.approx(SKIN_TOLERANCE,
                                                                         rel=0.05)
    direction = colour[:, cheek[0], cheek[1]] / colour[:, cheek[0], cheek[1]].norm()
    wanted = torch.tensor(red) - luma
    assert float(direction @ (wanted / wanted.norm())) > 0.999  # still red, less of it
    outside = mask == 0
    assert torch.allclose(out[:, outside], after[:, outside], atol=1e-6)
    # a small colour change is left as it is
    faint = before + _change((0.5 * SKIN_TOLERANCE, 0, -0.5 * SKIN_TOLERANCE))
    assert torch.allclose(limit_skin_colour(before, faint), faint, atol=1e-6)
    # a batch is limited image by image
    both = limit_skin_colour(torch.stack([before, before]), torch.stack([after, lighter]))
    assert torch.allclose(both[0], out, atol=1e-6)
    assert torch.allclose(both[1], lighter, atol=1e-6)


def test_which_edits_are_limited() -> None:
    built_in = {"smile", "age_years", "gray_hair", "makeup", "lipstick"}
    assert limits_skin_colour({"age_years": 1.0}, built_in)
    assert limits_skin_colour({"smile": 1.0, "age_years": 1.0, "gray_hair": 1.5}, built_in)
    assert not limits_skin_colour({"makeup": 1.0}, built_in)  # colour is its point
    assert not limits_skin_colour({"smile": 1.0, "lipstick": 0.5}, built_in)
    assert limits_skin_colour({"smile": 1.0, "lipstick": 0.0}, built_in)  # not moved
    assert not limits_skin_colour({"navy": 1.0, "smile": 1.0}, built_in)  # your own
    assert not limits_skin_colour({}, built_in) and not limits_skin_colour({"smile": 0},
                                                                            built_in)


@pytest.fixture(scope="module")
def editor() -> FaceEditor:
    return FaceEditor.load()


def _skin_colour_change(editor: FaceEditor, face, edit: dict) -> float:
    """The largest colour change on the skin of the model's 64 px picture, 0..1."""
    change = pil_to_tensor(editor.edit(face, edit).model_view) - face.base_decoded
    light = (change * torch.tensor(LUMA).view(3, 1, 1)).sum(0, keepdim=True)
    length = (change - light).norm(dim=0)
    return float(length[skin_mask(R)[0] > 0.99].max())


def test_the_editor_limits_aging_but_not_makeup(editor: FaceEditor) -> None:
    face = editor.prepare(ASSETS / "astronaut.png")
    # 8-bit rounding of the model view adds up to about 1.5 levels of colour
    assert _skin_colour_change(editor, face, {"age_years": 1.0}) < SKIN_TOLERANCE + 2 / 255
    assert _skin_colour_change(editor, face, {"makeup": 1.5}) > 1.5 * SKIN_TOLERANCE
    # still an edit: brightness (wrinkles, shading) changes well beyond the colour limit
    aged = pil_to_tensor(editor.edit(face, {"age_years": 1.0}).model_view) - face.base_decoded
    assert float(aged.abs().max()) > 10 * SKIN_TOLERANCE
    # one batch gives the same pictures as one edit at a time (to the batched decode's
    # rounding), the limit included
    batch = editor.edit_batch(face, [{"age_years": 1.0}, {"makeup": 1.5}])
    for result, edit in zip(batch, [{"age_years": 1.0}, {"makeup": 1.5}], strict=True):
        one = np.asarray(editor.edit(face, edit).photo, np.int16)
        assert np.abs(np.asarray(result.photo, np.int16) - one).max() <= 2
    unlimited = np.asarray(editor.edit(face, {"age_years": 1.0}, limit_skin=False).photo)
    assert np.abs(np.asarray(batch[0].photo, np.int16) - unlimited).max() > 4
