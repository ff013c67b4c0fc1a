"""The language models the sampling loop drives: a transformers causal LM (with a KV cache, so it runs as fast
as `generate`), a recurrent LM (studio.core.rnn) or an n-gram model. Each hands the loop one row of logits per step.

torch and transformers are imported inside functions (start-up time).
"""

from __future__ import annotations

from pathlib import Path

from studio.core import adapters as lora
from studio.core import catalog
from studio.core.jobs import UserError

# The plain chat transcript (models without a chat template: the built-in ones, base models) ends with this; the
# answer belongs on the same line, after at most one space. A model that breaks the line first, or adds more space,
# has lost the turn: the built-in byte model then wrote blank lines or spaces to the end (one seed in ten), and the
# chat showed no answer at all.
PLAIN_ANSWER_CUE = "Assistant:"


class TextModel:
    """What the sampling loop needs from a model."""

    name: str = ""
    max_context: int = 1024
    eos_id: int | None = None
    chat_template: str | None = None

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def start(self, ids: list[int]):
        """Feed the prompt; returns (state, logits of the next token as a 1-D float tensor)."""
        raise NotImplementedError

    def step(self, state, token_id: int):
        """Feed one more token; returns (state, logits of the next token)."""
        raise NotImplementedError

    def space_led_tokens(self) -> list[int] | None:
        """Ids of the tokens that begin with a space, when the tokenizer glues spaces to words (BPE); else None."""
        return None

    def vocab_size(self) -> int:
        raise NotImplementedError

    def vocab_texts(self) -> list[str]:
        """Each token's own text, by id (cached): what banned strings and DRY's sequence breakers are matched to."""
        if getattr(self, "_vocab_texts", None) is None:
            self._vocab_texts = [self.decode([i]) for i in range(self.vocab_size())]
        return self._vocab_texts

    def render_chat(self, messages: list[dict]) -> tuple[str, tuple[str, ...]]:
        """The prompt for a chat and the stop sequences that end the assistant's turn."""
        transcript = "".join(
            f"{m.get('role', 'user').capitalize()}: {m.get('content', '').strip()}\n" for m in messages
        )
        return transcript + PLAIN_ANSWER_CUE, ("\nUser:",)

    def line_break_tokens(self) -> frozenset[int]:
        """Ids of the tokens whose text holds a line break (cached)."""
        if getattr(self, "_line_breaks", None) is None:
            self._line_breaks = frozenset(i for i, t in enumerate(self.vocab_texts()) if "\n" in t)
        return self._line_breaks

    def blank_tokens(self) -> frozenset[int]:
        """Ids of the tokens whose text is only white space (cached)."""
        if getattr(self, "_blanks", None) is None:
            self._blanks = frozenset(i for i, t in enumerate(self.vocab_texts()) if t and not t.strip())
        return self._blanks


