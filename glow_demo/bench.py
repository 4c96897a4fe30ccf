"""``python -m glow_demo bench``: the speed figures live editing depends on.

Prints encode and decode latency at batch 1 (p50/p95, ms) on the CPU through the
training modules, the folded inference path and (decode) the compiled one, timed
interleaved so that a busy CPU slows all alike; optionally a full edit of a photo
(decode + paste back: the server's time for one slider move), the app's start-up time
(``python app.py`` until it serves its page), and training throughput (images/s) for
the shipped config. Tests check correctness; this prints figures, because wall time
depends on the machine.
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
    return _time_interleaved({"": fn}, repeats)[""]


def _time_interleaved(fns: dict[str, object], repeats: int) -> dict[str, list[float]]:
    """Each function timed ``repeats`` times, taking turns, so that a busy CPU slows all
    alike. Each turn calls it once untimed first: the variants' weights (up to 30 MB
    each) evict one another from the caches, which the app, running one of them, does
    not see; timed right after another variant, a decode measured up to 1.4x slower."""
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            fn()
            start = time.perf_counter()
            fn()
            out[name].append(time.perf_counter() - start)
    return out


def app_startup(weights: str | Path | None = None, photo: str | Path | None = None,
                moves: int = 10, timeout: float = 180) -> dict[str, float]:
    """Start ``python app.py``: seconds until it serves its page (``startup_s``); with a
    photo, also the first edit after start (``first_edit_s``, the photo already
    prepared) against the median of the ``moves`` after it (``median_edit_s``), each one
    ``/edit`` API call from request to the edited PNG received (``gradio_client``)."""
    import os
    import socket
    import subprocess
    import sys
    import tempfile
    import urllib.error
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(root / "app.py"), "--port", str(port)]
    if weights is not None:
        cmd += ["--weights", str(weights)]
    figures: dict[str, float] = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as temp:
        env = {**os.environ, "GRADIO_TEMP_DIR": temp, "GRADIO_ANALYTICS_ENABLED": "False"}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            while "startup_s" not in figures:
                if time.perf_counter() - start > timeout:
                    raise RuntimeError(f"app.py did not serve within {timeout:g} s")
                if proc.poll() is not None:
                    raise RuntimeError(f"app.py exited with {proc.returncode}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                        figures["startup_s"] = time.perf_counter() - start
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.1)
            if photo is not None:
                figures.update(_edit_times(f"http://127.0.0.1:{port}/", photo, moves))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return figures


def _edit_times(url: str, photo: str | Path, moves: int) -> dict[str, float]:
    """The first ``/edit`` of a prepared photo and the median of the next ``moves``."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    face = handle_file(str(photo))
    client.predict(face, {}, api_name="/edit")  # uploads and prepares the photo (cached)
    times = []
    for k in range(moves + 1):
        start = time.perf_counter()
        client.predict(face, {"smile": round(-1.5 + 3 * k / moves, 2) or 0.1},
                       api_name="/edit")
        times.append(time.perf_counter() - start)
    return {"first_edit_s": times[0], "median_edit_s": statistics.median(times[1:])}


