"""`python -m studio` opens the app; `python -m studio generate …` runs one job headless.

Headless runs use the same engine tasks as the app's worker, write the same files with the
same embedded recipe, and add the output to the same history. Diagnostics go to stderr; for
text, stdout carries only the generated text, so it can be piped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import sys
from pathlib import Path

DEFAULT_MODELS = {"image": "builtin:emoji-ldm", "text": "builtin:text-gpt", "music": "builtin:music-gpt"}


def _at_least(minimum: int):
    """An int option checked when parsed: a bad value fails before any model loads, not after the work."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum, {minimum}")
        return value

    return parse


def _scheduler(name: str) -> str:
    from studio.engine.image.schedulers import SCHEDULERS  # names only: diffusers is not imported here

    if name not in SCHEDULERS:
        raise argparse.ArgumentTypeError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    return name


def _instrument(name: str) -> str:
    from studio.engine.music.synth import TIMBRES

    if name not in TIMBRES:
        raise argparse.ArgumentTypeError(f"unknown instrument {name!r}; choose one of {', '.join(TIMBRES)}")
    return name


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Latent Studio: image, text and music generators.")
    commands = parser.add_subparsers(dest="command")
    generate = commands.add_parser("generate", help="run one generation headless and print where the output went")
    kinds = generate.add_subparsers(dest="modality", required=True)

    image = kinds.add_parser("image", help="text to image (or image to image with --init-image)")
    _common(image, "image")
    image.add_argument("--negative-prompt", default="")
    image.add_argument("--steps", type=_at_least(1), default=20)
    image.add_argument("--guidance", type=float, default=5.0)
    image.add_argument("--width", type=_at_least(8), default=64)
    image.add_argument("--height", type=_at_least(8), default=64)
    image.add_argument("--scheduler", type=_scheduler, default="dpmpp_2m")
    image.add_argument("--batch-count", type=_at_least(1), default=1)
    image.add_argument("--variation-seed", type=int, default=0)
    image.add_argument("--variation-strength", type=float, default=0.0)
    image.add_argument("--init-image", default="")
    image.add_argument("--mask-image", default="")
    image.add_argument("--strength", type=float, default=0.75)

    text = kinds.add_parser("text", help="continue a prompt with a language model; prints only the text")
    _common(text, "text")
    text.add_argument("--max-new-tokens", type=_at_least(1), default=200)
    text.add_argument("--temperature", type=float, default=0.8)
    text.add_argument("--top-k", type=int, default=40)
    text.add_argument("--top-p", type=float, default=0.95)
    text.add_argument("--min-p", type=float, default=0.0)
    text.add_argument("--typical-p", type=float, default=1.0)
    text.add_argument("--repetition-penalty", type=float, default=1.1)
    text.add_argument("--greedy", action="store_true")
    text.add_argument("--stop", action="append", default=[], help="a stop sequence (repeatable)")

    music = kinds.add_parser("music", help="compose; writes FILE.mid and FILE.wav beside it")
    _common(music, "music")
    music.add_argument("--bars", type=_at_least(1), default=8)
    music.add_argument("--temperature", type=float, default=1.0)
    music.add_argument("--top-k", type=int, default=0)
    music.add_argument("--top-p", type=float, default=0.95)
    music.add_argument("--tempo", type=_at_least(0), default=0, help="beats per minute; 0: from the prompt")
    music.add_argument("--key", default="")
    music.add_argument("--instrument", type=_instrument, default="piano")
    music.add_argument("--continue", dest="continue_from", default="", help="a MIDI file to extend")

    commands.add_parser("install-desktop", help="add Latent Studio to the desktop's application menu")
    selftest = commands.add_parser("selftest", help="run one built-in image, text and music job headless; exit 0 if all work")
    selftest.add_argument("--out", default=None, help="folder for the outputs (default: a temporary folder)")

    convert = commands.add_parser("convert-checkpoint", help="convert a trusted pickle checkpoint to .safetensors")
    convert.add_argument("source")
    convert.add_argument("--out", default=None)
    return parser


def _common(parser: argparse.ArgumentParser, modality: str) -> None:
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--model", default=DEFAULT_MODELS[modality])
    parser.add_argument("--seed", type=int, default=None, help="default: a random seed (printed)")
    parser.add_argument("--device", default="auto", help="auto, cuda, mps or cpu")
    parser.add_argument("--out", default=None, help="also copy the output here")


NOT_PARAMS = {"command", "modality", "prompt", "negative_prompt", "model", "seed", "device", "out"}


def recipe_from_args(args: argparse.Namespace):
    import random

    from studio.core.recipe import Recipe

    params = {k: v for k, v in vars(args).items() if k not in NOT_PARAMS}
    if args.modality == "text":
        params["stop"] = list(args.stop)
    seed = args.seed if args.seed is not None else random.randint(0, 2**32 - 1)
    return Recipe(args.modality, prompt=args.prompt, negative_prompt=getattr(args, "negative_prompt", ""),
                  model=args.model, seed=seed, params=params)


