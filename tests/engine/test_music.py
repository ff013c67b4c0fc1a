"""Music engine: tokenizer, prompts, sampling with a tiny random model, continuation, MIDI, training."""

from __future__ import annotations

import gzip
import json
import math
import random
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

from studio.core import catalog
from studio.core.devices import DeviceChoice
from studio.core.jobs import Cancelled, Job, Progress, TaskContext, UserError
from studio.core.recipe import Recipe
from studio.engine.music.generate import generate, generate_task
from studio.engine.music.midi import read_midi, read_recipe_from_midi, write_midi
from studio.engine.music.models import MusicNGram, load_music_model
from studio.engine.music.piece import MusicPiece, Note, continuation_bar, in_key_fraction, metre_beats, seam_shift
from studio.engine.music.prompt import parse_prompt
from studio.engine.music.tokenizer import VOCAB_FILE, MusicTokenizer


def grid_notes(seed: int, count: int = 60, metre: str = "4/4") -> list[Note]:
    """Random notes exactly on the tokenizer's grid (16ths; velocities at bucket edges)."""
    rng = random.Random(seed)
    bar = metre_beats(metre)
    notes = set()
    while len(notes) < count:
        start = rng.randrange(int(12 * bar * 4)) / 4
        notes.add(Note(rng.randrange(36, 90), start, rng.randrange(1, 24) / 4, rng.randrange(1, 8) * 16,
                         rng.randrange(4)))
    return sorted(notes, key=lambda n: (n.start, n.voice, -n.pitch))


def key_of(note: Note):
    return (note.pitch, note.start, note.duration, note.velocity, note.voice)


@pytest.mark.parametrize("metre", ["4/4", "6/8", "3/4", "12/8"])
def test_tokenizer_round_trip_keeps_every_note(metre):
    tok = MusicTokenizer()
    notes = grid_notes(len(metre), metre=metre)
    ids = tok.encode_notes(notes, metre)
    back = tok.decode_notes(ids, metre)
    assert sorted(map(key_of, back)) == sorted(map(key_of, notes))


def test_tokenizer_rounds_off_grid_notes_to_the_nearest_step_and_bucket():
    tok = MusicTokenizer()
    back = tok.decode_notes(tok.encode_notes([Note(61, 1.3, 0.7, 99, 0)], "4/4"), "4/4")
    assert back == [Note(61, 1.25, 0.75, 96, 0)]


def test_vocabulary_saves_and_loads(tmp_path):
    tok = MusicTokenizer()
    tok.save(tmp_path)
    again = MusicTokenizer.load(tmp_path)
    assert again.tokens == tok.tokens and len(again) < 512


def test_transposition_moves_pitches_and_key_tag_together():
    tok = MusicTokenizer()
    piece = MusicPiece([Note(62, 0, 1), Note(65, 1, 1)], key="D minor", style="folk")
    ids = tok.encode_piece(piece)
    table = tok.transpose_table(3)
    moved = [table[i] for i in ids]
    assert tok.tags_of(moved).key == "F minor"
    assert [n.pitch for n in tok.decode_notes(moved)] == [65, 68]


@pytest.mark.parametrize(
    "prompt, expected, ignored",
    [
        ("slow chorale in D minor", {"style": "chorale", "tonic": 2, "mode": "minor", "tempo": "slow"}, ()),
        ("lively folk reel in G", {"style": "reel", "tonic": 7, "mode": "major", "tempo": "fast"}, ()),
        ("3/4 waltz", {"style": "tune", "metre": "3/4", "tonic": None}, ()),
        ("polka", {"style": "tune", "metre": "2/4"}, ()),
        ("A jig in B flat minor", {"style": "jig", "tonic": 10, "mode": "minor", "metre": "6/8"}, ()),
        ("purple chorale", {"style": "chorale"}, ("purple",)),
        ("minor march", {"style": "march", "tonic": None, "mode": "minor"}, ()),
    ],
)
def test_parse_prompt(prompt, expected, ignored):
    tags = parse_prompt(prompt)
    for name, value in expected.items():
        assert getattr(tags, name) == value, name
    assert tags.ignored == ignored
    assert tags.understood  # something to show the user


