"""A tiny emoji GAN folder for tests, made by the real trainer and exporter (one training step on six emoji), so it
loads through the same code path as the built-in models/emoji-gan."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TINY_CHANNELS = (32, 16, 8)


def tiny_gan_config():
    from studio.core.gan import GanConfig

    return GanConfig(channels=TINY_CHANNELS, w_dim=32, z_dim=16, mapping_layers=2)


def six_emoji():
    from studio.data import emoji as data_emoji

    names = {"red heart", "grinning face", "france", "dog face", "thumbs up", "pizza"}
    data = data_emoji.render_dataset([e for e in data_emoji.list_emoji() if e.name in names])
    data.held_out = np.zeros(len(data), dtype=bool)
    return data


def build_tiny_gan_folder(folder: Path, run_dir: Path) -> Path:
    import torch

    from studio.training import gan, gan_export

    torch.manual_seed(0)
    saved = gan.BATCH, gan_export.W_SAMPLES
    gan.BATCH, gan_export.W_SAMPLES = 4, 512
    try:
        run = gan.GanRun(run_dir, tiny_gan_config(), six_emoji(), log=lambda message: None)
        gan.train_step(run, np.random.default_rng(0), torch.Generator().manual_seed(0))
        return gan_export.export(run, folder, gan.save_samples(run))
    finally:
        gan.BATCH, gan_export.W_SAMPLES = saved
