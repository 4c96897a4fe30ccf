"""How often edits stay faces: the exploding-inverse guard measured on many photos.

    PYTHONPATH=. python scripts/measure_stability.py PHOTO_OR_DIR... [--limit N]
    PYTHONPATH=. python scripts/measure_stability.py --utkface 120   # balanced held-out faces

Over all photos: how typical they are (bits/dim), the smoothing the editor chose for
their edit bases, and, for both ends of every headline slider, how often the edit
decodes stably from the exact encoding and from the editor's base (where it does not,
the editor scales the edit back). Re-run it after retraining the model: the thresholds in
``glow_demo.editor`` (BASE_PEAK, SMOOTHING) were set from these figures.
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter

import torch

from glow_demo.editor import FaceEditor
from glow_demo.images import photo_paths
from glow_demo.model import STABLE_PEAK
from glow_demo.photo import PhotoError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="*", help="photos or folders of photos")
    parser.add_argument("--utkface", type=int, metavar="N",
                        help="also N held-out UTKFace faces, balanced over age and gender")
    parser.add_argument("--limit", type=int, help="at most this many photos from the list")
    parser.add_argument("--linear", action="store_true",
                        help="plain linear edits, without the directions' edit ranges")
    args = parser.parse_args()
    photos = photo_paths(args.photos)[: args.limit or None]
    if args.utkface:
        from glow_demo.utkface import read_utkface, select_utkface

        photos += [f.path for f in select_utkface(read_utkface(), args.utkface, split="val")]
    if not photos:
        parser.error("no photos given")

    editor = FaceEditor.load()
    directions = editor.directions
    if args.linear:
        directions = directions.without_ranges()
    ends = [(a.name, end) for a in editor.attributes if a.main for end in (a.low, a.high)]

    def offsets(latent: torch.Tensor) -> torch.Tensor:
        """Each slider end's offset for this face, as the editor computes it."""
        return torch.stack([directions.offset(latent, {n: e}) for n, e in ends])

    smoothing, failed, bpds = Counter(), 0, []
    stable_exact = stable_base = total = 0
    worst = Counter()
    for i, path in enumerate(photos):
        try:
            face = editor.prepare(path)
        except PhotoError as err:
            failed += 1
            print(f"{path.name}: {err}")
            continue
        _, exact = editor.model.decode_with_peak(face.latent + offsets(face.latent))
        # an ordinary face's base is its exact encoding: those decodes are the same ones
        base = (editor.model.decode_with_peak(face.base + offsets(face.base))[1]
                if face.smoothing else exact)
        smoothing[face.smoothing] += 1
        bpds.append(face.bits_per_dim)
        stable_exact += int((exact < STABLE_PEAK).sum())
        stable_base += int((base < STABLE_PEAK).sum())
        total += len(ends)
        for (name, end), peak in zip(ends, base.tolist(), strict=True):
            if peak >= STABLE_PEAK:
                worst[f"{name} {end:+g}"] += 1
        if (i + 1) % 20 == 0:
            print(f"{i + 1}/{len(photos)} photos")
    n = len(bpds)
    print(f"\n{n} faces ({failed} photos without a usable face); bits/dim median "
          f"{statistics.median(bpds):.2f}, max {max(bpds):.2f}")
    print("edit base smoothing (px at 64 px): " + ", ".join(
        f"{r:g}: {c} ({c / n:.0%})" for r, c in sorted(smoothing.items())))
    print(f"slider ends (+-{abs(ends[0][1]):g}) decoding stably: from the exact encoding "
          f"{stable_exact}/{total} ({stable_exact / total:.1%}), from the editor's base "
          f"{stable_base}/{total} ({stable_base / total:.1%}); the rest are scaled back")
    if worst:
        print("ends scaled back most often: " + ", ".join(
            f"{k} ({v})" for k, v in worst.most_common(6)))


if __name__ == "__main__":
    main()
