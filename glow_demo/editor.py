"""The editing path, top to bottom: photo -> align -> encode -> edit -> decode -> paste back.

The model sees a 64 x 64 aligned face, but people edit their own full-resolution
photos. So an edit is applied as a *change*: (decoded edit - decoded original),
upsampled to the aligned crop at the photo's own resolution, warped back into the
photo and blended in with a feathered mask. Everything the model did not touch
keeps the photo's own pixels, and with every strength at 0 the change is exactly
zero, so the output is the input photo, byte for byte. Because a flow inverts
exactly, decode(encode(face)) is the face itself: edits keep the person's identity.

``FaceEditor`` is what the CLI and the Gradio app use. It is shared between
threads: inference has no mutable state, and the encoding cache has a lock.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from .align import AlignedFace, align_face, load_photo, paste_back
from .directions import Attribute, Directions
from .images import pil_to_tensor, tensor_to_pil
from .model import DEFAULT_WEIGHTS, Glow

CACHE_SIZE = 32


@dataclass
class Face:
    """A photo prepared for editing: aligned, encoded, with what rendering needs."""

    photo: np.ndarray  # (H, W, 3) uint8, the whole photo
    aligned: AlignedFace
    model_input: Image.Image  # the 64 x 64 face the model sees
    latent: torch.Tensor  # (D,) standardised latent
    decoded: torch.Tensor  # (3, 64, 64) decode(latent): the base the edit's change is taken from
    bits_per_dim: float
    seconds: float  # time to align + encode

    @property
    def n_faces(self) -> int:
        return self.aligned.n_faces

    @property
    def crop_size(self) -> int:
        return self.aligned.crop.shape[0]


@dataclass
class EditResult:
    photo: Image.Image  # the full photo with the edit pasted back
    crop: Image.Image  # the aligned crop at full resolution, edited
    model_view: Image.Image  # the model's 64 x 64 output
    seconds: float = field(default=0.0)  # decode + paste back


def _upsample(image_chw: torch.Tensor, size: int) -> np.ndarray:
    """(3, h, w) in [0, 1] -> (size, size, 3) float32 in 0..255 units, bicubic."""
    array = image_chw.permute(1, 2, 0).cpu().numpy().astype(np.float32) * 255.0
    return cv2.resize(array, (size, size), interpolation=cv2.INTER_CUBIC)


def _detail(face: Face, size: int) -> np.ndarray:
    """High-frequency detail of a face's crop that the 64 px model cannot hold."""
    crop = face.aligned.crop.astype(np.float32)
    if crop.shape[0] != size:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return crop - _upsample(pil_to_tensor(face.model_input), size)


