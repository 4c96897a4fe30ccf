"""Fitting directions: LDA with shrinkage against the mean difference, on synthetic
latents where the right answer is known (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glow_demo.directions import (
    LatentCovariance,
    calibrate,
    conditional_differences,
    face_colour,
    held_fixed,
    heldout_gaps,
    lda_directions,
    mean_differences,
    shrunk_mean_differences,
)

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


def test_face_colour_reads_the_skin_box() -> None:
    images = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
    images[0, 0] = 200  # a red face
    images[1, 2, 24:56, 16:48] = 100  # blue only inside the face box
    colour = face_colour(images)
    assert colour[0].tolist() == pytest.approx([200.0, 0.0])
    assert colour[1].tolist() == pytest.approx([0.0, 100.0])
