"""What every trainer shares: the run folder, the log, atomic saves, checkpoints, the learning-rate schedules.

A run folder ($STUDIO_RUNS_DIR/<model>, default runs/<model> in the repository, ignored by git) holds one
model's training: its log, its checkpoint (swapped in atomically, so a crash never leaves half a file),
its best weights. Training on a shared CPU runs for hours in several sittings, so every trainer resumes
from what is there.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from studio import paths

CHECKPOINT = "checkpoint.pt"  # {"model", "optimizer", "state"}, the text and music trainers' resume file
LOG = "train.log"


# --- the run folder and its log -------------------------------------------------------------------


def runs_root() -> Path:
    return paths.runs_root()


def run_dir(name: str, create: bool = True) -> Path:
    """The run folder of one model; created unless `create` is False (e.g. for a command-line default)."""
    path = runs_root() / name
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def log(message: str, log_file: Path | None = None) -> None:
    """A time-stamped line on stdout and, when given, appended to `log_file`."""
    line = f"{time.strftime('%H:%M:%S')} {message}"
    print(line, flush=True)
    if log_file is not None:
        with open(log_file, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def make_logger(folder: Path | None = None) -> Callable[[str], None]:
    """`log` bound to folder/train.log (creating the folder), or to stdout alone."""
    if folder is None:
        return log
    folder.mkdir(parents=True, exist_ok=True)
    return lambda message: log(message, folder / LOG)


# --- atomic saves ---------------------------------------------------------------------------------


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """`write(temporary)`, then rename over `path`: readers see the old file or the new one, never a part.

    If writing fails, the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def save_atomic(obj, path: Path) -> None:
    """torch.save, atomically."""
    import torch

    write_atomic(path, lambda temporary: torch.save(obj, temporary))


def save_weights(tensors: dict, path: Path, metadata: dict | None = None) -> None:
    """A dict of tensors as safetensors, atomically (contiguous copies, so views of shared storage save too)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().clone().contiguous() for k, v in tensors.items()}
    write_atomic(path, lambda temporary: save_file(tensors, str(temporary), metadata=metadata))


def replace_folder(temporary: Path, final: Path) -> None:
    """Move a fully written folder over `final`; the old one waits beside it as <final>.old until then."""
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(temporary, final)
    shutil.rmtree(old, ignore_errors=True)


# --- checkpoints and weights ----------------------------------------------------------------------


def save_checkpoint(path: Path, model, optimizer, state: dict) -> None:
    save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state}, path)


def read_checkpoint(path: Path) -> dict | None:
    """The saved {"model", "optimizer", "state"}, or None when there is no checkpoint yet."""
    import torch

    if not Path(path).exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def restore(saved: dict, model, optimizer) -> dict:
    """Load a checkpoint's weights and optimiser moments; returns its training state."""
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    return saved["state"]


def load_weights(model, path: Path) -> None:
    """Shipped (fp16) safetensors into a float32 model; keys the file leaves out (tied heads) stay as they are."""
    from safetensors.torch import load_file

    model.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()}, strict=False)


def save_fp16_pretrained(model, folder: Path) -> None:
    """A transformers model as fp16 safetensors + config.json, readable by everyone; the model stays float32."""
    folder.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(folder, safe_serialization=True)
    (folder / "model.safetensors").chmod(0o644)  # safetensors writes 0600; the file ships with the app
    model.float()


def folder_size(folder: Path) -> int:
    """Bytes in all files below `folder`."""
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


# --- learning rates and the optimiser step --------------------------------------------------------


def warmup(step: int, peak: float, steps: int, start: float = 0.0) -> float:
    """Linear from `start` to `peak` over `steps` steps (step 0 already takes one step's share), flat after."""
    return start + (peak - start) * min(step + 1, steps) / steps


