"""Attribute directions in the model's standardised latent space.

OpenAI's Glow demo took, for each CelebA yes/no label, the difference of the mean
latents of faces with and without it (``--method mean``). The default here
(``conditional``) is that difference among faces alike in the labels that travel with it
(gender, age, makeup, ...) and in the face's colour and skin brightness, a least-squares
fit on the labels (``conditional_differences``). A fit on ~24,000 faces in 12,288
dimensions is still largely sampling noise, spread over every dimension and so mostly on
the fine levels, so each latent level is scaled by its James-Stein factor
(``shrink_levels``). Edits add ``strength * direction`` to a face's latent (sliders
moved together count what their directions share once: ``combine_moves``); **strength
1.0 moves a face by the held-out gap between the median face without the attribute and
the 95th-percentile face with it**, lengthened for faces the model never trained on
(``unseen_scale``), and each face stops where held-out faces stop (``edit_range``).
Slider ranges are kept within about +-1.5, where decoded faces stay faces.

A direction can be *disentangled* from others (in the spirit of InterFaceGAN's
conditional boundaries): its components along the chosen directions are projected
out, e.g. age without gender, so moving it changes those attributes less.

One direction is learned from *real ages* instead of a yes/no label: ``age_years``
(``build_age_direction``). CelebA's ``age`` comes from its ``Young`` label, and CelebA is
mostly young adults; UTKFace gives each face its age in years. On a balanced set of
UTKFace adults (18-80, stratified by decade and gender) the standardised latent is
fitted by least squares as ``latent ~ a + b * age + gender + race (+ face colour)``, with
gender, UTKFace's race label and (``hold_colour``) the face's colour and skin brightness
held fixed: older UTKFace faces are far more often labelled White, and redder, so
without those the slope would also lighten the skin and paint red patches. Its length:
**strength 1.0 = +30 years**, -1.0 = 30 years younger, either as the mean latent change
of 30 years (``30 * b``, units "slope") or, longer and closer to what a face shows, as the
step over which held-out adults' real ages rise 30 years (units "heldout", see
``build_age_direction``).
UTKFace's crop is tighter than the model's: aligned, it fills only the middle ~45 % of
the model input and the rest is edge-replicated fill, so the direction is kept only over
the covered part (``latent_mask``); otherwise it would repaint the hair and background
of edited faces. Its levels are shrunk like the others'.
It is stored beside the CelebA directions (``add_direction``), in the same files.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .data import to_unit
from .model import Glow, WeightsError
from .skin import skin_brightness
from .utkface import (
    AGE_BINS,
    DEFAULT_UTKFACE,
    AlignedUtk,
    UtkFace,
    age_bin,
    align_utkface,
    chip_coverage,
    chip_transform,
    read_utkface,
    select_utkface,
    warp_chips,
)

DIRECTIONS_FILE = "directions.safetensors"
DIRECTIONS_META = "directions.json"

# friendly name -> (CelebA attribute, sign, label). Sign -1 flips a "not X" label
# into the attribute people ask for (Young -> age, No_Beard -> beard).
MAIN_ATTRIBUTES: dict[str, tuple[str, int, str]] = {
    "smile": ("Smiling", 1, "Smile"),
    "age": ("Young", -1, "Age (CelebA 'Young' label)"),
    "blond_hair": ("Blond_Hair", 1, "Blond hair"),
    "black_hair": ("Black_Hair", 1, "Black hair"),
    "brown_hair": ("Brown_Hair", 1, "Brown hair"),
    "gray_hair": ("Gray_Hair", 1, "Gray hair"),
    "bald": ("Bald", 1, "Bald"),
    "bangs": ("Bangs", 1, "Bangs"),
    "glasses": ("Eyeglasses", 1, "Glasses"),
    "beard": ("No_Beard", -1, "Beard"),
    "male": ("Male", 1, "Male (female at -)"),
    "makeup": ("Heavy_Makeup", 1, "Makeup"),
}
OTHER_ATTRIBUTES: dict[str, tuple[str, int, str]] = {
    "wavy_hair": ("Wavy_Hair", 1, "Wavy hair"),
    "straight_hair": ("Straight_Hair", 1, "Straight hair"),
    "mustache": ("Mustache", 1, "Mustache"),
    "goatee": ("Goatee", 1, "Goatee"),
    "sideburns": ("Sideburns", 1, "Sideburns"),
    "five_o_clock_shadow": ("5_o_Clock_Shadow", 1, "5 o'clock shadow"),
    "mouth_open": ("Mouth_Slightly_Open", 1, "Mouth open"),
    "lipstick": ("Wearing_Lipstick", 1, "Lipstick"),
    "pale_skin": ("Pale_Skin", 1, "Pale skin"),
    "rosy_cheeks": ("Rosy_Cheeks", 1, "Rosy cheeks"),
    "high_cheekbones": ("High_Cheekbones", 1, "High cheekbones"),
    "chubby": ("Chubby", 1, "Chubby"),
    "double_chin": ("Double_Chin", 1, "Double chin"),
    "oval_face": ("Oval_Face", 1, "Oval face"),
    "big_nose": ("Big_Nose", 1, "Big nose"),
    "pointy_nose": ("Pointy_Nose", 1, "Pointy nose"),
    "big_lips": ("Big_Lips", 1, "Big lips"),
    "narrow_eyes": ("Narrow_Eyes", 1, "Narrow eyes"),
    "bags_under_eyes": ("Bags_Under_Eyes", 1, "Bags under eyes"),
    "arched_eyebrows": ("Arched_Eyebrows", 1, "Arched eyebrows"),
    "bushy_eyebrows": ("Bushy_Eyebrows", 1, "Bushy eyebrows"),
    "receding_hairline": ("Receding_Hairline", 1, "Receding hairline"),
    "attractive": ("Attractive", 1, "Attractive (CelebA label)"),
    "blurry": ("Blurry", 1, "Blurry"),
    "earrings": ("Wearing_Earrings", 1, "Earrings"),
    "hat": ("Wearing_Hat", 1, "Hat"),
    "necklace": ("Wearing_Necklace", 1, "Necklace"),
    "necktie": ("Wearing_Necktie", 1, "Necktie"),
}
# Directions not built from a CelebA label: name -> label.
EXTRA_ATTRIBUTES: dict[str, str] = {
    "age_years": "Age (+30 years, UTKFace)",
}
# The headline sliders, in order. The age slider is the UTKFace one: measured against
# CelebA's `age`, it adds as much age per unit with a third of the gender change and
# without repainting hair and background (see README); `age` stays among the rest.
MAIN_ORDER: tuple[str, ...] = tuple(n if n != "age" else "age_years" for n in MAIN_ATTRIBUTES)
SLIDER_RANGE = (-1.5, 1.5)
# sliders with a range of their own: age_years' 1.0 is already +30 years, and at +45 the
# edit meter found the person kept in too few faces
SLIDER_RANGES: dict[str, tuple[float, float]] = {"age_years": (-1.0, 1.0)}


@dataclass(frozen=True)
class Attribute:
    name: str
    label: str
    main: bool
    low: float = SLIDER_RANGE[0]
    high: float = SLIDER_RANGE[1]


def weights_digest(model_dir: str | Path) -> str:
    """A short hash of the model weights, so directions are never used with another model."""
    from .model import WEIGHTS_FILE

    return hashlib.sha256((Path(model_dir) / WEIGHTS_FILE).read_bytes()).hexdigest()[:16]


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


def _soften(target: float, start: float, knee: float, ceiling: float) -> float:
    """Where a face at ``start`` moving up to ``target`` ends: ``target`` up to the knee
    (or the start, if it is past the knee), then smoothly towards ``ceiling``, never past
    it; a face already at or past the ceiling stays where it is."""
    knee = max(knee, start)
    if target <= knee:
        return target
    if ceiling <= knee:
        return knee
    return knee + (ceiling - knee) * math.tanh((target - knee) / (ceiling - knee))


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
                            attr_names: list[str], colour: np.ndarray | None = None
                            ) -> torch.Tensor:
    """(A, D): for each attribute, its coefficient in the least-squares fit
    ``latent ~ a + b * attribute + sum_k c_k * confounder_k`` (0/1 labels): the
    difference with and without it among faces alike in the confounders. With no
    confounders it is the plain mean difference.

    ``colour`` ((N, k), e.g. ``face_colour``) is held fixed too, except for the labels in
    ``COLOUR_IS_THE_POINT``.

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
        if name not in COLOUR_IS_THE_POINT:
            cols += extra
        sub = gram[np.ix_(cols, cols)]
        if np.linalg.matrix_rank(sub) < len(cols):
            continue  # an attribute no face has (or every face has): no direction
        coef = torch.linalg.solve(torch.from_numpy(sub), cross[cols])  # (p, D)
        out[a] = coef[1]
    return out.float()


