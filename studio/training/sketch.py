"""Train the built-in sketch -> picture model (emoji-sketch): pix2pix on (sketch of an emoji, the emoji) pairs.

  python -m studio.training.sketch train [--minutes N]   resumable; runs/emoji-sketch/
  python -m studio.training.sketch evaluate              classifier scores of translated held-out sketches
  python -m studio.training.sketch export                models/emoji-sketch/ (fp16) + card

The sketches are made afresh each step from the training emoji (data/sketches.py: outlines and inner edges, wobbly,
with gaps, black or coloured lines), so the model never sees the same drawing twice. Loss: L1 to the real emoji
(weight 100, pix2pix's) plus a least-squares PatchGAN term that keeps the result crisp instead of the L1 average.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from studio import paths
from studio.data import emoji as data_emoji
from studio.data.sketches import sketches
from studio.engine.image.sketch_model import PatchCritic, SketchConfig, SketchGenerator, keep_dropout_on
from studio.training import run as run_files
from studio.training.image_model import images_to_tensor

MODEL_NAME = "emoji-sketch"
BATCH = 16
LR = 2e-4  # pix2pix: Adam 2e-4, betas (0.5, 0.999)
L1_WEIGHT = 100.0
CHECKPOINT_EVERY_S = 180


class SketchRun:
    def __init__(self, run_dir: Path, config: SketchConfig, data: data_emoji.EmojiDataset, log=print) -> None:
        self.dir, self.config, self.log = run_dir, config, log
        self.train_images = data.split(held_out=False).images
        self.G, self.D = SketchGenerator(config), PatchCritic()
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=LR, betas=(0.5, 0.999))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=LR, betas=(0.5, 0.999))
        self.state = {"step": 0, "seconds": 0.0, "history": []}

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        run_files.save_atomic({"G": self.G.state_dict(), "D": self.D.state_dict(), "opt_G": self.opt_G.state_dict(),
                               "opt_D": self.opt_D.state_dict(), "state": self.state}, self.dir / run_files.CHECKPOINT)

    def load(self) -> bool:
        saved = run_files.read_checkpoint(self.dir / run_files.CHECKPOINT)
        if saved is None:
            return False
        for name in ("G", "D", "opt_G", "opt_D"):
            getattr(self, name).load_state_dict(saved[name])
        self.state = saved["state"]
        return True


def train_step(run: SketchRun, rng: np.random.Generator) -> dict[str, float]:
    idx = rng.integers(0, len(run.train_images), BATCH)
    real = images_to_tensor(run.train_images[idx])
    sketch = images_to_tensor(sketches(run.train_images[idx], int(rng.integers(2**31))))
    run.G.train()
    drawn = run.G(sketch)
    # 1. the critic: real pairs 1, drawn pairs 0 (least squares)
    loss_d = 0.5 * ((run.D(sketch, real) - 1) ** 2).mean() + 0.5 * (run.D(sketch, drawn.detach()) ** 2).mean()
    run_files.optimise(run.opt_D, loss_d, clip=None)
    # 2. the generator: fool the critic, and stay near the real picture
    adversarial = ((run.D(sketch, drawn) - 1) ** 2).mean()
    l1 = F.l1_loss(drawn, real)
    run_files.optimise(run.opt_G, adversarial + L1_WEIGHT * l1, clip=None)
    return {"loss_d": loss_d.item(), "loss_g_gan": adversarial.item(), "l1": l1.item()}


def train(run_dir: Path, minutes: float | None, threads: int, seed: int = 0) -> SketchRun:
    torch.set_num_threads(threads)
    log = run_files.make_logger(run_dir)
    run = SketchRun(run_dir, SketchConfig(), data_emoji.load_dataset(), log)
    log(f"resumed at step {run.state['step']}" if run.load() else f"fresh run: {len(run.train_images)} emoji")
    deadline = time.time() + minutes * 60 if minutes else float("inf")
    rng = np.random.default_rng(seed + run.state["step"])
    torch.manual_seed(seed + run.state["step"])
    run_files.train_until(run, deadline, lambda: train_step(run, rng), log, checkpoint_every_s=CHECKPOINT_EVERY_S)
    return run


@torch.no_grad()
def translate(generator: SketchGenerator, sketch_images: np.ndarray, seed: int = 0) -> np.ndarray:
    """uint8 sketches -> uint8 pictures (dropout on, seeded: pix2pix's variety)."""
    keep_dropout_on(generator)
    torch.manual_seed(seed)
    out = generator(images_to_tensor(sketch_images))
    return ((out.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def evaluate(run: SketchRun) -> dict:
    """Held-out emoji, sketched (hand-drawn style, fixed seed), translated, and classified by the project's
    classifier: does a sketch of a heart come back a heart? Beside the classifier on the real held-out emoji."""
    from studio.training import eval_classifier

    data = data_emoji.load_dataset()
    classifier, real = eval_classifier.real_reference()
    held = data.split(held_out=True)
    images, labels = eval_classifier.labelled(held)
    drawn = np.concatenate([translate(run.G, sketches(images[i : i + 64], 7 + i)) for i in range(0, len(images), 64)])
    pred, _ = eval_classifier.classify(classifier, drawn)
    sketch_only, _ = eval_classifier.classify(classifier, sketches(images, 7))
    return {"step": run.state["step"], "held_out_sketches": int(len(labels)),
            "class_kept": round(float((pred == labels).mean()), 3),
            "class_kept_per_class": eval_classifier.per_class_accuracy(pred, labels),
            "classifier_on_the_sketches_themselves": round(float((sketch_only == labels).mean()), 3),
            "classifier_on_real_held_out": real["ceiling"],
            "l1_to_real_held_out": round(float(np.abs(drawn.astype(float) - images.astype(float)).mean() / 255), 4)}


def save_samples(run: SketchRun, path: Path) -> Path:
    """Held-out emoji: the sketch, then three translations (three dropout seeds), then the real one."""
    from PIL import Image

    held = data_emoji.load_dataset().split(held_out=True).images[::37][:8]
    sketch = sketches(held, 3)
    columns = [sketch] + [translate(run.G, sketch, seed) for seed in range(3)] + [held]
    rows = [np.concatenate([c[i] for c in columns], axis=1) for i in range(len(held))]
    Image.fromarray(np.concatenate(rows, axis=0)).resize((5 * 128, len(held) * 128), Image.NEAREST).save(path)
    return path


def export(run: SketchRun, model_dir: Path) -> Path:
    tmp = model_dir.with_name(model_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    run_files.save_weights({k: v.half() for k, v in run.G.state_dict().items()}, tmp / "generator.safetensors")
    (tmp / "generator.safetensors").chmod(0o644)
    (tmp / "config.json").write_text(json.dumps({**run.config.to_dict(), "step": run.state["step"]}, indent=2),
                                     encoding="utf-8")
    save_samples(run, tmp / "samples.png")
    evaluation = json.loads((run.dir / "eval.json").read_text()) if (run.dir / "eval.json").exists() else {}
    (tmp / "MODEL_CARD.md").write_text(model_card(run, evaluation), encoding="utf-8")
    run_files.replace_folder(tmp, model_dir)
    return model_dir


def model_card(run: SketchRun, evaluation: dict) -> str:
    s = run.state
    figures = [f"- {k}: {v}" for k, v in evaluation.items() if not isinstance(v, dict)]
    per_class = evaluation.get("class_kept_per_class", {})
    return "\n".join([
        "# emoji-sketch: sketch -> picture (the Image panel's Translate mode)", "",
        "A pix2pix U-Net (Isola et al. 2017) trained from scratch on CPU: a sketch in, an emoji-styled picture out, in",
        "one pass. Paired training (each emoji's own outline -> the emoji) rather than CycleGAN: the pairs exist, and",
        "a supervised generator learns from them in about an hour on one core.", "",
        "## Data and licences",
        f"- {data_emoji.LICENCES['images']}: the emoji-ldm training split; the held-out 10 % are the evaluation.",
        "- Sketches are made from the pictures at every step (studio/data/sketches.py): outline and inner edges, 1-2 px,",
        "  wobbled, with gaps; half in black, half in the colours of the picture under the lines (a coloured line",
        "  asks for that colour).", "",
        "## Training",
        f"- {s['step']:,} steps of batch {BATCH}, Adam {LR} (0.5, 0.999), L1 x{L1_WEIGHT:g} + least-squares PatchGAN;"
        f" {s['seconds'] / 3600:.2f} CPU hours on one core.",
        "- Rebuild: `python -m studio.training.sketch train`, `… evaluate`, `… export`.", "",
        "## Samples (held-out emoji: sketch, three dropout seeds, the real emoji)", "", "![samples](samples.png)", "",
        "## Evaluation: does a sketch of a heart come back a heart?",
        "Held-out emoji, sketched by the same code (a fixed seed), translated, classified by the project's classifier",
        "(studio/training/eval_image.py).", "", *figures, "",
        "| class | kept |", "| --- | --- |", *[f"| {c} | {v} |" for c, v in per_class.items()], "",
    ])


def main() -> None:
    command, run = run_files.trainer_command(__doc__, MODEL_NAME, ["evaluate", "export"], train,
                                             lambda folder: SketchRun(folder, SketchConfig(), data_emoji.load_dataset()))
    if command == "evaluate":
        result = evaluate(run)
        (run.dir / "eval.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        print(json.dumps(result, indent=2))
    elif command == "export":
        print(export(run, paths.builtin_model_dir(MODEL_NAME)))

if __name__ == "__main__":
    main()