def cosine(progress: float, peak: float, floor: float = 0.0) -> float:
    """Half a cosine from `peak` at progress 0 down to `floor` at progress 1 (and after)."""
    progress = min(1.0, progress)
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def learning_rate(step: int, peak: float, warmup_steps: int, horizon: int, floor: float = 0.0,
                  warm_from: float = 0.0) -> float:
    """Linear warm-up from `warm_from` over `warmup_steps`, then cosine decay to `floor` at step `horizon`, flat after."""
    if step < warmup_steps:
        return warmup(step, peak, warmup_steps, warm_from)
    return cosine((step - warmup_steps) / max(1, horizon - warmup_steps), peak, floor)


def exponential_learning_rate(step: int, peak: float, warmup_steps: int, decay: float, floor: float) -> float:
    """Linear warm-up, then `decay` per step down to `floor` (MusicVAE's schedule)."""
    if step < warmup_steps:
        return warmup(step, peak, warmup_steps)
    return max(floor, peak * decay ** (step - warmup_steps))


def set_learning_rate(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def optimise(optimizer, loss, clip: float | None = 1.0) -> None:
    """One optimiser step on `loss`; gradients clipped to norm `clip` (a bad batch must not undo hours of training)."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], clip)
    optimizer.step()


# --- curves ---------------------------------------------------------------------------------------


@contextmanager
def figure(path: Path, figsize: tuple[float, float], dpi: int, columns: int = 1) -> Iterator:
    """Matplotlib axes (one per column) drawn into, then saved to `path` as a PNG (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, columns, figsize=figsize, dpi=dpi)
    try:
        yield axes
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)


# --- the loop of a small resumable trainer ---------------------------------------------------------


def train_until(run, deadline: float, step: Callable[[], dict], log: Callable[[str], None], every: int = 50,
                checkpoint_every_s: float = 180.0, on_checkpoint: Callable | None = None) -> None:
    """Call `step()` (one optimiser step, returning its losses) until `deadline`. Every `every` steps the means go to
    `run.state["history"]` and the log; every few minutes, and at the end, `run.save()`. `run.state` holds "step"
    and "seconds" (training time only: `on_checkpoint`, e.g. a sample sheet, does not count)."""
    import numpy as np

    last_save = last_time = time.time()
    recent: list[dict] = []
    while time.time() < deadline:
        recent.append(step())
        run.state["step"] += 1
        now = time.time()
        run.state["seconds"] += now - last_time
        last_time = now
        if run.state["step"] % every == 0:
            means = {k: round(float(np.mean([r[k] for r in recent if r.get(k) is not None] or [0.0])), 5)
                     for k in recent[0]}
            run.state["history"].append({"step": run.state["step"], **means})
            figures = " ".join(f"{k} {v:.4f}" for k, v in means.items())
            log(f"step {run.state['step']} {figures} ({run.state['seconds'] / run.state['step']:.2f} s/step, "
                f"{run.state['seconds'] / 3600:.2f} h)")
            recent = []
        if now - last_save > checkpoint_every_s:
            run.save()
            if on_checkpoint is not None:
                on_checkpoint()
            last_save = last_time = time.time()
    run.save()


# --- the command line of a resumable trainer ------------------------------------------------------


def trainer_command(doc: str, model_name: str, commands: list[str], train: Callable, open_run: Callable):
    """`python -m studio.training.<model> train [--minutes N] [--threads N] [--run-dir DIR]` trains (and returns
    ("train", None)); any other command opens the run's checkpoint (`open_run(run_dir)`, which must `load()`) with
    torch on --threads threads and returns (command, run)."""
    import argparse

    import torch

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["train", *commands])
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long (default: never)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--run-dir", type=Path, default=run_dir(model_name, create=False))
    args = parser.parse_args()
    if args.command == "train":
        train(args.run_dir, args.minutes, args.threads)
        return "train", None
    torch.set_num_threads(args.threads)
    run = open_run(args.run_dir)
    if not run.load():
        raise SystemExit(f"no checkpoint in {args.run_dir}")
    return args.command, run
