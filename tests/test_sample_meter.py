"""The sample meter: dlib's detector finds a real aligned face and rejects noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from glow_demo.align import align_face
from glow_demo.model import DEFAULT_WEIGHTS, Glow
from glow_demo.sample_meter import faces_found, measure

FACES = Path(__file__).resolve().parents[1] / "assets" / "faces"


def test_finds_an_aligned_face_and_not_noise() -> None:
    crop = np.array(align_face(FACES / "astronaut.png").model_input(64))
    face = torch.from_numpy(crop).permute(2, 0, 1).float() / 255
    noise = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    flat = torch.full((3, 64, 64), 0.5)
    assert faces_found(torch.stack([face, noise, flat])).tolist() == [True, False, False]


def test_the_shipped_model_draws_faces_at_low_temperature() -> None:
    """Most of the shipped model's samples at T = 0.5 hold a face dlib finds."""
    crop = np.array(align_face(FACES / "astronaut.png").model_input(64))
    real = torch.from_numpy(crop).permute(2, 0, 1)[None].repeat(2, 1, 1, 1)
    figures = measure(Glow.load(DEFAULT_WEIGHTS), temperatures=(0.5,), n=8, seed=0,
                      real=real)
    assert figures["real"] == (2, 2)
    found, n = figures["T=0.5"]
    assert n == 8 and found >= 6, figures
