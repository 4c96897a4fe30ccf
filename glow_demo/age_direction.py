"""The ``age_years`` direction, learned from UTKFace's *real ages* (read and aligned by
``utkface``) instead of a yes/no label.

CelebA's ``age`` comes from its ``Young`` label, and CelebA is mostly young adults;
UTKFace gives each face its age in years. On a balanced set of UTKFace adults (18-80,
stratified by decade and gender) the standardised latent is fitted by least squares as
``latent ~ a + b * age + gender + race (+ face colour)``, with gender, UTKFace's race
label and (``hold_colour``) the face's colour and skin brightness held fixed: older
UTKFace faces are far more often labelled White, and redder, so without those the slope
would also lighten the skin and paint red patches. Its length: **strength 1.0 = +30
years**, -1.0 = 30 years younger, either as the mean latent change of 30 years
(``30 * b``, units "slope") or, longer and closer to what a face shows, as the step over
which held-out adults' real ages rise 30 years (units "heldout", see
``build_age_direction``).
UTKFace's crop is tighter than the model's: aligned, it fills only the middle ~45 % of
the model input and the rest is edge-replicated fill, so the direction is kept only over
the covered part (``latent_mask``); otherwise it would repaint the hair and background
of edited faces. Its levels are shrunk like the others'. It is stored beside the CelebA
directions (``Directions.add_direction``), in the same files.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from .direction_fitting import (
    edit_range,
    encode_all,
    face_colour,
    level_slices,
    scale_levels,
    shrink_levels,
)
from .directions import AGE_YEARS, EXTRA_ATTRIBUTES, weights_digest
from .model import Glow
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
