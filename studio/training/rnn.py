"""What text-rnn and music-rnn share: the resumable training loop over a `studio.core.rnn` model, and its export.

A run folder holds:
  settings.json     the architecture and the schedule, fixed by the first start (a resume reads them back)
  checkpoint.pt     {"model", "optimizer", "state"}: weights, AdamW moments, step, history (every few minutes)
  best.safetensors  the fp32 weights with the lowest held-out figure so far, best.json its step and figure
  train.log         the log

Resuming gives the very same next step as running on would: batch number i and its dropout masks are pure
functions of (seed, i), so nothing random has to be saved, and the checkpoint holds the float32 weights and
optimiser moments exactly. (One torch thread: CPU kernels are then deterministic.)
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from studio.core.rnn import RNNConfig, RNNLanguageModel
from studio.training import run

SETTINGS = "settings.json"
BEST = "best.safetensors"


@dataclass(frozen=True)
class Schedule:
    """Training settings that must not change within a run (the learning rate at step i depends on them)."""

    batch: int = 16  # windows per step
    context: int = 256  # tokens per window (backpropagation through time reaches this far back)
    lr: float = 3e-3  # peak learning rate: RNNs with Adam take a higher one than transformers
    warmup: int = 100  # steps of linear warm-up
    max_steps: int = 2000  # the run ends here at the latest
    # Warmup-stable-decay: the rate holds at its peak, then the last `decay` of the run (of its steps, or of its
    # time budget when it has one: see Trainer.start_decay) takes it down to a tenth along half a cosine. Unlike a
    # cosine over max_steps, the run can end on time on a machine of unknown speed and still end decayed.
    decay: float = 0.25
    weight_decay: float = 0.01
    clip: float = 1.0  # gradient-norm clipping: LSTMs' gradients occasionally explode
    seed: int = 0


@dataclass
class Task:
    """What differs between text and music."""

    name: str  # "text-rnn"
    unit: str  # the held-out figure's unit, e.g. "bits/byte"
    batch: Callable[[int, Schedule], torch.Tensor]  # (step, schedule) -> ids [batch, context + 1]; pure in step
    evaluate: Callable[[RNNLanguageModel], float]  # held-out figure, lower is better (model in eval mode)
    sample: Callable[[RNNLanguageModel, int], str] | None = None  # (model, seed) -> a short sample for the log
    export: Callable[[Path], None] | None = None  # run folder -> the model folder (milestones and the end)


@dataclass
class Timers:
    """When to evaluate, checkpoint and export, in wall-clock minutes; `minutes` is the sitting's time budget
    (0 = none: the schedule's steps decide), which the learning-rate decay is fitted to."""

    minutes: float = 0.0
    eval_minutes: float = 10.0
    checkpoint_minutes: float = 3.0
    export_minutes: float = 20.0
    log_every: int = 10
    last: dict = field(default_factory=dict)

    def due(self, name: str, every_minutes: float) -> bool:
        now = time.monotonic()
        if now - self.last.setdefault(name, now) >= every_minutes * 60:
            self.last[name] = now
            return True
        return False


# --- one step ------------------------------------------------------------------------------------------------


def seed_step(schedule: Schedule, step: int) -> None:
    """Dropout masks of step i depend on (seed, i) only: a resumed run draws the same ones."""
    torch.manual_seed(schedule.seed * 1_000_003 + step)


def loss_of(model: RNNLanguageModel, batch: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats/token) over a batch of windows; every window starts from a blank state."""
    logits, _ = model(batch[:, :-1])
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))


def train_step(model, optimizer, batch: torch.Tensor, lr: float, clip: float) -> float:
    run.set_learning_rate(optimizer, lr)
    loss = loss_of(model, batch)
    run.optimise(optimizer, loss, clip)
    return loss.item()


def decay_window(schedule: Schedule, decay: dict | None = None) -> tuple[int, int]:
    """(first step of the decay, its length in steps): the run's recorded one, else the last part of max_steps."""
    if decay:
        return decay["start"], decay["steps"]
    steps = max(1, round(schedule.max_steps * schedule.decay))
    return schedule.max_steps - steps, steps


def learning_rate(schedule: Schedule, step: int, decay: dict | None = None) -> float:
    """The rate at `step`: a pure function of the schedule and the recorded decay window (so resumes are exact)."""
    start, steps = decay_window(schedule, decay)
    if step < min(schedule.warmup, start):
        return run.warmup(step, schedule.lr, schedule.warmup)
    if step < start:
        return schedule.lr
    return run.cosine((step - start) / steps, schedule.lr, schedule.lr / 10)


def new_optimizer(model: RNNLanguageModel, schedule: Schedule) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=schedule.lr, betas=(0.9, 0.99), weight_decay=schedule.weight_decay)


def evaluate(model: RNNLanguageModel, task: Task) -> float:
    model.eval()
    try:
        with torch.inference_mode():
            return task.evaluate(model)
    finally:
        model.train()


# --- the run folder --------------------------------------------------------------------------------------------


