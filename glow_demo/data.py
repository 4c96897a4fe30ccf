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
DEFAULT_CELEBA_TEST = DEFAULT_CELEBA.with_name("celeba-test")
VALIDATION_SIZE = 1000  # the last 1,000 images (009001.jpg ... 010000.jpg), fixed
# Whole people of celeba-test kept out of training, to measure the model on strangers:
# every STRANGER_EVERY-th person id in sorted order (50 of the 950). Fixed once chosen.
STRANGER_EVERY = 19
MIN_COVERAGE = 0.8  # share of an aligned crop that must come from the photo, not its edges


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


def read_identities(root: str | Path) -> dict[str, int]:
    """``file -> person id`` from a CelebA ``identity.txt``."""
    pairs = (line.split() for line in (Path(root) / "identity.txt").read_text().splitlines())
    return {p[0]: int(p[1]) for p in pairs if len(p) == 2}


def _jpeg(image: Image.Image) -> np.ndarray:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=95)
    return np.frombuffer(buf.getvalue(), dtype=np.uint8)


def _write_pack(out: str | Path, blobs: list[np.ndarray], files: list[str],
                attr_names: list[str], attrs: np.ndarray, resolution: int) -> Path:
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, jpeg=np.concatenate(blobs), offsets=offsets, files=np.asarray(files),
             attr_names=np.asarray(attr_names), attrs=attrs, resolution=np.int64(resolution))
    return out


def pack_celeba(root: str | Path, out: str | Path, resolution: int = 64,
                limit: int | None = None) -> Path:
    """Crop the labelled CelebA images (the first ``limit``) and write the pack."""
    labels = read_celeba_labels(root)
    if limit:
        labels = CelebaLabels(labels.files[:limit], labels.names, labels.values[:limit])
    blobs = []
    for name in labels.files:
        with Image.open(Path(root) / "images" / name) as im:
            blobs.append(_jpeg(celeba_crop(im, resolution)))
    return _write_pack(out, blobs, labels.files, labels.names, labels.values, resolution)


def _align_one(path: Path, resolution: int) -> np.ndarray | None:
    """The 64 px model input of the photo's face by our own aligner; None when no face is
    found or when less than MIN_COVERAGE of the crop comes from the photo (a face box cut
    so tight that the crop would be mostly repeated edge pixels)."""
    import cv2

    from .align import align_face
    from .photo import PhotoError

    try:
        face = align_face(path)
    except PhotoError:
        return None
    width, height = face.photo_size
    inside = cv2.warpAffine(np.ones((height, width), np.float32), face.matrix,
                            (face.size, face.size))
    if inside.mean() < MIN_COVERAGE:
        return None
    return _jpeg(face.model_input(resolution))


def pack_celeba_test(root: str | Path, train_out: str | Path, strangers_out: str | Path,
                     resolution: int = 64, limit: int | None = None,
                     workers: int = 2) -> tuple[Path, Path, int]:
    """Align CelebA's test-split face boxes with our own aligner (as a user's photo is)
    and write two packs: the faces of 900 people for training and those of the 50
    fixed "strangers" (every STRANGER_EVERY-th person) for measuring. Returns both paths
    and the number of images dropped (no face found, or a crop mostly beyond the photo)."""
    from concurrent.futures import ProcessPoolExecutor

    root = Path(root)
    labels = read_celeba_labels(root)
    if limit:
        labels = CelebaLabels(labels.files[:limit], labels.names, labels.values[:limit])
    people = read_identities(root)
    ids = sorted(set(people.values()))
    strangers = set(ids[::STRANGER_EVERY])
    paths = [root / "images" / name for name in labels.files]
    with ProcessPoolExecutor(workers) as pool:
        blobs = list(pool.map(_align_one, paths, [resolution] * len(paths), chunksize=64))
    kept: dict[bool, list[int]] = {True: [], False: []}
    for i, blob in enumerate(blobs):
        if blob is not None:
            kept[people[labels.files[i]] in strangers].append(i)
    written = []
    for is_stranger, out in ((False, train_out), (True, strangers_out)):
        index = kept[is_stranger]
        written.append(_write_pack(out, [blobs[i] for i in index],
                                   [labels.files[i] for i in index], labels.names,
                                   labels.values[index], resolution))
    return written[0], written[1], sum(b is None for b in blobs)


def combine_packs(celeba: str | Path, extra: str | Path, out: str | Path) -> Path:
    """One training pack: CelebA's training images, then ``extra``'s, then CelebA's fixed
    validation split *last*, where ``FacePack.split`` finds it, so validation figures
    stay comparable with every earlier model."""
    parts = []
    for path in (celeba, extra):
        with np.load(path, allow_pickle=False) as data:
            parts.append({k: data[k] for k in data.files})
    a, b = parts
    if list(a["attr_names"]) != list(b["attr_names"]) or a["resolution"] != b["resolution"]:
        raise ValueError(f"{celeba} and {extra} hold different labels or resolutions")

    def blobs(part: dict) -> list[np.ndarray]:
        jpeg, offsets = part["jpeg"], part["offsets"]
        return [jpeg[s:e] for s, e in zip(offsets[:-1], offsets[1:], strict=True)]

    a_blobs, b_blobs = blobs(a), blobs(b)
    n_train = len(a_blobs) - validation_count(len(a_blobs))
    order = [(a, a_blobs, slice(0, n_train)), (b, b_blobs, slice(None)),
             (a, a_blobs, slice(n_train, None))]
    return _write_pack(
        out,
        [blob for _, bl, sl in order for blob in bl[sl]],
        [str(f) for part, _, sl in order for f in part["files"][sl]],
        [str(n) for n in a["attr_names"]],
        np.concatenate([part["attrs"][sl] for part, _, sl in order]),
        int(a["resolution"]),
    )


@dataclass
class FacePack:
    images: torch.Tensor  # (N, 3, R, R) uint8
    files: list[str]
    attr_names: list[str]
    attrs: np.ndarray  # (N, 40) of +1 / -1

    def split(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(train, validation) images: the validation split is always the last 1,000."""
        n_val = validation_count(len(self.images))
        return self.images[:-n_val], self.images[-n_val:]


def validation_count(n_images: int) -> int:
    """How many images at the end of a CelebA pack are the validation split (1,000 of
    the full 10,000; a tenth of a small test pack)."""
    return min(VALIDATION_SIZE, n_images // 10)


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
