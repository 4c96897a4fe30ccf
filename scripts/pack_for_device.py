"""Shrink a training pack to fit the device machine's 64 MiB carry limit.

`data/faces64.npz` (25,297 faces as JPEG quality 95) is 77 MB, and the whole working
tree that travels to a lent GPU may be 64 MiB with the shipped weights in it. Two ways:

* WebP (default): at quality 90 it stores the same 64 x 64 crops in about half the bytes
  (measured on 300 faces: 1.5 KB against 2.9 KB, RMS change 2.8 of 255 levels, a quarter
  of the pixels moving to a neighbouring 5-bit bin), so every training face goes, but
  slightly changed: continue on the exact pack afterwards to undo what it taught.
* ``--exact BYTES``: a random subset of the training faces, byte for byte, as many as fit
  in BYTES (13,347 of 24,297 in 43.5 MB). No re-encoding to undo; fewer faces, so watch
  validation for over-fitting (two GPU runs on it, 1.5 M images, did not show any).

The validation split at the end is always copied byte for byte, so validation figures on
the device are the same figures as here.

    python scripts/pack_for_device.py data/faces64.npz data/device64.npz [--quality 90]
    python scripts/pack_for_device.py data/faces64.npz data/device_exact.npz \
        --exact $((67108864 - $(git ls-files -z | xargs -0 du -bc | tail -1 | cut -f1) - 600000))
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from glow_demo.data import validation_count  # noqa: E402


def webp_blob(blob: bytes, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(blob)).convert("RGB").save(buf, format="WEBP", quality=quality, method=6)
    return buf.getvalue()


def exact_subset(sizes: np.ndarray, n_train: int, budget: int, seed: int = 5) -> np.ndarray:
    """Indices of a random subset of the training images (in pack order) followed by the
    whole validation split, whose per-image ``sizes`` sum to at most ``budget``."""
    order = np.random.default_rng(seed).permutation(n_train)
    room = budget - int(sizes[n_train:].sum())
    if room <= 0:
        raise SystemExit(f"{budget} bytes do not even hold the validation split")
    keep = order[: int(np.searchsorted(np.cumsum(sizes[order]), room, side="right"))]
    return np.concatenate([np.sort(keep), np.arange(n_train, len(sizes))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--exact", type=int, metavar="BYTES",
                        help="keep a random subset of the training faces unchanged, to fit BYTES")
    args = parser.parse_args()
    with np.load(args.src, allow_pickle=False) as pack:
        data = {key: pack[key] for key in pack.files}
    blobs, offsets = data["jpeg"], data["offsets"]
    n = len(offsets) - 1
    n_val = validation_count(n)
    n_train = n - n_val
    if args.exact:
        # per image: its JPEG, its file name and its labels (the npz's own overhead aside)
        per_image = np.diff(offsets) + data["files"].itemsize + data["attrs"].shape[1]
        index = exact_subset(per_image, n_train, args.exact - 20_000)
        for key in ("files", "attrs"):
            data[key] = data[key][index]
        out = [blobs[offsets[i] : offsets[i + 1]] for i in index]
        if validation_count(len(index)) != n_val:
            raise SystemExit(f"a subset of {len(index)} images would move the validation split "
                             f"(its last {n_val}): --exact needs a pack of 11,000 or more")
        done = f"{len(index) - n_val} of {n_train} training faces kept byte for byte"
    else:
        out = [blobs[offsets[i] : offsets[i + 1]].tobytes() for i in range(n)]
        out = [np.frombuffer(webp_blob(b, args.quality) if i < n_train else b, dtype=np.uint8)
               for i, b in enumerate(out)]
        done = f"{n_train} re-encoded as WebP q{args.quality}"
    data["jpeg"] = np.concatenate(out)  # the key keeps its name; PIL reads either format
    data["offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in out])]).astype(np.int64)
    np.savez(args.dst, **data)
    size = Path(args.dst).stat().st_size
    print(f"{args.dst}: {len(out)} images ({done}, {n_val} validation kept), {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
