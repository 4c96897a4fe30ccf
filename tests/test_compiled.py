"""The compiled one-image decode (``glow_demo.compiled``): the folded decode's images and
peaks, cached by what it was compiled from, built in another process for the app."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import torch

from glow_demo import compiled
from glow_demo.model import DEFAULT_WEIGHTS, REDUCED_PEAK, Glow, GlowConfig

ROOT = Path(__file__).resolve().parents[1]


def _tiny_model(randomise) -> Glow:
    """The same random weights every time (``randomise`` is seeded), 1x1 convs included."""
    torch.manual_seed(1)
    model = Glow(GlowConfig(resolution=8, levels=2, steps=2, width=8, scale_floor=0.2))
    return randomise(model, 0.05).eval()


def test_compiled_decode_matches_the_folded_path_and_is_cached_by_its_weights(
        tmp_path, randomise) -> None:
    """One image at a time (a slider move) runs the compiled package: the same images
    and peaks as the folded path, NaN included (peak inf); a batch keeps the folded path.
    A second model with the same weights loads the package without building it; changed
    weights name another package and stop using the old one."""
    model = _tiny_model(randomise)
    z = torch.randn(3, model.latent_dim, generator=torch.Generator().manual_seed(0)) * 0.5
    z[1, 0] = float("nan")
    reference = [model.decode_with_peak(z[i:i + 1]) for i in range(3)]
    assert reference[1][1][0] == float("inf")
    assert compiled.compile_decode(model, tmp_path)
    path = compiled.package_path(model, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    for i, (images, peak) in enumerate(reference):
        compiled_images, compiled_peak = model.decode_with_peak(z[i:i + 1])
        assert (compiled_images - images).abs().max() < 1e-5
        assert torch.allclose(compiled_peak, peak, rtol=0, atol=1e-5)  # inf == inf
    batch_peaks = model.decode_with_peak(z)[1]
    assert torch.allclose(batch_peaks, torch.cat([p for _, p in reference]), rtol=0, atol=1e-5)

    built = path.stat().st_mtime_ns
    twin = _tiny_model(randomise)
    assert compiled.package_path(twin, tmp_path) == path
    assert compiled.compile_decode(twin, tmp_path) and path.stat().st_mtime_ns == built

    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    assert compiled.package_path(model, tmp_path) != path and not model.decode_compiled
    model.fast = False  # the training modules, as the reference for the changed weights
    changed = model.decode(z[:1])
    model.fast = True
    assert (model.decode(z[:1]) - changed).abs().max() < 1e-5


def test_app_builds_the_package_in_another_process_and_loads_it(tmp_path, randomise
                                                                ) -> None:
    """What ``python app.py`` does on its first start: the package is built by
    ``python -m glow_demo compile-decode`` (not in the app's process, whose slider moves
    would wait for the GIL), the waiting thread loads it, and decodes use it; once
    built, the next start loads it at once."""
    model = _tiny_model(randomise)
    z = torch.randn(1, model.latent_dim, generator=torch.Generator().manual_seed(2)) * 0.5
    folded = model.decode(z)
    thread = compiled.compile_in_background(model, tmp_path)
    assert thread is not None
    thread.join(timeout=600)
    path = compiled.package_path(model, tmp_path)
    assert path.is_file()
    assert model.decode_compiled and (model.decode(z) - folded).abs().max() < 1e-5
    again = _tiny_model(randomise)
    assert compiled.compile_in_background(again, tmp_path) is None
    assert again.decode_compiled


def test_cli_compile_decode_prints_the_package_it_wrote(tmp_path, randomise) -> None:
    weights = tmp_path / "model"
    _tiny_model(randomise).save(weights)
    out = subprocess.run([sys.executable, "-m", "glow_demo", "compile-decode", "--weights",
                          str(weights), "--cache", str(tmp_path / "cache"), "--dtype",
                          "float32"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    printed = Path(out.stdout.strip().splitlines()[-1])
    assert printed.parent == tmp_path / "cache" and printed.is_file()
    assert printed.suffix == ".pt2"


def test_compiled_bf16_decode_of_the_shipped_model_is_float32_within_bf16s_error(
        decode_cache: Path) -> None:
    """The app's default decode (bf16 coupling nets, compiled): faces of the shipped model
    and edits within the sliders' range are as close to the float32 decode as the eager
    bf16 decode is (over 64 CelebA validation faces x 12 headline sliders at +-1.5,
    1,594 decodes: at most 3.0 of 255 levels at a pixel, 0.12 on average; eager bf16 4.4
    and 0.12), with peaks within 0.05; one pushed past the range (peak >= REDUCED_PEAK)
    is still redone in float32, exactly. Decodes from several threads at once each get
    their own image."""
    from glow_demo.directions import Directions

    model = Glow.load(DEFAULT_WEIGHTS)
    glasses = Directions.load(DEFAULT_WEIGHTS).direction("glasses")
    z = torch.randn(3, model.latent_dim, generator=torch.Generator().manual_seed(0)) * 0.6
    latents = torch.cat([z, z + 1.5 * glasses, z - 1.5 * glasses, z[:1] + 6 * glasses])
    exact, exact_peak = model.decode_with_peak(latents)
    hot, hot_peak = model.decode_with_peak(latents[-1:])  # alone, as a slider move
    model.decode_dtype = torch.bfloat16
    assert compiled.compile_decode(model, decode_cache)  # the app's package, where bf16 is native
    fast, fast_peak = map(torch.cat, zip(*(model.decode_with_peak(latents[i:i + 1])
                                           for i in range(len(latents))), strict=True))
    ordinary = exact_peak < REDUCED_PEAK - 0.5
    assert ordinary[:-1].all() and fast_peak[-1] >= REDUCED_PEAK, exact_peak
    difference = (fast - exact).abs()[ordinary] * 255
    assert difference.max() < 4 and difference.mean() < 0.3, (difference.max(), difference.mean())
    assert (fast_peak - exact_peak)[ordinary].abs().max() < 0.05
    assert torch.equal(fast[-1:], hot) and torch.equal(fast_peak[-1:], hot_peak)

    alone = [model.decode(latents[i:i + 1]) for i in range(6)]
    together: dict[int, torch.Tensor] = {}

    def decode(i: int) -> None:
        for _ in range(3):
            together[i] = model.decode(latents[i:i + 1])

    threads = [threading.Thread(target=decode, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(together[i], alone[i]) for i in range(6))


def test_building_a_package_keeps_only_the_newest_few(tmp_path) -> None:
    """A new model makes a new 19 MB package: the cache keeps the KEEP_PACKAGES most
    recently written and nothing else of ours is touched."""
    for i in range(compiled.KEEP_PACKAGES + 2):
        package = tmp_path / f"decode-{i:024d}.pt2"
        package.write_bytes(b"x")
        os.utime(package, (1_000_000 + i, 1_000_000 + i))
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    dropped = compiled.prune(tmp_path)
    assert sorted(p.name for p in dropped) == [f"decode-{i:024d}.pt2" for i in (0, 1)]
    kept = sorted(p.name for p in tmp_path.glob("decode-*.pt2"))
    assert kept == [f"decode-{i:024d}.pt2" for i in range(2, compiled.KEEP_PACKAGES + 2)]
    assert other.read_text() == "mine"
    assert compiled.prune(tmp_path) == []
