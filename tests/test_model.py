"""The flow itself: every layer inverts exactly and reports its true log-determinant."""

from __future__ import annotations

import math

import pytest
import torch

from glow_demo.model import (
    ActNorm,
    AffineCoupling,
    FlowStep,
    Glow,
    GlowConfig,
    InvConv1x1,
    squeeze,
    unsqueeze,
)

TINY = GlowConfig(resolution=8, levels=2, steps=2, width=8, n_bits=5)


def _brute_force_log_det(fn, x: torch.Tensor) -> torch.Tensor:
    """log |det J| of fn at one input, from the full autograd Jacobian."""
    jac = torch.autograd.functional.jacobian(lambda v: fn(v.view_as(x)).flatten(), x.flatten())
    return torch.linalg.slogdet(jac)[1]


@pytest.mark.parametrize(
    "layer", [ActNorm(4), InvConv1x1(4), AffineCoupling(4, 8), AffineCoupling(4, 8, 0.3),
              FlowStep(4, 8), FlowStep(4, 8, 0.3)],
    ids=["actnorm", "invconv", "coupling", "coupling-floor", "flowstep", "flowstep-floor"],
)
def test_layer_inverts_and_log_det_matches_autograd(layer: torch.nn.Module, randomise) -> None:
    layer = layer.double().eval()
    randomise(layer)
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    y, log_det = layer(x)
    assert torch.allclose(layer.inverse(y), x, atol=1e-10)
    expected = _brute_force_log_det(lambda v: layer(v)[0], x)
    assert log_det.shape == (1,)
    assert torch.allclose(log_det.double(), expected, atol=1e-6), (log_det, expected)


def test_scale_floor_bounds_the_coupling_inverse_gain() -> None:
    """Driven hard negative (a face far off the manifold), Glow's scale goes to ~0 and
    its inverse multiplies by ~1e40; with a floor f the gain stays at most 1/f."""
    for floor, bound in ((0.0, None), (0.25, 4.0)):
        layer = AffineCoupling(4, 8, floor)
        with torch.no_grad():
            layer.net[-1].conv.bias[1::2] = -100.0  # raw scale -98: sigmoid ~ 3e-43
        y = torch.zeros(1, 4, 3, 3)
        y[:, 2:] = 1.0
        gain = (layer.inverse(y)[:, 2:] + layer._scale_shift(y[:, :2])[1]).abs().max()
        if bound is None:
            assert gain > 1e30
        else:
            assert gain <= bound + 1e-5


def test_config_round_trips_the_scale_floor(tmp_path) -> None:
    config = GlowConfig(resolution=8, levels=2, steps=1, width=8, scale_floor=0.2)
    model = Glow(config)
    model.save(tmp_path)
    loaded = Glow.load(tmp_path)
    assert loaded.config == config
    coupling = next(m for m in loaded.modules() if isinstance(m, AffineCoupling))
    assert coupling.floor == 0.2
    with pytest.raises(ValueError, match="scale floor"):
        AffineCoupling(4, 8, 1.0)


def test_squeeze_roundtrip() -> None:
    x = torch.randn(2, 3, 8, 8)
    assert squeeze(x).shape == (2, 12, 4, 4)
    assert torch.equal(unsqueeze(squeeze(x)), x)


def test_actnorm_initialises_from_data_once() -> None:
    layer = ActNorm(3).train()
    x = torch.randn(64, 3, 4, 4) * 5 + 2
    y, _ = layer(x)
    assert y.mean().abs() < 1e-4 and (y.std() - 1).abs() < 1e-2
    before = layer.loc.clone()
    layer(x * 10)
    assert torch.equal(layer.loc, before)  # not re-initialised


def test_tiny_glow_log_density_matches_brute_force(randomise) -> None:
    """log p(y) = log N(eps(y)) + log|det d eps/dy| with the Jacobian from autograd."""
    model = Glow(TINY).double()
    randomise(model, 0.05)
    model.eval()
    y = (torch.rand(1, 3, 8, 8, dtype=torch.float64) - 0.5)
    eps_list, log_density = model(y)
    flat = model.flatten(eps_list)
    log_det = _brute_force_log_det(lambda v: model.flatten(model(v)[0]), y)
    log_normal = (-0.5 * math.log(2 * math.pi) - 0.5 * flat**2).sum()
    assert torch.allclose(log_density[0], log_normal + log_det, atol=1e-6)