# --- a tiny random GPT built here ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_gpt(tmp_path_factory) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    tok = MusicTokenizer()
    folder = tmp_path_factory.mktemp("tiny-music-gpt")
    config = GPT2Config(vocab_size=len(tok), n_positions=96, n_embd=32, n_layer=1, n_head=2,
                        bos_token_id=tok.bos_id, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)
    GPT2LMHeadModel(config).save_pretrained(folder, safe_serialization=True)
    tok.save(folder)
    assert (folder / "model.safetensors").exists() and not list(folder.glob("*.bin"))
    return folder


class Models:
    def __init__(self):
        self.loads = 0

    def get(self, slot, key, loader):
        self.loads += 1
        return loader()


def context(reports: list) -> TaskContext:
    return TaskContext(report=reports.append, cancelled=lambda: False, models=Models(),
                       device=DeviceChoice("cpu", "float32", "CPU"))


def recipe(model: Path, **params) -> Recipe:
    return Recipe(modality="music", prompt="lively folk reel in G major", model=str(model), seed=11,
                  params={"bars": 3, **params})


def test_fast_forward_matches_transformers(tiny_gpt):
    import torch

    model = load_music_model(str(tiny_gpt))
    assert model.fast is not None
    ids = model.tokenizer.encode_piece(MusicPiece(grid_notes(1, 30), key="C major"))[:80]
    with torch.inference_mode():
        reference = model.net(input_ids=torch.tensor([ids])).logits[0]
        cache: list = []
        first = model.fast.forward(ids[:50], cache)  # a prompt at once, then token by token
        assert torch.allclose(first, reference[49], atol=1e-4)
        for t in range(50, len(ids)):
            assert torch.allclose(model.fast.forward([ids[t]], cache), reference[t], atol=1e-4)


def test_same_seed_same_notes_and_the_recipe_is_complete(tiny_gpt):
    model = load_music_model(str(tiny_gpt))
    first = generate(model, recipe(tiny_gpt))
    again = generate(model, first.recipe)  # the returned recipe regenerates the same piece
    assert first.piece.notes and first.piece.notes == again.piece.notes
    other = generate(model, recipe(tiny_gpt).__class__(**{**recipe(tiny_gpt).__dict__, "seed": 12}))
    assert other.piece.notes != first.piece.notes
    params = first.recipe.params
    for name in ("temperature", "top_k", "top_p", "bars", "tempo", "key", "voices", "instrument", "continue_from"):
        assert name in params
    assert params["key_used"] == "G major" and first.piece.key == "G major" and params["tempo_used"] > 0
    assert not params["key"] and not params["tempo"], "left to the prompt, so a restored recipe leaves them so"
    assert first.recipe.model_hash and first.recipe.device == "cpu"
    assert first.piece.style == "reel" and first.piece.metre == "4/4"


def test_output_follows_the_token_grammar_and_the_bar_count(tiny_gpt):
    model = load_music_model(str(tiny_gpt))
    for seed in range(3):
        result = generate(model, Recipe(modality="music", prompt="jig", model=str(tiny_gpt), seed=seed,
                                          params={"bars": 4, "voices": 2, "temperature": 1.5}))
        events = result.tokens[5:]
        assert result.tokens[0] == model.tokenizer.bos_id and events[0] == model.tokenizer.bar_id
        assert events.count(model.tokenizer.bar_id) == 4
        assert MusicTokenizer().decode_notes(result.tokens) == result.piece.notes
        assert all(n.start < 4 * 3.0 for n in result.piece.notes)  # 6/8: 3 beats a bar
        assert all(n.voice < 2 for n in result.piece.notes)


def test_generate_task_reports_note_previews(tiny_gpt):
    reports: list[Progress] = []
    job = Job(kind="music.generate", recipe=recipe(tiny_gpt))
    result = generate_task(job, context(reports))
    (artifact,) = result.artifacts
    assert artifact.modality == "music" and isinstance(artifact.payload, MusicPiece)
    assert reports and all(r.total == 3 for r in reports)
    assert reports[-1].preview == artifact.payload.notes
    assert any(0 < len(r.preview) < len(artifact.payload.notes) for r in reports)  # notes arrive as they come
    assert "style: reel" in artifact.info["understood"]
    again = generate_task(Job(kind="music.generate", recipe=artifact.recipe), context([]))
    assert again.artifacts[0].payload.notes == artifact.payload.notes


