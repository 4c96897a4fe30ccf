"""Compose the example group photo from the public-domain portraits in assets/faces.

    python scripts/make_group_photo.py [--out assets/faces/group/four_portraits.jpg]

No group photo we may use could be found offline, so this one is made from the two
public-domain portraits (each as it is and mirrored, two of them resized): four people
side by side, close enough that their aligned crops overlap, as in a real group photo.
Being made only of public-domain photos, it is public domain too (see SOURCES.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageOps

FACES = Path(__file__).resolve().parents[1] / "assets" / "faces"
OUT = FACES / "group" / "four_portraits.jpg"


def compose_group() -> Image.Image:
    """Four people, 1200 x 520: astronaut, Hopper mirrored and smaller, astronaut mirrored
    and smaller, Hopper."""
    a = Image.open(FACES / "astronaut.png").convert("RGB")
    h = Image.open(FACES / "grace_hopper.jpg").convert("RGB")
    canvas = Image.new("RGB", (1200, 520), (200, 200, 200))
    canvas.paste(a.crop((100, 0, 400, 400)), (0, 60))
    canvas.paste(ImageOps.mirror(h).crop((100, 50, 420, 470)).resize((260, 340)), (290, 120))
    canvas.paste(ImageOps.mirror(a).crop((112, 0, 412, 400)).resize((270, 360)), (540, 100))
    canvas.paste(h.crop((100, 50, 420, 470)), (820, 60))
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(OUT))
    out = Path(parser.parse_args().out)
    out.parent.mkdir(parents=True, exist_ok=True)
    compose_group().save(out, quality=92, optimize=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