def test_tiny_glow_encode_decode_exact_on_random_inputs(randomise) -> None:
    model = Glow(TINY)
    randomise(model, 0.05)
    model.eval()
    x = torch.rand(8, 3, 8, 8)
    z = model.encode(x)
    assert z.shape == (8, TINY.n_dims)
    err = (model.decode(z) - model.postprocess(model.preprocess(x))).abs().max()
    assert err < 1e-4, err


def test_decode_peak_is_the_largest_inverse_activation_and_flags_nan(randomise) -> None:
    model = Glow(TINY)
    randomise(model, 0.05)
    model.eval()
    z = torch.randn(3, TINY.n_dims) * 0.5
    z[2, 0] = float("nan")
    images, peak = model.decode_with_peak(z)
    # the peak of a finite latent is the largest |activation| any inverse step produced
    seen, x = [], None
    for level, eps in zip(reversed(model.levels), reversed(model.unflatten(z[:2])), strict=True):
        mean, log_sd = level._prior(x)
        h = mean + torch.exp(log_sd) * eps
        h = torch.cat([x, h], 1) if level.split else h
        for step in reversed(level.steps):
            h = step.inverse(h)
            seen.append(h.abs().flatten(1).amax(1))
        x = unsqueeze(h)
    assert torch.allclose(peak[:2], torch.stack(seen).amax(0))
    assert peak[2] == float("inf")  # NaN anywhere: unstable, and the image stays finite
    assert torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1


def test_preprocess_is_deterministic_and_uses_bin_centres() -> None:
    model = Glow(TINY)
    x = torch.rand(2, 3, 8, 8)
    a, b = model.preprocess(x), model.preprocess(x)
    assert torch.equal(a, b)
    bins = (a + 0.5) * TINY.n_bins - 0.5
    assert torch.allclose(bins, bins.round(), atol=1e-5)
    noisy = model.preprocess(x, noise=True)
    assert not torch.equal(noisy, a) and (noisy - a).abs().max() <= 0.5 / TINY.n_bins + 1e-6


def test_bits_per_dim_of_uniform_noise_is_about_n_bits_for_fresh_model() -> None:
    """A sanity bound tying bits/dim to its definition: an untrained flow cannot
    compress 5-bit noise below ~5 bits/dim."""
    model = Glow(TINY).train()
    x = torch.rand(32, 3, 8, 8)
    with torch.no_grad():
        model.bits_per_dim(x, noise=True)  # ActNorm init
    model.eval()
    bpd = model.bits_per_dim(x).mean().item()
    assert 4.5 < bpd < 7.0, bpd


