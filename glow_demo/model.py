"""Glow (Kingma & Dhariwal, 2018): a multi-scale normalizing flow for face images.

The whole model lives in this file. Every layer has the same interface:
``forward(x) -> (y, log_det)`` with ``log_det`` of shape ``(batch,)``, and
``inverse(y) -> x``. Log-determinants are always accumulated in float32 (or the
input's dtype if that is wider), because a flow's likelihood is a sum of many
small terms and half precision loses them. A ``Level``'s and the whole flow's
inverse also return each image's *peak* activation: affine-coupling inverses explode
off the data manifold, and the peak is how a caller knows a decode is still a face.

Images enter as floats in [0, 1] (an 8-bit image divided by 255). The model
works on ``n_bits`` images (5-bit by default, as Glow's CelebA-HQ model), mapped
to bin centres in [-0.5, 0.5). Inference is deterministic: the bin centre is
used, never dequantization noise; noise is added only when training asks for it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG_2PI = math.log(2 * math.pi)
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"  # the shipped model
WEIGHTS_FILE = "glow.safetensors"
CONFIG_FILE = "glow.json"
# Affine-coupling inverses explode off the data manifold (a latent edited far enough, or
# an unusual face, can send one step's output to 1e15 and then NaN). Activations of the
# shipped model stay within +-11 on all 1,000 validation faces, so clamping each inverse
# step to +-32 never touches a real face's exact inverse but contains the explosion.
INVERSE_BOUND = 32.0
# A decode whose largest inverse activation stays below this is called stable: real and
# edited faces the model knows peak at 4-14 (see README), exploding ones run past 16
# within a step or two and then on to 1e10 and more.
STABLE_PEAK = 16.0
# bf16 coupling nets in the decode (``Glow.decode_dtype``, the app's default) change a
# decoded face by at most 2.7 of 255 levels at any pixel, 0.1 on average (64 CelebA
# validation faces, every headline slider at +-1.5), while its peak stays below 8. Above
# that the difference grows with the peak (up to 21 levels at 14-16), and near
# STABLE_PEAK it would move the guard's decisions; so a decode peaking at or above this
# is done again in float32, and the guard sees exactly the float32 decode.
REDUCED_PEAK = 8.0


def bf16_supported() -> bool:
    """Whether this CPU computes bf16 convolutions natively (oneDNN: AVX512-BF16, AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class WeightsError(RuntimeError):
    """A weights file is missing, unreadable or does not match its config."""


@dataclass(frozen=True)
class GlowConfig:
    """Everything needed to rebuild the network; saved beside its weights."""

    resolution: int = 64
    channels: int = 3
    levels: int = 4
    steps: int = 8
    width: int = 256
    n_bits: int = 5
    # Lower bound of the coupling scale. 0 is Glow's sigmoid scale (the shipped model);
    # a floor f bounds each coupling inverse's gain by 1/f, meant to make a newly trained
    # model explode less off the data manifold (not yet trained at scale: see README).
    scale_floor: float = 0.0

    @property
    def n_bins(self) -> int:
        return 2**self.n_bits

    @property
    def n_dims(self) -> int:
        return self.channels * self.resolution**2

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> GlowConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**data)


def _full(x: Tensor, value: Tensor) -> Tensor:
    """A per-sample log-det from a scalar one (layers that act alike on every image)."""
    return value.float().expand(x.shape[0])


