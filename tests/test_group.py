"""Every face in a group photo, on a group composed from the public-domain example faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from glow_demo.align import AlignedFace, paste_back, paste_back_many
from glow_demo.editor import FaceEditor
from glow_demo.group import (
    edit_group,
    edit_photo,
    prepare_group,
    select_faces,
    strengths_for,
)

FACES = Path(__file__).resolve().parents[1] / "assets" / "faces"
ASTRONAUT = FACES / "astronaut.png"
HOPPER = FACES / "grace_hopper.jpg"


def compose_group() -> Image.Image:
    """Four people side by side, close enough that their crops overlap: the two
    public-domain portraits, each also mirrored and resized (1200 x 520)."""
    a = Image.open(ASTRONAUT).convert("RGB")
    h = Image.open(HOPPER).convert("RGB")
    canvas = Image.new("RGB", (1200, 520), (200, 200, 200))
    canvas.paste(a.crop((100, 0, 400, 400)), (0, 60))
    canvas.paste(ImageOps.mirror(h).crop((100, 50, 420, 470)).resize((260, 340)), (290, 120))
    canvas.paste(ImageOps.mirror(a).crop((112, 0, 412, 400)).resize((270, 360)), (540, 100))
    canvas.paste(h.crop((100, 50, 420, 470)), (820, 60))
    return canvas


@pytest.fixture(scope="module")
def editor() -> FaceEditor:
    return FaceEditor.load()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return compose_group()


@pytest.fixture(scope="module")
def group(editor: FaceEditor, photo: Image.Image):
    return prepare_group(editor, photo)


def mouth_change(before: np.ndarray, after: np.ndarray, face) -> float:
    mouth = face.aligned.landmarks[48:68]
    x0, y0 = np.floor(mouth.min(0)).astype(int)
    x1, y1 = np.ceil(mouth.max(0)).astype(int)
    return float(np.abs(before[y0:y1, x0:x1].astype(np.float32)
                        - after[y0:y1, x0:x1].astype(np.float32)).mean())


def test_every_face_is_found_left_to_right(group) -> None:
    assert len(group) == 4
    lefts = [f.aligned.box[0] for f in group.faces]
    assert lefts == sorted(lefts)
    assert group.largest == 3  # Grace Hopper at full size, on the right
    # the two Hopper copies are unusual for the model and get a smoothed base, as alone
    assert [f.smoothing > 0 for f in group.faces] == [False, True, False, True]
    assert [t.size for t in group.thumbnails(80)] == [(80, 80)] * 4


def test_all_faces_smile_in_one_batched_decode(editor, group, photo) -> None:
    calls = []
    decode = editor.model.decode_with_peak

    def counting(latents):
        calls.append(len(latents))
        return decode(latents)

    editor.model.decode_with_peak = counting
    try:
        result = edit_group(editor, group, strengths_for(group, "all", {"smile": 1.0}))
    finally:
        del editor.model.decode_with_peak
    assert calls == [4]  # one batch; no face needed scaling back
    assert result.applied == [1.0] * 4 and result.message == ""
    before = np.asarray(photo)
    after = np.asarray(result.photo)
    assert after.shape == before.shape
    changes = [mouth_change(before, after, f) for f in group.faces]
    assert all(c > 2.0 for c in changes), changes
    assert len(result.crops) == len(result.model_views) == 4


def test_one_chosen_face_is_edited_and_its_neighbours_are_not(editor, group, photo) -> None:
    result = edit_group(editor, group, strengths_for(group, [3], {"smile": 1.5}))  # face 3
    before, after = np.asarray(photo), np.asarray(result.photo)
    changes = [mouth_change(before, after, f) for f in group.faces]
    assert changes[2] > 2.0, changes
    assert max(changes[0], changes[1], changes[3]) < 0.05 * changes[2], changes
    # a face of its own: different strengths per face in one call
    own = edit_group(editor, group, [{"smile": 1.0}, {}, {"smile": -1.0}, {"glasses": 0.5}])
    assert own.applied[1] == 1.0 and np.array_equal(np.asarray(own.crops[1]),
                                                    group.faces[1].aligned.crop)


def test_zero_strengths_give_the_group_photo_back(editor, group, photo) -> None:
    result = edit_group(editor, group, strengths_for(group, "all", {"smile": 0.0}))
    assert np.array_equal(np.asarray(result.photo), np.asarray(photo))


def test_a_one_face_photo_is_edited_exactly_as_before(editor) -> None:
    face = editor.prepare(ASTRONAUT)
    single = np.asarray(editor.edit(face, {"smile": 1.0, "age_years": 0.5}).photo)
    group = prepare_group(editor, ASTRONAUT)
    assert len(group) == 1 and torch.equal(group.faces[0].base, face.base)
    for spec in ("all", [1], "largest"):
        result = edit_photo(editor, ASTRONAUT, {"smile": 1.0, "age_years": 0.5}, spec)
        assert np.array_equal(np.asarray(result.photo), single), spec


def test_largest_is_the_single_face_path(editor, photo, group) -> None:
    result = edit_photo(editor, photo, {"smile": 1.0}, "largest")
    alone = editor.edit(editor.prepare(photo), {"smile": 1.0})
    assert np.array_equal(np.asarray(result.photo), np.asarray(alone.photo))
    assert np.allclose(editor.prepare(photo).aligned.matrix,
                       group.faces[group.largest].aligned.matrix)


def test_face_selection_is_checked(group) -> None:
    """Face numbers count from 1 (face 1 is the leftmost); the positions returned index
    ``group.faces`` from 0."""
    assert select_faces("all", group) == [0, 1, 2, 3]
    assert select_faces(None, group) == [3]
    assert select_faces([4, 2, 2], group) == [1, 3]
    for bad, message in (([5], "no face number 5: the photo has 4 face.s., numbered 1 to 4"),
                         ([0], "no face number 0: .*face 1 is the leftmost"), ([], "empty"),
                         ("some", "faces must"), ([1.5], "whole numbers"),
                         ([True], "whole numbers")):
        with pytest.raises(ValueError, match=message):
            select_faces(bad, group)


def _face_at(cx: float, cy: float, size: int, photo_size: tuple[int, int]) -> AlignedFace:
    """An aligned face whose (size x size) crop covers 2 * size photo pixels at (cx, cy)."""
    s = 0.5  # crop pixels per photo pixel
    matrix = np.array([[s, 0, size / 2 - 0.5 - s * cx],
                       [0, s, size / 2 - 0.5 - s * cy]])
    return AlignedFace(crop=np.zeros((size, size, 3), np.uint8), matrix=matrix,
                       landmarks=np.zeros((68, 2)), n_faces=2, box=(0, 0, 1, 1),
                       photo_size=photo_size)


def test_overlapping_faces_blend_without_a_seam() -> None:
    """Two crops overlapping by half, one brightened by 40 levels and one darkened: each
    face's centre gets its own change, and the change never jumps between neighbouring
    pixels: it cross-fades by at most 5 levels a pixel (measured 4; a seam would jump
    80, a single face's own feathered edge ramps by up to 2)."""
    photo = np.full((300, 500, 3), 128, np.uint8)
    a, b = _face_at(180, 150, 100, (500, 300)), _face_at(320, 150, 100, (500, 300))
    up, down = np.full((100, 100, 3), 40.0, np.float32), np.full((100, 100, 3), -40.0,
                                                                  np.float32)
    out = paste_back_many(photo, [a, b], [up, down]).astype(np.float32)
    assert out[150, 180, 0] > 128 + 38 and out[150, 320, 0] < 128 - 38
    assert np.abs(np.diff(out[..., 0], axis=1)).max() <= 5
    assert np.abs(np.diff(out[..., 0], axis=0)).max() <= 5
    # one edited face next to one left alone: the one left alone keeps its centre
    spill = paste_back_many(photo, [a, b], [up, None]).astype(np.float32)
    assert abs(spill[150, 320, 0] - 128) <= 1 and spill[150, 180, 0] > 128 + 38
    # one face: exactly paste_back
    assert np.array_equal(paste_back_many(photo, [a], [up]), paste_back(photo, a, up))
    assert np.array_equal(paste_back_many(photo, [a, b], [None, None]), photo)
