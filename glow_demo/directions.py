"""Attribute directions in the model's standardised latent space, and how an edit uses them.

A direction is a vector in the latent; an edit adds ``strength * direction`` to a face's
latent and decodes. **Strength 1.0 is a clear, typical edit**: for the CelebA labels the
held-out gap between the median face without the attribute and the 95th-percentile face
with it, for ``age_years`` +30 years (how each is fitted: ``direction_fitting`` and
``age_direction``). Sliders moved together count what their directions share once
(``combine_moves``); each face stops where held-out faces stop (``Directions.strengths_for``
over the ranges stored with the fit). Slider ranges are kept within about +-1.5, where
decoded faces stay faces.

A direction can be *disentangled* from others (in the spirit of InterFaceGAN's
conditional boundaries): its components along the chosen directions are projected
out, e.g. age without gender, so moving it changes those attributes less.

The directions of one model are stored beside its weights (``DIRECTIONS_FILE``, their
meta in ``DIRECTIONS_META``) and tied to them by the weights' digest.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .model import WEIGHTS_FILE, WeightsError

DIRECTIONS_FILE = "directions.safetensors"
DIRECTIONS_META = "directions.json"

# friendly name -> (CelebA attribute, sign, label). Sign -1 flips a "not X" label
# into the attribute people ask for (Young -> age, No_Beard -> beard).
MAIN_ATTRIBUTES: dict[str, tuple[str, int, str]] = {
    "smile": ("Smiling", 1, "Smile"),
    "age": ("Young", -1, "Age (CelebA 'Young' label)"),
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
# Directions not built from a CelebA label: name -> label.
AGE_YEARS = "age_years"
EXTRA_ATTRIBUTES: dict[str, str] = {
    AGE_YEARS: "Age (+30 years, UTKFace)",
}
# The headline sliders, in order. The age slider is the UTKFace one: measured against
# CelebA's `age`, it adds as much age per unit with a third of the gender change and
# without repainting hair and background (see README); `age` stays among the rest.
MAIN_ORDER: tuple[str, ...] = tuple(n if n != "age" else "age_years" for n in MAIN_ATTRIBUTES)
# Directions kept beside the sliders but not offered as sliders: name -> the slider's
# direction it is a version of. "glasses_held" is the glasses direction fitted with the
# face's colour held (``direction_fitting.COLOUR_ON_THE_SKIN``): what the age, male and
# bald steps take out of themselves (``editor.HELD_IN_PIXELS``).
HELD_ONLY: dict[str, str] = {"glasses_held": "glasses"}
SLIDER_RANGE = (-1.5, 1.5)
# sliders with a range of their own: age_years' 1.0 is already +30 years, and at +45 the
# edit meter found the person kept in too few faces
SLIDER_RANGES: dict[str, tuple[float, float]] = {"age_years": (-1.0, 1.0)}


@dataclass(frozen=True)
class Attribute:
    name: str
    label: str
    main: bool
    low: float = SLIDER_RANGE[0]
    high: float = SLIDER_RANGE[1]


def weights_digest(model_dir: str | Path) -> str:
    """A short hash of the model weights, so directions are never used with another model."""
    return hashlib.sha256((Path(model_dir) / WEIGHTS_FILE).read_bytes()).hexdigest()[:16]


# How far an edit may take a face: each direction keeps a range of positions along its
# unit vector (read from held-out faces by ``direction_fitting.edit_range``); an edit is
# linear up to the range's knee and then approaches its ceiling smoothly, never past it.
def _soften(target: float, start: float, knee: float, ceiling: float) -> float:
    """Where a face at ``start`` moving up to ``target`` ends: ``target`` up to the knee
    (or the start, if it is past the knee), then smoothly towards ``ceiling``, never past
    it; a face already at or past the ceiling stays where it is."""
    knee = max(knee, start)
    if target <= knee:
        return target
    if ceiling <= knee:
        return knee
    return knee + (ceiling - knee) * math.tanh((target - knee) / (ceiling - knee))



SOFT_STEP = 0.1  # latent length below which a slider's move holds its projection loosely


def combine_moves(moves: list[torch.Tensor]) -> torch.Tensor:
    """Several sliders' moves (each strength * direction) as one move that counts what
    they share once.

    Directions overlap (age and gray hair: cosine 0.23; aging greys hair), so their plain
    sum moves a face along each slider's direction by its own step *plus* what the others
    carry along it in the same sense: age and gray hair together grey the hair more than
    gray hair alone. Here, along each slider's direction the face moves by the larger of
    the two, not their sum, and by the least change to the sum that does so (the
    least-norm correction meeting every slider's projection; a slider moved much less
    than ``SOFT_STEP`` holds its projection only loosely, so the move is continuous as any
    strength goes to 0). Where the others pull the other way, or carry nothing, the sum
    is kept, so a single slider, orthogonal ones and a slider at 0 are the plain sum.
    Measured on 204 held-out photos (model v12): smile, age and gray hair at +1 together
    kept the person in 92 % of faces against 74 % summed (+30 years to the meter against
    +34), at 1.5 in 53 % against 34 %.
    """
    stacked = torch.stack(moves)
    total = stacked.sum(0)
    steps = stacked.double().norm(dim=1)
    kept = steps > 0
    if int(kept.sum()) < 2:
        return total
    steps = steps[kept]
    units = (stacked[kept].double() / steps[:, None]).T  # (D, k)
    carried = units.T @ total.double() - steps  # what the others carry along each one
    correction = -torch.minimum(steps, carried.clamp(min=0))
    if not correction.any():
        return total
    # each slider's projection is held by a constraint whose give, (SOFT_STEP / step)^2,
    # vanishes for a full step and grows without bound as the slider nears 0, so a slider
    # barely moved neither pins the others' correction nor jumps when it leaves
    gram = units.T @ units + torch.diag((SOFT_STEP / steps) ** 2)
    return (total.double() + units @ torch.linalg.solve(gram, correction)).to(total.dtype)


class Directions:
    """Named attribute directions; ``vector(strengths)`` is the latent offset of an edit."""

    def __init__(self, vectors: dict[str, torch.Tensor], meta: dict):
        self.vectors = vectors
        self.meta = meta
        main = [n for n in MAIN_ORDER if n in vectors]
        rest = sorted(n for n in vectors if n not in MAIN_ORDER and n not in HELD_ONLY)
        labels = {**{k: v[2] for k, v in MAIN_ATTRIBUTES.items()},
                  **{k: v[2] for k, v in OTHER_ATTRIBUTES.items()}, **EXTRA_ATTRIBUTES}
        self.attributes = [Attribute(n, labels.get(n, n), n in MAIN_ORDER,
                                     *SLIDER_RANGES.get(n, SLIDER_RANGE))
                           for n in main + rest]

    def direction(self, name: str, disentangle_from: tuple[str, ...] = (),
                  own: dict[str, torch.Tensor] | None = None, negative: bool = False
                  ) -> torch.Tensor:
        """One direction, with its components along ``disentangle_from`` removed;
        ``own``: a face's own versions of some directions (``FaceEditor.own_directions``),
        under the name for positive strengths and under "-name" for ``negative`` ones."""
        if name not in self.vectors or name in HELD_ONLY:
            known = ", ".join(a.name for a in self.attributes)
            raise KeyError(f"unknown attribute {name!r}; known: {known}")
        d = (own or {}).get(f"-{name}" if negative else name, self.vectors[name])
        others = [self.vectors[o] for o in disentangle_from if o != name]
        if not others:
            return d
        basis = torch.stack(others, 1).double()  # (D, k)
        coef = torch.linalg.lstsq(basis, d.double()[:, None]).solution
        return (d.double() - (basis @ coef)[:, 0]).float()

    def vector(self, strengths: dict[str, float],
               disentangle: dict[str, tuple[str, ...]] | None = None,
               own: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The latent move of these strengths: each slider's strength * direction
        (``own``: see ``direction``), combined by ``combine_moves``."""
        disentangle = disentangle or {}
        moves = [float(strength) * self.direction(name, tuple(disentangle.get(name, ())), own,
                                                  negative=strength < 0)
                 for name, strength in strengths.items() if strength]
        if not moves:
            return torch.zeros_like(next(iter(self.vectors.values())))
        return combine_moves(moves)

    def strengths_for(self, latent: torch.Tensor, strengths: dict[str, float]
                      ) -> dict[str, float]:
        """The strengths that move the face with standardised ``latent`` (D,) as
        ``strengths`` would, except that along each direction with a range
        (``meta["ranges"]``, see ``edit_range``) the face stops softly at the ceiling:
        the same where the edit stays within what held-out faces show."""
        ranges = self.meta.get("ranges", {})
        out = {}
        for name, strength in strengths.items():
            strength = float(strength)
            if not strength or name not in ranges or name not in self.vectors:
                out[name] = strength
                continue
            d = self.vectors[name].double()
            step = float(d.norm())
            start = float(latent.double().cpu() @ d) / step
            low, low_knee, high_knee, high = ranges[name]
            target = start + strength * step
            if strength > 0:
                end = _soften(target, start, high_knee, high)
            else:
                end = -_soften(-target, -start, -low_knee, -low)
            out[name] = (end - start) / step
        return out

    def without_ranges(self) -> Directions:
        """The same directions as plain linear steps (no edit ranges), for comparing."""
        return Directions(self.vectors, {k: v for k, v in self.meta.items() if k != "ranges"})

    def offset(self, latent: torch.Tensor, strengths: dict[str, float],
               disentangle: dict[str, tuple[str, ...]] | None = None,
               own: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The latent offset of an edit of this face: ``vector`` of ``strengths_for``
        (whose ranges are those of the shared directions, ``own`` or not)."""
        return self.vector(self.strengths_for(latent, strengths), disentangle, own)

    def add_direction(self, name: str, vector: torch.Tensor, info: dict) -> Directions:
        """A copy with one more (or a replaced) direction; ``info`` goes to meta[name].

        ``info["model_digest"]``, when given, must match the others': directions of two
        models never share a file.
        """
        digest = info.get("model_digest")
        if digest is not None and digest != self.meta.get("model_digest"):
            raise WeightsError(f"direction {name!r} was computed for another model (digest "
                               f"{digest} != {self.meta.get('model_digest')})")
        reference = next(iter(self.vectors.values()), None)
        if reference is not None and vector.shape != reference.shape:
            raise ValueError(f"direction {name!r} has shape {tuple(vector.shape)}, the others "
                             f"{tuple(reference.shape)}")
        vectors = {**self.vectors, name: vector.detach().float().cpu().contiguous()}
        info = dict(info)
        ranges = {k: v for k, v in self.meta.get("ranges", {}).items() if k != name}
        if info.get("range") is not None:  # a replaced direction's old range is dropped
            ranges[name] = info.pop("range")
        meta = {**self.meta, name: info, "ranges": ranges,
                "norms": {**self.meta.get("norms", {}), name: round(float(vector.norm()), 3)}}
        return Directions(vectors, meta)

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
