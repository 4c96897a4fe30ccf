"""The UTKFace age direction (``age_years``), built small from real data with the shipped model.

The full build (``python -m glow_demo directions --only-utkface``) uses 2,000 faces; here
90 are enough to check the plumbing and that the direction points the right way: older
faces of the held-out split project further along it than younger ones. From 90 faces the
vector is mostly sampling noise (its norm is a few times the age signal's), so the check
compares the means of two groups of 16 rather than single faces: over 300 random 90-face
builds on cached latents of the development model it held 298 times (with 60 faces, 287).
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from glow_demo.age_direction import build_age_direction, latent_mask
from glow_demo.cli import main
from glow_demo.data import to_unit
from glow_demo.direction_fitting import level_slices
from glow_demo.directions import (
    AGE_YEARS,
    DIRECTIONS_FILE,
    DIRECTIONS_META,
    MAIN_ORDER,
    Directions,
)
from glow_demo.model import CONFIG_FILE, DEFAULT_WEIGHTS, WEIGHTS_FILE, Glow, WeightsError
from glow_demo.utkface import (
    AGE_BINS,
    DEFAULT_UTKFACE,
    UtkFace,
    align_utkface,
    read_utkface,
    select_utkface,
)

N_BUILD = 90
# held-out age groups, young to old, and faces per group
GROUPS = ((18, 25), (65, 80))
PER_GROUP = 16

pytestmark = pytest.mark.needs_data(DEFAULT_UTKFACE)  # every test here reads UTKFace


@pytest.fixture(scope="module")
def faces() -> list[UtkFace]:
    return read_utkface(DEFAULT_UTKFACE)


@pytest.fixture(scope="module")
def model() -> Glow:
    return Glow.load(DEFAULT_WEIGHTS)


@pytest.fixture(scope="module")
def built(model: Glow) -> tuple[torch.Tensor, dict]:
    return build_age_direction(model, DEFAULT_WEIGHTS, DEFAULT_UTKFACE, n=N_BUILD,
                               progress=False)


@pytest.fixture
def weights_copy(tmp_path: Path) -> Path:
    """The shipped model and its directions, in a folder a test may write to."""
    for name in (CONFIG_FILE, WEIGHTS_FILE, DIRECTIONS_FILE, DIRECTIONS_META):
        shutil.copy(DEFAULT_WEIGHTS / name, tmp_path / name)
    return tmp_path


def test_file_names_are_parsed(faces: list[UtkFace]) -> None:
    assert len(faces) > 20_000
    face = next(f for f in faces if f.path.name.startswith("26_1_2_"))
    assert (face.age, face.gender, face.race) == (26, 1, 2)
    assert Counter(f.split for f in faces)["val"] / len(faces) == pytest.approx(0.1, abs=0.01)


def test_selection_is_balanced_deterministic_and_leaves_the_held_out_split(
        faces: list[UtkFace]) -> None:
    chosen = select_utkface(faces, 120)
    assert chosen == select_utkface(faces, 120)
    assert len(chosen) == len(set(chosen)) == 120
    assert all(f.split == "train" and 18 <= f.age <= 80 for f in chosen)
    cells = Counter((next(i for i, (lo, hi) in enumerate(AGE_BINS) if lo <= f.age <= hi),
                     f.gender) for f in chosen)
    assert sorted(cells.values()) == [10] * 12  # 6 decades x 2 genders
    held_out = select_utkface(faces, 30, split="val")
    assert all(f.split == "val" for f in held_out)
    assert not set(held_out) & set(chosen)
    assert select_utkface(faces, 120, seed=1) != chosen


def test_direction_is_finite_latent_sized_and_says_its_unit(built, model: Glow) -> None:
    vector, info = built
    assert vector.shape == (model.latent_dim,)
    assert vector.dtype == torch.float32
    assert torch.isfinite(vector).all() and float(vector.norm()) > 0
    assert info["years_per_strength"] == 30
    assert "+30 years" in info["strength_unit"]
    assert info["label"] == "Age (+30 years, UTKFace)"
    assert info["n_images"] + info["n_skipped"] == info["n_selected"] == N_BUILD
    assert info["n_skipped"] == sum(info["skipped"].values()) <= N_BUILD // 10
    assert info["ages"] == [18, 80]
    assert info["covariates"] == ["gender", "race", "face colour and brightness"]
    assert info["norm"] == pytest.approx(float(vector.norm()), abs=1e-3)
    assert info["norm"] < info["norm_unmasked"]


def test_direction_leaves_the_edge_fill_alone(built, model: Glow, faces: list[UtkFace]) -> None:
    """UTKFace's crop covers the middle of the model's input; outside it is edge fill, and
    the direction has no say there."""
    vector, info = built
    assert 0.3 < info["image_covered"] < 0.6
    assert 0.3 < info["latent_kept"] < 0.6
    # the covered part only (levels that are mostly noise may be shrunk away as well)
    assert 0.0 < float((vector != 0).float().mean()) < 0.6
    for level in model.unflatten(vector[None]):  # each level's top quarter: hair, background
        assert float(level[0, :, : level.shape[-2] // 4].abs().max()) == 0.0
    top = model.unflatten(vector[None])[-1][0]  # (96, 4, 4): the coarsest level
    assert float(top[:, 0].abs().max()) == 0.0  # the top quarter is all hair/background
    ones = np.ones((model.config.resolution,) * 2)
    assert torch.equal(latent_mask(model, ones), torch.ones(model.latent_dim))
    aligned = align_utkface(select_utkface(faces, 4, split="val", seed=3), progress=False)
    assert aligned.coverage.shape == (model.config.resolution,) * 2
    assert aligned.coverage[0].max() == 0.0 and aligned.coverage[40, 32] == 1.0


def test_older_held_out_faces_project_further_along_it(built, model: Glow,
                                                      faces: list[UtkFace]) -> None:
    vector, _ = built
    unit = vector / vector.norm()
    means = []
    for lo, hi in GROUPS:
        group = select_utkface(faces, PER_GROUP, split="val", bins=((lo, hi),), seed=7)
        aligned = align_utkface(group, model.config.resolution, progress=False)
        assert len(aligned.faces) == len(aligned.images) >= PER_GROUP - 2
        means.append(float((model.encode(to_unit(aligned.images)) @ unit).mean()))
    assert means == sorted(means), means  # young, old: in standardised-latent units


def test_stored_beside_the_celeba_directions(built, weights_copy: Path) -> None:
    vector, info = built
    shipped = Directions.load(weights_copy)
    before = Directions({k: v for k, v in shipped.vectors.items() if k != AGE_YEARS},
                        {k: v for k, v in shipped.meta.items() if k != AGE_YEARS})
    before.add_direction(AGE_YEARS, vector, info).save(weights_copy)

    directions = Directions.load(weights_copy)
    assert set(directions.vectors) == set(before.vectors) | {AGE_YEARS}
    assert torch.equal(directions.vectors[AGE_YEARS], vector)
    for name in before.vectors:
        assert torch.equal(directions.vectors[name], before.vectors[name])
    by_name = {a.name: a for a in directions.attributes}
    assert by_name[AGE_YEARS].label == "Age (+30 years, UTKFace)"
    assert by_name[AGE_YEARS].main and not by_name["age"].main  # the headline age slider
    assert [a.name for a in directions.attributes if a.main] == list(MAIN_ORDER)
    assert directions.meta[AGE_YEARS]["strength_unit"] == info["strength_unit"]
    assert directions.meta["norms"][AGE_YEARS] == info["norm"]
    assert torch.allclose(directions.vector({AGE_YEARS: -0.5}), -0.5 * vector)

    with pytest.raises(WeightsError, match="another model"):
        before.add_direction(AGE_YEARS, vector, {**info, "model_digest": "0" * 16})
    with pytest.raises(ValueError, match="shape"):
        before.add_direction(AGE_YEARS, vector[:-1], info)


def test_cli_adds_only_the_utkface_direction(weights_copy: Path, capsys) -> None:
    before = Directions.load(weights_copy)
    assert main(["directions", "--only-utkface", "--utkface-n", "12",
                 "--weights", str(weights_copy)]) == 0
    assert "age_years: " in capsys.readouterr().out
    after = Directions.load(weights_copy)
    assert set(after.vectors) == set(before.vectors) | {AGE_YEARS}
    assert after.meta[AGE_YEARS]["n_selected"] == 12
    for name in set(before.vectors) - {AGE_YEARS}:
        assert torch.equal(after.vectors[name], before.vectors[name])
    assert after.meta["n_images"] == before.meta["n_images"]  # CelebA part untouched
    assert after.meta["ranges"]["smile"] == before.meta["ranges"]["smile"]
    assert len(after.meta["ranges"][AGE_YEARS]) == 4  # its range comes with it
    assert np.isfinite(after.vectors[AGE_YEARS].numpy()).all()


def test_levels_that_are_mostly_noise_are_shrunk(model: Glow) -> None:
    """With few faces the slope is mostly sampling noise, spread over every latent
    dimension, most of them on the finest levels; scaled by their James-Stein factors,
    the direction predicts held-out adults' real ages better, so its +30-year step is
    shorter and carries less noise."""
    kwargs = dict(n=150, warp=True, progress=False, units="heldout", n_heldout=150)
    plain_vector, plain = build_age_direction(model, DEFAULT_WEIGHTS, DEFAULT_UTKFACE,
                                              shrink=False, **kwargs)
    vector, shrunk = build_age_direction(model, DEFAULT_WEIGHTS, DEFAULT_UTKFACE, **kwargs)
    assert plain["level_weights"] == [1.0] * 4
    weights = shrunk["level_weights"]
    assert all(0 < w < 1 for w in weights)
    assert weights[0] < weights[-1]  # the finest level, the most dimensions: most noise
    assert "James-Stein" in shrunk["method"] and "James-Stein" not in plain["method"]
    assert shrunk["heldout_correlation"] > plain["heldout_correlation"] + 0.05
    assert shrunk["noise_norm_estimate"] < plain["noise_norm_estimate"]
    assert float(vector.norm()) < float(plain_vector.norm())
    # the same direction within each level, only rescaled
    for sl in level_slices(model):
        assert float(torch.nn.functional.cosine_similarity(
            vector[sl], plain_vector[sl], 0)) == pytest.approx(1.0, abs=1e-5)


def test_heldout_units_lengthen_the_same_direction(model: Glow) -> None:
    """--age-units heldout keeps the fitted direction and only sets its length, from how
    far held-out adults' real ages rise along it: longer than the mean 30-year change,
    since the position along it also carries what does not vary with age."""
    slope, _ = build_age_direction(model, DEFAULT_WEIGHTS, DEFAULT_UTKFACE, n=150,
                                   warp=True, progress=False)
    held, info = build_age_direction(model, DEFAULT_WEIGHTS, DEFAULT_UTKFACE, n=150,
                                     warp=True, progress=False, units="heldout",
                                     n_heldout=150)
    assert float(held @ slope / (held.norm() * slope.norm())) == pytest.approx(1.0, abs=1e-5)
    assert info["units"] == "heldout" and info["n_heldout"] == 150
    assert info["heldout_correlation"] > 0.1  # older held-out faces sit further along it
    assert info["scale_over_slope"] > 1.0
    assert float(held.norm()) == pytest.approx(float(slope.norm()) * info["scale_over_slope"],
                                               rel=1e-3)
    # its edit range, from the same held-out adults: the knees lie one step beyond the
    # median young face (upwards) and the median old one (downwards), and the old sit
    # further along, so the two knees are less than two steps apart
    low, low_knee, high_knee, high = info["range"]
    step = float(held.norm())
    assert low < low_knee < high_knee < high
    assert high_knee - low_knee < 2 * step
    with pytest.raises(ValueError, match="units"):
        build_age_direction(model, DEFAULT_WEIGHTS, DEFAULT_UTKFACE, n=20, warp=True,
                            progress=False, units="years")
