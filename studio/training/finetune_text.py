"""A LoRA on a GPT-2-style text model (the built-in text-gpt, or a user's transformers folder) from a folder of texts.

The data path is the built-in's: the model's own tokenizer, each passage followed by end-of-text
(text_tokens.encode_stream), random windows (text_tokens.random_batch), held-out bits per byte
(text_model.held_out_bits_per_byte), samples by text_model.sample_text. About a tenth of the passages, chosen by a
hash of their text, are held out to score checkpoints.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from studio.core import catalog
from studio.core.jobs import UserError
from studio.training.finetune_data import read_text_entries
from studio.training.text_model import held_out_bits_per_byte, next_token_loss, sample_text
from studio.training.text_tokens import EOT, bytes_per_token, encode_stream, random_batch

HELD_OUT_PERCENT = 10
TARGETS = ["c_attn", "c_proj", "c_fc"]  # GPT-2's attention and MLP projections (transformers' Conv1D layers)
MAX_CONTEXT = 256  # the built-in's context; longer windows cost quadratically on a CPU for little gain here


def is_held_out(text: str) -> bool:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") % 100 < HELD_OUT_PERCENT


def split_passages(passages: list[str]) -> tuple[list[str], list[str]]:
    """(train, held out): by hash, but at least one passage on each side when there are two or more."""
    held = [p for p in passages if is_held_out(p)]
    train = [p for p in passages if not is_held_out(p)]
    if not held and len(train) > 1:
        held = [train.pop()]
    if not train and len(held) > 1:
        train = [held.pop(0)]
    return train, held


def lora_config(rank: int, base_path: str = ""):
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=rank, target_modules=TARGETS, fan_in_fan_out=True, lora_dropout=0.0,
                      bias="none", task_type="CAUSAL_LM", base_model_name_or_path=base_path or None)


class TextTrainer:
    medium = "text"
    score_name = "held-out bits/byte"

    def __init__(self, record: dict, run_dir: Path, device: str) -> None:
        self.record, self.run_dir, self.device = record, Path(run_dir), device
        self.settings = record["settings"]

    def prepare(self, report=None, cancelled=None) -> None:
        import torch
        from peft import get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source = catalog.resolve(self.record["base_model"])
        if source.kind not in ("builtin", "transformers"):
            raise UserError(f"{source.name} is not a transformers language model: the Train tab adapts GPT-style models")
        catalog.check_model_folder(source.path, "transformers")
        self.tokenizer = AutoTokenizer.from_pretrained(str(source.path), local_files_only=True, trust_remote_code=False)
        if EOT not in self.tokenizer.get_vocab():
            raise UserError(f"{source.name}'s tokenizer has no {EOT} token: the Train tab adapts GPT-2-style models")
        base = AutoModelForCausalLM.from_pretrained(str(source.path), dtype=torch.float32, local_files_only=True,
                                                    trust_remote_code=False)
        self.model = get_peft_model(base, lora_config(int(self.settings["rank"]), str(source.path))).to(self.device)
        self.model.train()
        self.context = min(MAX_CONTEXT, int(base.config.n_positions) - 1)
        self.train_stream, self.held_stream = self._streams(Path(self.settings["folder"]))
        self.token_bytes = bytes_per_token(self.tokenizer)

    def _streams(self, folder: Path) -> tuple[np.ndarray, np.ndarray]:
        passages = [p for item in self.record["items"] for p in read_text_entries(folder / item["file"])]
        train, held = split_passages(passages)
        train_stream, held_stream = encode_stream(self.tokenizer, train), encode_stream(self.tokenizer, held)
        if len(train_stream) < self.context + 2:
            raise UserError(f"only {len(train_stream)} tokens of text to train on: the model reads {self.context} at a "
                            "time; add more text")
        self.data_summary = {"passages": len(passages), "train_tokens": int(len(train_stream)),
                             "held_out_tokens": int(len(held_stream)),
                             "train_bytes": sum(len(t.encode()) for t in train),
                             "held_out_bytes": sum(len(t.encode()) for t in held)}
        self.prompts = [" ".join(p.split()[:4]) for p in (held or train)[:3]]
        return train_stream, held_stream

    def parameters(self) -> list:
        return [p for p in self.model.parameters() if p.requires_grad]

    def loss(self, step: int, seed: int):
        batch = random_batch(self.train_stream, int(self.record["plan"]["batch"]), self.context,
                             np.random.default_rng(seed))
        return next_token_loss(self.model, batch.to(self.device))

    def score(self) -> float | None:
        if len(self.held_stream) < 2:
            return None
        return held_out_bits_per_byte(self.model, self.held_stream, self.token_bytes, self.context)

    def samples(self, seed: int) -> dict:
        texts = [sample_text(self.model, self.tokenizer, prompt, new_tokens=80, seed=seed + i)
                 for i, prompt in enumerate(self.prompts)]
        return {"kind": "text", "prompts": self.prompts, "texts": texts}

    def lora_state(self) -> dict:
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(self.model)

    def load_lora_state(self, tensors: dict) -> None:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(self.model, tensors)