def test_generate_task_stops_when_cancelled(tiny_gpt):
    ctx = context([])
    ctx.cancelled = lambda: True
    with pytest.raises(Cancelled):
        generate_task(Job(kind="music.generate", recipe=recipe(tiny_gpt)), ctx)


def test_continuation_keeps_the_prefix_notes(tiny_gpt, tmp_path):
    model = load_music_model(str(tiny_gpt))
    prefix = MusicPiece(grid_notes(3, 30), tempo_bpm=90, key="D minor", metre="4/4", programs=[0] * 4)
    prefix_bars = continuation_bar(prefix, "4/4")
    result = generate(model, recipe(tiny_gpt, bars=2), prefix=prefix)
    assert result.piece.notes[: len(prefix.notes)] == prefix.notes
    new = result.piece.notes[len(prefix.notes):]
    assert new and all(prefix_bars * 4 <= n.start < (prefix_bars + 2) * 4 for n in new)
    assert result.piece.key == "D minor" and result.piece.tempo_bpm == 90
    # The same through the worker task, from a MIDI file.
    path = write_midi(prefix, tmp_path / "prefix.mid")
    job = Job(kind="music.generate", recipe=recipe(tiny_gpt, bars=2, continue_from=str(path)))
    piece = generate_task(job, context([])).artifacts[0].payload
    assert sorted(map(key_of, piece.notes[: len(prefix.notes)])) == sorted(map(key_of, prefix.notes))


def test_a_continuation_starts_on_the_bar_after_the_last_onset():
    late_release = [Note(60, 0.0, 4.0), Note(62, 8.0, 4.02)]  # 3 bars of 4/4; the release 0.02 beats late
    assert continuation_bar(MusicPiece(late_release, 90, "C major", "4/4", [0]), "4/4") == 3
    held = [Note(60, 0.0, 2.0), Note(64, 14.0, 4.5)]  # a final note held over the bar line ties into bar 5
    assert continuation_bar(MusicPiece(held, 90, "C major", "4/4", [0]), "4/4") == 4
    # 7/8 is not a metre the model writes: the piece goes on in 4/4, so its length is counted in 4/4 bars
    seven_eight = [Note(60, 0.0, 0.5), Note(62, 6.5, 0.5)]  # two bars of 7/8 = 7 quarter notes
    assert continuation_bar(MusicPiece(seven_eight, 90, "C major", "7/8", [0]), "4/4") == 2


def test_long_generation_crops_the_context(tiny_gpt):
    model = load_music_model(str(tiny_gpt))  # context 96 tokens: forces several crops
    result = generate(model, Recipe(modality="music", prompt="chorale", model=str(tiny_gpt), seed=1,
                                      params={"bars": 12}))
    assert len(result.tokens) > 96
    assert result.tokens[5:].count(model.tokenizer.bar_id) == 12


# --- n-gram -----------------------------------------------------------------------------------------


def test_ngram_model_scores_saves_loads_and_generates(tmp_path):
    tok = MusicTokenizer()
    sequences = []
    for seed in range(20):
        piece = MusicPiece(grid_notes(seed, 40), key="C major", style="folk")
        sequences.append(tok.encode_piece(piece))
    ngram = MusicNGram(4, len(tok))
    for seq in sequences[:18]:
        ngram.add(seq)
    probs = ngram.next_distribution(sequences[0][:10])
    assert probs.shape == (len(tok),) and math.isclose(probs.sum(), 1.0, rel_tol=1e-9)
    train_loss, held_loss = ngram.mean_loss(sequences[:18]), ngram.mean_loss(sequences[18:])
    assert 0 < train_loss < held_loss < math.log(len(tok))
    # token_probabilities agrees with next_distribution
    seq = sequences[19]
    assert ngram.token_probabilities(seq)[9] == pytest.approx(ngram.next_distribution(seq[:10])[seq[10]])
    folder = tmp_path / "music-markov"
    folder.mkdir()
    ngram.save(folder)
    tok.save(folder)
    source = catalog.resolve(str(folder))
    assert source.kind == "markov"
    model = load_music_model(source)
    assert model.kind == "markov"
    assert model.net.mean_loss(sequences[18:]) == pytest.approx(held_loss)
    result = generate(model, Recipe(modality="music", prompt="folk in C", model=str(folder), seed=2,
                                      params={"bars": 2}))
    assert result.piece.notes and result.recipe.dtype == "counts"


