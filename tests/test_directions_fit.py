"""Fitting directions: LDA with shrinkage against the mean difference, on synthetic
latents where the right answer is known (no model needed; the last test runs the
`directions` command on the shipped model and a small real pack)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from glow_demo.data import DEFAULT_CELEBA
from glow_demo.direction_fitting import (
    COLOUR_IS_THE_POINT,
    RANGE_MARGIN,
    LatentCovariance,
    calibrate,
    conditional_differences,
    edit_range,
    face_colour,
    held_fixed,
    heldout_gaps,
    lda_directions,
    mean_differences,
    shrunk_conditional_differences,
    shrunk_mean_differences,
    unseen_scale,
)
from glow_demo.directions import Directions, combine_moves

D, N = 400, 2000


def _latents(seed: int = 0) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """Latents where the attribute moves axis 0 by 1.0, and a nuisance factor with
    variance 25 (lighting, say) along axis 1 is more common among faces with it: its
    mean difference points partly along the nuisance, its discriminant does not."""
    gen = torch.Generator().manual_seed(seed)
    labels = (torch.rand(N, generator=gen) < 0.3)
    z = torch.randn(N, D, generator=gen)
    z[:, 0] += labels.float()
    z[:, 1] = 5 * torch.randn(N, generator=gen) + 2.0 * labels.float()
    truth = torch.zeros(D)
    truth[0] = 1
    return z, np.where(labels.numpy(), 1, -1)[:, None], truth


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


def test_discriminant_discounts_a_correlated_high_variance_nuisance() -> None:
    z, labels, truth = _latents()
    mean = mean_differences(z, labels)[0]
    lda = lda_directions(z, labels, LatentCovariance.fit(z, rank=16), shrinkage=0.2)[0]
    assert _cos(mean, truth) < 0.6  # mostly the nuisance
    assert _cos(lda, truth) > max(0.65, _cos(mean, truth) + 0.2)  # the rest: sampling noise
    assert abs(lda[1]) < abs(mean[1]) / 3


def test_full_shrinkage_is_the_mean_difference() -> None:
    z, labels, _ = _latents(1)
    mean = mean_differences(z, labels)[0]
    cov = LatentCovariance.fit(z, rank=16)
    assert torch.allclose(cov.solve(mean, 1.0), mean / cov.average, atol=1e-5)


def test_covariance_model_keeps_the_total_variance() -> None:
    z, _, _ = _latents(2)
    cov = LatentCovariance.fit(z, rank=16)
    total = float(cov.variances.sum()) + cov.rest * (D - 16)
    assert total == pytest.approx(float(z.var(0).sum()), rel=1e-3)
    assert float(cov.variances[0]) == pytest.approx(25 + 0.21 * 4, rel=0.15)


def test_calibration_moves_a_face_by_the_median_gap() -> None:
    z, labels, _ = _latents(3)
    direction = calibrate(torch.randn(D).abs() + torch.nn.functional.one_hot(
        torch.tensor(0), D).float() * 10, z, labels[:, 0])
    unit = direction / direction.norm()
    proj = z @ unit
    pos, neg = proj[torch.from_numpy(labels[:, 0] > 0)], proj[torch.from_numpy(labels[:, 0] < 0)]
    gap = float(pos.median() - neg.median())
    assert float(direction.norm()) == pytest.approx(abs(gap), rel=0.02)
    assert gap > 0


def test_levels_without_signal_are_shrunk_away() -> None:
    """Signal only in the second 'level': the first, all noise, gets weight ~0."""
    gen = torch.Generator().manual_seed(4)
    labels = torch.rand(N, generator=gen) < 0.1
    z = torch.randn(N, D, generator=gen)
    z[:, 300:] += 0.5 * labels.float()[:, None]
    y = np.where(labels.numpy(), 1, -1)[:, None]
    levels = [slice(0, 300), slice(300, D)]
    shrunk, weights = shrunk_mean_differences(z, y, levels)
    assert weights[0, 0] < 0.15 < 0.8 < weights[0, 1] <= 1
    plain = mean_differences(z, y)[0]
    assert float(shrunk[0, :300].norm()) < 0.15 * float(plain[:300].norm())
    gap = heldout_gaps(z, y, lambda a, b: shrunk_mean_differences(a, b, levels)[0])[0]
    assert gap == pytest.approx(0.5 * 10, rel=0.25)  # 100 dims x 0.5 along the unit vector


def _confounded(seed: int = 0) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """Smiling moves axis 0 by 1.0 and makeup axis 1 by 2.0; smiling faces wear makeup
    far more often (as in CelebA), so smiling's plain mean difference picks up makeup."""
    gen = torch.Generator().manual_seed(seed)
    makeup = torch.rand(N, generator=gen) < 0.4
    smiling = torch.rand(N, generator=gen) < torch.where(makeup, 0.8, 0.2)
    male = torch.rand(N, generator=gen) < 0.5
    z = 0.5 * torch.randn(N, D, generator=gen)
    z[:, 0] += smiling.float()
    z[:, 1] += 2.0 * makeup.float()
    z[:, 2] += 3.0 * male.float()
    labels = np.stack([np.where(v.numpy(), 1, -1) for v in (smiling, makeup, male)], 1)
    return z, labels, ["Smiling", "Heavy_Makeup", "Male"]


