"""Conversions between PIL images, numpy arrays and the model's tensors, and grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

# File suffixes read as photos wherever a folder of images is listed (CLI, app examples).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})


def photo_paths(paths: list[str | Path]) -> list[Path]:
    """Expand folders into the image files they hold (sorted); keep files as given."""
    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            out += sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(path)
    return out


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """(3, H, W) float in [0, 1] -> 8-bit RGB PIL image."""
    array = (image.detach().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(array)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (3, H, W) float in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def make_grid(images: torch.Tensor, nrow: int = 4, pad: int = 2) -> Image.Image:
    """(N, 3, H, W) in [0, 1] -> one PIL image, nrow per row, white gaps."""
    n, _, h, w = images.shape
    rows = (n + nrow - 1) // nrow
    grid = torch.ones(3, rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for i, img in enumerate(images.detach().cpu()):
        r, c = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[:, top : top + h, left : left + w] = img
    return tensor_to_pil(grid)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 4) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    make_grid(images, nrow).save(path)
    return path
