"""GGUF models through llama.cpp (llama-cpp-python): the same `TextModel` the sampling loop drives everywhere.

llama.cpp computes the logits; our own chain (sampling.py) picks the token, so every sampler, the token inspector,
banned strings and the loom work the same on a GGUF as on a transformers folder, and one seed gives one text on
both. The file's own metadata gives the context length and the chat template (rendered by llama-cpp-python's
sandboxed Jinja formatter: a template can't run code). Layers go to the GPU when the build has CUDA/Metal.

llama_cpp, numpy and torch are imported inside functions (start-up time; llama-cpp-python is an optional extra).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from studio.core import catalog
from studio.core.gguf_file import context_length
from studio.core.jobs import UserError
from studio.engine.text.models import TextModel, load_text_model

# A GGUF of a big model may say 128k tokens of context; its KV cache at that length takes many GB. The app asks for
# the file's own length up to this (what most writing needs), as LM Studio and Ollama default to a few thousand.
MAX_DEFAULT_CONTEXT = 8192
INSTALL_HINT = "llama-cpp-python is not installed: run `bash scripts/install.sh` again, or `pip install llama-cpp-python`"


def llama_available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except (ImportError, OSError):  # OSError: the package is there but its shared library can't load
        return False
    return True


def builtin_gguf(folder: Path) -> Path | None:
    """The GGUF a built-in model folder ships beside its safetensors (models/text-gpt/text-gpt.gguf), if any."""
    found = sorted(Path(folder).glob("*.gguf"))
    return found[0] if found else None


def llama_threads() -> int:
    """LATENT_STUDIO_THREADS when set, else llama-cpp-python's own default, half the logical cores: llama.cpp's
    threads spin while they wait for each other, so one busy core stalls them all (measured here: 2 threads on 2
    busy cores, 48 ms a token; 1 thread, 1.6 ms)."""
    wanted = os.environ.get("LATENT_STUDIO_THREADS", "")
    if wanted.isdigit() and int(wanted) > 0:
        return int(wanted)
    return max(1, (os.cpu_count() or 2) // 2)


def cpu_has_amx() -> bool:
    """Whether this (Linux) CPU says it has AMX tiles."""
    try:
        return "amx_tile" in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


@contextlib.contextmanager
def weight_repacking(allowed: bool):
    """llama.cpp repacks quantized weights for the CPU's fastest kernels ("extra buffer types"). Measured here, on a
    VM whose CPU lists AMX: every Q8_0/Q4_0 GGUF (llama.cpp's own quantizer's too) segfaults at its first token,
    and runs once repacking is off. llama-cpp-python doesn't expose the switch, so the model parameters it asks
    llama.cpp for are changed while one model loads (the engine loads one at a time)."""
    if allowed:
        yield
        return
    import llama_cpp.llama_cpp as native

    original = native.llama_model_default_params

    def without_repacking():
        params = original()
        params.use_extra_bufts = False
        return params

    native.llama_model_default_params = without_repacking
    try:
        yield
    finally:
        native.llama_model_default_params = original


def gpu_layers(device: str) -> int:
    """All layers on the GPU when llama.cpp was built with CUDA/Metal and the app's device is a GPU; else none."""
    import llama_cpp

    return -1 if device != "cpu" and llama_cpp.llama_supports_gpu_offload() else 0


def choose_runtime(source: catalog.ModelSource, wanted: str = "auto") -> str:
    """What runs a job's model: "llama.cpp" for a GGUF file, and for a built-in that ships a GGUF when llama.cpp is
    installed (its fastest path) unless transformers is asked for; "transformers" for other language models; the
    model's own loop ("auto") for the n-gram and recurrent models."""
    if source.kind == "gguf":
        if wanted == "transformers":
            raise UserError(f"{source.name} is a GGUF file: only llama.cpp runs it (choose the runtime Auto)")
        return "llama.cpp"
    if source.kind not in ("transformers", "hub"):
        return "auto"
    shipped = source.ref.startswith(catalog.BUILTIN_PREFIX) and builtin_gguf(source.path) is not None
    if wanted == "llama.cpp":
        if not shipped:
            raise UserError(f"{source.name} has no GGUF file for llama.cpp; choose a GGUF file or the runtime Auto")
        if not llama_available():
            raise UserError(INSTALL_HINT)
        return "llama.cpp"
    return "llama.cpp" if wanted == "auto" and shipped and llama_available() else "transformers"