def write_packed(ngram: MusicNGram, folder: Path, bits: int = 9) -> None:
    """The first music n-gram format: per context length k, the (k+1)-grams packed `bits` bits a token."""
    from safetensors.numpy import save_file

    vocab = ngram.vocab_size
    tensors = {}
    for k, table in enumerate(ngram.ngrams.tables):
        codes, keys = table.codes.copy(), np.zeros(len(table.codes), dtype=np.int64)
        for j in range(k + 1):  # newest token first
            keys |= (codes % vocab) << (bits * j)
            codes //= vocab
        tensors[f"keys_{k}"], tensors[f"counts_{k}"] = keys, table.counts.astype(np.int32)
    save_file(tensors, str(folder / "ngrams.safetensors"))
    config = {"model_type": "studio-markov", "order": ngram.order, "vocab_size": vocab, "discounts": ngram.discounts,
              "smoothing": ngram.smoothing, "bits": bits, "weights": "ngrams.safetensors", "vocab": VOCAB_FILE}
    (folder / "config.json").write_text(json.dumps(config))


def test_a_music_ngram_folder_in_the_first_format_still_loads_with_the_same_probabilities(tmp_path):
    tok = MusicTokenizer()
    sequences = [tok.encode_piece(MusicPiece(grid_notes(seed, 40), key="G major", style="folk")) for seed in range(8)]
    ngram = MusicNGram(4, len(tok))
    for seq in sequences[:7]:
        ngram.add(seq)
    ngram.use_kneser_ney()
    ngram.prune(2)
    folder = tmp_path / "old"
    folder.mkdir()
    write_packed(ngram, folder)
    tok.save(folder)
    old = load_music_model(str(folder))
    assert (old.net.order, old.net.smoothing, old.net.discounts) == (4, "kneser-ney", ngram.discounts)
    assert old.net.mean_loss(sequences[7:]) == pytest.approx(ngram.mean_loss(sequences[7:]), rel=1e-12)
    assert np.allclose(old.net.next_distribution(sequences[7][:12]), ngram.next_distribution(sequences[7][:12]))
    old.net.save(tmp_path / "new")  # re-saved in the core format: config.json + counts.safetensors
    config = json.loads((tmp_path / "new" / "config.json").read_text())
    assert (config["order"], config["boundary"], config["tokens"]) == (3, MusicNGram.PAD, "studio-music-remi")
    again = MusicNGram.load(tmp_path / "new")
    assert again.mean_loss(sequences[7:]) == pytest.approx(ngram.mean_loss(sequences[7:]), rel=1e-12)


def test_absolute_discounting_until_kneser_ney_is_asked_for():
    tok = MusicTokenizer()
    sequences = [tok.encode_piece(MusicPiece(grid_notes(seed, 40), key="C major")) for seed in range(6)]
    ngram = MusicNGram(3, len(tok))
    for seq in sequences[:5]:
        ngram.add(seq)
    assert ngram.smoothing == "absolute-discounting" and ngram.discounts == [0.75] * 3
    absolute = ngram.mean_loss(sequences[5:])
    ngram.use_kneser_ney()
    assert ngram.smoothing == "kneser-ney" and ngram.mean_loss(sequences[5:]) != absolute


def test_the_shipped_music_ngram_is_in_the_core_format():
    folder = Path(__file__).resolve().parents[2] / "models" / "music-markov"
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "studio-markov" and config["tokens"] == "studio-music-remi"
    assert (folder / "counts.safetensors").exists() and not (folder / "ngrams.safetensors").exists()
    model = load_music_model("builtin:music-markov")
    assert model.kind == "markov" and model.net.order == config["order"] + 1
    result = generate(model, Recipe(modality="music", prompt="jig in D", seed=1, params={"bars": 2}))
    assert result.piece.metre == "6/8" and result.piece.key == "D major" and result.piece.notes


