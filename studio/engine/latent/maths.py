"""Latent-space maths and the explorer's tasks: encode/decode, slerp, maps, walks, grids, breeding.

The maths work on numpy arrays of any shape (a VAE latent is C×h×w); they are flattened where a
vector is needed and reshaped back. torch and diffusers are imported inside the functions that
touch a model.

Why slerp: in high dimensions Gaussian samples sit on a thin shell of radius ~sqrt(D). A straight
line between two of them cuts through the inside of the shell, where the decoder has seen nothing
(Tom White, "Sampling Generative Networks", 2016); the great-circle path stays on the shell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from studio.core.jobs import UserError

# --- interpolation ---------------------------------------------------------------------------


def lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return (1.0 - t) * a + t * b


def slerp(a: np.ndarray, b: np.ndarray, t: float, parallel_threshold: float = 0.9995) -> np.ndarray:
    """Spherical interpolation; lengths are interpolated linearly so non-unit vectors work too."""
    a_flat, b_flat = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    norm_a, norm_b = np.linalg.norm(a_flat), np.linalg.norm(b_flat)
    if norm_a == 0 or norm_b == 0:
        return lerp(a, b, t)
    cos_omega = float(np.clip(np.dot(a_flat / norm_a, b_flat / norm_b), -1.0, 1.0))
    if abs(cos_omega) > parallel_threshold:  # nearly the same direction: slerp -> lerp, avoids 0/0
        return lerp(a, b, t)
    omega = np.arccos(cos_omega)
    sin_omega = np.sin(omega)
    direction = (np.sin((1 - t) * omega) / sin_omega) * (a_flat / norm_a) + (np.sin(t * omega) / sin_omega) * (b_flat / norm_b)
    length = (1 - t) * norm_a + t * norm_b
    return (direction * length).reshape(a.shape).astype(a.dtype)


def interpolate(a: np.ndarray, b: np.ndarray, frames: int, mode: str = "slerp") -> list[np.ndarray]:
    """`frames` points from a to b inclusive."""
    step = slerp if mode == "slerp" else lerp
    return [step(a, b, i / (frames - 1)) if frames > 1 else a for i in range(frames)]


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


# --- the VAE: images <-> latents -------------------------------------------------------------


@dataclass
class VaeBundle:
    vae: object  # diffusers AutoencoderKL
    device: str
    dtype: object  # torch dtype
    image_size: int  # the size the VAE was trained at (its config's sample_size)
    source: str


def load_vae(source, device) -> VaeBundle:
    """The VAE of a diffusers pipeline folder (its vae/ subfolder) or a bare AutoencoderKL folder."""
    from diffusers import AutoencoderKL

    from studio.core.catalog import check_weights_folder
    from studio.core.jobs import UserError

    if source.path is None:
        raise UserError(f"{source.ref}: the latent explorer needs a local model folder")
    folder = source.path / "vae" if (source.path / "vae").is_dir() else source.path
    if not (folder / "config.json").exists():
        raise UserError(f"{source.ref} has no VAE (no vae/config.json)")
    check_weights_folder(folder)
    # fp32 everywhere: a 64×64 VAE is tiny, and fp16 decodes can overflow (the black-image bug)
    vae = AutoencoderKL.from_pretrained(folder, use_safetensors=True).to(device.device).eval()
    import torch

    return VaeBundle(vae, device.device, torch.float32, int(vae.config.sample_size or 64), source.ref)


def _to_tensor(images: Sequence, size: int, device: str):
    import torch

    arrays = [np.asarray(image.convert("RGB").resize((size, size)), dtype=np.float32) / 127.5 - 1.0 for image in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(device)


def encode_images(bundle: VaeBundle, images: Sequence, batch_size: int = 64, cancelled=None) -> np.ndarray:
    """Posterior means (N, C, h, w): deterministic, so the same image always lands on the same point."""
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            if cancelled and cancelled():
                from studio.core.jobs import Cancelled

                raise Cancelled()
            pixels = _to_tensor(images[start : start + batch_size], bundle.image_size, bundle.device)
            out.append(bundle.vae.encode(pixels).latent_dist.mean.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,))


def decode_latents(bundle: VaeBundle, latents: np.ndarray | Sequence[np.ndarray]) -> list:
    import torch
    from PIL import Image

    batch = torch.from_numpy(np.stack([np.asarray(z, dtype=np.float32) for z in latents])).to(bundle.device)
    with torch.inference_mode():
        pixels = bundle.vae.decode(batch).sample
    pixels = ((pixels.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(p, "RGB") for p in pixels]


def reconstruction_errors(bundle: VaeBundle, images: Sequence) -> list[float]:
    """Mean squared pixel error of encode→decode per image: high means the VAE finds it unusual."""
    latents = encode_images(bundle, images)
    rebuilt = decode_latents(bundle, latents)
    errors = []
    for original, copy in zip(images, rebuilt, strict=True):
        a = np.asarray(original.convert("RGB").resize(copy.size), dtype=np.float32) / 255
        b = np.asarray(copy, dtype=np.float32) / 255
        errors.append(float(((a - b) ** 2).mean()))
    return errors