def test_conditional_direction_holds_the_confounder_fixed() -> None:
    z, labels, names = _confounded()
    plain = mean_differences(z, labels)[0]
    held = conditional_differences(z, labels, names)[0]
    assert held_fixed("Smiling", names) == ["Male", "Heavy_Makeup"]
    assert float(plain[1]) > 0.6  # the plain difference paints makeup too
    assert abs(float(held[1])) < 0.1  # held fixed: no makeup component
    assert float(held[0]) == pytest.approx(1.0, abs=0.1)  # and the smile itself is whole


def test_conditional_levels_without_signal_are_shrunk_away() -> None:
    """The attributes sit on the first 'level' only: the second, all sampling noise, is
    scaled to ~0, so the direction points at the truth far more closely, while the
    confounder stays held fixed."""
    z, labels, names = _confounded()
    levels = [slice(0, 200), slice(200, D)]
    plain = conditional_differences(z, labels, names)
    shrunk, weights = shrunk_conditional_differences(z, labels, names, levels)
    assert weights.shape == (3, 2)
    assert (weights[:, 1] < 0.1).all() and (weights[:, 0] > 0.7).all(), weights
    truth = torch.zeros(D)
    truth[0] = 1
    assert _cos(shrunk[0], truth) > max(0.9, _cos(plain[0], truth) + 0.04)
    assert abs(float(shrunk[0, 1])) < 0.1  # makeup still held fixed
    assert float(shrunk[0, 0]) == pytest.approx(float(plain[0, 0]) * weights[0, 0], rel=1e-4)


def test_conditional_without_confounders_is_the_mean_difference() -> None:
    z, labels, names = _confounded()
    # Male holds nothing fixed (a man's look includes no makeup): the plain difference
    assert held_fixed("Male", names) == []
    male = conditional_differences(z, labels, names)[2]
    assert torch.allclose(male, mean_differences(z, labels)[2], atol=1e-4)


def test_face_colour_held_fixed_except_where_colour_is_the_point() -> None:
    """Smiling faces are redder here (axis 3 follows the face's redness): with the face
    colour as a covariate the smile direction drops the reddening; makeup, whose look
    is the colour, keeps it."""
    z, labels, names = _confounded()
    gen = torch.Generator().manual_seed(1)
    redness = 0.5 * torch.randn(N, generator=gen) + torch.from_numpy(labels[:, 0] > 0).float()
    redness += torch.from_numpy(labels[:, 1] > 0).float()
    z[:, 3] += 2.0 * redness
    colour = np.stack([redness.numpy(), np.zeros(N)], 1)
    plain = conditional_differences(z, labels, names)
    held = conditional_differences(z, labels, names, colour)
    assert float(plain[0, 3]) > 1.0 and abs(float(held[0, 3])) < 0.15
    assert float(held[1, 3]) == pytest.approx(float(plain[1, 3]), abs=1e-4)


def test_glasses_keep_the_darkness_they_put_on_the_skin_and_a_held_fit_is_kept_too() -> None:
    """Glasses lie on the skin the colour is read on and darken it (here the brightness
    falls by 1 with glasses, and axis 3 follows it): the slider's fit keeps that look (no
    colour hold, so no lighter cheeks paid back), the fit with the colour held, kept for
    what age takes out of its step, drops it; both keep the glasses themselves (axis 0)."""
    gen = torch.Generator().manual_seed(2)
    glasses = torch.rand(N, generator=gen) < 0.3
    brightness = 0.5 * torch.randn(N, generator=gen) - glasses.float()
    z = 0.5 * torch.randn(N, D, generator=gen)
    z[:, 0] += glasses.float()
    z[:, 3] += 2.0 * brightness
    labels = np.where(glasses.numpy(), 1, -1)[:, None]
    colour = brightness.numpy()[:, None]
    slider = conditional_differences(z, labels, ["Eyeglasses"], colour)[0]
    held = conditional_differences(z, labels, ["Eyeglasses"], colour, COLOUR_IS_THE_POINT)[0]
    assert float(slider[3]) < -1.5 and abs(float(held[3])) < 0.15
    assert float(slider[0]) == pytest.approx(1.0, abs=0.1)
    assert float(held[0]) == pytest.approx(1.0, abs=0.1)


