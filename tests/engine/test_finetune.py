"""The Train tab's engine side: each medium trains a few steps on a tiny folder, resumes with the very same next
step, survives a cancel or a crash mid-run, saves an adapter with its card, and the adapter loads through the normal
generation task (its hash recorded in the output's recipe). Tiny random models; the real runs are in benchmarks/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.core.devices import DeviceChoice
from studio.core.jobs import Cancelled, Job, TaskContext, UserError
from studio.core.model_cache import ModelCache
from studio.core.recipe import Recipe
from studio.training import finetune, finetune_card, finetune_image
from studio.training.finetune_data import scan_folder
from tests.engine.finetune_fixtures import (
    abc_folder,
    picture_folder,
    text_folder,
    tiny_music_model,
    tiny_text_model,
)

STEPS = 6


@pytest.fixture(scope="module")
def bases(tmp_path_factory, tiny_sd_folder):
    root = tmp_path_factory.mktemp("bases")
    return {"text": tiny_text_model(root / "text"), "music": tiny_music_model(root / "music"), "image": tiny_sd_folder}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("folders")
    return {"text": text_folder(root / "text"), "music": abc_folder(root / "music"),
            "image": picture_folder(root / "image")}


@pytest.fixture(autouse=True)
def small_grids(monkeypatch):
    """Sample grids of two prompts at two denoising steps: the same code, a tenth of the time."""
    monkeypatch.setattr(finetune_image, "SAMPLE_STEPS", 2)
    monkeypatch.setattr(finetune_image, "SAMPLE_PROMPTS", 2)


class Stop:
    """cancelled() that turns true once `after` steps have been reported."""

    def __init__(self, after: int | None = None) -> None:
        self.after, self.reports = after, []

    def report(self, progress) -> None:
        self.reports.append(progress)

    def __call__(self) -> bool:
        steps = [p.step for p in self.reports if p.message.startswith("step ") and p.step > 0]
        return self.after is not None and bool(steps) and steps[-1] >= self.after


def context(stop: Stop | None = None) -> TaskContext:
    stop = stop or Stop()
    return TaskContext(report=stop.report, cancelled=stop, models=ModelCache(), device=DeviceChoice("cpu", "float32", "CPU"))


def train_args(medium: str, bases, folders, run_dir: Path) -> dict:
    size = 32 if medium == "image" else 64
    report = scan_folder(folders[medium], medium, size)
    assert report["items"] and not [p for p in report["problems"] if p["level"] == "error"], report["problems"]
    settings = {"medium": medium, "folder": str(folders[medium]), "model": str(bases[medium]), "steps": STEPS,
                "sample_every": 3, "batch": 2, "rank": 2, "seed": 5, "trigger": "blox" if medium == "image" else ""}
    return {"settings": settings, "items": report["items"], "run_dir": str(run_dir)}


def lora_at(run_dir: Path, step: int) -> dict:
    from safetensors.torch import load_file

    return load_file(str(finetune.RunFolder(run_dir).checkpoint_dir(step) / "lora.safetensors"))


@pytest.mark.parametrize("medium", ["text", "music", "image"])
def test_a_run_resumed_after_a_cancel_takes_the_same_next_step_and_ends_with_the_same_adapter(
        medium, bases, folders, tmp_path, one_torch_thread):
    whole = finetune.train_task(Job("train.run", args=train_args(medium, bases, folders, tmp_path / "whole")),
                                context()).value["state"]
    assert [step for step, _loss in whole["history"]] == list(range(1, STEPS + 1))
    assert [c["step"] for c in whole["checkpoints"]] == [0, 3, 6] and all("score" in c for c in whole["checkpoints"])

    stop = Stop(after=4)  # cancelled after step 4, between two grids: the step reached is saved on the way out
    args = train_args(medium, bases, folders, tmp_path / "cancelled")
    with pytest.raises(Cancelled):
        finetune.train_task(Job("train.run", args=args), context(stop))
    assert finetune.RunFolder(tmp_path / "cancelled").latest().name == "step-000004"
    resumed = finetune.train_task(Job("train.run", args={"run_dir": args["run_dir"]}), context()).value["state"]
    assert resumed["history"][4] == whole["history"][4]  # step 5: the first after the resume, to the last bit
    assert resumed["history"] == whole["history"]
    a, b = lora_at(tmp_path / "whole", STEPS), lora_at(tmp_path / "cancelled", STEPS)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_a_crash_in_the_middle_of_a_step_leaves_the_last_checkpoint_usable(bases, folders, tmp_path, monkeypatch,
                                                                           one_torch_thread):
    from studio.training.finetune_text import TextTrainer

    args = train_args("text", bases, folders, tmp_path / "run")
    real_loss = TextTrainer.loss

    def dies_at_step_five(self, step, seed):
        if step == 4:  # computing step 5: the engine process is killed, or the machine loses power
            raise KeyboardInterrupt
        return real_loss(self, step, seed)

    monkeypatch.setattr(TextTrainer, "loss", dies_at_step_five)
    with pytest.raises(KeyboardInterrupt):
        finetune.train_task(Job("train.run", args=args), context())
    latest = finetune.RunFolder(tmp_path / "run").latest()
    assert latest.name == "step-000003" and not list((tmp_path / "run" / "checkpoints").glob("*.tmp"))
    monkeypatch.setattr(TextTrainer, "loss", real_loss)
    resumed = finetune.train_task(Job("train.run", args={"run_dir": args["run_dir"]}), context()).value["state"]
    assert resumed["step"] == STEPS and resumed["finished"]
    assert [step for step, _ in resumed["history"]] == list(range(1, STEPS + 1))


@pytest.mark.parametrize("medium", ["text", "music", "image"])
def test_the_saved_adapter_has_its_card_and_loads_through_the_generation_task(medium, bases, folders, tmp_path,
                                                                              one_torch_thread):
    from studio.core import adapters

    run = finetune.train_task(Job("train.run", args=train_args(medium, bases, folders, tmp_path / "run")), context())
    saved = finetune_card.save_task(Job("train.save", args={"run_dir": run.value["run_dir"], "step": 3,
                                                       "name": f"My {medium} style"}), context()).value
    folder = Path(saved["adapter"])
    assert folder.parent == adapters.adapters_dir() and folder.name == f"my-{medium}-style"
    info = adapters.read_adapter(folder)
    assert (info["medium"], info["step"], info["base_model"]) == (medium, 3, str(bases[medium]))
    card = (folder / "MODEL_CARD.md").read_text()
    assert info["base_hash"] in card and "Steps: 3 of 6" in card and (folder / "loss_curve.png").stat().st_size > 0
    assert [a["path"] for a in adapters.list_adapters(medium)] == [str(folder)]

    entry = {"path": str(folder), "weight": 1.0}
    recipe = {"text": Recipe("text", prompt="Verily", model=str(bases["text"]), seed=1,
                             params={"max_new_tokens": 8, "adapters": [entry]}),
              "music": Recipe("music", prompt="tune in G", model=str(bases["music"]), seed=1,
                              params={"bars": 1, "adapters": [entry]}),
              "image": Recipe("image", prompt="blox, red blocks", model=str(bases["image"]), seed=1,
                              params={"steps": 2, "width": 32, "height": 32, "adapters": [entry]})}[medium]
    from studio.core.tasks import find_task

    out = find_task(f"{medium}.generate")(Job(f"{medium}.generate", recipe), context()).artifacts[0]
    used = out.recipe.params["adapters"]
    assert used == [{"path": str(folder), "name": f"My {medium} style", "weight": 1.0,
                     "sha256": adapters.adapter_hash(folder)}]
    assert len(used[0]["sha256"]) == 10 and json.loads(out.recipe.to_json())["params"]["adapters"] == used


def test_the_kohya_file_gives_the_same_picture_as_the_diffusers_file(bases, folders, tmp_path, one_torch_thread):
    """Other tools load the kohya layout; diffusers reads it too (its own converter), so the two files must agree."""
    import numpy as np
    from diffusers import StableDiffusionPipeline

    run = finetune.train_task(Job("train.run", args=train_args("image", bases, folders, tmp_path / "run")), context())
    folder = Path(finetune_card.save_task(Job("train.save", args={"run_dir": run.value["run_dir"]}), context())
                  .value["adapter"])
    info = json.loads((folder / "adapter.json").read_text())
    assert info["kohya"].endswith(".safetensors") and info["kohya"] != info["weights"]

    def picture(weights: str, scale: float = 1.0):
        import torch

        pipe = StableDiffusionPipeline.from_pretrained(str(bases["image"]), safety_checker=None)
        pipe.load_lora_weights(str(folder), weight_name=weights, adapter_name="x")
        pipe.set_adapters(["x"], adapter_weights=[scale])
        return np.asarray(pipe("blox, red blocks", num_inference_steps=2, height=32, width=32, output_type="np",
                               generator=torch.Generator().manual_seed(3)).images[0])

    diffusers_file, kohya_file = picture(info["weights"]), picture(info["kohya"])
    assert np.abs(diffusers_file - kohya_file).max() < 1e-5
    assert np.abs(picture(info["weights"], 0.0) - diffusers_file).max() > 1e-4  # the LoRA does change the picture


def test_an_adapter_for_another_medium_or_a_missing_one_is_refused_in_words(bases, folders, tmp_path,
                                                                            one_torch_thread):
    from studio.core import adapters

    run = finetune.train_task(Job("train.run", args=train_args("text", bases, folders, tmp_path / "run")), context())
    folder = finetune_card.save_task(Job("train.save", args={"run_dir": run.value["run_dir"]}), context()).value["adapter"]
    with pytest.raises(UserError, match="is for text, not music"):
        adapters.resolve([{"path": folder}], "music")
    with pytest.raises(UserError, match="not on this computer"):
        adapters.resolve([{"path": str(tmp_path / "gone")}], "text")
    with pytest.raises(UserError, match="weight"):
        adapters.resolve([{"path": folder, "weight": 99}], "text")


def test_the_plan_reads_the_preset_and_the_strength():
    settings = finetune.settings_from({"medium": "text", "preset": "better", "strength": 2.0})
    quick = finetune.plan(finetune.settings_from({"medium": "text"}))
    better = finetune.plan(settings)
    assert better["steps"] > 3 * quick["steps"] and better["learning_rate"] == 2 * quick["learning_rate"]
    assert quick["sample_every"] * finetune.GRIDS_PER_RUN >= quick["steps"]
    with pytest.raises(UserError):
        finetune.settings_from({"medium": "video"})