def _rss_mb() -> float:
    """Resident memory of this process (Linux), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_bench(weights: str | Path, repeats: int = 30, photo: str | None = None,
              train_steps: int = 3, edits_for_memory: int = 300, compile_decode: bool = True,
              startup: bool = False) -> dict[str, float]:
    model = Glow.load(weights)
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {cfg} ({params / 1e6:.1f} M parameters)")
    print(f"cpu: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    figures: dict[str, float] = {}
    if startup:  # first, while nothing else of ours runs
        figures.update(app_startup(weights, photo))
        print(f"app start-up (python app.py until it serves): {figures['startup_s']:.1f} s")
        if photo:
            print(f"first /edit after start-up {figures['first_edit_s'] * 1000:.0f} ms, "
                  f"median of the next 10 {figures['median_edit_s'] * 1000:.0f} ms (ratio "
                  f"{figures['first_edit_s'] / figures['median_edit_s']:.2f}; API call to "
                  "PNG received, full resolution)")
    # A random face (temperature 0.7), so that decode and encode time an ordinary face:
    # a decode peaking at REDUCED_PEAK or more (noise does) is redone in float32.
    z = torch.randn(1, model.latent_dim, generator=torch.Generator().manual_seed(0)) * 0.7
    x, peak = model.decode_with_peak(z)
    print(f"timed on a random face (temperature 0.7, decode peak {float(peak[0]):.1f})")

    def using(fast: bool, fn):
        def timed() -> None:
            model.fast = fast
            fn()
        return timed

    variants = {"modules": False, "folded": True}
    # bf16 coupling nets: the app's default where the CPU has bf16 (FaceEditor.load); a
    # model of its own, as switching decode_dtype folds the weights anew
    bf16_model = Glow.load(weights)
    bf16_model.decode_dtype = torch.bfloat16
    built: dict[str, bool] = {}
    if compile_decode:
        from . import compiled as compiled_decode

        for label, m in (("float32", model), ("bf16", bf16_model)):
            start = time.perf_counter()
            cached = compiled_decode.package_path(m).is_file()
            built[label] = compiled_decode.compile_decode(m)
            print(f"compile decode ({label}; AOTInductor, frozen weights): "
                  f"{time.perf_counter() - start:.1f} s"
                  + (" (loaded from the cache)" if cached else " (built)")
                  + ("" if built[label] else " - FAILED, decoding eagerly"))
    compiled = bool(built) and all(built.values())
    encode = _time_interleaved({name: using(fast, lambda: model.encode(x))
                                for name, fast in variants.items()}, repeats)

    def not_compiled(m: Glow):
        def decode() -> None:
            compiled_fn, m._compiled = m._compiled, None
            m.decode(z)
            m._compiled = compiled_fn
        return decode

    decode_variants = {"modules": using(False, lambda: model.decode(z)),
                       "folded": using(True, not_compiled(model)),
                       "folded bf16": not_compiled(bf16_model)}
    if compiled:
        decode_variants["compiled"] = using(True, lambda: model.decode(z))
        decode_variants["compiled bf16"] = lambda: bf16_model.decode(z)
    decode = _time_interleaved(decode_variants, repeats)
    model.fast = True
    for name, times in encode.items():
        print(f"encode (batch 1, {name + '):':10s} {_percentiles(times)}")
        figures[f"encode_{name}_p50_ms"] = statistics.median(times) * 1000
    for name, times in decode.items():
        print(f"decode (batch 1, {name + '):':15s} {_percentiles(times)}")
        figures[f"decode_{name.replace(' ', '_')}_p50_ms"] = statistics.median(times) * 1000

    if photo:
        from .directions import Directions
        from .editor import FaceEditor

        editor = FaceEditor(model, Directions.load(weights))
        editor.prepare(photo)  # loads the landmark model once
        # A fresh editor has an empty cache, so this times a real align + encode.
        face = FaceEditor(editor.model, editor.directions).prepare(photo)
        name = editor.attributes[0].name
        bf16_editor = FaceEditor(bf16_model, editor.directions)
        edits = _time_interleaved({
            "modules": using(False, lambda: editor.edit(face, {name: 1.0})),
            "fast": using(True, lambda: editor.edit(face, {name: 1.0})),
            "fast bf16": lambda: bf16_editor.edit(face, {name: 1.0})}, repeats)
        bf16_label = "compiled bf16" if compiled else "folded bf16"
        model.fast = True
        height, width = face.photo.shape[:2]
        smoothed = f", edit base smoothed {face.smoothing:g} px" if face.smoothing else ""
        print(f"prepare {photo} (load + align + encode + edit base, {width}x{height}"
              f"{smoothed}): {face.seconds * 1000:.0f} ms")
        for variant, edit in edits.items():
            shown = f"fast, {bf16_label}" if variant == "fast bf16" else variant
            print(f"edit (decode + paste back, one slider move; {shown + '):':21s} "
                  f"{_percentiles(edit)}")
            figures[f"edit_{variant.replace(' ', '_')}_p50_ms"] = statistics.median(edit) * 1000
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

        # float32 and bf16 coupling networks (`train --amp`), timed in turns
        times: dict[str, list[float]] = {"float32": [], "bf16 couplings": []}
        for _ in range(train_steps):
            for name, dtype in (("float32", None), ("bf16 couplings", torch.bfloat16)):
                model.set_amp(dtype)
                times[name] += _time(step, 1)
        model.set_amp(None)
        for name, values in times.items():
            rate = 32 / statistics.median(values)
            print(f"training (batch 32, {name}): {rate:.1f} images/s")
            figures[f"train_images_per_s_{name.split()[0]}"] = rate
        figures["train_images_per_s"] = figures["train_images_per_s_float32"]
    print("random faces that read as faces: `python -m glow_demo sample-meter` (dlib, 64 samples)")
    return figures
