"""Training data: CelebA faces cropped to the model's input, labels, and a compact pack.

The dataset lives outside the project (``../shared/data``) and is never committed.
Training reads a *pack*: every 64 x 64 crop JPEG-encoded (quality 95) into one
``.npz`` of plain arrays (no pickles), about 30 MB for 10,000 faces, so it can be
carried to a GPU machine and decoded into memory in a couple of seconds.

The crop is CelebA's usual one (the central 148 x 148 square of the 178 x 218
original: 74 x 74 in the half-size copy we have). ``align.py`` fits its landmark
template *from these crops*, so a user's aligned photo lines up with them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

DEFAULT_CELEBA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "celeba"
VALIDATION_SIZE = 1000  # the last 1,000 images (009001.jpg ... 010000.jpg), fixed


def celeba_crop(image: Image.Image, resolution: int = 64) -> Image.Image:
    """The central square of an aligned CelebA image (148/178 of its width), resized."""
    w, h = image.size
    side = w * 148 / 178
    left, top = (w - side) / 2, (h - side) / 2
    box = (left, top, left + side, top + side)
    return image.convert("RGB").resize((resolution, resolution), Image.LANCZOS, box=box)


@dataclass
class CelebaLabels:
    files: list[str]
    names: list[str]
    values: np.ndarray  # (N, 40) of +1 / -1


def read_celeba_labels(root: str | Path = DEFAULT_CELEBA) -> CelebaLabels:
    lines = (Path(root) / "list_attr_celeba.txt").read_text().splitlines()
    names = lines[1].split()
    files, rows = [], []
    for line in lines[2:]:
        parts = line.split()
        if parts:
            files.append(parts[0])
            rows.append([int(v) for v in parts[1:]])
    return CelebaLabels(files, names, np.asarray(rows, dtype=np.int8))


def pack_celeba(root: str | Path, out: str | Path, resolution: int = 64,
                limit: int | None = None) -> Path:
    """Crop the labelled CelebA images (the first ``limit``) and write the pack."""
    labels = read_celeba_labels(root)
    if limit:
        labels = CelebaLabels(labels.files[:limit], labels.names, labels.values[:limit])
    blobs = []
    for name in labels.files:
        with Image.open(Path(root) / "images" / name) as im:
            buf = io.BytesIO()
            celeba_crop(im, resolution).save(buf, format="JPEG", quality=95)
            blobs.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        jpeg=np.concatenate(blobs),
        offsets=offsets,
        files=np.asarray(labels.files),
        attr_names=np.asarray(labels.names),
        attrs=labels.values,
        resolution=np.int64(resolution),
    )
    return out


@dataclass
class FacePack:
    images: torch.Tensor  # (N, 3, R, R) uint8
    files: list[str]
    attr_names: list[str]
    attrs: np.ndarray  # (N, 40) of +1 / -1

    def split(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(train, validation) images: the validation split is always the last 1,000."""
        n_val = min(VALIDATION_SIZE, len(self.images) // 10)
        return self.images[:-n_val], self.images[-n_val:]


def load_pack(path: str | Path) -> FacePack:
    with np.load(path, allow_pickle=False) as data:
        jpeg, offsets = data["jpeg"], data["offsets"]
        images = np.stack(
            [
                np.asarray(Image.open(io.BytesIO(jpeg[a:b].tobytes())).convert("RGB"))
                for a, b in zip(offsets[:-1], offsets[1:], strict=True)
            ]
        )
        return FacePack(
            images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
            files=[str(f) for f in data["files"]],
            attr_names=[str(n) for n in data["attr_names"]],
            attrs=data["attrs"],
        )


def to_unit(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float in [0, 1], the model's input convention."""
    return images_uint8.float() / 255.0