def test_sampling_is_seeded() -> None:
    model = Glow(TINY).eval()
    a = model.sample(2, temperature=0.7, seed=3)
    b = model.sample(2, temperature=0.7, seed=3)
    c = model.sample(2, temperature=0.7, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (2, 3, 8, 8) and torch.isfinite(a).all()


def _both_paths(model: Glow, fn):
    """fn(model) through the training modules, then through the folded inference path."""
    model.fast = False
    reference = fn(model)
    model.fast = True
    return reference, fn(model)


@pytest.mark.parametrize("floor", [0.0, 0.2])
def test_fast_inference_path_matches_the_training_modules(floor: float, randomise) -> None:
    """encode (latents, bits/dim) and decode (images, peaks) through the folded weights
    equal the layer-by-layer modules, also after a parameter changes (cache rebuilt)."""
    model = Glow(GlowConfig(resolution=8, levels=2, steps=2, width=8, scale_floor=floor))
    randomise(model, 0.05)
    model.eval()
    x = torch.rand(4, 3, 8, 8)
    z = torch.randn(4, model.latent_dim) * 0.5
    for _ in range(2):
        (z0, bpd0), (z1, bpd1) = _both_paths(model, lambda m: m.encode_with_bpd(x))
        (d0, peak0), (d1, peak1) = _both_paths(model, lambda m: m.decode_with_peak(z))
        assert (z1 - z0).abs().max() < 1e-5 and (bpd1 - bpd0).abs().max() < 1e-5
        assert (d1 - d0).abs().max() < 1e-5 and (peak1 - peak0).abs().max() < 1e-5
        with torch.no_grad():  # as an optimizer step would: the folded copy must follow
            next(model.parameters()).add_(0.1)
    model.train()  # training never uses the folded copy
    assert model._flow(model.preprocess(x))[1].requires_grad


def test_fast_inference_path_matches_on_the_shipped_weights() -> None:
    """Shipped model: decode of typical latents (temperature 0.5) agrees within 1e-5
    (images and peaks) between the folded path and the modules. Encoding those faces,
    bits/dim agree within 1e-5; the latents (up to ~3, where float32 itself is ~1e-5 off)
    are as close to a float64 run of the modules as the float32 modules are."""
    import copy

    from glow_demo.model import DEFAULT_WEIGHTS

    model = Glow.load(DEFAULT_WEIGHTS)
    z = torch.randn(4, model.latent_dim, generator=torch.Generator().manual_seed(0)) * 0.5
    (d0, peak0), (d1, peak1) = _both_paths(model, lambda m: m.decode_with_peak(z))
    assert (d1 - d0).abs().max() < 1e-5 and (peak1 - peak0).abs().max() < 1e-5
    (z0, bpd0), (z1, bpd1) = _both_paths(model, lambda m: m.encode_with_bpd(d0))
    assert (bpd1 - bpd0).abs().max() < 1e-5 and (z1 - z0).abs().max() < 5e-5
    exact = copy.deepcopy(model).double()
    exact.fast = False
    with torch.no_grad():
        z64 = exact.flatten(exact(model.preprocess(d0).double())[0])
    modules_error, fast_error = (z0 - z64).abs().max(), (z1 - z64).abs().max()
    assert fast_error <= max(1e-5, 1.5 * modules_error), (fast_error, modules_error)


def test_bf16_decode_is_float32_within_three_levels_and_near_the_limit_is_float32() -> None:
    """``decode_dtype = bfloat16`` (the app's default on CPUs with native bf16): faces of
    the shipped model and edits of them decode within 3 of 255 levels of float32 (measured
    at most 2.7 over 64 CelebA validation faces with every headline slider at +-1.5), with
    the same peaks to 0.1; a decode peaking at REDUCED_PEAK or more is the float32 one,
    exactly, so the stability guard sees what it saw before. Float32 again is float32."""
    from glow_demo.directions import Directions
    from glow_demo.model import DEFAULT_WEIGHTS, REDUCED_PEAK

    model = Glow.load(DEFAULT_WEIGHTS)
    glasses = Directions.load(DEFAULT_WEIGHTS).direction("glasses")
    z = torch.randn(4, model.latent_dim, generator=torch.Generator().manual_seed(0)) * 0.6
    # typical faces, edited within the sliders' range, and pushed far past it
    latents = torch.cat([z, z + 1.5 * glasses, z - 1.5 * glasses, z[:2] + 6 * glasses])
    exact, exact_peak = model.decode_with_peak(latents)
    model.decode_dtype = torch.bfloat16
    fast, fast_peak = model.decode_with_peak(latents)
    ordinary = exact_peak < REDUCED_PEAK - 0.5
    hot = fast_peak >= REDUCED_PEAK
    assert ordinary[:12].all() and hot[12:].all(), exact_peak  # both kinds are tested
    difference = (fast - exact).abs().amax((1, 2, 3)) * 255
    assert 0 < difference[ordinary].max() < 3, difference
    assert (fast_peak - exact_peak)[ordinary].abs().max() < 0.1
    one, one_peak = model.decode_with_peak(latents[12:13])  # alone, as a slider move
    model.decode_dtype = torch.float32
    assert torch.equal(model.decode_with_peak(latents)[0], exact)
    hot_exact, hot_peak = model.decode_with_peak(latents[hot])  # the same batch, float32
    assert torch.equal(fast[hot], hot_exact) and torch.equal(fast_peak[hot], hot_peak)
    one_exact, one_exact_peak = model.decode_with_peak(latents[12:13])
    assert torch.equal(one, one_exact) and torch.equal(one_peak, one_exact_peak)
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        model.decode_dtype = torch.float16
