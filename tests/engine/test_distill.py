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


@needs_font
def test_a_round_seven_teacher_puts_a_share_of_every_batch_on_its_everyday_words(tmp_path, teacher, monkeypatch):
    import json
    import shutil

    from studio.training import image_distill
    from studio.training.image_new_words import NEW_WORDS_SHARE

    monkeypatch.setattr(image_distill, "BATCH", 4)
    torch.set_num_threads(1)
    teacher_dir, data = teacher
    shutil.copytree(teacher_dir, tmp_path / "teacher")
    state = {"everyday_words_from": 0, "synonyms_from": 0, "new_words_from": 0}
    (tmp_path / "teacher" / "training_state.json").write_text(json.dumps(state), encoding="utf-8")
    run = image_distill.DistillRun(tmp_path / "run", tmp_path / "teacher", data, log=lambda message: None)
    assert run.new_words is not None and len(run.new_words.indices) > 0
    said = {s for i in run.new_words.indices for s in (*run.words[i].synonyms, *run.words[i].demonyms)}
    idx, texts = run.new_words.swap_in(np.random.default_rng(0), np.zeros(200, dtype=int), [""] * 200, drop=0.0)
    swapped = [t for t in texts if t]
    assert abs(len(swapped) / 200 - NEW_WORDS_SHARE) < 0.1 and all(any(s in t for s in said) for t in swapped)
    assert np.isfinite(_step(run, 0))
    plain = image_distill.DistillRun(tmp_path / "plain", teacher_dir, data, log=lambda message: None)
    assert plain.new_words is None  # a teacher of an earlier round: batches as before


@needs_font
def test_a_round_nine_or_ten_teacher_puts_held_out_emojis_words_on_their_kind(tmp_path, teacher, monkeypatch):
    import json
    import shutil

    from studio.training import image_distill
    from studio.training.image_kin import KIN_SHARE, WIDE_KIN_SHARE

    monkeypatch.setattr(image_distill, "BATCH", 4)
    torch.set_num_threads(1)
    teacher_dir, _ = teacher
    names = {"red heart", "sparkling heart", "grinning face", "pizza"}
    data = data_emoji.render_dataset([e for e in data_emoji.list_emoji() if e.name in names])
    data.held_out = np.array([name == "sparkling heart" for name in data.names])
    shutil.copytree(teacher_dir, tmp_path / "teacher")
    (tmp_path / "teacher" / "training_state.json").write_text(json.dumps({"kin_from": 0}), encoding="utf-8")
    run = image_distill.DistillRun(tmp_path / "run", tmp_path / "teacher", data, log=lambda message: None)
    assert [w.name for w in run.kin.words] == ["sparkling heart"]
    idx, texts = run.kin.swap_in(np.random.default_rng(0), np.full(400, -1), [""] * 400, drop=0.0)
    train = data.split(held_out=False)
    assert {train.names[i] for i in idx[idx >= 0]} == {"red heart"}
    said = {"sparkling", "heart", *run.kin.words[0].keywords}
    assert all(any(word in t for word in said) for t in np.array(texts)[idx >= 0])
    assert np.isfinite(_step(run, 0))
    assert run.kin.share == KIN_SHARE
    plain = image_distill.DistillRun(tmp_path / "plain", teacher_dir, data, log=lambda message: None)
    assert plain.kin is None  # a teacher of an earlier round: batches as before
    (tmp_path / "teacher" / "training_state.json").write_text(json.dumps({"kin_from": 0, "wide_kin_from": 9}),
                                                              encoding="utf-8")
    wide = image_distill.DistillRun(tmp_path / "wide", tmp_path / "teacher", data, log=lambda message: None)
    assert wide.kin.share == WIDE_KIN_SHARE  # a round-10 teacher's wider share
