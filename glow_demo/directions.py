"""Attribute directions in the model's standardised latent space.

As in OpenAI's Glow demo, the direction for an attribute is the difference of the
mean latents of faces with and without it (CelebA's yes/no labels). Edits add
``strength * direction`` to a face's latent, so **strength 1.0 moves a face by the
whole average difference between CelebA faces with and without the attribute**;
-1.0 removes it by as much. Slider ranges are kept within about +-1.5, where
decoded faces stay faces.

A direction can be *disentangled* from others (in the spirit of InterFaceGAN's
conditional boundaries): its components along the chosen directions are projected
out, e.g. age without gender, so moving it changes those attributes less.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .data import to_unit
from .model import Glow, WeightsError

DIRECTIONS_FILE = "directions.safetensors"
DIRECTIONS_META = "directions.json"

# friendly name -> (CelebA attribute, sign, label). Sign -1 flips a "not X" label
# into the attribute people ask for (Young -> age, No_Beard -> beard).
MAIN_ATTRIBUTES: dict[str, tuple[str, int, str]] = {
    "smile": ("Smiling", 1, "Smile"),
    "age": ("Young", -1, "Age (older)"),
    "blond_hair": ("Blond_Hair", 1, "Blond hair"),
    "black_hair": ("Black_Hair", 1, "Black hair"),
    "brown_hair": ("Brown_Hair", 1, "Brown hair"),
    "gray_hair": ("Gray_Hair", 1, "Gray hair"),
    "bald": ("Bald", 1, "Bald"),
    "bangs": ("Bangs", 1, "Bangs"),
    "glasses": ("Eyeglasses", 1, "Glasses"),
    "beard": ("No_Beard", -1, "Beard"),
    "male": ("Male", 1, "Male (female at -)"),
    "makeup": ("Heavy_Makeup", 1, "Makeup"),
}
OTHER_ATTRIBUTES: dict[str, tuple[str, int, str]] = {
    "wavy_hair": ("Wavy_Hair", 1, "Wavy hair"),
    "straight_hair": ("Straight_Hair", 1, "Straight hair"),
    "mustache": ("Mustache", 1, "Mustache"),
    "goatee": ("Goatee", 1, "Goatee"),
    "sideburns": ("Sideburns", 1, "Sideburns"),
    "five_o_clock_shadow": ("5_o_Clock_Shadow", 1, "5 o'clock shadow"),
    "mouth_open": ("Mouth_Slightly_Open", 1, "Mouth open"),
    "lipstick": ("Wearing_Lipstick", 1, "Lipstick"),
    "pale_skin": ("Pale_Skin", 1, "Pale skin"),
    "rosy_cheeks": ("Rosy_Cheeks", 1, "Rosy cheeks"),
    "high_cheekbones": ("High_Cheekbones", 1, "High cheekbones"),
    "chubby": ("Chubby", 1, "Chubby"),
    "double_chin": ("Double_Chin", 1, "Double chin"),
    "oval_face": ("Oval_Face", 1, "Oval face"),
    "big_nose": ("Big_Nose", 1, "Big nose"),
    "pointy_nose": ("Pointy_Nose", 1, "Pointy nose"),
    "big_lips": ("Big_Lips", 1, "Big lips"),
    "narrow_eyes": ("Narrow_Eyes", 1, "Narrow eyes"),
    "bags_under_eyes": ("Bags_Under_Eyes", 1, "Bags under eyes"),
    "arched_eyebrows": ("Arched_Eyebrows", 1, "Arched eyebrows"),
    "bushy_eyebrows": ("Bushy_Eyebrows", 1, "Bushy eyebrows"),
    "receding_hairline": ("Receding_Hairline", 1, "Receding hairline"),
    "attractive": ("Attractive", 1, "Attractive (CelebA label)"),
    "blurry": ("Blurry", 1, "Blurry"),
    "earrings": ("Wearing_Earrings", 1, "Earrings"),
    "hat": ("Wearing_Hat", 1, "Hat"),
    "necklace": ("Wearing_Necklace", 1, "Necklace"),
    "necktie": ("Wearing_Necktie", 1, "Necktie"),
}
SLIDER_RANGE = (-1.5, 1.5)


@dataclass(frozen=True)
class Attribute:
    name: str
    label: str
    main: bool
    low: float = SLIDER_RANGE[0]
    high: float = SLIDER_RANGE[1]


def weights_digest(model_dir: str | Path) -> str:
    """A short hash of the model weights, so directions are never used with another model."""
    from .model import WEIGHTS_FILE

    return hashlib.sha256((Path(model_dir) / WEIGHTS_FILE).read_bytes()).hexdigest()[:16]


@torch.no_grad()
def encode_all(model: Glow, images_uint8: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Standardised latents of every image (N, D), in float32."""
    device = next(model.parameters()).device
    out = []
    for start in tqdm(range(0, len(images_uint8), batch_size), desc="encoding", unit="batch"):
        batch = to_unit(images_uint8[start : start + batch_size]).to(device)
        out.append(model.encode(batch).cpu())
    return torch.cat(out)


