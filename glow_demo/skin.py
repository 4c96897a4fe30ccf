"""Skin keeps its own colour through edits that are not about colour.

Issue 10's red patches had two causes. Faces already far along a direction were pushed
past anything the model knows (the edit ranges in ``directions`` stop that). The other is
the model itself: the age step (+30 years) changes the coarsest latent level, and for
some ordinary faces the decode answers with red, blue or green patches on the cheeks, a
response that grows faster than the step (measured on 44 held-out CelebA photos, the
meter's ``cheek_redness`` over ``RED_PATCH``: age 0.6 22 %, 0.8 34 %, 1.0 37 %; smile,
age and gray hair at 1.0 together 66 %). What people see as aging, the wrinkles, shading
and thinner face, is a change of *brightness*; the patches are a change of *colour*.

So for an edit that is not about skin colour, the change the model makes to the face's
skin keeps its brightness in full and at most ``SKIN_TOLERANCE`` of colour per pixel
(``limit_skin_colour``): a colour change of more is scaled down to that length, its hue
kept. Hair, background, eyes, brows and mouth (lips turning to teeth in a smile) are
left alone (``skin_mask``), and edits whose point is the skin's colour (makeup, lipstick,
rosy cheeks, pale skin: ``SKIN_COLOUR_EDITS``) or a person's own sliders, whose point
nobody knows, are not limited at all (``limits_skin_colour``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

import cv2
import numpy as np
import torch

from .align import load_template

SKIN_TOLERANCE = 4 / 255  # largest colour change per skin pixel, as a length in RGB (0..1)
# edits whose point is the skin's colour: never limited
SKIN_COLOUR_EDITS = frozenset({"makeup", "lipstick", "rosy_cheeks", "pale_skin"})
# Rec. 601 luma: the brightness part of a change
LUMA = (0.299, 0.587, 0.114)


@lru_cache(maxsize=4)
def skin_mask(resolution: int) -> torch.Tensor:
    """(1, R, R) weights in 0..1: the skin of an aligned face at the model's resolution,
    from the template's landmarks (every aligned face has its landmarks there): inside
    the jaw and brows, with the eyes, brows and mouth (each grown by a little) cut out,
    edges softened over about a pixel."""
    scale = 8  # drawn at 8x, then area-averaged: sub-pixel edges
    size = resolution * scale
    points = load_template().landmarks * size
    mask = np.zeros((size, size), np.float32)
    cv2.fillConvexPoly(mask, cv2.convexHull(points[:27].astype(np.int32)), 1.0)
    for part, grow in ((slice(36, 42), 1.6), (slice(42, 48), 1.6), (slice(48, 60), 1.3),
                       (slice(17, 22), 1.5), (slice(22, 27), 1.5)):
        region = points[part]
        centre = region.mean(0)
        hull = cv2.convexHull((centre + grow * (region - centre)).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 0.0)
    mask = cv2.resize(mask, (resolution, resolution), interpolation=cv2.INTER_AREA)
    mask = cv2.GaussianBlur(mask, (0, 0), 0.7)
    return torch.from_numpy(mask)[None]


def skin_brightness(images: torch.Tensor) -> torch.Tensor:
    """(...,) the mean brightness (Rec. 601 luma) of the skin of aligned faces (..., 3, R,
    R), in their own units, over ``skin_mask`` (eyes, brows, mouth, hair and background
    left out): what the directions hold fixed and the meter's ``skin_lighter`` reads."""
    weights = skin_mask(images.shape[-1]).to(torch.float64).to(images.device)[0]
    luma = torch.tensor(LUMA, dtype=torch.float64, device=images.device).view(3, 1, 1)
    return ((images.double() * luma).sum(-3) * weights).sum((-2, -1)) / weights.sum()


def limits_skin_colour(strengths: Mapping[str, float], built_in: Iterable[str]) -> bool:
    """Whether an edit's skin colour change is limited: every slider it moves is a
    built-in one (``built_in``: the editor's own direction names) and none of them is
    about the skin's colour."""
    built_in = set(built_in)
    moved = [name for name, s in strengths.items() if s]
    return bool(moved) and all(n in built_in and n not in SKIN_COLOUR_EDITS for n in moved)


def limit_skin_colour(before: torch.Tensor, after: torch.Tensor,
                      tolerance: float = SKIN_TOLERANCE) -> torch.Tensor:
    """``after`` (3, R, R) or (B, 3, R, R), in 0..1, with its change from ``before`` kept
    in brightness and, on the skin, at most ``tolerance`` in colour per pixel."""
    change = after - before
    luma = torch.tensor(LUMA, dtype=change.dtype, device=change.device).view(3, 1, 1)
    light = (change * luma).sum(-3, keepdim=True)
    colour = change - light
    length = colour.norm(dim=-3, keepdim=True)
    limited = colour * (tolerance / length.clamp(min=tolerance))
    mask = skin_mask(after.shape[-1]).to(change.dtype).to(change.device)
    return (before + light + mask * limited + (1 - mask) * colour).clamp(0, 1)
