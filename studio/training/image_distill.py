"""Distil emoji-ldm into a few-step model: latent consistency distillation (LCM, Luo et al. 2023).

  python -m studio.training.image_distill train [--minutes N]   resumable; runs/emoji-lcm/
  python -m studio.training.image_distill evaluate              2 and 4 steps beside the 20-step teacher (eval.json)
  python -m studio.training.image_distill export                models/emoji-lcm/ (a diffusers folder, LCMScheduler)

The student starts as a copy of the teacher's UNet (emoji-ldm's EMA weights) and learns to jump from any point of
the teacher's sampling path straight to its end. One training step, for a batch of training latents:
  1. noise them to a DDIM timestep t (one of SOLVER_STEPS, every k = 1000 / SOLVER_STEPS);
  2. the frozen teacher takes one DDIM step with classifier-free guidance from t to t - k;
  3. the student's answer at t must match the target network's (an EMA of the student) answer at t - k.
Answers are consistency outputs c_skip(t) x_t + c_out(t) x0(t) (the boundary conditions diffusers' LCMScheduler
applies), so the exported folder samples with the stock LCMScheduler in 2-4 steps. The teacher's guidance (4, the
20-step card's setting) is baked in: the student runs without classifier-free guidance, half the work per step.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from studio import paths
from studio.data import emoji as data_emoji
from studio.data.emoji_words import colour_name, read_cldr_keywords
from studio.training import run as run_files
from studio.training.image_captions import (
    caption_choices,
    context_subjects,
    emoji_words,
    filler_words,
    load_tokenizer,
    pick_training_caption,
    tokenize,
    without_held_out,
)
from studio.training.image_kin import KinDraws, kin_share
from studio.training.image_model import images_to_tensor, noise_scheduler
from studio.training.image_new_words import NewWordDraws
from studio.training.image_stages import HELD_OUT_SENTENCES

MODEL_NAME = "emoji-lcm"
TEACHER = "emoji-ldm"
GUIDANCE = 4.0  # the teacher's classifier-free guidance, baked into the student
SOLVER_STEPS = 50  # the teacher's DDIM path has 50 steps (k = 20): LCMScheduler's original_inference_steps
TIMESTEP_SCALING = 10.0  # diffusers' LCMScheduler default: c_skip ~ 0 away from t = 0
SIGMA_DATA = 0.5
HUBER_C = 0.001  # LCM's pseudo-Huber loss constant
TARGET_EMA = 0.95  # the target network follows the student closely (LCM)
LR = 5e-5
BATCH = 32
CAPTION_DROP = 0.0  # the student always has the teacher's guided answer to learn; "" is still among the captions
CHECKPOINT_EVERY_S = 180


def boundary(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LCMScheduler's c_skip and c_out at timesteps t: the answer is x_t itself at t = 0, the model's x0 elsewhere."""
    scaled = t.float() * TIMESTEP_SCALING
    c_skip = SIGMA_DATA**2 / (scaled**2 + SIGMA_DATA**2)
    c_out = scaled / (scaled**2 + SIGMA_DATA**2).sqrt()
    return c_skip.view(-1, 1, 1, 1), c_out.view(-1, 1, 1, 1)


def x0_and_eps(alphas_cumprod: torch.Tensor, x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor):
    """A v-prediction turned into the clean latent and the noise it implies."""
    a = alphas_cumprod[t].sqrt().view(-1, 1, 1, 1)
    s = (1 - alphas_cumprod[t]).sqrt().view(-1, 1, 1, 1)
    return a * x_t - s * v, s * x_t + a * v


def consistency(unet, alphas_cumprod, x_t, t, text) -> torch.Tensor:
    x0, _ = x0_and_eps(alphas_cumprod, x_t, unet(x_t, t, encoder_hidden_states=text).sample, t)
    c_skip, c_out = boundary(t)
    return c_skip * x_t + c_out * x0


