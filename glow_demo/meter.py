"""An edit meter of our own: does an edit read as its name, and is it still the person?

For measurement only; the app never loads it. Three instruments, none of them the
thing being measured:

- **Attribute classifiers**: one small CNN with a logit per CelebA label in
  ``METER_ATTRIBUTES``, trained on the 64 px crops of CelebA images 1-9,000 (our pack's
  training split) and scored on 9,001-10,000.
- **Age regressor**: the same CNN with one output, trained on UTKFace's real ages
  (training split) and scored on its held-out split (mean absolute error in years).
  UTKFace's chips are already aligned by their authors, so instead of running dlib on
  each of 20,000 chips we fit *one* similarity transform from chip to our model's crop
  (``utkface.chip_transform``) and warp every
  chip with it. The chip covers only the middle of our crop; the regressor sees only
  ``age_box``, the part every chip covers, so it never learns from edge fill and reads
  the same region of a CelebA-style crop at measurement time.
- **Identity**: dlib's face-recognition ResNet (``face_recognition_models``), the
  distance between the edited photo's descriptor and the original's; dlib's own rule is
  "same person" below 0.6.

``measure`` runs edits through the editor's real path (``FaceEditor.prepare``, one batched
decode per face, paste back into the full photo) and reads the *full pasted-back photo*
back through the original's alignment, as a user would get it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from .data import load_pack
from .skin import skin_brightness
from .utkface import DEFAULT_UTKFACE, chip_coverage, chip_transform, read_utkface, warp_chips

METER_FILE = "meter.safetensors"
METER_META = "meter.json"
METER_ATTRIBUTES: tuple[str, ...] = (
    "Smiling", "Young", "Male", "Eyeglasses", "Black_Hair", "Blond_Hair", "Brown_Hair",
    "Gray_Hair", "Bald", "No_Beard", "Heavy_Makeup", "Mouth_Slightly_Open",
)
# an edit direction -> the meter attribute it should switch on (None: measured by age)
EDIT_TARGETS: dict[str, str | None] = {
    "smile": "Smiling", "age_years": None, "age": None, "glasses": "Eyeglasses",
    "blond_hair": "Blond_Hair", "black_hair": "Black_Hair", "brown_hair": "Brown_Hair",
    "gray_hair": "Gray_Hair", "bald": "Bald", "makeup": "Heavy_Makeup", "male": "Male",
}
SAME_PERSON = 0.6  # dlib's threshold on the face-descriptor distance
AGE_INPUT = 32  # the age box is resized to this many pixels
RESOLUTION = 64


NET_INPUT = 32  # the nets see faces at 32 px: smiles, glasses, hair colour and age read


def small_cnn(outputs: int) -> nn.Module:
    """Conv blocks at 32, 16, 8 and 4 px, global pooling, a linear head: ~0.15 M
    parameters, ~6 M multiply-adds per face, so it trains in minutes on a shared 2-core CPU."""
    def block(a: int, b: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(a, b, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(b),
                nn.ReLU(inplace=True)]

    return nn.Sequential(*block(3, 16, 1), *block(16, 32, 2), *block(32, 64, 2),
                         *block(64, 64, 1), *block(64, 128, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                         nn.Linear(128, outputs))


def _unit(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 faces of any size -> NET_INPUT px, in [-1, 1]."""
    x = images_uint8.float() / 127.5 - 1.0
    if x.shape[-1] != NET_INPUT:
        x = torch.nn.functional.interpolate(x, size=(NET_INPUT, NET_INPUT), mode="area")
    return x


