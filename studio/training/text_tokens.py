"""The text models' data: a byte-level BPE tokenizer and the corpus as token streams.

Every entry is followed by an end-of-text token, so a model learns where entries end; the held-out
split is text_data's (by a hash of each entry). A run caches its tokenizer and streams, so a resume reads
exactly the same tokens.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from studio.data import text as text_data

EOT = "<|endoftext|>"


def build_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer (GPT-2 style). vocab_size 257 means plain bytes + end-of-text, no merges."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte is a token: no unknown text
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=EOT, eos_token=EOT, unk_token=EOT, pad_token=EOT, model_max_length=1_000_000
    )


def bytes_per_token(tokenizer) -> np.ndarray:
    """How many text bytes each token stands for (ByteLevel maps one byte to one character); EOT counts 1."""
    lengths = np.ones(len(tokenizer), dtype=np.int64)
    for token, index in tokenizer.get_vocab().items():
        lengths[index] = 1 if token == EOT else len(token)
    return lengths


def encode_stream(tokenizer, texts: list[str]) -> np.ndarray:
    """All texts as one token stream, each followed by end-of-text (so the model learns where entries end)."""
    eot = tokenizer.convert_tokens_to_ids(EOT)
    ids: list[int] = []
    for encoded in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids += encoded
        ids.append(eot)
    return np.asarray(ids, dtype=np.int32)


def require_full_corpus() -> None:
    missing = text_data.missing_packages()
    if missing:
        raise SystemExit(
            "the text corpus is incomplete; install its Debian packages first:\n"
            f"  sudo apt-get install --no-install-recommends {' '.join(missing)}"
        )


def prepare_data(run_dir: Path, vocab_size: int, tokenizer_dir: Path | None = None):
    """Tokenizer + train/held-out token streams, cached in the run folder so a resume reuses them exactly."""
    from transformers import AutoTokenizer

    require_full_corpus()
    entries = text_data.load_entries()
    train_texts, held_texts = text_data.split_entries(entries)
    tok_dir = run_dir / "tokenizer"
    if not (tok_dir / "tokenizer.json").exists():
        if tokenizer_dir is not None and (tokenizer_dir / "tokenizer.json").exists():
            shutil.copytree(tokenizer_dir, tok_dir, dirs_exist_ok=True)
        else:
            build_tokenizer(train_texts, vocab_size).save_pretrained(tok_dir)
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    cache = run_dir / "tokens.npz"
    if cache.exists():
        data = np.load(cache)
        train, held = data["train"], data["held_out"]
    else:
        train, held = encode_stream(tokenizer, train_texts), encode_stream(tokenizer, held_texts)
        np.savez(cache, train=train, held_out=held)
    return tokenizer, train, held, text_data.corpus_summary(entries)


def random_batch(stream: np.ndarray, batch: int, context: int, rng: np.random.Generator) -> torch.Tensor:
    starts = rng.integers(0, len(stream) - context - 1, size=batch)
    return torch.from_numpy(np.stack([stream[s : s + context + 1] for s in starts]).astype(np.int64))