class DistillRun:
    def __init__(self, run_dir: Path, teacher_dir: Path, data: data_emoji.EmojiDataset, log=print) -> None:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel

        self.dir, self.teacher_dir, self.log = run_dir, teacher_dir, log
        f32 = {"dtype": torch.float32}
        self.teacher = UNet2DConditionModel.from_pretrained(teacher_dir / "unet", **f32).eval().requires_grad_(False)
        self.text_encoder = CLIPTextModel.from_pretrained(teacher_dir / "text_encoder", **f32).eval()
        self.text_encoder.requires_grad_(False)
        self.tokenizer = load_tokenizer(teacher_dir / "tokenizer")
        vae = AutoencoderKL.from_pretrained(teacher_dir / "vae", **f32).eval()
        self.scale = float(vae.config.scaling_factor)
        train = data.split(held_out=False)
        with torch.no_grad():
            dists = [vae.encode(images_to_tensor(train.images[i : i + 256])).latent_dist for i in range(0, len(train), 256)]
        self.mean = torch.cat([d.mean for d in dists]) * self.scale
        self.std = torch.cat([d.std for d in dists]) * self.scale
        # Composed captions too (round 4), from round 5 filler words and flags' adjectives, from round 6 synonyms:
        # whatever the teacher learnt
        everyday, synonyms = (teacher_learnt(teacher_dir, key) for key in ("everyday_words_from", "synonyms_from"))
        words = emoji_words(train, read_cldr_keywords(), [colour_name(im) for im in train.images], demonyms=everyday,
                            synonyms=synonyms)
        self.words = words
        all_words = emoji_words(data, read_cldr_keywords(), [colour_name(im) for im in data.images], demonyms=True,
                                synonyms=synonyms)
        self.fillers = filler_words(all_words, HELD_OUT_SENTENCES) if everyday else ()
        self.captions = [without_held_out(caption_choices(w), HELD_OUT_SENTENCES) for w in words]
        self.draw_weights = train.per_emoji_weights()  # each emoji once whatever its skin tones, as the teacher's round 3
        # Round 8's context phrases, naming any emoji's subjects, when the teacher learnt them.
        self.context = context_subjects(all_words) if teacher_learnt(teacher_dir, "context_from") else ()
        # Round 7's share of every batch on the everyday words, when the teacher learnt them as whole tokens.
        self.new_words = NewWordDraws(words, self.draw_weights, HELD_OUT_SENTENCES, self.fillers, self.context) \
            if teacher_learnt(teacher_dir, "new_words_from") else None
        # Round 9's held-out emoji's words on their subgroup's training pictures, when the teacher learnt them.
        # (and round 10's wider share of them).
        self.kin = KinDraws(data, all_words, HELD_OUT_SENTENCES, self.fillers, self.context,
                            kin_share(teacher_state(teacher_dir))) if teacher_learnt(teacher_dir, "kin_from") else None
        self.student = copy.deepcopy(self.teacher).train().requires_grad_(True)
        self.target = copy.deepcopy(self.teacher)
        self.optimizer = torch.optim.AdamW(self.student.parameters(), lr=LR, weight_decay=0.0)
        self.alphas_cumprod = noise_scheduler().alphas_cumprod
        self.uncond = self.encode([""])
        self.state = {"step": 0, "seconds": 0.0, "history": []}

    @torch.no_grad()
    def encode(self, captions: list[str]) -> torch.Tensor:
        return self.text_encoder(tokenize(self.tokenizer, captions))[0]

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        run_files.save_atomic({"student": self.student.state_dict(), "target": self.target.state_dict(),
                               "optimizer": self.optimizer.state_dict(), "state": self.state},
                              self.dir / run_files.CHECKPOINT)

    def load(self) -> bool:
        saved = run_files.read_checkpoint(self.dir / run_files.CHECKPOINT)
        if saved is None:
            return False
        self.student.load_state_dict(saved["student"])
        self.target.load_state_dict(saved["target"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.state = saved["state"]
        return True


def teacher_learnt(teacher_dir: Path, round_key: str) -> bool:
    """Whether the teacher trained on a round's captions (its exported training state says when each began:
    "everyday_words_from" for round 5, "synonyms_from" for round 6, "new_words_from" for round 7, "context_from"
    for round 8, "kin_from" for round 9, "wide_kin_from" for round 10)."""
    return round_key in teacher_state(teacher_dir)


def teacher_state(teacher_dir: Path) -> dict:
    """The teacher's exported training state ({} for a folder without one)."""
    state = teacher_dir / "training_state.json"
    return json.loads(state.read_text(encoding="utf-8")) if state.exists() else {}


def distill_step(run: DistillRun, rng: np.random.Generator, generator: torch.Generator) -> float:
    k = 1000 // SOLVER_STEPS
    idx = rng.choice(len(run.mean), BATCH, p=run.draw_weights)
    captions = [pick_training_caption(rng, run.captions[i], run.words[i], CAPTION_DROP, HELD_OUT_SENTENCES, run.fillers,
                                      run.context) for i in idx]
    if run.new_words is not None:
        idx, captions = run.new_words.swap_in(rng, idx, captions, CAPTION_DROP)
    if run.kin is not None:
        idx, captions = run.kin.swap_in(rng, idx, captions, CAPTION_DROP)
    z0 = run.mean[idx] + run.std[idx] * torch.randn(run.mean[idx].shape, generator=generator)
    text = run.encode(captions)
    n = torch.randint(0, SOLVER_STEPS, (BATCH,), generator=generator)
    t = (n + 1) * k - 1  # 19, 39, …, 999: the DDIM timesteps LCMScheduler samples from
    t_prev = (t - k).clamp(min=0)
    noise = torch.randn(z0.shape, generator=generator)
    a = run.alphas_cumprod[t].sqrt().view(-1, 1, 1, 1)
    x_t = a * z0 + (1 - run.alphas_cumprod[t]).sqrt().view(-1, 1, 1, 1) * noise
    answer = consistency(run.student, run.alphas_cumprod, x_t, t, text)
    with torch.no_grad():
        # The teacher's guided DDIM step t -> t - k (guidance on x0 and on the noise alike, as LCM does).
        v = run.teacher(torch.cat([x_t, x_t]), torch.cat([t, t]),
                        encoder_hidden_states=torch.cat([text, run.uncond.expand(BATCH, -1, -1)])).sample
        x0, eps = x0_and_eps(run.alphas_cumprod, torch.cat([x_t, x_t]), v, torch.cat([t, t]))
        x0 = x0[BATCH:] + GUIDANCE * (x0[:BATCH] - x0[BATCH:])
        eps = eps[BATCH:] + GUIDANCE * (eps[:BATCH] - eps[BATCH:])
        a_prev = run.alphas_cumprod[t_prev].view(-1, 1, 1, 1)
        x_prev = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        target = consistency(run.target, run.alphas_cumprod, x_prev, t_prev, text)
    loss = (((answer - target) ** 2 + HUBER_C**2).sqrt() - HUBER_C).mean()
    run_files.optimise(run.optimizer, loss)
    with torch.no_grad():
        for p_target, p in zip(run.target.parameters(), run.student.parameters(), strict=True):
            p_target.lerp_(p, 1 - TARGET_EMA)
    return loss.item()


def train(run_dir: Path, minutes: float | None, threads: int, seed: int = 0) -> DistillRun:
    torch.set_num_threads(threads)
    log = run_files.make_logger(run_dir)
    run = DistillRun(run_dir, paths.builtin_model_dir(TEACHER), data_emoji.load_dataset(), log)
    log(f"resumed at step {run.state['step']}" if run.load() else "fresh run: student = the teacher's UNet")
    deadline = time.time() + minutes * 60 if minutes else float("inf")
    rng, generator = np.random.default_rng(seed + run.state["step"]), torch.Generator().manual_seed(seed + run.state["step"])
    run_files.train_until(run, deadline, lambda: {"loss": distill_step(run, rng, generator)}, log,
                          checkpoint_every_s=CHECKPOINT_EVERY_S)
    return run


def export(run: DistillRun, model_dir: Path) -> Path:
    """A diffusers folder: the teacher's VAE, text encoder and tokenizer, the student UNet, an LCMScheduler."""
    tmp = model_dir.with_name(model_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for part in ("vae", "text_encoder", "tokenizer"):  # the teacher's, unchanged
        shutil.copytree(run.teacher_dir / part, tmp / part)
    shutil.copy(run.teacher_dir / "model_index.json", tmp / "model_index.json")
    run.target.half().save_pretrained(tmp / "unet", safe_serialization=True)  # the EMA target samples best (LCM)
    run.target.float()
    lcm_scheduler(run.teacher_dir).save_pretrained(tmp / "scheduler")
    index = json.loads((tmp / "model_index.json").read_text(encoding="utf-8"))
    index["scheduler"] = ["diffusers", "LCMScheduler"]
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    (tmp / "distill_state.json").write_text(json.dumps(run.state), encoding="utf-8")
    evaluation = run.dir / "eval.json"
    figures = json.loads(evaluation.read_text(encoding="utf-8")) if evaluation.exists() else None
    (tmp / "MODEL_CARD.md").write_text(model_card(run, figures), encoding="utf-8")
    for weights in tmp.rglob("*.safetensors"):
        weights.chmod(0o644)
    run_files.replace_folder(tmp, model_dir)
    return model_dir


def student_pipeline(run: DistillRun):
    """The student (its EMA target) in a pipeline with the teacher's other parts and an LCMScheduler."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(run.teacher_dir, dtype=torch.float32, local_files_only=True)
    pipe.unet = run.target.eval()
    pipe.scheduler = lcm_scheduler(run.teacher_dir)  # the very scheduler the exported folder ships
    return pipe


def lcm_scheduler(teacher_dir: Path):
    """The LCMScheduler of the few-step model: the teacher's noise schedule, nothing else of its sampler's config
    (an earlier evaluation copied every key LCMScheduler accepts from the teacher's DPM-Solver config, which moved
    its timesteps: the evaluated model scored 16 % while the exported one drew clean pictures)."""
    from diffusers import LCMScheduler

    teacher = json.loads((teacher_dir / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    shared = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "prediction_type", "trained_betas")
    return LCMScheduler(**{k: teacher[k] for k in shared if k in teacher}, original_inference_steps=SOLVER_STEPS,
                        timestep_scaling=TIMESTEP_SCALING)


def evaluate(run: DistillRun, per_class: int = 24) -> dict:
    """The student at 2 and 4 steps beside the 20-step teacher: adherence, sentences, diversity, Fréchet distance,
    seconds per picture (batch 1), all by eval_image's classifier and prompts."""
    from diffusers import StableDiffusionPipeline

    from studio.training import eval_image

    classifier, real = eval_image.real_reference()
    teacher = StableDiffusionPipeline.from_pretrained(run.teacher_dir, dtype=torch.float32, local_files_only=True)
    student = student_pipeline(run)
    setups = {"teacher, 20 steps": (teacher, 20, 4.0), "few-step, 4 steps": (student, 4, 1.0),
              "few-step, 2 steps": (student, 2, 1.0)}
    models = {}
    reused = eval_image.reusable_scores(run.teacher_dir, eval_image.default_run_dir(), per_class)
    for name, (pipe, steps, guidance) in setups.items():
        if name.startswith("teacher") and reused is not None:
            scores = dict(reused)
        else:
            scores, _ = eval_image.evaluate_draw(eval_image.pipeline_draw(pipe, steps, guidance), classifier, real,
                                                 per_class)
        scores.update(eval_image.timings(pipe, steps, guidance))
        models[name] = scores
    return {"models": models, "step": run.state["step"], "threads": torch.get_num_threads()}


def model_card(run: DistillRun, evaluation: dict | None) -> str:
    s = run.state
    lines = [
        "# emoji-lcm: the built-in image model in 2-4 steps (Live mode)", "",
        "emoji-ldm distilled by latent consistency distillation (Luo et al. 2023): the same VAE, text encoder and",
        "tokenizer, a UNet that jumps from any point of the teacher's sampling path to its end. A standard diffusers",
        "folder with diffusers' own `LCMScheduler`: 2-4 steps, guidance 1 (the teacher's guidance 4 is baked in).", "",
        "## Training",
        f"- Teacher: emoji-ldm (its EMA UNet), frozen; its guided DDIM step over {SOLVER_STEPS} timesteps is the target.",
        f"- {s['step']:,} steps of batch {BATCH}, AdamW {LR}, pseudo-Huber loss (c = {HUBER_C}), target network EMA"
        f" {TARGET_EMA}; {s['seconds'] / 3600:.2f} CPU hours on one core.",
        "- Data: emoji-ldm's training latents, each emoji drawn once whatever its skin tones, and its captions: round 2's",
        "  and, since its round 4, composed ones (`please draw a big red heart`), since its round 5 with words that name",
        "  nothing (`… for my cousin`) and flags' adjectives, since its round 6 with everyday synonyms (`puppy`), since",
        "  its round 7 a quarter of every batch captioned with them, since its round 8 with another emoji named after",
        "  the subject (`a red heart in the snow`), when the teacher learnt them (licences: see emoji-ldm's card).",
        "- Rebuild: `python -m studio.training.image_distill train`, then `… export`.", "", "## Evaluation", "",
    ]
    if not evaluation:
        return "\n".join(lines + ["Not run yet."]) + "\n"
    lines += ["Scored by the project's classifier as emoji-ldm's card (studio/training/eval_image.py), same prompts and",
              "seeds, beside the 20-step teacher.", "",
              "| | " + " | ".join(evaluation["models"]) + " |", "| --- |" + " --- |" * len(evaluation["models"])]
    from studio.training.eval_sentences import SENTENCE_SETS

    for key in ("prompt_adherence", *(f"{name}_adherence" for name in SENTENCE_SETS), "diversity_ratio",
                "frechet_distance_generated_vs_heldout", "seconds_per_image"):
        lines.append(f"| {key} | " + " | ".join(str(m.get(key, "")) for m in evaluation["models"].values()) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    command, run = run_files.trainer_command(
        __doc__, MODEL_NAME, ["evaluate", "export"], train,
        lambda folder: DistillRun(folder, paths.builtin_model_dir(TEACHER), data_emoji.load_dataset()))
    if command == "evaluate":
        result = evaluate(run)
        (run.dir / "eval.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        print(json.dumps({n: {k: v for k, v in m.items() if k not in ("per_class", "class_mix")}
                          for n, m in result["models"].items()}, indent=2))
    elif command == "export":
        print(export(run, paths.builtin_model_dir(MODEL_NAME)))

if __name__ == "__main__":
    main()
