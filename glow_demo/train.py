"""Training loop: ``python -m glow_demo train --data PACK --out RUN_DIR``.

One process on a CPU or GPU, or several under ``torchrun`` (PyTorch DDP; gloo on
CPU, NCCL on GPU). Designed to be cut off at any moment: it checkpoints every few
minutes (and when ``--minutes`` runs out) and ``--resume`` carries on from the
last checkpoint, so a 10-minute-per-command GPU lease loses little.

A run directory holds:
  checkpoint.pt        model + optimiser + counters (torch.save; loaded weights_only)
  model/               glow.safetensors + glow.json: the exportable model
  samples/             sample grids at temperature 0.7, written at each validation
  log.jsonl            one JSON line per validation
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from .data import load_pack, to_unit
from .images import save_grid
from .model import Glow, GlowConfig, bf16_supported


@dataclass
class TrainConfig:
    data: str
    out: str
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 200
    grad_clip: float = 50.0
    minutes: float = 0.0  # wall-clock budget; 0 = until max_steps
    max_steps: int = 0  # 0 = unlimited
    val_every: int = 500
    val_size: int = 1000
    checkpoint_minutes: float = 5.0
    amp: bool = False  # bf16 coupling networks (CPU with avx512_bf16, or CUDA)
    flip: bool = True  # random horizontal flips of training images (faces are near-symmetric)
    resume: bool = False
    init_from: str = ""  # start from a saved model directory (fresh optimiser)
    save_dtype: str = "float32"  # of OUT/model; float16 fits the device's 16 MiB file limit
    decay_minutes: float = 0.0  # cosine learning-rate decay over the last part of `minutes`
    seed: int = 0
    max_bad_steps: int = 20  # consecutive non-finite steps before giving up


def _dist_info() -> tuple[int, int]:
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend)
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _device(rank: int) -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


@torch.no_grad()
def evaluate_bpd(model: Glow, images_uint8: torch.Tensor, batch_size: int = 64) -> float:
    """Mean deterministic bits/dim (bin centres, no noise) over uint8 images."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    for start in range(0, len(images_uint8), batch_size):
        batch = to_unit(images_uint8[start : start + batch_size]).to(device)
        total += model.bits_per_dim(batch).double().sum().item()
    model.train(was_training)
    return total / len(images_uint8)


def _lr_at(cfg: TrainConfig, step: int, elapsed_minutes: float = 0.0) -> float:
    """Linear warm-up over the run's first steps, then constant; with ``decay_minutes``,
    a cosine down to 5 % over the last ``decay_minutes`` of the ``minutes`` budget (a
    time-based decay, since a CPU session is bounded by the clock, not by steps)."""
    lr = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    if cfg.decay_minutes and cfg.minutes:
        start = cfg.minutes - cfg.decay_minutes
        t = min(1.0, max(0.0, (elapsed_minutes - start) / cfg.decay_minutes))
        lr *= 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))
    return lr


