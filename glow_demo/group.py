"""Every face in a group photo: align, encode and edit them all, paste them all back.

``prepare_group`` finds every face at least ``align.MIN_FACE_PX`` wide, aligns each one
as ``align_face`` aligns a single face, and encodes them in one batch; each gets its own
edit base, exactly as ``FaceEditor.prepare`` finds it (smoothed only if that face is
unusual for the model). ``edit_group`` gives every face its own strengths (a face may be
left as it is), decodes all the edited faces in one batch, guards each against an
exploding inverse as ``FaceEditor.edit`` does, and pastes all the changes back into the
photo at once (``align.paste_back_many``: where two faces' crops overlap, each face's
own change wins near its centre and they cross-fade between, without a seam).

Faces are numbered for people left to right from 1 (face 1 is the leftmost), in the CLI,
the API and the app alike; lists inside (``Group.faces``) are indexed from 0. A photo
with one face is prepared and edited by exactly the operations of ``FaceEditor.prepare``
and ``FaceEditor.edit``: the result is the same, byte for byte.

    group = prepare_group(editor, "team.jpg")
    result = edit_group(editor, group, strengths_for(group, "all", {"smile": 1.0}))
    result.photo.save("team-smiling.png")
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import torch
from PIL import Image

from .align import AlignedFace, align_faces, paste_back_many
from .directions import Directions
from .editor import BASE_PEAK, EditResult, Face, FaceEditor, _upsample
from .images import pil_to_tensor, tensor_to_pil
from .model import STABLE_PEAK
from .photo import load_photo
from .skin import limit_skin_colour

FacesSpec = str | Sequence[int]  # "largest" | "all" | face numbers (left to right, from 1)
FACES_HELP = '"largest" (default), "all", or a list of face numbers (1 = leftmost)'


@dataclass
class Group:
    """A photo prepared for editing every face in it."""

    photo: np.ndarray  # (H, W, 3) uint8, the whole photo
    faces: list[Face]  # left to right; each shares ``photo``
    seconds: float  # align + encode + edit bases, all faces

    def __len__(self) -> int:
        return len(self.faces)

    @property
    def largest(self) -> int:
        """The index of the largest face (by its detector box): the one ``align_face``
        and ``FaceEditor.prepare`` use."""
        areas = [(f.aligned.box[2] - f.aligned.box[0]) * (f.aligned.box[3] - f.aligned.box[1])
                 for f in self.faces]
        return int(np.argmax(areas))

    def thumbnails(self, size: int = 96) -> list[Image.Image]:
        """Each face's aligned crop, ``size`` px square, left to right."""
        return [Image.fromarray(f.aligned.crop).resize((size, size), Image.LANCZOS)
                for f in self.faces]


@dataclass
class GroupResult:
    photo: Image.Image  # the full photo, every edited face pasted back
    crops: list[Image.Image]  # each face's aligned crop, edited (as it was if not edited)
    model_views: list[Image.Image]  # the model's 64 x 64 output per face
    applied: list[float]  # fraction of each face's edit applied (1.0: in full or no edit)
    seconds: float = field(default=0.0)

    @property
    def message(self) -> str:
        """What to tell the person about faces whose edit was scaled back (for one face,
        ``EditResult.message``)."""
        if len(self.applied) == 1:
            return _note(self.applied[0])
        notes = [f"face {i + 1}: {_note(a)}" for i, a in enumerate(self.applied) if a < 1.0]
        return "; ".join(notes)


@dataclass
class View:
    """A group's photo scaled down for display, with each face's alignment scaled to it:
    an edit pasted into it is the full-resolution edit as a smaller picture would show
    it, for a fraction of the cost (``paste_group``)."""

    photo: np.ndarray  # (h, w, 3) uint8
    faces: list[AlignedFace]  # each face's crop and photo -> crop matrix, at this scale
    scale: float  # view pixels per photo pixel