def test_face_colour_reads_the_skin_box_and_skin_brightness() -> None:
    images = torch.zeros(4, 3, 64, 64, dtype=torch.uint8)
    images[0, 0] = 200  # a red face
    images[1, 2, 24:56, 16:48] = 100  # blue only inside the face box
    images[2] = 120  # a grey face: no colour cast, brightness 120
    images[3, :, 50:55, 27:37] = 255  # white teeth only: the mouth is not skin
    colour = face_colour(images)
    assert colour[0].tolist() == pytest.approx([200.0, 0.0, 0.299 * 200])
    assert colour[1, :2].tolist() == pytest.approx([0.0, 100.0])
    assert 0 < colour[1, 2] < 0.114 * 100
    assert colour[2].tolist() == pytest.approx([0.0, 0.0, 120.0], abs=1e-6)
    assert colour[3, 2] < 2.0  # a smile's teeth leave the skin's brightness alone


# ----- edit ranges: how far an edit may take a face -----------------------------------

def test_edit_range_reads_knees_and_ceilings_from_held_out_positions() -> None:
    gen = np.random.default_rng(0)
    has = np.arange(4000) < 1000
    positions = np.where(has, 2.0, 0.0) + gen.normal(0, 1, 4000)
    low, low_knee, high_knee, high = edit_range(positions, has, step=2.5)
    # strength 1.0 takes the median face without to the knee (and with, down to the low one)
    assert high_knee == pytest.approx(np.median(positions[~has]) + 2.5, abs=1e-3)
    assert low_knee == pytest.approx(np.median(positions[has]) - 2.5, abs=1e-3)
    assert high >= max(np.quantile(positions, 0.999), high_knee + RANGE_MARGIN * 2.5) - 1e-3
    assert low <= min(np.quantile(positions, 0.001), low_knee - RANGE_MARGIN * 2.5) + 1e-3
    assert low < low_knee < high_knee < high
    # the faces without can be named apart from the rest (age: the young, not "not old")
    young = positions < -1
    assert edit_range(positions, has, 2.5, lacks=young)[2] == pytest.approx(
        np.median(positions[young]) + 2.5, abs=1e-3)


def _toy_directions(ranged: bool = True) -> Directions:
    """Two orthogonal directions of length 2 in 3 dimensions; ``smile`` with a range whose
    knee is at 2 and ceiling at 3, ``custom`` without one."""
    vectors = {"smile": torch.tensor([2.0, 0.0, 0.0]), "custom": torch.tensor([0.0, 2.0, 0.0])}
    meta = {"ranges": {"smile": [-3.0, -2.0, 2.0, 3.0]}} if ranged else {}
    return Directions(vectors, meta)


def _position_after(directions: Directions, latent: torch.Tensor, strength: float) -> float:
    offset = directions.offset(latent, {"smile": strength})
    return float((latent + offset)[0])


def test_an_edit_within_the_range_is_the_plain_linear_edit() -> None:
    directions = _toy_directions()
    face = torch.tensor([0.0, 0.5, -1.0])  # at the median: 1.0 takes it to the knee
    for s in (-1.0, -0.5, 0.3, 1.0):
        assert torch.allclose(directions.offset(face, {"smile": s}),
                              directions.vector({"smile": s}))
    # a direction without a range stays linear however far it goes
    assert torch.allclose(directions.offset(face, {"custom": 9.0}),
                          directions.vector({"custom": 9.0}))
    assert directions.strengths_for(face, {"smile": 0.0, "custom": 0.0}) == {
        "smile": 0.0, "custom": 0.0}