def settings_for(run_dir: Path, config: RNNConfig, schedule: Schedule) -> tuple[RNNConfig, Schedule]:
    """The run's settings: those saved by its first start, else the given ones (then saved)."""
    path = run_dir / SETTINGS
    if path.exists():
        saved = json.loads(path.read_text())
        return RNNConfig.from_dict(saved["model"]), Schedule(**saved["schedule"])
    path.write_text(json.dumps({"model": asdict(config), "schedule": asdict(schedule)}, indent=2))
    return config, schedule


def read_settings(run_dir: Path) -> tuple[RNNConfig, Schedule]:
    saved = json.loads((run_dir / SETTINGS).read_text())
    return RNNConfig.from_dict(saved["model"]), Schedule(**saved["schedule"])


def new_state() -> dict:
    return {"step": 0, "tokens": 0, "wall_seconds": 0.0, "train_wall_seconds": 0.0, "train_cpu_seconds": 0.0,
            "history": [], "best": math.inf, "best_step": None}


def load_best(run_dir: Path) -> RNNLanguageModel:
    """The best weights of a run (fp32), in eval mode."""
    from safetensors.torch import load_file

    config, _ = read_settings(run_dir)
    model = RNNLanguageModel(config)
    model.load_weights(load_file(str(run_dir / BEST)))
    return model.eval()


# --- the loop ----------------------------------------------------------------------------------------------------


class Trainer:
    """One sitting of a run: resumes from the checkpoint if there is one, trains, checkpoints, evaluates, exports."""

    def __init__(self, run_dir: Path, config: RNNConfig, schedule: Schedule, task: Task, timers: Timers) -> None:
        self.run_dir, self.task, self.timers = Path(run_dir), task, timers
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log = run.make_logger(self.run_dir)
        self.config, self.schedule = settings_for(self.run_dir, config, schedule)
        torch.manual_seed(self.schedule.seed)  # the initial weights too are a function of the seed
        self.model = RNNLanguageModel(self.config)
        self.optimizer = new_optimizer(self.model, self.schedule)
        saved = run.read_checkpoint(self.run_dir / run.CHECKPOINT)
        if saved is not None:
            self.state = run.restore(saved, self.model, self.optimizer)
            self.log(f"resumed {task.name} at step {self.state['step']}")
        else:
            self.state = new_state()
            self.log(f"new {task.name} run: {json.dumps(asdict(self.config))} {json.dumps(asdict(self.schedule))}")
        self.losses: list[tuple[int, float]] = []  # (step, loss) of the steps run in this sitting
        self.running: float | None = None
        self.started = time.monotonic()
        self.wall_before = self.state["wall_seconds"]

    def checkpoint(self) -> None:
        self.state["wall_seconds"] = self.wall_before + time.monotonic() - self.started
        run.save_checkpoint(self.run_dir / run.CHECKPOINT, self.model, self.optimizer, self.state)

    def evaluate_now(self) -> float:
        figure = evaluate(self.model, self.task)
        entry = {"step": self.state["step"], "train_loss": self.running, "held_out": figure,
                 "tokens": self.state["tokens"], "train_cpu_seconds": self.state["train_cpu_seconds"],
                 "wall_seconds": self.wall_before + time.monotonic() - self.started}
        self.state["history"].append(entry)
        if figure < self.state["best"]:
            self.state["best"], self.state["best_step"] = figure, self.state["step"]
            run.save_weights(self.model.weights(), self.run_dir / BEST)
            (self.run_dir / "best.json").write_text(json.dumps(entry, indent=2))
        sample = ""
        if self.task.sample is not None:
            self.model.eval()
            sample = f"; sample: {self.task.sample(self.model, self.state['step'])[:160]!r}"
            self.model.train()
        self.log(f"step {self.state['step']}: held-out {figure:.4f} {self.task.unit} (best {self.state['best']:.4f}){sample}")
        return figure

    def one_step(self) -> float:
        step, schedule = self.state["step"], self.schedule
        batch = self.task.batch(step, schedule)
        seed_step(schedule, step)
        wall, cpu = time.perf_counter(), time.process_time()
        loss = train_step(self.model, self.optimizer, batch, learning_rate(schedule, step, self.state.get("decay")),
                          schedule.clip)
        self.state["train_wall_seconds"] += time.perf_counter() - wall
        self.state["train_cpu_seconds"] += time.process_time() - cpu
        self.state["step"] += 1
        self.state["tokens"] += batch[:, 1:].numel()
        self.losses.append((step + 1, loss))
        self.running = loss if self.running is None else 0.95 * self.running + 0.05 * loss
        return loss

    def log_progress(self) -> None:
        s = self.state
        lr = learning_rate(self.schedule, s["step"], s.get("decay"))
        self.log(f"step {s['step']} loss {self.running:.4f} nats/token lr {lr:.2e} "
                 f"{s['tokens'] / max(s['train_wall_seconds'], 1e-9):.0f} tok/s "
                 f"({s['tokens'] / max(s['train_cpu_seconds'], 1e-9):.0f} per CPU-second)")

    def export_now(self) -> None:
        """Export the best weights so far. A failed export is logged, never fatal: training goes on."""
        if self.task.export is None or not (self.run_dir / BEST).exists():
            return
        try:
            self.task.export(self.run_dir)
        except Exception as exc:  # noqa: BLE001 - an hour of training outweighs one milestone
            self.log(f"export failed at step {self.state['step']}: {type(exc).__name__}: {exc}")

    def end_step(self) -> int:
        start, steps = decay_window(self.schedule, self.state.get("decay"))
        return min(self.schedule.max_steps, start + steps)

    def start_decay(self) -> None:
        """With a time budget: once its last `decay` part begins, decay over the steps that part should hold at this
        sitting's pace, and record that window in the state (the checkpoint carries it; resumes keep it)."""
        budget, elapsed = self.timers.minutes * 60, time.monotonic() - self.started
        if not budget or self.state.get("decay") or elapsed < (1 - self.schedule.decay) * budget or not self.losses:
            return
        steps = max(1, round(len(self.losses) / elapsed * (budget - elapsed)))
        default_start, default_steps = decay_window(self.schedule)
        if self.state["step"] < default_start and self.state["step"] + steps < default_start + default_steps:
            self.state["decay"] = {"start": self.state["step"], "steps": steps}
            self.log(f"time budget: decaying the learning rate over steps {self.state['step']}-{self.state['step'] + steps}")

    def train(self, steps: int | None = None) -> list[tuple[int, float]]:
        """Train to the schedule's end (or `steps` more); returns the (step, loss) pairs of this sitting."""
        timers, limit = self.timers, self.state["step"] + steps if steps is not None else None
        self.model.train()
        while self.state["step"] < (self.end_step() if limit is None else min(self.end_step(), limit)):
            self.start_decay()
            self.one_step()
            if self.state["step"] % timers.log_every == 0:
                self.log_progress()
            if timers.due("eval", timers.eval_minutes):
                self.evaluate_now()
            if timers.due("checkpoint", timers.checkpoint_minutes):
                self.checkpoint()
                self.log(f"checkpoint at step {self.state['step']}")
            if timers.due("export", timers.export_minutes):
                self.checkpoint()
                self.export_now()
        if self.losses:
            self.evaluate_now()
            self.checkpoint()
            self.export_now()
        self.log(f"stopped at step {self.state['step']} (the schedule ends at {self.end_step()})")
        return self.losses