def view_of(group: Group, max_side: int) -> View | None:
    """The photo scaled (pixel-area averaging) so that its longer side is ``max_side``;
    None if it is no larger than that already (the photo itself is the view)."""
    height, width = group.photo.shape[:2]
    if max(height, width) <= max_side:
        return None
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    photo = cv2.resize(group.photo, size, interpolation=cv2.INTER_AREA)
    # view pixel -> photo pixel, with pixel centres at integer coordinates (as cv2's)
    sx, sy = size[0] / width, size[1] / height
    to_photo = np.array([[1 / sx, 0, 0.5 / sx - 0.5], [0, 1 / sy, 0.5 / sy - 0.5], [0, 0, 1]])
    faces = []
    for face in (f.aligned for f in group.faces):
        side = max(64, round(face.size * scale))
        k = side / face.size  # crop pixel -> view crop pixel
        to_crop = np.array([[k, 0, 0.5 * k - 0.5], [0, k, 0.5 * k - 0.5]])
        matrix = to_crop @ np.vstack([face.matrix, [0, 0, 1]]) @ to_photo
        crop = cv2.resize(face.crop, (side, side), interpolation=cv2.INTER_AREA)
        box = tuple(float(v) * scale for v in face.box)
        faces.append(replace(face, crop=crop, matrix=matrix, photo_size=size,
                             landmarks=face.landmarks * scale, box=box))
    return View(photo=photo, faces=faces, scale=scale)


def _note(applied: float) -> str:
    return EditResult(photo=None, crop=None, model_view=None, applied=applied).message


def select_faces(spec: FacesSpec | None, group: Group) -> list[int]:
    """The 0-based positions in ``group.faces`` of the faces a ``FacesSpec`` names (face
    numbers count from 1, face 1 the leftmost); ValueError with a message if bad."""
    n = len(group)
    if spec is None or spec == "largest":
        return [group.largest]
    if spec == "all":
        return list(range(n))
    if isinstance(spec, str):
        raise ValueError(f"faces must be {FACES_HELP}; got {spec!r}")
    try:
        items = list(spec)
    except TypeError:
        raise ValueError(f"faces must be {FACES_HELP}; got {spec!r}") from None
    if not items:
        raise ValueError("faces is an empty list: name at least one face")
    if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in items):
        raise ValueError(f"face numbers must be whole numbers; got {spec!r}")
    numbers = [int(i) for i in items]
    bad = [i for i in numbers if not 1 <= i <= n]
    if bad:
        raise ValueError(f"no face number {bad[0]}: the photo has {n} face(s), numbered "
                         f"1 to {n} from the left (face 1 is the leftmost)")
    return sorted({i - 1 for i in numbers})


def strengths_for(group: Group, spec: FacesSpec | None, strengths: Mapping[str, float]
                  ) -> list[dict[str, float]]:
    """One strengths dict per face: ``strengths`` for the faces ``spec`` names, {} else."""
    chosen = set(select_faces(spec, group))
    return [dict(strengths) if i in chosen else {} for i in range(len(group))]


def prepare_group(editor: FaceEditor, photo) -> Group:
    """Find, align and encode every face in a photo (one batch). Raises PhotoError."""
    start = time.perf_counter()
    image = load_photo(photo)
    array = np.asarray(image)
    aligned = align_faces(image)
    inputs = [a.model_input(editor.resolution) for a in aligned]
    device = editor._device()
    x = torch.stack([pil_to_tensor(m) for m in inputs]).to(device)
    latents, bpd = editor.model.encode_with_bpd(x)
    decoded, peaks = editor.model.decode_with_peak(latents)
    faces = []
    for i, (face, model_input) in enumerate(zip(aligned, inputs, strict=True)):
        if peaks[i] < BASE_PEAK:  # what FaceEditor._stable_base finds at radius 0
            base, base_decoded, smoothing = latents[i], decoded[i], 0.0
        else:
            base, base_decoded, smoothing = editor._stable_base(model_input, latents[i])
        faces.append(Face(photo=array, aligned=face, model_input=model_input,
                          latent=latents[i], bits_per_dim=float(bpd[i]), base=base,
                          base_decoded=base_decoded, smoothing=smoothing, seconds=0.0))
    seconds = time.perf_counter() - start
    for face in faces:
        face.seconds = seconds
    return Group(photo=array, faces=faces, seconds=seconds)


def group_offsets(editor: FaceEditor, group: Group,
                  strengths: Sequence[Mapping[str, float] | None],
                  disentangle: dict[str, tuple[str, ...]] | None = None,
                  directions: Directions | None = None) -> list[torch.Tensor]:
    """Each face's latent offset for its strengths (one mapping per face; None or {} =
    leave it): all that an edit's decode depends on besides the faces themselves."""
    if len(strengths) != len(group):
        raise ValueError(f"{len(group)} faces but {len(strengths)} sets of strengths")
    directions = directions or editor.directions
    return [directions.offset(f.base, dict(s or {}), disentangle,
                              editor.own_for(f, dict(s or {}))).to(f.base.device)
            for s, f in zip(strengths, group.faces, strict=True)]


