"""The Train tab's run: a LoRA adapter trained on a user's folder, as an engine job like any other.

    train.run   job.args {"settings": TrainSettings as a dict, "items": the Data step's items (captions edited),
                "run_dir": optional} -> trains (or resumes) in <user data>/training/<name>/, reporting every step
    train.save  job.args {"run_dir", "step", "name"} -> the checkpoint at `step` saved as an adapter with its card
                (finetune_card.save_task)

The loop is the same for the three media; each medium's trainer (finetune_image/_text/_music.py) says how to load
its base model with a LoRA, what one step's loss is, how to score a checkpoint and how to draw its samples.

Resuming gives the very same next step: every step's randomness (batch, noise, timesteps, dropout) is drawn from
(seed, step), and a checkpoint holds the LoRA weights and the optimiser's moments (safetensors) beside state.json.
A checkpoint is written whole in a temporary folder and renamed into place, so a cancel, a crash or a killed
engine leaves the last one usable. Checkpoints come every `sample_every` steps (with a fixed-seed sample grid the
user picks the best one from) and at least every `checkpoint_minutes`.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from dataclasses import asdict, fields
from pathlib import Path

from studio import paths
from studio.core.jobs import Cancelled, Progress, Result, UserError
from studio.engine.train.settings import BASE_MODELS, BATCHES, LEARNING_RATES, TrainSettings, preset_steps
from studio.training import run as run_files

RUN_FILE = "run.json"  # what the run is: settings, items, base model and its hash, total steps (fixed at its start)
STATE_FILE = "state.json"  # where it stands: step, loss history, checkpoints (rewritten at each checkpoint)
CHECKPOINTS = "checkpoints"
WARMUP_STEPS = 20  # LoRA's small matrices start at zero change: a short warm-up keeps the first steps from jumping
GRIDS_PER_RUN = 8


# --- settings and the run folder ------------------------------------------------------------------------------------


def settings_from(values: dict) -> TrainSettings:
    known = {f.name for f in fields(TrainSettings)}
    settings = TrainSettings(**{k: v for k, v in values.items() if k in known})
    if settings.medium not in BASE_MODELS:
        raise UserError(f"the Train tab trains images, text or music, not {settings.medium!r}")
    if not 0.05 <= settings.strength <= 4 or settings.rank < 1 or settings.rank > 256:
        raise UserError("strength must be between 0.05 and 4, and the rank between 1 and 256")
    return settings


def slug(name: str) -> str:
    """A file-system-safe name: 'My Pixel Style!' -> 'my-pixel-style'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "adapter"


def adapter_name(settings: TrainSettings) -> str:
    return settings.name.strip() or Path(settings.folder.rstrip("/\\")).name or f"my-{settings.medium}"


def default_run_dir(settings: TrainSettings) -> Path:
    return paths.training_dir() / f"{settings.medium}-{slug(adapter_name(settings))}"


def plan(settings: TrainSettings) -> dict:
    """The numbers a run uses: the preset's steps, the learning rate scaled by the strength, batch, grid spacing."""
    base = settings.model or BASE_MODELS[settings.medium]
    steps = settings.steps or preset_steps(settings.preset, base)
    every = settings.sample_every or max(5, math.ceil(steps / GRIDS_PER_RUN))
    return {"base_model": base, "steps": int(steps), "sample_every": int(every),
            "learning_rate": (settings.learning_rate or LEARNING_RATES[settings.medium]) * settings.strength,
            "batch": settings.batch or BATCHES[settings.medium]}