def test_a_long_context_is_cropped_at_the_tokenizers_own_bar_token():
    from studio.engine.music.generate import _crop

    tags, events = [1, 10, 20, 30, 40], [7, 8, 9, 99, 5, 6, 99, 4]
    assert _crop(tags, events, 9, bar_id=99) == tags + [99, 4]  # room for 4: the tail from the last bar line
    assert _crop(tags, events, 9, bar_id=3) == tags + [5, 6, 99, 4]  # no bar line in reach: the plain tail
    assert _crop(tags, events, 20, bar_id=99) == tags + events


# --- keys -------------------------------------------------------------------------------------------


def test_key_estimation_finds_scales_and_is_shared_with_the_corpus_builder():
    from studio.data import music as music_data
    from studio.engine.music import piece

    a_minor = [Note(p, i, 1.0 + (p % 12 in (9, 4))) for i, p in enumerate([57, 59, 60, 62, 64, 65, 68, 69, 64, 57])]
    assert piece.estimate_key(a_minor) == (9, "minor")
    assert piece.estimate_key([Note(60 + i, i, 1.0) for i in range(12)]) == (0, "major")  # flat: no key stands out
    assert piece.estimate_key([]) == (0, "major")
    hist = piece.pitch_class_histogram((n.pitch, n.duration) for n in a_minor)
    assert piece.key_of_histogram(hist, candidates={(0, "major"), (6, "major")}) == (0, "major")  # the relative
    assert music_data.key_of_histogram is piece.key_of_histogram  # one estimator, read by the corpus builder too
    assert in_key_fraction(a_minor, "A minor") == 1.0


# --- MIDI -------------------------------------------------------------------------------------------


def test_midi_round_trip_with_recipe(tmp_path):
    piece = MusicPiece(grid_notes(5, 50), tempo_bpm=84, key="Bb major", metre="3/4", programs=[0, 19, 40, 73])
    rec = Recipe(modality="music", prompt="chorale — ünïcode", seed=3, params={"bars": 4, "tempo": 84.0})
    path = write_midi(piece, tmp_path / "piece.mid", rec.to_json())
    back = read_midi(path)
    assert sorted(map(key_of, back.notes)) == sorted(map(key_of, piece.notes))
    assert back.tempo_bpm == pytest.approx(84, abs=0.01)
    assert (back.key, back.metre, back.programs) == ("Bb major", "3/4", [0, 19, 40, 73])
    assert read_recipe_from_midi(path) == rec


def test_reading_a_broken_midi_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    with pytest.raises(UserError):
        read_midi(bad)


# --- data + training on a tiny slice ------------------------------------------------------------------


def test_one_abc_tune_parses_into_a_piece():
    from studio.data import music as music_data

    tune = "X:1\nT:Test reel\nR:reel\nM:4/4\nL:1/8\nK:Ador\n|:EAAB c2BA|GABG EDEG:|\n"
    piece = music_data.parse_abc_tune(("test/1", "oneills1850", tune))
    assert piece["style"] == "reel" and piece["metre"] == "4/4"
    assert (piece["tonic"], piece["mode"]) == (9, "minor")
    assert [n[0] for n in piece["notes"][:3]] == [64, 69, 69]


def fake_corpus(path: Path) -> None:
    from studio.data.music import is_held_out

    held = [i for i in range(400) if is_held_out(f"fake/{i}")][:4]
    with gzip.open(path, "wt") as sink:
        for i in list(range(20)) + held:
            notes = [[n.pitch, n.start, n.duration, 80, n.voice] for n in grid_notes(i, 40)]
            sink.write(json.dumps({"id": f"fake/{i}", "collection": "bach", "style": "chorale", "tonic": i % 12,
                                   "mode": "major", "metre": "4/4", "bar_length": 4.0, "tempo": None, "voices": 4,
                                   "notes": notes}) + "\n")


