"""Training pipeline on real CelebA faces: the pack, a DDP run with 2 CPU processes, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from glow_demo.data import (
    DEFAULT_CELEBA,
    DEFAULT_CELEBA_TEST,
    celeba_crop,
    load_pack,
    pack_celeba,
)
from glow_demo.model import Glow

REPO = Path(__file__).resolve().parents[1]
TINY_ARGS = ["--levels", "2", "--steps", "2", "--width", "16", "--resolution", "64"]


@pytest.fixture(scope="module")
def small_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pack_celeba(DEFAULT_CELEBA, tmp_path_factory.mktemp("pack") / "p.npz", limit=120)


@pytest.mark.needs_data(DEFAULT_CELEBA)
def test_pack_holds_the_training_crop(small_pack: Path) -> None:
    from PIL import Image

    pack = load_pack(small_pack)
    assert pack.images.shape == (120, 3, 64, 64) and pack.images.dtype == torch.uint8
    assert len(pack.attr_names) == 40 and pack.attrs.shape == (120, 40)
    train, val = pack.split()
    assert len(train) + len(val) == 120 and len(val) == 12
    with Image.open(DEFAULT_CELEBA / "images" / pack.files[0]) as im:
        direct = torch.from_numpy(np.array(celeba_crop(im))).permute(2, 0, 1)
    # JPEG at quality 95 in the pack: close to the crop, well inside one 5-bit bin (8 levels).
    assert (pack.images[0].float() - direct.float()).abs().mean() < 3.0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(pack: Path, out: Path, steps: int, nproc: int, resume: bool = False) -> str:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
           "-m", "glow_demo", "train", "--data", str(pack), "--out", str(out),
           "--batch-size", "4", "--max-steps", str(steps), "--val-every", "2", "--val-size", "8",
           "--warmup", "2", *TINY_ARGS]
    if resume:
        cmd.append("--resume")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _train_one_process(pack: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m glow_demo train`` on the tiny model in one process; it must succeed."""
    cmd = [sys.executable, "-m", "glow_demo", "train", "--data", str(pack), "--out", str(out),
           "--batch-size", "4", "--val-size", "8", *TINY_ARGS, *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.needs_data(DEFAULT_CELEBA)
def test_ddp_two_cpu_processes_train_and_resume(small_pack: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _train(small_pack, out, steps=3, nproc=2)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 3 and state["images_seen"] == 3 * 4 * 2
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(r["val_bpd"])) for r in log)
    assert list((out / "samples").glob("*.png"))
    model = Glow.load(out / "model")
    assert torch.isfinite(model.sample(2, seed=0)).all()

    text = _train(small_pack, out, steps=5, nproc=2, resume=True)
    assert "resumed from" in text
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 5 and state["images_seen"] == 5 * 4 * 2


@pytest.mark.needs_data(DEFAULT_CELEBA)
def test_cpu_bf16_couplings_with_flips_train_and_export_float32(small_pack: Path,
                                                                 tmp_path: Path) -> None:
    """``--amp`` on the CPU: bf16 only inside the coupling networks; the log and the exported
    model are float32, and the run's validation equals a float32 evaluation of it."""
    from glow_demo.model import bf16_supported
    from glow_demo.train import evaluate_bpd

    out = tmp_path / "run"
    proc = _train_one_process(small_pack, out, "--max-steps", "4", "--val-every", "4",
                              "--warmup", "2", "--amp")
    # where the CPU only emulates bf16 (about 10x slower than float32), the run says so
    assert ("no native bf16" in proc.stdout) == (not bf16_supported()), proc.stdout[-3000:]
    model = Glow.load(out / "model")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.config.scale_floor == 0.2  # the default for new models
    assert all(getattr(m, "amp_dtype", None) is None for m in model.modules())
    logged = json.loads((out / "log.jsonl").read_text().splitlines()[-1])["val_bpd"]
    _, val = load_pack(small_pack).split()
    assert abs(evaluate_bpd(model, val[:8]) - logged) < 1e-4


