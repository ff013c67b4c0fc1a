"""A small conditional StyleGAN-style generator and its discriminator (the built-in emoji-gan).

Shared by the image engine (one forward pass per picture) and the Latent Explorer (interpolation in Z and W, style
mixing, truncation, principal directions of W), hence in core. Reads top to bottom:

  mapping     z (noise) + the prompt's text embedding -> w, through a small MLP (StyleGAN's mapping network)
  synthesis   a learnt 4x4 constant, grown by blocks of two style-modulated 3x3 convolutions with per-layer noise;
              each block adds its output to the upsampled output of the one before (StyleGAN2's skip outputs)
  discriminator  a residual CNN down to 4x4, minibatch standard deviation, and a projection term
              <embed(text), features> that makes it judge "real *for this prompt*"

The built-in draws in the emoji VAE's latent space (16x16x4, scaled to unit variance), which a frozen VAE decoder
turns into 64x64 pixels: on two CPU cores a pixel-space GAN cost ~5 s a training step, this one a fraction of it,
and one picture is a 16x16 synthesis plus the 8 ms decode.

Modulation scales the input activations by the style and the output by the demodulation coefficient: the same maths
as StyleGAN2's modulated weights, as plain convolutions (grouped convolutions are slow on CPU).
torch is imported at module level: only engine code and training import this module.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

MODEL_TYPE = "studio-gan"


@dataclass(frozen=True)
class GanConfig:
    z_dim: int = 128  # the noise a seed draws
    w_dim: int = 256  # the style space the Latent Explorer walks in
    text_dim: int = 128  # the text encoder's pooled output (the emoji CLIP's hidden size)
    mapping_layers: int = 4  # StyleGAN uses 8 for 512-d; 4 is enough for 3,300 pictures and twice as fast
    # Channels at 4, 8 and 16 px (one entry per doubling): the output is 4 * 2 ** (len - 1) pixels square.
    # 256/128/64 costs 2.6x less per step than 256/256/128 on a CPU; 64 at 16x16 matches the diffusion UNet's top.
    channels: tuple[int, ...] = (256, 128, 64)
    out_channels: int = 4  # the VAE latent's channels (3 for a pixel-space GAN)
    latent_scaling: float = 1.0  # outputs are VAE latents times this (the diffusion model's scaling factor)
    mapping_lr: float = 0.01  # StyleGAN's learning-rate multiplier for the mapping network (keeps w stable)
    model_type: str = field(default=MODEL_TYPE)

    @property
    def size(self) -> int:
        return 4 * 2 ** (len(self.channels) - 1)

    @property
    def num_ws(self) -> int:
        """Style inputs: the 4x4 conv and its RGB, then two convs and one RGB per doubling."""
        return 2 + 3 * (len(self.channels) - 1)

    def to_dict(self) -> dict:
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, data: dict) -> GanConfig:
        known = {name for name in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["channels"] = tuple(values.get("channels", cls.channels))
        return cls(**values)


class EqualLinear(nn.Module):
    """A linear layer with StyleGAN's equalised learning rate: weights stored at N(0, 1/lr_mul), scaled at run time."""

    def __init__(self, d_in: int, d_out: int, lr_mul: float = 1.0, bias_init: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((d_out,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(d_in)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    """A conv with the equalised learning rate (the discriminator's layers, as in StyleGAN2)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.scale = 1 / math.sqrt(c_in * kernel * kernel)
        self.stride, self.padding = stride, kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class Mapping(nn.Module):
    def __init__(self, config: GanConfig) -> None:
        super().__init__()
        self.embed = EqualLinear(config.text_dim, config.z_dim)
        dims = [2 * config.z_dim] + [config.w_dim] * config.mapping_layers
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul=config.mapping_lr) for a, b in zip(dims, dims[1:], strict=False))

    def forward(self, z: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        # Both halves normalised, so neither the noise nor the prompt drowns the other.
        x = torch.cat([_normalise(z), _normalise(self.embed(text))], dim=1)
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2) * math.sqrt(2)
        return x


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class ModulatedConv(nn.Module):
    """A conv whose input channels are scaled by a style from w, then demodulated to unit output variance."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, kernel: int = 3, demodulate: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)  # styles start at 1: the plain conv
        self.scale = 1 / math.sqrt(c_in * kernel * kernel)
        self.padding = kernel // 2
        self.demodulate = demodulate

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        style = self.affine(w)  # (N, c_in)
        weight = self.weight * self.scale
        x = x * style[:, :, None, None]
        x = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            # sum over (in, k, k) of (weight * style)^2, per sample and output channel
            d = torch.rsqrt(style.pow(2) @ weight.pow(2).sum(dim=(2, 3)).t() + 1e-8)  # (N, c_out)
            x = x * d[:, :, None, None]
        return x


class StyleLayer(nn.Module):
    """Modulated conv, per-pixel noise (its strength learnt), bias and leaky ReLU."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, size: int) -> None:
        super().__init__()
        self.conv = ModulatedConv(c_in, c_out, w_dim)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.size = size

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        x = self.conv(x, w)
        if noise is not None:
            x = x + noise * self.noise_strength
        return F.leaky_relu(x + self.bias[None, :, None, None], 0.2) * math.sqrt(2)


class ToRGB(nn.Module):
    """The block's output image (RGB, or the latent's channels): a 1x1 modulated conv, not demodulated."""

    def __init__(self, c_in: int, c_out: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv(c_in, c_out, w_dim, kernel=1, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


class Synthesis(nn.Module):
    def __init__(self, config: GanConfig) -> None:
        super().__init__()
        ch = config.channels
        self.const = nn.Parameter(torch.randn(ch[0], 4, 4))
        self.layers = nn.ModuleList([StyleLayer(ch[0], ch[0], config.w_dim, 4)])
        self.rgbs = nn.ModuleList([ToRGB(ch[0], config.out_channels, config.w_dim)])
        for index in range(1, len(ch)):
            size = 4 * 2**index
            self.layers.append(StyleLayer(ch[index - 1], ch[index], config.w_dim, size))
            self.layers.append(StyleLayer(ch[index], ch[index], config.w_dim, size))
            self.rgbs.append(ToRGB(ch[index], config.out_channels, config.w_dim))

    def noise_shapes(self) -> list[tuple[int, int]]:
        return [(layer.size, layer.size) for layer in self.layers]

    def forward(self, ws: torch.Tensor, noises: list[torch.Tensor | None]) -> torch.Tensor:
        """ws (N, num_ws, w_dim) -> outputs (N, out_channels, size, size)."""
        x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        x = self.layers[0](x, ws[:, 0], noises[0])
        rgb = self.rgbs[0](x, ws[:, 1])
        w_index = 2
        for block in range(1, len(self.rgbs)):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = self.layers[2 * block - 1](x, ws[:, w_index], noises[2 * block - 1])
            x = self.layers[2 * block](x, ws[:, w_index + 1], noises[2 * block])
            rgb = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False)
            rgb = rgb + self.rgbs[block](x, ws[:, w_index + 2])
            w_index += 3
        return rgb


class Generator(nn.Module):
    def __init__(self, config: GanConfig) -> None:
        super().__init__()
        self.config = config
        self.mapping = Mapping(config)
        self.synthesis = Synthesis(config)

    def noises(self, batch: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Per-layer noise; drawn from `generator` so one seed always gives one picture."""
        return [torch.randn(batch, 1, h, w, generator=generator) for h, w in self.synthesis.noise_shapes()]

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        """One w for every style input: (N, w_dim) -> (N, num_ws, w_dim)."""
        return w.unsqueeze(1).expand(-1, self.config.num_ws, -1)

    def forward(self, z: torch.Tensor, text: torch.Tensor, noises: list | None = None) -> torch.Tensor:
        ws = self.broadcast(self.mapping(z, text))
        return self.synthesis(ws, noises if noises is not None else [None] * len(self.synthesis.layers))


def truncate(w: torch.Tensor, w_centre: torch.Tensor, psi: float) -> torch.Tensor:
    """StyleGAN's truncation trick: pull w towards the centre; psi 1 = as sampled, 0 = the average picture."""
    return w_centre + psi * (w - w_centre)


def mix_styles(ws_a: torch.Tensor, ws_b: torch.Tensor, crossover: int) -> torch.Tensor:
    """Style mixing: the first `crossover` style inputs (coarse: pose, shape) from A, the rest (fine: colour,
    texture) from B."""
    return torch.cat([ws_a[:, :crossover], ws_b[:, crossover:]], dim=1)


# --- the discriminator ------------------------------------------------------------------------


class DiscriminatorBlock(nn.Module):
    """A 3x3 conv, a strided 3x3 conv to half the size, and a pooled 1x1 skip: residual, as StyleGAN2's D."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = EqualConv2d(c_in, c_in, 3)
        self.conv2 = EqualConv2d(c_in, c_out, 3, stride=2)
        self.skip = EqualConv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.conv1(x), 0.2)
        y = F.leaky_relu(self.conv2(y), 0.2)
        return (y + self.skip(F.avg_pool2d(x, 2))) / math.sqrt(2)


class Discriminator(nn.Module):
    def __init__(self, config: GanConfig) -> None:
        super().__init__()
        ch = list(reversed(config.channels))  # the largest size first
        self.from_rgb = EqualConv2d(config.out_channels, ch[0], 1)
        self.blocks = nn.ModuleList(DiscriminatorBlock(a, b) for a, b in zip(ch, ch[1:], strict=False))
        self.final_conv = EqualConv2d(ch[-1] + 1, ch[-1], 3)
        self.final_fc = EqualLinear(ch[-1] * 16, ch[-1])
        self.out = EqualLinear(ch[-1], 1)
        self.embed = EqualLinear(config.text_dim, ch[-1])  # the projection discriminator's prompt embedding

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.from_rgb(images), 0.2)
        for block in self.blocks:
            x = block(x)
        x = torch.cat([x, _minibatch_std(x)], dim=1)  # lets D see a batch without variety: mode collapse
        x = F.leaky_relu(self.final_conv(x), 0.2)
        return F.leaky_relu(self.final_fc(x.flatten(1)), 0.2)

    def score(self, features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Realness for this prompt: the unconditional logit plus the projection <embed(text), features>."""
        return self.out(features).squeeze(1) + (self.embed(text) * features).sum(dim=1) / math.sqrt(features.shape[1])

    def forward(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(images), text)


def _minibatch_std(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    n = x.shape[0]
    g = math.gcd(group, n)
    y = x.reshape(g, n // g, *x.shape[1:])
    std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (n // g,)
    return std.repeat(g)[:, None, None, None].expand(n, 1, *x.shape[2:])
