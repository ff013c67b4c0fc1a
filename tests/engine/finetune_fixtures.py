"""Tiny base models and tiny folders for the Train tab's tests: one per medium, built the way a user's would be."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from studio import paths

TEXT_LINES = ("Verily the {w} shall walk upon the {w}s of the land, and the {w} shall be glad.",
              "And it came to pass that the {w} spake unto the people of the {w}s, saying: hearken.")
WORDS = ("lamb", "king", "stone", "river", "field", "shepherd")


def tiny_text_model(folder: Path) -> Path:
    """A random one-layer GPT-2 over the built-in text-gpt's tokenizer (2,048 tokens)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    folder.mkdir(parents=True)
    builtin = paths.builtin_model_dir("text-gpt")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(builtin / name, folder / name)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=2048, n_positions=64, n_embd=32, n_layer=1, n_head=2, bos_token_id=0,
                        eos_token_id=0)
    GPT2LMHeadModel(config).save_pretrained(folder, safe_serialization=True)
    return folder


def tiny_music_model(folder: Path) -> Path:
    """A random one-layer music GPT over the app's note-event vocabulary (512 tokens of context, as the built-in)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from studio.engine.music.tokenizer import MusicTokenizer

    tok = MusicTokenizer()
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tok), n_positions=512, n_embd=32, n_layer=1, n_head=2, bos_token_id=tok.bos_id,
                        eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)
    GPT2LMHeadModel(config).save_pretrained(folder, safe_serialization=True)
    tok.save(folder)
    return folder


def text_folder(folder: Path, files: int = 4) -> Path:
    folder.mkdir(parents=True)
    for index in range(files):
        paragraphs = [line.format(w=word) + f" ({index}.{n})" for n in range(12) for word in WORDS[:3]
                      for line in TEXT_LINES]
        (folder / f"book{index}.txt").write_text("\n\n".join(paragraphs), encoding="utf-8")
    return folder


def abc_folder(folder: Path, tunes: int = 10) -> Path:
    folder.mkdir(parents=True)
    texts = []
    for index in range(tunes):
        notes = " ".join("CDEFGABc"[(index * 3 + j) % 8] + ("2" if j % 3 else "4") for j in range(16))
        texts.append(f"X:{index + 1}\nT:Tune {index}\nM:4/4\nL:1/8\nK:G\n|{notes}|\n")
    (folder / "tunes.abc").write_text("\n".join(texts), encoding="latin-1")
    return folder


def picture_folder(folder: Path, count: int = 12, size: int = 32) -> Path:
    """Pictures of red blocks on white, with their captions in sidecar .txt files (kohya's convention)."""
    from PIL import Image

    folder.mkdir(parents=True)
    rng = random.Random(0)
    for index in range(count):
        picture = Image.new("RGB", (size, size), "white")
        for x in range(0, size, 8):
            for y in range(0, size, 8):
                if rng.random() < 0.5:
                    picture.paste((200 + rng.randrange(56), 0, 0), (x, y, x + 8, y + 8))
        picture.save(folder / f"blocks_{index:02d}.png")
        (folder / f"blocks_{index:02d}.txt").write_text(f"red blocks number {index}\n", encoding="utf-8")
    return folder
