"""``python -m glow_demo bench``: the speed figures live editing depends on.

Prints encode and decode latency at batch 1 (p50/p95, ms) on the CPU, optionally a
full edit of a photo (decode + paste back, what one slider move costs), and
training throughput (images/s) for the shipped config. Tests check correctness;
this prints figures, because wall time depends on the machine.
"""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import torch

from .model import Glow


def _percentiles(times_s: list[float]) -> str:
    ms = sorted(t * 1000 for t in times_s)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   (n={len(ms)})"


def _time(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _rss_mb() -> float:
    """Resident memory of this process (Linux), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_bench(weights: str | Path, repeats: int = 30, photo: str | None = None,
              train_steps: int = 3, edits_for_memory: int = 300) -> dict[str, float]:
    model = Glow.load(weights)
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {cfg} ({params / 1e6:.1f} M parameters)")
    print(f"cpu: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    x = torch.rand(1, cfg.channels, cfg.resolution, cfg.resolution)
    z = model.encode(x)
    encode = _time(lambda: model.encode(x), repeats)
    decode = _time(lambda: model.decode(z), repeats)
    print(f"encode (batch 1): {_percentiles(encode)}")
    print(f"decode (batch 1): {_percentiles(decode)}")
    figures = {"encode_p50_ms": statistics.median(encode) * 1000,
               "decode_p50_ms": statistics.median(decode) * 1000}

    if photo:
        from .editor import FaceEditor

        editor = FaceEditor.load(weights)
        editor.prepare(photo)  # loads the landmark model once
        # A fresh editor has an empty cache, so this times a real align + encode.
        face = FaceEditor(editor.model, editor.directions).prepare(photo)
        name = editor.attributes[0].name
        edit = _time(lambda: editor.edit(face, {name: 1.0}), repeats)
        height, width = face.photo.shape[:2]
        smoothed = f", edit base smoothed {face.smoothing:g} px" if face.smoothing else ""
        print(f"prepare {photo} (load + align + encode + edit base, {width}x{height}"
              f"{smoothed}): {face.seconds * 1000:.0f} ms")
        print(f"edit (decode + paste back, one slider move): {_percentiles(edit)}")
        figures["edit_p50_ms"] = statistics.median(edit) * 1000
        # Memory must stay flat over a long editing session (the app shares one editor).
        before = _rss_mb()
        for i in range(edits_for_memory):
            editor.edit(face, {name: (i % 31) / 10 - 1.5})
        after = _rss_mb()
        print(f"memory over {edits_for_memory} edits: RSS {before:.0f} MB -> {after:.0f} MB")
        figures["rss_growth_mb"] = after - before

    if train_steps:
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
        batch = torch.rand(32, cfg.channels, cfg.resolution, cfg.resolution)

        def step() -> None:
            optimizer.zero_grad()
            model.bits_per_dim(batch, noise=True).mean().backward()
            optimizer.step()

        steps = _time(step, train_steps)
        rate = 32 / statistics.median(steps)
        print(f"training (batch 32, CPU): {rate:.1f} images/s")
        figures["train_images_per_s"] = rate
    return figures
