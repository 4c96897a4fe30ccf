"""The compiled one-image decode: built once by AOTInductor, kept on disk, loaded in ms.

A slider move decodes one image. Compiled ahead of time with its folded weights frozen
in (convolution weights pre-packed for oneDNN, ReLUs and elementwise work fused into
C++ kernels), that decode takes about half the time of the folded eager path here
(11.5 against 23.5 ms, bf16 coupling nets, 2 threads). ``torch.compile`` in the app's
own process made the same code, but its tracing holds the GIL for tens of seconds, and a
slider move meanwhile took 2-8 s instead of 0.25; so the package is built by a separate,
low-priority process (``python -m glow_demo compile-decode``), written to a cache
folder, and the app loads it when it appears (about 20 ms). Until then, and wherever
compiling fails (no C++ compiler, say), decodes run the folded eager path.

A package is named by what it was compiled from (the folded weights, the decode
precision, torch's version, the CPU's instruction set, the thread count), so a changed
model or machine builds a new one and never loads a stale one. The cache folder is
``$GLOW_DEMO_CACHE`` or ``~/.cache/glow-demo``: packages are native code, like
inductor's own cache, and are only ever loaded from there. Each is about 19 MB and a new
model makes a new one, so building one drops all but the ``KEEP_PACKAGES`` newest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import torch

from .model import Glow

CACHE_ENV = "GLOW_DEMO_CACHE"
# packages kept in the cache folder: both decode precisions of this model and the last
KEEP_PACKAGES = 4


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "glow-demo")


def package_path(model: Glow, cache: str | Path | None = None) -> Path:
    """Where the compiled decode of ``model`` as it is now lives (or will)."""
    digest = hashlib.sha256()
    for part in (model.config.to_json(), str(model.decode_dtype), torch.__version__,
                 torch.backends.cpu.get_cpu_capability(), str(torch.get_num_threads())):
        digest.update(part.encode() + b"\0")
    for level in model.folded():
        for name, tensor in level.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return Path(cache or cache_dir()) / f"decode-{digest.hexdigest()[:24]}.pt2"


def build(model: Glow, path: str | Path) -> Path:
    """Export and compile the one-image folded decode into ``path`` (tens of seconds).
    Written under a temporary name and renamed, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = model.unflatten(torch.zeros(1, model.latent_dim))
    with torch.no_grad():
        program = torch.export.export(model.folded_decode(), tuple(example))
        with tempfile.TemporaryDirectory(dir=path.parent) as temp:
            partial = Path(temp) / path.name
            torch._inductor.aoti_compile_and_package(
                program, package_path=str(partial), inductor_configs={"freezing": True})
            os.replace(partial, path)
    prune(path.parent)
    return path


def prune(cache: str | Path, keep: int = KEEP_PACKAGES) -> list[Path]:
    """Delete all but the ``keep`` most recently written packages in ``cache``; returns
    those deleted. A package another running app has loaded stays mapped in it."""
    packages = sorted(Path(cache).glob("decode-*.pt2"), key=lambda p: p.stat().st_mtime,
                      reverse=True)
    dropped = []
    for old in packages[keep:]:
        try:
            old.unlink()
            dropped.append(old)
        except OSError:
            pass  # gone already, or not ours to delete: leave it
    return dropped


def load(model: Glow, path: str | Path) -> bool:
    """Decode single images with the package at ``path``; False (with a warning) if it
    cannot be loaded."""
    try:
        decode_one = torch._inductor.aoti_load_package(str(path))
        model.use_compiled_decode(decode_one)
    except Exception as err:  # noqa: BLE001 (any failure leaves the eager decode running)
        warnings.warn(f"compiled decoder {path} not used, decoding eagerly: {err}",
                      stacklevel=2)
        return False
    return True


def compile_decode(model: Glow, cache: str | Path | None = None) -> bool:
    """Build the package if it is not cached yet (in this process), then load it."""
    path = package_path(model, cache)
    if not path.is_file():
        try:
            build(model, path)
        except Exception as err:  # noqa: BLE001 (no compiler, export failure, ...)
            warnings.warn(f"compiling the decoder failed, decoding eagerly: {err}",
                          stacklevel=2)
            return False
    return load(model, path)


def compile_in_background(model: Glow, cache: str | Path | None = None,
                          nice: int = 10) -> threading.Thread | None:
    """Load the cached package now, or build it in a separate low-priority process and
    load it when it is done; returns that waiting thread (None if nothing to wait for)."""
    path = package_path(model, cache)
    if path.is_file():
        load(model, path)
        return None
    temp = tempfile.TemporaryDirectory(prefix="glow-decode-")
    model.save(temp.name, dtype=torch.float32)  # exactly these weights, for the builder
    command = [sys.executable, "-m", "glow_demo", "compile-decode", "--weights", temp.name,
               "--cache", str(path.parent), "--threads", str(torch.get_num_threads()),
               "--dtype", "bfloat16" if model.decode_dtype == torch.bfloat16 else "float32",
               "--nice", str(nice)]

    def build_then_load() -> None:
        with temp:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not path.is_file():
            warnings.warn("compiling the decoder failed, decoding eagerly: "
                          + (result.stderr.strip().splitlines() or ["no package written"])[-1],
                          stacklevel=2)
            return
        load(model, path)

    thread = threading.Thread(target=build_then_load, name="compile-decode", daemon=True)
    thread.start()
    return thread
