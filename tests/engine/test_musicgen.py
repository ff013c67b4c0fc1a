"""MusicGen backend: a tiny random MusicgenForConditionalGeneration built here, loaded through the generic path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from studio.core import catalog
from studio.core.devices import DeviceChoice
from studio.core.jobs import Cancelled, Job, Progress, TaskContext, UserError
from studio.core.recipe import Recipe
from studio.engine.music import musicgen

SAMPLE_RATE = 3200  # tiny EnCodec: 3200 Hz, hop 8 x 8 = 64 samples -> 50 frames a second, like the real models
HOP = 64
WORDS = ["calm", "piano", "drums", "lofi", "beat", "jazz", "happy", "sad", "slow", "fast"]


def build_tiny_musicgen(folder: Path, channels: int = 1) -> Path:
    """A random MusicGen (T5 text encoder + EnCodec + decoder) of ~20k weights, with a T5 tokenizer built offline."""
    import torch
    from transformers import (
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        T5Config,
        T5Tokenizer,
    )

    torch.manual_seed(0)
    text = T5Config(vocab_size=64, d_model=16, d_ff=16, d_kv=4, num_layers=1, num_heads=2)
    # codebook_size 32 = 5 bits; 0.5 kbps at 50 frames/s -> 2 quantizers, one per decoder codebook
    audio = EncodecConfig(hidden_size=16, compress=1, num_filters=4, codebook_size=32, codebook_dim=16,
                          upsampling_ratios=[8, 8], sampling_rate=SAMPLE_RATE, num_lstm_layers=1,
                          target_bandwidths=[0.5])
    decoder = MusicgenDecoderConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                    ffn_dim=16, pad_token_id=32, bos_token_id=32, decoder_start_token_id=32,
                                    num_codebooks=2 * channels, audio_channels=channels, tie_word_embeddings=False,
                                    max_position_embeddings=256)
    model = MusicgenForConditionalGeneration(MusicgenConfig(text_encoder=text, audio_encoder=audio, decoder=decoder))
    for layer in model.audio_encoder.quantizer.layers:  # EnCodec starts its codebooks at zero: every code would sound alike
        layer.codebook.embed.normal_()
    model.save_pretrained(folder, safe_serialization=True)
    # A Unigram vocabulary in T5's layout (pad, eos, unk first): no sentencepiece file, no hub.
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)] + [(f"▁{w}", -3.0) for w in WORDS]
    vocab += [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz"]
    T5Tokenizer(vocab=vocab, extra_ids=0).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_musicgen(tmp_path_factory, one_torch_thread) -> Path:
    folder = build_tiny_musicgen(tmp_path_factory.mktemp("tiny-musicgen"))
    assert (folder / "model.safetensors").exists() and not list(folder.glob("*.bin"))
    return folder


class Models:
    def __init__(self):
        self.held = {}

    def get(self, slot, key, loader):
        if self.held.get(slot, (None,))[0] != key:
            self.held[slot] = (key, loader())
        return self.held[slot][1]


MODELS = Models()  # one load per test module, as the worker's cache would do


def context(reports: list | None = None, cancelled=lambda: False) -> TaskContext:
    return TaskContext(report=(reports if reports is not None else []).append, cancelled=cancelled,
                       models=MODELS, device=DeviceChoice("cpu", "float32", "CPU"))


def recipe(model: Path | str, seed: int = 7, **params) -> Recipe:
    # The panel sends every Music value; the symbolic-only ones (bars, key, voices…) must be ignored.
    values = {"bars": 8, "key": "", "voices": 0, "instrument": "piano", "temperature": 1.0, "top_k": 20,
              "top_p": 0.9, "guidance": 3.0, "duration": 0.5, **params}
    return Recipe(modality="music", prompt="calm lofi piano beat", model=str(model), seed=seed, params=values)


def run(model, seed: int = 7, reports: list | None = None, **params):
    from studio.engine.music import generate as music

    (artifact,) = music.generate_task(Job("music.generate", recipe(model, seed, **params)), context(reports)).artifacts
    return artifact


def test_a_musicgen_folder_loads_through_the_generic_model_path(tiny_musicgen):
    source = catalog.resolve(str(tiny_musicgen))
    assert source.kind == "transformers" and musicgen.is_musicgen(source)
    assert musicgen.is_musicgen_ref(str(tiny_musicgen))
    assert not musicgen.is_musicgen_ref("builtin:music-gpt") and not musicgen.is_musicgen_ref("")
    assert musicgen.is_musicgen_ref("facebook/musicgen-small")  # not cached: known by its name
    assert not musicgen.is_musicgen_ref("openai-community/gpt2")
    model = musicgen.load_musicgen(source)
    assert (model.sampling_rate, model.frame_rate, model.channels, model.delay) == (SAMPLE_RATE, 50, 1, 1)


def test_music_generate_returns_audio_of_the_requested_duration(tiny_musicgen):
    reports: list[Progress] = []
    artifact = run(tiny_musicgen, reports=reports, duration=0.5)
    samples, rate = artifact.payload
    assert artifact.modality == "audio" and rate == SAMPLE_RATE
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - 0.5 * SAMPLE_RATE) <= HOP  # within one frame
    assert np.isfinite(samples).all() and np.abs(samples).max() > 0
    total = 25 + 1  # 25 frames + the delay pattern's one extra step
    assert [r.step for r in reports] == list(range(1, total + 1)) and all(r.total == total for r in reports)
    params = artifact.recipe.params
    assert params == {"guidance": 3.0, "temperature": 1.0, "top_k": 20, "top_p": 0.9, "duration": 0.5}
    assert artifact.recipe.model == str(tiny_musicgen) and artifact.recipe.model_hash
    assert artifact.recipe.seed == 7 and artifact.recipe.prompt == "calm lofi piano beat"
    assert artifact.info["sample_rate"] == SAMPLE_RATE


def test_same_seed_same_samples_other_seed_other_samples(tiny_musicgen):
    first = run(tiny_musicgen, seed=3)
    again = run(tiny_musicgen, seed=3)
    other = run(tiny_musicgen, seed=4)
    assert np.array_equal(first.payload[0], again.payload[0])
    assert not np.array_equal(first.payload[0], other.payload[0])
    from studio.engine.music import generate as music

    (replayed,) = music.generate_task(Job("music.generate", first.recipe), context()).artifacts
    assert np.array_equal(replayed.payload[0], first.payload[0])  # the saved recipe makes it again


def test_cancel_stops_between_tokens(tiny_musicgen):
    from studio.engine.music import generate as music

    reports: list[Progress] = []
    job = Job("music.generate", recipe(tiny_musicgen, duration=2.0))
    with pytest.raises(Cancelled):
        music.generate_task(job, context(reports, cancelled=lambda: len(reports) >= 3))
    assert len(reports) == 3  # stopped at the next token, not at the end of 101


def test_the_wav_keeps_the_recipe_and_the_gallery_gets_a_waveform(tiny_musicgen, tmp_path):
    import soundfile

    from studio.library.export import recipe_from_file, write_artifact

    artifact = run(tiny_musicgen, duration=0.3)
    files, thumbnail, summary = write_artifact(artifact, tmp_path, "tune")
    (wav,) = files
    assert wav.suffix == ".wav" and summary == "calm lofi piano beat"
    assert recipe_from_file(wav) == artifact.recipe
    samples, rate = soundfile.read(str(wav), dtype="float32")
    assert rate == SAMPLE_RATE and len(samples) == len(artifact.payload[0])
    assert thumbnail.startswith(b"\x89PNG")


def test_stereo_models_give_two_channels(tmp_path, one_torch_thread):
    folder = build_tiny_musicgen(tmp_path / "stereo", channels=2)
    model = musicgen.load_musicgen(catalog.resolve(str(folder)))
    result = musicgen.generate(model, recipe(folder, duration=0.2))
    assert model.delay == 1 and result.samples.shape == (10 * HOP, 2)


def test_a_pickle_musicgen_folder_is_refused(tiny_musicgen, tmp_path):
    import shutil

    import torch

    folder = tmp_path / "pickled"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_musicgen / name, folder / name)
    torch.save({"weight": torch.zeros(2)}, folder / "pytorch_model.bin")
    assert musicgen.is_musicgen_ref(str(folder))
    with pytest.raises(catalog.UnsafeModelError, match="safetensors"):
        run(folder)


def test_a_hub_id_loads_from_the_local_cache_offline(tiny_musicgen, tmp_path, monkeypatch):
    import shutil

    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / "models--someone--tiny-audio"
    shutil.copytree(tiny_musicgen, repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    assert musicgen.is_musicgen_ref("someone/tiny-audio")  # from the cached config.json, not the name
    artifact = run("someone/tiny-audio", duration=0.2)
    assert artifact.modality == "audio" and artifact.recipe.model == "someone/tiny-audio"
    with pytest.raises(UserError, match="not in the Hugging Face cache"):
        run("someone/missing-musicgen")  # HF_HUB_OFFLINE=1 in the tests: a clear message, no network


def test_out_of_range_settings_are_clamped():
    values = musicgen.settings({"duration": 600, "top_p": 3, "top_k": -5, "guidance": None})
    assert values == {**musicgen.DEFAULT_PARAMS, "duration": musicgen.MAX_SECONDS, "top_p": 1.0, "top_k": 0}
