"""A slider of your own: a direction learned from a few photos with an attribute and a few
without, the way the shipped directions are learned from CelebA's labels.

The direction is the mean of the examples' *edit bases* (the standardised latents the
editor edits from, ``Face.base``) with the attribute minus the mean of those without,
so strength 1.0 moves a face by the whole average difference between the two sets of
examples, in the same units and latent space as the shipped directions, and edits along
it pass the same stability guard (scaled back if they would stop being faces).

How reliable is it? With few examples, the mean difference is mostly the difference
between the *particular people* in the two sets; only its part common to every example
is the attribute. The per-coordinate spread of each set estimates the first part: the
difference of two means of n and m examples carries noise of squared length
``sum(var_with) / n + sum(var_without) / m``. What is left of the squared length is the
attribute, so ``reliability = sqrt(max(0, 1 - noise^2 / |d|^2))`` estimates the cosine
between this direction and the one infinitely many such examples would give (1 =
the attribute alone; 0 = only the people). It needs at least 2 examples a side to
measure the spread, and the issue asks for at least ``MIN_EXAMPLES`` (3).

Files: a custom direction file is one small safetensors file (one float32 vector per
direction, 48 KB at 64 px) whose header metadata holds the JSON description under
``glow_demo`` (name, label, number of examples, reliability, the model's digest). No
pickles: loading one cannot run code.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .directions import Attribute, Directions

MIN_EXAMPLES = 3  # per side
MAX_EXAMPLES = 64  # per side: a direction from more is no longer "a few examples"
MAX_DIRECTIONS_PER_FILE = 32
MAX_FILE_BYTES = 8_000_000
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
META_KEY = "glow_demo"
FORMAT = "glow_demo custom directions v1"


class CustomDirectionError(ValueError):
    """A custom direction that cannot be made or loaded; ``str(err)`` is for people."""


@dataclass
class CustomDirection:
    name: str  # a slider name, e.g. "hat"
    label: str  # what the slider is called on screen
    vector: torch.Tensor  # (D,) float32
    n_with: int
    n_without: int
    reliability: float  # estimated cosine with the direction of unlimited examples
    model_digest: str | None = None  # the model the latents came from

    def info(self) -> dict:
        return {"label": self.label, "n_with": self.n_with, "n_without": self.n_without,
                "reliability": round(self.reliability, 4),
                "norm": round(float(self.vector.norm()), 3),
                "model_digest": self.model_digest,
                "method": "mean edit-base latent of the photos with the attribute minus "
                          "the mean of those without (a custom direction)"}

    @property
    def advice(self) -> str:
        return describe_reliability(self.reliability, self.n_with, self.n_without)


def check_name(name: str, taken: Sequence[str] = ()) -> str:
    name = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    if not NAME_PATTERN.match(name):
        raise CustomDirectionError(
            "A slider name is 1-32 letters, digits or underscores, starting with a letter "
            f"(e.g. 'hat'); got {name!r}.")
    if name in taken:
        raise CustomDirectionError(f"'{name}' is already a slider; choose another name.")
    return name


def direction_from_latents(with_: torch.Tensor, without: torch.Tensor
                           ) -> tuple[torch.Tensor, float]:
    """(n, D) and (m, D) latents -> (mean difference, reliability in 0..1)."""
    if len(with_) < 2 or len(without) < 2:
        raise CustomDirectionError("need at least 2 examples on each side to tell the "
                                   "attribute from the people")
    a, b = with_.double(), without.double()
    direction = a.mean(0) - b.mean(0)
    noise = float(a.var(0, unbiased=True).sum() / len(a) + b.var(0, unbiased=True).sum()
                  / len(b))
    signal = float(direction.pow(2).sum())
    reliability = math.sqrt(max(0.0, 1.0 - noise / signal)) if signal > 0 else 0.0
    return direction.float(), reliability


def reliability_with(reliability: float, n_with: int, n_without: int, n: int) -> float:
    """The reliability expected with ``n`` examples a side instead (noise ~ 1 / n)."""
    r2 = min(max(reliability, 0.0), 0.999) ** 2
    if r2 == 0:
        return 0.0
    noise_over_signal = (1 - r2) / r2 * (2 / n) / (1 / n_with + 1 / n_without)
    return math.sqrt(1 / (1 + noise_over_signal))


def describe_reliability(reliability: float, n_with: int, n_without: int) -> str:
    """The reliability in words, with how many examples would make it better."""
    if reliability >= 0.9:
        words = "reliable: it is mostly the attribute"
    elif reliability >= 0.7:
        words = "fair: mostly the attribute, with some of the particular people's looks"
    elif reliability >= 0.4:
        words = ("rough: about as much the particular people's looks as the attribute; "
                 "expect other features to change with it")
    else:
        words = ("mostly the particular people, not the attribute: the slider will move "
                 "faces towards the look of your examples")
    text = (f"Learned from {n_with} with and {n_without} without: {words} (estimated "
            f"agreement with the direction many examples would give: {reliability:.0%}).")
    if reliability < 0.9:
        for n in (6, 10, 20, 50):
            if n > max(n_with, n_without) and reliability_with(
                    reliability, n_with, n_without, n) >= max(0.7, reliability + 0.1):
                text += (f" With about {n} a side it would be about "
                         f"{reliability_with(reliability, n_with, n_without, n):.0%}.")
                break
    return text


def learn_direction(editor, name: str, with_photos: Sequence, without_photos: Sequence,
                    label: str | None = None, taken: Sequence[str] | None = None
                    ) -> CustomDirection:
    """A direction from photos (paths, bytes, images or prepared ``Face``s) of faces with
    and without an attribute, or edit-base latents (example faces the model drew: see
    ``example_faces``); the largest face of each photo is used. Raises
    ``CustomDirectionError`` (too few examples, a bad name, a photo without a face:
    which one is said)."""
    from .editor import Face
    from .photo import PhotoError

    taken = [a.name for a in editor.attributes] if taken is None else taken
    name = check_name(name, taken)
    for side, photos in (("with", with_photos), ("without", without_photos)):
        if not MIN_EXAMPLES <= len(photos) <= MAX_EXAMPLES:
            raise CustomDirectionError(
                f"Give {MIN_EXAMPLES} to {MAX_EXAMPLES} faces {side} the attribute (photos "
                f"or example faces); got {len(photos)}.")

    def base(photo, side: str, k: int) -> torch.Tensor:
        if isinstance(photo, Face):
            return photo.base
        if isinstance(photo, torch.Tensor):
            if photo.shape != (editor.model.latent_dim,):
                raise CustomDirectionError(f"Example {k + 1} {side} the attribute is not a "
                                           "latent of this model.")
            return photo.to(editor._device())
        try:
            return editor.prepare(photo).base
        except PhotoError as err:
            raise CustomDirectionError(f"Photo {k + 1} {side} the attribute: {err}") from None

    a = torch.stack([base(p, "with", k) for k, p in enumerate(with_photos)])
    b = torch.stack([base(p, "without", k) for k, p in enumerate(without_photos)])
    vector, reliability = direction_from_latents(a, b)
    return CustomDirection(name=name, label=label.strip() if label and label.strip() else
                           name.replace("_", " ").capitalize(), vector=vector,
                           n_with=len(a), n_without=len(b), reliability=reliability,
                           model_digest=editor.directions.meta.get("model_digest"))


def with_custom(directions: Directions, custom: Sequence[CustomDirection]) -> Directions:
    """The shipped directions plus custom ones, as sliders of their own (not headline)."""
    out = directions
    for c in custom:
        if c.name in directions.vectors:
            raise CustomDirectionError(f"'{c.name}' is already a slider; rename it.")
        out = out.add_direction(c.name, c.vector, {**c.info(), "custom": True})
    labels = {c.name: c.label for c in custom}
    out.attributes = [Attribute(a.name, labels.get(a.name, a.label), a.main, a.low, a.high)
                      for a in out.attributes]
    return out


# ----- files ---------------------------------------------------------------------------

def save_directions(path: str | Path, custom: Sequence[CustomDirection]) -> Path:
    """Write custom directions to one safetensors file (JSON description in its header)."""
    from safetensors.torch import save_file

    if not custom:
        raise CustomDirectionError("no custom directions to save")
    path = Path(path)
    meta = {"format": FORMAT, "directions": {c.name: c.info() for c in custom}}
    save_file({c.name: c.vector.detach().float().cpu().contiguous() for c in custom},
              str(path), metadata={META_KEY: json.dumps(meta)})
    return path


def load_directions(path: str | Path, model_digest: str | None = None,
                    latent_dim: int | None = None) -> list[CustomDirection]:
    """Read a file written by ``save_directions``; with ``model_digest`` / ``latent_dim``
    it must fit that model. Raises ``CustomDirectionError`` with a message for people."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise CustomDirectionError(f"cannot read the direction file {path.name}") from None
    if size > MAX_FILE_BYTES:
        raise CustomDirectionError(f"{path.name} is {size / 1e6:.1f} MB: too large for a "
                                   "custom direction file")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            meta = json.loads(header.get(META_KEY, "null"))
            keys = list(f.keys())
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise CustomDirectionError(f"{path.name} is not a glow-demo custom "
                                           "direction file")
            if not keys or len(keys) > MAX_DIRECTIONS_PER_FILE:
                raise CustomDirectionError(f"{path.name} holds {len(keys)} directions; "
                                           f"1 to {MAX_DIRECTIONS_PER_FILE} expected")
            vectors = {k: f.get_tensor(k) for k in keys}
    except (SafetensorError, OSError, ValueError, UnicodeDecodeError) as err:
        if isinstance(err, CustomDirectionError):
            raise
        raise CustomDirectionError(f"{path.name} is not a readable safetensors file of "
                                   "custom directions") from None
    described = meta.get("directions") or {}
    out = []
    for name in keys:
        vector, info = vectors[name], described.get(name)
        if not NAME_PATTERN.match(name) or not isinstance(info, dict):
            raise CustomDirectionError(f"{path.name}: direction {name!r} is malformed")
        if vector.ndim != 1 or not vector.is_floating_point() or \
                not torch.isfinite(vector).all() or \
                (latent_dim is not None and vector.numel() != latent_dim):
            raise CustomDirectionError(f"{path.name}: direction {name!r} does not fit this "
                                       "model (wrong size or not finite)")
        digest = info.get("model_digest")
        if model_digest is not None and digest != model_digest:
            raise CustomDirectionError(
                f"{path.name}: direction {name!r} was learned with another model; learn it "
                "again from its photos with this one")
        try:
            out.append(CustomDirection(
                name=name, label=str(info.get("label") or name)[:80], vector=vector.float(),
                n_with=int(info.get("n_with", 0)), n_without=int(info.get("n_without", 0)),
                reliability=float(info.get("reliability", 0.0)), model_digest=digest))
        except (TypeError, ValueError):
            raise CustomDirectionError(f"{path.name}: direction {name!r} is malformed") \
                from None
    return out


def load_for(editor, path: str | Path) -> list[CustomDirection]:
    """``load_directions`` checked against this editor's model."""
    return load_directions(path, editor.directions.meta.get("model_digest"),
                           editor.model.latent_dim)

