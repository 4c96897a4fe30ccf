"""UTKFace (Zhang, Song, Qi, CVPR 2017): faces with their real ages, read and aligned.

Its files are named ``age_gender_race_date.jpg.chip.jpg``; the labels come from the
name. Both the ``age_years`` direction (``age_direction.py``) and the edit meter's age
regressor (``meter.py``) learn from it, so reading, a fixed held-out split, a balanced
selection and alignment to the model's input live here, once.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

DEFAULT_UTKFACE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "utkface"
AGE_BINS: tuple[tuple[int, int], ...] = ((18, 29), (30, 39), (40, 49), (50, 59), (60, 69),
                                         (70, 80))
UTK_VALIDATION_EVERY = 10  # 1 in 10 UTKFace files (by a hash of the name) is held out
CHIP_FIT_FACES = 40  # faces aligned by dlib to fit the one chip transform
_UTK_NAME = re.compile(r"^(\d+)_([01])_([0-4])_\d+\.jpg\.chip\.jpg$")


@dataclass(frozen=True)
class UtkFace:
    """One UTKFace image and its labels (parsed from the file name)."""

    path: Path
    age: int
    gender: int  # 0 male, 1 female
    race: int  # 0 White, 1 Black, 2 Asian, 3 Indian, 4 Others

    @property
    def split(self) -> str:
        """"val" for a fixed 1 in 10 of the files (a hash of the name), else "train"."""
        h = int(hashlib.sha1(self.path.name.encode()).hexdigest()[:8], 16)
        return "val" if h % UTK_VALIDATION_EVERY == 0 else "train"


def read_utkface(root: str | Path = DEFAULT_UTKFACE) -> list[UtkFace]:
    """Every labelled image under ``root/images``, sorted by name (badly named ones skipped)."""
    images = Path(root) / "images"
    if not images.is_dir():
        raise FileNotFoundError(f"UTKFace images not found: {images}")
    out = []
    for path in sorted(images.iterdir()):
        m = _UTK_NAME.match(path.name)
        if m:
            out.append(UtkFace(path, int(m[1]), int(m[2]), int(m[3])))
    return out


def age_bin(age: int, bins: tuple[tuple[int, int], ...]) -> int | None:
    for i, (lo, hi) in enumerate(bins):
        if lo <= age <= hi:
            return i
    return None


def select_utkface(faces: list[UtkFace], n: int, split: str | None = "train",
                   bins: tuple[tuple[int, int], ...] = AGE_BINS, seed: int = 0
                   ) -> list[UtkFace]:
    """A deterministic subset of ``n`` faces, balanced over age bin x gender.

    Each (bin, gender) cell gets an equal share; a cell with too few faces gives all it
    has and the rest is shared among the others. ``split`` ("train", "val" or None for
    both) keeps the held-out faces out of a direction. Returned in a fixed order.
    """
    cells: dict[tuple[int, int], list[UtkFace]] = {}
    for face in faces:
        b = age_bin(face.age, bins)
        if b is not None and (split is None or face.split == split):
            cells.setdefault((b, face.gender), []).append(face)
    rng = np.random.default_rng(seed)
    for key in sorted(cells):
        order = rng.permutation(len(cells[key]))
        cells[key] = [cells[key][i] for i in order]
    quota = {key: 0 for key in cells}
    left = min(n, sum(len(v) for v in cells.values()))
    while left:  # water-filling: equal shares, capped by what a cell has
        open_cells = [k for k in sorted(cells) if quota[k] < len(cells[k])]
        share = max(1, left // len(open_cells))
        for key in open_cells:
            take = min(share, len(cells[key]) - quota[key], left)
            quota[key] += take
            left -= take
            if not left:
                break
    chosen = [f for key in sorted(cells) for f in cells[key][:quota[key]]]
    return sorted(chosen, key=lambda f: f.path.name)


@dataclass
class AlignedUtk:
    """UTKFace faces aligned like the training crops, as the model sees them."""

    images: torch.Tensor  # (K, 3, R, R) uint8
    faces: list[UtkFace]  # the K kept, in order
    skipped: Counter  # PhotoError class name -> count (mostly: no face found)
    coverage: np.ndarray  # (R, R): fraction of the K crops with real pixels there


def _real_pixels(aligned, resolution: int) -> np.ndarray:
    """(R, R) bool: where the model input comes from the photo, not the edge fill."""
    centres = (np.arange(resolution) + 0.5) * aligned.size / resolution - 0.5
    xs, ys = np.meshgrid(centres, centres)
    to_photo = cv2.invertAffineTransform(aligned.matrix)  # crop pixel -> photo pixel
    src = np.stack([xs.ravel(), ys.ravel()], 1) @ to_photo[:, :2].T + to_photo[:, 2]
    width, height = aligned.photo_size
    inside = ((src[:, 0] >= -0.5) & (src[:, 0] <= width - 0.5) & (src[:, 1] >= -0.5)
              & (src[:, 1] <= height - 0.5))
    return inside.reshape(resolution, resolution)


def align_utkface(faces: list[UtkFace], resolution: int = 64, progress: bool = True
                  ) -> AlignedUtk:
    """Align each face with ``align_face`` and take ``model_input``; faces where none is
    found are skipped and counted. UTKFace's crop is tighter than the model's, so the
    outside is edge-replicated fill: ``coverage`` says where it is not."""
    from .align import align_face
    from .photo import PhotoError

    images, kept, skipped = [], [], Counter()
    coverage = np.zeros((resolution, resolution))
    for face in tqdm(faces, desc="aligning", unit="face", disable=not progress):
        try:
            aligned = align_face(face.path)
        except PhotoError as err:
            skipped[type(err).__name__] += 1
            continue
        crop = aligned.model_input(resolution)
        images.append(torch.from_numpy(np.array(crop)).permute(2, 0, 1))
        coverage += _real_pixels(aligned, resolution)
        kept.append(face)
    stacked = (torch.stack(images).contiguous() if images
               else torch.zeros(0, 3, resolution, resolution, dtype=torch.uint8))
    return AlignedUtk(stacked, kept, skipped, coverage / max(1, len(kept)))


# ----- one transform for all chips ------------------------------------------------------

def chip_transform(faces: list[UtkFace], n: int = CHIP_FIT_FACES, resolution: int = 64,
                   seed: int = 0) -> np.ndarray:
    """(2, 3): UTKFace chip pixel -> model-input pixel, the mean of the transforms
    ``align_face`` finds for ``n`` random faces. UTKFace's chips are aligned by their
    authors already, so one transform fits them all to within a few pixels, and warping
    with it costs nothing next to running dlib on every chip (~0.1-0.7 s each)."""
    from .align import align_face
    from .photo import PhotoError

    rng = np.random.default_rng(seed)
    mats = []
    for i in sorted(rng.choice(len(faces), min(n, len(faces)), replace=False)):
        face = faces[i]
        try:
            aligned = align_face(face.path)
        except PhotoError:
            continue
        m = aligned.matrix.copy()  # photo -> crop pixel at crop size S
        s = aligned.size
        m[:, :2] *= resolution / s
        m[:, 2] = (m[:, 2] + 0.5) * resolution / s - 0.5
        mats.append(m)
    if not mats:
        raise ValueError("no UTKFace chip could be aligned")
    return np.mean(mats, 0)


def warp_chips(faces: list[UtkFace], matrix: np.ndarray, resolution: int = 64
               ) -> torch.Tensor:
    """Every chip warped into the model input's layout with one transform
    (``chip_transform``), (N, 3, R, R) uint8; outside the chip, edge-replicated fill."""
    out = np.empty((len(faces), resolution, resolution, 3), np.uint8)
    upscaled = matrix * 4  # warp at 4x, then area-average down: no aliasing
    upscaled[:, 2] = (matrix[:, 2] + 0.5) * 4 - 0.5
    for i, face in enumerate(faces):
        chip = np.asarray(Image.open(face.path).convert("RGB"))
        big = cv2.warpAffine(chip, upscaled, (4 * resolution, 4 * resolution),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[i] = cv2.resize(big, (resolution, resolution), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def chip_coverage(matrix: np.ndarray, resolution: int = 64, chip_size: int = 200
                  ) -> np.ndarray:
    """(R, R) 0/1: where a chip warped by ``matrix`` has real pixels, not edge fill."""
    centres = np.arange(resolution, dtype=np.float64)
    xs, ys = np.meshgrid(centres, centres)
    inv = cv2.invertAffineTransform(matrix)
    src = np.stack([xs.ravel(), ys.ravel()], 1) @ inv[:, :2].T + inv[:, 2]
    inside = ((src >= -0.5) & (src <= chip_size - 0.5)).all(1)
    return inside.reshape(resolution, resolution).astype(np.float64)