@pytest.mark.needs_data(DEFAULT_CELEBA)
def test_continuing_a_model_without_a_learning_rate_warns(small_pack: Path,
                                                          tmp_path: Path) -> None:
    """``--init-from`` with train's from-scratch default rate (1e-3) would undo a trained
    model's last gains, so the run says so; with ``--lr`` given, or from scratch, it does
    not."""
    def run(out: Path, *extra: str) -> str:
        proc = _train_one_process(small_pack, out, "--max-steps", "1", "--val-every", "1",
                                  "--warmup", "1", *extra)
        return proc.stdout + proc.stderr

    warning = "--init-from without --lr"
    assert warning not in run(tmp_path / "scratch")
    model = str(tmp_path / "scratch" / "model")
    assert warning in run(tmp_path / "default", "--init-from", model)
    assert warning not in run(tmp_path / "low", "--init-from", model, "--lr", "3e-7")
    log = json.loads((tmp_path / "low" / "log.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(log["val_bpd"])


def test_learning_rate_warms_up_then_decays_over_the_last_minutes() -> None:
    from glow_demo.train import TrainConfig, _lr_at

    cfg = TrainConfig(data="", out="", lr=1e-3, warmup_steps=10, minutes=100, decay_minutes=20)
    assert _lr_at(cfg, 0) == pytest.approx(1e-4)
    assert _lr_at(cfg, 50, elapsed_minutes=79) == pytest.approx(1e-3)
    assert _lr_at(cfg, 50, elapsed_minutes=90) == pytest.approx(1e-3 * (0.05 + 0.95 * 0.5))
    assert _lr_at(cfg, 50, elapsed_minutes=100) == pytest.approx(5e-5)
    assert _lr_at(cfg, 50, elapsed_minutes=130) == pytest.approx(5e-5)


@pytest.mark.needs_data(DEFAULT_CELEBA, DEFAULT_CELEBA_TEST)
def test_celeba_test_people_are_aligned_and_packed_around_the_fixed_validation(
        small_pack: Path, tmp_path: Path) -> None:
    """The 950 new people go between CelebA's training images and its validation split,
    which stays last and byte-identical; the strangers (whole people) are packed apart."""
    from glow_demo.data import (
        STRANGER_EVERY,
        combine_packs,
        pack_celeba_test,
        read_identities,
    )

    extra, strangers, dropped = pack_celeba_test(DEFAULT_CELEBA_TEST, tmp_path / "x.npz",
                                                 tmp_path / "s.npz", limit=60, workers=1)
    extra_pack, stranger_pack = load_pack(extra), load_pack(strangers)
    assert len(extra_pack.files) + len(stranger_pack.files) + dropped == 60
    assert dropped <= 6 and extra_pack.images.shape[1:] == (3, 64, 64)
    people = read_identities(DEFAULT_CELEBA_TEST)
    chosen = set(sorted(set(people.values()))[::STRANGER_EVERY])
    assert len(chosen) == 50
    assert all(people[f] in chosen for f in stranger_pack.files)
    assert not any(people[f] in chosen for f in extra_pack.files)

    both = load_pack(combine_packs(small_pack, extra, tmp_path / "both.npz"))
    celeba = load_pack(small_pack)
    _, val = celeba.split()
    assert torch.equal(both.images[-len(val):], val)
    assert both.files[: 120 - len(val)] == celeba.files[: 120 - len(val)]
    assert both.files[120 - len(val): -len(val)] == extra_pack.files
    assert both.attrs.shape == (len(both.files), 40)


@pytest.mark.needs_data(DEFAULT_CELEBA)
def test_device_packs_keep_the_validation_split_byte_for_byte(small_pack: Path,
                                                             tmp_path: Path) -> None:
    """`scripts/pack_for_device.py`: the WebP copy changes the training faces a little and
    keeps the validation split whole, so validation on a GPU reads the same figures as here.
    The exact subset needs a pack whose validation split is the fixed 1,000 (it refuses a
    small one) and keeps what it keeps unchanged, within its byte budget."""
    def pack_for_device(name: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "scripts/pack_for_device.py", str(small_pack), str(tmp_path / name),
             *extra], cwd=REPO, capture_output=True, text=True, timeout=300)

    proc = pack_for_device("webp.npz")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    full, webp = load_pack(small_pack), load_pack(tmp_path / "webp.npz")
    _, val = full.split()
    n_train = len(full.files) - len(val)
    assert torch.equal(webp.split()[1], val) and webp.files == full.files
    change = (webp.images[:n_train].float() - full.images[:n_train].float()).abs().mean()
    assert 0.3 < change < 3.0, change
    proc = pack_for_device("exact.npz", "--exact", "200000")
    assert proc.returncode == 1 and "would move the validation split" in proc.stderr, proc.stderr

    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from pack_for_device import exact_subset
    finally:
        sys.path.remove(str(REPO / "scripts"))
    sizes = np.random.default_rng(0).integers(2000, 4000, 12_000)
    index = exact_subset(sizes, 11_000, 20_000_000)
    assert sizes[index].sum() <= 20_000_000 < sizes[index].sum() + 4000 * 2
    assert list(index[-1000:]) == list(range(11_000, 12_000))
    kept = index[:-1000]
    assert np.all(np.diff(kept) > 0) and kept[-1] < 11_000 and 5_000 < len(kept) < 11_000