def shrunk_conditional_differences(latents: torch.Tensor, labels: np.ndarray,
                                   attr_names: list[str], levels: list[slice],
                                   colour: np.ndarray | None = None
                                   ) -> tuple[torch.Tensor, np.ndarray]:
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
                                    None if colour is None else colour[h]) for h in halves]
    noise = (fits[0] - fits[1]) / 2
    diffs = conditional_differences(latents, labels, attr_names, colour)
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


SOFT_STEP = 0.1  # latent length below which a slider's move holds its projection loosely


def combine_moves(moves: list[torch.Tensor]) -> torch.Tensor:
    """Several sliders' moves (each strength * direction) as one move that counts what
    they share once.

    Directions overlap (age and gray hair: cosine 0.23; aging greys hair), so their plain
    sum moves a face along each slider's direction by its own step *plus* what the others
    carry along it in the same sense: age and gray hair together grey the hair more than
    gray hair alone. Here, along each slider's direction the face moves by the larger of
    the two, not their sum, and by the least change to the sum that does so (the
    least-norm correction meeting every slider's projection; a slider moved much less
    than ``SOFT_STEP`` holds its projection only loosely, so the move is continuous as any
    strength goes to 0). Where the others pull the other way, or carry nothing, the sum
    is kept, so a single slider, orthogonal ones and a slider at 0 are the plain sum.
    Measured on 204 held-out photos (model v12): smile, age and gray hair at +1 together
    kept the person in 92 % of faces against 74 % summed (+30 years to the meter against
    +34), at 1.5 in 53 % against 34 %.
    """
    stacked = torch.stack(moves)
    total = stacked.sum(0)
    steps = stacked.double().norm(dim=1)
    kept = steps > 0
    if int(kept.sum()) < 2:
        return total
    steps = steps[kept]
    units = (stacked[kept].double() / steps[:, None]).T  # (D, k)
    carried = units.T @ total.double() - steps  # what the others carry along each one
    correction = -torch.minimum(steps, carried.clamp(min=0))
    if not correction.any():
        return total
    # each slider's projection is held by a constraint whose give, (SOFT_STEP / step)^2,
    # vanishes for a full step and grows without bound as the slider nears 0, so a slider
    # barely moved neither pins the others' correction nor jumps when it leaves
    gram = units.T @ units + torch.diag((SOFT_STEP / steps) ** 2)
    return (total.double() + units @ torch.linalg.solve(gram, correction)).to(total.dtype)


