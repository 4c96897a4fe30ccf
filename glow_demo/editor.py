"""The editing path, top to bottom: photo -> align -> encode -> edit -> decode -> paste back.

The model sees a 64 x 64 aligned face, but people edit their own full-resolution
photos. So an edit is applied as a *change*: (decoded edit - decoded original),
upsampled to the aligned crop at the photo's own resolution, warped back into the
photo and blended in with a feathered mask. Everything the model did not touch
keeps the photo's own pixels, and with every strength at 0 the change is exactly
zero, so the output is the input photo, byte for byte. Because a flow inverts
exactly, decode(encode(face)) is the face itself: edits keep the person's identity.

Stable edits. An affine flow's inverse explodes once a latent leaves the region the
model was trained on: a face unlike CelebA's (an elderly admiral in a peaked cap, say)
decodes exactly, but a step along a direction from it decodes to noise. The fine,
high-frequency part of such a photo is what is far from the training faces; a slightly
smoothed copy of the same face is ordinary to the model and edits stably. How far a
face can be edited stably follows the largest activation its own decode reaches (its
*peak*). So the edit *base* is the face's exact encoding if its peak is ordinary
(below ``BASE_PEAK``), otherwise the encoding of the face smoothed by the least Gaussian
blur (``SMOOTHING``, in 64 px pixels) that brings the peak below it.
The change is taken between two decodes of that base, so it is still zero at zero
strength and is still added to the photo's own pixels; only what the change is computed
from is smoothed. If an edit still explodes (several sliders at once, say), it is scaled
back to the largest fraction that decodes well clear of that (``BACKOFF_PEAK``), and
``EditResult.applied`` says so.

``FaceEditor`` is what the CLI and the Gradio app use. It is shared between
threads: inference has no mutable state, and the encoding cache has a lock.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageFilter

from .align import AlignedFace, align_face, paste_back
from .directions import Attribute, Directions
from .images import pil_to_tensor, tensor_to_pil
from .model import DEFAULT_WEIGHTS, STABLE_PEAK, Glow, bf16_supported
from .photo import load_photo
from .skin import limit_skin_colour, limits_skin_colour

CACHE_SIZE = 32
# Gaussian blur radii (64 px pixels) tried, in order, for a face's edit base: the first
# whose decode peaks below BASE_PEAK is used. How far edits from a face stay stable
# follows its own peak: over 64 CelebA validation faces, those peaking at 3.7-5.9 decoded
# every headline slider at +-1.5 stably, bar one end of one face; 2 of the 12 above 5.9
# had exploding ends. Re-measured for the model of 2026-11-29 (301k images, scale floor
# 0.2): 58 CelebA validation faces peak at median 4.5, max 6.2 (one above 6); Grace
# Hopper's portrait at 9.1, between 6.5 and 7 smoothed by 0.5 px (15 of 24 slider ends
# stable) and under 6.5 by 0.75 px (21 of 24): hence 6.5.
SMOOTHING: tuple[float, ...] = (0.0, 0.5, 0.75, 1.0, 1.5, 2.0)
BASE_PEAK = 6.5
BACKOFF_STEPS = 5  # bisection steps when an edit must be scaled back to decode stably
# How far back an edit that explodes is scaled. The last stretch before an explosion
# already shows it: Grace Hopper's glasses +1.5 (model v6) peaks at 5.8 at 0.6 of the
# step, 8.1 at 0.7 with a small coloured patch at her temple, 14.7 at 0.75 with a rainbow
# across it, and past 1e9 at the whole step. So such an edit is scaled back to where its
# decode peaks below BACKOFF_PEAK (ordinary faces peak at 4-6.5), not just below
# STABLE_PEAK; only if no fraction does, to below STABLE_PEAK as before.
BACKOFF_PEAK = 7.5
# Directions that on some faces draw another attribute the model knows, and that one:
# aging draws glasses. The age step moves eye bags, lids and wrinkles, and for some faces
# the model answers with what dark lines across the eyes most often are in CelebA, a
# frame: whole glasses on some faces, light or dark bands across eyes and cheeks on
# shadowed and dark-skinned ones. Taking the glasses direction out of the age direction
# (or UTKFace's bespectacled faces out of its fit) did not help, as the frames come from
# the model's answer to the step on that face, not from the step. So each face gets its
# own age direction, with as much of the glasses direction taken out as makes the
# change its decode shows uncorrelated with the change glasses make to the same face
# (``FaceEditor.own_directions``). Male and bald drew glasses on a few faces too (the
# meter: 5 % and 3 % of 204 held-out faces; 1 % and 0 % with their own directions).
# The glasses taken out are those fitted with the face's colour held ("glasses_held",
# ``directions.HELD_ONLY``), not the slider's: the slider's glasses darken the skin
# under the frames, and taking them out handed the age step lighter, redder cheeks.
HELD_IN_PIXELS: dict[str, str] = {"age_years": "glasses_held", "age": "glasses_held",
                                  "male": "glasses_held", "bald": "glasses_held"}
HOLD_PASSES = 2  # the decode is not linear: a second pass takes out what the first left
HOLD_PROBE = 0.5  # the strength the changes are compared at (+1 explodes on a few faces)


@dataclass
class Face:
    """A photo prepared for editing: aligned, encoded, with what rendering needs."""

    photo: np.ndarray  # (H, W, 3) uint8, the whole photo
    aligned: AlignedFace
    model_input: Image.Image  # the 64 x 64 face the model sees
    latent: torch.Tensor  # (D,) its standardised latent: decode(latent) is model_input
    bits_per_dim: float  # of model_input: how typical a face it is for the model
    base: torch.Tensor  # (D,) the latent edits start from (see the module docstring)
    base_decoded: torch.Tensor  # (3, 64, 64) decode(base): what an edit's change is taken from
    smoothing: float  # blur radius base was encoded with; 0 = base is latent itself
    seconds: float  # time to align + encode + find the edit base
    # this face's own versions of directions that draw another attribute on it
    # (``FaceEditor.own_directions``), filled in when such a slider is first moved; the
    # shared ones for every other direction
    own: dict[str, torch.Tensor] = field(default_factory=dict)

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
    applied: float = 1.0  # fraction of the edit applied: < 1 when it had to be scaled back

    @property
    def message(self) -> str:
        """What to tell the person when the edit could not be applied in full."""
        if self.applied >= 1.0:
            return ""
        if self.applied == 0.0:
            return "the model cannot make this edit to this face and keep it a face"
        return (f"the edit went further than the model can take this face: scaled back "
                f"to {self.applied:.0%} of its strength to stay a face")


def _own_keys(strengths: dict[str, float]) -> set[str]:
    """The keys of the own directions these strengths move along (see
    ``FaceEditor.own_directions``): the name for a positive strength, "-name" for a
    negative one, for directions in ``HELD_IN_PIXELS``."""
    return {name if strength > 0 else f"-{name}" for name, strength in strengths.items()
            if strength and name in HELD_IN_PIXELS}


def _upsample(image_chw: torch.Tensor, size: int) -> np.ndarray:
    """(3, h, w) in [0, 1] -> (size, size, 3) float32 in 0..255 units, bicubic."""
    array = image_chw.permute(1, 2, 0).cpu().numpy().astype(np.float32) * 255.0
    return cv2.resize(array, (size, size), interpolation=cv2.INTER_CUBIC)


def _detail(face: Face, size: int) -> np.ndarray:
    """What a face's crop holds beyond its decoded base: fine detail the 64 px model
    cannot hold (and, for a smoothed base, what the smoothing took away)."""
    crop = face.aligned.crop.astype(np.float32)
    if crop.shape[0] != size:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return crop - _upsample(face.base_decoded, size)


class FaceEditor:
    """Prepare photos, edit them along attribute directions, mix and sample faces."""

    def __init__(self, model: Glow, directions: Directions):
        self.model = model.eval()
        self.directions = directions
        self._cache: OrderedDict[str, Face] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, weights_dir: str | Path = DEFAULT_WEIGHTS, device: str = "cpu",
             bf16: bool | None = None) -> FaceEditor:
        """Load the shipped model and its directions (WeightsError names a bad file).

        ``bf16``: decode with bf16 coupling nets (``Glow.decode_dtype``), 0.75-0.78x the
        CPU time of a float32 decode and no difference a person can see (see
        ``model.REDUCED_PEAK``); None = where the CPU runs bf16 natively (oneDNN), since
        elsewhere it would be emulated and slower. Encoding is float32 either way.
        """
        model = Glow.load(weights_dir, device)
        if bf16 is None:
            bf16 = torch.device(device).type == "cpu" and bf16_supported()
        if bf16:
            model.decode_dtype = torch.bfloat16
        return cls(model, Directions.load(weights_dir))

    def warm_up(self, compile_decode: bool = False) -> threading.Thread | None:
        """Decode once now (the first decode sets up its kernels) and, with
        ``compile_decode``, load the compiled one-image decode, or have it built by a
        separate low-priority process and loaded when ready (``glow_demo.compiled``);
        returns the thread that waits for it. Edits decode eagerly until then."""
        self.model.decode(torch.zeros(1, self.model.latent_dim, device=self._device()))
        if not compile_decode or self._device().type != "cpu":
            return None
        from .compiled import compile_in_background

        return compile_in_background(self.model)

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
        base, base_decoded, smoothing = self._stable_base(model_input, latent[0])
        face = Face(
            photo=array,
            aligned=aligned,
            model_input=model_input,
            latent=latent[0],
            bits_per_dim=float(bpd[0]),
            base=base,
            base_decoded=base_decoded,
            smoothing=smoothing,
            seconds=time.perf_counter() - start,
        )
        with self._lock:
            self._cache[key] = face
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return face

    def _stable_base(self, model_input: Image.Image, latent: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(base, decode(base), blur radius): the least-smoothed encoding of the face
        whose own decode peaks below BASE_PEAK (the lowest peak if none does)."""
        best = None
        for radius in SMOOTHING:
            if radius:
                blurred = model_input.filter(ImageFilter.GaussianBlur(radius))
                base = self.model.encode(pil_to_tensor(blurred)[None].to(latent.device))[0]
            else:
                base = latent
            decoded, peak = self.model.decode_with_peak(base[None])
            if best is None or peak[0] < best[0]:
                best = (float(peak[0]), base, decoded[0], radius)
            if peak[0] < BASE_PEAK:
                break
        _, base, decoded, radius = best
        return base, decoded, radius

    def own_directions(self, base: torch.Tensor, base_decoded: torch.Tensor,
                       keys: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """This face's own version of each direction in ``HELD_IN_PIXELS`` (or of
        ``keys``), for positive strengths under its name and for negative ones under
        "-name" (for those the held attribute may come with the opposite step): the
        shared direction with c held steps taken out of the move, c (never below 0)
        chosen so that the change the move makes to this face's decode has no part along
        the change the held attribute makes to it (least squares over the 64 px image,
        both at strength ``HOLD_PROBE``), found again on the corrected move,
        ``HOLD_PASSES`` times. A pass whose decode is unstable leaves the direction as
        it is. One decode each (the one-image decode, compiled where it is), so that
        moving the first such slider costs ~3 decodes, not preparing every face."""
        vectors = self.directions.vectors
        if keys is None:
            keys = [f"{sign}{name}" for name in HELD_IN_PIXELS for sign in ("", "-")]
        # the move per unit of |strength|, under the name the direction is kept under
        moves = {key: (-1.0 if key.startswith("-") else 1.0) * vectors[key.lstrip("-")]
                 for key in keys if key.lstrip("-") in HELD_IN_PIXELS
                 and key.lstrip("-") in vectors and HELD_IN_PIXELS[key.lstrip("-")] in vectors}
        held_of = {key: HELD_IN_PIXELS[key.lstrip("-")] for key in moves}

        def change(step: torch.Tensor) -> torch.Tensor | None:
            image, peak = self.model.decode_with_peak(
                (base + HOLD_PROBE * step.to(base.device))[None])
            return image[0] - base_decoded if peak[0] < STABLE_PEAK else None

        held_change = {h: change(vectors[h]) for h in sorted(set(held_of.values()))}
        for key, move in moves.items():
            pattern = held_change[held_of[key]]
            if pattern is None or not pattern.any():
                continue
            for _ in range(HOLD_PASSES):
                moved = change(move)
                if moved is None:
                    break
                c = float((moved * pattern).sum() / pattern.pow(2).sum())
                move = move - max(c, 0.0) * vectors[held_of[key]]
            moves[key] = move
        # a slider multiplies the direction by its (signed) strength: negative moves flip
        return {key: (-move if key.startswith("-") else move) for key, move in moves.items()}

    def own_for(self, face: Face, strengths: dict[str, float]) -> dict[str, torch.Tensor]:
        """``face.own``, with the directions these strengths move along filled in."""
        missing = _own_keys(strengths) - face.own.keys()
        if missing:  # two threads may both fill it in: the same vectors either way
            face.own.update(self.own_directions(face.base, face.base_decoded, missing))
        return face.own

    # ----- edit -> decode -> paste back ---------------------------------------------
    def edit(self, face: Face, strengths: dict[str, float],
             disentangle: dict[str, tuple[str, ...]] | None = None,
             directions: Directions | None = None,
             limit_skin: bool | None = None) -> EditResult:
        """Apply attribute strengths (0 = unchanged); only decodes, the encoding is cached.
        ``directions``: the ones to edit along instead of the editor's own (e.g. with a
        person's custom directions added, see ``custom_directions``). ``limit_skin``:
        limit the colour change on the skin (``skin``); None decides by the sliders moved
        (``limits_skin_colour``), False is the model's change as it is (for measuring)."""
        start = time.perf_counter()
        directions = directions or self.directions
        offset = directions.offset(face.base, strengths, disentangle,
                                   self.own_for(face, strengths)).to(face.base.device)
        if limit_skin is None:
            limit_skin = self.limits_skin_colour(strengths)
        return self._render(face, offset, extra=None, start=start, skin=limit_skin)

    def edit_batch(self, face: Face, strengths: list[dict[str, float]]) -> list[EditResult]:
        """Several edits of one face, decoded in one batch (measuring, grids): each result
        is what ``edit`` gives; an edit whose batched decode is unstable is redone by
        ``edit``'s own back-off."""
        start = time.perf_counter()
        offsets = torch.stack([self.directions.offset(face.base, s, own=self.own_for(face, s))
                               for s in strengths]).to(face.base.device)
        decoded, peaks = self.model.decode_with_peak(face.base[None] + offsets)
        results = []
        for offset, image, peak, edit in zip(offsets, decoded, peaks, strengths, strict=True):
            skin = self.limits_skin_colour(edit)
            if not offset.any() or peak >= STABLE_PEAK:
                results.append(self._render(face, offset, extra=None, start=start, skin=skin))
            else:
                if skin:
                    image = limit_skin_colour(face.base_decoded, image)
                results.append(self._paste(face, image, None, 1.0, start))
        return results

    def limits_skin_colour(self, strengths: dict[str, float]) -> bool:
        """Whether this edit's colour change on the skin is limited (``skin``): only the
        editor's own sliders are moved, and none is about the skin's colour."""
        return limits_skin_colour(strengths, self.directions.vectors)

    def interpolate(self, a: Face, b: Face, t: float) -> EditResult:
        """Face a moved a fraction t of the way to face b, in a's photo."""
        start = time.perf_counter()
        offset = float(t) * (b.base - a.base)
        extra = None
        if t:
            size = a.crop_size
            extra = float(t) * (_detail(b, size) - _detail(a, size))
        return self._render(a, offset, extra=extra, start=start)

    def edit_latent(self, latent: torch.Tensor, strengths: dict[str, float],
                    disentangle: dict[str, tuple[str, ...]] | None = None,
                    directions: Directions | None = None) -> tuple[torch.Tensor, float]:
        """Edit a face that has no photo (a sample's latent): the decoded (3, 64, 64)
        image and the fraction of the edit applied."""
        directions = directions or self.directions
        unchanged = self.model.decode(latent[None])[0]
        own = self.own_directions(latent, unchanged, _own_keys(strengths))
        offset = directions.offset(latent, strengths, disentangle, own).to(latent.device)
        decoded, applied = self._decode_stably(latent, offset, unchanged)
        if offset.any() and self.limits_skin_colour(strengths):
            decoded = limit_skin_colour(unchanged, decoded)
        return decoded, applied

    def _decode_stably(self, base: torch.Tensor, offset: torch.Tensor,
                       unchanged: torch.Tensor | None) -> tuple[torch.Tensor, float]:
        """decode(base + k * offset) for the largest k in (0, 1] that decodes stably:
        1 if the whole edit peaks below STABLE_PEAK, else (bisected) below BACKOFF_PEAK.

        ``unchanged`` is decode(base) when the caller has it (a prepared face does).
        The second bisection starts where the first did, so each fraction is decoded
        once (``tried``): a face no fraction takes below BACKOFF_PEAK costs 6-10 decodes,
        not 11.
        """
        if not offset.any():
            return (self.model.decode(base[None])[0] if unchanged is None else unchanged), 1.0
        tried: dict[float, tuple[torch.Tensor, float]] = {}

        def decode(k: float) -> tuple[torch.Tensor, float]:
            if k not in tried:
                decoded, peak = self.model.decode_with_peak((base + k * offset)[None])
                tried[k] = decoded[0], float(peak[0])
            return tried[k]

        if decode(1.0)[1] < STABLE_PEAK:
            return tried[1.0][0], 1.0
        for limit in (BACKOFF_PEAK, STABLE_PEAK):
            low, low_image, high = 0.0, unchanged, 1.0
            for _ in range(BACKOFF_STEPS):
                k = (low + high) / 2
                image, peak = decode(k)
                if peak < limit:
                    low, low_image = k, image
                else:
                    high = k
            if low > 0:
                break
        if low_image is None:  # even a small step explodes: the face is left as it is
            low_image = self.model.decode(base[None])[0]
        return low_image, low

    def _render(self, face: Face, offset: torch.Tensor, extra: np.ndarray | None,
                start: float, skin: bool = False) -> EditResult:
        """Decode (stably) and paste back; ``skin``: limit the change's colour on the
        skin (``skin.limit_skin_colour``)."""
        decoded, applied = self._decode_stably(face.base, offset, face.base_decoded)
        if skin and offset.any():
            decoded = limit_skin_colour(face.base_decoded, decoded)
        return self._paste(face, decoded, extra, applied, start)

    def _paste(self, face: Face, decoded: torch.Tensor, extra: np.ndarray | None,
               applied: float, start: float) -> EditResult:
        delta = _upsample(decoded - face.base_decoded, face.crop_size)
        if extra is not None:
            delta = delta + applied * extra
        crop = np.clip(face.aligned.crop.astype(np.float32) + delta, 0, 255)
        photo = paste_back(face.photo, face.aligned, delta)
        return EditResult(
            photo=Image.fromarray(photo),
            crop=Image.fromarray(crop.round().astype(np.uint8)),
            model_view=tensor_to_pil(decoded),
            seconds=time.perf_counter() - start,
            applied=applied,
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
        latents = torch.stack([torch.lerp(a.base, b.base, float(t)) for t in ts])
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
