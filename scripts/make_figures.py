"""Rebuild the README's pictures from the shipped weights and the public-domain faces.

    python scripts/make_figures.py [--out assets]
    python scripts/make_figures.py --out runs/heldout --photos PHOTO... [--weights DIR]

The second form writes only edit_grid.png, one row per given photo and no samples: for
looking at held-out faces (e.g. CelebA validation photos) that must not be committed.

Writes samples.png (random faces at several temperatures) and edit_grid.png: one row
per public-domain photo (the edit pasted into its full-resolution aligned crop) and
per random face of the model's own (edited in latent space, at 64 x 64), one column
per attribute edit. Only images we may publish: public-domain photos and our samples.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from glow_demo.editor import FaceEditor
from glow_demo.images import make_grid, pil_to_tensor
from glow_demo.photo import PhotoError

FACES = sorted((Path(__file__).resolve().parents[1] / "assets" / "faces").glob("*.[jp][pn]g"))
# every edit at the end of its slider (1.5; age's ends are +-1.0 = +-30 years), so that it
# reads at thumbnail size
EDITS = [("original", {}), ("smile", {"smile": 1.5}), ("older +30 y", {"age_years": 1.0}),
         ("younger -30 y", {"age_years": -1.0}), ("blond", {"blond_hair": 1.5}),
         ("black hair", {"black_hair": 1.5}), ("brown hair", {"brown_hair": 1.5}),
         ("gray hair", {"gray_hair": 1.5}), ("glasses", {"glasses": 1.5}),
         ("beard", {"beard": 1.5}), ("smile + older + gray", {"smile": 1.5, "age_years": 1.0,
                                                               "gray_hair": 1.5})]


def edit_grid(editor: FaceEditor, size: int = 160, n_samples: int = 2,
              temperature: float = 0.5, seed: int = 1,
              photos: list[Path] | None = None, strength: float = 1.5) -> Image.Image:
    edits = [(label, {k: v / 1.5 * strength for k, v in edit.items()})
             for label, edit in EDITS]
    cells = []
    for path in FACES if photos is None else photos:
        try:
            face = editor.prepare(path)
        except PhotoError:
            if photos is None:
                raise
            continue  # a held-out photo the aligner rejects: skip its row
        for _, strengths in edits:
            crop = editor.edit(face, strengths).crop.resize((size, size), Image.LANCZOS)
            cells.append(pil_to_tensor(crop))
    gen = torch.Generator().manual_seed(seed)
    latents = torch.randn(n_samples, editor.model.latent_dim, generator=gen) * temperature
    for z in latents:
        for _, strengths in edits:
            image, _ = editor.edit_latent(z, strengths)
            cells.append(torch.nn.functional.interpolate(image[None], size=size,
                                                         mode="bicubic")[0].clamp(0, 1))
    grid = make_grid(torch.stack(cells), nrow=len(EDITS))
    header = Image.new("RGB", (grid.width, 18), "white")
    draw = ImageDraw.Draw(header)
    for i, (label, _) in enumerate(EDITS):
        draw.text((2 + i * (size + 2) + 4, 3), label, fill="black")
    out = Image.new("RGB", (grid.width, grid.height + 18), "white")
    out.paste(header, (0, 0))
    out.paste(grid, (0, 18))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="assets")
    parser.add_argument("--photos", nargs="+", type=Path,
                        help="rows of these photos instead (no samples; for looking only)")
    parser.add_argument("--weights", default=None, help="model folder (default: shipped)")
    parser.add_argument("--strength", type=float, default=1.5,
                        help="every edit at this strength (default: the sliders' end)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    editor = FaceEditor.load(args.weights) if args.weights else FaceEditor.load()
    if args.photos:
        edit_grid(editor, n_samples=0, photos=args.photos, strength=args.strength).save(
            out / "edit_grid.png")
        print(f"wrote {out / 'edit_grid.png'} ({len(args.photos)} photos)")
        return
    edit_grid(editor).save(out / "edit_grid.png")
    temps = [0.5, 0.6, 0.7, 0.8]
    samples = torch.cat([editor.model.sample(6, t, seed=0) for t in temps])
    make_grid(samples, nrow=6).save(out / "samples.png")
    print(f"wrote {out / 'edit_grid.png'} and {out / 'samples.png'} (rows: temperature {temps})")


if __name__ == "__main__":
    main()
