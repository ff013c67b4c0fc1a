"""`python -m studio` opens the app; `python -m studio generate …` runs one job headless.

Headless runs use the same engine tasks as the app's worker, write the same files with the
same embedded recipe, and add the output to the same history. Diagnostics go to stderr; for
text, stdout carries only the generated text, so it can be piped.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sqlite3
import sys
from pathlib import Path


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
    from studio.engine.image.settings import SCHEDULERS  # names only: diffusers is not imported here

    if name not in SCHEDULERS:
        raise argparse.ArgumentTypeError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    return name


def _instrument(name: str) -> str:
    from studio.engine.music.synth import TIMBRES

    if name not in TIMBRES:
        raise argparse.ArgumentTypeError(f"unknown instrument {name!r}; choose one of {', '.join(TIMBRES)}")
    return name


def _parser() -> argparse.ArgumentParser:
    from studio import media

    parser = argparse.ArgumentParser(prog="studio", description="Latent Studio: image, text and music generators.")
    commands = parser.add_subparsers(dest="command")
    generate = commands.add_parser("generate", help="run one generation headless and print where the output went")
    kinds = generate.add_subparsers(dest="modality", required=True)
    for medium in media.MEDIA.values():  # every medium that offers a headless run (studio/media.py)
        if medium.cli:
            defaults = media.settings_class(medium.name)()
            kind = kinds.add_parser(medium.name, help=medium.cli)
            _common(kind, defaults)
            FLAGS.get(medium.name, _settings_flags)(kind, defaults)

    commands.add_parser("install-desktop", help="add Latent Studio to the desktop's application menu")
    selftest = commands.add_parser("selftest", help="run one built-in image, text and music job headless; exit 0 if all work")
    selftest.add_argument("--out", default=None, help="folder for the outputs (default: a temporary folder)")

    convert = commands.add_parser("convert-checkpoint", help="convert a trusted pickle checkpoint to .safetensors")
    convert.add_argument("source")
    convert.add_argument("--out", default=None)
    return parser


def _common(parser: argparse.ArgumentParser, defaults) -> None:
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--model", default=getattr(defaults, "model", ""))
    parser.add_argument("--seed", type=int, default=None, help="default: a random seed (printed)")
    parser.add_argument("--device", default="auto", help="auto, cuda, mps or cpu")
    parser.add_argument("--out", default=None, help="also copy the output here")


# Each flag's default is the panel's (the medium's settings class), so a headless run makes what Generate makes.


def _image_flags(image: argparse.ArgumentParser, defaults) -> None:
    image.add_argument("--negative-prompt", default=defaults.negative_prompt)
    image.add_argument("--steps", type=_at_least(1), default=defaults.steps)
    image.add_argument("--guidance", type=float, default=defaults.guidance)
    image.add_argument("--width", type=_at_least(8), default=defaults.width)
    image.add_argument("--height", type=_at_least(8), default=defaults.height)
    image.add_argument("--scheduler", type=_scheduler, default=defaults.scheduler)
    image.add_argument("--batch-count", type=_at_least(1), default=defaults.batch_count)
    image.add_argument("--variation-seed", type=int, default=defaults.variation_seed)
    image.add_argument("--variation-strength", type=float, default=defaults.variation_strength)
    image.add_argument("--init-image", default=defaults.init_image)
    image.add_argument("--mask-image", default=defaults.mask_image)
    image.add_argument("--strength", type=float, default=defaults.strength)
    image.add_argument("--mode", choices=("txt2img", "img2img", "inpaint", "translate"), default=defaults.mode,
                       help="with --init-image/--mask-image and no --mode: image-to-image/inpaint; translate: "
                            "--init-image is a sketch (the built-in sketch model turns it into a picture)")
    image.add_argument("--truncation", type=float, default=defaults.truncation, help="GAN models: StyleGAN's psi")


def _text_flags(text: argparse.ArgumentParser, defaults) -> None:
    text.add_argument("--max-new-tokens", type=_at_least(1), default=defaults.max_new_tokens)
    text.add_argument("--temperature", type=float, default=defaults.temperature)
    text.add_argument("--top-k", type=int, default=defaults.top_k)
    text.add_argument("--top-p", type=float, default=defaults.top_p)
    text.add_argument("--min-p", type=float, default=defaults.min_p)
    text.add_argument("--typical-p", type=float, default=defaults.typical_p)
    text.add_argument("--repetition-penalty", type=float, default=defaults.repetition_penalty)
    text.add_argument("--greedy", action="store_true", default=defaults.greedy)
    text.add_argument("--stop", action="append", default=list(defaults.stop), help="a stop sequence (repeatable)")
    text.add_argument("--runtime", choices=("auto", "llama.cpp", "transformers"), default=defaults.runtime,
                      help="auto: llama.cpp for GGUF files and the built-in when installed")
    text.add_argument("--draw", choices=("cdf", "multinomial"), default=defaults.draw, help=argparse.SUPPRESS)


def _music_flags(music: argparse.ArgumentParser, defaults) -> None:
    music.add_argument("--bars", type=_at_least(1), default=defaults.bars)
    music.add_argument("--temperature", type=float, default=defaults.temperature)
    music.add_argument("--top-k", type=int, default=defaults.top_k)
    music.add_argument("--top-p", type=float, default=defaults.top_p)
    music.add_argument("--tempo", type=_at_least(0), default=defaults.tempo, help="beats per minute; 0: from the prompt")
    music.add_argument("--key", default=defaults.key)
    music.add_argument("--instrument", type=_instrument, default=defaults.instrument)
    music.add_argument("--continue", dest="continue_from", default=defaults.continue_from, help="a MIDI file to extend")


def _settings_flags(parser: argparse.ArgumentParser, defaults) -> None:
    """A medium without its own list: one flag per panel value of a plain type (--name-with-dashes), its default."""
    for f in dataclasses.fields(defaults):
        value = getattr(defaults, f.name)
        if f.name in ("prompt", "model", "seed") or not f.metadata.get("panel", True) or type(value) not in FLAG_TYPES:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        else:
            parser.add_argument(flag, type=type(value), default=value)


# The built-in media's flags: the documented ones, with their checks. Any other medium gets _settings_flags.
FLAGS = {"image": _image_flags, "text": _text_flags, "music": _music_flags}
FLAG_TYPES = (bool, int, float, str)


NOT_PARAMS = {"command", "modality", "prompt", "negative_prompt", "model", "seed", "device", "out"}


def recipe_from_args(args: argparse.Namespace):
    import random

    from studio.core.recipe import MAX_SEED, Recipe

    params = {k: v for k, v in vars(args).items() if k not in NOT_PARAMS}
    if params.get("mode") == "txt2img" and (params.get("init_image") or params.get("mask_image")):
        del params["mode"]  # the default mode with an input picture: the engine tells img2img/inpaint from the files
    if args.modality == "text":
        params["stop"] = list(args.stop)
    seed = args.seed if args.seed is not None else random.randint(0, MAX_SEED)
    return Recipe(args.modality, prompt=args.prompt, negative_prompt=getattr(args, "negative_prompt", ""),
                  model=args.model, seed=seed, params=params)


def run_generate(args: argparse.Namespace) -> int:
    """One job in this process, run by the engine's own JobRunner (backends/runner.py): each output is saved —
    file, then history row — the moment the task hands it over and printed then ("seed N; saved to FILE"), so a
    kill later in a batch loses nothing finished. The start recovers what an earlier kill left (library/recover.py)."""
    from studio import media
    from studio.core.jobs import Job, JobEvent, UserError
    from studio.library.history import HistoryUnavailable

    recipe = recipe_from_args(args)
    shown = [None]

    def fail(text: str) -> int:
        # one line; after a progress line ("step 3/20", no newline yet) it starts on a line of its own
        print(("\n" if shown[0] else "") + f"error: {text}", file=sys.stderr)
        return 2

    try:
        runner = _cli_runner(args, recipe)
    except (UserError, ValueError, OSError, sqlite3.Error, HistoryUnavailable) as exc:
        return fail(str(exc))
    announced: list = []
    ended: list = []

    def announce(artifact) -> None:
        files = _copy_out(artifact.files, args.out, len(announced))
        announced.append(artifact)
        if args.modality == "text":
            sys.stdout.write(artifact.payload)
            sys.stdout.flush()
            print(f"\nseed {artifact.recipe.seed}; saved to {', '.join(map(str, files))}", file=sys.stderr)
        else:
            if shown[0]:
                print(file=sys.stderr, flush=True)  # end the "step i/n" line
                shown[0] = None
            print(f"seed {artifact.recipe.seed}; saved to {', '.join(map(str, files))}", flush=True)

    def emit(message) -> None:
        if message.event == JobEvent.PROGRESS and message.progress is not None:
            _draw_progress(args, message.progress, shown)
        elif message.event == JobEvent.OUTPUT:
            for artifact in message.result.artifacts:
                announce(artifact)
        elif message.event in (JobEvent.FINISHED, JobEvent.FAILED, JobEvent.CANCELLED):
            ended.append(message)

    kind = media.MEDIA[args.modality].generate
    runner.run(Job(kind, recipe), emit, lambda: False)
    end = ended[-1]
    if end.event != JobEvent.FINISHED:
        return fail(end.error or end.event.value)
    try:
        for artifact in end.result.artifacts:  # tasks that return their outputs at the end (saved by the runner)
            if all(artifact is not seen for seen in announced):
                announce(artifact)
    except OSError as exc:  # --out could not be written
        return fail(str(exc))
    if args.modality != "text" and shown[0]:
        print(file=sys.stderr)
    return 0


def _draw_progress(args: argparse.Namespace, progress, shown: list) -> None:
    # Token-level reports repeat a step many times: redraw the line only when it changes.
    # A report without a total ("Loading the model…") has no step to show.
    if args.modality != "text" and progress.total and (progress.step, progress.total) != shown[0]:
        shown[0] = (progress.step, progress.total)
        print(f"\rstep {progress.step}/{progress.total}", end="", file=sys.stderr, flush=True)


def _cli_runner(args: argparse.Namespace, recipe):
    """Checks before the work, then the engine's JobRunner for this process, its history recovered."""
    from studio import paths
    from studio.backends.runner import JobRunner
    from studio.core import catalog
    from studio.library.history import open_history

    # A model that cannot be used (a folder whose configs ask to run code, a damaged safetensors header, …)
    # is refused here, in milliseconds, before torch is imported. The task checks it again: it is cheap.
    source = catalog.resolve(recipe.model)
    if source.path is not None and Path(source.path).is_dir():
        catalog.check_model_folder(source.path)
    history, note = open_history(paths.history_db_path(), paths.chosen_outputs_dir())  # before the work
    if note:
        print(note, file=sys.stderr)
    history.recover()  # outputs a kill left without a row are adopted; its temp files removed
    history.check_writable()  # an unwritable or full output folder fails now, not after the work
    _log_to_file(paths)
    runner = JobRunner(history, args.device)
    device = runner.device()
    if device.note:  # e.g. "CUDA was asked for but is not available": the run goes on, the user is told
        print(f"note: {device.note}", file=sys.stderr)
    return runner


