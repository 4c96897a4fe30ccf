"""Fitting attribute directions to CelebA's labels (``python -m glow_demo directions``).

OpenAI's Glow demo took, for each CelebA yes/no label, the difference of the mean
latents of faces with and without it (``--method mean``). The default here
(``conditional``) is that difference among faces alike in the labels that travel with it
(gender, age, makeup, ...) and in the face's colour and skin brightness, a least-squares
fit on the labels (``conditional_differences``). A fit on ~24,000 faces in 12,288
dimensions is still largely sampling noise, spread over every dimension and so mostly on
the fine levels, so each latent level is scaled by its James-Stein factor
(``shrink_levels``). **Strength 1.0 moves a face by the held-out gap between the median
face without the attribute and the 95th-percentile face with it**, lengthened for faces
the model never trained on (``unseen_scale``), and each face stops where held-out faces
stop (``edit_range``). The result is a ``directions.Directions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .data import to_unit
from .directions import HELD_ONLY, MAIN_ATTRIBUTES, OTHER_ATTRIBUTES, Directions, weights_digest
from .model import Glow
from .skin import skin_brightness


@torch.no_grad()
def encode_all(model: Glow, images_uint8: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Standardised latents of every image (N, D), in float32."""
    device = next(model.parameters()).device
    out = []
    for start in tqdm(range(0, len(images_uint8), batch_size), desc="encoding", unit="batch"):
        batch = to_unit(images_uint8[start : start + batch_size]).to(device)
        out.append(model.encode(batch).cpu())
    return torch.cat(out)


