"""The built-in music models behind one interface: a small GPT-2, an LSTM and the n-gram baseline, all over music
tokens.

A GPT-2 folder (transformers layout, `models/music-gpt/`) runs through `FastGPT2`, GPT-2's forward pass written
straight from the weights; an n-gram folder (`models/music-markov/`, config.json model_type "studio-markov") is
studio.core.ngram's Kneser-Ney model, wrapped by `MusicNGram` with the music conventions. Both folders carry
the vocabulary as `music_vocab.json`. A recurrent folder (`models/music-rnn/`, model_type "studio-rnn") is
studio.core.rnn's model: the prompt is read in one pass (`prime`), then one `step` per token, the recurrent state
carried between calls, so it has no context window to slide.

torch and transformers are imported inside functions: importing this module must stay cheap.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from studio.core import ngram
from studio.core.jobs import UserError
from studio.engine.music.tokenizer import VOCAB_FILE, MusicTokenizer

TOKENS_NAME = "studio-music-remi"  # config.json "tokens" of a music n-gram (a text n-gram says "utf-8 bytes")
PACKED_FILE = "ngrams.safetensors"  # the weights of the first music n-gram format (see from_packed)


# --- the n-gram baseline ----------------------------------------------------------------------------------


class MusicNGram:
    """studio.core.ngram's model over music tokens, with the music conventions and the training steps.

    `order` counts the tokens of an n-gram, the predicted one included (order 7: six tokens of context), as
    the training grid and the model card do; the core model's order is its context, one less. Every piece is
    counted on its own behind order-1 PAD tokens (PAD is the core's boundary symbol), so a piece's first tokens
    see a piece start, never the end of the piece before. Training: `add` every piece, then `use_kneser_ney`
    (until then it is absolute discounting with D = 0.75 at every order), then `prune` if wanted.
    """

    PAD = 0  # the tokenizer's PAD id
    ABSOLUTE_DISCOUNT = 0.75

    def __init__(self, order: int, vocab_size: int, ngrams: ngram.NGramModel | None = None) -> None:
        if order < 1:
            raise ValueError("an n-gram model needs order >= 1")
        self.order, self.vocab_size = order, vocab_size
        self._counter = ngram.NGramCounter(vocab_size, order - 1)
        self._ngrams = ngrams
        self._kneser_ney = ngrams is not None and ngrams.smoothing_name != ngram.ABSOLUTE_SMOOTHING

    @property
    def smoothing(self) -> str:
        return "kneser-ney" if self._kneser_ney else "absolute-discounting"

    @property
    def ngrams(self) -> ngram.NGramModel:
        if self._ngrams is None:
            discounts = None if self._kneser_ney else [self.ABSOLUTE_DISCOUNT] * self.order
            self._ngrams = ngram.NGramModel.from_counts(*self._counter.counts(), self.vocab_size, self.order - 1,
                                                        self.PAD, kneser_ney=self._kneser_ney, discounts=discounts)
        return self._ngrams

    @property
    def discounts(self) -> list[float]:
        return self.ngrams.discounts

    # --- training ---
    def _padded(self, seq: Sequence[int]) -> np.ndarray:
        return np.concatenate([np.full(self.order - 1, self.PAD, dtype=np.int64), np.asarray(seq, dtype=np.int64)])

    def add(self, seq: Sequence[int]) -> None:
        self._counter.add_stream(self._padded(seq))
        self._ngrams = None

    def use_kneser_ney(self) -> None:
        """Continuation counts below the top order, one discount per order from its count-of-counts."""
        if not self._kneser_ney:
            self._kneser_ney, self._ngrams = True, None

    def prune(self, min_count: int) -> None:
        """Drop rare highest-order n-grams (they barely move the loss and fill the file); discounts stay."""
        self._ngrams = self.ngrams.pruned(min_count, keep_discounts=True)

    # --- scoring ---
    def next_distribution(self, history: Sequence[int]) -> np.ndarray:
        """P(next | history) over the whole vocabulary (float64, sums to 1)."""
        probs = self.ngrams.distribution([int(t) for t in history])
        return probs / probs.sum()

    def token_probabilities(self, seq: Sequence[int]) -> np.ndarray:
        """P(seq[t] | seq[:t]) for t >= 1 (len(seq) - 1 values: the first token, BOS, is given)."""
        return np.exp2(self.ngrams.sequence_log2_probs(self._padded(seq))[1:])

    def mean_loss(self, sequences: Iterable[Sequence[int]]) -> float:
        """Nats per token over every token after the first of each sequence."""
        total, count = 0.0, 0
        for seq in sequences:
            log2_probs = self.ngrams.sequence_log2_probs(self._padded(seq))[1:]
            total += float(-log2_probs.sum()) * float(np.log(2.0))
            count += len(log2_probs)
        return total / max(1, count)

    # --- files ---
    def save(self, folder: Path) -> None:
        """config.json + counts.safetensors in the core format; the caller saves the vocabulary beside them."""
        self.ngrams.save(Path(folder), extra_config={"tokens": TOKENS_NAME, "vocab": VOCAB_FILE})

    @classmethod
    def load(cls, folder: Path) -> MusicNGram:
        from studio.core.catalog import check_weights_file

        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if "bits" in config:  # the first music n-gram format (packed keys): read it as the core model
            check_weights_file(folder / config.get("weights", PACKED_FILE))
            return cls(int(config["order"]), int(config["vocab_size"]), from_packed(folder, config))
        check_weights_file(folder / "counts.safetensors")
        ngrams = ngram.NGramModel.load(folder)
        return cls(ngrams.order + 1, ngrams.vocab_size, ngrams)


def from_packed(folder: Path, config: dict) -> ngram.NGramModel:
    """The core model of a folder in the first music n-gram format, which studio.core.ngram replaced.

    That format stored, per context length k, the sorted (k+1)-grams packed `bits` bits per token, oldest
    first (`keys_k`), and their counts (`counts_k`), with the discounts in config.json. Repacking each n-gram
    in base vocab_size keeps the order of the keys, so the tables carry over as they are: same counts, same
    discounts, the same probabilities.
    """
    from safetensors.numpy import load_file

    bits, vocab_size, order = int(config["bits"]), int(config["vocab_size"]), int(config["order"])
    tensors = load_file(str(folder / config.get("weights", PACKED_FILE)))
    mask = (1 << bits) - 1
    tables = []
    for k in range(order):
        keys = tensors[f"keys_{k}"].astype(np.int64)
        codes = np.zeros(len(keys), dtype=np.int64)
        for j in range(k + 1):  # token j of k+1, oldest first
            codes = codes * vocab_size + ((keys >> (bits * (k - j))) & mask)
        sort = np.argsort(codes, kind="stable")
        tables.append((codes[sort], tensors[f"counts_{k}"].astype(np.int64)[sort]))
    kneser_ney = config.get("smoothing", "kneser-ney") == "kneser-ney"
    smoothing = ngram.SMOOTHING if kneser_ney else ngram.ABSOLUTE_SMOOTHING
    return ngram.NGramModel(vocab_size, order - 1, MusicNGram.PAD, tables, config.get("discounts"), smoothing)


# --- one interface over both kinds ---------------------------------------------------------------------------


class MusicModel:
    """A loaded music model: a GPT-2, an RNN or an n-gram folder, with its vocabulary."""

    UNLIMITED = 1 << 30  # an RNN's "context": its state carries the whole past, nothing is ever cropped

    def __init__(self, kind: str, tokenizer: MusicTokenizer, net: Any, path: Path, device: str = "cpu",
                 context: int = 512) -> None:
        self.kind = kind  # "gpt" | "rnn" | "markov"
        self.tokenizer = tokenizer
        self.net = net
        self.path = Path(path)
        self.device = device
        self.context = context
        self.fast = FastGPT2.wrap(net) if kind == "gpt" else None

    @property
    def dtype(self) -> str:
        return "counts" if self.kind == "markov" else "float32"

    def start(self, ids: Sequence[int]) -> Any:
        """Begin a sequence; returns a state object `next_logits` advances."""
        return {"ids": list(ids), "past": None, "fed": 0}

    def next_logits(self, state: dict, new_ids: Sequence[int]) -> Any:
        """Append new_ids to the sequence and return the next-token log-probabilities (numpy float64)."""
        state["ids"].extend(new_ids)
        if self.kind == "markov":
            return np.log(np.maximum(self.net.next_distribution(state["ids"]), 1e-30))
        if self.kind == "rnn":
            return self._rnn_logits(state)
        import torch

        feed = state["ids"] if state["past"] is None else state["ids"][state["fed"]:]
        with torch.inference_mode():
            if self.fast is not None:
                if state["past"] is None:
                    state["past"] = []
                logits = self.fast.forward(feed, state["past"])
            else:
                ids = torch.tensor([feed], dtype=torch.long, device=self.device)
                out = self.net(input_ids=ids, past_key_values=state["past"], use_cache=True)
                state["past"] = out.past_key_values
                logits = out.logits[0, -1]
            state["fed"] = len(state["ids"])
            logits = logits.float().cpu().numpy().astype(np.float64)
        return logits - np.logaddexp.reduce(logits)

    def _rnn_logits(self, state: dict) -> np.ndarray:
        """Read the tokens not yet fed: several (a prompt) in one pass, a single one by a cheap step."""
        import torch

        feed = state["ids"][state["fed"]:]
        if not feed:
            raise ValueError("next_logits needs at least one new token for a recurrent model")
        with torch.inference_mode():
            if len(feed) == 1 and state["past"] is not None:
                logits, state["past"] = self.net.step(feed[0], state["past"])
            else:
                logits, state["past"] = self.net.prime(feed, state["past"])
        state["fed"] = len(state["ids"])
        logits = logits.float().cpu().numpy().astype(np.float64)
        return logits - np.logaddexp.reduce(logits)

    def reset_cache(self, state: dict, ids: Sequence[int]) -> None:
        state.update({"ids": list(ids), "past": None, "fed": 0})


class FastGPT2:
    """GPT-2's forward pass for sampling, one token at a time with a key/value cache, straight from the weights.

    The same maths as transformers' GPT2LMHeadModel (the tests compare logits) without its per-module
    Python overhead, which dominates at this size: about 3x more tokens per second on a CPU.
    """

    def __init__(self, net) -> None:
        config = net.config
        weights = {k: v.detach() for k, v in net.state_dict().items()}
        self.n_head, self.eps = config.n_head, config.layer_norm_epsilon
        self.wte, self.wpe = weights["transformer.wte.weight"], weights["transformer.wpe.weight"]
        self.head = weights.get("lm_head.weight", self.wte)
        names = ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                 "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                 "mlp.c_proj.weight", "mlp.c_proj.bias")
        self.layers = [[weights[f"transformer.h.{i}.{n}"] for n in names] for i in range(config.n_layer)]
        self.ln_f = (weights["transformer.ln_f.weight"], weights["transformer.ln_f.bias"])

    @classmethod
    def wrap(cls, net) -> FastGPT2 | None:
        config = net.config
        plain = (config.model_type == "gpt2" and config.activation_function in ("gelu_new", "gelu_pytorch_tanh")
                 and not getattr(config, "scale_attn_by_inverse_layer_idx", False)
                 and not getattr(config, "reorder_and_upcast_attn", False) and config.scale_attn_weights)
        return cls(net) if plain else None  # anything unusual goes through transformers itself

    def forward(self, ids: Sequence[int], cache: list):
        """Logits after the last of `ids`, which continue the sequence held in `cache` (updated in place)."""
        import torch
        import torch.nn.functional as F

        past = cache[0][0].shape[1] if cache else 0
        new = len(ids)
        x = self.wte[torch.as_tensor(ids)] + self.wpe[past:past + new]
        heads, width = self.n_head, x.shape[-1]
        mask = None
        if new > 1:  # several tokens at once (a prompt): each sees the cache and the tokens before it
            mask = torch.ones(new, past + new, dtype=torch.bool).tril(diagonal=past)
        for index, (g1, b1, w_qkv, b_qkv, w_o, b_o, g2, b2, w_fc, b_fc, w_pr, b_pr) in enumerate(self.layers):
            h = F.layer_norm(x, (width,), g1, b1, self.eps)
            q, k, v = torch.addmm(b_qkv, h, w_qkv).split(width, dim=-1)
            q, k, v = (t.view(new, heads, -1).transpose(0, 1) for t in (q, k, v))
            if index < len(cache):
                k = torch.cat([cache[index][0], k], dim=1)
                v = torch.cat([cache[index][1], v], dim=1)
                cache[index] = (k, v)
            else:
                cache.append((k, v))
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = x + torch.addmm(b_o, attended.transpose(0, 1).reshape(new, width), w_o)
            h = F.layer_norm(x, (width,), g2, b2, self.eps)
            x = x + torch.addmm(b_pr, F.gelu(torch.addmm(b_fc, h, w_fc), approximate="tanh"), w_pr)
        last = F.layer_norm(x[-1], (width,), *self.ln_f, self.eps)
        return self.head @ last


def load_music_model(source: Any, device: str = "cpu", adapters: list[dict] | None = None) -> MusicModel:
    """Load a built-in or user music model: a ModelSource, 'builtin:NAME', or a folder path; `adapters`
    (core/adapters.py entries) are merged into a GPT's weights."""
    from studio.core import adapters as lora
    from studio.core import catalog

    if isinstance(source, str):
        source = catalog.resolve(source)
    folder = Path(source.path)
    if adapters and source.kind in ("markov", "rnn"):
        raise UserError(f"{source.name} is a {source.kind} model: adapters fit the GPT (transformers) music models")
    if source.kind == "markov":
        tokenizer = MusicTokenizer.load(folder)
        return MusicModel("markov", tokenizer, MusicNGram.load(folder), folder)
    if source.kind == "rnn":
        return _load_rnn(folder, device)
    if source.kind not in ("transformers", "builtin"):
        raise UserError(f"{source.name} is not a symbolic music model (it is a {source.kind} model)")
    tokenizer = MusicTokenizer.load(folder)
    catalog.check_model_folder(folder, "transformers")  # no code, known model_type, sound safetensors
    import torch
    from transformers import AutoModelForCausalLM

    net = AutoModelForCausalLM.from_pretrained(
        str(folder), dtype=torch.float32, local_files_only=True, trust_remote_code=False
    )
    net = lora.merge_into(net, adapters or [])  # merged: FastGPT2 reads the adapted weights
    net.to(device).eval()
    return MusicModel("gpt", tokenizer, net, folder, device, int(getattr(net.config, "n_positions", 512)))


def _load_rnn(folder: Path, device: str) -> MusicModel:
    """A studio-rnn folder with music_vocab.json beside it (a text RNN has a tokenizer.json instead)."""
    from studio.core import catalog

    if not (folder / VOCAB_FILE).exists():
        raise UserError(f"{folder.name} is a recurrent model without {VOCAB_FILE}: not a music model")
    catalog.check_weights_file(folder / "model.safetensors")
    tokenizer = MusicTokenizer.load(folder)
    import torch

    from studio.core import rnn

    net = rnn.load(folder, torch.float32, device)
    if net.config.vocab_size != len(tokenizer):
        raise UserError(f"{folder.name}: the model has {net.config.vocab_size} tokens, {VOCAB_FILE} {len(tokenizer)}")
    return MusicModel("rnn", tokenizer, net, folder, device, MusicModel.UNLIMITED)
