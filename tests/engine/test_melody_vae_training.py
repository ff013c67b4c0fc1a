"""The melody VAE's trainer on a made-up corpus of a few dozen tunes: windows, a resumable run, an export."""

from __future__ import annotations

import gzip
import json
import random
from argparse import Namespace

import pytest

torch = pytest.importorskip("torch")

from studio import paths  # noqa: E402
from studio.data import music as music_data  # noqa: E402
from studio.engine.music import melody as ML  # noqa: E402
from studio.training import melody_vae  # noqa: E402


def write_corpus(path, pieces: int = 30) -> None:
    """Tunes of eight 4/4 bars in quarters and eighths between C4 and C5, in voice 0 (the melody line)."""
    ids = [f"tune/{i}" for i in range(400)]
    held = [i for i in ids if music_data.is_held_out(i)][:3]
    with gzip.open(path, "wt") as sink:
        for piece_id in [f"tune/{i}" for i in range(pieces)] + held:
            rng, notes, beat = random.Random(piece_id), [], 0.0
            while beat < 32:
                duration = rng.choice([0.5, 1.0, 1.0, 2.0])
                notes.append([rng.randrange(60, 73), beat, duration, 80, 0])
                beat += duration
            sink.write(json.dumps({"id": piece_id, "collection": "folk", "style": "folk", "tonic": 0, "mode": "major",
                                   "metre": "4/4", "bar_length": 4.0, "tempo": None, "voices": 1,
                                   "notes": notes}) + "\n")


def test_melody_vae_trains_resumes_and_exports(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(paths, "models_dir", lambda: tmp_path / "models")
    corpus = tmp_path / "corpus.jsonl.gz"
    write_corpus(corpus)
    monkeypatch.setattr(music_data, "default_cache_file", lambda: corpus)

    args = Namespace(minutes=0.01, batch=4, lr=2e-3, hidden=16, z_dim=4, free_nats=8.0, word_dropout=0.25, threads=1,
                     save_every=0.0, log_every=1, eval_melodies=8)
    melody_vae.train(args)
    stats = json.loads((melody_vae.run_dir() / "windows_stats.json").read_text())
    assert stats["windows"] > 30 and stats["held_out_windows"] > 0
    state = torch.load(melody_vae.run_dir() / "checkpoint.pt", weights_only=True)["state"]
    assert state["step"] >= 1 and state["history"][-1]["step"] == state["step"]
    melody_vae.train(args)  # resumes: more steps on top, one history
    again = torch.load(melody_vae.run_dir() / "checkpoint.pt", weights_only=True)["state"]
    assert again["step"] > state["step"] and again["history"][: len(state["history"])] == state["history"]
    with pytest.raises(SystemExit, match="pass the same sizes"):
        melody_vae.train(Namespace(**{**vars(args), "hidden": 8}))

    melody_vae.export(Namespace(eval_melodies=8, threads=1))
    folder = tmp_path / "models" / "melody-vae"
    assert {"MODEL_CARD.md", "config.json", "model.safetensors", "training_curve.png"} <= {
        p.name for p in folder.iterdir()
    }
    assert ML.load_melody_vae(folder).net.config.z_dim == 4  # loads as the app loads it
    training = json.loads((folder / "config.json").read_text())["training"]
    assert training["steps"] == again["step"] and training["held_out"]["melodies"] > 0