def _log_to_file(paths) -> None:
    """The CLI's log (an unexpected error's traceback) goes to the app's log file, not over the one-line error."""
    import logging
    import logging.handlers

    root = logging.getLogger()
    try:
        handler = logging.handlers.RotatingFileHandler(paths.logs_dir() / "latent-studio.log", maxBytes=1_000_000,
                                                       backupCount=5, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    except OSError:
        handler = logging.NullHandler()
    root.addHandler(handler)


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


def selftest_jobs() -> list[list[str]]:
    """A quick `generate` run for each medium that names one in studio/media.py (with its --prompt)."""
    from studio import media

    return [["generate", m.name, *m.selftest] for m in media.MEDIA.values() if m.cli and m.selftest]


def run_selftest(args: argparse.Namespace) -> int:
    """What a packaged build must be able to do: every built-in generator, run through the engine process as the
    window runs it, each output saved with its recipe inside the file."""
    import tempfile

    from studio.library.export import recipe_from_file

    folder = Path(args.out or tempfile.mkdtemp(prefix="studio-selftest-"))
    # its own history and outputs: a selftest must not add three pictures to the user's gallery
    os.environ["LATENT_STUDIO_HOME"] = str(folder / "home")
    failures = 0
    for name, prompt, outcome in _selftest_in_engine(folder):
        ok = False
        if isinstance(outcome, str):
            print(f"selftest {name}: {outcome}", file=sys.stderr)
            target = None
        else:
            target = outcome.files[0] if outcome.files else None
            try:
                ok = target is not None and target.exists() and recipe_from_file(target).prompt == prompt
            except Exception as exc:  # a selftest reports every failure, it does not stop at the first
                print(f"selftest {name}: cannot read the recipe back: {exc}", file=sys.stderr)
        print(f"selftest {name}: {'ok' if ok else 'FAILED'} -> {target}", flush=True)
        failures += not ok
    return 1 if failures else 0


def _selftest_in_engine(folder: Path):
    """(medium, prompt, the first Artifact or an error text) for each selftest job, run by a LocalEngine."""
    import time

    from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer

    from studio import media
    from studio.backends.engine_process import EngineConfig
    from studio.backends.local import LocalEngine
    from studio.core.jobs import Job, JobEvent

    app = QCoreApplication.instance() or QCoreApplication([])
    engine = LocalEngine(EngineConfig(history_db=str(folder / "home" / "history.sqlite3"), outputs_dir=str(folder)))
    ended: dict[int, object] = {}
    loop = QEventLoop()

    def on_message(message) -> None:
        if message.event in (JobEvent.FINISHED, JobEvent.FAILED, JobEvent.CANCELLED):
            ended[message.job.id] = message
            loop.quit()

    engine.message.connect(on_message)
    engine.start()
    try:
        for argv in selftest_jobs():
            parsed = _parser().parse_args(argv)
            job = engine.submit(Job(media.MEDIA[parsed.modality].generate, recipe_from_args(parsed)))
            deadline = time.monotonic() + 600  # a bound: a job that never ends is a failure, not a hang
            while job.id not in ended and time.monotonic() < deadline:
                QTimer.singleShot(1000, loop.quit)
                loop.exec()
            message = ended.get(job.id)
            if message is None or message.event != JobEvent.FINISHED or not message.result.artifacts:
                error = "no answer within 10 minutes" if message is None else (message.error or message.event.value)
                yield parsed.modality, parsed.prompt, error
            else:
                yield parsed.modality, parsed.prompt, message.result.artifacts[0]
    finally:
        engine.stop()
        app.processEvents()


def main(argv: list[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # in a PyInstaller bundle the engine process starts through this executable
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