def mean_differences(latents: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
    """(N, D) latents and (N, A) +-1 labels -> (A, D): mean(with) - mean(without)."""
    pos = torch.from_numpy((labels > 0).astype(np.float32))
    neg = 1 - pos
    mean_pos = pos.T @ latents / pos.sum(0).clamp(min=1)[:, None]
    mean_neg = neg.T @ latents / neg.sum(0).clamp(min=1)[:, None]
    return mean_pos - mean_neg


def level_slices(model: Glow) -> list[slice]:
    """Where each level's latent sits in the flat latent, finest level first."""
    sizes = [int(np.prod(shape)) for shape in model.latent_shapes]
    ends = np.cumsum(sizes)
    return [slice(int(e - n), int(e)) for n, e in zip(sizes, ends, strict=True)]


def shrunk_mean_differences(latents: torch.Tensor, labels: np.ndarray,
                            levels: list[slice]) -> tuple[torch.Tensor, np.ndarray]:
    """(A, D) mean differences with each level shrunk by its own signal share, and the
    (A, L) weights used.

    A mean difference over D dimensions carries sampling noise of squared norm about
    sum(var) * (1/n_with + 1/n_without); for a rare attribute on 12,288 dimensions that is
    most of the vector (with 800 faces, the held-out gap along a smile direction of norm
    7.6 was 1.6). The noise spreads evenly over the dimensions, the signal does not, so
    each level (the finest holds half the dimensions) is scaled by the positive-part
    James-Stein factor max(0, 1 - noise / |difference|^2) of that level: an edit then
    carries the attribute, not noise that repaints texture and colour.
    """
    diffs = mean_differences(latents, labels)
    var = latents.double().var(0)
    pos = (labels > 0).sum(0).astype(np.float64)
    neg = len(labels) - pos
    weights = np.zeros((labels.shape[1], len(levels)))
    for a in range(labels.shape[1]):
        if pos[a] == 0 or neg[a] == 0:
            continue
        scale = 1 / pos[a] + 1 / neg[a]
        diffs[a], weights[a] = shrink_levels(
            diffs[a], [float(var[sl].sum()) * scale for sl in levels], levels)
    return diffs, weights


def shrink_levels(vector: torch.Tensor, noise: list[float], levels: list[slice]
                  ) -> tuple[torch.Tensor, np.ndarray]:
    """``vector`` with each level scaled by its positive-part James-Stein factor
    max(0, 1 - noise / |part|^2), and those factors: ``noise`` is each level's expected
    squared norm of sampling noise. Noise spreads evenly over a level's dimensions and the
    signal does not, so a level that is mostly noise is mostly dropped."""
    weights = np.zeros(len(levels))
    for k, (sl, level_noise) in enumerate(zip(levels, noise, strict=True)):
        total = float(vector[sl].double().pow(2).sum())
        weights[k] = max(0.0, 1 - level_noise / total) if total > 0 else 0.0
    return scale_levels(vector, weights, levels), weights


def scale_levels(vector: torch.Tensor, weights: np.ndarray, levels: list[slice]
                 ) -> torch.Tensor:
    """A copy of ``vector`` with each level multiplied by its weight."""
    out = vector.clone()
    for sl, w in zip(levels, weights, strict=True):
        out[sl] *= float(w)
    return out


def heldout_positions(latents: torch.Tensor, labels: np.ndarray, fit, folds: int = 2,
                      seed: int = 0, pass_index: bool = False
                      ) -> tuple[np.ndarray, np.ndarray]:
    """((N, A) positions, (N,) fold): each face's position along each attribute's unit
    direction ``fit(latents, labels) -> (A, D)`` fitted on the *other* folds, as a new
    face's would be (in-sample projections overstate the spread many times in 12,288
    dimensions). A direction that is all zeros gives positions 0. With ``pass_index``
    the fit also gets the rows it is fitted on (for per-face covariates)."""
    order = np.random.default_rng(seed).permutation(len(latents))
    parts = np.array_split(order, folds)
    positions = np.zeros((len(latents), labels.shape[1]))
    fold = np.zeros(len(latents), dtype=np.int64)
    for f, held in enumerate(parts):
        train = np.concatenate([p for i, p in enumerate(parts) if i != f])
        directions = (fit(latents[train], labels[train], train) if pass_index
                      else fit(latents[train], labels[train]))
        units = directions / directions.norm(dim=1, keepdim=True).clamp(min=1e-12)
        positions[held] = (latents[held].float() @ units.float().T).double().numpy()
        fold[held] = f
    return positions, fold


def gaps_from_positions(positions: np.ndarray, fold: np.ndarray, labels: np.ndarray,
                        quantile: float = 0.5) -> np.ndarray:
    """(A,) per fold, the gap between the median face without each attribute and the
    ``quantile`` face with it (``heldout_positions``), averaged over the folds."""
    folds = int(fold.max()) + 1
    gaps = np.zeros((folds, labels.shape[1]))
    for f in range(folds):
        rows = fold == f
        for a in range(labels.shape[1]):
            y = labels[rows, a] > 0
            if y.all() or not y.any() or not positions[rows, a].any():
                continue
            p = positions[rows, a]
            gaps[f, a] = float(np.quantile(p[y], quantile) - np.median(p[~y]))
    return gaps.mean(0)


def heldout_gaps(latents: torch.Tensor, labels: np.ndarray, fit, quantile: float = 0.5,
                 folds: int = 2, seed: int = 0, pass_index: bool = False) -> np.ndarray:
    """(A,) the gap between the median face without each attribute and the ``quantile``
    face with it, along directions fitted on the other folds (``heldout_positions``)."""
    positions, fold = heldout_positions(latents, labels, fit, folds, seed, pass_index)
    return gaps_from_positions(positions, fold, labels, quantile)


# ----- how far an edit may take a face ------------------------------------------------
# A linear edit moves every face by the same step, so a face already far along a direction
# (an old face made older, glasses added to glasses, a broad smile widened) is pushed past
# anything the model has seen, and the decode paints what it never learned: the red and
# rainbow patches of issue 10. So each direction keeps a range of positions along its unit
# vector, read from held-out faces: up to the *knee* (where strength 1.0 takes the median
# face without the attribute) an edit is linear; beyond it the position approaches the
# *ceiling* (the RANGE_QUANTILE of held-out faces, at least RANGE_MARGIN x the step past the
# knee) smoothly and never passes it. Mirrored for negative strengths.
RANGE_QUANTILE = 0.999
# half a step: 1.5 still takes a typical face about 1.38 steps (skin.py keeps its colour)
RANGE_MARGIN = 0.5


def edit_range(positions: np.ndarray, has: np.ndarray, step: float,
               lacks: np.ndarray | None = None, quantile: float = RANGE_QUANTILE,
               margin: float = RANGE_MARGIN) -> list[float]:
    """[low ceiling, low knee, high knee, high ceiling] along a direction of length
    ``step`` (its strength 1.0), from held-out faces' ``positions`` along its unit vector,
    which of them have the attribute (``has``) and which lack it (``lacks``, default: the
    rest); ``Directions.strengths_for`` applies it."""
    positions, has = np.asarray(positions, np.float64), np.asarray(has, bool)
    lacks = ~has if lacks is None else np.asarray(lacks, bool)
    high_knee = float(np.median(positions[lacks])) + step
    low_knee = float(np.median(positions[has])) - step
    high = max(float(np.quantile(positions, quantile)), high_knee + margin * step)
    low = min(float(np.quantile(positions, 1 - quantile)), low_knee - margin * step)
    return [round(v, 4) for v in (low, low_knee, high_knee, high)]


# CelebA labels that travel with many others in its photos: smiling faces also wear more
# makeup and have rosier cheeks, blond and glasses come with gender and age. Method
# "conditional" holds them fixed while fitting each other direction, so e.g. the smile
# no longer paints red cheeks (issue 10's blotches).
CONFOUNDERS: tuple[str, ...] = ("Male", "Young", "Heavy_Makeup", "Wearing_Lipstick",
                                "Rosy_Cheeks")
# labels that are part of an attribute's own look, so not held fixed while fitting it
PART_OF: dict[str, tuple[str, ...]] = {
    "Heavy_Makeup": ("Wearing_Lipstick", "Rosy_Cheeks"),
    "Wearing_Lipstick": ("Heavy_Makeup",),
    "Rosy_Cheeks": ("Heavy_Makeup",),
    "Male": CONFOUNDERS,  # a man's face is also unmade-up: keep the plain difference
}


# labels whose look is the face's own colour: the face colour (and brightness) is not held
# fixed for them
COLOUR_IS_THE_POINT: tuple[str, ...] = ("Heavy_Makeup", "Wearing_Lipstick", "Rosy_Cheeks",
                                        "Pale_Skin", "Male")
# labels whose look lies on the skin the colour is measured on: glasses' frames and lenses
# darken it (CelebA's glasses wearers read 14 levels darker there, 123.6 against 137.7),
# so a fit holding the colour pays that darkness back in lighter, redder cheeks (model
# v14, glasses +1: red patches on 19 % of 192 held-out faces, 3 % fitted without the
# hold). Their sliders are fitted without it. A fit with it is kept too, for what other
# directions take out of their step (``directions.HELD_ONLY``, ``editor.HELD_IN_PIXELS``):
# the colour-free glasses, taken out of the age step, handed it their lightness instead
# (age +1: red patches 2 % -> 8 %).
COLOUR_ON_THE_SKIN: tuple[str, ...] = ("Eyeglasses",)
FACE_BOX = (0.25, 0.375, 0.75, 0.875)  # x0, y0, x1, y1 of the aligned crop: cheeks to chin


def face_colour(images_uint8: torch.Tensor) -> np.ndarray:
    """(N, 3): each face's mean red minus green and blue minus green over ``FACE_BOX``
    (the skin between the eyes and the chin; hair and background stay out), and its skin's
    mean brightness (``skin.skin_brightness``: eyes, brows and mouth left out, so a
    smile's teeth do not count), all 0-255.

    Held fixed while fitting a direction (method "conditional", and ``age_years``), it
    keeps the colour cast and the lighting that travel with a label out of its direction:
    UTKFace's older faces and CelebA's smiling ones are redder on average, and that was
    the red patches of issue 10. Brightness: gray-haired, blond and smiling CelebA faces
    are lit brighter, and without it smile + age + gray hair at +1 lightened the skin of
    204 held-out faces by 18 (of 255) on average (the meter's ``skin_lighter``; a dark-
    skinned man came out light-skinned); with it, by 2.
    """
    r = images_uint8.shape[-1]
    x0, y0, x1, y1 = (round(f * r) for f in FACE_BOX)
    box = images_uint8[:, :, y0:y1, x0:x1].double().mean((2, 3)).numpy()  # (N, 3)
    skin = skin_brightness(images_uint8).numpy()
    return np.stack([box[:, 0] - box[:, 1], box[:, 2] - box[:, 1], skin], 1)


def held_fixed(attribute: str, attr_names: list[str]) -> list[str]:
    """The confounders held fixed while fitting ``attribute``'s direction."""
    skip = {attribute, *PART_OF.get(attribute, ())}
    return [c for c in CONFOUNDERS if c in attr_names and c not in skip]


def conditional_differences(latents: torch.Tensor, labels: np.ndarray,
                            attr_names: list[str], colour: np.ndarray | None = None,
                            colour_free: tuple[str, ...] = COLOUR_IS_THE_POINT
                            + COLOUR_ON_THE_SKIN) -> torch.Tensor:
    """(A, D): for each attribute, its coefficient in the least-squares fit
    ``latent ~ a + b * attribute + sum_k c_k * confounder_k`` (0/1 labels): the
    difference with and without it among faces alike in the confounders. With no
    confounders it is the plain mean difference.

    ``colour`` ((N, k), e.g. ``face_colour``) is held fixed too, except for the labels in
    ``colour_free`` (by default ``COLOUR_IS_THE_POINT`` and ``COLOUR_ON_THE_SKIN``).

    One pass over the latents: the design's Gram matrix and its product with the latents
    are computed once for every label, and each attribute's fit reads its sub-blocks.
    """
    colour = np.zeros((len(labels), 0)) if colour is None else np.asarray(colour, np.float64)
    x = np.column_stack([np.ones(len(labels)), labels > 0, colour]).astype(np.float64)
    extra = list(range(labels.shape[1] + 1, x.shape[1]))
    gram = x.T @ x  # (A + 1, A + 1)
    cross = torch.from_numpy(x.T).double() @ latents.double()  # (A + 1, D)
    index = {name: i + 1 for i, name in enumerate(attr_names)}
    out = torch.zeros(labels.shape[1], latents.shape[1], dtype=torch.float64)
    for a, name in enumerate(attr_names):
        cols = [0, a + 1] + [index[c] for c in held_fixed(name, attr_names)]
        if name not in colour_free:
            cols += extra
        sub = gram[np.ix_(cols, cols)]
        if np.linalg.matrix_rank(sub) < len(cols):
            continue  # an attribute no face has (or every face has): no direction
        coef = torch.linalg.solve(torch.from_numpy(sub), cross[cols])  # (p, D)
        out[a] = coef[1]
    return out.float()


def shrunk_conditional_differences(latents: torch.Tensor, labels: np.ndarray,
                                   attr_names: list[str], levels: list[slice],
                                   colour: np.ndarray | None = None,
                                   colour_free: tuple[str, ...] = COLOUR_IS_THE_POINT
                                   + COLOUR_ON_THE_SKIN) -> tuple[torch.Tensor, np.ndarray]:
    """``conditional_differences`` with each latent level of each direction scaled by its
    James-Stein factor (``shrink_levels``), and the (A, L) factors. The noise per level is
    half the difference of the fits on two halves of the faces.

    Why: fitted on 6,000 CelebA faces, 74-97 % of each direction's norm was sampling
    noise (gray hair 97 %, smile 74 %): a fixed speckle, mostly on the fine levels, that
    every edit adds to every face, and more of it with each slider moved. Shrunk, the
    position along every one of 40 directions told held-out faces with the attribute from
    those without better (AUC 0.710 -> 0.758 on average; gray hair 0.743 -> 0.813).
    """
    colour = None if colour is None else np.asarray(colour)
    halves = [np.arange(len(labels))[i::2] for i in (0, 1)]
    fits = [conditional_differences(latents[h], labels[h], attr_names,
                                    None if colour is None else colour[h], colour_free)
            for h in halves]
    noise = (fits[0] - fits[1]) / 2
    diffs = conditional_differences(latents, labels, attr_names, colour, colour_free)
    weights = np.zeros((labels.shape[1], len(levels)))
    for a in range(labels.shape[1]):
        if diffs[a].any():
            diffs[a], weights[a] = shrink_levels(
                diffs[a], [float(noise[a, sl].double().pow(2).sum()) for sl in levels], levels)
    return diffs, weights


@dataclass
class LatentCovariance:
    """A rank-k + isotropic model of the latents' covariance (12,288 dimensions cannot
    be estimated from thousands of faces): top-k principal axes and variances, and one
    variance for everything else."""

    axes: torch.Tensor  # (D, k), orthonormal
    variances: torch.Tensor  # (k,)
    rest: float  # variance of every direction orthogonal to ``axes``
    average: float  # trace / D

    @classmethod
    def fit(cls, latents: torch.Tensor, rank: int = 256, seed: int = 0) -> LatentCovariance:
        torch.manual_seed(seed)
        x = latents.double() - latents.double().mean(0)
        n, d = x.shape
        rank = min(rank, n - 1, d)
        _, s, v = torch.pca_lowrank(x, q=rank, center=False, niter=3)
        variances = s**2 / (n - 1)
        total = float((x**2).sum()) / (n - 1)
        rest = max((total - float(variances.sum())) / max(d - rank, 1), 1e-8)
        return cls(v, variances, rest, total / d)

    def solve(self, vector: torch.Tensor, shrinkage: float) -> torch.Tensor:
        """(shrunk covariance)^-1 @ vector, shrinking every variance a fraction
        ``shrinkage`` of the way to the average (1.0: the identity, i.e. no whitening)."""
        a = float(shrinkage)
        v = vector.double()
        coef = self.axes.T @ v
        var = (1 - a) * self.variances + a * self.average
        rest = (1 - a) * self.rest + a * self.average
        return (self.axes @ (coef / var) + (v - self.axes @ coef) / rest).float()


def lda_directions(latents: torch.Tensor, labels: np.ndarray, covariance: LatentCovariance,
                   shrinkage: float) -> torch.Tensor:
    """(A, D) Fisher discriminants with shrinkage, each rescaled to a direction that
    moves a face by the labels' own gap along it (see ``calibrate``).

    The whitened difference of means downweights the latent axes along which faces vary
    most for reasons other than the attribute (pose, lighting, identity), so the edit
    carries less of them; the mean difference alone is noisy for rare attributes.
    """
    diffs = mean_differences(latents, labels)
    return torch.stack([calibrate(covariance.solve(d, shrinkage), latents, labels[:, i])
                        for i, d in enumerate(diffs)])


def calibrate(direction: torch.Tensor, latents: torch.Tensor, labels: np.ndarray,
              quantile: float = 0.5) -> torch.Tensor:
    """``direction`` rescaled so strength 1.0 moves a face along it by the gap between
    the median face without the attribute and the ``quantile`` face with it (0.5: the
    typical face with it), measured in projections of the labelled latents."""
    unit = direction / direction.norm()
    proj = latents @ unit
    pos, neg = proj[torch.from_numpy(labels > 0)], proj[torch.from_numpy(labels <= 0)]
    if len(pos) == 0 or len(neg) == 0:
        return direction
    gap = float(torch.quantile(pos, quantile) - torch.median(neg))
    return unit * gap


METHODS = ("mean", "shrunk", "lda", "conditional")


def _scaled_to_gaps(diffs: torch.Tensor, gaps: np.ndarray, quantile: float
                    ) -> tuple[torch.Tensor, str]:
    """Each direction rescaled to its held-out gap (``heldout_gaps``; a negative gap,
    a direction that does not separate held-out faces, becomes 0), and the unit it gives."""
    norms = diffs.norm(dim=1).clamp(min=1e-12)
    scaled = diffs / norms[:, None] * torch.from_numpy(np.maximum(gaps, 0)).float()[:, None]
    return scaled, (f"1.0 = the held-out gap between the median face without the attribute "
                    f"and the {quantile:.0%} quantile face with it, along the direction")


# Faces the model was trained on sit closer together along every direction than faces it
# never saw (v5: the gap below was 1.09x as long, the median over 34 attributes, on 754
# images of 50 people it never saw), so units read on folds of the training images are short for
# the photos people bring. ``unseen_scale`` measures the factor on an unseen set; only
# attributes with at least UNSEEN_MIN faces with and without it there count.
UNSEEN_MIN = 30


def unseen_scale(diffs: torch.Tensor, latents: torch.Tensor, labels: np.ndarray,
                 quantile: float, min_count: int = UNSEEN_MIN) -> tuple[float, dict[int, float]]:
    """(factor, {attribute index: ratio}): for each direction (rows of ``diffs``, already
    scaled to their held-out gap), the gap between the median face without the attribute
    and the ``quantile`` face with it on ``latents`` (faces the model never trained on),
    over the direction's length; the factor is the median ratio (1.0 when none counts).
    A median over attributes, not each attribute's own ratio: on a few dozen people one
    attribute's gap is mostly those people."""
    ratios = {}
    for a in range(diffs.shape[0]):
        step = float(diffs[a].norm())
        has = labels[:, a] > 0
        if step <= 0 or has.sum() < min_count or (~has).sum() < min_count:
            continue
        position = (latents @ (diffs[a] / step)).numpy()
        gap = float(np.quantile(position[has], quantile) - np.median(position[~has]))
        ratios[a] = gap / step
    return (float(np.median(list(ratios.values()))) if ratios else 1.0), ratios


def build_directions(model: Glow, model_dir: str | Path, images_uint8: torch.Tensor,
                     attr_names: list[str], attrs: np.ndarray, method: str = "mean",
                     shrinkage: float = 0.5, rank: int = 256, quantile: float = 0.9,
                     latents: torch.Tensor | None = None,
                     unseen: tuple[torch.Tensor, np.ndarray] | None = None,
                     shrink: bool = True) -> Directions:
    """Encode labelled faces (unless ``latents`` are given) and fit one direction per
    attribute, under friendly names.

    ``mean``: the difference of the mean latents with and without (OpenAI's Glow demo).
    ``shrunk``: the mean difference with each level shrunk by its signal share
    (``shrunk_mean_differences``), scaled so 1.0 moves a face by the held-out gap between
    the median face without the attribute and the ``quantile`` face with it
    (``heldout_gaps``): a clear, typical edit in the labels' own terms.
    ``lda``: Fisher's discriminant with ``shrinkage`` towards the identity, over a rank-
    ``rank`` + isotropic covariance (``LatentCovariance``), rescaled by ``calibrate``.
    ``conditional``: the difference among faces alike in the confounders and in face
    colour and brightness (``conditional_differences``), with ``shrink`` each level shrunk
    by its James-Stein factor (``shrunk_conditional_differences``), calibrated like
    ``shrunk``.
    ``unseen``: (latents, labels) of faces the model never trained on; the held-out-gap
    units are lengthened by ``unseen_scale`` measured on them.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; one of {METHODS}")
    latents = encode_all(model, images_uint8) if latents is None else latents
    positions = None  # held-out positions along each direction, where the method has them
    colour_held = None  # the conditional fit with colour held for COLOUR_ON_THE_SKIN too
    if method == "mean":
        diffs = mean_differences(latents, attrs)
        unit = "1.0 = the whole mean difference between CelebA faces with and without"
        how = "mean standardised latent of faces with the attribute minus without"
    elif method == "shrunk":
        levels = level_slices(model)
        diffs, level_weights = shrunk_mean_differences(latents, attrs, levels)
        positions, fold = heldout_positions(
            latents, attrs, lambda z, y: shrunk_mean_differences(z, y, levels)[0])
        gaps = gaps_from_positions(positions, fold, attrs, quantile)
        diffs, unit = _scaled_to_gaps(diffs, gaps, quantile)
        how = ("mean difference, each latent level shrunk by its James-Stein signal share, "
               "calibrated on held-out folds")
    elif method == "conditional":
        colour = None if images_uint8 is None else face_colour(images_uint8)

        levels = level_slices(model)

        def fit(z: torch.Tensor, y: np.ndarray, rows: np.ndarray | None = None, *,
                colour_free: tuple[str, ...] = COLOUR_IS_THE_POINT + COLOUR_ON_THE_SKIN
                ) -> torch.Tensor:
            c = colour if colour is None or rows is None else colour[rows]
            if shrink:
                return shrunk_conditional_differences(z, y, attr_names, levels, c,
                                                      colour_free)[0]
            return conditional_differences(z, y, attr_names, c, colour_free)

        if shrink:
            diffs, level_weights = shrunk_conditional_differences(latents, attrs, attr_names,
                                                                  levels, colour)
        else:
            diffs = fit(latents, attrs)
        if colour is not None:
            colour_held = fit(latents, attrs, colour_free=COLOUR_IS_THE_POINT)
        positions, fold = heldout_positions(latents, attrs, fit, pass_index=True)
        gaps = gaps_from_positions(positions, fold, attrs, quantile)
        diffs, unit = _scaled_to_gaps(diffs, gaps, quantile)
        how = ("difference with and without the attribute among faces alike in "
               + ", ".join(CONFOUNDERS)
               + (" and face colour and brightness" if colour is not None else "")
               + " (least squares on the labels)"
               + (", each latent level shrunk by its James-Stein factor" if shrink else "")
               + ", calibrated on held-out folds")
    else:
        covariance = LatentCovariance.fit(latents, rank)
        diffs = lda_directions(latents, attrs, covariance, shrinkage)
        unit = ("1.0 = the gap between the median face without and the median face with "
                "the attribute, measured along the direction")
        how = (f"Fisher discriminant, covariance rank {rank} + isotropic, shrunk "
               f"{shrinkage:g} towards its average variance")
    scale, ratios = 1.0, {}
    if unseen is not None and positions is not None:
        scale, ratios = unseen_scale(diffs, unseen[0], unseen[1], quantile)
        diffs = diffs * scale
        unit += (f"; lengthened x{scale:.3f}, the median ratio of that gap on faces the model "
                 f"never trained on to the same gap on the training folds")
    by_celeba = {name: i for i, name in enumerate(attr_names)}
    vectors, counts, ranges = {}, {}, {}
    for friendly, (celeba, sign, _) in {**MAIN_ATTRIBUTES, **OTHER_ATTRIBUTES}.items():
        i = by_celeba[celeba]
        vectors[friendly] = (sign * diffs[i]).float()
        has = attrs[:, i] * sign > 0
        counts[friendly] = int(has.sum())
        step = float(vectors[friendly].norm())
        if positions is not None and step > 0 and 0 < has.sum() < len(has):
            ranges[friendly] = edit_range(sign * positions[:, i], has, step)
    for hidden, friendly in HELD_ONLY.items():
        # not a slider: the slider's direction fitted with the face's colour held, at the
        # slider's length (what ``editor.HELD_IN_PIXELS`` takes out of other steps)
        celeba, sign, _ = {**MAIN_ATTRIBUTES, **OTHER_ATTRIBUTES}[friendly]
        vectors[hidden] = vectors[friendly].clone()
        if colour_held is not None and colour_held[by_celeba[celeba]].any():
            held = sign * colour_held[by_celeba[celeba]].float()
            vectors[hidden] = held * (vectors[friendly].norm() / held.norm())
    meta = {
        "model_digest": weights_digest(model_dir),
        "method": how,
        "fit": method,
        "strength_unit": unit,
        "n_images": int(len(latents)),
        "positives": counts,
        "norms": {k: round(float(v.norm()), 3) for k, v in vectors.items()},
    }
    if ratios:
        meta["unseen_calibration"] = {
            "scale": round(scale, 4), "n_images": int(len(unseen[0])),
            "ratios": {attr_names[a]: round(r, 3) for a, r in sorted(ratios.items())}}
    if ranges:
        meta["ranges"] = ranges
        meta["range_rule"] = (f"edits are linear up to where strength 1.0 takes the median "
                              f"face without the attribute, then stop softly at the "
                              f"{RANGE_QUANTILE:.1%} of held-out faces' positions (at least "
                              f"{RANGE_MARGIN:g} x the step further): see edit_range")
    if method == "lda":
        meta["shrinkage"], meta["rank"] = shrinkage, rank
    if method == "conditional":
        meta["quantile"] = quantile
        meta["held_fixed"] = {friendly: held_fixed(celeba, attr_names) for friendly, (celeba, _, _)
                              in {**MAIN_ATTRIBUTES, **OTHER_ATTRIBUTES}.items()}
    if method == "shrunk" or (method == "conditional" and shrink):
        meta["quantile"] = quantile
        meta["level_weights"] = {
            friendly: [round(float(w), 3) for w in level_weights[by_celeba[celeba]]]
            for friendly, (celeba, _, _) in {**MAIN_ATTRIBUTES, **OTHER_ATTRIBUTES}.items()}
    return Directions(vectors, meta)

