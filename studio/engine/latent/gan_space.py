"""A GAN's W space in the Latent Explorer: what GANs are loved for.

With a GAN model (the built-in emoji-gan) the Explorer's points are w vectors instead of VAE latents, so the map,
walks, strips and breeding work in W unchanged (maths.py doesn't care what a point is). What only a GAN has:
  truncation ψ     pull a picture towards its prompt's typical one (core/gan.py `truncate`)
  Z and W          the same two pictures interpolated in the noise space Z and in the style space W, side by side
  style mixing     coarse styles (shape, layout) from one picture, fine ones (colour, texture) from another
  directions       GANSpace: the principal directions of W (fitted at export) as sliders

A GAN can't encode a picture, so its map is made of its own drawings: one per dataset name ("the GAN's idea of a
red heart"), at a fixed z, so neighbours on the map differ by prompt, not by noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from studio.core.gan_model import GanBundle, embed, load_gan, prompt_centre, render, seed_inputs
from studio.core.jobs import UserError

MAP_SEED = 0  # the z every map point is drawn with
NO_ENCODER = ("A GAN has no encoder: it can't place your pictures on its map. Map the built-in emoji (its own "
              "drawings of each name), or pick the diffusion model to map a folder or the gallery.")


def load(source, device) -> GanBundle:
    return load_gan(source, device)


def _torch(points) -> object:
    import torch

    return torch.from_numpy(np.stack([np.asarray(p, dtype=np.float32).reshape(-1) for p in points]))


def decode_points(bundle: GanBundle, points: Sequence[np.ndarray], seed: int = MAP_SEED) -> list:
    """w vectors -> pictures, all with the per-layer noise of one seed (so only w changes between frames)."""
    ws = _torch(points).to(bundle.device)
    _, noises = seed_inputs(bundle, seed)
    noises = [n.expand(len(ws), -1, -1, -1) for n in noises]
    return render(bundle, bundle.generator.broadcast(ws), noises)


def w_of(bundle: GanBundle, prompt: str, seed: int, truncation: float = 1.0) -> np.ndarray:
    from studio.core.gan_model import w_for

    return w_for(bundle, prompt, seed, truncation)[0].cpu().numpy()


def map_points(bundle: GanBundle, labels: Sequence[str], names: Sequence[str], truncation: float,
               batch: int = 256) -> np.ndarray:
    """The w of each name at the map's fixed z, truncated: (N, w_dim)."""
    import torch

    z, _ = seed_inputs(bundle, MAP_SEED)
    out = []
    with torch.inference_mode():
        for start in range(0, len(names), batch):
            chunk = list(names[start : start + batch])
            w = bundle.generator.mapping(z.expand(len(chunk), -1), embed(bundle, chunk))
            centre = w.mean(dim=0, keepdim=True) if truncation != 1.0 else w
            out.append((centre + truncation * (w - centre)).cpu().numpy())
    return np.concatenate(out)


def push_along_directions(bundle: GanBundle, w: np.ndarray, amounts: Sequence[float]) -> np.ndarray:
    """w moved along the principal directions of W, `amounts` in standard deviations of each."""
    stats = bundle.w_stats
    if "directions" not in stats:
        raise UserError("this GAN has no principal directions (w_stats.safetensors): export it again")
    directions, spread = stats["directions"].numpy(), stats["spread"].numpy()
    moved = np.asarray(w, dtype=np.float32).copy()
    for index, amount in enumerate(amounts[: len(directions)]):
        moved = moved + float(amount) * spread[index] * directions[index]
    return moved


def z_and_w_strips(bundle: GanBundle, a: tuple[str, int], b: tuple[str, int], frames: int, truncation: float):
    """Two strips between the same two pictures: interpolated in Z (noise and prompt, then mapped) and in W.

    Z is a Gaussian ball the mapping network bends; W is where the styles live, so its strip changes steadily while
    Z's can rush through unrelated pictures in the middle. Returns (z frames, w frames, step sizes of each)."""
    import torch

    from studio.core.interpolate import slerp

    (za, _), (zb, _) = seed_inputs(bundle, a[1]), seed_inputs(bundle, b[1])
    ta, tb = embed(bundle, [a[0]]), embed(bundle, [b[0]])
    centre_a, centre_b = prompt_centre(bundle, a[0]), prompt_centre(bundle, b[0])
    ts = np.linspace(0.0, 1.0, frames)
    with torch.inference_mode():
        wa = centre_a + truncation * (bundle.generator.mapping(za, ta)[0] - centre_a)
        wb = centre_b + truncation * (bundle.generator.mapping(zb, tb)[0] - centre_b)
        w_path = [wa + float(t) * (wb - wa) for t in ts]
        z_path = []
        for t in ts:
            z = torch.from_numpy(slerp(za[0].numpy(), zb[0].numpy(), float(t))).unsqueeze(0)
            text = ta + float(t) * (tb - ta)
            w = bundle.generator.mapping(z, text)[0]
            centre = centre_a + float(t) * (centre_b - centre_a)
            z_path.append(centre + truncation * (w - centre))
    z_frames = decode_points(bundle, [w.cpu().numpy() for w in z_path], a[1])
    w_frames = decode_points(bundle, [w.cpu().numpy() for w in w_path], a[1])
    return z_frames, w_frames, _step_sizes(z_frames), _step_sizes(w_frames)


def _step_sizes(frames: list) -> list[float]:
    """Mean absolute pixel change between consecutive frames (0-255): an even strip has even steps."""
    arrays = [np.asarray(f, dtype=np.float32) for f in frames]
    return [round(float(np.abs(b - a).mean()), 2) for a, b in zip(arrays, arrays[1:], strict=False)]


def style_mix_grid(bundle: GanBundle, prompt_a: str, prompt_b: str, seeds_a: Sequence[int], seeds_b: Sequence[int],
                   crossover: int, truncation: float) -> list:
    """A (k+1) x (k+1) grid: the top row B's pictures, the left column A's, each cell A's coarse styles (the first
    `crossover` style inputs) with B's fine ones. The corner is blank."""
    from PIL import Image

    from studio.core.gan import mix_styles

    ws_a = [_broadcast(bundle, w_of(bundle, prompt_a, s, truncation)) for s in seeds_a]
    ws_b = [_broadcast(bundle, w_of(bundle, prompt_b, s, truncation)) for s in seeds_b]
    size = bundle.config.size * 4
    cells = [Image.new("RGB", (size, size), (255, 255, 255))]
    cells += [_render_ws(bundle, w, s) for w, s in zip(ws_b, seeds_b, strict=True)]
    for w_a, seed_a in zip(ws_a, seeds_a, strict=True):
        cells.append(_render_ws(bundle, w_a, seed_a))
        cells += [_render_ws(bundle, mix_styles(w_a, w_b, crossover), seed_a) for w_b in ws_b]
    return cells


def _broadcast(bundle: GanBundle, w: np.ndarray):
    import torch

    return bundle.generator.broadcast(torch.from_numpy(w).unsqueeze(0).to(bundle.device))


def _render_ws(bundle: GanBundle, ws, seed: int):
    _, noises = seed_inputs(bundle, seed)
    return render(bundle, ws, noises)[0]
