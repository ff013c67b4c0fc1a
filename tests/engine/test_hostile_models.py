"""Hostile model folders: nothing in a model folder ever runs, and every refusal is one clear sentence, fast.

Each folder below carries Python that creates a marker file the moment it is imported. They go through the
three doors a model comes in by: the CLI (a subprocess, stdin closed, with a timeout: transformers must never
get to ask "Do you wish to run the custom code? [y/N]"), the worker (the GUI's path: a `failed` message naming
the folder) and the engine task in-process (timed after the imports: < 1 s). The marker must never appear.
Damaged safetensors headers and empty/invalid configs take the same doors (issue 15, items 6-8).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from studio import paths
from studio.core import catalog
from studio.core.jobs import Job, JobEvent, TaskContext, UserError
from studio.core.recipe import Recipe

ROOT = Path(__file__).resolve().parents[2]
NEVER = "Latent Studio never runs code from a model folder"
TIMES: dict[str, float] = {}  # door/case -> seconds to the clear error (printed with -s)

# A module that leaves a marker when imported: if it ever runs, the test sees it.
EVIL_MODULE = """import pathlib
pathlib.Path({marker!r}).write_text("model code ran")


def __getattr__(name):  # any class the config asks for
    return type(name, (), {{}})
"""


def _evil(path: Path, marker: Path) -> None:
    path.write_text(EVIL_MODULE.format(marker=str(marker)))


def _json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def write_safetensors(path: Path, header: dict, data: bytes) -> Path:
    """A safetensors file written byte by byte, so that a header can be as wrong as a test needs."""
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _good_weights(path: Path) -> Path:
    return write_safetensors(path, {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8)


OVERFLOW = {"w": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 8]}}
REVERSED = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}


# --- text folders ----------------------------------------------------------------------------------------------


def _gpt2_folder(folder: Path) -> None:
    """The built-in text model's config and tokenizer: a folder transformers would load as far as its weights."""
    builtin = paths.builtin_model_dir("text-gpt")
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(builtin / name, folder / name)


def text_config_auto_map(folder: Path, marker: Path) -> None:
    _gpt2_folder(folder)  # a working tokenizer: what made transformers get as far as asking [y/N]
    _json(folder / "config.json", {
        "model_type": "evil-lm",
        "auto_map": {"AutoConfig": "configuration_evil.EvilConfig",
                     "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"},
    })
    _evil(folder / "configuration_evil.py", marker)
    _evil(folder / "modeling_evil.py", marker)
    _good_weights(folder / "model.safetensors")