def _fit(net: nn.Module, images: torch.Tensor, targets: torch.Tensor, loss_fn, epochs: int,
         batch_size: int = 64, seed: int = 0, log=print, name: str = "") -> None:
    """Adam with a cosine schedule and random horizontal flips (faces are symmetric)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * ((len(images) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    net.train()
    for epoch in range(epochs):
        order, total, start = torch.randperm(len(images), generator=gen), 0.0, time.time()
        for i in range(0, len(images), batch_size):
            idx = order[i:i + batch_size]
            x = _unit(images[idx])
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x[flip] = x[flip].flip(-1)
            loss = loss_fn(net(x), targets[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        log(f"{name} epoch {epoch + 1}/{epochs}: loss {total / len(images):.4f} "
            f"({time.time() - start:.0f} s)")
    net.eval()


@torch.no_grad()
def _predict(net: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    net.eval()
    return torch.cat([net(_unit(images[i:i + batch_size]))
                      for i in range(0, len(images), batch_size)])


# ----- UTKFace chips in our crop's layout ----------------------------------------------

def age_box(matrix: np.ndarray, resolution: int = RESOLUTION, margin: int = 1
            ) -> tuple[int, ...]:
    """(x0, y0, x1, y1) in the 64 px crop: an axis-aligned box inside the part every
    chip warped by ``matrix`` covers (its bounding box, shrunk until it fits)."""
    inside = chip_coverage(matrix, resolution) > 0
    rows, cols = np.where(inside.any(1))[0], np.where(inside.any(0))[0]
    x0, y0, x1, y1 = int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
    while not inside[y0:y1, x0:x1].all():
        x0, y0, x1, y1 = x0 + 1, y0 + 1, x1 - 1, y1 - 1
    return (x0 + margin, y0 + margin, x1 - margin, y1 - margin)


def age_crops(crops64: torch.Tensor, box: tuple[int, ...]) -> torch.Tensor:
    """The age regressor's input: ``box`` of each 64 px crop, resized to AGE_INPUT."""
    x0, y0, x1, y1 = box
    part = crops64[:, :, y0:y1, x0:x1].float()
    return torch.nn.functional.interpolate(part, size=(AGE_INPUT, AGE_INPUT), mode="area",
                                           antialias=False).round().clamp(0, 255).to(torch.uint8)


# ----- the meter ------------------------------------------------------------------------

@dataclass
class Meter:
    attributes: nn.Module
    age: nn.Module
    box: tuple[int, ...]
    meta: dict

    @torch.no_grad()
    def attribute_probs(self, crops64: torch.Tensor) -> dict[str, np.ndarray]:
        """P(attribute) for (N, 3, 64, 64) uint8 crops, by CelebA attribute name."""
        p = torch.sigmoid(_predict(self.attributes, crops64)).numpy()
        return {name: p[:, i] for i, name in enumerate(METER_ATTRIBUTES)}

    @torch.no_grad()
    def ages(self, crops64: torch.Tensor) -> np.ndarray:
        """Estimated age in years of (N, 3, 64, 64) uint8 crops."""
        return (_predict(self.age, age_crops(crops64, self.box))[:, 0] * 30 + 40).numpy()

    def save(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {f"attributes.{k}": v for k, v in self.attributes.state_dict().items()}
        tensors |= {f"age.{k}": v for k, v in self.age.state_dict().items()}
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(directory / METER_FILE))
        (directory / METER_META).write_text(json.dumps(self.meta, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> Meter:
        from safetensors.torch import load_file

        directory = Path(directory)
        tensors = load_file(str(directory / METER_FILE))
        meta = json.loads((directory / METER_META).read_text())
        attributes, age = small_cnn(len(METER_ATTRIBUTES)), small_cnn(1)
        attributes.load_state_dict({k[11:]: v for k, v in tensors.items()
                                    if k.startswith("attributes.")})
        age.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("age.")})
        return cls(attributes.eval(), age.eval(), tuple(meta["age_box"]), meta)


def train_meter(pack_path: str | Path, utkface: str | Path = DEFAULT_UTKFACE,
                epochs: int = 6, age_epochs: int = 8, utk_limit: int = 0,
                log=print) -> Meter:
    """Train both nets; held-out accuracy and MAE go into ``meta`` (and the log)."""
    torch.manual_seed(0)
    faces = [f for f in read_utkface(utkface) if 10 <= f.age <= 90]
    rng = np.random.default_rng(0)
    matrix = chip_transform(faces)
    box = age_box(matrix)
    train_f = [f for f in faces if f.split == "train"]
    val_f = [f for f in faces if f.split == "val" and 18 <= f.age <= 80]
    if utk_limit:
        train_f = [train_f[i] for i in sorted(rng.choice(len(train_f), min(utk_limit,
                                                                          len(train_f)), False))]
    log(f"UTKFace: {len(train_f)} training chips, {len(val_f)} held-out adults; age box {box}")
    utk_train = age_crops(warp_chips(train_f, matrix), box)
    utk_val = warp_chips(val_f, matrix)
    ages = torch.tensor([[(f.age - 40) / 30] for f in train_f], dtype=torch.float32)
    age = small_cnn(1)
    _fit(age, utk_train, ages, nn.SmoothL1Loss(beta=0.1), age_epochs, log=log, name="age")
    est = (_predict(age, age_crops(utk_val, box))[:, 0] * 30 + 40).numpy()
    true = np.array([f.age for f in val_f])
    mae = float(np.abs(est - true).mean())
    log(f"age: held-out mean absolute error {mae:.2f} years")
    pack = load_pack(pack_path)
    train_x, val_x = pack.split()
    cols = [pack.attr_names.index(a) for a in METER_ATTRIBUTES]
    labels = torch.from_numpy((pack.attrs[:, cols] > 0).astype(np.float32))
    train_y, val_y = labels[:len(train_x)], labels[len(train_x):]
    attributes = small_cnn(len(METER_ATTRIBUTES))
    _fit(attributes, train_x, train_y, nn.BCEWithLogitsLoss(), epochs, log=log,
         name="attributes")
    pred = (_predict(attributes, val_x) > 0).float()
    accuracy = {a: round(float((pred[:, i] == val_y[:, i]).float().mean()), 4)
                for i, a in enumerate(METER_ATTRIBUTES)}
    majority = {a: round(float(max(val_y[:, i].mean(), 1 - val_y[:, i].mean())), 4)
                for i, a in enumerate(METER_ATTRIBUTES)}

    meter = Meter(attributes.eval(), age.eval(), box, {})
    by_decade = {f"{lo}-{lo + 9}": round(float((est - true)[(true >= lo) & (true < lo + 10)]
                                               .mean()), 1) for lo in range(20, 80, 10)}
    meter.meta = {
        "attributes": list(METER_ATTRIBUTES),
        "attribute_accuracy_val": accuracy,
        "attribute_majority_val": majority,
        "age_mae_val": round(mae, 2),
        "age_bias_by_decade_val": by_decade,
        "n_age_val": len(val_f),
        "n_age_train": len(train_f),
        "age_box": list(box),
        "chip_matrix": matrix.round(5).tolist(),
        "train": "CelebA 1-9,000 (attributes), UTKFace training split (age)",
    }
    return meter


