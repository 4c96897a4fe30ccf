"""Shrink a training pack to fit the device machine's 64 MiB carry limit.

`data/faces64.npz` (25,297 faces as JPEG quality 95) is 77 MB, and the whole working
tree that travels to a lent GPU may be 64 MiB with the shipped weights in it. WebP at
quality 90 stores the same 64 x 64 crops in about half the bytes (measured on 300
faces: 1.5 KB against 2.9 KB, RMS change 2.8 of 255 levels, a quarter of the pixels
moving to a neighbouring 5-bit bin), so the training part is re-encoded that way. The
validation split at the end is copied byte for byte, so validation figures on the
device are the same figures as here. Continue on the exact pack afterwards to undo what
the re-encoding taught (a CPU session's decay run does that).

    python scripts/pack_for_device.py data/faces64.npz data/device64.npz [--quality 90]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--quality", type=int, default=90)
    args = parser.parse_args()
    with np.load(args.src, allow_pickle=False) as pack:
        data = {key: pack[key] for key in pack.files}
    blobs, offsets = data["jpeg"], data["offsets"]
    n = len(offsets) - 1
    n_train = n - validation_count(n)
    out = []
    for i in range(n):
        blob = blobs[offsets[i] : offsets[i + 1]].tobytes()
        if i < n_train:
            buf = io.BytesIO()
            Image.open(io.BytesIO(blob)).convert("RGB").save(
                buf, format="WEBP", quality=args.quality, method=6)
            blob = buf.getvalue()
        out.append(np.frombuffer(blob, dtype=np.uint8))
    data["jpeg"] = np.concatenate(out)  # the key keeps its name; PIL reads either format
    data["offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in out])]).astype(np.int64)
    np.savez(args.dst, **data)
    size = Path(args.dst).stat().st_size
    print(f"{args.dst}: {n} images ({n_train} re-encoded as WebP q{args.quality}, "
          f"{n - n_train} kept), {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