class LlamaTextModel(TextModel):
    """A llama.cpp context over one GGUF file. It holds one sequence: `start` reuses the longest common prefix of
    what it read before (the KV cache), so a continuation or a fork re-reads only what changed."""

    def __init__(self, llm, name: str = "", gpu: bool = False) -> None:
        import llama_cpp

        self.llm, self.name, self.gpu = llm, name, gpu
        self.max_context = llm.n_ctx()
        self.eos_id = llm.token_eos()
        self.metadata = dict(llm.metadata)
        self.chat_template = self.metadata.get("tokenizer.chat_template")
        self._add_bos = llm._model.add_bos_token() and llm.token_bos() >= 0
        self._n_vocab = llm.n_vocab()
        self._logits_of = llama_cpp.llama_get_logits_ith
        self._pieces: dict[int, bytes] = {}

    def encode(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False) if text else []

    def decode(self, ids: list[int]) -> str:
        # Each token's bytes once (llama.cpp's detokenize is this same join, one ctypes call a token, every time):
        # the loop decodes the whole output after every token.
        pieces = self._pieces
        for token in ids:
            if token not in pieces:
                pieces[token] = self.llm.detokenize([token])
        return b"".join(pieces[token] for token in ids).decode("utf-8", errors="replace")

    def vocab_size(self) -> int:
        return self._n_vocab

    def space_led_tokens(self) -> list[int] | None:
        if not hasattr(self, "_space_led"):
            ids = [i for i, t in enumerate(self.vocab_texts()) if len(t) > 1 and t[0] == " "]
            self._space_led = ids or None
        return self._space_led

    def _logits(self):
        """The next token's logits as a NumPy row (what the chain works on), copied: llama.cpp overwrites its
        buffer at the next token."""
        import ctypes

        import numpy as np

        row = np.empty(self._n_vocab, dtype=np.float32)
        ctypes.memmove(row.ctypes.data, self._logits_of(self.llm.ctx, -1), self._n_vocab * 4)
        return row

    def _read(self, ids: list[int]):
        """Make the context hold exactly `ids`, reading only what differs from what it holds; the next logits."""
        held = self.llm.n_tokens
        same = 0
        for a, b in zip(self.llm.input_ids[:held].tolist(), ids, strict=False):
            if a != b:
                break
            same += 1
        self.llm.n_tokens = min(same, len(ids) - 1)  # at least the last token is read again, for its logits
        self.llm.eval(ids[self.llm.n_tokens :])
        return self._logits()

    def start(self, ids: list[int]):
        ids = list(ids)
        if self._add_bos and (not ids or ids[0] != self.llm.token_bos()):
            ids = [self.llm.token_bos(), *ids]
        if not ids:
            ids = [self.eos_id]  # GPT-2 convention: start of text = end of text
        ids = ids[-(self.max_context - 1) :]  # leave room for at least one new token
        return list(ids), self._read(ids)

    def step(self, state, token_id: int):
        state.append(token_id)
        if len(state) >= self.max_context:
            # Context full: keep the last three quarters and re-read them, as the transformers path does.
            del state[: len(state) - self.max_context * 3 // 4]
            return state, self._read(state)
        self.llm.eval([token_id])
        return state, self._logits()

    def render_chat(self, messages: list[dict]) -> tuple[str, tuple[str, ...]]:
        if not self.chat_template:
            return super().render_chat(messages)
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def piece(token: int) -> str:
            return self.llm.detokenize([token], special=True).decode("utf-8", "replace") if token >= 0 else ""

        formatter = Jinja2ChatFormatter(self.chat_template, eos_token=piece(self.eos_id),
                                        bos_token=piece(self.llm.token_bos()))
        try:
            rendered = formatter(messages=list(messages))
        except Exception as exc:  # noqa: BLE001 - a template is the file's data: any error in it is the file's
            raise UserError(f"{self.name}: its chat template can't be used ({type(exc).__name__}: {exc})") from exc
        prompt = rendered.prompt
        bos = piece(self.llm.token_bos())
        if self._add_bos and bos and prompt.startswith(bos):
            prompt = prompt[len(bos) :]  # start() adds the BOS token itself; as text it would be read twice
        stops = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop] if rendered.stop else []
        return prompt, tuple(s for s in stops if s)


def load_gguf(path: Path, device: str = "cpu", name: str = "") -> LlamaTextModel:
    """A GGUF file as a TextModel: its own context length (up to MAX_DEFAULT_CONTEXT), layers on the GPU when the
    build can, `llama_threads()` threads."""
    if not llama_available():
        raise UserError(INSTALL_HINT)
    import llama_cpp

    # Past its trained length a model writes nonsense (GPT-2's position table simply ends): never ask for more.
    trained = context_length(catalog.check_gguf_file(path))
    context = min(trained or MAX_DEFAULT_CONTEXT, MAX_DEFAULT_CONTEXT)
    layers = gpu_layers(device)
    try:
        with weight_repacking(allowed=not cpu_has_amx()):
            llm = llama_cpp.Llama(str(path), n_ctx=context, n_batch=min(512, context), n_gpu_layers=layers,
                                  n_threads=llama_threads(), seed=0, verbose=False)
    except (ValueError, RuntimeError, OSError) as exc:
        raise catalog.CorruptModelError(f"{Path(path).name}: llama.cpp cannot load it ({exc})") from exc
    return LlamaTextModel(llm, name or Path(path).stem, gpu=layers != 0)


def runtime_for_adapters(wanted: str, adapters: list) -> str:
    """The Train tab's adapters are PEFT weights merged into a transformers model: with any, "auto" means
    transformers, and llama.cpp asked for by name is an error."""
    if not adapters:
        return wanted
    if wanted == "llama.cpp":
        raise UserError("Adapters trained in the Train tab run on the transformers runtime: choose Auto or transformers")
    return "transformers" if wanted == "auto" else wanted


def load_for_runtime(source: catalog.ModelSource, device: str, dtype: str, online: bool, runtime: str,
                     adapters: list | None = None) -> TextModel:
    """The model as `choose_runtime` decided: a GGUF (a file, or the one a built-in ships) through llama.cpp, else
    the loaders of models.py (which merge `adapters`)."""
    if runtime == "llama.cpp":
        path = source.path if source.kind == "gguf" else builtin_gguf(source.path)
        return load_gguf(Path(path), device, source.name)
    return load_text_model(source, device, dtype, online=online, adapters=adapters)