class HFTextModel(TextModel):
    """A transformers causal LM + its tokenizer; KV cache between steps; crops to the model's context."""

    def __init__(self, model, tokenizer, name: str = "") -> None:
        self.model, self.tokenizer, self.name = model, tokenizer, name
        config = model.config
        self.max_context = int(
            getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", 0) or 2048
        )
        self.eos_id = tokenizer.eos_token_id
        self.chat_template = getattr(tokenizer, "chat_template", None)
        self.device = next(model.parameters()).device

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def space_led_tokens(self) -> list[int] | None:
        if not hasattr(self, "_space_led"):
            # GPT-2 byte-level BPE writes a leading space as "Ġ", SentencePiece as "▁".
            vocab = self.tokenizer.get_vocab()
            ids = [i for t, i in vocab.items() if t[:1] in ("Ġ", "▁") and len(t) > 1]
            self._space_led = ids or None
        return self._space_led

    def _forward(self, ids: list[int], past):
        import torch

        with torch.inference_mode():
            out = self.model(torch.tensor([ids], device=self.device), past_key_values=past, use_cache=True)
        return out.past_key_values, out.logits[0, -1].float().cpu()

    def start(self, ids: list[int]):
        if not ids:
            ids = [self.eos_id if self.eos_id is not None else 0]  # GPT-2 convention: start of text = end of text
        ids = ids[-(self.max_context - 1) :]  # leave room for at least one new token
        past, logits = self._forward(ids, None)
        return {"ids": list(ids), "past": past}, logits

    def step(self, state, token_id: int):
        state["ids"].append(token_id)
        if len(state["ids"]) >= self.max_context:
            # Context full (GPT-2 raises IndexError past n_positions): keep the last three quarters and
            # re-read them. Costs one prompt-sized pass every max_context/4 tokens.
            state["ids"] = state["ids"][-(self.max_context * 3 // 4) :]
            state["past"], logits = self._forward(state["ids"], None)
            return state, logits
        state["past"], logits = self._forward([token_id], state["past"])
        return state, logits

    def render_chat(self, messages: list[dict]) -> tuple[str, tuple[str, ...]]:
        if self.chat_template:
            prompt = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
            return prompt, ()
        return super().render_chat(messages)


class MarkovTextModel(TextModel):
    """The byte n-gram model: tokens are bytes, the boundary symbol ends a text."""

    def __init__(self, ngrams, name: str = "") -> None:
        from studio.core import ngram as markov

        self.ngrams, self.name = ngrams, name
        self.max_context = 1_000_000  # only the last `order` bytes matter
        self.eos_id = ngrams.boundary
        self._to_text = markov.symbols_to_text

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def vocab_size(self) -> int:
        return 256  # the bytes; the boundary symbol is the end of text, never matched as text

    def decode(self, ids: list[int]) -> str:
        return self._to_text(ids)

    def _logits(self, history):
        import torch

        return torch.from_numpy(self.ngrams.log_probs(history)).float()

    def start(self, ids: list[int]):
        history = list(ids[-self.ngrams.order :]) if ids else []
        return history, self._logits(history)

    def step(self, state, token_id: int):
        state = (state + [token_id])[-self.ngrams.order :]
        return state, self._logits(state)


class RNNTextModel(TextModel):
    """A recurrent LM (studio.core.rnn) over the tokenizer saved beside it: no context limit, the state carries
    everything read so far."""

    def __init__(self, model, tokenizer, eos_id: int, name: str = "") -> None:
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.max_context = 1_000_000  # a recurrent state has no window to run out of
        self.eos_id = eos_id

    encode = HFTextModel.encode
    decode = HFTextModel.decode
    vocab_size = HFTextModel.vocab_size
    space_led_tokens = HFTextModel.space_led_tokens

    def start(self, ids: list[int]):
        import torch

        with torch.inference_mode():  # trained with end-of-text before every entry: a text starts after one
            logits, state = self.model.prime([self.eos_id, *ids])
        return state, logits.float().reshape(-1).cpu()

    def step(self, state, token_id: int):
        import torch

        with torch.inference_mode():
            logits, state = self.model.step([token_id], state)
        return state, logits.float().reshape(-1).cpu()


def _load_rnn(source: catalog.ModelSource, device: str, dtype: str) -> RNNTextModel:
    folder = Path(source.path)
    if (folder / "music_vocab.json").exists():
        raise UserError(f"{source.name} is a recurrent model over music tokens, not over text")
    catalog.check_model_folder(folder)  # no code asked for, sound safetensors
    import torch
    from transformers import PreTrainedTokenizerFast

    from studio.core import rnn

    config = rnn.read_config(folder)
    try:  # the fast tokenizer's own files (AutoTokenizer would read config.json and not know "studio-rnn")
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
        model = rnn.load(folder, getattr(torch, dtype), device)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise catalog.CorruptModelError(f"{folder}: cannot read the recurrent model ({exc})") from exc
    eos = config.get("eos_token_id", tokenizer.eos_token_id)
    return RNNTextModel(model.eval(), tokenizer, int(eos if eos is not None else 0), source.name)


def load_text_model(
    source: catalog.ModelSource, device: str = "cpu", dtype: str = "float32", online: bool = False,
    adapters: list[dict] | None = None,
) -> TextModel:
    """A TextModel for a built-in/transformers folder, a hub id (from the local cache), a Markov or an RNN folder
    (GGUF files: llama.py);
    `adapters` (core/adapters.py entries) are merged into a transformers model's weights."""
    if adapters and source.kind in ("rnn", "markov"):
        raise UserError(f"{source.name} is a {source.kind} model: adapters fit the GPT-style (transformers) models")
    if source.kind == "rnn":
        return _load_rnn(source, device, dtype)
    if source.kind == "markov":
        from studio.core import ngram as markov

        config = catalog.read_json(Path(source.path) / "config.json")
        if config.get("tokens", markov.BYTE_TOKENS) != markov.BYTE_TOKENS:
            raise UserError(f"{source.name} is an n-gram model over {config['tokens']}, not over text")
        catalog.check_weights_file(Path(source.path) / "counts.safetensors")
        try:
            return MarkovTextModel(markov.NGramModel.load(source.path), source.name)
        except (OSError, KeyError, ValueError) as exc:
            raise catalog.CorruptModelError(f"{source.path}: cannot read the n-gram model ({exc})") from exc
    if source.kind in ("builtin", "transformers"):
        catalog.check_model_folder(source.path, "transformers")  # no code, known model_type, sound safetensors
        location, local_only = str(source.path), True
    elif source.kind == "hub":
        location, local_only = source.ref, not online
        cached = _cached_hub_folder(source.ref)
        if cached is not None:  # what transformers would read: checked the same way as a local folder
            catalog.check_model_folder(cached, "transformers")
    else:
        raise UserError(f"{source.ref} is a {source.kind} model, not a language model")

    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        # trust_remote_code=False: never ask "Do you wish to run the custom code? [y/N]", never run it
        tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=local_only, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(
            location,
            local_files_only=local_only,
            use_safetensors=True,
            dtype=getattr(torch, dtype),
            trust_remote_code=False,
        )
    except OSError as exc:
        if source.kind == "hub" and local_only:
            raise UserError(f"{source.ref} is not in the Hugging Face cache and the app is offline") from exc
        raise UserError(f"cannot load the language model {source.ref}: {exc}") from exc
    except ValueError as exc:
        if "trust_remote_code" in str(exc):  # a hub repo not yet cached, refused by transformers itself
            raise catalog.UnsafeModelError(
                f"{source.ref} asks to run code shipped with the model (auto_map); {catalog.NEVER_RUNS_CODE}"
            ) from None
        raise UserError(f"cannot load the language model {source.ref}: {exc}") from exc
    except SafetensorError as exc:  # checked above for local folders; a download can still be damaged
        raise catalog.CorruptModelError(f"{location}: damaged safetensors weights ({exc})") from exc
    model = lora.merge_into(model, adapters or [])
    model.to(device).eval()
    return HFTextModel(model, tokenizer, source.name)


def _cached_hub_folder(repo_id: str) -> Path | None:
    """The user's cached snapshot of a hub repo (no network), or None when it is not cached."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (or no hub library): transformers decides, trust_remote_code=False
        return None