def train(cfg: TrainConfig, model_config: GlowConfig) -> Path:
    rank, world = _dist_info()
    device = _device(rank)
    torch.manual_seed(cfg.seed + rank)
    out = Path(cfg.out)
    ckpt_path = out / "checkpoint.pt"
    if rank == 0:
        (out / "samples").mkdir(parents=True, exist_ok=True)

    pack = load_pack(cfg.data)
    train_images, val_images = pack.split()
    val_images = val_images[: cfg.val_size]

    model = Glow(model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, images_seen = 0, 0
    if cfg.resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        saved_cfg = GlowConfig.from_dict(state["model_config"])
        if saved_cfg != model_config:
            raise SystemExit(f"{ckpt_path} was trained with {saved_cfg}, not {model_config}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, images_seen = int(state["step"]), int(state["images_seen"])
        if rank == 0:
            print(f"resumed from {ckpt_path} at step {step} ({images_seen} images seen)")
    elif cfg.init_from:
        # A carried model (e.g. to or from a GPU lease, where the optimiser state is too
        # big to carry): weights only; Adam's moments restart under the warm-up.
        loaded = Glow.load(cfg.init_from, device)
        if loaded.config != model_config:
            raise SystemExit(f"{cfg.init_from} holds {loaded.config}, not {model_config}")
        model.load_state_dict(loaded.state_dict())
        if rank == 0:
            print(f"initialised from {cfg.init_from}")
    else:
        # ActNorm's data-dependent init: one forward pass over a large batch.
        init = train_images[torch.randperm(len(train_images))[: max(256, cfg.batch_size)]]
        with torch.no_grad():
            model.train()
            model.bits_per_dim(to_unit(init).to(device), noise=True)

    if cfg.amp:
        # Only the coupling networks; scales, shifts, log-dets and priors stay float32.
        # Validation and samples switch it off: every figure is a float32 one.
        model.set_amp(torch.bfloat16)
        if device.type == "cpu" and not bf16_supported() and rank == 0:
            # Without AVX512-BF16 or AMX, oneDNN emulates bf16: measured 2026-12-01 on
            # such an EPYC, 57 s a step against 5.3 s in float32 (batch 32).
            print("warning: this CPU has no native bf16 (AVX512-BF16 or AMX), so --amp "
                  "is emulated and about 10x slower than float32 here: drop --amp")
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    def bpd_loss(batch: torch.Tensor) -> torch.Tensor:
        # DDP must see the forward call itself, so go through net, not model.
        _, log_density = net(model.preprocess(batch, noise=True))
        return model.density_to_bpd(log_density).mean()

    def save_checkpoint() -> None:
        if rank != 0:
            return
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "images_seen": images_seen,
            "model_config": asdict(model_config),
        }
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(ckpt_path)
        model.save(out / "model", dtype=getattr(torch, cfg.save_dtype))

    def validate() -> None:
        if rank != 0:
            return
        model.set_amp(None)
        val_bpd = evaluate_bpd(model, val_images)
        model.eval()
        grid = model.sample(16, temperature=0.7, seed=0)
        save_grid(grid, out / "samples" / f"step{step:07d}.png")
        model.train()
        model.set_amp(torch.bfloat16 if cfg.amp else None)
        record = {"step": step, "images_seen": images_seen, "val_bpd": val_bpd,
                  "time": time.time()}
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        tqdm.write(f"step {step}: validation {val_bpd:.4f} bits/dim")

    start_time = last_ckpt = time.time()
    gen = torch.Generator().manual_seed(cfg.seed)
    bad_steps = 0
    bar = tqdm(initial=step, total=cfg.max_steps or None, disable=rank != 0, dynamic_ncols=True)
    model.train()
    epoch = images_seen // max(1, len(train_images))
    order = torch.randperm(len(train_images), generator=gen.manual_seed(cfg.seed + epoch))
    cursor = (images_seen % max(1, len(train_images))) // world
    per_rank = len(train_images) // world
    while True:
        if cfg.max_steps and step >= cfg.max_steps:
            break
        if cfg.minutes and time.time() - start_time > cfg.minutes * 60:
            break
        if cursor + cfg.batch_size > per_rank:
            epoch += 1
            order = torch.randperm(len(train_images), generator=gen.manual_seed(cfg.seed + epoch))
            cursor = 0
        mine = order[rank::world][cursor : cursor + cfg.batch_size]
        cursor += cfg.batch_size
        batch = to_unit(train_images[mine]).to(device, non_blocking=True)
        if cfg.flip:
            flips = torch.rand(len(batch), generator=gen) < 0.5
            batch[flips] = batch[flips].flip(-1)

        lr = _lr_at(cfg, step, (time.time() - start_time) / 60)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss = bpd_loss(batch)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
            # NaN guard: skip the update; all ranks see the same all-reduced grads.
            bad_steps += 1
            optimizer.zero_grad(set_to_none=True)
            if bad_steps >= cfg.max_bad_steps:
                raise RuntimeError(f"{bad_steps} non-finite steps in a row at step {step}")
            continue
        bad_steps = 0
        optimizer.step()
        step += 1
        images_seen += cfg.batch_size * world
        bar.update(1)
        bar.set_postfix(bpd=f"{loss.item():.3f}", lr=f"{lr:.1e}")

        if step % cfg.val_every == 0:
            validate()
        if time.time() - last_ckpt > cfg.checkpoint_minutes * 60:
            save_checkpoint()
            last_ckpt = time.time()
    bar.close()
    save_checkpoint()
    if step % cfg.val_every:
        validate()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return out / "model"
