"""Fitting ``face_template.json``: where dlib puts the 68 landmarks on CelebA's training
crops, on average. ``align.py`` aligns every photo to it.

A one-off tool, kept apart from alignment: the app only reads the shipped template
(``align.load_template``). About four minutes on two cores:
``python -m glow_demo.template_fit [--celeba DIR] [--n-images 3000] [-o FILE]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import re
from pathlib import Path

import numpy as np
from PIL import Image

from .align import (
    STABLE,
    TEMPLATE_PATH,
    Box,
    NoFaceError,
    Template,
    apply_similarity,
    canonical_boxes,
    find_faces,
    predict_landmarks,
    similarity_fit,
    similarity_scale,
)
from .data import DEFAULT_CELEBA, celeba_crop

FIT_RESOLUTION = 256  # CelebA crops are upscaled to this for the detector (faces ~180 px)


def fit_template(celeba_root: str | Path = DEFAULT_CELEBA, n_images: int = 3000,
                 verbose: bool = False) -> dict:
    """Fit the landmark template from CelebA training crops; returns the JSON payload.

    Each image is cropped exactly as for training (``celeba_crop``) but at
    ``FIT_RESOLUTION`` px, so the detector sees a ~180 px face, and only images where
    exactly one face is found are used (with two, the landmarks may be the wrong face's).
    Landmarks are found the way ``detect_face`` finds them in a user's photo, so the two
    agree: a first pass with the detector's box gives a provisional template and the
    canonical box; a second pass predicts again from the canonical boxes, and those
    landmarks, normalised to 0..1, are averaged. Plain averaging, not Procrustes: the
    template must say where CelebA puts faces in the crop, not only their shape.
    """
    def crop(path: Path) -> np.ndarray:
        with Image.open(path) as im:
            return np.asarray(celeba_crop(im, FIT_RESOLUTION))

    def log(message: str) -> None:
        if verbose:
            print(message, flush=True)

    root = Path(celeba_root)
    paths = [root / "images" / f"{i:06d}.jpg" for i in range(1, n_images + 1)]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        raise FileNotFoundError(f"no CelebA images under {root / 'images'}")
    used, boxes, first = [], [], []
    for k, path in enumerate(paths, 1):
        image = crop(path)
        try:
            found = find_faces(image)
        except NoFaceError:
            found = []
        if len(found) == 1:
            used.append(path)
            boxes.append(found[0])
            first.append(predict_landmarks(image, found))
        if k % 500 == 0:
            log(f"pass 1: {k}/{len(paths)} images, {len(used)} with one face")
    provisional = _template_from(first, boxes)
    shapes = []
    for k, (path, landmarks) in enumerate(zip(used, first, strict=True), 1):
        shapes.append(predict_landmarks(crop(path), canonical_boxes(landmarks, provisional)))
        if k % 500 == 0:
            log(f"pass 2: {k}/{len(used)} images")
    template = _template_from(shapes, boxes)
    unit = 1.0 / FIT_RESOLUTION
    return {
        "landmarks": np.round(template.landmarks, 6).tolist(),
        "box": np.round(template.box, 6).tolist(),
        "n_images": len(used),
        "n_tried": len(paths),
        "images": f"{paths[0].name} .. {paths[-1].name}, where exactly one face was found",
        "date": datetime.date.today().isoformat(),
        "crop": "glow_demo.data.celeba_crop: the central square of an aligned CelebA "
                "image, 148/178 of its width, resized with LANCZOS; fitted at "
                f"{FIT_RESOLUTION} px",
        "coordinates": "x, y in 0..1 of the crop: 0 and 1 are its outer edges, pixel i "
                       "of a crop of side S has its centre at (i + 0.5) / S; box is the "
                       "detector's box on average: centre x, centre y, width",
        "landmarks_model": "dlib frontal_face_detector + shape_predictor_68_face_landmarks "
                           "(face-recognition-models), averaged over the canonical boxes",
        "consistency": consistency([(s + 0.5) * unit for s in shapes], template.landmarks),
        "consistency_detector_box_only": consistency([(s + 0.5) * unit for s in first],
                                                     provisional.landmarks),
    }


def _template_from(shapes: list[np.ndarray], boxes: list[Box]) -> Template:
    """Mean landmarks (FIT_RESOLUTION-px crops -> 0..1) and the mean detector box in the
    template's frame (each box carried by its face's similarity fit to the mean)."""
    normalised = [(s + 0.5) / FIT_RESOLUTION for s in shapes]
    landmarks = np.mean(normalised, axis=0)
    frame = []
    for shape, (left, top, right, bottom) in zip(normalised, boxes, strict=True):
        m = similarity_fit(shape[STABLE], landmarks[STABLE])
        centre = (np.array([left + right, top + bottom]) / 2 + 0.5) / FIT_RESOLUTION
        width = similarity_scale(m) * (right - left) / FIT_RESOLUTION
        frame.append([*apply_similarity(m, centre[None])[0], width])
    return Template(landmarks, np.mean(frame, axis=0))


def consistency(shapes: list[np.ndarray], template: np.ndarray, pixels: int = 64) -> dict:
    """How far each image's landmarks (0..1) lie from the template, in ``pixels``-px units.

    ``residual_after_fit``: after each face's best similarity fit (stable points) - the
    shape variation no alignment can remove. ``raw_no_fit``: with no fit at all -
    CelebA's own alignment error, as our landmarks see it. And the fitted transforms
    themselves: how far each CelebA face is turned, scaled and shifted from the template.
    """
    residual, raw, angle, scale, shift = [], [], [], [], []
    for shape in shapes:
        m = similarity_fit(shape[STABLE], template[STABLE])
        residual.append(np.linalg.norm(apply_similarity(m, shape[STABLE]) - template[STABLE],
                                       axis=1).mean())
        raw.append(np.linalg.norm(shape[STABLE] - template[STABLE], axis=1).mean())
        angle.append(math.degrees(math.atan2(m[1, 0], m[0, 0])))
        scale.append(similarity_scale(m))
        centre = shape[STABLE].mean(axis=0)
        shift.append(np.linalg.norm(apply_similarity(m, centre[None])[0] - centre))

    def stats(values: list[float], unit: float = 1.0) -> dict:
        v = np.asarray(values) * unit
        return {"mean": round(float(v.mean()), 4), "median": round(float(np.median(v)), 4),
                "p95": round(float(np.percentile(v, 95)), 4)}

    return {
        "unit": f"{pixels}-px crop pixels (rotation in degrees, scale as a ratio)",
        "residual_after_fit": stats(residual, pixels),
        "raw_no_fit": stats(raw, pixels),
        "fit_rotation_abs": stats(np.abs(angle).tolist()),
        "fit_rotation_std": round(float(np.std(angle)), 4),
        "fit_scale_std": round(float(np.std(scale)), 4),
        "fit_shift": stats(shift, pixels),
    }


def template_json(payload: dict) -> str:
    """JSON text with each list of numbers on one line (one landmark per line)."""
    text = json.dumps(payload, indent=1)
    return re.sub(r"\[([-+.\deE,\s]+)\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]",
                  text) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m glow_demo.template_fit",
                                     description="Fit the landmark template from CelebA.")
    parser.add_argument("--celeba", default=str(DEFAULT_CELEBA))
    parser.add_argument("--n-images", type=int, default=3000)
    parser.add_argument("-o", "--out", default=str(TEMPLATE_PATH))
    args = parser.parse_args(argv)
    payload = fit_template(args.celeba, args.n_images, verbose=True)
    Path(args.out).write_text(template_json(payload))
    print(f"wrote {args.out}: {payload['n_images']} of {payload['n_tried']} images used")
    for key in ("consistency", "consistency_detector_box_only"):
        print(key, json.dumps(payload[key], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