def test_training_runs_resumes_and_exports(tmp_path, monkeypatch):
    from studio import paths
    from studio.training import music as T
    from studio.training import music_model

    monkeypatch.setenv("STUDIO_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(music_model, "ARCH", {"n_layer": 1, "n_embd": 32, "n_head": 2})
    monkeypatch.setattr(paths, "models_dir", lambda: tmp_path / "models")
    corpus = T.run_dir() / "corpus.jsonl.gz"
    fake_corpus(corpus)
    monkeypatch.setattr(T.music_data, "default_cache_file", lambda: corpus)
    args = Namespace(steps=2, batch=1, lr=1e-3, threads=1, save_every=0.0, log_every=1, eval_pieces=4, eval_every=0.0, restart_peak=0.0, restart_steps=0,
                     no_augment=False)
    T.train(args)
    import torch

    state = torch.load(T.run_dir() / "checkpoint.pt", weights_only=True)["state"]
    assert state["step"] == 2 and all(math.isfinite(h["held_out"]) for h in state["history"])
    T.train(Namespace(**{**vars(args), "steps": 3}))  # resumes, does not restart
    state = torch.load(T.run_dir() / "checkpoint.pt", weights_only=True)["state"]
    assert state["step"] == 3 and len(state["history"]) == 3
    T.markov(Namespace(orders=[2, 3], eval_pieces=4, prune=1))
    T.export(Namespace(eval_pieces=4, samples=2))
    folder = tmp_path / "models" / "music-gpt"
    assert (folder / "model.safetensors").exists() and (folder / "MODEL_CARD.md").exists()
    assert (folder / "loss_curve.png").exists() and (folder / VOCAB_FILE).exists()
    from transformers import AutoModelForCausalLM

    net = AutoModelForCausalLM.from_pretrained(str(folder))
    assert net.config.model_type == "gpt2"
    assert catalog.resolve(str(tmp_path / "models" / "music-markov")).kind == "markov"


# --- the shipped model ----------------------------------------------------------------------------------

BUILTIN = Path(__file__).resolve().parents[2] / "models" / "music-gpt"


@pytest.mark.skipif(not (BUILTIN / "model.safetensors").exists(), reason="models/music-gpt not exported yet")
@pytest.mark.parametrize("key", ["D minor", "G major", "Eb major"])
def test_builtin_model_writes_in_the_requested_key(key):
    source = catalog.resolve("builtin:music-gpt")
    model = load_music_model(source)
    notes = []
    for seed in range(2):
        result = generate(model, Recipe(modality="music", prompt=f"folk song in {key}", model="builtin:music-gpt",
                                          seed=seed, params={"bars": 8, "key": key}))
        assert result.piece.key == key
        notes += result.piece.notes
    assert len(notes) > 20
    assert in_key_fraction(notes, key) >= 0.8


@pytest.mark.skipif(not (BUILTIN / "model.safetensors").exists(), reason="models/music-gpt not exported yet")
def test_auto_voices_let_a_chorale_have_its_four_parts():
    """The panel's "auto" (0) used to be clamped to one voice: every chorale came out as a bare melody."""
    model = load_music_model(catalog.resolve("builtin:music-gpt"))

    def voices(setting: int) -> set[int]:
        result = generate(model, Recipe(modality="music", prompt="chorale in D minor", model="builtin:music-gpt",
                                          seed=3, params={"bars": 4, "voices": setting}))
        return {n.voice for n in result.piece.notes}

    assert len(voices(0)) >= 3
    assert voices(1) == {0}


def test_a_7_8_piece_goes_on_in_4_4_from_its_own_next_bar_line(tiny_gpt):
    """The model writes 4/4 bars; they start where the piece's own next 7/8 bar would (beat 7 here), not on the
    4/4 grid, which would leave a silent gap (last onset 6.5: grid at 8) or overlap the last bar (onset 3.5: at 4)."""
    late = MusicPiece([Note(60, 0.0, 0.5), Note(62, 6.5, 0.5)], 90, "C major", "7/8", [0])
    early = MusicPiece([Note(60, 0.0, 3.5), Note(62, 3.5, 3.5)], 90, "C major", "7/8", [0])
    assert seam_shift(late, "4/4", continuation_bar(late, "4/4")) == -1.0  # 8 -> 7
    assert seam_shift(early, "4/4", continuation_bar(early, "4/4")) == 3.0  # 4 -> 7
    in_4_4 = MusicPiece([Note(60, 0.0, 1.0), Note(62, 6.5, 0.5)], 90, "C major", "4/4", [0])
    assert seam_shift(in_4_4, "4/4", continuation_bar(in_4_4, "4/4")) == 0.0
    model = load_music_model(str(tiny_gpt))
    for prefix in (late, early):
        new = generate(model, recipe(tiny_gpt, bars=2), prefix=prefix).piece.notes[len(prefix.notes):]
        assert new and all(7.0 - 1e-9 <= n.start < 7.0 + 2 * 4 for n in new)
