"""A LoRA on the music GPT (note-event tokens with style/key/metre/tempo tags) from a folder of pieces.

The data path is the built-in's: the pieces read by the Data step (finetune_data.read_pieces: music21, the corpus
builder's key estimation) are tokenized by music_tokens.build_tokens with the style tag the Captions step chose, and
trained on as the built-in was: packed windows from random bars, transposed (music_tokens.TokenData.batch).
Checkpoints are scored by held-out loss (music_model.held_out_loss) on about a tenth of the pieces; the samples are
composed by the app's own generator (engine/music/generate.py) from the adapted weights.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np

from studio.core import catalog
from studio.core.jobs import UserError
from studio.training.finetune_data import check_styles, read_pieces
from studio.training.music_model import held_out_loss
from studio.training.music_tokens import CONTEXT, TokenData, build_tokens

HELD_OUT_PERCENT = 10
TARGETS = ["c_attn", "c_proj", "c_fc"]  # GPT-2's attention and MLP projections (transformers' Conv1D layers)
SAMPLE_BARS = 8
SAMPLE_COUNT = 3


def lora_config(rank: int, base_path: str = ""):
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=rank, target_modules=TARGETS, fan_in_fan_out=True, lora_dropout=0.0,
                      bias="none", task_type="CAUSAL_LM", base_model_name_or_path=base_path or None)


def held_out_ids(ids: list[str]) -> set[str]:
    """A tenth of the pieces by a hash of their id; at least one when there are three or more."""
    def bucket(piece_id: str) -> int:
        return int.from_bytes(hashlib.sha256(piece_id.encode()).digest()[:4], "little") % 100

    held = {i for i in ids if bucket(i) < HELD_OUT_PERCENT}
    if not held and len(ids) >= 3:
        held = {min(ids, key=bucket)}
    return held


def user_pieces(folder: Path, items: list[dict]) -> list[dict]:
    """The items' pieces, read as the scan read them, each tagged with the style its row says."""
    check_styles(items)
    wanted = {item["id"]: item for item in items}
    pieces = []
    for rel in dict.fromkeys(item["file"] for item in items):
        found, _reasons = read_pieces(folder / rel, rel)
        for piece in found:
            if piece["id"] in wanted:
                pieces.append({**piece, "style": wanted[piece["id"]]["tags"].get("style", "tune")})
    if not pieces:
        raise UserError("none of the pieces chosen in step 1 could be read again: read the folder once more")
    return pieces


class MusicTrainer:
    medium = "music"
    score_name = "held-out loss (nats/token)"

    def __init__(self, record: dict, run_dir: Path, device: str) -> None:
        self.record, self.run_dir, self.device = record, Path(run_dir), "cpu"  # tiny models: the CPU is faster
        self.settings = record["settings"]

    def prepare(self, report=None, cancelled=None) -> None:
        import torch
        from peft import get_peft_model
        from transformers import AutoModelForCausalLM

        source = catalog.resolve(self.record["base_model"])
        if source.kind not in ("builtin", "transformers") or not (Path(source.path) / "music_vocab.json").exists():
            raise UserError(f"{source.name} is not a music GPT (a transformers folder with music_vocab.json)")
        catalog.check_model_folder(source.path, "transformers")
        self.base_folder = Path(source.path)
        base = AutoModelForCausalLM.from_pretrained(str(source.path), dtype=torch.float32, local_files_only=True,
                                                    trust_remote_code=False)
        if int(base.config.n_positions) < CONTEXT:
            raise UserError(f"{source.name} reads {base.config.n_positions} tokens; the Train tab's windows are {CONTEXT}")
        self.model = get_peft_model(base, lora_config(int(self.settings["rank"]), str(source.path)))
        self.model.train()
        self.data = self._token_data(user_pieces(Path(self.settings["folder"]), self.record["items"]))

    def _token_data(self, pieces: list[dict]) -> TokenData:
        corpus = self.run_dir / "pieces.jsonl.gz"
        with gzip.open(corpus, "wt", encoding="utf-8") as handle:
            for piece in pieces:
                handle.write(json.dumps(piece) + "\n")
        build_tokens(corpus, self.run_dir / "tokens.npz")
        data = TokenData(self.run_dir / "tokens.npz")
        held = held_out_ids([str(i) for i in data.ids])
        flags = np.asarray([str(i) in held for i in data.ids])
        data.held, data.train_index, data.held_index = flags, np.flatnonzero(~flags), np.flatnonzero(flags)
        if not len(data.train_index):
            raise UserError("no piece is left to train on once the held-out ones are set aside: add pieces")
        self.windows = data.held_out_windows()
        commonest = Counter((p["style"], p["tonic"], p["mode"], p["metre"]) for p in pieces).most_common(1)[0][0]
        self.tags = commonest
        self.data_summary = {"pieces": len(pieces), "train_pieces": int(len(data.train_index)),
                             "held_out_pieces": int(len(data.held_index)),
                             "styles": dict(Counter(p["style"] for p in pieces)),
                             "metres": dict(Counter(p["metre"] for p in pieces))}
        return data

    def parameters(self) -> list:
        return [p for p in self.model.parameters() if p.requires_grad]

    def loss(self, step: int, seed: int):
        import torch

        batch = torch.as_tensor(self.data.batch(int(self.record["plan"]["batch"]), random.Random(seed)))
        return self.model(input_ids=batch, labels=batch).loss

    def score(self) -> float | None:
        return held_out_loss(self.model, self.windows) if self.windows else None

    def merged_model(self):
        """The adapted weights as a plain GPT (a merged copy): the app's composer and its fast forward pass run it."""
        import copy

        from studio.engine.music.models import MusicModel
        from studio.engine.music.tokenizer import MusicTokenizer

        merged = copy.deepcopy(self.model).merge_and_unload().eval()
        return MusicModel("gpt", MusicTokenizer.load(self.base_folder), merged, self.base_folder, "cpu",
                          int(merged.config.n_positions))

    def prompt(self) -> str:
        from studio.engine.music.piece import NOTE_NAMES

        style, tonic, mode, metre = self.tags
        return f"{style} in {NOTE_NAMES[tonic]} {mode} in {metre}"

    def samples(self, seed: int) -> dict:
        from studio.core.recipe import Recipe
        from studio.engine.music.generate import generate

        model, prompt, pieces = self.merged_model(), self.prompt(), []
        for index in range(SAMPLE_COUNT):
            recipe = Recipe("music", prompt=prompt, model=str(self.base_folder), seed=seed % 2**31 + index,
                            params={"bars": SAMPLE_BARS})
            piece = generate(model, recipe).piece
            pieces.append({"notes": [[n.pitch, n.start, n.duration, n.velocity, n.voice] for n in piece.notes],
                           "key": piece.key, "metre": piece.metre, "tempo": piece.tempo_bpm})
        return {"kind": "music", "prompts": [prompt] * SAMPLE_COUNT, "pieces": pieces}

    def lora_state(self) -> dict:
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(self.model)

    def load_lora_state(self, tensors: dict) -> None:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(self.model, tensors)