def text_tokenizer_auto_map(folder: Path, marker: Path) -> None:
    _gpt2_folder(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["auto_map"] = {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}
    _json(folder / "tokenizer_config.json", config)
    _evil(folder / "tokenization_evil.py", marker)
    _good_weights(folder / "model.safetensors")


def text_hub_auto_map(folder: Path, marker: Path) -> None:
    _gpt2_folder(folder)
    _json(folder / "config.json", {
        "model_type": "evil-lm",
        "auto_map": {"AutoConfig": "evil-org/evil-repo--configuration_evil.EvilConfig",
                     "AutoModelForCausalLM": "evil-org/evil-repo--modeling_evil.EvilForCausalLM"},
    })
    _good_weights(folder / "model.safetensors")


def text_unknown_model_type(folder: Path, marker: Path) -> None:
    folder.mkdir(parents=True)
    _json(folder / "config.json", {"model_type": "evil-lm", "architectures": ["EvilForCausalLM"]})
    _evil(folder / "modeling_evil.py", marker)  # nothing names it: a library must not go looking for it either
    _good_weights(folder / "model.safetensors")


def text_overflowing_shape(folder: Path, marker: Path) -> None:
    _gpt2_folder(folder)
    write_safetensors(folder / "model.safetensors", OVERFLOW, b"\0" * 8)


def text_reversed_offsets(folder: Path, marker: Path) -> None:
    _gpt2_folder(folder)
    write_safetensors(folder / "model.safetensors", REVERSED, b"\0" * 8)


def text_empty_config(folder: Path, marker: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("")
    _good_weights(folder / "model.safetensors")


def text_invalid_tokenizer_config(folder: Path, marker: Path) -> None:
    _gpt2_folder(folder)
    (folder / "tokenizer_config.json").write_text('{"tokenizer_class": "PreTrainedTokenizerFast",')
    _good_weights(folder / "model.safetensors")


# --- image folders ---------------------------------------------------------------------------------------------

_SD_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.42.1",
    "feature_extractor": [None, None],
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "DDIMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def _sd_folder(folder: Path, **index_changes) -> None:
    """A diffusers folder laid out like SD (model_index.json, unet/config.json, safetensors weights)."""
    _json(folder / "model_index.json", {**_SD_INDEX, **index_changes})
    _json(folder / "unet" / "config.json", {"_class_name": "UNet2DConditionModel", "in_channels": 4})
    _good_weights(folder / "unet" / "diffusion_pytorch_model.safetensors")


def image_custom_pipeline(folder: Path, marker: Path) -> None:
    _sd_folder(folder, _class_name=["pipeline_evil", "EvilPipeline"])
    _evil(folder / "pipeline_evil.py", marker)


def image_local_component(folder: Path, marker: Path) -> None:
    _sd_folder(folder, unet=["evil_unet", "EvilUNet"])
    _evil(folder / "unet" / "evil_unet.py", marker)


def image_hub_component(folder: Path, marker: Path) -> None:
    _sd_folder(folder, unet=["evil-org/evil-unet", "EvilUNet"])


def image_encoder_auto_map(folder: Path, marker: Path) -> None:
    _sd_folder(folder)
    _json(folder / "text_encoder" / "config.json",
          {"model_type": "evil-clip", "auto_map": {"AutoModel": "modeling_evil.EvilEncoder"}})
    _evil(folder / "text_encoder" / "modeling_evil.py", marker)


def image_custom_pipeline_key(folder: Path, marker: Path) -> None:
    _sd_folder(folder, custom_pipeline="pipeline_evil")
    _evil(folder / "pipeline_evil.py", marker)


def image_unknown_class(folder: Path, marker: Path) -> None:
    _sd_folder(folder, unet=["diffusers", "EvilUNet2DConditionModel"])


def image_empty_model_index(folder: Path, marker: Path) -> None:
    _sd_folder(folder)
    (folder / "model_index.json").write_text("")


def image_overflowing_unet(folder: Path, marker: Path) -> None:
    _sd_folder(folder)
    write_safetensors(folder / "unet" / "diffusion_pytorch_model.safetensors", OVERFLOW, b"\0" * 8)


def image_reversed_single_file(folder: Path, marker: Path) -> Path:
    folder.mkdir(parents=True)
    return write_safetensors(folder / "checkpoint.safetensors", REVERSED, b"\0" * 8)


# case -> (modality, builder, what the one error line must say; the file it names, relative to the model)
CASES = {
    "text-config-auto_map": ("text", text_config_auto_map,
                             r"config\.json asks to run code shipped with the model \(auto_map\)", "config.json"),
    "text-tokenizer-auto_map": ("text", text_tokenizer_auto_map,
                                r"tokenizer_config\.json asks to run code shipped with the model \(auto_map\)",
                                "tokenizer_config.json"),
    "text-hub-auto_map": ("text", text_hub_auto_map,
                          r"config\.json asks to run code from another Hugging Face repository, evil-org/evil-repo "
                          r"\(auto_map\)", "config.json"),
    "text-unknown-model_type": ("text", text_unknown_model_type,
                                r"model_type 'evil-lm' is not an architecture transformers", "config.json"),
    "text-overflowing-shape": ("text", text_overflowing_shape,
                               r"damaged safetensors header \(tensor 'w': shape .* overflows", "model.safetensors"),
    "text-reversed-offsets": ("text", text_reversed_offsets,
                              r"damaged safetensors header \(tensor 'w' has reversed data offsets \[8, 0\]",
                              "model.safetensors"),
    "text-empty-config": ("text", text_empty_config, r"config\.json is not valid JSON \(empty file\)", "config.json"),
    "text-invalid-tokenizer-config": ("text", text_invalid_tokenizer_config,
                                      r"tokenizer_config\.json is not valid JSON \(.* at line 1, column \d+\)",
                                      "tokenizer_config.json"),
    "image-custom-pipeline": ("image", image_custom_pipeline,
                              r"model_index\.json names a custom pipeline \(pipeline_evil\.py", "model_index.json"),
    "image-local-component": ("image", image_local_component,
                              r"component 'unet' asks to run code shipped with the model \(unet/evil_unet\.py\)",
                              "model_index.json"),
    "image-hub-component": ("image", image_hub_component,
                            r"component 'unet' asks for code from the repository evil-org/evil-unet",
                            "model_index.json"),
    "image-encoder-auto_map": ("image", image_encoder_auto_map,
                               r"text_encoder/config\.json asks to run code shipped with the model \(auto_map\)",
                               "text_encoder/config.json"),
    "image-custom_pipeline-key": ("image", image_custom_pipeline_key,
                                  r"asks to run a custom pipeline's code \(custom_pipeline\)", "model_index.json"),
    "image-unknown-class": ("image", image_unknown_class,
                            r"component 'unet' is EvilUNet2DConditionModel, which is not a diffusers class",
                            "model_index.json"),
    "image-empty-model_index": ("image", image_empty_model_index,
                                r"model_index\.json is not valid JSON \(empty file\)", "model_index.json"),
    "image-overflowing-unet": ("image", image_overflowing_unet, r"damaged safetensors header \(tensor 'w'.* overflows",
                               "unet/diffusion_pytorch_model.safetensors"),
    "image-reversed-single-file": ("image", image_reversed_single_file,
                                   r"damaged safetensors header \(tensor 'w' has reversed data offsets", ""),
}
# The refusals a folder's configs alone decide: these are refused at `resolve`, before any library is imported.
CONFIG_ONLY = {"text-config-auto_map", "text-tokenizer-auto_map", "text-hub-auto_map", "text-empty-config",
               "text-invalid-tokenizer-config", "image-custom-pipeline", "image-local-component",
               "image-hub-component", "image-encoder-auto_map", "image-custom_pipeline-key",
               "image-empty-model_index", "image-reversed-single-file"}


def build(case: str, root: Path) -> tuple[str, Path, Path, str, str]:
    """(modality, model path, marker, pattern, the file the message names) for a case, built under root."""
    modality, builder, pattern, named = CASES[case]
    folder = root / case
    marker = root / f"MARKER-{case}"
    built = builder(folder, marker)
    model = built if isinstance(built, Path) else folder
    return modality, model, marker, pattern, str(folder / named) if named else str(model)


def assert_clear(message: str, pattern: str, named: str) -> None:
    import re

    assert re.search(pattern, message), message
    assert named in message, f"the message should name {named}: {message}"
    assert "Traceback" not in message and "https://" not in message and "hf.co" not in message, message
    assert "Expecting value: line 1 column 1" not in message, message


def _recipe(modality: str, model: Path) -> Recipe:
    params = {"max_new_tokens": 4} if modality == "text" else {"steps": 1, "width": 64, "height": 64}
    return Recipe(modality, prompt="a cat", model=str(model), seed=1, params=params)


@pytest.fixture(scope="module")
def imported():
    """The libraries imported once, so the timings below are of the refusals, not of the imports (which are
    seconds on a cold disk: not what "< 1 s" is about)."""
    import diffusers  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    # one sound folder of each kind through the same gate, so the classes it looks up are imported too
    catalog.check_model_folder(paths.builtin_model_dir("emoji-ldm"), "diffusers")
    catalog.check_model_folder(paths.builtin_model_dir("text-gpt"), "transformers")


# --- the doors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_cli_refuses_in_one_line_exit_2_without_reading_stdin(case, tmp_path):
    modality, model, marker, pattern, named = build(case, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_MODULES_CACHE": str(tmp_path / "hf-modules")}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "studio", "generate", modality, "--model", str(model), "--prompt", "a cat",
         "--seed", "1"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240,
    )
    seconds = time.perf_counter() - started
    TIMES[f"cli/{case}"] = seconds
    print(f"\nTIMING cli {case}: {seconds:.2f} s (whole process, imports included)")
    assert not marker.exists(), "code from the model folder ran"
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if case not in CONFIG_ONLY:  # refused after the libraries loaded: what they print on import is theirs
        lines = [line for line in lines if not line.startswith("[transformers] ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert_clear(lines[0], pattern, named)
    assert done.stdout == ""
    assert "[y/N]" not in done.stderr


def test_answering_yes_on_stdin_runs_nothing(tmp_path):
    """The prompt transformers used to show ("Do you wish to run the custom code? [y/N]"): answered "y", it ran
    the folder's Python. Now nothing asks, so nothing can be answered."""
    modality, model, marker, pattern, named = build("text-config-auto_map", tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_MODULES_CACHE": str(tmp_path / "hf-modules")}
    done = subprocess.run(
        [sys.executable, "-m", "studio", "generate", "text", "--model", str(model), "--prompt", "a cat"],
        cwd=ROOT, env=env, input="y\n" * 20, capture_output=True, text=True, timeout=240,
    )
    assert not marker.exists(), "code from the model folder ran"
    assert done.returncode == 2 and "[y/N]" not in done.stderr, done.stderr
    assert_clear(done.stderr.strip(), pattern, named)


@pytest.fixture
def worker(qtbot, tmp_path, imported):
    from PySide6.QtCore import Qt

    from studio.backends.thread import ThreadEngine as Worker
    from studio.library.history import History

    w = Worker(history=History(tmp_path / "history.sqlite3", tmp_path / "outputs"), device_override="cpu")
    w.device()  # the device (and torch) chosen before the timing starts
    w.events = []
    lock = threading.Lock()

    def record(message) -> None:  # called in the worker thread, at the moment of the event
        with lock:
            w.events.append((time.perf_counter(), message))

    w.message.connect(record, Qt.ConnectionType.DirectConnection)
    w.start()
    yield w
    w.stop()


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_worker_fails_the_job_with_a_message_naming_the_folder(case, tmp_path, qtbot, worker):
    modality, model, marker, pattern, named = build(case, tmp_path)
    job = worker.submit(Job(f"{modality}.generate", _recipe(modality, model)))
    ends = (JobEvent.FAILED, JobEvent.FINISHED, JobEvent.CANCELLED)
    qtbot.waitUntil(lambda: any(m.job_id == job.id and m.event in ends for _, m in worker.events), timeout=60000)
    started = next(t for t, m in worker.events if m.job_id == job.id and m.event == JobEvent.STARTED)
    ended, last = next((t, m) for t, m in worker.events if m.job_id == job.id and m.event in ends)
    TIMES[f"worker/{case}"] = ended - started
    print(f"\nTIMING worker {case}: {ended - started:.3f} s (job started -> failed)")
    assert not marker.exists(), "code from the model folder ran"
    assert last.event == JobEvent.FAILED, last
    assert_clear(last.error, pattern, named)
    assert str(model) in last.error
    assert ended - started < 1.0


def test_the_engine_process_fails_the_jobs_with_a_message_naming_the_folder(tmp_path, qtbot):
    """The window's default engine (its own process, studio/backends/local.py): the same refusals arrive."""
    from studio.backends.engine_process import EngineConfig
    from studio.backends.local import LocalEngine

    cases = ["text-config-auto_map", "text-overflowing-shape", "image-local-component", "image-empty-model_index"]
    built = {case: build(case, tmp_path) for case in cases}
    engine = LocalEngine(EngineConfig(device_override="cpu", threads=1, environment={
        "HF_MODULES_CACHE": str(tmp_path / "hf-modules")}))
    events: list = []
    engine.message.connect(events.append)
    engine.start()
    try:
        jobs = {case: engine.submit(Job(f"{modality}.generate", _recipe(modality, model), save=False))
                for case, (modality, model, *_rest) in built.items()}
        ends = (JobEvent.FAILED, JobEvent.FINISHED, JobEvent.CANCELLED)

        def all_ended():
            assert all(any(m.job.id == job.id and m.event in ends for m in events) for job in jobs.values())

        qtbot.waitUntil(all_ended, timeout=180000)
    finally:
        engine.stop()
    for case, (_modality, model, marker, pattern, named) in built.items():
        last = next(m for m in events if m.job.id == jobs[case].id and m.event in ends)
        assert not marker.exists(), "code from the model folder ran"
        assert last.event == JobEvent.FAILED, (case, last)
        assert_clear(last.error, pattern, named)
        assert str(model) in last.error


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_engine_task_refuses_in_under_a_second(case, tmp_path, imported):
    from studio.core.devices import pick_device
    from studio.core.model_cache import ModelCache
    from studio.core.tasks import find_task

    modality, model, marker, pattern, named = build(case, tmp_path)
    context = TaskContext(lambda progress: None, lambda: False, ModelCache(), pick_device("cpu"))
    started = time.perf_counter()
    with pytest.raises(UserError) as refused:
        find_task(f"{modality}.generate")(Job(f"{modality}.generate", _recipe(modality, model)), context)
    seconds = time.perf_counter() - started
    TIMES[f"task/{case}"] = seconds
    print(f"\nTIMING task {case}: {seconds * 1000:.1f} ms")
    assert not marker.exists(), "code from the model folder ran"
    assert_clear(str(refused.value), pattern, named)
    assert seconds < 1.0


@pytest.mark.parametrize("case", sorted(CONFIG_ONLY))
def test_a_folder_that_asks_to_run_code_is_refused_when_resolved_before_any_import(case, tmp_path):
    """What the GUI's "is this model here?" and the CLI's first step call: no torch, transformers or diffusers."""
    modality, model, marker, pattern, named = build(case, tmp_path)
    code = (
        "import sys, time\n"
        "from studio.core import catalog\n"
        "started = time.perf_counter()\n"
        "try:\n"
        f"    catalog.resolve({str(model)!r})\n"
        "except catalog.UserError as exc:\n"
        "    print(f'{time.perf_counter() - started:.4f}', exc)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'diffusers', 'safetensors') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120)
    first, modules = done.stdout.strip().splitlines()
    seconds, message = first.split(" ", 1)
    assert modules == "[]", "resolving a model must not import a library"
    assert_clear(message, pattern, named)
    assert float(seconds) < 1.0
    assert not marker.exists()


def test_the_hostile_folders_really_are_hostile(tmp_path):
    """The markers are real: asked to trust the folders' code, transformers and diffusers run it. (In a
    subprocess with its own module cache: this is the one place the test suite lets that happen.)"""
    cases = ["text-config-auto_map", "text-tokenizer-auto_map", "image-custom-pipeline", "image-local-component"]
    built = {case: build(case, tmp_path) for case in cases}
    # diffusers loads the components in turn and stops at the first that fails: let the custom one come first
    index = built["image-local-component"][1] / "model_index.json"
    _json(index, {k: (v if k in ("_class_name", "unet") or not isinstance(v, list) else [None, None])
                  for k, v in json.loads(index.read_text()).items()})
    code = f"""
import sys
from pathlib import Path
from transformers import AutoConfig, AutoTokenizer
from diffusers import DiffusionPipeline
def attempt(load):
    try:
        load()
    except BaseException:  # the evil classes are empty: loading fails after the import that matters
        pass
attempt(lambda: AutoConfig.from_pretrained({str(built["text-config-auto_map"][1])!r}, trust_remote_code=True))
attempt(lambda: AutoTokenizer.from_pretrained({str(built["text-tokenizer-auto_map"][1])!r}, trust_remote_code=True))
attempt(lambda: DiffusionPipeline.from_pretrained({str(built["image-custom-pipeline"][1])!r}, trust_remote_code=True))
attempt(lambda: DiffusionPipeline.from_pretrained({str(built["image-local-component"][1])!r}, trust_remote_code=True))
"""
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "hf-modules"), "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                   capture_output=True, text=True, timeout=240)
    ran = {case for case, (_, _, marker, _, _) in built.items() if marker.exists()}
    assert ran == set(cases)


# --- the checks themselves ---------------------------------------------------------------------------------


def test_the_builtin_models_pass_the_gate():
    for name in ("emoji-ldm", "text-gpt", "music-gpt", "melody-vae", "text-markov", "music-markov"):
        catalog.resolve(f"builtin:{name}")
        catalog.check_weights_folder(paths.builtin_model_dir(name))
    catalog.check_model_folder(paths.builtin_model_dir("text-gpt"), "transformers")
    catalog.check_model_folder(paths.builtin_model_dir("music-gpt"), "transformers")
    catalog.check_model_folder(paths.builtin_model_dir("emoji-ldm"), "diffusers")


def test_old_model_index_names_a_pipelines_module_and_a_renamed_class(tmp_path):
    """SD 1.x repos name ["stable_diffusion", "StableDiffusionSafetyChecker"] and transformers'
    CLIPFeatureExtractor: both are library classes, not custom code."""
    _sd_folder(tmp_path, safety_checker=["stable_diffusion", "StableDiffusionSafetyChecker"],
               feature_extractor=["transformers", "CLIPFeatureExtractor"])
    catalog.check_model_folder(tmp_path, "diffusers")


@pytest.mark.parametrize("header, data, pattern", [
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, None),
    ({"__metadata__": {"format": "pt"}, "a": {"dtype": "F16", "shape": [0], "data_offsets": [0, 0]},
      "b": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}}, b"\0" * 8, None),
    ({"w": {"dtype": "F4", "shape": [4], "data_offsets": [0, 2]}}, b"\0" * 2, None),
    (OVERFLOW, b"\0" * 8, r"overflows"),
    ({"w": {"dtype": "F32", "shape": [2**20, 2**20, 4], "data_offsets": [0, 8]}}, b"\0" * 8, r"span 8"),
    (REVERSED, b"\0" * 8, r"reversed data offsets"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 2**64]}}, b"\0" * 8, r"data offsets"),
    ({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, r"invalid shape"),
    ({"w": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}}, b"\0" * 8, r"invalid shape"),
    ({"w": {"dtype": "F32", "shape": [True, 2], "data_offsets": [0, 8]}}, b"\0" * 8, r"invalid shape"),
    ({"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, r"unknown dtype 'Q4'"),
    ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, r"12 bytes, but its data offsets"),
    ({"w": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, b"\0" * 2, r"1\.5 bytes"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12, r"'b'.*overlaps"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, b"\0" * 16, r"gap of 8 bytes"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 12, r"4 bytes after the last tensor"),
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, r"truncated"),
    ({"__metadata__": {"steps": 1000}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8,
     r"__metadata__ must map names to strings"),
    ({"__metadata__": ["x"]}, b"", r"__metadata__"),
    ([1, 2], b"", r"not a safetensors file"),
])
def test_a_safetensors_header_is_checked_as_the_format_defines_it(tmp_path, header, data, pattern):
    from safetensors import SafetensorError, safe_open

    def library_reads(file: Path) -> list[str]:
        with safe_open(str(file), framework="np") as handle:  # the library's own header check
            return list(handle.keys())

    path = write_safetensors(tmp_path / "model.safetensors", header, data)
    if pattern is None:
        catalog.check_weights_file(path)
        library_reads(path)  # the library agrees
        return
    with pytest.raises(catalog.CorruptModelError, match=pattern) as refused:
        catalog.check_weights_file(path)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(SafetensorError):  # the library refuses it too
        library_reads(path)


def test_a_header_length_past_the_end_or_the_limit_is_clear(tmp_path):
    short = tmp_path / "short.safetensors"
    short.write_bytes(struct.pack("<Q", 1000) + b'{"w": 1}')
    with pytest.raises(catalog.CorruptModelError, match="short.safetensors.*header cut short"):
        catalog.check_weights_file(short)
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(catalog.CorruptModelError, match="huge.safetensors"):
        catalog.check_weights_file(huge)


@pytest.mark.parametrize("text, says", [
    ("", "is not valid JSON (empty file)"),
    ("  \n", "is not valid JSON (empty file)"),
    ('{"model_type": "gpt2",', "is not valid JSON (Expecting property name enclosed in double quotes at line 1"),
    ("[1, 2]", "is not a JSON object (it holds a list)"),
    ("null", "is not a JSON object (it holds null)"),
    ("\udcff", "is not valid JSON (not UTF-8 text)"),
    ("[" * 100_000, "is not valid JSON"),
])
def test_an_empty_or_invalid_config_says_so_in_words(tmp_path, text, says):
    folder = tmp_path / "model"
    folder.mkdir()
    config = folder / "config.json"
    config.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(catalog.CorruptModelError) as refused:
        catalog.resolve(str(folder))
    assert str(refused.value).startswith(f"{config} {says}"), str(refused.value)


def test_a_hub_auto_map_in_a_list_or_a_tokenizer_is_refused_without_a_url(tmp_path):
    folder = tmp_path / "model"
    _json(folder / "config.json", {"model_type": "gpt2"})
    _json(folder / "tokenizer_config.json",
          {"auto_map": {"AutoTokenizer": ["evil-org/evil--tok.EvilTok", "evil-org/evil--tok.EvilTokFast"]}})
    with pytest.raises(catalog.UnsafeModelError, match="evil-org/evil") as refused:
        catalog.resolve(str(folder))
    assert "http" not in str(refused.value) and "auto_map" in str(refused.value)


def test_a_cached_hub_repo_that_asks_to_run_code_is_refused_before_transformers(tmp_path, monkeypatch, imported):
    """A hub id is one more door: the cached snapshot is checked like a local folder."""
    from huggingface_hub import constants

    from studio.core.devices import pick_device
    from studio.core.model_cache import ModelCache
    from studio.core.tasks import find_task

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--evil-org--evil-lm"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    marker = tmp_path / "MARKER-hub"
    text_config_auto_map(repo / "snapshots" / commit, marker)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    context = TaskContext(lambda progress: None, lambda: False, ModelCache(), pick_device("cpu"))
    started = time.perf_counter()
    with pytest.raises(catalog.UnsafeModelError) as refused:
        find_task("text.generate")(Job("text.generate", _recipe("text", "evil-org/evil-lm")), context)
    seconds = time.perf_counter() - started
    print(f"\nTIMING task hub evil-org/evil-lm: {seconds * 1000:.1f} ms")
    assert_clear(str(refused.value), r"config\.json asks to run code shipped with the model \(auto_map\)",
                 "models--evil-org--evil-lm")
    assert not marker.exists() and seconds < 1.0


def test_a_single_files_config_folder_that_asks_to_run_code_is_refused(tmp_path, imported):
    """A single-file checkpoint takes its component classes from a config folder (`config` in the recipe)."""
    from studio.core.devices import pick_device
    from studio.core.model_cache import ModelCache
    from studio.core.tasks import find_task

    checkpoint = write_safetensors(tmp_path / "sd1.safetensors", {"model.diffusion_model.input_blocks.0.0.weight": {
        "dtype": "F32", "shape": [1, 4, 1, 1], "data_offsets": [0, 16]}}, b"\0" * 16)
    marker = tmp_path / "MARKER-config"
    image_local_component(tmp_path / "config", marker)
    recipe = Recipe("image", prompt="a cat", model=str(checkpoint), seed=1,
                    params={"steps": 1, "width": 64, "height": 64, "config": str(tmp_path / "config")})
    context = TaskContext(lambda progress: None, lambda: False, ModelCache(), pick_device("cpu"))
    with pytest.raises(catalog.UnsafeModelError) as refused:
        find_task("image.generate")(Job("image.generate", recipe), context)
    assert_clear(str(refused.value), r"component 'unet' asks to run code shipped with the model",
                 str(tmp_path / "config" / "model_index.json"))
    assert not marker.exists()
