"""Few-step distillation of the image model: the boundary conditions, a step that resumes exactly, and an exported
folder that samples with diffusers' stock LCMScheduler in two steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from studio.data import emoji as data_emoji
from tests.tiny_gan import six_emoji

needs_font = pytest.mark.skipif(not data_emoji.FONT_PATH.exists(), reason="needs fonts-noto-color-emoji")


def test_boundary_conditions_hand_back_the_input_at_zero_and_the_model_elsewhere():
    from studio.training.image_distill import boundary

    c_skip, c_out = boundary(torch.tensor([0, 19, 999]))
    assert c_skip[0].item() == 1.0 and c_out[0].item() == 0.0
    assert c_skip[2].item() < 1e-6 and c_out[2].item() > 0.999
    assert 0 < c_skip[1].item() < 0.01  # by the first DDIM timestep the model's x0 already dominates


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny emoji-ldm-shaped pipeline folder, made by the real image trainer's code."""
    from studio.training.image_model import Sizes
    from studio.training.image_run import Run

    torch.manual_seed(0)
    base = tmp_path_factory.mktemp("teacher")
    data = six_emoji()
    run = Run(base / "run", Sizes.tiny(), data, log=lambda message: None)
    run.build()
    run.state["scaling_factor"] = 1.0
    run.pipeline().save_pretrained(base / "emoji-ldm", safe_serialization=True)
    return base / "emoji-ldm", data


def _step(run, step: int) -> float:
    from studio.training.image_distill import distill_step

    loss = distill_step(run, np.random.default_rng(step), torch.Generator().manual_seed(step))
    run.state["step"] += 1
    return loss


@needs_font
def test_a_distillation_step_resumes_exactly_and_the_export_samples_in_two_steps(tmp_path, teacher, monkeypatch):
    from diffusers import LCMScheduler, StableDiffusionPipeline

    from studio.training import image_distill

    monkeypatch.setattr(image_distill, "BATCH", 4)
    torch.set_num_threads(1)
    teacher_dir, data = teacher
    run = image_distill.DistillRun(tmp_path / "run", teacher_dir, data, log=lambda message: None)
    first = _step(run, 0)
    assert np.isfinite(first) and first > 0
    run.save()
    resumed = image_distill.DistillRun(tmp_path / "run", teacher_dir, data, log=lambda message: None)
    assert resumed.load() and resumed.state["step"] == 1
    for step in (1, 2):  # the second step depends on the optimiser's moments and the target's EMA: both restored
        assert _step(run, step) == _step(resumed, step)

    folder = image_distill.export(run, tmp_path / "emoji-lcm")
    pipe = StableDiffusionPipeline.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
    assert isinstance(pipe.scheduler, LCMScheduler)
    pipe.set_progress_bar_config(disable=True)

    def draw(seed):
        return pipe("red heart", num_inference_steps=2, guidance_scale=1.0, output_type="np",
                    generator=torch.Generator().manual_seed(seed)).images[0]

    first_image = draw(1)
    assert first_image.shape == (64, 64, 3)
    assert np.array_equal(first_image, draw(1)) and not np.array_equal(first_image, draw(2))