def mean_differences(latents: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
    """(N, D) latents and (N, A) +-1 labels -> (A, D): mean(with) - mean(without)."""
    pos = torch.from_numpy((labels > 0).astype(np.float32))
    neg = 1 - pos
    mean_pos = pos.T @ latents / pos.sum(0).clamp(min=1)[:, None]
    mean_neg = neg.T @ latents / neg.sum(0).clamp(min=1)[:, None]
    return mean_pos - mean_neg


class Directions:
    """Named attribute directions; ``vector(strengths)`` is the latent offset of an edit."""

    def __init__(self, vectors: dict[str, torch.Tensor], meta: dict):
        self.vectors = vectors
        self.meta = meta
        main = [n for n in MAIN_ATTRIBUTES if n in vectors]
        rest = sorted(n for n in vectors if n not in MAIN_ATTRIBUTES)
        labels = {**{k: v[2] for k, v in MAIN_ATTRIBUTES.items()},
                  **{k: v[2] for k, v in OTHER_ATTRIBUTES.items()}}
        self.attributes = [Attribute(n, labels.get(n, n), n in MAIN_ATTRIBUTES)
                           for n in main + rest]

    def direction(self, name: str, disentangle_from: tuple[str, ...] = ()) -> torch.Tensor:
        """One direction, with its components along ``disentangle_from`` removed."""
        if name not in self.vectors:
            known = ", ".join(a.name for a in self.attributes)
            raise KeyError(f"unknown attribute {name!r}; known: {known}")
        d = self.vectors[name]
        others = [self.vectors[o] for o in disentangle_from if o != name]
        if not others:
            return d
        basis = torch.stack(others, 1).double()  # (D, k)
        coef = torch.linalg.lstsq(basis, d.double()[:, None]).solution
        return (d.double() - (basis @ coef)[:, 0]).float()

    def vector(self, strengths: dict[str, float],
               disentangle: dict[str, tuple[str, ...]] | None = None) -> torch.Tensor:
        """Sum of strength * direction over the named attributes."""
        disentangle = disentangle or {}
        total = torch.zeros_like(next(iter(self.vectors.values())))
        for name, strength in strengths.items():
            if strength:
                total += float(strength) * self.direction(name, tuple(disentangle.get(name, ())))
        return total

    def save(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        save_file({k: v.contiguous() for k, v in self.vectors.items()},
                  str(directory / DIRECTIONS_FILE))
        (directory / DIRECTIONS_META).write_text(json.dumps(self.meta, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> Directions:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        path, meta_path = directory / DIRECTIONS_FILE, directory / DIRECTIONS_META
        for p in (path, meta_path):
            if not p.is_file():
                raise WeightsError(f"directions file not found: {p} "
                                   "(rebuild with `python -m glow_demo directions`)")
        try:
            vectors = {k: v.float() for k, v in load_file(str(path)).items()}
            meta = json.loads(meta_path.read_text())
        except (SafetensorError, OSError, ValueError) as err:
            raise WeightsError(f"directions file {path} is corrupt or unreadable: {err}") from None
        digest = weights_digest(directory)
        if meta.get("model_digest") != digest:
            raise WeightsError(f"{path} was computed for another model (digest "
                               f"{meta.get('model_digest')} != {digest}); rebuild it with "
                               "`python -m glow_demo directions`")
        return cls(vectors, meta)


def build_directions(model: Glow, model_dir: str | Path, images_uint8: torch.Tensor,
                     attr_names: list[str], attrs: np.ndarray) -> Directions:
    """Encode labelled faces and take the mean differences, under friendly names."""
    latents = encode_all(model, images_uint8)
    diffs = mean_differences(latents, attrs)
    by_celeba = {name: i for i, name in enumerate(attr_names)}
    vectors, counts = {}, {}
    for friendly, (celeba, sign, _) in {**MAIN_ATTRIBUTES, **OTHER_ATTRIBUTES}.items():
        i = by_celeba[celeba]
        vectors[friendly] = (sign * diffs[i]).float()
        counts[friendly] = int((attrs[:, i] * sign > 0).sum())
    meta = {
        "model_digest": weights_digest(model_dir),
        "method": "mean standardised latent of faces with the attribute minus without",
        "strength_unit": "1.0 = the whole mean difference between CelebA faces with and without",
        "n_images": int(len(images_uint8)),
        "positives": counts,
        "norms": {k: round(float(v.norm()), 3) for k, v in vectors.items()},
    }
    return Directions(vectors, meta)
