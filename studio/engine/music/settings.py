"""The Music panel's values, each with its default: the one home of them (state, engine fallbacks and CLI flags read it).

Two kinds of model share the panel: the note models (Music GPT, the n-gram) and MusicGen (sampled audio). Each field
says which one reads it. Light on purpose, the only music module a panel may import: the standard library and core.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from studio.core import catalog
from studio.core.jobs import UserError
from studio.core.recipe import RANDOM_SEED

# The built-in note-event GPT (models/music-gpt): offline, trained here on the music21 corpus (its card).
DEFAULT_MODEL = "builtin:music-gpt"
# The params the note models read (the rest of the panel's values are MusicGen's or the recipe's own fields).
NOTE_PARAMS = ("temperature", "top_k", "top_p", "bars", "tempo", "key", "voices", "instrument", "continue_from")


@dataclass(frozen=True)
class MusicSettings:
    # The recipe's own fields (Recipe.prompt, .model, .seed), kept apart from its params.
    prompt: str = ""  # style, key, metre and tempo words ("a jig in D"); MusicGen reads all of it
    model: str = DEFAULT_MODEL
    # Where the job runs: "" = this computer's engine, else a server's name from Settings › Servers (the model picker
    # sets it with the model). Recorded in the recipe, so a remote output says where it was made.
    backend: str = ""
    seed: int = RANDOM_SEED  # -1: a new random seed each run; the seed drawn is recorded in the recipe
    # Sampling. 1.0 is the model's own distribution: the grammar already keeps each bar whole and in metre.
    temperature: float = 1.0
    top_k: int = 0  # off: top-p already trims the tail of a vocabulary of 267 events
    top_p: float = 0.95  # cuts the unlikely 5 % (the stray wrong note) and keeps the variety
    # Note models only.
    bars: int = 8  # two four-bar phrases: a folk tune's first strain
    tempo: int = 0  # beats per minute; 0: the prompt's tempo word, else the style's usual tempo
    key: str = ""  # "D minor", "G"; "": the prompt's key, else the model's choice
    voices: int = 0  # 0: the style's usual texture (a chorale four voices, a folk tune one), at most four
    instrument: str = "piano"  # the synth's timbre for the WAV, and the General MIDI program in the .mid
    continue_from: str = ""  # a MIDI file whose piece is extended by `bars`; "": compose from the start
    # Note models only: LoRA adapters trained in the Train tab, merged into the GPT: [{"path", "weight"}]; the
    # output's recipe records each with its hash (core/adapters.py).
    adapters: tuple[dict, ...] = ()
    # MusicGen only. Its released generation_config.json says guidance 3.
    guidance: float = 3.0  # classifier-free guidance: how closely the audio follows the text
    duration: float = 8.0  # seconds of audio: a first listen a CPU finishes in reasonable time


# --- MusicGen: which models are it, and how long it can write (the panel shows its own controls for it) -----------

MUSICGEN_MODEL_TYPE = "musicgen"  # transformers' model_type of MusicGen folders
MUSICGEN_ARCHITECTURE = "MusicgenForConditionalGeneration"
MAX_SECONDS = 30.0  # MusicGen was trained on 30 s clips; longer runs drift and overrun its positions

# --- what kind of model is it (cheap: no torch; a panel asks) ------------------------------------------------------


def is_musicgen_config(config: dict) -> bool:
    # Melody models are recognised too, so that loading them says plainly why they do not run here.
    return config.get("model_type") in (MUSICGEN_MODEL_TYPE, "musicgen_melody") or MUSICGEN_ARCHITECTURE in (config.get("architectures") or [])


def read_model_config(path: Path | str | None) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8")) if path else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _cached_hub_config(repo_id: str) -> dict:
    """config.json of a hub repo if the user's hub cache holds it (never touches the network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - a broken cache or odd id just means "not known to be MusicGen"
        return {}
    return read_model_config(found) if isinstance(found, str) else {}


def is_musicgen(source: catalog.ModelSource) -> bool:
    if source.kind == "hub":
        config = _cached_hub_config(source.ref)
        return is_musicgen_config(config) if config else "musicgen" in source.ref.lower()
    if source.kind in ("builtin", "transformers") and source.path is not None:
        return is_musicgen_config(read_model_config(Path(source.path) / "config.json"))
    return False


def is_musicgen_ref(ref: str) -> bool:
    """True when `ref` (what the model picker holds) names a MusicGen model. Never raises; never imports torch."""
    ref = (ref or "").strip()
    if not ref:
        return False
    try:
        return is_musicgen(catalog.resolve(ref))  # reads at most a file header: no network, no torch
    except UserError:
        return False
