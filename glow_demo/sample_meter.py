"""Do random faces read as faces? A detector's verdict on the model's samples.

``python -m glow_demo sample-meter`` draws 64 faces at each temperature and counts those
in which dlib's HOG frontal-face detector finds a face, beside the same count for 64
real validation crops: a figure that follows what a person sees in the sample grid
(bits/dim does not: a model can score well and still draw mush). Each 64 px image is
upscaled bicubically to 256 px first, since HOG needs faces of about 80 px or more.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

UPSCALE = 256
TEMPERATURES = (0.5, 0.7)
N_SAMPLES = 64
SEED = 1234


def _detector():
    import dlib

    return dlib.get_frontal_face_detector()


def faces_found(images: torch.Tensor) -> np.ndarray:
    """(N, 3, R, R) images in [0, 1] -> (N,) bool: a face found in each, upscaled."""
    detect = _detector()
    pixels = (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    found = []
    for array in pixels:
        big = Image.fromarray(array).resize((UPSCALE, UPSCALE), Image.BICUBIC)
        found.append(len(detect(np.asarray(big), 0)) > 0)
    return np.asarray(found)


def measure(model, temperatures: tuple[float, ...] = TEMPERATURES, n: int = N_SAMPLES,
            seed: int = SEED, real: torch.Tensor | None = None) -> dict[str, tuple[int, int]]:
    """``{"T=0.7": (found, n), ..., "real": (found, n)}``; ``real`` are uint8 crops."""
    out = {}
    with torch.no_grad():
        for t in temperatures:
            found = faces_found(model.sample(n, temperature=t, seed=seed))
            out[f"T={t:g}"] = (int(found.sum()), n)
    if real is not None:
        found = faces_found(real[:n].float() / 255)
        out["real"] = (int(found.sum()), len(found))
    return out


def validation_crops(pack: str | Path | None, n: int = N_SAMPLES) -> torch.Tensor | None:
    """The first ``n`` of the fixed validation split of a pack, or None without one."""
    if pack is None or not Path(pack).is_file():
        return None
    from .data import load_pack

    _, val = load_pack(pack).split()
    return val[:n]
