"""The edit meter's plumbing on real photos, with the shipped model (no meter training:
that takes minutes, ``python -m glow_demo meter --train``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from glow_demo.editor import FaceEditor
from glow_demo.meter import (
    METER_ATTRIBUTES,
    RED_PATCH,
    SAME_PERSON,
    EditRecord,
    Identity,
    Meter,
    cheek_redness,
    edit_strengths,
    face_mask,
    format_table,
    read_back,
    skin_lighter,
    small_cnn,
    summarise,
)
from glow_demo.utkface import (
    DEFAULT_UTKFACE,
    chip_coverage,
    chip_transform,
    read_utkface,
    warp_chips,
)

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "faces"
ASTRONAUT, HOPPER = ASSETS / "astronaut.png", ASSETS / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def editor() -> FaceEditor:
    return FaceEditor.load()


@pytest.fixture(scope="module")
def astronaut(editor: FaceEditor):
    return editor.prepare(ASTRONAUT)


def test_read_back_of_the_unedited_photo_is_the_model_input(astronaut) -> None:
    crop = read_back(astronaut.photo, astronaut.aligned)
    expected = torch.from_numpy(np.asarray(astronaut.model_input).copy()).permute(2, 0, 1)
    assert crop.shape == (3, 64, 64) and crop.dtype == torch.uint8
    assert torch.equal(crop, expected)


def test_batched_edits_are_the_editor_own_edits(editor: FaceEditor, astronaut) -> None:
    edits = [{"smile": 1.0}, {"glasses": -0.5}, {"smile": 0.0}]
    batched = editor.edit_batch(astronaut, edits)
    for strengths, result in zip(edits, batched, strict=True):
        single = editor.edit(astronaut, strengths)
        diff = np.abs(np.asarray(result.photo, np.int16) - np.asarray(single.photo, np.int16))
        assert diff.max() <= 1, strengths  # a batched decode may differ by float rounding
        assert result.applied == single.applied
    assert np.array_equal(np.asarray(batched[2].photo), astronaut.photo)


def test_identity_tells_the_same_person_from_another(editor: FaceEditor, astronaut) -> None:
    identity = Identity()
    ref = identity.descriptor(astronaut.photo, astronaut.aligned.box)
    assert ref.shape == (128,)
    edited = np.asarray(editor.edit(astronaut, {"smile": 0.5}).photo)
    assert np.linalg.norm(identity.descriptor(edited, astronaut.aligned.box) - ref) < SAME_PERSON
    hopper = editor.prepare(HOPPER)
    other = identity.descriptor(hopper.photo, hopper.aligned.box)
    assert np.linalg.norm(other - ref) > SAME_PERSON


def test_face_mask_covers_the_landmarks_not_the_corners(astronaut) -> None:
    mask = face_mask(astronaut.photo.shape, astronaut.aligned.landmarks)
    xs, ys = astronaut.aligned.landmarks.round().astype(int).T
    assert mask[ys, xs].mean() > 0.95
    assert not mask[0, 0] and not mask[-1, -1]
    assert 0.0 < mask.mean() < 0.8


def test_meter_round_trips_through_safetensors(tmp_path: Path) -> None:
    torch.manual_seed(0)
    meter = Meter(small_cnn(len(METER_ATTRIBUTES)).eval(), small_cnn(1).eval(), (10, 12, 50, 60),
                  {"age_box": [10, 12, 50, 60]})
    meter.save(tmp_path)
    assert not list(tmp_path.glob("*.pt")) and (tmp_path / "meter.safetensors").is_file()
    loaded = Meter.load(tmp_path)
    faces = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    for name in METER_ATTRIBUTES:
        assert np.allclose(meter.attribute_probs(faces)[name], loaded.attribute_probs(faces)[name])
    assert np.allclose(meter.ages(faces), loaded.ages(faces))


@pytest.mark.needs_data(DEFAULT_UTKFACE)
def test_one_transform_puts_utkface_chips_where_dlib_does() -> None:
    faces = read_utkface()
    matrix = chip_transform(faces, n=6)
    coverage = chip_coverage(matrix)
    assert 0.3 < coverage.mean() < 0.6  # the chip covers the middle of the model's input
    assert coverage[0].max() == 0.0 and coverage[40, 32] == 1.0
    chips = warp_chips(faces[:2], matrix)
    assert chips.shape == (2, 3, 64, 64) and chips.dtype == torch.uint8


def _record(attribute: str, strength: float, had: float, has: float, distance: float
            ) -> EditRecord:
    return EditRecord("x.jpg", attribute, strength, had, has, 30.0, 31.0, distance, 1.0, 5.0,
                      1.0)


def test_summary_counts_gains_among_faces_without_the_attribute() -> None:
    records = [_record("smile", 1.0, 0.1, 0.9, 0.3), _record("smile", 1.0, 0.2, 0.4, 0.7),
               _record("smile", 1.0, 0.8, 0.9, 0.3),  # smiled already: not counted
               _record("smile", -1.0, 0.8, 0.1, 0.3), _record("smile", -1.0, 0.1, 0.1, 0.3)]
    rows = {r["strength"]: r for r in summarise(records)}
    assert rows[1.0]["flip"] == 0.5 and rows[1.0]["n_flip"] == 2
    assert rows[1.0]["same"] == pytest.approx(2 / 3)
    assert rows[-1.0]["flip"] == 1.0 and rows[-1.0]["n_flip"] == 1
    assert rows[1.0]["d_age"] == pytest.approx(1.0)
    age = summarise([_record("age_years", 1.0, math.nan, math.nan, 0.2)])[0]
    assert "flip" not in age and age["d_age"] == pytest.approx(1.0)


def test_a_combined_edit_within_the_sliders_stops_each_part_at_its_slider_end(
        editor: FaceEditor) -> None:
    """``meter --within-sliders``: smile + age + gray hair at 1.5 is what the app's sliders
    can make, age at its end (+1.0 = +30 years), the others at 1.5; without it, every
    part at 1.5 (age +45 years, past its slider)."""
    ranges = {a.name: (a.low, a.high) for a in editor.attributes}
    assert ranges["age_years"] == (-1.0, 1.0) and ranges["smile"] == (-1.5, 1.5)
    name = "smile+age_years+gray_hair"
    assert edit_strengths(name, 1.5, ranges) == {"smile": 1.5, "age_years": 1.0,
                                                 "gray_hair": 1.5}
    assert edit_strengths(name, -1.5, ranges)["age_years"] == -1.0
    assert edit_strengths(name, 0.5, ranges) == dict.fromkeys(name.split("+"), 0.5)
    assert edit_strengths(name, 1.5) == dict.fromkeys(name.split("+"), 1.5)


def test_summary_reports_how_much_lighter_faces_became() -> None:
    records = [_record("gray_hair", 1.0, 0.1, 0.9, 0.3) for _ in range(4)]
    for r, lighter in zip(records, (20.0, 10.0, 0.0, -6.0), strict=True):
        r.lighter = lighter
    row = summarise(records)[0]
    assert row["lighter"] == pytest.approx(6.0)
    header, rule, line = format_table([row]).splitlines()
    assert header.count("|") == rule.count("|") == line.count("|")
    assert "| lighter |" in header and "| +6.0 |" in line


def test_skin_lighter_reads_the_skin_not_the_hair_or_teeth() -> None:
    before = torch.full((3, 64, 64), 90, dtype=torch.uint8)
    assert skin_lighter(before, before + 30) == pytest.approx(30.0)
    hair = before.clone()
    hair[:, :20] = 255  # the top of the head turns white (gray hair)
    hair[:, 50:55, 27:37] = 255  # teeth (a smile)
    assert abs(skin_lighter(before, hair)) < 0.5


def test_cheek_redness_sees_a_red_patch_not_a_brighter_face(astronaut) -> None:
    photo, marks = astronaut.photo, astronaut.aligned.landmarks
    assert cheek_redness(photo, photo, marks) == 0.0
    brighter = np.clip(photo.astype(np.int16) + 30, 0, 255).astype(np.uint8)
    assert abs(cheek_redness(photo, brighter, marks)) < 3  # light, not colour
    blotch = photo.astype(np.int16)
    x, y = marks[3].astype(int) + (marks[30] - marks[3]).astype(int) // 3  # a left cheek
    r = int((marks[16, 0] - marks[0, 0]) / 10)
    blotch[y - r:y + r, x - r:x + r] += np.array([40, -20, -20], np.int16)
    blotch = np.clip(blotch, 0, 255).astype(np.uint8)
    assert cheek_redness(photo, blotch, marks) > RED_PATCH
    # the summary counts the faces with one
    records = [_record("age_years", 1.0, math.nan, math.nan, 0.2) for _ in range(4)]
    records[0].red_patch = 20.0
    assert summarise(records)[0]["red_patches"] == pytest.approx(0.25)