# --- export ---------------------------------------------------------------------------------------------------


def export_folder(out: Path, write: Callable[[Path], None]) -> None:
    """Write a model folder beside `out` and swap it in whole: the app never sees half an export."""
    out = Path(out)
    temporary = out.with_name(out.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    try:
        write(temporary)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    run.replace_folder(temporary, out)


def shipped(folder: Path) -> RNNLanguageModel:
    """The fp16 weights just written, as the app will run them (float32 on a CPU)."""
    from studio.core import rnn

    return rnn.load(folder)


def sampling_speed(model: RNNLanguageModel, tokens: int = 300) -> float:
    """Tokens/s of step-by-step sampling at batch 1 (the app's loop adds its sampling maths on top)."""
    state, token = None, 0
    with torch.inference_mode():
        started = time.perf_counter()
        for _ in range(tokens):
            logits, state = model.step(token, state)
            token = int(logits.argmax())
    return tokens / (time.perf_counter() - started)


def training_summary(state: dict) -> dict:
    """The card's training figures."""
    return {
        "steps": state["step"],
        "tokens": state["tokens"],
        "wall_hours": state["wall_seconds"] / 3600,
        "train_cpu_hours": state["train_cpu_seconds"] / 3600,
        "tokens_per_s": state["tokens"] / max(state["train_wall_seconds"], 1e-9),
        "tokens_per_cpu_s": state["tokens"] / max(state["train_cpu_seconds"], 1e-9),
        "best_step": state["best_step"],
    }


def history_table(history: list[dict], unit: str) -> str:
    rows = "\n".join(
        f"| {h['step']:,} | {h['tokens']:,} | {h['train_cpu_seconds'] / 60:.0f} | "
        f"{h['train_loss'] if h['train_loss'] is None else format(h['train_loss'], '.3f')} | {h['held_out']:.4f} |"
        for h in history
    )
    return f"| step | tokens | CPU minutes | training loss (nats/token) | held-out {unit} |\n|---|---|---|---|---|\n{rows}"


# --- command-line flags shared by text_rnn and music_rnn -------------------------------------------------


def add_model_flags(parser, batch: int) -> None:
    """The architecture and optimiser flags (fixed by a run's first start)."""
    from studio.core import rnn

    parser.add_argument("--cell", choices=rnn.CELLS, default="lstm")
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.05)
    parser.add_argument("--batch", type=int, default=batch)


def add_run_flags(parser, max_steps: int) -> None:
    """How long a sitting runs and how often it logs, evaluates, checkpoints and exports."""
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--max-steps", type=int, default=max_steps)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=0, help="stop after this many minutes (0: at max-steps)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--eval-minutes", type=float, default=10)
    parser.add_argument("--checkpoint-minutes", type=float, default=3)
    parser.add_argument("--export-minutes", type=float, default=20)
