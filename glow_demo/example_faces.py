"""Example faces to pick from when learning a slider of your own.

A person teaching the editor a new slider needs at least three faces with the attribute
and three without. Few of us have such photos at hand, and we may ship only a handful of
public-domain portraits, so the gallery is mostly drawn by the model itself: random
samples at a fixed list of seeds and a low temperature (typical, clean faces). Model
samples are our own output, so no licence limits them, and they are made at run time
from whatever weights are loaded (about a second for two dozen at 64 px), so no image is
committed and a new model brings its own gallery.

A sample's edit base is the latent that drew it: decoding it *is* the face shown, in the
same latent space as the edit bases of prepared photos (``Face.base``), so the mean
difference of picked samples is a direction like any other. Seed ``s`` draws the same
face as ``FaceEditor.sample(1, SAMPLE_TEMPERATURE, seed=s)`` (the Random tab).

The public-domain portraits in ``assets/faces`` follow the samples; each is prepared
(aligned and encoded) only when first picked, so start-up stays fast.

Examples are numbered from 1, in gallery order, as everywhere the editor numbers things
for people (faces in a group photo too).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps

from .custom_directions import CustomDirectionError
from .images import photo_paths, tensor_to_pil

SAMPLE_SEEDS: tuple[int, ...] = tuple(range(24))
SAMPLE_TEMPERATURE = 0.6  # typical faces, but still different people
PORTRAITS_DIR = Path(__file__).resolve().parents[1] / "assets" / "faces"
THUMB_PX = 128


@dataclass(frozen=True)
class ExampleFace:
    """One face of the gallery: a model sample (``seed`` set) or a portrait (``path``)."""

    number: int  # 1-based, as shown to people
    caption: str
    image: Image.Image  # what the gallery shows
    seed: int | None = None
    latent: torch.Tensor | None = None  # a sample's latent: its edit base
    path: Path | None = None  # a portrait's file: prepared when first picked

    @property
    def source(self) -> str:
        if self.seed is not None:
            return f"model sample, seed {self.seed}, temperature {SAMPLE_TEMPERATURE}"
        return f"public-domain portrait {self.path.name}"


class ExampleGallery:
    """The example faces of one editor: model samples, then public-domain portraits."""

    def __init__(self, editor, seeds: Sequence[int] = SAMPLE_SEEDS,
                 temperature: float = SAMPLE_TEMPERATURE,
                 portraits: Sequence[str | Path] | None = None) -> None:
        self.editor = editor
        latents = sample_latents(editor.model.latent_dim, seeds, temperature)
        device = editor._device()
        with torch.no_grad():
            images = editor.model.decode(latents.to(device)) if len(seeds) else []
        faces = [ExampleFace(number=k + 1, caption=f"{k + 1}", image=tensor_to_pil(image),
                             seed=seed, latent=latents[k])
                 for k, (seed, image) in enumerate(zip(seeds, images, strict=True))]
        if portraits is None:
            portraits = photo_paths([PORTRAITS_DIR]) if PORTRAITS_DIR.is_dir() else []
        for path in map(Path, portraits):
            with Image.open(path) as photo:
                thumb = ImageOps.fit(ImageOps.exif_transpose(photo).convert("RGB"),
                                     (THUMB_PX, THUMB_PX), Image.LANCZOS, centering=(0.5, 0.4))
            number = len(faces) + 1
            faces.append(ExampleFace(number=number, caption=f"{number} · {path.stem}",
                                     image=thumb, path=path))
        self.faces = faces

    def __len__(self) -> int:
        return len(self.faces)

    def items(self) -> list[tuple[Image.Image, str]]:
        """(image, caption) pairs, in order: a Gradio gallery's value."""
        return [(f.image, f.caption) for f in self.faces]

    def numbers(self, value: object, side: str) -> list[int]:
        """Example numbers from a list of whole numbers (or text such as "1, 4, 7"),
        checked and without repeats. ``side`` ("with" / "without") names the list in
        errors."""
        if value is None or value == "" or value == []:
            return []
        if isinstance(value, str):
            items: list = [v.strip() for v in value.strip("[] ").split(",") if v.strip()]
            try:
                items = [int(v) for v in items]
            except ValueError:
                raise CustomDirectionError(
                    f"Example faces {side} the attribute must be numbers such as 1, 4, 7; "
                    f"got {value!r}.") from None
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise CustomDirectionError(f"Example faces {side} the attribute must be a list "
                                       f"of numbers; got {value!r}.")
        numbers = []
        for item in items:
            if isinstance(item, str) and item.strip().isdigit():
                item = int(item)
            if isinstance(item, bool) or not isinstance(item, int):
                raise CustomDirectionError(f"Example faces {side} the attribute must be "
                                           f"whole numbers; got {item!r}.")
            if not 1 <= item <= len(self.faces):
                raise CustomDirectionError(
                    f"No example face {item}: they are numbered 1 to {len(self.faces)}.")
            if item not in numbers:
                numbers.append(item)
        return numbers

    def bases(self, numbers: Sequence[int]) -> list[torch.Tensor]:
        """The edit bases of the examples with these (checked) numbers: a sample's own
        latent, a portrait's ``FaceEditor.prepare(...).base`` (cached by the editor)."""
        from .photo import PhotoError

        out = []
        for number in numbers:
            face = self.faces[number - 1]
            try:
                out.append(face.latent if face.latent is not None
                           else self.editor.prepare(face.path).base)
            except PhotoError as err:  # a portrait that lost its face (edited assets)
                raise CustomDirectionError(f"Example face {number}: {err}") from None
        return out

    def pick(self, with_: object, without: object) -> tuple[list[torch.Tensor],
                                                             list[torch.Tensor]]:
        """Both sides' edit bases from their example numbers; a face on both sides is
        refused, since it would cancel itself out."""
        a, b = self.numbers(with_, "with"), self.numbers(without, "without")
        both = sorted(set(a) & set(b))
        if both:
            raise CustomDirectionError(f"Example face {both[0]} is ticked both with and "
                                       "without the attribute; pick it on one side only.")
        return self.bases(a), self.bases(b)


def sample_latents(latent_dim: int, seeds: Sequence[int], temperature: float) -> torch.Tensor:
    """One latent per seed, each exactly the latent ``Glow.sample(1, temperature, seed)``
    draws, so every example face can be drawn again on its own."""
    rows = [torch.randn(1, latent_dim, generator=torch.Generator().manual_seed(int(s)))
            for s in seeds]
    if not rows:
        return torch.zeros(0, latent_dim)
    return torch.cat(rows) * temperature


_galleries: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def example_gallery(editor) -> ExampleGallery:
    """The default gallery of this editor, made once (a second or two) and then shared
    by every session, the API and the CLI in this process."""
    with _lock:
        gallery = _galleries.get(editor)
        if gallery is None:
            gallery = _galleries[editor] = ExampleGallery(editor)
        return gallery