class RunFolder:
    """A run's files: run.json, state.json, checkpoints/step-NNNNNN/ (lora, optimiser, samples, state)."""

    def __init__(self, folder: Path) -> None:
        self.dir = Path(folder)

    def exists(self) -> bool:
        return (self.dir / RUN_FILE).exists()

    def read(self) -> dict:
        return json.loads((self.dir / RUN_FILE).read_text(encoding="utf-8"))

    def start(self, record: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        run_files.write_atomic(self.dir / RUN_FILE, lambda t: t.write_text(json.dumps(record, indent=1)))

    def state(self) -> dict:
        path = self.dir / STATE_FILE
        if not path.exists():
            return {"step": 0, "history": [], "checkpoints": [], "seconds": 0.0, "finished": False}
        return json.loads(path.read_text(encoding="utf-8"))

    def checkpoint_dir(self, step: int) -> Path:
        return self.dir / CHECKPOINTS / f"step-{step:06d}"

    def write_checkpoint(self, step: int, tensors: dict, optimizer, state: dict, samples: dict | None) -> Path:
        """A checkpoint folder, complete before it appears; the optimiser's moments are kept in the newest only."""
        final = self.checkpoint_dir(step)
        temporary = final.with_name(final.name + ".tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        run_files.save_weights(tensors, temporary / "lora.safetensors")
        save_optimizer(optimizer, temporary)
        if samples is not None:
            write_samples(temporary, samples)
        (temporary / STATE_FILE).write_text(json.dumps(state))
        run_files.replace_folder(temporary, final)
        for older in self.dir.glob(f"{CHECKPOINTS}/step-*"):
            if older != final:
                for name in ("optimizer.safetensors", "optimizer.json"):
                    (older / name).unlink(missing_ok=True)
        run_files.write_atomic(self.dir / STATE_FILE, lambda t: t.write_text(json.dumps(state)))
        return final

    def latest(self) -> Path | None:
        """The newest checkpoint that is whole (its state and optimiser are there)."""
        found = sorted(p for p in self.dir.glob(f"{CHECKPOINTS}/step-*") if not p.name.endswith((".tmp", ".old")))
        whole = [p for p in found if (p / STATE_FILE).exists() and (p / "optimizer.safetensors").exists()]
        return whole[-1] if whole else None


def write_samples(folder: Path, samples: dict) -> None:
    """samples.png (a picture grid) and/or samples.json (texts, pieces, the prompts)."""
    if samples.get("png"):
        (folder / "samples.png").write_bytes(samples["png"])
    (folder / "samples.json").write_text(json.dumps({k: v for k, v in samples.items() if k != "png"}))


def save_optimizer(optimizer, folder: Path) -> None:
    """AdamW's moments as safetensors and its settings as JSON: no pickle in a run folder."""
    saved = optimizer.state_dict()
    tensors = {f"{index}.{name}": value for index, moments in saved["state"].items()
               for name, value in moments.items()}
    run_files.save_weights(tensors, folder / "optimizer.safetensors")
    (folder / "optimizer.json").write_text(json.dumps(saved["param_groups"]))


def load_optimizer(optimizer, folder: Path) -> None:
    from safetensors.torch import load_file

    state: dict[int, dict] = {}
    for key, value in load_file(str(folder / "optimizer.safetensors")).items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": json.loads((folder / "optimizer.json").read_text())})


# --- the loop -------------------------------------------------------------------------------------------------------


def trainer_for(medium: str, record: dict, run_dir: Path, device: str):
    if medium == "image":
        from studio.training.finetune_image import ImageTrainer as Trainer
    elif medium == "text":
        from studio.training.finetune_text import TextTrainer as Trainer
    else:
        from studio.training.finetune_music import MusicTrainer as Trainer
    return Trainer(record, run_dir, device)


def seed_step(seed: int, step: int) -> int:
    """The seed of one step's randomness: the same step draws the same batch and noise in every sitting."""
    return (seed * 1_000_003 + step) % 2**63


class Session:
    """One sitting of a run: the trainer, its optimiser, the clock since the last checkpoint."""

    def __init__(self, folder: RunFolder, trainer, record: dict) -> None:
        import torch

        self.folder, self.trainer, self.record = folder, trainer, record
        self.plan = record["plan"]
        self.optimizer = torch.optim.AdamW(trainer.parameters(), lr=self.plan["learning_rate"], weight_decay=1e-2)
        self.state = folder.state()
        latest = folder.latest()
        if latest is not None:  # resume: weights and moments as they were at that step
            from safetensors.torch import load_file

            trainer.load_lora_state(load_file(str(latest / "lora.safetensors")))
            load_optimizer(self.optimizer, latest)
            self.state = json.loads((latest / STATE_FILE).read_text(encoding="utf-8"))
        self.started = time.monotonic()
        self.seconds_before = self.state.get("seconds", 0.0)
        self.last_checkpoint = time.monotonic()

    def learning_rate(self, step: int) -> float:
        peak, total = self.plan["learning_rate"], self.plan["steps"]
        return run_files.learning_rate(step, peak, min(WARMUP_STEPS, max(1, total // 10)), total, floor=peak / 10)

    def step(self) -> float:
        import torch

        began = time.monotonic()
        step = self.state["step"]
        seed = seed_step(int(self.record["settings"]["seed"]), step)
        torch.manual_seed(seed)  # dropout and anything else drawn from torch's global generator
        run_files.set_learning_rate(self.optimizer, self.learning_rate(step))
        loss = self.trainer.loss(step, seed)
        run_files.optimise(self.optimizer, loss)
        value = float(loss.detach())
        self.state["step"] = step + 1
        self.state["history"].append([step + 1, value])
        # the steps alone, without grids and scores: what the presets' minutes are measured from
        self.state["train_seconds"] = self.state.get("train_seconds", 0.0) + time.monotonic() - began
        return value

    def checkpoint(self, with_samples: bool) -> dict:
        """Save where training stands; with a sample grid and a score when `with_samples`. Returns its entry."""
        step = self.state["step"]
        self.state["seconds"] = self.seconds_before + time.monotonic() - self.started
        entry = {"step": step, "folder": str(self.folder.checkpoint_dir(step)), "seconds": round(self.state["seconds"], 1)}
        samples = None
        if with_samples:
            entry["score"] = self.trainer.score()
            samples = self.trainer.samples(seed_step(int(self.record["settings"]["seed"]), 0))
        self.state["checkpoints"] = [c for c in self.state["checkpoints"] if c["step"] != step] + [entry]
        self.folder.write_checkpoint(step, self.trainer.lora_state(), self.optimizer, self.state, samples)
        self.last_checkpoint = time.monotonic()
        if samples is not None:
            entry = {**entry, "samples": samples}
        return entry

    def due(self) -> tuple[bool, bool]:
        """(checkpoint now?, with samples?) after the step just taken."""
        step, every = self.state["step"], self.plan["sample_every"]
        grid = step % every == 0 or step == self.plan["steps"]
        minutes = float(self.record["settings"]["checkpoint_minutes"])
        return grid or time.monotonic() - self.last_checkpoint > minutes * 60, grid


def run_training(folder: RunFolder, trainer, record: dict, report, cancelled) -> dict:
    """Train until the plan's steps; a cancel saves the step reached (when it moved) and raises Cancelled."""
    session = Session(folder, trainer, record)
    total = session.plan["steps"]
    report(Progress(session.state["step"], total, preview={"history": session.state["history"],
                                                           "checkpoints": session.state["checkpoints"],
                                                           "run_dir": str(folder.dir)},
                    message="resumed" if session.state["step"] else "started"))
    if session.state["step"] == 0:  # the grid before any training: what the base model makes of the prompts
        report(Progress(0, total, preview={"checkpoint": session.checkpoint(with_samples=True)}, message="step 0"))
    saved_at = session.state["step"]
    while session.state["step"] < total:
        if cancelled():
            if session.state["step"] > saved_at:
                session.checkpoint(with_samples=False)
            raise Cancelled()
        loss = session.step()
        step = session.state["step"]
        preview: dict = {"loss": [step, loss]}
        now, grid = session.due()
        if now:
            preview["checkpoint"] = session.checkpoint(with_samples=grid)
            saved_at = step
        report(Progress(step, total, preview=preview, message=f"step {step} of {total} · loss {loss:.4f}"))
    session.state["finished"] = True
    if session.state["step"] > saved_at:  # the last step had no checkpoint yet (a resume past the end does)
        report(Progress(total, total, preview={"checkpoint": session.checkpoint(with_samples=True)}, message="done"))
    else:
        state = session.state
        run_files.write_atomic(folder.dir / STATE_FILE, lambda t: t.write_text(json.dumps(state)))
    return session.state


def new_record(settings: TrainSettings, items: list[dict], trainer_facts: dict | None = None) -> dict:
    from studio.core import catalog

    the_plan = plan(settings)
    source = catalog.resolve(the_plan["base_model"])
    return {"settings": asdict(settings), "items": items, "plan": the_plan, "name": adapter_name(settings),
            "base_model": the_plan["base_model"], "base_hash": catalog.content_hash(source.path),
            "created": time.strftime("%Y-%m-%d %H:%M:%S"), **(trainer_facts or {})}


def train_task(job, ctx) -> Result:
    """Engine job "train.run": start or resume a run (see the module's docstring)."""
    args = job.args
    if args.get("run_dir") and RunFolder(Path(args["run_dir"])).exists():
        folder = RunFolder(Path(args["run_dir"]))
        record = folder.read()  # a resume trains what the run started with, whatever the panel shows now
    else:
        settings = settings_from(dict(args.get("settings") or {}))
        items = list(args.get("items") or [])
        if not items:
            raise UserError("nothing to train on: read a folder in step 1 first")
        folder = RunFolder(Path(args.get("run_dir") or default_run_dir(settings)))
        if folder.exists() and not args.get("replace"):
            record = folder.read()
        else:
            shutil.rmtree(folder.dir, ignore_errors=True)
            record = new_record(settings, items)
            folder.start(record)
    import torch

    trainer = trainer_for(record["settings"]["medium"], record, folder.dir, ctx.device.device)
    torch.manual_seed(int(record["settings"]["seed"]))  # the LoRA's first weights: the same run starts the same
    trainer.prepare(ctx.report, ctx.cancelled)
    record.update(data=trainer.data_summary, score_name=trainer.score_name)  # for the card
    folder.start(record)
    state = run_training(folder, trainer, record, ctx.report, ctx.cancelled)
    return Result(value={"run_dir": str(folder.dir), "state": state})