# ----- identity --------------------------------------------------------------------------

class Identity:
    """dlib's face-recognition ResNet: 128-d descriptors, same person below 0.6."""

    def __init__(self):
        import dlib

        from .align import dlib_model_path

        net = dlib_model_path("dlib_face_recognition_resnet_model_v1.dat")
        self._net = dlib.face_recognition_model_v1(str(net))
        self._shape = dlib.shape_predictor(str(dlib_model_path()))
        self._dlib = dlib

    def descriptor(self, photo: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
        """Descriptor of the face in ``box`` (landmarks re-found in this photo)."""
        rect = self._dlib.rectangle(*(int(round(v)) for v in box))
        shape = self._shape(photo, rect)
        return np.array(self._net.compute_face_descriptor(photo, shape))


# ----- measuring edits ---------------------------------------------------------------------

def read_back(photo: np.ndarray, aligned) -> torch.Tensor:
    """The 64 px crop of a (possibly edited) photo through the original's alignment,
    resampled exactly as ``AlignedFace.model_input`` resamples the original."""
    from .align import crop_through

    crop = crop_through(photo, aligned.matrix, aligned.size)
    small = Image.fromarray(crop).resize((RESOLUTION, RESOLUTION), Image.LANCZOS)
    return torch.from_numpy(np.asarray(small).copy()).permute(2, 0, 1)


def face_mask(photo_shape: tuple[int, ...], landmarks: np.ndarray, grow: float = 1.15
              ) -> np.ndarray:
    """(H, W) bool: the convex hull of the 68 landmarks, grown about its centre; the
    forehead is added by mirroring the brows' height above them."""
    pts = landmarks.astype(np.float64)
    brow_top = pts[17:27, 1].min()
    chin = pts[8, 1]
    forehead = pts[17:27].copy()
    forehead[:, 1] = brow_top - 0.35 * (chin - brow_top)
    hull_pts = np.concatenate([pts, forehead])
    centre = hull_pts.mean(0)
    hull_pts = centre + grow * (hull_pts - centre)
    mask = np.zeros(photo_shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(hull_pts.astype(np.int32)), 1)
    return mask.astype(bool)


RED_PATCH = 12.0  # cheek_redness above this (0-255 levels) is a visible red patch


def cheek_redness(before: np.ndarray, after: np.ndarray, landmarks: np.ndarray) -> float:
    """The largest rise of red over green and blue, averaged over square blocks an eighth of
    the face wide, on the cheeks (below the eyes, above the mouth's corners, jaw to jaw,
    the lips left out): where issue 10's red patches were. ``before``/``after`` are the
    same picture (H, W, 3) before and after an edit, ``landmarks`` its face's 68 points in
    its pixels. A smile or rosy cheeks move it by up to about 8 levels; the patches
    measured 14-55."""
    pts = np.asarray(landmarks, np.float64)
    y0, y1 = int(pts[36:48, 1].max()), int(pts[[48, 54], 1].max())
    x0, x1 = int(pts[2, 0]), int(pts[14, 0])

    def red(image: np.ndarray) -> np.ndarray:
        image = np.asarray(image, np.float32)
        return image[..., 0] - image[..., 1:].mean(-1)

    rise = red(after) - red(before)
    # not the lips: a smile taken away turns teeth back into red lips, and that is no patch
    mouth = pts[48:60]
    centre = mouth.mean(0)
    mx0, my0 = np.maximum(centre + 1.3 * (mouth.min(0) - centre), 0).astype(int)
    mx1, my1 = np.maximum(np.ceil(centre + 1.3 * (mouth.max(0) - centre)), 0).astype(int)
    rise[my0:my1, mx0:mx1] = 0.0
    rise = rise[max(y0, 0):y1, max(x0, 0):x1]
    k = max(2, round((pts[16, 0] - pts[0, 0]) / 8))
    h, w = rise.shape[0] // k * k, rise.shape[1] // k * k
    if h == 0 or w == 0:
        return float(rise.max()) if rise.size else 0.0
    return float(rise[:h, :w].reshape(h // k, k, w // k, k).mean((1, 3)).max())


@dataclass
class EditRecord:
    photo: str
    attribute: str
    strength: float
    had: float  # P(target attribute) before
    has: float  # after
    age_before: float
    age_after: float
    distance: float  # identity descriptor distance
    outside: float  # mean |change| outside the face, 0..255
    inside: float  # mean |change| inside the face
    applied: float
    redness: float = 0.0  # mean change of red against green and blue inside the face
    blotch: float = 0.0  # 99th percentile of the colour (not brightness) change in the face
    red_patch: float = 0.0  # cheek_redness: the reddest block on the cheeks
    lighter: float = 0.0  # mean change of the skin's brightness (luma), 0..255
    glasses_had: float = 0.0  # P(Eyeglasses) before: an edit may draw frames it is not for
    glasses_has: float = 0.0  # after


def skin_lighter(before: torch.Tensor, after: torch.Tensor) -> float:
    """How much lighter the skin became (``skin.skin_brightness``: eyes, brows, mouth,
    hair and background left out), 0-255, between two read-back (3, 64, 64) crops. An
    edit that is not about the skin should not lighten or darken it: that changes who the
    person looks like (issue 10: smile + age + gray hair turned a dark-skinned man
    light-skinned)."""
    return float(skin_brightness(after) - skin_brightness(before))


def celeba_validation_photos(root: str | Path, n: int) -> list[Path]:
    """The first ``n`` CelebA validation photos (009001.jpg on), never seen in training."""
    from .data import VALIDATION_SIZE

    files = sorted((Path(root) / "images").glob("*.jpg"))[:10_000]
    return files[-VALIDATION_SIZE:][:n]


def edit_strengths(name: str, strength: float,
                   ranges: dict[str, tuple[float, float]] | None = None) -> dict[str, float]:
    """The sliders an edit moves: "smile+age_years" is a combined edit, every part at the
    same strength; with ``ranges`` (slider name -> (low, high)) each part stays within its
    slider's range, as the app's sliders do: at 1.5 that combined edit is smile 1.5 and
    age 1.0 (+30 years, the age slider's end), not +45 years."""
    parts = name.split("+")
    if ranges is None:
        return dict.fromkeys(parts, strength)
    return {p: min(max(strength, ranges[p][0]), ranges[p][1]) if p in ranges else strength
            for p in parts}


def measure(editor, meter: Meter, photos: list[Path], edits: list[tuple[str, float]],
            identity: Identity | None = None, log=print, within_sliders: bool = False
            ) -> list[EditRecord]:
    """Every edit of every photo, through the editor's real path, read back from the
    full pasted-back photo. Photos the aligner rejects are skipped. ``within_sliders``:
    each part of an edit within its slider's range (``edit_strengths``)."""
    from .photo import PhotoError

    identity = identity or Identity()
    ranges = {a.name: (a.low, a.high) for a in editor.attributes} if within_sliders else None
    records: list[EditRecord] = []
    start = time.time()
    for k, path in enumerate(photos):
        try:
            face = editor.prepare(path)
        except PhotoError:
            continue
        results = editor.edit_batch(face, [edit_strengths(name, s, ranges) for name, s in edits])
        photos_out = [np.asarray(r.photo) for r in results]
        crops = torch.stack([read_back(p, face.aligned) for p in [face.photo] + photos_out])
        probs = meter.attribute_probs(crops)
        ages = meter.ages(crops)
        ref = identity.descriptor(face.photo, face.aligned.box)
        mask = face_mask(face.photo.shape, face.aligned.landmarks)
        for j, ((name, s), result, out) in enumerate(zip(edits, results, photos_out,
                                                         strict=True)):
            target = EDIT_TARGETS.get(name)
            signed = out.astype(np.float32) - face.photo
            change = np.abs(signed).mean(2)
            colour = np.abs(signed - signed.mean(2, keepdims=True)).max(2)
            records.append(EditRecord(
                photo=Path(path).name, attribute=name, strength=s,
                had=float(probs[target][0]) if target else float("nan"),
                has=float(probs[target][j + 1]) if target else float("nan"),
                age_before=float(ages[0]), age_after=float(ages[j + 1]),
                distance=float(np.linalg.norm(identity.descriptor(out, face.aligned.box) - ref)),
                outside=float(change[~mask].mean()) if (~mask).any() else 0.0,
                inside=float(change[mask].mean()), applied=result.applied,
                redness=float((signed[..., 0] - signed[..., 1:].mean(2))[mask].mean()),
                blotch=float(np.percentile(colour[mask], 99)),
                red_patch=cheek_redness(face.photo, out, face.aligned.landmarks),
                lighter=skin_lighter(crops[0], crops[j + 1]),
                glasses_had=float(probs["Eyeglasses"][0]),
                glasses_has=float(probs["Eyeglasses"][j + 1])))
        if (k + 1) % 20 == 0:
            log(f"measured {k + 1}/{len(photos)} photos ({time.time() - start:.0f} s)")
    return records


def summarise(records: list[EditRecord]) -> list[dict]:
    """One row per (attribute, strength): the share of faces without the attribute that
    gain it (with it that lose it, for negative strengths), the mean change of estimated
    age, the share still the same person, the mean change outside/inside the face (0-255),
    the mean reddening of the face, its 99th-percentile colour change, the share of
    faces with a red patch on the cheeks (``cheek_redness`` over ``RED_PATCH``), and how
    much lighter the skin became (``skin_lighter``)."""
    rows = []
    keys = sorted({(r.attribute, r.strength) for r in records})
    for name, s in keys:
        group = [r for r in records if (r.attribute, r.strength) == (name, s)]
        row = {"edit": name, "strength": s, "n": len(group)}
        if EDIT_TARGETS.get(name):
            if s > 0:
                base = [r for r in group if r.had < 0.5]
                row["flip"] = (np.mean([r.has >= 0.5 for r in base]) if base else float("nan"))
            else:
                base = [r for r in group if r.had >= 0.5]
                row["flip"] = (np.mean([r.has < 0.5 for r in base]) if base else float("nan"))
            row["n_flip"] = len(base)
        row["d_age"] = float(np.mean([r.age_after - r.age_before for r in group]))
        row["same"] = float(np.mean([r.distance < SAME_PERSON for r in group]))
        row["dist"] = float(np.mean([r.distance for r in group]))
        row["outside"] = float(np.mean([r.outside for r in group]))
        row["inside"] = float(np.mean([r.inside for r in group]))
        row["applied"] = float(np.mean([r.applied for r in group]))
        row["redness"] = float(np.mean([r.redness for r in group]))
        row["blotch"] = float(np.mean([r.blotch for r in group]))
        row["red_patches"] = float(np.mean([r.red_patch > RED_PATCH for r in group]))
        row["lighter"] = float(np.mean([r.lighter for r in group]))
        if EDIT_TARGETS.get(name) != "Eyeglasses":
            bare = [r for r in group if r.glasses_had < 0.5]
            row["glasses_drawn"] = (float(np.mean([r.glasses_has >= 0.5 for r in bare]))
                                    if bare else float("nan"))
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| edit | strength | faces | gains (s>0) / loses (s<0) | Δ age (years) | same "
             "person | descriptor distance | mean abs Δ outside face | mean abs Δ inside face "
             "| redness | colour p99 | red patches | lighter | glasses drawn |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        flip = (f"{r['flip']:.0%} of {r['n_flip']}" if "flip" in r and r["n_flip"] else "–")
        lines.append(f"| {r['edit']} | {r['strength']:+g} | {r['n']} | {flip} | "
                     f"{r['d_age']:+.1f} | {r['same']:.0%} | {r['dist']:.3f} | "
                     f"{r['outside']:.2f} | {r['inside']:.2f} | {r['redness']:+.1f} | "
                     f"{r['blotch']:.0f} | {r.get('red_patches', float('nan')):.0%} | "
                     f"{r.get('lighter', float('nan')):+.1f} | "
                     + (f"{r['glasses_drawn']:.0%} |" if "glasses_drawn" in r else "– |"))
    return "\n".join(lines)
