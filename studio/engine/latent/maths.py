"""Latent-space maths and the explorer's tasks: encode/decode, slerp, maps, walks, grids, breeding.

The maths work on numpy arrays of any shape (a VAE latent is C×h×w); they are flattened where a
vector is needed and reshaped back. torch and diffusers are imported inside the functions that
touch a model.

Interpolation itself (lerp, slerp, n frames) lives in studio.core.interpolate, shared with the image and
melody engines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from studio.core.interpolate import interpolate, lerp, slerp  # noqa: F401 - re-exported for the explorer
from studio.core.jobs import UserError

# --- interpolation (lerp, slerp and interpolate live in studio.core.interpolate) ---------------------------


def ease_in_out(t: float) -> float:
    """Smoothstep: slow near the key points, so a looped walk lingers on what the user picked."""
    return t * t * (3 - 2 * t)


def loop_walk(points: Sequence[np.ndarray], frames_per_leg: int, mode: str = "slerp", eased: bool = True) -> list[np.ndarray]:
    """A closed loop through the key points (back to the first), eased between each pair."""
    step = slerp if mode == "slerp" else lerp
    frames: list[np.ndarray] = []
    for index, start in enumerate(points):
        end = points[(index + 1) % len(points)]
        for frame in range(frames_per_leg):
            t = frame / frames_per_leg
            frames.append(step(start, end, ease_in_out(t) if eased else t))
    return frames


def random_walk(start: np.ndarray, steps: int, step_size: float, seed: int, scale: np.ndarray | float = 1.0,
                pull: float = 0.05) -> list[np.ndarray]:
    """A smooth random walk: velocity changes a little each step; a weak pull keeps it near the data."""
    rng = np.random.default_rng(seed)
    position, velocity = start.astype(np.float64), np.zeros_like(start, dtype=np.float64)
    out = []
    for _ in range(steps):
        velocity = 0.9 * velocity + step_size * rng.standard_normal(start.shape) * scale
        position = position + velocity - pull * (position - start)
        out.append(position.astype(start.dtype))
    return out


# --- a 2-D map of latents --------------------------------------------------------------------


@dataclass
class LatentMap:
    """PCA of flattened latents, plus what is needed to decode any point of the plane."""

    latents: np.ndarray  # (N, D) the encoded data, flattened
    mean: np.ndarray  # (D,)
    components: np.ndarray  # (k, D) principal directions, rows unit length
    variance: np.ndarray  # (k,) variance along each component
    points: np.ndarray  # (N, 2) the data on the map
    shape: tuple[int, ...]  # one latent's shape, to reshape decoded points
    labels: list[str] = field(default_factory=list)

    def project(self, latents: np.ndarray) -> np.ndarray:
        flat = latents.reshape(len(latents), -1)
        return (flat - self.mean) @ self.components[:2].T

    def inverse_plain(self, point: np.ndarray) -> np.ndarray:
        """The plane's point with the data mean in every other direction (blurry: an average)."""
        return (self.mean + point @ self.components[:2]).reshape(self.shape)

    def inverse(self, point: np.ndarray, neighbours: int = 4) -> np.ndarray:
        """The plane's point completed by its nearest data points' other dimensions.

        Chosen over `inverse_plain` because the remaining ~1,000 dimensions carry the detail:
        averaging a few real neighbours keeps it, while the global mean decodes to a grey blur.
        On a data point it gives that point's latent back exactly.
        """
        point = np.asarray(point, dtype=np.float64)
        distances = np.linalg.norm(self.points - point, axis=1)
        nearest = np.argsort(distances)[:neighbours]
        if distances[nearest[0]] < 1e-9:
            residual = self._residual(self.latents[nearest[0]])
        else:
            weights = 1.0 / (distances[nearest] + 1e-9)
            weights /= weights.sum()
            residual = sum(w * self._residual(self.latents[i]) for w, i in zip(weights, nearest, strict=True))
        return (self.mean + point @ self.components[:2] + residual).reshape(self.shape).astype(np.float32)

    def _residual(self, flat: np.ndarray) -> np.ndarray:
        centred = flat - self.mean
        return centred - (centred @ self.components[:2].T) @ self.components[:2]

    def direction(self, index: int) -> np.ndarray:
        """Principal direction `index`, scaled to one standard deviation, in latent shape."""
        return (self.components[index] * np.sqrt(self.variance[index])).reshape(self.shape)


def fit_map(latents: np.ndarray, labels: Sequence[str] = (), components: int = 8) -> LatentMap:
    flat = latents.reshape(len(latents), -1).astype(np.float64)
    mean = flat.mean(axis=0)
    # SVD of the centred data: rows of vt are the principal directions, s**2/(n-1) the variances
    _u, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
    k = min(components, vt.shape[0])
    variance = (s[:k] ** 2) / max(1, len(flat) - 1)
    latent_map = LatentMap(flat, mean, vt[:k], variance, np.zeros((len(flat), 2)), tuple(latents.shape[1:]), list(labels))
    latent_map.points = latent_map.project(flat)
    return latent_map


# --- grids, attributes, breeding -------------------------------------------------------------


def neighbourhood_grid(centre: np.ndarray, direction_x: np.ndarray, direction_y: np.ndarray, size: int,
                       radius: float) -> list[list[np.ndarray]]:
    """size×size latents around `centre`, from -radius to +radius along the two directions."""
    offsets = np.linspace(-radius, radius, size) if size > 1 else np.zeros(1)
    return [[centre + dx * direction_x + dy * direction_y for dx in offsets] for dy in offsets[::-1]]


def attribute_direction(latents: np.ndarray, has_attribute: Sequence[bool]) -> np.ndarray:
    """Mean latent of the examples with the attribute minus the mean of those without."""
    mask = np.asarray(has_attribute, dtype=bool)
    if mask.all() or not mask.any():
        raise UserError("an attribute needs images with it and without it on the map: try another word")
    return latents[mask].mean(axis=0) - latents[~mask].mean(axis=0)


def breed(parent_a: np.ndarray, parent_b: np.ndarray, children: int, mutation: float, seed: int,
          scale: np.ndarray | float = 1.0) -> list[np.ndarray]:
    """Children on the great circle between the parents, each with a little seeded mutation."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(children):
        t = rng.uniform(0.25, 0.75)
        child = slerp(parent_a, parent_b, t) + mutation * scale * rng.standard_normal(parent_a.shape)
        out.append(child.astype(parent_a.dtype))
    return out


def perturbations(latent: np.ndarray, count: int, amount: float, seed: int, scale: np.ndarray | float = 1.0) -> list[np.ndarray]:
    """Small random nudges of one latent: data augmentation by the model's own notion of nearby."""
    rng = np.random.default_rng(seed)
    return [(latent + amount * scale * rng.standard_normal(latent.shape)).astype(latent.dtype) for _ in range(count)]


def rank_by_error(errors: Sequence[float]) -> list[int]:
    """Indices from the most unusual (largest reconstruction error) to the most typical."""
    return [int(i) for i in np.argsort(-np.asarray(errors, dtype=np.float64), kind="stable")]