def run_generate(args: argparse.Namespace) -> int:
    from studio import paths
    from studio.core.devices import pick_device
    from studio.core.jobs import Job, TaskContext, UserError
    from studio.core.model_cache import ModelCache
    from studio.core.tasks import find_task
    from studio.library.history import HistoryUnavailable, open_history

    recipe = recipe_from_args(args)

    shown = [None]

    def report(progress) -> None:
        # Token-level reports repeat a step many times: redraw the line only when it changes.
        if args.modality != "text" and (progress.step, progress.total) != shown[0]:
            shown[0] = (progress.step, progress.total)
            print(f"\rstep {progress.step}/{progress.total}", end="", file=sys.stderr, flush=True)

    try:
        history, note = open_history(paths.history_db_path(), paths.chosen_outputs_dir())  # before the work
        if note:
            print(note, file=sys.stderr)
        device = pick_device(args.device)
        if device.note:  # e.g. "CUDA was asked for but is not available": the run goes on, the user is told
            print(f"note: {device.note}", file=sys.stderr)
        context = TaskContext(report, lambda: False, ModelCache(), device)
        result = find_task(f"{args.modality}.generate")(Job(f"{args.modality}.generate", recipe), context)
        for artifact in result.artifacts:
            history.save_artifact(artifact)
        written = [_copy_out(artifact.files, args.out, index) for index, artifact in enumerate(result.artifacts)]
    except (UserError, ValueError, OSError, sqlite3.Error, HistoryUnavailable) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    if args.modality != "text":
        print(file=sys.stderr)
    for artifact, files in zip(result.artifacts, written, strict=True):
        if args.modality == "text":
            sys.stdout.write(artifact.payload)
            sys.stdout.flush()
            print(f"\nseed {artifact.recipe.seed}; saved to {', '.join(map(str, files))}", file=sys.stderr)
        else:
            print(f"seed {artifact.recipe.seed}; saved to {', '.join(map(str, files))}")
    return 0


def _copy_out(files: list[Path], out: str | None, index: int) -> list[Path]:
    """Copy the saved files to --out (FILE.png; music: FILE.mid + FILE.wav beside it)."""
    if not out:
        return files
    target = Path(out)
    if target.is_dir():  # --out FOLDER: the files go inside it, under their own names
        target = target / files[0].name if files else target
    target.parent.mkdir(parents=True, exist_ok=True)
    copied = []
    for file in files:
        stem = target.stem if index == 0 else f"{target.stem}-{index + 1}"
        # A text document is Markdown with recipe front matter; FILE.txt gets the same content.
        suffix = target.suffix if file.suffix == ".md" and target.suffix.lower() == ".txt" else file.suffix
        destination = target.with_name(stem + suffix)
        shutil.copyfile(file, destination)
        copied.append(destination)
    return copied


def run_convert(args: argparse.Namespace) -> int:
    from studio.core.catalog import convert_pickle_to_safetensors
    from studio.core.jobs import UserError

    try:
        written = convert_pickle_to_safetensors(Path(args.source), Path(args.out) if args.out else None)
    except (UserError, OSError) as exc:  # the catalog's errors (refused, empty, unwritable) are UserErrors
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(written)
    return 0


SELFTEST_JOBS = [
    ["generate", "image", "--prompt", "red heart", "--seed", "1", "--steps", "10"],
    ["generate", "text", "--prompt", "The cat", "--seed", "1", "--max-new-tokens", "40"],
    ["generate", "music", "--prompt", "folk tune in G", "--seed", "1", "--bars", "4"],
]


def run_selftest(args: argparse.Namespace) -> int:
    """What a packaged build must be able to do: every built-in generator, recipe inside the file."""
    import tempfile

    from studio.library.export import recipe_from_file

    folder = Path(args.out or tempfile.mkdtemp(prefix="studio-selftest-"))
    # its own history and outputs: a selftest must not add three pictures to the user's gallery
    os.environ["LATENT_STUDIO_HOME"] = str(folder / "home")
    failures = 0
    for job in SELFTEST_JOBS:
        target = folder / f"selftest-{job[1]}{ {'image': '.png', 'text': '.md', 'music': '.mid'}[job[1]] }"
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the ok/FAILED lines
            status = run_generate(_parser().parse_args([*job, "--out", str(target)]))
        try:
            ok = status == 0 and target.exists() and recipe_from_file(target).prompt == job[3]
        except Exception as exc:  # a selftest reports every failure, it does not stop at the first
            print(f"selftest {job[1]}: cannot read the recipe back: {exc}", file=sys.stderr)
            ok = False
        print(f"selftest {job[1]}: {'ok' if ok else 'FAILED'} -> {target}", flush=True)
        failures += not ok
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    if argv and all(Path(arg).is_file() for arg in argv):
        # "Open with Latent Studio" (the desktop entry's %F): start the app with the file's recipe loaded
        from studio.app import main as app_main

        return app_main(open_paths=[Path(arg) for arg in argv])
    args = _parser().parse_args(argv)
    if args.command == "generate":
        return run_generate(args)
    if args.command == "convert-checkpoint":
        return run_convert(args)
    if args.command == "selftest":
        return run_selftest(args)
    if args.command == "install-desktop":
        from studio.desktop import install_desktop_entry

        print(install_desktop_entry())
        return 0
    from studio.app import main as app_main

    return app_main()


if __name__ == "__main__":
    sys.exit(main())