class Directions:
    """Named attribute directions; ``vector(strengths)`` is the latent offset of an edit."""

    def __init__(self, vectors: dict[str, torch.Tensor], meta: dict):
        self.vectors = vectors
        self.meta = meta
        main = [n for n in MAIN_ORDER if n in vectors]
        rest = sorted(n for n in vectors if n not in MAIN_ORDER)
        labels = {**{k: v[2] for k, v in MAIN_ATTRIBUTES.items()},
                  **{k: v[2] for k, v in OTHER_ATTRIBUTES.items()}, **EXTRA_ATTRIBUTES}
        self.attributes = [Attribute(n, labels.get(n, n), n in MAIN_ORDER,
                                     *SLIDER_RANGES.get(n, SLIDER_RANGE))
                           for n in main + rest]

    def direction(self, name: str, disentangle_from: tuple[str, ...] = (),
                  own: dict[str, torch.Tensor] | None = None, negative: bool = False
                  ) -> torch.Tensor:
        """One direction, with its components along ``disentangle_from`` removed;
        ``own``: a face's own versions of some directions (``FaceEditor.own_directions``),
        under the name for positive strengths and under "-name" for ``negative`` ones."""
        if name not in self.vectors:
            known = ", ".join(a.name for a in self.attributes)
            raise KeyError(f"unknown attribute {name!r}; known: {known}")
        d = (own or {}).get(f"-{name}" if negative else name, self.vectors[name])
        others = [self.vectors[o] for o in disentangle_from if o != name]
        if not others:
            return d
        basis = torch.stack(others, 1).double()  # (D, k)
        coef = torch.linalg.lstsq(basis, d.double()[:, None]).solution
        return (d.double() - (basis @ coef)[:, 0]).float()

    def vector(self, strengths: dict[str, float],
               disentangle: dict[str, tuple[str, ...]] | None = None,
               own: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The latent move of these strengths: each slider's strength * direction
        (``own``: see ``direction``), combined by ``combine_moves``."""
        disentangle = disentangle or {}
        moves = [float(strength) * self.direction(name, tuple(disentangle.get(name, ())), own,
                                                  negative=strength < 0)
                 for name, strength in strengths.items() if strength]
        if not moves:
            return torch.zeros_like(next(iter(self.vectors.values())))
        return combine_moves(moves)

    def strengths_for(self, latent: torch.Tensor, strengths: dict[str, float]
                      ) -> dict[str, float]:
        """The strengths that move the face with standardised ``latent`` (D,) as
        ``strengths`` would, except that along each direction with a range
        (``meta["ranges"]``, see ``edit_range``) the face stops softly at the ceiling:
        the same where the edit stays within what held-out faces show."""
        ranges = self.meta.get("ranges", {})
        out = {}
        for name, strength in strengths.items():
            strength = float(strength)
            if not strength or name not in ranges or name not in self.vectors:
                out[name] = strength
                continue
            d = self.vectors[name].double()
            step = float(d.norm())
            start = float(latent.double().cpu() @ d) / step
            low, low_knee, high_knee, high = ranges[name]
            target = start + strength * step
            if strength > 0:
                end = _soften(target, start, high_knee, high)
            else:
                end = -_soften(-target, -start, -low_knee, -low)
            out[name] = (end - start) / step
        return out

    def without_ranges(self) -> Directions:
        """The same directions as plain linear steps (no edit ranges), for comparing."""
        return Directions(self.vectors, {k: v for k, v in self.meta.items() if k != "ranges"})

    def offset(self, latent: torch.Tensor, strengths: dict[str, float],
               disentangle: dict[str, tuple[str, ...]] | None = None,
               own: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The latent offset of an edit of this face: ``vector`` of ``strengths_for``
        (whose ranges are those of the shared directions, ``own`` or not)."""
        return self.vector(self.strengths_for(latent, strengths), disentangle, own)

    def add_direction(self, name: str, vector: torch.Tensor, info: dict) -> Directions:
        """A copy with one more (or a replaced) direction; ``info`` goes to meta[name].

        ``info["model_digest"]``, when given, must match the others': directions of two
        models never share a file.
        """
        digest = info.get("model_digest")
        if digest is not None and digest != self.meta.get("model_digest"):
            raise WeightsError(f"direction {name!r} was computed for another model (digest "
                               f"{digest} != {self.meta.get('model_digest')})")
        reference = next(iter(self.vectors.values()), None)
        if reference is not None and vector.shape != reference.shape:
            raise ValueError(f"direction {name!r} has shape {tuple(vector.shape)}, the others "
                             f"{tuple(reference.shape)}")
        vectors = {**self.vectors, name: vector.detach().float().cpu().contiguous()}
        info = dict(info)
        ranges = {k: v for k, v in self.meta.get("ranges", {}).items() if k != name}
        if info.get("range") is not None:  # a replaced direction's old range is dropped
            ranges[name] = info.pop("range")
        meta = {**self.meta, name: info, "ranges": ranges,
                "norms": {**self.meta.get("norms", {}), name: round(float(vector.norm()), 3)}}
        return Directions(vectors, meta)

    def save(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        save_file({k: v.contiguous() for k, v in self.vectors.items()},
                  str(directory / DIRECTIONS_FILE))
        (directory / DIRECTIONS_META).write_text(json.dumps(self.meta, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> Directions:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        path, meta_path = directory / DIRECTIONS_FILE, directory / DIRECTIONS_META
        for p in (path, meta_path):
            if not p.is_file():
                raise WeightsError(f"directions file not found: {p} "
                                   "(rebuild with `python -m glow_demo directions`)")
        try:
            vectors = {k: v.float() for k, v in load_file(str(path)).items()}
            meta = json.loads(meta_path.read_text())
        except (SafetensorError, OSError, ValueError) as err:
            raise WeightsError(f"directions file {path} is corrupt or unreadable: {err}") from None
        digest = weights_digest(directory)
        if meta.get("model_digest") != digest:
            raise WeightsError(f"{path} was computed for another model (digest "
                               f"{meta.get('model_digest')} != {digest}); rebuild it with "
                               "`python -m glow_demo directions`")
        return cls(vectors, meta)


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

        def fit(z: torch.Tensor, y: np.ndarray, rows: np.ndarray | None = None
                ) -> torch.Tensor:
            c = colour if colour is None or rows is None else colour[rows]
            if shrink:
                return shrunk_conditional_differences(z, y, attr_names, levels, c)[0]
            return conditional_differences(z, y, attr_names, c)

        if shrink:
            diffs, level_weights = shrunk_conditional_differences(latents, attrs, attr_names,
                                                                  levels, colour)
        else:
            diffs = fit(latents, attrs)
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


# ----- an age direction from UTKFace's real ages (read and aligned by utkface.py) -------

AGE_UNITS = ("slope", "heldout")


def _aligned_utk(model: Glow, faces: list[UtkFace], matrix: np.ndarray | None,
                 progress: bool) -> AlignedUtk:
    """``faces`` as the model sees them: warped with one fitted chip transform
    (``matrix``, ~100x faster) or, without one, aligned by dlib one by one."""
    res = model.config.resolution
    if matrix is not None:
        return AlignedUtk(warp_chips(faces, matrix, res), faces, Counter(),
                          chip_coverage(matrix, res))
    return align_utkface(faces, res, progress)

AGE_YEARS = "age_years"
YEARS_PER_STRENGTH = 30.0  # strength 1.0 of ``age_years`` = +30 years (its slider: +-1)
# the age direction's edit range (``edit_range``): held-out adults under YOUNG_BELOW are
# the faces without age, from OLD_FROM the faces with it
YOUNG_BELOW, OLD_FROM = 30, 60
# the age direction is kept where more than 50 % (fully from 90 %) of the UTKFace crops
# have real pixels, not edge fill (see build_age_direction)
COVERAGE_RAMP = (0.5, 0.9)


def latent_mask(model: Glow, pixel_weights: np.ndarray) -> torch.Tensor:
    """(D,) weights for a flat latent from (R, R) weights over the image.

    Every level's latent is a (C, h, w) grid over the image (Glow's squeezes trade space
    for channels), so an entry gets the mean pixel weight of the block it sits over.
    """
    weights = torch.from_numpy(np.asarray(pixel_weights, dtype=np.float32))[None, None]
    parts = [torch.nn.functional.adaptive_avg_pool2d(weights, shape[1:])[0]
             .expand(*shape) for shape in model.latent_shapes]
    return model.flatten([p[None] for p in parts])[0]


def age_design(faces: list[UtkFace], covariates: tuple[str, ...] = ("gender", "race")
               ) -> np.ndarray:
    """The regression's design matrix: [1, age, covariates...]; race as 0/1 columns
    (White is the baseline), columns with no variation dropped."""
    ages = np.array([f.age for f in faces], dtype=np.float64)
    columns = [np.ones_like(ages), ages]
    if "gender" in covariates:
        columns.append(np.array([f.gender for f in faces], dtype=np.float64))
    if "race" in covariates:
        races = np.array([f.race for f in faces])
        columns += [(races == r).astype(np.float64) for r in range(1, 5)
                    if 0 < (races == r).sum() < len(races)]
    return np.column_stack(columns)


def age_slope(latents: torch.Tensor, design: np.ndarray) -> torch.Tensor:
    """Least-squares coefficient of column 1 (age) in latents ~ design: latent per year."""
    x = torch.from_numpy(design)
    solution = torch.linalg.lstsq(x, latents.double()).solution  # (p, D)
    return solution[1].float()


def build_age_direction(model: Glow, model_dir: str | Path,
                        root: str | Path = DEFAULT_UTKFACE, n: int = 2000, seed: int = 0,
                        bins: tuple[tuple[int, int], ...] = AGE_BINS,
                        covariates: tuple[str, ...] = ("gender", "race"),
                        coverage_ramp: tuple[float, float] | None = COVERAGE_RAMP,
                        progress: bool = True, warp: bool = False, units: str = "slope",
                        n_heldout: int = 100_000, hold_colour: bool = True,
                        shrink: bool = True) -> tuple[torch.Tensor, dict]:
    """The ``age_years`` direction and its meta: ``YEARS_PER_STRENGTH`` x the slope of the
    standardised latent on age, from ``n`` balanced UTKFace training-split adults.

    UTKFace's crop covers only the middle of the model's input (about 45 %: the face
    below the hairline); the rest is edge-replicated fill whose colours vary with age
    too, and a plain slope would repaint that area (hair, background) of edited faces.
    So latent entries are kept only over the part the crops cover: weight 0 where at most
    ``coverage_ramp[0]`` of the crops have real pixels, 1 from ``coverage_ramp[1]``, linear
    between (``None``: no mask). ``warp`` aligns the chips with one fitted transform
    instead of dlib on each, so many more faces are affordable. The meta also holds a
    split-half estimate of the sampling noise in the vector's norm (half the norm of the
    difference of the directions fitted on two halves), to judge whether ``n`` is enough.

    ``shrink``: scale each latent level by its James-Stein factor (``shrink_levels``), the
    noise per level from the same split halves. With 6,000 faces the noise is about half
    the slope's norm, most of it on the two finest levels (a fixed speckle the edit would
    add to every face); shrunk, the direction's position predicts held-out adults' ages
    better (correlation 0.593 against 0.556 with model v5), so the
    +30-year step is shorter (norm 9.6 against 10.8) and carries less that is not age.

    ``units``: "slope" makes 1.0 the mean latent change of 30 years (what the average
    face moves by in 30 years along the fitted direction). That is a small step: wrinkles,
    sagging and grey hair sit in different places on each face, so they average away and
    the mean change is mostly shading; faces moved by it look about 5 years older.
    "heldout" instead reads the units from UTKFace's *held-out* adults: how far along the
    direction a face must sit for the regression of real age on its position there (with
    gender and race) to say +30 years, i.e. 30 / b in ``age ~ a + b * position + ...``.
    The position also carries everything else that varies along the direction, so this
    is a longer step (1 / corr^2 times the slope's, for a correlation corr), fitted to the
    data's labels, not to any age estimator. ``n_heldout`` caps the held-out faces
    (balanced like the rest; all 1,830 by default). ``hold_colour`` adds the face's
    colour and skin brightness (``face_colour``) to the covariates: UTKFace's older faces
    are redder, and without it aging paints red patches.
    """
    if units not in AGE_UNITS:
        raise ValueError(f"unknown age units {units!r}; one of {AGE_UNITS}")
    everyone = read_utkface(root)
    faces = select_utkface(everyone, n, split="train", bins=bins, seed=seed)
    # one transform for every chip (utkface.chip_transform), fitted once for both splits
    matrix = chip_transform(everyone, resolution=model.config.resolution) if warp else None
    aligned = _aligned_utk(model, faces, matrix, progress)
    kept = aligned.faces
    if len(kept) < 10:
        raise ValueError(f"only {len(kept)} UTKFace faces could be aligned; need at least 10")
    latents = encode_all(model, aligned.images)
    design = age_design(kept, covariates)
    if hold_colour:
        design = np.column_stack([design, face_colour(aligned.images)])
    raw = YEARS_PER_STRENGTH * age_slope(latents, design)
    if coverage_ramp is None:
        mask = torch.ones_like(raw)
    else:
        lo, hi = coverage_ramp
        mask = latent_mask(model, np.clip((aligned.coverage - lo) / (hi - lo), 0, 1))
    direction = raw * mask
    # sampling noise of the slope: half the difference of the slopes of two halves
    halves = [np.arange(len(kept))[i::2] for i in (0, 1)]
    slopes = [age_slope(latents[h], design[h]) for h in halves]
    noise = YEARS_PER_STRENGTH * (slopes[0] - slopes[1]) * mask / 2
    levels = level_slices(model)
    level_weights = np.ones(len(levels))
    if shrink:
        shrunk, weights = shrink_levels(
            direction, [float(noise[sl].double().pow(2).sum()) for sl in levels], levels)
        if weights.any():  # all noise (a handful of faces): left as fitted
            direction, level_weights = shrunk, weights
            noise = scale_levels(noise, weights, levels)
    calibration = {}
    if units == "heldout":
        held = select_utkface(everyone, n_heldout, split="val", bins=bins)
        held_aligned = _aligned_utk(model, held, matrix, progress)
        unit = direction / direction.norm()
        position = (encode_all(model, held_aligned.images) @ unit).double().numpy()
        design_held = age_design(held_aligned.faces, covariates)
        if hold_colour:
            design_held = np.column_stack([design_held, face_colour(held_aligned.images)])
        ages_held = design_held[:, 1].copy()
        design_held[:, 1] = position
        b = float(np.linalg.lstsq(design_held, ages_held, rcond=None)[0][1])
        if b <= 0:
            raise ValueError("held-out ages do not rise along the age direction")
        scale = YEARS_PER_STRENGTH / b / float(direction.norm())
        direction = direction * scale
        calibration = {
            # where held-out adults sit along it: the old (60+) have it, the young lack it
            "range": edit_range(position, ages_held >= OLD_FROM, YEARS_PER_STRENGTH / b,
                                lacks=ages_held < YOUNG_BELOW),
            "n_heldout": len(held_aligned.faces),
            "heldout_correlation": round(float(np.corrcoef(position, ages_held)[0, 1]), 3),
            "years_per_unit_position": round(b, 3),
            "scale_over_slope": round(scale, 3),
        }
    noise_norm = float(noise.norm()) * calibration.get("scale_over_slope", 1.0)
    ages = np.array([f.age for f in kept])
    count = Counter((age_bin(f.age, bins), f.gender) for f in kept)
    info = {
        "label": EXTRA_ATTRIBUTES[AGE_YEARS],
        "model_digest": weights_digest(model_dir),
        "method": "least-squares slope of the standardised latent on age in years, "
                  "latent ~ a + b*age + " + " + ".join(covariates) + ", on UTKFace adults"
                  + ("" if coverage_ramp is None else
                     "; kept only over the part of the image the UTKFace crops cover")
                  + ("; each latent level shrunk by its James-Stein factor" if shrink else ""),
        "strength_unit": (f"1.0 = +{YEARS_PER_STRENGTH:g} years (the per-year slope x "
                          f"{YEARS_PER_STRENGTH:g}); -1.0 = {YEARS_PER_STRENGTH:g} years younger"
                          if units == "slope" else
                          f"1.0 = the step along the direction over which held-out UTKFace "
                          f"adults' real ages rise by {YEARS_PER_STRENGTH:g} years (regression "
                          f"of age on the position along it); -1.0 the same step back"),
        "units": units,
        **calibration,
        "years_per_strength": YEARS_PER_STRENGTH,
        "covariates": list(covariates) + (["face colour and brightness"] if hold_colour else []),
        "source": "UTKFace (Zhang, Song, Qi, CVPR 2017), training split: 9 in 10 files by "
                  "a hash of the name",
        "n_selected": len(faces),
        "n_images": len(kept),
        "n_skipped": len(faces) - len(kept),
        "skipped": dict(aligned.skipped),
        "ages": [int(bins[0][0]), int(bins[-1][1])],
        "age_bins": [list(b) for b in bins],
        "age_mean": round(float(ages.mean()), 2),
        "age_sd": round(float(ages.std()), 2),
        "n_per_bin": {f"{lo}-{hi}": {"male": count[(i, 0)], "female": count[(i, 1)]}
                      for i, (lo, hi) in enumerate(bins)},
        "seed": seed,
        "alignment": "one transform for all chips" if warp else "align_face on each chip",
        "coverage_ramp": None if coverage_ramp is None else list(coverage_ramp),
        "image_covered": round(float((aligned.coverage >= 0.5).mean()), 3),
        "latent_kept": round(float(mask.mean()), 3),
        "norm": round(float(direction.norm()), 3),
        "norm_unmasked": round(float(raw.norm()), 3),
        "noise_norm_estimate": round(noise_norm, 3),
        "level_weights": [round(float(w), 3) for w in level_weights],
    }
    return direction, info
