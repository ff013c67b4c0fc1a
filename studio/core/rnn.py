"""A small recurrent language model (LSTM or GRU), shared by the text and music built-ins.

    tokens -> embedding -> LSTM/GRU layers -> linear head (tied to the embedding) -> next-token logits

Two ways through it:
  forward(ids, state)  a whole batch of sequences at once (training, scoring held-out text, reading a prompt);
  step(ids, state)     one token per sequence (sampling token by token, so streaming, cancel and the token
                       inspector work as with the GPT loop). The state is the recurrent memory: everything the
                       model knows about the past is in it, so a step costs the same at token 10 and token 10,000.

On disk a model is a folder: config.json ({"model_type": "studio-rnn", ...}) + model.safetensors (fp16; the tied
head is not stored twice). Safetensors only: loading never unpickles anything.

Lives in core because text and music both use it and media never import each other. torch is imported at the top:
import this module lazily (inside the loader), never on the app's start-up path.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

MODEL_TYPE = "studio-rnn"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CELLS = ("lstm", "gru")

# LSTM: (h, c), each [layers, batch, width]; GRU: h alone.
State = Any


@dataclass(frozen=True)
class RNNConfig:
    """The architecture; config.json holds these fields (and whatever the trainer adds beside them)."""

    vocab_size: int
    # One width for the embedding, the recurrent state and the head's input: tying the head to the embedding
    # needs the head's input to be embedding-sized, and a projection in between would cost as much as it saves.
    width: int = 512
    # Two layers: the second learns patterns of patterns (words -> phrases); past three, small LSTMs gain little
    # and every layer adds a sequential matmul to each sampling step.
    layers: int = 2
    # "lstm" (a separate cell memory, gated: the classic for text and Magenta's music RNNs) or "gru" (3 gates
    # instead of 4: 25 % fewer recurrent weights and FLOPs). Which learns more per CPU-second is measured by the
    # trainers (`python -m studio.training.text_rnn cells`).
    cell: str = "lstm"
    # Dropout on the embedding, between layers and before the head. Small: we train for an hour, not for epochs.
    dropout: float = 0.1
    # The head reuses the embedding matrix (Press & Wolf 2017): fewer parameters, and often a lower loss.
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, not {self.cell!r}")
        if self.vocab_size < 2 or self.width < 1 or self.layers < 1 or not 0 <= self.dropout < 1:
            raise ValueError(f"bad RNN config: {self}")

    @classmethod
    def from_dict(cls, values: dict) -> RNNConfig:
        """The known fields of a config.json (it may hold more: token ids, the trainer's notes)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


class RNNLanguageModel(nn.Module):
    """Embedding -> LSTM/GRU -> head. Batch-first: ids are [batch, time]."""

    def __init__(self, config: RNNConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.width)
        self.drop = nn.Dropout(config.dropout)
        cell = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.rnn = cell(
            config.width,
            config.width,
            num_layers=config.layers,
            dropout=config.dropout if config.layers > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(config.width, config.vocab_size)  # the bias is the model's unigram prior
        if config.tie_embeddings:
            self.head.weight = self.embed.weight
        self._init_weights()

    def _init_weights(self) -> None:
        # Small embeddings: with a tied head they are also the output weights, and large ones start the model
        # off confidently wrong.
        nn.init.normal_(self.embed.weight, std=0.05)
        nn.init.zeros_(self.head.bias)
        if self.config.cell == "lstm":
            # Forget-gate bias 1 (Gers et al. 2000; Jozefowicz et al. 2015): the cell remembers by default at the
            # start of training instead of halving its memory every step. PyTorch orders the gates i, f, g, o.
            width = self.config.width
            for layer in range(self.config.layers):
                getattr(self.rnn, f"bias_ih_l{layer}").data[width : 2 * width].fill_(1.0)
                getattr(self.rnn, f"bias_hh_l{layer}").data[width : 2 * width].zero_()

    def forward(self, ids: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        """Logits for every position of `ids` [batch, time] -> [batch, time, vocab], and the state after the last."""
        x = self.drop(self.embed(ids))
        out, state = self.rnn(x, state)
        return self.head(self.drop(out)), state

    def step(self, token_ids, state: State = None) -> tuple[torch.Tensor, State]:
        """One token per sequence: ids [batch] -> logits [batch, vocab]; a single id (int or 0-d) -> logits [vocab].

        The sampling loop calls this once per new token; `state=None` is the start of a sequence. In eval mode the
        cells are computed here from the layer's weights (the same equations as torch's): a call of nn.LSTM/GRU
        on one time step costs ~1-10 ms of set-up on a CPU (oneDNN reorders the weights on every call), the
        equations themselves ~0.1 ms. The tests hold the two paths to the same logits.
        """
        ids = torch.as_tensor(token_ids, dtype=torch.long, device=self.embed.weight.device)
        single = ids.dim() == 0
        if self.training or torch.is_grad_enabled():
            logits, state = self.forward(ids.reshape(-1, 1), state)
            logits = logits[:, -1]
        else:
            logits, state = self._step_by_hand(ids.reshape(-1), state)
        return (logits[0] if single else logits), state

    def _step_by_hand(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        x = self.embed(ids)
        lstm = self.config.cell == "lstm"
        if state is None:
            zeros = x.new_zeros(self.config.layers, x.shape[0], self.config.width)
            state = (zeros, zeros) if lstm else zeros
        h_in, c_in = state if lstm else (state, None)
        h_out, c_out = [], []
        for layer in range(self.config.layers):
            w_ih, w_hh, b_ih, b_hh = (getattr(self.rnn, f"{name}_l{layer}")
                                      for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            from_input, from_state = torch.addmm(b_ih, x, w_ih.t()), torch.addmm(b_hh, h_in[layer], w_hh.t())
            if lstm:  # gates i, f, g, o
                i, f, g, o = (from_input + from_state).chunk(4, dim=1)
                c = torch.sigmoid(f) * c_in[layer] + torch.sigmoid(i) * torch.tanh(g)
                x = torch.sigmoid(o) * torch.tanh(c)
                c_out.append(c)
            else:  # GRU: reset r, update z, candidate n
                i_r, i_z, i_n = from_input.chunk(3, dim=1)
                h_r, h_z, h_n = from_state.chunk(3, dim=1)
                r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
                n = torch.tanh(i_n + r * h_n)
                x = (1 - z) * n + z * h_in[layer]
            h_out.append(x)
        h = torch.stack(h_out)
        return self.head(x), ((h, torch.stack(c_out)) if lstm else h)

    @torch.inference_mode()
    def prime(self, ids: list[int], state: State = None) -> tuple[torch.Tensor, State]:
        """Read a prompt in one pass (much faster than a step per token); logits [vocab] after its last token."""
        if not ids:
            raise ValueError("prime needs at least one token (e.g. the start/end-of-text id)")
        batch = torch.as_tensor([ids], dtype=torch.long, device=self.embed.weight.device)
        logits, state = self.forward(batch, state)
        return logits[0, -1], state

    # --- saving and loading -----------------------------------------------------------------------------

    def weights(self) -> dict[str, torch.Tensor]:
        """The state dict without the tied head (it is the embedding; safetensors refuses shared tensors)."""
        state = self.state_dict()
        if self.config.tie_embeddings:
            state.pop("head.weight")
        return state

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Load `weights()`-style tensors (any float dtype) strictly: a missing or stray key is an error."""
        dtype = self.embed.weight.dtype
        weights = {k: v.to(dtype) for k, v in weights.items()}
        if self.config.tie_embeddings:
            weights["head.weight"] = weights["embed.weight"]
        self.load_state_dict(weights, strict=True)

    def save(self, folder: Path, dtype: torch.dtype = torch.float16, extra: dict | None = None) -> None:
        """config.json + model.safetensors (weights cast to `dtype`; the model itself stays as it is)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().to(dtype).contiguous().clone() for k, v in self.weights().items()}
        save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
        (folder / WEIGHTS_FILE).chmod(0o644)  # safetensors writes 0600; built-in weights ship with the app
        config = {"model_type": MODEL_TYPE, **asdict(self.config), "dtype": str(dtype).removeprefix("torch.")}
        config.update(extra or {})
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())  # the tied matrix counts once


def read_config(folder: Path) -> dict:
    """The whole config.json of a studio-rnn folder (architecture + token ids etc.); ValueError if it isn't one."""
    path = Path(folder) / CONFIG_FILE
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("model_type") != MODEL_TYPE:
        raise ValueError(f"{path}: model_type is {config.get('model_type')!r}, not {MODEL_TYPE!r}")
    return config


def is_rnn_folder(folder: Path) -> bool:
    try:
        read_config(folder)
    except (OSError, ValueError):
        return False
    return True


def load(folder: Path, dtype: torch.dtype = torch.float32, device: str = "cpu") -> RNNLanguageModel:
    """A saved model, in eval mode, as `dtype` (fp16 files run in float32 on a CPU)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    model = RNNLanguageModel(RNNConfig.from_dict(read_config(folder)))
    model.load_weights(load_file(str(folder / WEIGHTS_FILE)))
    return model.to(device=device, dtype=dtype).eval()


@torch.inference_mode()
def sample(
    model: RNNLanguageModel,
    prompt_ids: list[int],
    new_tokens: int,
    temperature: float = 0.8,
    top_k: int = 40,
    seed: int = 0,
    stop_id: int | None = None,
) -> list[int]:
    """A plain sampler (temperature + top-k) for trainers' logs, cards and tests; the app's loops bring their own.

    The same seed gives the same tokens: the draws come from a generator seeded here, not from global state.
    """
    generator = torch.Generator().manual_seed(seed)
    logits, state = model.prime(prompt_ids)
    out: list[int] = []
    for _ in range(new_tokens):
        logits = logits.float() / max(temperature, 1e-6)
        if 0 < top_k < logits.numel():
            logits = logits.masked_fill(logits < torch.topk(logits, top_k).values[-1], -math.inf)
        token = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=generator))
        if token == stop_id:
            break
        out.append(token)
        logits, state = model.step(token, state)
    return out
