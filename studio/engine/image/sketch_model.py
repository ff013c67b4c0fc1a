"""Sketch -> picture translation (the built-in emoji-sketch): a pix2pix U-Net generator and its PatchGAN critic.

pix2pix (Isola et al. 2017), not CycleGAN: every emoji gives us an exact pair (its outline -> itself), and a paired,
L1-supervised generator learns from 3,300 pairs in an hour of CPU; CycleGAN's two generators and cycle loss are for
domains without pairs.

The generator reads a 64x64 RGB sketch (black or coloured lines on white; a coloured line asks for that colour)
and draws the picture in one pass: an encoder 64 -> 4 px, a decoder back with skip connections (the U), dropout in
the decoder's first layers as pix2pix's source of variety. torch is imported at module level: only engine code and
training import this module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

MODEL_TYPE = "studio-sketch"


@dataclass(frozen=True)
class SketchConfig:
    channels: tuple[int, ...] = (32, 64, 128, 256, 256)  # at 32, 16, 8, 4 and 2 px: five halvings of 64
    dropout: float = 0.5  # pix2pix's noise: kept at run time too, seeded, so seeds give variations
    image_size: int = 64
    model_type: str = MODEL_TYPE

    def to_dict(self) -> dict:
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, data: dict) -> SketchConfig:
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        values["channels"] = tuple(values.get("channels", cls.channels))
        return cls(**values)


def _down(c_in: int, c_out: int, norm: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.InstanceNorm2d(c_out, affine=True))
    layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


def _up(c_in: int, c_out: int, dropout: float) -> nn.Sequential:
    layers = [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False), nn.InstanceNorm2d(c_out, affine=True)]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class SketchGenerator(nn.Module):
    def __init__(self, config: SketchConfig) -> None:
        super().__init__()
        ch = config.channels
        self.downs = nn.ModuleList([_down(3, ch[0], norm=False)] + [_down(a, b) for a, b in zip(ch, ch[1:], strict=False)])
        ups = []
        for index in range(len(ch) - 1, 0, -1):  # from the bottleneck up; skips double the inputs after the first
            c_in = ch[index] if index == len(ch) - 1 else ch[index] * 2
            ups.append(_up(c_in, ch[index - 1], config.dropout if index >= len(ch) - 2 else 0.0))
        self.ups = nn.ModuleList(ups)
        self.out = nn.ConvTranspose2d(ch[0] * 2, 3, 4, stride=2, padding=1)

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        """sketch (N, 3, 64, 64) in [-1, 1] -> picture (N, 3, 64, 64) in [-1, 1]."""
        skips = []
        x = sketch
        for down in self.downs:
            x = down(x)
            skips.append(x)
        for up, skip in zip(self.ups, reversed(skips[:-1]), strict=True):
            x = torch.cat([up(x), skip], dim=1)
        return torch.tanh(self.out(x))


class PatchCritic(nn.Module):
    """pix2pix's PatchGAN: judges 8x8 overlapping patches of (sketch, picture) pairs as real or drawn."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _down(6, width, norm=False), _down(width, width * 2), _down(width * 2, width * 4),
            nn.Conv2d(width * 4, 1, 3, padding=1),
        )

    def forward(self, sketch: torch.Tensor, picture: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([sketch, picture], dim=1))


def keep_dropout_on(generator: SketchGenerator) -> None:
    """Eval mode for the norms, but dropout stays on (pix2pix's noise at test time)."""
    generator.eval()
    for module in generator.modules():
        if isinstance(module, nn.Dropout):
            module.train()
