"""The emoji GAN: its architecture's maths, a training step that resumes exactly, and a model folder that loads
through the generic loader and draws the same picture for the same seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.core.gan import Generator, ModulatedConv, mix_styles, truncate
from studio.data import emoji as data_emoji
from tests.tiny_gan import build_tiny_gan_folder, six_emoji, tiny_gan_config

TINY = tiny_gan_config()
needs_font = pytest.mark.skipif(not data_emoji.FONT_PATH.exists(), reason="needs fonts-noto-color-emoji")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/engine/conftest.py


def test_the_generator_draws_latents_of_the_configured_size_from_noise_and_a_prompt_embedding():
    torch.manual_seed(0)
    generator = Generator(TINY)
    out = generator(torch.randn(3, TINY.z_dim), torch.randn(3, TINY.text_dim), generator.noises(3))
    assert out.shape == (3, TINY.out_channels, 16, 16)
    assert TINY.num_ws == 8 and TINY.size == 16
    assert torch.isfinite(out).all() and out.std() > 0


def test_demodulation_keeps_unit_variance_whatever_the_style():
    torch.manual_seed(0)
    conv = ModulatedConv(64, 64, w_dim=8)
    x = torch.randn(4, 64, 16, 16)
    for scale in (0.1, 10.0):  # styles ten times smaller or larger: the output's scale stays put
        with torch.no_grad():
            conv.affine.bias.fill_(scale)
            y = conv(x, torch.zeros(4, 8))
        assert 0.7 < float(y.std()) < 1.3


def test_truncation_and_style_mixing():
    w, centre = torch.tensor([[2.0, 4.0]]), torch.tensor([0.0, 2.0])
    assert torch.equal(truncate(w, centre, 1.0), w)
    assert torch.equal(truncate(w, centre, 0.0), centre.expand(1, 2))
    assert torch.allclose(truncate(w, centre, 0.5), torch.tensor([[1.0, 3.0]]))
    a, b = torch.zeros(1, 8, 4), torch.ones(1, 8, 4)
    mixed = mix_styles(a, b, 3)
    assert mixed[:, :3].sum() == 0 and (mixed[:, 3:] == 1).all()


@pytest.fixture(scope="module")
def handful():
    return six_emoji()


def _run(tmp_path, handful):
    from studio.training.gan import GanRun

    torch.manual_seed(0)
    return GanRun(tmp_path / "run", TINY, handful, log=lambda message: None)


def _step(run, step: int) -> dict:
    from studio.training import gan

    losses = gan.train_step(run, np.random.default_rng(step), torch.Generator().manual_seed(step))
    run.state["step"] += 1
    return losses


@needs_font
def test_a_training_step_is_finite_and_a_resumed_run_continues_exactly(tmp_path, handful, monkeypatch):
    from studio.training import gan

    monkeypatch.setattr(gan, "BATCH", 4)
    run = _run(tmp_path, handful)
    before = [p.clone() for p in run.G.parameters()]
    first = _step(run, 0)
    assert all(np.isfinite(v) for v in first.values()) and first["r1"] > 0  # step 0 applies R1
    assert any(not torch.equal(a, b) for a, b in zip(before, run.G.parameters(), strict=True))
    run.save()
    resumed = _run(tmp_path, handful)
    assert resumed.load() and resumed.state["step"] == 1
    for step in (1, 2):  # the second step depends on Adam's moments: they were restored too
        assert _step(run, step) == _step(resumed, step)


@needs_font
def test_an_exported_gan_loads_through_the_generic_loader_and_same_seed_gives_same_picture(tmp_path):
    from studio.core import catalog
    from studio.core.gan_model import load_gan
    from studio.core.recipe import Recipe
    from studio.engine.image.gan import generate_gan_artifacts
    from studio.training import gan_export

    folder = build_tiny_gan_folder(tmp_path / "emoji-gan", tmp_path / "run")
    source = catalog.resolve(str(folder))
    assert source.kind == "gan"
    bundle = load_gan(source, "cpu")

    def draw(seed: int, truncation: float = 1.0) -> np.ndarray:
        recipe = Recipe("image", prompt="red heart", model=str(folder), seed=seed, params={"truncation": truncation})
        (artifact,) = generate_gan_artifacts(bundle, recipe)
        assert artifact.recipe.params["truncation"] == truncation and "steps" not in artifact.recipe.params
        return np.asarray(artifact.payload)

    first, again, other = draw(1), draw(1), draw(2)
    assert first.shape == (64, 64, 3)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert not np.array_equal(draw(1, truncation=0.0), first)
    stats = bundle.w_stats
    assert stats["directions"].shape == (gan_export.PRINCIPAL_DIRECTIONS, TINY.w_dim)
    assert torch.allclose(stats["directions"].norm(dim=1), torch.ones(gan_export.PRINCIPAL_DIRECTIONS), atol=1e-3)


@needs_font
def test_the_gan_map_is_its_own_drawing_of_each_name(tmp_path):
    from studio.core import catalog
    from studio.engine.latent import gan_space

    bundle = gan_space.load(catalog.resolve(str(build_tiny_gan_folder(tmp_path / "g", tmp_path / "run"))), "cpu")
    names = ["red heart", "pizza", "dog face"]
    points = gan_space.map_points(bundle, names, names, truncation=1.0)
    assert points.shape == (3, TINY.w_dim)
    pictures = gan_space.decode_points(bundle, list(points))
    assert len(pictures) == 3 and pictures[0].size == (64, 64)
    again = gan_space.map_points(bundle, names, names, truncation=1.0)
    assert np.array_equal(points, again)  # one fixed z: a map is the same every time
    pulled = gan_space.map_points(bundle, names, names, truncation=0.0)
    assert np.allclose(pulled, pulled.mean(axis=0), atol=1e-5)  # ψ 0: every name at the centre
