"""The one table of media: everything the app, the CLI, the worker and the library know about each medium.

A medium (image, text, music, the Latent Explorer) is one folder under studio/engine/, one panel under
studio/panels/ and one entry in MEDIA below. Code is named by "module:attribute" strings and imported when
first used, so this module imports nothing of the app's, nor Qt, nor torch: anything may read it.

Who reads what:
  app.py              label and panel (the tabs, each panel built when first shown); outputs' reads (File › Open)
  state               settings (each panel's values and defaults); generate (the Generate button's job); titles
  core/tasks.py       tasks (job kind -> engine function)
  core/catalog.py     model_types (a model folder's config.json model_type -> its ModelSource kind)
  core/recipe.py      names and output kinds (the modalities a recipe may carry)
  library/export.py   outputs: writer (by Artifact.modality) and reads (by file suffix)
  panels/gallery.py   outputs' gallery labels (the filter)
  __main__.py         cli (`python -m studio generate NAME`), settings (its flags' defaults), selftest
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Output:
    """A kind of finished output (Artifact.modality, the history's modality column) and its files."""

    kind: str
    gallery: str  # the Gallery filter that shows it; kinds with the same label share one filter
    writer: str  # "module:function(artifact, folder, stem) -> (files, thumbnail PNG bytes or None, summary)"
    reads: dict[str, str] = field(default_factory=dict)  # file suffix -> "module:function(path) -> Recipe"


@dataclass(frozen=True)
class Medium:
    name: str  # the recipe's modality, state.panels' key, its job kinds' prefix, `generate NAME`
    label: str  # the tab's title
    panel: str  # "module:Class", built as Class(state, history) the first time its tab is shown
    settings: str  # "module:Class": the frozen dataclass of the panel's values, each with its default
    tasks: dict[str, str]  # job kind -> "module:function(job, ctx) -> Result", imported at the kind's first job
    titles: dict[str, str] = field(default_factory=dict)  # job kind -> the Jobs list's words for a prompt-less job
    generate: str = ""  # the job kind of Generate (panel and CLI); "": the panel submits its own jobs
    cli: str = ""  # the help line of `python -m studio generate NAME`; "": not offered headless
    selftest: tuple[str, ...] = ()  # a quick `generate NAME …` (with --prompt) that `python -m studio selftest` runs
    outputs: tuple[Output, ...] = ()  # the kinds of output it owns (any medium's tasks may make any kind)
    model_types: dict[str, str] = field(default_factory=dict)  # config.json model_type -> the catalog's source kind


EXPORT = "studio.library.export"
LATENT_TASKS = "studio.engine.latent.tasks"

MEDIA: dict[str, Medium] = {medium.name: medium for medium in (
    Medium(
        "image", "Image", "studio.panels.image:ImagePanel", "studio.engine.image.settings:ImageSettings",
        tasks={"image.generate": "studio.engine.image.generate:generate_task",
               "image.xy_plot": "studio.engine.image.grids:xy_plot_task",
               "image.seed_travel": "studio.engine.image.travel:seed_travel_task",
               "image.prompt_travel": "studio.engine.image.travel:prompt_travel_task"},
        titles={"image.seed_travel": "seed travel", "image.prompt_travel": "prompt travel", "image.xy_plot": "X/Y plot"},
        generate="image.generate",
        cli="text to image (or image to image with --init-image)",
        selftest=("--prompt", "red heart", "--seed", "1", "--steps", "10"),
        outputs=(Output("image", "Images", f"{EXPORT}:write_image_files",
                        dict.fromkeys((".png", ".jpg", ".jpeg", ".webp"), f"{EXPORT}:read_image_recipe")),),
        model_types={"studio-gan": "gan", "studio-sketch": "sketch"},
    ),
    Medium(
        "text", "Text", "studio.panels.text:TextPanel", "studio.engine.text.settings:TextSettings",
        tasks={"text.generate": "studio.engine.text.generate:generate_task",
               "text.compare": "studio.engine.text.compare:compare_task",
               "text.loom_save": "studio.engine.text.loom:save_task"},
        titles={"text.compare": "compare families", "text.loom_save": "save the loom tree"},
        generate="text.generate",
        cli="continue a prompt with a language model; prints only the text",
        selftest=("--prompt", "The cat", "--seed", "1", "--max-new-tokens", "40"),
        outputs=(Output("text", "Text", f"{EXPORT}:write_text_files",
                        dict.fromkeys((".md", ".txt"), f"{EXPORT}:read_text_recipe")),
                 Output("loom", "Text", "studio.library.loom_files:write_loom_files",  # a tree of branches (loom)
                        {".json": "studio.library.loom_files:read_loom_recipe"})),
        model_types={"studio-markov": "markov", "studio-rnn": "rnn"},
    ),
    Medium(
        "music", "Music", "studio.panels.music:MusicPanel", "studio.engine.music.settings:MusicSettings",
        tasks={"music.generate": "studio.engine.music.generate:generate_task",
               "music.note": "studio.engine.music.audition:note_task",
               "music.compare": "studio.engine.music.compare:compare_task",
               "music.open": "studio.engine.music.midi:open_task"},
        titles={"music.note": "note preview", "music.compare": "compare families", "music.open": "open a piece"},
        generate="music.generate",
        cli="compose; writes FILE.mid and FILE.wav beside it",
        selftest=("--prompt", "folk tune in G", "--seed", "1", "--bars", "4"),
        outputs=(Output("music", "Music", f"{EXPORT}:write_music_files",  # notes: MIDI, with a WAV rendered beside it
                        dict.fromkeys((".mid", ".midi"), f"{EXPORT}:read_midi_recipe")),
                 Output("audio", "Music", f"{EXPORT}:write_audio_files",  # sampled audio (MusicGen)
                        dict.fromkeys((".wav", ".flac"), f"{EXPORT}:read_audio_recipe"))),
        model_types={"studio-markov": "markov", "studio-rnn": "rnn"},
    ),
    Medium(
        "latent", "Latent Explorer", "studio.panels.latent:LatentPanel", "studio.engine.latent.settings:LatentSettings",
        tasks={"latent.map": f"{LATENT_TASKS}:map_task", "latent.decode": f"{LATENT_TASKS}:decode_task",
               "latent.strip": f"{LATENT_TASKS}:strip_task", "latent.walk": f"{LATENT_TASKS}:walk_task",
               "latent.grid": f"{LATENT_TASKS}:grid_task", "latent.breed": f"{LATENT_TASKS}:breed_task",
               "latent.anomaly": f"{LATENT_TASKS}:anomaly_task", "latent.augment": f"{LATENT_TASKS}:augment_task",
               "latent.melody_interpolate": "studio.engine.music.melody:interpolate_task",
               "latent.gan_compare": "studio.engine.latent.gan_tasks:compare_task",
               "latent.gan_mix": "studio.engine.latent.gan_tasks:mix_task"},
        titles={"latent.map": "map of images", "latent.decode": "decode a point", "latent.strip": "interpolation strip",
                "latent.walk": "latent walk", "latent.grid": "neighbourhood grid", "latent.breed": "breeding",
                "latent.anomaly": "anomaly ranking", "latent.augment": "augmentations",
                "latent.melody_interpolate": "melody interpolation", "latent.gan_compare": "Z and W strips",
                "latent.gan_mix": "style mixing"},
        # strips and walks (image travel makes them too): a GIF, a contact sheet and an MP4
        outputs=(Output("animation", "Animations", f"{EXPORT}:write_animation_files",
                        {".gif": f"{EXPORT}:read_gif_recipe", ".mp4": f"{EXPORT}:read_mp4_recipe"}),),
    ),
    Medium(  # fine-tuning on the user's own folder: its jobs train and save adapters (LoRAs), they make no outputs
        "train", "Train", "studio.panels.train:TrainPanel", "studio.engine.train.settings:TrainSettings",
        tasks={"train.scan": "studio.training.finetune_data:scan_task", "train.run": "studio.training.finetune:train_task",
               "train.save": "studio.training.finetune_card:save_task"},
        titles={"train.scan": "read a training folder", "train.run": "train an adapter", "train.save": "save an adapter"},
    ),
)}


def register(medium: Medium) -> None:
    """Add a medium while running (a plug-in, a test); a built-in medium is an entry in MEDIA above."""
    MEDIA[medium.name] = medium


def load(target: str) -> Any:
    """What a "module:attribute" string names, imported now."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def tasks() -> dict[str, str]:
    return {kind: target for medium in MEDIA.values() for kind, target in medium.tasks.items()}


def job_titles() -> dict[str, str]:
    return {kind: title for medium in MEDIA.values() for kind, title in medium.titles.items()}


def outputs() -> dict[str, Output]:
    return {output.kind: output for medium in MEDIA.values() for output in medium.outputs}


def readers() -> dict[str, str]:
    """File suffix -> the function that reads a recipe from such a file, in the table's order."""
    return {suffix: reader for output in outputs().values() for suffix, reader in output.reads.items()}


def modalities() -> set[str]:
    """What a recipe's modality may be: a medium, or a kind of output (a travel recipe is an "animation")."""
    return set(MEDIA) | set(outputs())


def gallery_filters() -> list[tuple[str, str | tuple[str, ...]]]:
    """(label, output kind or kinds) for each Gallery filter, in the table's order."""
    kinds: dict[str, list[str]] = {}
    for output in outputs().values():
        kinds.setdefault(output.gallery, []).append(output.kind)
    return [(label, found[0] if len(found) == 1 else tuple(found)) for label, found in kinds.items()]


def model_types() -> dict[str, str]:
    return {model_type: kind for medium in MEDIA.values() for model_type, kind in medium.model_types.items()}


def settings_class(name: str) -> type:
    return load(MEDIA[name].settings)


def panel_defaults(name: str) -> dict[str, Any]:
    """A panel's values at start: its settings class's fields (tuples as lists, as JSON gives them back) without
    the ones only the engine reads (metadata {"panel": False})."""
    settings = settings_class(name)()
    return {f.name: _plain(getattr(settings, f.name)) for f in dataclasses.fields(settings)
            if f.metadata.get("panel", True)}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
