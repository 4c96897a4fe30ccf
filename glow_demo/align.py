"""Face alignment: turn an ordinary photo into the crop the model was trained on, and back.

The model only knows CelebA's 64 x 64 training crop (``data.celeba_crop``): faces at one
position, size and angle. So a user's photo is aligned to *that crop*, not to some
generic face layout:

1. ``photo.load_photo`` turns whatever the user gave (path, bytes, PIL image, numpy
   array; any mode, EXIF-rotated, 16-bit, ...) into plain 8-bit RGB, refusing bad input
   with a ``PhotoError`` whose message can be shown to the user as it is.
2. dlib finds the largest face and its 68 landmarks (``detect_face``), averaged over
   boxes laid out from the face itself, so they do not hop with the detector's grid.
3. A similarity transform (rotation, uniform scale, translation) takes the stable
   landmarks onto ``face_template.json``: where the same detector puts the same landmarks
   on CelebA's training crops, on average (fitted by ``template_fit.py``). The photo is
   warped to a square crop at its *own* resolution, so no detail is lost before the
   editor needs it.
4. ``paste_back`` warps an edit (a change of that crop) back into the full photo
   through a feathered mask, so only the face region changes and no seam shows.

Coordinates: pixel centres sit on integers (pixel i spans i - 0.5 .. i + 0.5), which is
what dlib and OpenCV use. The template is normalised to the crop: 0 and 1 are the crop's
outer edges, so pixel i of a crop of side S has its centre at (i + 0.5) / S.

The template is fitted once, by ``template_fit.py``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .photo import PhotoError, PhotoSource, load_photo

TEMPLATE_PATH = Path(__file__).with_name("face_template.json")

MIN_FACE_PX = 32  # dlib box width; the 64 px training crop has faces ~45 px wide
CROP_MIN, CROP_MAX = 64, 1024  # side of the aligned crop, in pixels
DETECT_MAX_SIDE = 1024  # detect on a copy this size: HOG detection cost grows with area
WEAK_SCORE = 0.5  # dlib detection score; real faces score ~1.5 (median on CelebA)
LANDMARK_FACE_PX = 200  # landmarks are predicted on faces about this wide
# Boxes the landmarks are averaged over, around the canonical box (see detect_face):
# centre shift (in box widths) and size.
JITTER = [(dx, dy, size) for size in (0.94, 1.0, 1.06)
          for dx, dy in ((0, 0), (0.03, 0), (-0.03, 0), (0, 0.03), (0, -0.03))]

# dlib's 68 points: 0-16 jaw, 17-26 brows, 27-35 nose, 36-47 eyes, 48-67 mouth. The jaw
# line is guessed on faces turned away or in shadow, so it does not steer the alignment.
STABLE = np.arange(17, 68)
LEFT_EYE, RIGHT_EYE = np.arange(36, 42), np.arange(42, 48)  # as seen in the image


class NoFaceError(PhotoError):
    """No face was found in the photo."""


class FaceTooSmallError(PhotoError):
    """A face was found, but too few pixels across to edit."""


# ----- detection and landmarks ----------------------------------------------------------

_models_lock = threading.Lock()  # guards lazy loading *and* every detector call
_models: tuple | None = None


LANDMARK_MODEL = "shape_predictor_68_face_landmarks.dat"


def dlib_model_path(name: str = LANDMARK_MODEL) -> Path:
    """A dlib model file shipped in face-recognition-models: the 68-point landmark model
    alignment uses, or another beside it (the edit meter's face-recognition net).
    face_recognition_models' own helper imports pkg_resources, which current setuptools
    no longer ships; the data files are simply inside the package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face-recognition-models is not installed (pip install it)")
    for location in spec.submodule_search_locations:
        path = Path(location) / "models" / name
        if path.is_file():
            return path
    raise RuntimeError(f"{name} not found in face-recognition-models")


def _dlib_models() -> tuple:
    """(detector, predictor), loaded once. Call with ``_models_lock`` held."""
    global _models
    if _models is None:
        import dlib  # imported here: ~0.3 s, and only alignment needs it

        _models = (dlib.get_frontal_face_detector(),
                   dlib.shape_predictor(str(dlib_model_path())))
    return _models


@dataclass(frozen=True)
class Detection:
    """A face in an image: its 68 landmarks and box, in that image's pixels."""

    landmarks: np.ndarray  # (68, 2) float64, x, y
    box: tuple[float, float, float, float]  # the detector's: left, top, right, bottom
    n_faces: int  # how many faces were found in all


Box = tuple[float, float, float, float]  # left, top, right (exclusive), bottom (exclusive)


def find_faces(image: np.ndarray) -> list[Box]:
    """Boxes of the faces in an (H, W, 3) uint8 RGB image; raise ``NoFaceError``.

    dlib's HOG detector finds faces of about 80 px and up, and costs time in proportion
    to the image's area, so large photos are searched on a copy at most
    ``DETECT_MAX_SIDE`` wide, and only if that finds nothing, on a larger one. Small
    photos, where nothing is found, are searched again upsampled (dlib's own pyramid).
    """
    height, width = image.shape[:2]
    long_side = max(height, width)
    attempts: list[tuple[float, int]] = [(min(1.0, DETECT_MAX_SIDE / long_side), 0)]
    if long_side > DETECT_MAX_SIDE:
        attempts.append((min(1.0, 2 * DETECT_MAX_SIDE / long_side), 0))
    else:  # upsample until the image is ~512 px or more, at most twice
        attempts.append((1.0, 1 if long_side >= 256 else 2))
    with _models_lock:
        detector, _ = _dlib_models()
        for scale, upsample in attempts:
            small = image if scale == 1.0 else cv2.resize(
                image, (round(width * scale), round(height * scale)),
                interpolation=cv2.INTER_AREA)
            rects, scores, _ = detector.run(np.ascontiguousarray(small), upsample, 0.0)
            if len(rects):
                # Weak detections (a badge, a patterned shirt) count only when there is
                # nothing stronger: otherwise one could be "the largest face".
                keep = min(max(scores), WEAK_SCORE)
                return [(r.left() / scale, r.top() / scale, (r.right() + 1) / scale,
                         (r.bottom() + 1) / scale)
                        for r, s in zip(rects, scores, strict=True) if s >= keep]
    raise NoFaceError("No face found in the photo. Try a well-lit, front-facing portrait.")


def detect_face(image: np.ndarray, template: Template | None = None) -> Detection:
    """The largest face in an (H, W, 3) uint8 RGB image, with steady landmarks.

    dlib's detector boxes come in 20 % size steps on an 8 px grid, and the landmark
    predictor's answer moves with its box: the same face framed a little differently
    moved the landmarks by ~2 % of the face. So the landmarks are predicted twice: once
    from the detector's box, then averaged over boxes laid out from those landmarks
    (the template's canonical box, slightly shifted and scaled), which depends on the
    face, not on where the detector's grid happened to fall (~0.3 % of the face).
    """
    boxes = find_faces(image)
    box = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    return _steady_detection(image, box, len(boxes), template)


def detect_faces(image: np.ndarray, template: Template | None = None,
                 min_face_px: float = 0) -> list[Detection]:
    """Every face in an (H, W, 3) uint8 RGB image at least ``min_face_px`` wide, left to
    right, each with steady landmarks as in ``detect_face``; raise ``NoFaceError``."""
    boxes = find_faces(image)
    kept = sorted((b for b in boxes if b[2] - b[0] >= min_face_px), key=lambda b: b[0])
    return [_steady_detection(image, box, len(boxes), template) for box in kept]


def _steady_detection(image: np.ndarray, box: Box, n_faces: int,
                      template: Template | None) -> Detection:
    first = predict_landmarks(image, [box])
    landmarks = predict_landmarks(image, canonical_boxes(first, template or load_template()))
    return Detection(landmarks=landmarks, box=box, n_faces=n_faces)


def canonical_boxes(landmarks: np.ndarray, template: Template) -> list[Box]:
    """The template's detector box mapped onto this face, plus its ``JITTER`` neighbours."""
    unit = similarity_fit(landmarks[STABLE], template.landmarks[STABLE])
    to_image = cv2.invertAffineTransform(unit)
    cx, cy = apply_similarity(to_image, template.box[None, :2])[0]
    width = template.box[2] / similarity_scale(unit)
    boxes = []
    for dx, dy, size in JITTER:
        x, y, half = cx + dx * width, cy + dy * width, size * width / 2
        boxes.append((x - half, y - half, x + half, y + half))
    return boxes


def predict_landmarks(image: np.ndarray, boxes: list[Box]) -> np.ndarray:
    """The 68 landmarks predicted from each box, averaged; in image pixels.

    dlib's shape predictor reads single pixels, so on a 40 px face its points snap to a
    coarse grid and on a 2000 px face it reads noise. The region around the face is
    therefore resampled so the face is ~``LANDMARK_FACE_PX`` wide (when it is far from
    that) - close to the ~180 px faces the template was fitted on.
    """
    import dlib

    edges = np.asarray(boxes, dtype=np.float64)  # (n, 4)
    face = float(np.mean(edges[:, 2] - edges[:, 0]))
    factor = LANDMARK_FACE_PX / max(face, 1.0)
    x0 = y0 = 0
    fx = fy = 1.0
    region = image
    if not 2 / 3 <= factor <= 3 / 2:
        height, width = image.shape[:2]
        x0, y0 = (max(0, math.floor(v - face / 2)) for v in edges[:, :2].min(axis=0))
        x1 = min(width, math.ceil(edges[:, 2].max() + face / 2))
        y1 = min(height, math.ceil(edges[:, 3].max() + face / 2))
        size = (max(1, round((x1 - x0) * factor)), max(1, round((y1 - y0) * factor)))
        interpolation = cv2.INTER_CUBIC if factor > 1 else cv2.INTER_AREA
        region = cv2.resize(image[y0:y1, x0:x1], size, interpolation=interpolation)
        fx, fy = size[0] / (x1 - x0), size[1] / (y1 - y0)  # exact, after rounding
    # box edges -> region pixels (pixel centres on integers, see the module docstring)
    left, right = ((edges[:, [0, 2]] - x0 + 0.5) * fx - 0.5).round().astype(int).T
    top, bottom = ((edges[:, [1, 3]] - y0 + 0.5) * fy - 0.5).round().astype(int).T
    region = np.ascontiguousarray(region)
    with _models_lock:
        _, predictor = _dlib_models()
        shapes = [predictor(region, dlib.rectangle(int(a), int(b), int(c) - 1, int(d) - 1))
                  for a, b, c, d in zip(left, top, right, bottom, strict=True)]
    points = np.mean([[(p.x, p.y) for p in s.parts()] for s in shapes], axis=0)
    return np.column_stack([(points[:, 0] + 0.5) / fx - 0.5 + x0,
                            (points[:, 1] + 0.5) / fy - 0.5 + y0])


# ----- the template and the similarity fit -----------------------------------------------

@dataclass(frozen=True, eq=False)
class Template:
    """Where CelebA's training crops have their landmarks, normalised to the crop."""

    landmarks: np.ndarray  # (68, 2), x, y in 0..1 (see the module docstring)
    box: np.ndarray  # (3,) the detector's box, on average: centre x, centre y, width


_template_cache: dict[Path, Template] = {}


def load_template(path: str | Path = TEMPLATE_PATH) -> Template:
    """The shipped template (``face_template.json``), read once."""
    path = Path(path)
    if path not in _template_cache:
        data = json.loads(path.read_text())
        template = Template(np.asarray(data["landmarks"], dtype=np.float64),
                            np.asarray(data["box"], dtype=np.float64))
        if template.landmarks.shape != (68, 2) or template.box.shape != (3,):
            raise ValueError(f"{path}: expected 68 x 2 landmarks and a 3-number box")
        _template_cache[path] = template
    return _template_cache[path]


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2 x 3 similarity (rotation, uniform scale, shift) taking src onto dst.

    Least squares in closed form (Umeyama's solution, written with complex numbers: a
    2-D similarity is z -> c z + t for complex c): every point counts, none is thrown
    out as an outlier, so the fit cannot jump between faces.
    """
    z = src[:, 0] + 1j * src[:, 1]
    w = dst[:, 0] + 1j * dst[:, 1]
    zc, wc = z - z.mean(), w - w.mean()
    c = np.vdot(zc, wc) / np.vdot(zc, zc).real  # sum(conj(zc) * wc) / sum(|zc|^2)
    t = w.mean() - c * z.mean()
    return np.array([[c.real, -c.imag, t.real], [c.imag, c.real, t.imag]])


def apply_similarity(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def similarity_scale(matrix: np.ndarray) -> float:
    return float(math.sqrt(abs(np.linalg.det(matrix[:, :2]))))


# ----- alignment ------------------------------------------------------------------------

@dataclass(eq=False)
class AlignedFace:
    """A face warped to the training crop's layout, at the photo's own resolution."""

    crop: np.ndarray  # (S, S, 3) uint8
    matrix: np.ndarray  # (2, 3) float64: photo pixel -> crop pixel
    landmarks: np.ndarray  # (68, 2) in photo pixels
    n_faces: int  # faces found in the photo (align_face: the largest one is this)
    box: tuple[float, float, float, float]  # detector box in photo pixels: l, t, r, b
    photo_size: tuple[int, int]  # (width, height) of the photo it came from

    @property
    def size(self) -> int:
        return self.crop.shape[0]

    def model_input(self, resolution: int = 64) -> Image.Image:
        """The crop at the model's resolution, LANCZOS-filtered like ``celeba_crop``."""
        return Image.fromarray(self.crop).resize((resolution, resolution), Image.LANCZOS)


def align_face(photo: PhotoSource, template: Template | None = None) -> AlignedFace:
    """Find the largest face in a photo and warp it onto the training crop's layout.

    The crop side S is chosen so the crop has about as many pixels across the face as
    the photo (clamped to [64, 1024]): the editor's change is later added at that
    resolution, so a sharp photo stays sharp. Areas beyond the photo's edges are filled
    by repeating the edge pixels: the model never saw black borders.
    """
    image = np.asarray(load_photo(photo))
    template = load_template() if template is None else template
    found = detect_face(image, template)
    face_width = found.box[2] - found.box[0]
    if face_width < MIN_FACE_PX:
        raise FaceTooSmallError(
            f"The face is only about {face_width:.0f} pixels wide; it needs at least "
            f"{MIN_FACE_PX} (100 or more looks best). Try a larger or closer photo.")
    return _align(image, found, template)


def align_faces(photo: PhotoSource, template: Template | None = None) -> list[AlignedFace]:
    """Every face in a photo at least ``MIN_FACE_PX`` wide, aligned like ``align_face``,
    left to right (by the left edge of the detector's box). The largest one is aligned
    exactly as ``align_face`` aligns it. Raises ``NoFaceError`` or, when every face is
    too small, ``FaceTooSmallError``."""
    image = np.asarray(load_photo(photo))
    template = load_template() if template is None else template
    found = detect_faces(image, template, MIN_FACE_PX)
    if not found:
        raise FaceTooSmallError(
            f"Every face in the photo is under {MIN_FACE_PX} pixels wide (100 or more looks "
            "best). Try a larger or closer photo.")
    return [_align(image, detection, template) for detection in found]


def _align(image: np.ndarray, found: Detection, template: Template) -> AlignedFace:
    """Warp one detected face onto the template's crop (see ``align_face``)."""
    height, width = image.shape[:2]
    unit = similarity_fit(found.landmarks[STABLE], template.landmarks[STABLE])  # -> 0..1
    size = int(np.clip(round(1.0 / similarity_scale(unit)), CROP_MIN, CROP_MAX))
    # crop pixel = S * unit - 0.5 (pixel centres at (i + 0.5) / S)
    matrix = unit * size
    matrix[:, 2] -= 0.5
    crop = crop_through(image, matrix, size)
    return AlignedFace(crop=crop, matrix=matrix, landmarks=found.landmarks,
                       n_faces=found.n_faces, box=found.box, photo_size=(width, height))


def crop_through(photo: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The size x size crop that ``matrix`` (photo -> crop pixels) maps ``photo`` onto,
    resampled as ``align_face`` crops: so a photo edited and pasted back can be read
    through the original's alignment exactly as the original was (the edit meter)."""
    return _warp(photo, cv2.invertAffineTransform(matrix), (size, size), cv2.INTER_CUBIC,
                 cv2.BORDER_REPLICATE)


def _footprint(matrix: np.ndarray, width: int, height: int, bounds: tuple[int, int],
               margin: int = 3) -> tuple[int, int, int, int]:
    """The integer rectangle (x0, y0, x1, y1) within ``bounds`` that ``matrix`` maps a
    width x height image onto, with a margin for the interpolation kernel."""
    corners = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [-0.5, height - 0.5],
                        [width - 0.5, height - 0.5]])
    mapped = apply_similarity(matrix, corners)
    x0, y0 = np.floor(mapped.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(mapped.max(axis=0)).astype(int) + margin + 1
    return (max(0, x0), max(0, y0), min(bounds[0], x1), min(bounds[1], y1))


def _warp(src: np.ndarray, dst_to_src: np.ndarray, size: tuple[int, int],
          interpolation: int, border: int) -> np.ndarray:
    """Resample ``src`` onto a ``size`` (w, h) image, dst pixel p <- src pixel M p.

    Only the part of ``src`` that the output reads is touched (a 12 MP photo costs no
    more than a small one), and when the output shrinks the source by more than 1.5x,
    that part is first reduced by pixel-area averaging: ``warpAffine`` interpolates
    from 2-4 neighbours only, which would alias fine detail.
    """
    shrink = 1.0 / similarity_scale(dst_to_src)  # output pixels per source pixel
    margin = math.ceil(3 / min(shrink, 1.0))  # the kernel's reach, in source pixels
    x0, y0, x1, y1 = _footprint(dst_to_src, size[0], size[1], (src.shape[1], src.shape[0]),
                                margin)
    if x1 <= x0 or y1 <= y0:  # reads nothing inside src: all border
        x0, y0, x1, y1 = 0, 0, src.shape[1], src.shape[0]
    part = src[y0:y1, x0:x1]
    matrix = dst_to_src.copy()
    matrix[:, 2] -= (x0, y0)
    if shrink < 2 / 3:
        w, h = max(1, round(part.shape[1] * shrink)), max(1, round(part.shape[0] * shrink))
        fx, fy = w / part.shape[1], h / part.shape[0]
        part = cv2.resize(part, (w, h), interpolation=cv2.INTER_AREA)
        matrix = np.diag([fx, fy]) @ matrix
        matrix[:, 2] += (0.5 * fx - 0.5, 0.5 * fy - 0.5)  # pixel-centre convention
    return cv2.warpAffine(np.ascontiguousarray(part), matrix, size,
                          flags=interpolation | cv2.WARP_INVERSE_MAP, borderMode=border,
                          borderValue=0)


# ----- paste back ----------------------------------------------------------------------

def feather_mask(size: int, feather: float = 0.15) -> np.ndarray:
    """(S, S) float32 weights: 1 inside, easing to 0 at the crop's edges.

    Each axis ramps up with a smoothstep over ``feather`` of the side, and the mask is
    the product of the two ramps, so it is smooth (no kink, no visible line) and has
    rounded corners. Weight 0 at the edge means the edit fades out before the crop ends.
    """
    t = (np.arange(size, dtype=np.float32) + 0.5) / (size * feather)
    t = np.clip(np.minimum(t, t[::-1]), 0.0, 1.0)
    ramp = t * t * (3.0 - 2.0 * t)
    return np.outer(ramp, ramp)


def paste_back(photo: np.ndarray, face: AlignedFace, delta: np.ndarray,
               feather: float = 0.15) -> np.ndarray:
    """Add an edit of the aligned crop (edited - original, (S, S, 3), 0..255 units) to
    the photo it came from, through a feathered mask; returns a new uint8 photo.

    Only the rectangle the crop covers is warped and touched. A zero ``delta`` returns
    the photo unchanged, byte for byte: the warped change is exactly 0 everywhere and
    integers survive the float round trip.
    """
    size = face.size
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise ValueError(f"photo must be (H, W, 3) uint8, got {photo.shape} {photo.dtype}")
    if (photo.shape[1], photo.shape[0]) != tuple(face.photo_size):
        raise ValueError(f"photo is {photo.shape[1]} x {photo.shape[0]}, but the face was "
                         f"aligned in a {face.photo_size[0]} x {face.photo_size[1]} photo")
    if delta.shape != (size, size, 3):
        raise ValueError(f"delta must be ({size}, {size}, 3), got {delta.shape}")
    out = photo.copy()
    if not np.any(delta):
        return out
    height, width = photo.shape[:2]
    crop_to_photo = cv2.invertAffineTransform(face.matrix)
    x0, y0, x1, y1 = _footprint(crop_to_photo, size, size, (width, height))
    if x1 <= x0 or y1 <= y0:
        return out
    weighted = delta.astype(np.float32) * feather_mask(size, feather)[..., None]
    photo_to_crop = face.matrix.copy()  # for the rectangle's pixels: shift by its corner
    photo_to_crop[:, 2] += face.matrix[:, :2] @ (x0, y0)
    change = _warp(weighted, photo_to_crop, (x1 - x0, y1 - y0), cv2.INTER_LINEAR,
                   cv2.BORDER_CONSTANT)
    region = out[y0:y1, x0:x1].astype(np.float32) + change
    out[y0:y1, x0:x1] = np.clip(np.round(region), 0, 255).astype(np.uint8)
    return out


def paste_back_many(photo: np.ndarray, faces: list[AlignedFace],
                    deltas: list[np.ndarray | None], feather: float = 0.15,
                    spread: float = 0.15) -> np.ndarray:
    """``paste_back`` for several faces of one photo at once; a ``None`` delta is a face
    left as it is. One face is exactly ``paste_back``.

    The crops of neighbouring faces overlap (a crop is about twice as wide as its face),
    so each one's feathered mask is shared out where they meet: face i's change counts
    with weight ``m_i * s_i``, where ``m_i`` is its feathered mask and ``s_i`` its share,
    ``m_i c_i / sum_j m_j c_j``, with ``c`` a Gaussian of the distance from each crop's
    centre (``spread`` of the crop side). Near a face's own centre its own change wins;
    between two faces the changes cross-fade; every weight is smooth, so no seam shows.
    Faces left as they are (``None``) still take their share, so an edit of a neighbour
    does not spill onto them. All deltas ``None`` or zero: the photo, byte for byte.
    """
    if len(faces) != len(deltas):
        raise ValueError(f"{len(faces)} faces but {len(deltas)} deltas")
    edited = [i for i, d in enumerate(deltas) if d is not None and np.any(d)]
    if not edited:
        return photo.copy()
    if len(faces) == 1:
        return paste_back(photo, faces[0], deltas[0], feather)
    height, width = photo.shape[:2]
    rects = [_footprint(cv2.invertAffineTransform(f.matrix), f.size, f.size, (width, height))
             for f in faces]
    x0 = min(r[0] for r in rects)
    y0 = min(r[1] for r in rects)
    x1 = max(r[2] for r in rects)
    y1 = max(r[3] for r in rects)
    if x1 <= x0 or y1 <= y0:
        return photo.copy()
    change = np.zeros((y1 - y0, x1 - x0, 3), np.float32)
    weight_sum = np.zeros((y1 - y0, x1 - x0), np.float32)  # sum_j m_j c_j
    own = {}  # i -> m_i^2 c_i, for the edited faces
    for i, face in enumerate(faces):
        size = face.size
        if face.photo_size != (width, height):
            raise ValueError("every face must come from this photo")
        t = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
        r2 = t[None, :] ** 2 + t[:, None] ** 2
        mask = feather_mask(size, feather)
        centrality = np.exp(-r2 / (2 * spread**2)).astype(np.float32)
        photo_to_crop = face.matrix.copy()
        photo_to_crop[:, 2] += face.matrix[:, :2] @ (x0, y0)
        weights = _warp(np.dstack([mask * centrality, mask * mask * centrality]),
                        photo_to_crop, (x1 - x0, y1 - y0), cv2.INTER_LINEAR,
                        cv2.BORDER_CONSTANT)
        weight_sum += weights[..., 0]
        if i in edited:
            if deltas[i].shape != (size, size, 3):
                raise ValueError(f"delta {i} must be ({size}, {size}, 3), got "
                                 f"{deltas[i].shape}")
            moved = _warp(deltas[i].astype(np.float32), photo_to_crop, (x1 - x0, y1 - y0),
                          cv2.INTER_LINEAR, cv2.BORDER_CONSTANT)
            own[i] = (weights[..., 1], moved)
    for squared, moved in own.values():
        change += moved * squared[..., None]
    share = np.where(weight_sum > 0, 1.0 / np.maximum(weight_sum, 1e-30), 0.0)
    change *= share[..., None].astype(np.float32)
    out = photo.copy()
    region = out[y0:y1, x0:x1].astype(np.float32) + change
    out[y0:y1, x0:x1] = np.clip(np.round(region), 0, 255).astype(np.uint8)
    return out