def test_an_edit_beyond_the_knee_slows_and_never_passes_the_ceiling() -> None:
    directions = _toy_directions()
    face = torch.zeros(3)
    ends = [_position_after(directions, face, s) for s in np.linspace(0, 10, 101)]
    assert all(b >= a for a, b in zip(ends, ends[1:], strict=False))  # never back...
    assert ends[20] > ends[15] > ends[10]  # ...still moving past the knee...
    assert max(ends) <= 3.0  # ...but never past the ceiling
    assert ends[10] == pytest.approx(2.0, abs=1e-6)  # strength 1.0: exactly the knee
    assert _position_after(directions, face, 1.5) == pytest.approx(
        2 + math.tanh(1.0), abs=1e-5)  # smooth: tanh towards the ceiling
    # mirrored below: the low knee at -2, the low ceiling at -3
    assert _position_after(directions, face, -1.0) == pytest.approx(-2.0, abs=1e-6)
    assert -3.0 <= _position_after(directions, face, -8.0) < -2.9


def test_a_face_already_far_along_moves_little_and_never_backwards() -> None:
    directions = _toy_directions()
    near = torch.tensor([2.5, 0.0, 0.0])  # past the knee, short of the ceiling
    ends = [_position_after(directions, near, s) for s in (0.0, 0.1, 0.5, 1.5, 5.0)]
    assert ends[0] == pytest.approx(2.5)
    assert all(b > a for a, b in zip(ends[:-1], ends[1:-1], strict=False))
    assert ends[-2] <= ends[-1] <= 3.0
    beyond = torch.tensor([4.0, 0.0, 0.0])  # past the ceiling already: no further
    assert directions.strengths_for(beyond, {"smile": 1.0})["smile"] == 0.0
    assert _position_after(directions, beyond, -1.0) == pytest.approx(2.0)  # back is free
    # the same face without ranges moves the full step
    assert _position_after(_toy_directions(ranged=False), beyond, 1.0) == pytest.approx(6.0)


def test_adding_a_direction_keeps_its_range_and_replacing_one_drops_the_old() -> None:
    directions = _toy_directions()
    added = directions.add_direction("age_years", torch.tensor([0.0, 0.0, 3.0]),
                                     {"label": "age", "range": [-4.0, -3.0, 3.0, 4.0]})
    assert added.meta["ranges"]["age_years"] == [-4.0, -3.0, 3.0, 4.0]
    assert "range" not in added.meta["age_years"]
    replaced = added.add_direction("smile", torch.tensor([1.0, 0.0, 0.0]), {"label": "mine"})
    assert "smile" not in replaced.meta["ranges"] and "age_years" in replaced.meta["ranges"]


def test_units_lengthen_by_how_much_further_apart_unseen_faces_sit() -> None:
    """Faces a model trained on sit closer together along a direction than faces it never
    saw. Steps of 2.0 (their gap on the training folds) against unseen faces whose
    attributes move them 3.0: the factor is 1.5, the median over the attributes that
    count; one too rare among the unseen faces (10 with it) does not."""
    gen = torch.Generator().manual_seed(0)
    n = 600
    diffs = torch.zeros(3, D)
    diffs[0, 0] = diffs[1, 1] = diffs[2, 2] = 2.0
    has = torch.rand(n, 3, generator=gen) < 0.4
    has[:, 2] = torch.arange(n) < 10
    z = 0.1 * torch.randn(n, D, generator=gen)
    z[:, :3] += 3.0 * has.float()
    scale, ratios = unseen_scale(diffs, z, np.where(has.numpy(), 1, -1), quantile=0.5)
    assert set(ratios) == {0, 1}
    assert scale == pytest.approx(1.5, abs=0.02)
    as_tight = z.clone()
    as_tight[:, :3] -= 1.0 * has.float()  # sitting as the training folds do: no change
    assert unseen_scale(diffs, as_tight, np.where(has.numpy(), 1, -1),
                        quantile=0.5)[0] == pytest.approx(1.0, abs=0.02)
    assert unseen_scale(diffs, z, -np.ones((n, 3)), quantile=0.5) == (1.0, {})