def skin_limits(editor: FaceEditor, strengths: Sequence[Mapping[str, float] | None]
                ) -> list[bool]:
    """For each face, whether its edit's colour change on the skin is limited
    (``FaceEditor.limits_skin_colour``)."""
    return [editor.limits_skin_colour(dict(s or {})) for s in strengths]


def decode_group(editor: FaceEditor, group: Group, offsets: Sequence[torch.Tensor],
                 skin: Sequence[bool] | None = None
                 ) -> tuple[list[torch.Tensor], list[float]]:
    """(each face's decoded 64 px edit, fraction of it applied): the edited faces decoded
    in one batch; a face whose edit would explode is scaled back on its own
    (``FaceEditor``'s guard), the others are not affected; ``skin`` (``skin_limits``)
    limits each face's colour change on the skin. For one face this is exactly
    ``FaceEditor.edit``'s decode."""
    decoded = [f.base_decoded for f in group.faces]
    applied = [1.0] * len(group)
    active = [i for i, o in enumerate(offsets) if o.any()]
    if active:
        batch = torch.stack([group.faces[i].base + offsets[i] for i in active])
        images, peaks = editor.model.decode_with_peak(batch)
        for k, i in enumerate(active):
            if peaks[k] < STABLE_PEAK:
                decoded[i] = images[k]
            else:
                face = group.faces[i]
                decoded[i], applied[i] = editor._decode_stably(face.base, offsets[i],
                                                               face.base_decoded)
            if skin is not None and skin[i]:
                decoded[i] = limit_skin_colour(group.faces[i].base_decoded, decoded[i])
    return decoded, applied


def paste_group(group: Group, decoded: Sequence[torch.Tensor], applied: Sequence[float],
                view: View | None = None, start: float | None = None) -> GroupResult:
    """Decoded edits pasted back into the photo, or into ``view`` (the photo scaled, for a
    quick preview: see ``view_of``); ``start`` (perf_counter) dates ``seconds``.

    Faces whose decode is their unchanged base are left alone, so with no edit the
    photo comes back byte for byte.
    """
    start = time.perf_counter() if start is None else start
    photo, aligned = (group.photo, [f.aligned for f in group.faces]) if view is None \
        else (view.photo, view.faces)
    deltas: list[np.ndarray | None] = [None] * len(group)
    for i, (face, where) in enumerate(zip(group.faces, aligned, strict=True)):
        if decoded[i] is not face.base_decoded:
            deltas[i] = _upsample(decoded[i] - face.base_decoded, where.size)
    pasted = paste_back_many(photo, aligned, deltas)
    crops = []
    for where, delta in zip(aligned, deltas, strict=True):
        crop = where.crop.astype(np.float32) + (0 if delta is None else delta)
        crops.append(Image.fromarray(np.clip(crop, 0, 255).round().astype(np.uint8)))
    return GroupResult(photo=Image.fromarray(pasted), crops=crops,
                       model_views=[tensor_to_pil(d) for d in decoded],
                       applied=list(applied), seconds=time.perf_counter() - start)


def edit_group(editor: FaceEditor, group: Group,
               strengths: Sequence[Mapping[str, float] | None],
               disentangle: dict[str, tuple[str, ...]] | None = None,
               directions: Directions | None = None) -> GroupResult:
    """Edit each face by its own strengths (one mapping per face; None or {} = leave it).

    The edited faces are decoded in one batch; a face whose edit would explode is scaled
    back on its own (``FaceEditor``'s guard), the others are not affected. One face gives
    exactly ``FaceEditor.edit``'s picture.
    """
    start = time.perf_counter()
    offsets = group_offsets(editor, group, strengths, disentangle, directions)
    decoded, applied = decode_group(editor, group, offsets, skin_limits(editor, strengths))
    return paste_group(group, decoded, applied, start=start)


def edit_photo(editor: FaceEditor, photo, strengths: Mapping[str, float],
               faces: FacesSpec | None = "largest",
               disentangle: dict[str, tuple[str, ...]] | None = None,
               directions: Directions | None = None) -> GroupResult:
    """One call for the CLI and the API: ``faces="largest"`` is today's single-face path
    (``FaceEditor.prepare`` + ``edit``, cached); otherwise every face is found and the
    named ones get ``strengths``."""
    if faces is None or faces == "largest":
        face = editor.prepare(photo)
        result = editor.edit(face, dict(strengths), disentangle, directions=directions)
        return GroupResult(photo=result.photo, crops=[result.crop],
                           model_views=[result.model_view], applied=[result.applied],
                           seconds=result.seconds)
    group = prepare_group(editor, photo)
    return edit_group(editor, group, strengths_for(group, faces, strengths), disentangle,
                      directions)
