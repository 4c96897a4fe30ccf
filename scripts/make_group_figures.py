"""The README's pictures for group photos and sliders of your own.

    PYTHONPATH=. python scripts/make_group_figures.py [--out assets] [--celeba DIR]

group_smile.png: the composed public-domain group photo (scripts/make_group_photo.py),
as it is and with every face smiling (smile 1.0, faces="all").

custom_slider.png: a "smile" slider learned from only 3 smiling and 3 not-smiling CelebA
validation faces (labels from list_attr_celeba.txt; the first 3 of each from 009001 on
where a face is found), applied at -1, 0 and +1 to the public-domain faces. The CelebA
examples are only read, never written: the picture shows edits of public-domain faces.
Printed: the slider's reliability estimate and its cosine with the shipped smile
direction (learned from 9,000 labelled faces).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from glow_demo.custom_directions import learn_direction, with_custom
from glow_demo.data import DEFAULT_CELEBA
from glow_demo.editor import FaceEditor
from glow_demo.group import edit_group, prepare_group, strengths_for
from glow_demo.photo import PhotoError

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT / "assets" / "faces"
GROUP = FACES / "group" / "four_portraits.jpg"


def group_figure(editor: FaceEditor) -> Image.Image:
    group = prepare_group(editor, GROUP)
    result = edit_group(editor, group, strengths_for(group, "all", {"smile": 1.0}))
    before = Image.fromarray(group.photo)
    out = Image.new("RGB", (before.width, 2 * before.height + 4), "white")
    out.paste(before, (0, 0))
    out.paste(result.photo, (0, before.height + 4))
    return out


def celeba_examples(editor: FaceEditor, root: Path, attribute: str, n: int = 3,
                    start: int = 9001):
    """The first n faces (from image ``start``) with and n without a CelebA label."""
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    column = lines[1].split().index(attribute) + 1
    sides: dict[int, list] = {1: [], -1: []}
    for line in lines[2:]:
        fields = line.split()
        if int(fields[0][:6]) < start or len(sides[int(fields[column])]) >= n:
            continue
        try:
            sides[int(fields[column])].append(editor.prepare(root / "images" / fields[0]))
        except PhotoError:
            continue
        if all(len(v) >= n for v in sides.values()):
            break
    return sides[1], sides[-1]


def custom_figure(editor: FaceEditor, celeba: Path, size: int = 160) -> tuple[Image.Image,
                                                                              object]:
    with_, without = celeba_examples(editor, celeba, "Smiling")
    learned = learn_direction(editor, "my_smile", with_, without, label="My smile")
    directions = with_custom(editor.directions, [learned])
    rows = []
    for path in (FACES / "astronaut.png", FACES / "grace_hopper.jpg"):
        face = editor.prepare(path)
        row = []
        for s in (-1.0, 0.0, 1.0):
            result = editor.edit(face, {"my_smile": s}, directions=directions)
            row.append((result.crop.resize((size, size), Image.LANCZOS), s, result.applied))
        rows.append(row)
    out = Image.new("RGB", (3 * (size + 2), 18 + len(rows) * (size + 2)), "white")
    draw = ImageDraw.Draw(out)
    for j, s in enumerate((-1.0, 0.0, 1.0)):
        draw.text((j * (size + 2) + 4, 3), f"my smile {s:+g}", fill="black")
    for i, row in enumerate(rows):
        for j, (image, _, applied) in enumerate(row):
            out.paste(image, (j * (size + 2), 18 + i * (size + 2)))
            if applied < 1:
                draw.text((j * (size + 2) + 4, 18 + i * (size + 2) + size - 14),
                          f"scaled to {applied:.0%}", fill="white")
    return out, learned


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="assets")
    parser.add_argument("--celeba", default=str(DEFAULT_CELEBA))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    editor = FaceEditor.load()
    group_figure(editor).save(out / "group_smile.jpg", quality=90)
    figure, learned = custom_figure(editor, Path(args.celeba))
    figure.save(out / "custom_slider.png")
    shipped = editor.directions.vectors["smile"]
    cosine = float(learned.vector @ shipped / (learned.vector.norm() * shipped.norm()))
    print(f"wrote {out / 'group_smile.jpg'} and {out / 'custom_slider.png'}")
    print(f"my_smile: {learned.advice} Cosine with the shipped smile direction: "
          f"{cosine:.2f}; norm {float(learned.vector.norm()):.1f} (shipped "
          f"{float(shipped.norm()):.1f})")


if __name__ == "__main__":
    main()
