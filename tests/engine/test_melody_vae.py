"""The melody latent: step encoding, a tiny random VAE's maths, safe loading, and the shipped model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from studio import paths
from studio.core.catalog import UnsafeModelError
from studio.core.jobs import Job, TaskContext
from studio.core.model_cache import ModelCache
from studio.engine.music import melody as ML
from studio.engine.music.piece import MusicPiece, Note

TINY = ML.MelodyVaeConfig(embed=8, encoder_hidden=16, decoder_hidden=16, z_dim=4)


def a_tune() -> list[Note]:
    """Two bars on the grid: quarters, eighths, a dotted note, a rest, a held note across the bar line."""
    return [Note(67, 0.0, 1.0), Note(69, 1.0, 0.5), Note(71, 1.5, 0.5), Note(72, 2.0, 1.5), Note(71, 3.5, 0.5),
            Note(69, 5.0, 1.0), Note(67, 6.0, 0.25), Note(66, 6.25, 0.25), Note(67, 6.5, 1.5)]


def build_tiny_melody_vae(folder):
    import torch

    torch.manual_seed(0)
    net = ML.build_melody_vae(TINY)
    with torch.no_grad():  # larger weights than the default init: a random net then decodes varied melodies
        for parameter in net.parameters():
            parameter.mul_(3.0)
    return ML.save_melody_vae(net, folder, {"steps": 0}, half=False)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return build_tiny_melody_vae(tmp_path_factory.mktemp("models") / "tiny-melody-vae")


@pytest.fixture(scope="module")
def tiny(tiny_folder):
    return ML.load_melody_vae(tiny_folder)


# --- the representation -------------------------------------------------------------------------


def test_notes_to_steps_to_notes_is_exact_on_the_grid():
    tokens = ML.melody_tokens(a_tune())
    assert len(tokens) == ML.STEPS
    assert tokens[:4] == [2 + 67 - ML.PITCH_LOW, ML.HOLD, ML.HOLD, ML.HOLD]
    assert tokens[16:20] == [ML.REST] * 4  # beat 4 is silent
    back = ML.tokens_to_notes(tokens)
    assert [(n.pitch, n.start, n.duration) for n in back] == [(n.pitch, n.start, n.duration) for n in a_tune()]


def test_steps_are_monophonic_top_note_cut_at_the_next_onset_and_moved_into_range():
    chord_then_long = [Note(60, 0.0, 4.0), Note(64, 0.0, 4.0), Note(100, 1.0, 1.0), Note(30, 2.0, 0.5)]
    notes = ML.tokens_to_notes(ML.melody_tokens(chord_then_long))
    assert [(n.pitch, n.start, n.duration) for n in notes] == [(64, 0.0, 1.0), (76, 1.0, 1.0), (54, 2.0, 0.5)]


def test_a_hold_after_a_rest_is_silence_and_notes_past_the_window_are_dropped():
    assert ML.tokens_to_notes([ML.HOLD, ML.HOLD, 2, ML.HOLD] + [ML.REST] * 28) == [Note(ML.PITCH_LOW, 0.5, 0.5, ML.MELODY_VELOCITY)]
    late = ML.melody_tokens([Note(60, 7.75, 2.0), Note(62, 8.0, 1.0)])
    assert late[-1] == 2 + 60 - ML.PITCH_LOW and late.count(ML.REST) == 31


def test_melody_of_a_piece_takes_its_top_voice_first_two_bars():
    soprano = [Note(n.pitch, n.start, n.duration, voice=0) for n in a_tune()]
    bass = [Note(48, float(b), 1.0, voice=1) for b in range(12)]
    piece = MusicPiece(bass + soprano + [Note(80, 8.0, 1.0, voice=0)])
    assert ML.tokens_to_notes(ML.melody_of_piece(piece)) == ML.tokens_to_notes(ML.melody_tokens(a_tune()))


# --- the tiny random VAE ------------------------------------------------------------------------


def test_encode_and_decode_are_deterministic_and_shaped(tiny):
    z = ML.encode(tiny, a_tune())
    assert z.shape == (TINY.z_dim,) and z.dtype == np.float32
    np.testing.assert_array_equal(z, ML.encode(tiny, ML.melody_tokens(a_tune())))
    first, again = ML.decode(tiny, z), ML.decode(tiny, z)
    assert first == again
    assert all(ML.PITCH_LOW <= n.pitch <= ML.PITCH_HIGH and 0 <= n.start < 8 for n in first)


def test_greedy_decoding_matches_the_teacher_forced_argmax_of_its_own_output(tiny):
    import torch

    z = torch.as_tensor(np.stack([ML.prior_sample(tiny, s) for s in range(3)]))
    greedy = tiny.net.greedy(z)
    with torch.no_grad():
        again = tiny.net.decode_logits(z, greedy).argmax(-1)
    assert torch.equal(greedy, again)


@pytest.mark.parametrize("method", ["slerp", "lerp"])
def test_interpolation_ends_decode_to_the_ends(tiny, method):
    a, b = ML.prior_sample(tiny, 1), ML.prior_sample(tiny, 2)
    melodies = ML.interpolate(tiny, a, b, 6, method)
    assert len(melodies) == 6
    assert melodies[0] == ML.decode(tiny, a) and melodies[-1] == ML.decode(tiny, b)
    from_notes = ML.interpolate(tiny, a_tune(), b, 3, method)
    assert from_notes[0] == ML.decode(tiny, ML.encode(tiny, a_tune()))


def test_interpolated_latents_follow_the_chosen_path(tiny):
    a, b = ML.prior_sample(tiny, 3), ML.prior_sample(tiny, 4)
    middle_lerp = ML.interpolate_latents(a, b, 3, "lerp")[1]
    middle_slerp = ML.interpolate_latents(a, b, 3, "slerp")[1]
    np.testing.assert_allclose(middle_lerp, (a + b) / 2, rtol=1e-6)
    assert np.linalg.norm(middle_slerp) > np.linalg.norm(middle_lerp)  # the arc stays out on the shell
    with pytest.raises(Exception, match="unknown interpolation"):
        ML.interpolate_latents(a, b, 3, "cubic")


def test_prior_samples_are_seeded():
    model = ML.MelodyModel(net=None, config=TINY, folder=None)
    np.testing.assert_array_equal(ML.prior_sample(model, 7), ML.prior_sample(model, 7))
    assert not np.array_equal(ML.prior_sample(model, 7), ML.prior_sample(model, 8))


# --- loading: safetensors only ------------------------------------------------------------------


def test_saved_weights_are_safetensors_and_reload_identically(tiny_folder, tiny, tmp_path):
    assert (tiny_folder / ML.WEIGHTS_FILE).read_bytes()[8:9] == b"{"
    copy = ML.save_melody_vae(tiny.net, tmp_path / "copy", half=False)
    reloaded = ML.load_melody_vae(copy)
    z = ML.prior_sample(tiny, 5)
    assert ML.decode(reloaded, z) == ML.decode(tiny, z)
    assert json.loads((copy / "config.json").read_text())["model_type"] == ML.MODEL_TYPE


def test_a_pickle_renamed_safetensors_is_refused(tiny_folder, tmp_path):
    import shutil

    import torch

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_folder, folder)
    state = ML.load_melody_vae(tiny_folder).net.state_dict()
    torch.save(state, folder / ML.WEIGHTS_FILE)  # a zip of pickles under a safe-looking name
    with pytest.raises(UnsafeModelError, match="pickle"):
        ML.load_melody_vae(folder)


def test_a_folder_of_another_kind_is_refused_clearly(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(Exception, match="not a melody VAE"):
        ML.load_melody_vae(tmp_path)


# --- the worker task ----------------------------------------------------------------------------


def context() -> TaskContext:
    return TaskContext(report=lambda p: None, cancelled=lambda: False, models=ModelCache(), device=None)


def test_the_interpolate_task_returns_one_melody_per_step_and_their_audio(tiny_folder):
    from studio.core.tasks import find_task

    job = Job("latent.melody_interpolate", args={"model": str(tiny_folder), "a": {"seed": 1},
                                                 "b": {"notes": [[n.pitch, n.start, n.duration] for n in a_tune()]},
                                                 "steps": 5, "method": "slerp", "tempo": 120}, save=False)
    value = find_task(job.kind)(job, context()).value
    assert len(value.melodies) == 5
    assert value.beats_per_melody == 8
    expected = sorted((n.pitch, n.start + 8 * i, n.duration, i % 2) for i, m in enumerate(value.melodies) for n in m.notes)
    assert sorted((n.pitch, n.start, n.duration, n.voice) for n in value.sequence.notes) == expected
    assert all(0 <= n.start < 8 for m in value.melodies for n in m.notes)
    assert value.audio.ndim == 2 and value.audio.shape[1] == 2 and value.sample_rate == 44100
    assert len(value.audio) >= value.sequence.seconds * value.sample_rate


# --- the shipped model --------------------------------------------------------------------------

SHIPPED = paths.builtin_model_dir("melody-vae")


@pytest.mark.skipif(not (SHIPPED / ML.WEIGHTS_FILE).exists(), reason="models/melody-vae is not built")
def test_the_shipped_melody_vae_reconstructs_a_folk_like_melody_far_above_chance():
    model = ML.load_melody_vae(SHIPPED)
    size = sum(f.stat().st_size for f in SHIPPED.iterdir())
    assert size < 5e6
    # A held-out-like tune (written here, not taken from the corpus): twelve eighths, then two quarters.
    tune = [Note(p, i * 0.5 if i < 12 else 6.0 + (i - 12), 0.5 if i < 12 else 1.0)
            for i, p in enumerate([67, 67, 74, 74, 76, 76, 74, 74, 72, 72, 71, 71, 69, 67])]
    tokens = ML.melody_tokens(tune)
    back = ML.melody_tokens(ML.decode(model, ML.encode(model, tokens)))
    accuracy = np.mean(np.asarray(back) == np.asarray(tokens))
    chance = max(tokens.count(t) for t in set(tokens)) / len(tokens)  # always the commonest token
    assert accuracy > max(0.6, chance + 0.2), (accuracy, back, tokens)