class ActNorm(nn.Module):
    """Per-channel affine normalisation, initialised from the first batch it sees.

    Data-dependent initialisation gives zero-mean, unit-variance activations at
    the start of training, which is what lets a deep flow train without batch norm.
    The ``initialized`` buffer is saved with the weights so loading never re-inits.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        flat = x.transpose(0, 1).reshape(x.shape[1], -1).float()
        self.loc.copy_(-flat.mean(1).view_as(self.loc))
        self.log_scale.copy_(-torch.log(flat.std(1) + 1e-6).view_as(self.log_scale))
        self.initialized.fill_(1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and not self.initialized.item():
            self._initialize(x)
        y = (x + self.loc) * torch.exp(self.log_scale)
        return y, _full(x, x.shape[2] * x.shape[3] * self.log_scale.sum())

    def inverse(self, y: Tensor) -> Tensor:
        return y * torch.exp(-self.log_scale) - self.loc


class InvConv1x1(nn.Module):
    """Invertible 1x1 convolution, LU-decomposed so its log-det costs O(C).

    W = P L (U + diag(sign * exp(log_s))); P is fixed, L and U are learned.
    The inverse is computed in float64 so that decode(encode(x)) stays exact.
    """

    def __init__(self, channels: int):
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(channels, channels))
        p, lower, upper = torch.linalg.lu(q)
        diag = torch.diagonal(upper)
        self.register_buffer("p", p)
        self.register_buffer("sign_s", torch.sign(diag))
        self.register_buffer("l_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(diag.abs()))

    def weight(self) -> Tensor:
        lower = self.lower * self.l_mask + self.eye
        upper = self.upper * self.l_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.p @ lower @ upper

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        w = self.weight().to(x.dtype)
        y = F.conv2d(x, w[:, :, None, None])
        return y, _full(x, x.shape[2] * x.shape[3] * self.log_s.sum())

    def inverse(self, y: Tensor) -> Tensor:
        w_inv = torch.linalg.inv(self.weight().double()).to(y.dtype)
        return F.conv2d(y, w_inv[:, :, None, None])


class ZeroConv2d(nn.Module):
    """3x3 conv that starts at exactly zero, so every new flow step starts as identity."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv.weight.data.zero_()
        self.conv.bias.data.zero_()
        self.log_gain = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) * torch.exp(self.log_gain * 3)


