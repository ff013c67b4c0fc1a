"""The one home of interpolation between two points: lerp, slerp, and n frames from a to b.

Every caller passes (a, b, t) in this order: the image engine's variation noise, the Latent Explorer's strips and
walks, the melody VAE's interpolations. Numpy arrays, or torch tensors for the textbook formula (torch is imported
only when a tensor comes in).

Why slerp: in high dimensions Gaussian samples sit on a thin shell of radius ~sqrt(D). A straight line between two
of them cuts through the inside of the shell, where a decoder has seen nothing (Tom White, "Sampling Generative
Networks", 2016); the great-circle path stays on the shell.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PARALLEL = 0.9995  # |cos| above this: the two directions are one, and the arc is a line (avoids 0/0)


def lerp(a: Any, b: Any, t: float) -> Any:
    return (1.0 - t) * a + t * b


def slerp(a: Any, b: Any, t: float, *, blend_lengths: bool = True, parallel_threshold: float = PARALLEL) -> Any:
    """Spherical interpolation; t=0 gives `a`, t=1 gives `b`.

    blend_lengths=True (numpy) walks the arc between the two directions and blends the lengths linearly, so
    vectors of different lengths interpolate smoothly (the explorers). blend_lengths=False (torch tensors) is the
    textbook formula on the raw vectors, the one A1111's variation seed uses: noise mixed by it matches theirs and
    every older image recipe of ours, bit for bit.
    """
    if not blend_lengths:
        return _slerp_raw(a, b, t, parallel_threshold)
    a_flat, b_flat = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    norm_a, norm_b = np.linalg.norm(a_flat), np.linalg.norm(b_flat)
    if norm_a == 0 or norm_b == 0:
        return lerp(a, b, t)
    cos_omega = float(np.clip(np.dot(a_flat / norm_a, b_flat / norm_b), -1.0, 1.0))
    if abs(cos_omega) > parallel_threshold:
        return lerp(a, b, t)
    omega = np.arccos(cos_omega)
    sin_omega = np.sin(omega)
    direction = (np.sin((1 - t) * omega) / sin_omega) * (a_flat / norm_a) + (np.sin(t * omega) / sin_omega) * (
        b_flat / norm_b)
    length = (1 - t) * norm_a + t * norm_b
    return (direction * length).reshape(a.shape).astype(a.dtype)


def _slerp_raw(a, b, t: float, parallel_threshold: float):
    import torch

    if t <= 0.0:
        return a.clone()
    if t >= 1.0:
        return b.clone()
    a64, b64 = a.double(), b.double()
    dot = (torch.sum(a64 * b64) / (a64.norm() * b64.norm())).clamp(-1.0, 1.0)
    if dot.abs() > parallel_threshold:
        return ((1 - t) * a64 + t * b64).to(a.dtype)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so * a64 + torch.sin(t * omega) / so * b64).to(a.dtype)


def interpolate(a: Any, b: Any, frames: int, mode: str = "slerp") -> list:
    """`frames` points from a to b inclusive."""
    step = slerp if mode == "slerp" else lerp
    return [step(a, b, i / (frames - 1)) if frames > 1 else a for i in range(frames)]