@pytest.mark.needs_data(DEFAULT_CELEBA)
def test_cli_lengthens_the_units_by_the_unseen_faces_and_says_when_it_cannot(
        tmp_path, capsys) -> None:
    """`directions --unseen PACK`: the factor is measured and stored, every step lengthened
    by it (here the small training pack itself stands in for unseen faces); without the
    pack the units stay as the training folds give them, and the command says so."""
    import shutil

    from glow_demo.cli import main
    from glow_demo.data import pack_celeba
    from glow_demo.model import CONFIG_FILE, DEFAULT_WEIGHTS, WEIGHTS_FILE

    for name in (CONFIG_FILE, WEIGHTS_FILE):
        shutil.copy(DEFAULT_WEIGHTS / name, tmp_path / name)
    pack = pack_celeba(DEFAULT_CELEBA, tmp_path / "p.npz", limit=160)
    args = ["directions", "--data", str(pack), "--weights", str(tmp_path)]
    assert main([*args, "--unseen", str(tmp_path / "missing.npz")]) == 0
    assert "missing.npz not found" in capsys.readouterr().out
    plain = Directions.load(tmp_path)
    assert "unseen_calibration" not in plain.meta
    assert main([*args, "--unseen", str(pack)]) == 0
    assert "units lengthened x" in capsys.readouterr().out
    lengthened = Directions.load(tmp_path)
    scale = lengthened.meta["unseen_calibration"]["scale"]
    assert scale > 0 and scale != 1.0
    assert float(lengthened.vectors["smile"].norm()) == pytest.approx(
        scale * float(plain.vectors["smile"].norm()), rel=1e-4)
    # the glasses fitted with the colour held: kept at the slider's length, and not a
    # slider of its own
    held, glasses = lengthened.vectors["glasses_held"], lengthened.vectors["glasses"]
    assert float(held.norm()) == pytest.approx(float(glasses.norm()), rel=1e-4)
    assert "glasses_held" not in {a.name for a in lengthened.attributes}
    with pytest.raises(KeyError, match="unknown attribute"):
        lengthened.vector({"glasses_held": 1.0})


def test_combined_sliders_count_what_they_share_once() -> None:
    """Two overlapping moves in the same sense: along each one's direction the face moves
    by the larger of its own step and what the other carries, not their sum (the least
    change to the sum that does so); orthogonal moves, opposed ones, one move and a move
    at 0 are the plain sum, and the result is continuous as a strength goes to 0."""
    age = torch.tensor([3.0, 1.0, 0.0, 0.0])
    gray = torch.tensor([0.0, 2.0, 0.0, 0.0])  # shares axis 1 with age
    combined = combine_moves([age, gray])
    unit = lambda v: v / v.norm()  # noqa: E731
    # own 2.0 > age's 1.0 along gray; age's own 3.16 > gray's 0.63 along age (held to
    # within the constraints' slight give, SOFT_STEP)
    assert float(combined @ unit(gray)) == pytest.approx(2.0, abs=0.01)
    assert float(combined @ unit(age)) == pytest.approx(float(age.norm()), abs=0.01)
    assert float(combined.norm()) < float((age + gray).norm())
    assert torch.equal(combine_moves([age]), age)
    ortho = torch.tensor([0.0, 0.0, 5.0, 0.0])
    assert torch.allclose(combine_moves([age, ortho]), age + ortho)
    opposed = torch.tensor([0.0, -2.0, 0.0, 0.0])  # pulls against age's axis-1 part
    assert torch.allclose(combine_moves([age, opposed]), age + opposed)
    assert torch.allclose(combine_moves([age, 0 * gray]), age)
    assert torch.allclose(combine_moves([age, 1e-6 * gray]), age + 1e-6 * gray, atol=1e-5)
    # a small own step inside what the other carries: the carried amount is kept
    small = torch.tensor([0.0, 2.0, 0.0, 0.0]) / 4
    assert float(combine_moves([age, small]) @ unit(small)) == pytest.approx(1.0, abs=0.05)
    # a third slider nudged from 0 changes the pair's move continuously
    third = torch.tensor([0.0, 1.0, 1.0, 0.0])  # overlaps both
    pair = combine_moves([age, gray])
    jumps = [float((combine_moves([age, gray, e * third]) - pair - e * third).norm())
             for e in (1e-1, 1e-2, 1e-3, 1e-4)]
    assert jumps[-1] < 1e-3 and jumps == sorted(jumps, reverse=True)


def test_the_slider_vector_combines_its_moves() -> None:
    directions = Directions({"a": torch.tensor([3.0, 1.0, 0.0]),
                             "b": torch.tensor([0.0, 2.0, 0.0])}, {})
    both = directions.vector({"a": 1.0, "b": 1.0})
    assert torch.allclose(both, combine_moves([directions.vectors["a"], directions.vectors["b"]]))
    assert not torch.allclose(both, directions.vectors["a"] + directions.vectors["b"])
    assert torch.allclose(directions.vector({"a": -1.0, "b": 0.0}), -directions.vectors["a"])
    assert torch.equal(directions.vector({}), torch.zeros(3))