class AffineCoupling(nn.Module):
    """Affine coupling: the second half of the channels is scaled and shifted by
    a function of the first half. ``scale = sigmoid(h + 2)`` keeps the scale in
    (0, 1) and near 0.88 at the start, which is far more stable than exp(h).
    With a ``floor`` f > 0 the scale is f + (1 - f) * sigmoid(h + 2), in (f, 1): the
    inverse then divides by at least f, which bounds how fast it can explode.
    """

    def __init__(self, channels: int, width: int, floor: float = 0.0):
        super().__init__()
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"scale floor must be in [0, 1), got {floor}")
        self.floor = floor
        self.net = nn.Sequential(
            nn.Conv2d(channels // 2, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 1),
            nn.ReLU(),
            ZeroConv2d(width, channels),
        )
        for conv in (self.net[0], self.net[2]):
            conv.weight.data.normal_(0, 0.05)
            conv.bias.data.zero_()
        self.amp_dtype: torch.dtype | None = None  # set by Glow.set_amp for training only

    def _scale_shift(self, xa: Tensor) -> tuple[Tensor, Tensor]:
        # Only this network may run in reduced precision; the scale, shift and
        # log-det are computed from its output in float32.
        with torch.autocast(xa.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            h = self.net(xa)
        h = h.float()
        return h[:, 1::2] + 2.0, h[:, 0::2]

    def _scale(self, raw: Tensor) -> Tensor:
        if not self.floor:
            return torch.sigmoid(raw)
        return self.floor + (1 - self.floor) * torch.sigmoid(raw)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        xa, xb = x.chunk(2, 1)
        raw, shift = self._scale_shift(xa)
        scale = self._scale(raw)
        yb = (xb.float() + shift) * scale
        # logsigmoid is exact where log(sigmoid) underflows; with a floor, log is safe
        log_scale = F.logsigmoid(raw) if not self.floor else torch.log(scale)
        return torch.cat([xa, yb.to(x.dtype)], 1), log_scale.flatten(1).sum(1)

    def inverse(self, y: Tensor) -> Tensor:
        ya, yb = y.chunk(2, 1)
        raw, shift = self._scale_shift(ya)
        xb = yb.float() / self._scale(raw) - shift
        return torch.cat([ya, xb.to(y.dtype)], 1)


class FlowStep(nn.Module):
    """One step of flow: ActNorm -> invertible 1x1 conv -> affine coupling."""

    def __init__(self, channels: int, width: int, scale_floor: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(
            [ActNorm(channels), InvConv1x1(channels),
             AffineCoupling(channels, width, scale_floor)]
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        log_det = torch.zeros(x.shape[0], device=x.device)
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, y: Tensor) -> Tensor:
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return y

    @torch.no_grad()
    def fold(self, decode_dtype: torch.dtype = torch.float32) -> FastStep:
        """This step's weights folded for inference (see ``FastStep``); the coupling net
        of ``inverse`` in ``decode_dtype``."""
        actnorm, conv, coupling = self.layers
        # ActNorm then the 1x1 conv: W ((x + loc) * s) = (W diag(s)) x + W (s * loc);
        # its inverse, diag(1/s) W^-1 y - loc. Both in float64, stored in float32.
        scale = torch.exp(actnorm.log_scale.double()).flatten()
        w = conv.weight().double()
        mix = w * scale
        unmix = torch.linalg.inv(w) / scale[:, None]
        first, _, second, _, last = coupling.net
        gain = torch.exp(last.log_gain.double() * 3).flatten()
        # The net's output channels interleave (shift, raw scale); reorder them to
        # [shift; raw], fold ZeroConv2d's gain into its weights and the "+ 2" into the bias.
        order = torch.arange(gain.numel(), device=gain.device).view(-1, 2).T.flatten()
        out_w = (last.conv.weight.double() * gain[:, None, None, None])[order]
        out_b = (last.conv.bias.double() * gain)[order]
        out_b[gain.numel() // 2:] += 2.0
        f32 = lambda t: t.float().contiguous()  # noqa: E731
        net = (f32(first.weight), f32(first.bias), f32(second.weight), f32(second.bias),
               f32(out_w), f32(out_b))
        return FastStep(
            mix=f32(mix[:, :, None, None]),
            mix_bias=f32(w @ (scale * actnorm.loc.double().flatten())),
            unmix=f32(unmix[:, :, None, None]),
            unmix_bias=f32(-actnorm.loc.double().flatten()),
            log_det_per_pixel=float(actnorm.log_scale.double().sum() + conv.log_s.double().sum()),
            net=net,
            floor=coupling.floor,
            decode_net=net if decode_dtype == torch.float32 else _net_in(net, decode_dtype),
        )


def _net_in(net: tuple[Tensor, ...], dtype: torch.dtype) -> tuple[Tensor, ...]:
    """A folded coupling net for ``FastStep`` in ``dtype``, but for its last conv's bias:
    that conv's output (the scale and shift) is computed and kept in float32."""
    *weights, out_b = net
    return (*(w.to(dtype) for w in weights), out_b)


class FastStep(nn.Module):
    """A ``FlowStep`` folded for inference: the same function, fewer operations.

    ActNorm and the invertible 1x1 conv become one 1x1 conv each way (the inverse
    computed once, in float64, not on every call); the coupling net's output gain and
    channel interleaving are folded into its last conv. Float32, no autograd. Its tensors
    are buffers, so a compiler can freeze them into the decode (``Glow.folded_decode``).
    """

    def __init__(self, mix: Tensor, mix_bias: Tensor, unmix: Tensor, unmix_bias: Tensor,
                 log_det_per_pixel: float, net: tuple[Tensor, ...], floor: float,
                 decode_net: tuple[Tensor, ...]):
        super().__init__()
        self.register_buffer("mix", mix)  # (C, C, 1, 1): ActNorm then InvConv1x1
        self.register_buffer("mix_bias", mix_bias)
        self.register_buffer("unmix", unmix)  # (C, C, 1, 1): their inverse
        self.register_buffer("unmix_bias", unmix_bias)
        self.log_det_per_pixel = log_det_per_pixel  # ActNorm's + InvConv1x1's, per pixel
        self.floor = floor
        # the coupling net (3x3 conv, 1x1 conv, 3x3 conv giving [shift; raw]), and the same
        # as ``inverse`` runs it in ``Glow.decode_dtype`` (float32 or bf16)
        for i, (tensor, decode_tensor) in enumerate(zip(net, decode_net, strict=True)):
            self.register_buffer(f"net_{i}", tensor)
            self.register_buffer(f"decode_net_{i}", decode_tensor)
        self._net_size = len(net)

    @property
    def net(self) -> tuple[Tensor, ...]:
        return tuple(getattr(self, f"net_{i}") for i in range(self._net_size))

    @property
    def decode_net(self) -> tuple[Tensor, ...]:
        return tuple(getattr(self, f"decode_net_{i}") for i in range(self._net_size))

    @staticmethod
    def _scale_shift(xa: Tensor, net: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        w1, b1, w2, b2, w3, b3 = net
        # In place here and in FastLevel.inverse: fewer allocations, 0.91x a decode's time.
        h = F.conv2d(xa.to(w1.dtype), w1, b1, padding=1).relu_()
        h = F.conv2d(h, w2, b2).relu_()
        if h.dtype != b3.dtype:  # reduced precision: scale and shift leave it as float32
            out = F.conv2d(h, w3, None, padding=1).float().add_(b3[:, None, None])
        else:
            out = F.conv2d(h, w3, b3, padding=1)
        shift, raw = out.chunk(2, 1)
        return raw, shift

    def _scale(self, raw: Tensor) -> Tensor:
        sig = torch.sigmoid(raw)
        return sig if not self.floor else self.floor + (1 - self.floor) * sig

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = F.conv2d(x, self.mix, self.mix_bias)
        xa, xb = x.chunk(2, 1)
        raw, shift = self._scale_shift(xa, self.net)
        scale = self._scale(raw)
        log_scale = F.logsigmoid(raw) if not self.floor else torch.log(scale)
        log_det = log_scale.flatten(1).sum(1) + x.shape[2] * x.shape[3] * self.log_det_per_pixel
        return torch.cat([xa, (xb + shift) * scale], 1), log_det

    def inverse(self, y: Tensor, reduced: bool = False) -> Tensor:
        """The step's inverse; ``reduced``: its coupling net as ``decode_net``."""
        ya, yb = y.chunk(2, 1)
        raw, shift = self._scale_shift(ya, self.decode_net if reduced else self.net)
        x = torch.cat([ya, yb / self._scale(raw) - shift], 1)
        return F.conv2d(x, self.unmix, self.unmix_bias)


def squeeze(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, 4C, H/2, W/2): trade resolution for channels."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, c * 4, h // 2, w // 2)


def unsqueeze(x: Tensor) -> Tensor:
    b, c, h, w = x.shape
    x = x.view(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, c // 4, h * 2, w * 2)


class Level(nn.Module):
    """Squeeze, K flow steps, then (except at the top) split half the channels off.

    The split-off half gets a Gaussian prior whose mean and std are predicted
    from the kept half; the top level has a learned, unconditional prior.
    Latents leave the level *standardised by their prior*, eps = (z - mu) / sigma,
    so one flat vector of eps per image is the whole code (and what edits move).
    """

    def __init__(self, in_channels: int, size: int, steps: int, width: int, split: bool,
                 scale_floor: float = 0.0):
        super().__init__()
        channels = in_channels * 4
        self.split = split
        self.steps = nn.ModuleList(FlowStep(channels, width, scale_floor) for _ in range(steps))
        if split:
            self.prior = ZeroConv2d(channels // 2, channels)
            self.latent_shape = (channels // 2, size, size)
        else:
            self.top_mean = nn.Parameter(torch.zeros(1, channels, size, size))
            self.top_log_sd = nn.Parameter(torch.zeros(1, channels, size, size))
            self.latent_shape = (channels, size, size)

    def _prior(self, kept: Tensor | None) -> tuple[Tensor, Tensor]:
        if self.split:
            mean, log_sd = self.prior(kept).float().chunk(2, 1)
            return mean, log_sd
        return self.top_mean, self.top_log_sd

    def forward(self, x: Tensor) -> tuple[Tensor | None, Tensor, Tensor, Tensor]:
        """Returns (kept half or None, eps, log_det, log p(z))."""
        x = squeeze(x)
        log_det = torch.zeros(x.shape[0], device=x.device)
        for step in self.steps:
            x, ld = step(x)
            log_det = log_det + ld
        kept, z = x.chunk(2, 1) if self.split else (None, x)
        mean, log_sd = self._prior(kept)
        eps = (z.float() - mean) * torch.exp(-log_sd)
        log_p = (-0.5 * LOG_2PI - log_sd - 0.5 * eps**2).flatten(1).sum(1)
        return kept, eps, log_det, log_p

    def inverse(self, kept: Tensor | None, eps: Tensor) -> tuple[Tensor, Tensor]:
        """Returns (x, peak): peak is each image's largest |activation| over the steps.

        Each step's output is clamped to +-INVERSE_BOUND, which a face the model knows
        never reaches, so an exploding inverse yields a bounded (if garbled) image, and
        the peak (NaN included) tells the caller it happened.
        """
        mean, log_sd = self._prior(kept)
        z = mean + torch.exp(log_sd) * eps
        x = torch.cat([kept, z.to(kept.dtype)], 1) if self.split else z
        peak = torch.zeros(x.shape[0], device=x.device)
        for step in reversed(self.steps):
            x = step.inverse(x)
            low, high = torch.aminmax(x.detach().flatten(1), dim=1)
            peak = torch.maximum(peak, torch.maximum(-low, high).float())  # NaN stays NaN
            x = x.clamp(-INVERSE_BOUND, INVERSE_BOUND).nan_to_num(0.0)
        return unsqueeze(x), peak.nan_to_num(torch.inf)

    @torch.no_grad()
    def fold(self, decode_dtype: torch.dtype = torch.float32) -> FastLevel:
        if self.split:
            gain = torch.exp(self.prior.log_gain.double() * 3).flatten()
            prior = ((self.prior.conv.weight.double() * gain[:, None, None, None]).float(),
                     (self.prior.conv.bias.double() * gain).float())
        else:
            prior = (self.top_mean.detach().float(), self.top_log_sd.detach().float())
        return FastLevel([step.fold(decode_dtype) for step in self.steps], self.split, prior)


class FastLevel(nn.Module):
    """A ``Level`` folded for inference; the same outputs as its ``forward``/``inverse``."""

    def __init__(self, steps: list[FastStep], split: bool, prior: tuple[Tensor, Tensor]):
        super().__init__()
        self.steps = nn.ModuleList(steps)
        self.split = split
        # split: the prior conv (gain folded in); top: mean, log_sd
        self.register_buffer("prior_0", prior[0])
        self.register_buffer("prior_1", prior[1])

    @property
    def prior(self) -> tuple[Tensor, Tensor]:
        return self.prior_0, self.prior_1

    def _prior(self, kept: Tensor | None) -> tuple[Tensor, Tensor]:
        if self.split:
            return F.conv2d(kept, *self.prior, padding=1).chunk(2, 1)
        return self.prior

    def forward(self, x: Tensor) -> tuple[Tensor | None, Tensor, Tensor, Tensor]:
        x = squeeze(x)
        log_det = 0.0
        for step in self.steps:
            x, ld = step.forward(x)
            log_det = log_det + ld
        kept, z = x.chunk(2, 1) if self.split else (None, x)
        mean, log_sd = self._prior(kept)
        eps = (z - mean) * torch.exp(-log_sd)
        log_p = (-0.5 * LOG_2PI - log_sd - 0.5 * eps**2).flatten(1).sum(1)
        return kept, eps, log_det, log_p

    def inverse(self, kept: Tensor | None, eps: Tensor, reduced: bool = False
                ) -> tuple[Tensor, Tensor]:
        mean, log_sd = self._prior(kept)
        z = mean + torch.exp(log_sd) * eps
        x = torch.cat([kept, z], 1) if self.split else z
        peaks = []
        for step in reversed(self.steps):
            x = step.inverse(x, reduced)
            peaks.append(torch.linalg.vector_norm(x.flatten(1), torch.inf, dim=1))  # max |x|
            x = x.clamp_(-INVERSE_BOUND, INVERSE_BOUND).nan_to_num_(0.0)
        return unsqueeze(x), torch.stack(peaks).amax(0).nan_to_num(torch.inf)


def _versions(tensors: list[Tensor]) -> list[tuple]:
    """What changes when a tensor is written to in place or given new storage."""
    return [(t.data_ptr(), t._version) for t in tensors]


def _inverse_folded(levels: list[FastLevel], eps_list: list[Tensor], reduced: bool = False
                    ) -> tuple[Tensor, Tensor]:
    """``Glow.inverse`` through folded levels (what ``Glow.folded_decode`` runs);
    ``reduced``: the coupling nets in ``Glow.decode_dtype``."""
    x, peaks = None, []
    for level, eps in zip(reversed(levels), reversed(eps_list), strict=True):
        x, peak = level.inverse(x, eps, reduced)
        peaks.append(peak)
    return x, torch.stack(peaks).amax(0)


class _FoldedDecode(nn.Module):
    """``_inverse_folded`` as a module that holds the folded levels, so that their
    weights are buffers a compiler can freeze (``Glow.folded_decode``)."""

    def __init__(self, levels: list[FastLevel], reduced: bool):
        super().__init__()
        self.levels = nn.ModuleList(levels)
        self.reduced = reduced

    def forward(self, *eps_list: Tensor) -> tuple[Tensor, Tensor]:
        return _inverse_folded(list(self.levels), list(eps_list), self.reduced)


class Glow(nn.Module):
    """Multi-scale Glow. ``encode``/``decode`` map images <-> one flat latent per image."""

    def __init__(self, config: GlowConfig = GlowConfig()):
        super().__init__()
        self.config = config
        levels, channels, size = [], config.channels, config.resolution
        for i in range(config.levels):
            size //= 2
            split = i < config.levels - 1
            levels.append(Level(channels, size, config.steps, config.width, split,
                                config.scale_floor))
            channels = channels * 2 if split else channels * 4
        self.levels = nn.ModuleList(levels)
        # encode/decode (not training's forward) run a folded copy of the weights, rebuilt
        # whenever a parameter changes; False runs the training modules themselves.
        self.fast = True
        self._decode_dtype = torch.float32  # of the folded decode's coupling nets
        self._folded: tuple[list[Tensor], list[tuple], list[FastLevel]] | None = None
        self._compiled: tuple[list[FastLevel], object] | None = None  # use_compiled_decode

    def set_amp(self, dtype: torch.dtype | None) -> None:
        """Run the coupling networks (the bulk of the FLOPs) in ``dtype``; None = off."""
        for module in self.modules():
            if isinstance(module, AffineCoupling):
                module.amp_dtype = dtype

    # ----- pixels <-> model space -------------------------------------------------
    def preprocess(self, images: Tensor, noise: bool = False) -> Tensor:
        """[0, 1] images -> n_bits bin centres in [-0.5, 0.5) (noise only for training)."""
        cfg = self.config
        x = torch.floor(images.float().clamp(0, 1) * 255 / 2 ** (8 - cfg.n_bits))
        x = x.clamp(max=cfg.n_bins - 1)
        x = x + (torch.rand_like(x) if noise else 0.5)
        return x / cfg.n_bins - 0.5

    @staticmethod
    def postprocess(y: Tensor) -> Tensor:
        return (y + 0.5).clamp(0, 1)

    # ----- flow ---------------------------------------------------------------------
    def forward(self, y: Tensor) -> tuple[list[Tensor], Tensor]:
        """Model-space images -> (eps per level, log-density of y per image, in nats)."""
        eps_list, log_density = [], torch.zeros(y.shape[0], device=y.device)
        x = y
        for level in self.levels:
            x, eps, log_det, log_p = level(x)
            eps_list.append(eps)
            log_density = log_density + log_det + log_p
        return eps_list, log_density

    def inverse(self, eps_list: list[Tensor]) -> tuple[Tensor, Tensor]:
        """eps per level -> (model-space images, each image's peak inverse activation)."""
        x, peak = None, None
        for level, eps in zip(reversed(self.levels), reversed(eps_list), strict=True):
            x, level_peak = level.inverse(x, eps)
            peak = level_peak if peak is None else torch.maximum(peak, level_peak)
        return x, peak

    @property
    def decode_dtype(self) -> torch.dtype:
        """The precision of the coupling networks in the folded decode (float32 or
        bfloat16); encoding, training and ``fast = False`` always run float32."""
        return self._decode_dtype

    @decode_dtype.setter
    def decode_dtype(self, dtype: torch.dtype) -> None:
        if dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"decode_dtype must be float32 or bfloat16, got {dtype}")
        if dtype != self._decode_dtype:
            self._decode_dtype, self._folded, self._compiled = dtype, None, None

    def folded(self) -> list[FastLevel]:
        """The levels folded for inference (``FastLevel``), cached until a parameter or
        buffer changes: in place (an optimizer step, a load) or by a move or cast."""
        cached = self._folded
        if cached is None or cached[1] != _versions(cached[0]):
            tensors = [*self.parameters(), *self.buffers()]
            cached = self._folded = (tensors, _versions(tensors),
                                     [level.fold(self._decode_dtype)
                                      for level in self.levels])
        return cached[2]

    def _apply(self, fn, *args, **kwargs):  # .to(), .double(), ...: fold again afterwards
        self._folded = None
        return super()._apply(fn, *args, **kwargs)

    def _flow(self, y: Tensor) -> tuple[list[Tensor], Tensor]:
        """``forward`` for inference: folded unless training or ``fast`` is off."""
        if self.training or not self.fast:
            return self(y)
        eps_list, log_density, x = [], 0.0, y
        for level in self.folded():
            x, eps, log_det, log_p = level.forward(x)
            eps_list.append(eps)
            log_density = log_density + log_det + log_p
        return eps_list, log_density

    def _inverse(self, eps_list: list[Tensor]) -> tuple[Tensor, Tensor]:
        """``inverse`` for inference: folded unless training or ``fast`` is off, and
        compiled for one image once ``use_compiled_decode`` was given it."""
        if self.training or not self.fast:
            return self.inverse(eps_list)
        levels, compiled = self.folded(), self._compiled
        reduced = self._decode_dtype != torch.float32
        if compiled is not None and compiled[0] is levels and eps_list[0].shape[0] == 1:
            x, peak = compiled[1](*eps_list)
        else:
            x, peak = _inverse_folded(levels, eps_list, reduced)
        redo = peak >= REDUCED_PEAK if reduced else None
        if redo is not None and redo.any():  # near the stability limit: float32, as before
            index = redo.nonzero()[:, 0]
            exact, exact_peak = _inverse_folded(levels, [e[index] for e in eps_list])
            x, peak = x.index_copy(0, index, exact), peak.index_copy(0, index, exact_peak)
        return x, peak

    def folded_decode(self) -> nn.Module:
        """The folded decode as a module of its own (``eps`` per level in, images and
        peaks out), its weights buffers: what ``glow_demo.compiled`` compiles."""
        return _FoldedDecode(self.folded(), self._decode_dtype != torch.float32)

    @property
    def decode_compiled(self) -> bool:
        """Whether one-image decodes run a compiled decode (``use_compiled_decode``)."""
        return self._compiled is not None and self._compiled[0] is self.folded()

    def use_compiled_decode(self, decode_one) -> None:
        """Decode single images with ``decode_one``, compiled from ``folded_decode()``
        of this model as it is now (``glow_demo.compiled``); a change to the weights or
        ``decode_dtype`` drops it, and other batch sizes run the folded path."""
        self._compiled = (self.folded(), decode_one)

    def bits_per_dim(self, images: Tensor, noise: bool = False) -> Tensor:
        """Per-image bits per dimension of discrete n_bits images (the training loss)."""
        _, log_density = self(self.preprocess(images, noise=noise))
        return self.density_to_bpd(log_density)

    def density_to_bpd(self, log_density: Tensor) -> Tensor:
        """Continuous log-density (nats) of bin-centred inputs -> discrete bits/dim."""
        cfg = self.config
        log_likelihood = log_density - cfg.n_dims * math.log(cfg.n_bins)
        return -log_likelihood / (cfg.n_dims * math.log(2))

    # ----- flat latents -------------------------------------------------------------
    @property
    def latent_shapes(self) -> list[tuple[int, int, int]]:
        return [level.latent_shape for level in self.levels]

    @property
    def latent_dim(self) -> int:
        return self.config.n_dims

    def flatten(self, eps_list: list[Tensor]) -> Tensor:
        return torch.cat([e.flatten(1) for e in eps_list], 1)

    def unflatten(self, flat: Tensor) -> list[Tensor]:
        out, start = [], 0
        for shape in self.latent_shapes:
            n = math.prod(shape)
            out.append(flat[:, start : start + n].reshape(-1, *shape))
            start += n
        return out

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """[0, 1] images (B, 3, H, W) -> standardised latents (B, D), deterministically."""
        return self.encode_with_bpd(images)[0]

    @torch.no_grad()
    def encode_with_bpd(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Latents and bits/dim from one forward pass (the app shows both for an upload)."""
        eps_list, log_density = self._flow(self.preprocess(images))
        return self.flatten(eps_list), self.density_to_bpd(log_density)

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Standardised latents (B, D) -> [0, 1] images; the exact inverse of encode."""
        return self.decode_with_peak(latents)[0]

    @torch.no_grad()
    def decode_with_peak(self, latents: Tensor) -> tuple[Tensor, Tensor]:
        """Images and each one's peak inverse activation: below STABLE_PEAK it is a face.

        Above it, the affine flow's inverse has exploded (the latent left the region the
        model was trained on) and the image is noise; inf means it reached NaN.
        """
        x, peak = self._inverse(self.unflatten(latents.float()))
        return self.postprocess(x), peak

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 0.7, seed: int | None = None) -> Tensor:
        """n random faces; temperature scales the latent std (0.7 is the usual sweet spot)."""
        device = next(self.parameters()).device
        gen = torch.Generator(device="cpu")
        if seed is not None:
            gen.manual_seed(seed)
        else:
            gen.seed()
        latents = torch.randn(n, self.latent_dim, generator=gen) * temperature
        return self.decode(latents.to(device))

    # ----- persistence --------------------------------------------------------------
    def save(self, directory: str | Path, dtype: torch.dtype = torch.float32) -> None:
        """Write glow.safetensors + glow.json: a self-describing checkpoint."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            k: (v.to(dtype) if v.is_floating_point() else v).contiguous().cpu()
            for k, v in self.state_dict().items()
        }
        save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
        (directory / CONFIG_FILE).write_text(self.config.to_json() + "\n")

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> Glow:
        """Load a saved model; a missing or corrupt file raises WeightsError naming it."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        cfg_path, w_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        for path in (cfg_path, w_path):
            if not path.is_file():
                raise WeightsError(f"model file not found: {path}")
        try:
            config = GlowConfig.from_dict(json.loads(cfg_path.read_text()))
        except (ValueError, TypeError) as err:
            raise WeightsError(f"model config {cfg_path} is not valid: {err}") from None
        try:
            state = load_file(str(w_path))
        except (SafetensorError, OSError, ValueError) as err:
            raise WeightsError(f"weights file {w_path} is corrupt or unreadable: {err}") from None
        model = cls(config)
        reference = model.state_dict()
        try:
            model.load_state_dict(
                {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
            )
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise WeightsError(f"{w_path} does not match {cfg_path}: {first}") from None
        bad = [k for k, v in model.state_dict().items()
               if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise WeightsError(f"weights file {w_path} holds non-finite values (e.g. {bad[0]})")
        return model.to(device).eval()