class FaceEditor:
    """Prepare photos, edit them along attribute directions, mix and sample faces."""

    def __init__(self, model: Glow, directions: Directions):
        self.model = model.eval()
        self.directions = directions
        self._cache: OrderedDict[str, Face] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, weights_dir: str | Path = DEFAULT_WEIGHTS, device: str = "cpu") -> FaceEditor:
        """Load the shipped model and its directions (WeightsError names a bad file)."""
        return cls(Glow.load(weights_dir, device), Directions.load(weights_dir))

    @property
    def attributes(self) -> list[Attribute]:
        return self.directions.attributes

    @property
    def resolution(self) -> int:
        return self.model.config.resolution

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ----- photo -> face ------------------------------------------------------------
    def prepare(self, photo: Image.Image | np.ndarray | bytes | str | Path) -> Face:
        """Load, align and encode a photo; cached by content. Raises PhotoError."""
        start = time.perf_counter()
        image = load_photo(photo)
        array = np.asarray(image)
        key = hashlib.sha1(array.tobytes() + str(array.shape).encode()).hexdigest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        aligned = align_face(image)
        model_input = aligned.model_input(self.resolution)
        x = pil_to_tensor(model_input)[None].to(self._device())
        latent, bpd = self.model.encode_with_bpd(x)
        face = Face(
            photo=array,
            aligned=aligned,
            model_input=model_input,
            latent=latent[0],
            decoded=self.model.decode(latent)[0],
            bits_per_dim=float(bpd[0]),
            seconds=time.perf_counter() - start,
        )
        with self._lock:
            self._cache[key] = face
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return face

    # ----- edit -> decode -> paste back ---------------------------------------------
    def edited_latent(self, face: Face, strengths: dict[str, float],
                      disentangle: dict[str, tuple[str, ...]] | None = None) -> torch.Tensor:
        offset = self.directions.vector(strengths, disentangle).to(face.latent.device)
        return face.latent + offset

    def edit(self, face: Face, strengths: dict[str, float],
             disentangle: dict[str, tuple[str, ...]] | None = None) -> EditResult:
        """Apply attribute strengths (0 = unchanged); only decodes, the encoding is cached."""
        start = time.perf_counter()
        latent = self.edited_latent(face, strengths, disentangle)
        return self._render(face, latent, extra=None, start=start)

    def interpolate(self, a: Face, b: Face, t: float) -> EditResult:
        """Face a moved a fraction t of the way to face b, in a's photo."""
        start = time.perf_counter()
        latent = torch.lerp(a.latent, b.latent, float(t))
        extra = None
        if t:
            size = a.crop_size
            extra = float(t) * (_detail(b, size) - _detail(a, size))
        return self._render(a, latent, extra=extra, start=start)

    def _render(self, face: Face, latent: torch.Tensor, extra: np.ndarray | None,
                start: float) -> EditResult:
        decoded = self.model.decode(latent[None])[0]
        delta = _upsample(decoded - face.decoded, face.crop_size)
        if extra is not None:
            delta = delta + extra
        crop = np.clip(face.aligned.crop.astype(np.float32) + delta, 0, 255)
        photo = paste_back(face.photo, face.aligned, delta)
        return EditResult(
            photo=Image.fromarray(photo),
            crop=Image.fromarray(crop.round().astype(np.uint8)),
            model_view=tensor_to_pil(decoded),
            seconds=time.perf_counter() - start,
        )

    # ----- mixing and sampling ------------------------------------------------------
    def morph(self, a: Face, b: Face, steps: int = 9, size: int = 256) -> list[Image.Image]:
        """Frames from face a to face b (aligned crops), latents interpolated linearly.

        Each frame is the decoded 64 px mix upsampled, plus the two photos' own fine
        detail cross-faded, so the morph is sharp although the model works at 64 px.
        """
        if steps < 2:
            raise ValueError("a morph needs at least 2 steps")
        detail_a, detail_b = _detail(a, size), _detail(b, size)
        ts = torch.linspace(0, 1, steps)
        latents = torch.stack([torch.lerp(a.latent, b.latent, float(t)) for t in ts])
        decoded = self.model.decode(latents)
        frames = []
        for t, image in zip(ts.tolist(), decoded, strict=True):
            frame = _upsample(image, size) + (1 - t) * detail_a + t * detail_b
            frames.append(Image.fromarray(np.clip(frame, 0, 255).round().astype(np.uint8)))
        return frames

    def sample(self, n: int = 4, temperature: float = 0.7, seed: int | None = None
               ) -> list[Image.Image]:
        """Random faces from the model; lower temperature = more typical, smoother faces."""
        return [tensor_to_pil(img) for img in self.model.sample(n, temperature, seed)]

    @staticmethod
    def save_animation(frames: list[Image.Image], path: str | Path, fps: float = 8,
                       bounce: bool = True) -> Path:
        """Write frames as GIF or MP4 (by suffix); bounce plays them forth and back."""
        path = Path(path)
        sequence = frames + frames[-2:0:-1] if bounce else list(frames)
        suffix = path.suffix.lower()
        if suffix == ".gif":
            sequence[0].save(path, save_all=True, append_images=sequence[1:],
                             duration=int(1000 / fps), loop=0)
        elif suffix == ".mp4":
            import imageio.v2 as imageio

            with imageio.get_writer(path, fps=fps, codec="libx264", quality=8,
                                    macro_block_size=16) as writer:
                for frame in sequence:
                    writer.append_data(np.asarray(frame.convert("RGB")))
        else:
            raise ValueError(f"unsupported animation format {suffix!r}: use .gif or .mp4")
        return path
