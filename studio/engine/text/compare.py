"""Compare families: one model's run of a side-by-side comparison (Markov, RNN, transformer), and the saving of
the comparison as one history entry.

Job kind "text.compare" (see studio/media.py), two uses:
  args {"family": NAME}      generate with job.recipe exactly as text.generate does (same loop, same model cache),
                             and measure the text's surprise under the model that wrote it; returns Result.value
                             {"family", "model", "text", "tokens", "tokens_per_s", "surprise_bits", "bits_per_byte"}.
  args {"columns": [...]}    nothing to run: the finished columns become one text Artifact (a Markdown page with
                             the three texts) whose recipe holds the three models, the shared settings and the
                             columns, so the Gallery entry restores the whole comparison.

Surprise: the mean of -log2 P(token | all before it) over the generated tokens, P being the model's own
distribution before any sampling control (temperature, top-k/p, penalties): how unexpected the model finds its own
output, in bits per token. Tokens differ between families (the Markov model reads bytes, the others BPE pieces),
so bits per byte of the text (the total bits over its UTF-8 bytes) is given beside it: that one compares across
tokenizers. The prompt is scored too (`prompt_surprise`, bits per byte): for a prompt from the held-out set that is
the families' fair comparison on the same text.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from studio.core import catalog
from studio.core import compare as comparison
from studio.core.jobs import Artifact, Job, Result, TaskContext
from studio.engine.text.generate import generate, load_text_model, model_key, resolve_seed, source_hash
from studio.engine.text.settings import TextSettings

OPERATION = "text.compare"
PROMPT_LIMIT = 200  # tokens of the prompt scored (its end): within text-gpt's 256 positions, and quick


class RecordingModel:
    """A TextModel that keeps every row of logits it hands the loop (row i is the distribution of token i)."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.rows: list = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def start(self, prompt_ids):
        state, logits = self._model.start(prompt_ids)
        self.rows.append(logits)
        return state, logits

    def step(self, state, token):
        state, logits = self._model.step(state, token)
        self.rows.append(logits)
        return state, logits


def surprise_bits(rows: list, token_ids: list[int]) -> list[float]:
    """-log2 P(token_i) under rows[i] (raw logits), for every token that has its row."""
    import torch

    bits = []
    for logits, token in zip(rows, token_ids, strict=False):
        log_probs = torch.log_softmax(logits.float().reshape(-1), -1)
        bits.append(-float(log_probs[int(token)]) / math.log(2.0))
    return bits


def prompt_surprise(model: Any, prompt: str, cancelled=None) -> tuple[list[float], int]:
    """The prompt's own surprise under the model: -log2 P of each of its tokens after the first (the last
    PROMPT_LIMIT tokens), and the UTF-8 bytes those tokens spell. On text none of the models was trained on (the
    held-out set) this is the fair comparison of the families; on text one of them learnt, it flatters that one."""
    import torch

    from studio.core.jobs import Cancelled

    ids = list(model.encode(prompt))[-PROMPT_LIMIT:]
    if len(ids) < 2:
        return [], 0
    state, logits = model.start(ids[:1])
    bits = []
    for index, token in enumerate(ids[1:], start=1):
        if cancelled is not None and cancelled():
            raise Cancelled()
        bits.append(-float(torch.log_softmax(logits.float().reshape(-1), -1)[int(token)]) / math.log(2.0))
        if index + 1 < len(ids):
            state, logits = model.step(state, token)
    return bits, len(model.decode(ids[1:]).encode("utf-8"))


def compare_task(job: Job, ctx: TaskContext) -> Result:
    return comparison.compare_task(job, ctx, _run, _save)


def _run(job: Job, recipe, ctx: TaskContext) -> Result:
    settings = replace(TextSettings.from_params(dict(recipe.params)), inspect=False, mode="complete")
    source = catalog.resolve(recipe.model)
    device = recipe.device or ctx.device.device  # as text.generate decides: the two share the loaded model
    dtype = "float32" if device == "cpu" else (recipe.dtype or ctx.device.dtype)
    model = ctx.models.get("text", model_key(source, device, dtype), lambda: load_text_model(source, device, dtype))
    recording = RecordingModel(model)
    seed = resolve_seed(recipe.seed)
    family = job.args.get("family", "")
    # the comparison view's preview, not the Text panel's page (which takes only a str preview, of its own job)
    report = comparison.tagged(ctx, family, "text")
    result = generate(recording, recipe.prompt, settings, seed, report=report, cancelled=ctx.cancelled)
    bits = surprise_bits(recording.rows, result.token_ids)
    size = len(result.text.encode("utf-8"))
    prompt_bits, prompt_bytes = prompt_surprise(model, recipe.prompt, ctx.cancelled)
    value = {
        "family": family, "model": recipe.model, "model_hash": source_hash(source),
        "text": result.text, "tokens": len(result.token_ids), "token_ids": list(result.token_ids), "tokens_per_s": result.tokens_per_s,
        "surprise_bits": sum(bits) / len(bits) if bits else None,
        "bits_per_byte": sum(bits) / size if bits and size else None, "seed": seed,
        "prompt_bits_per_byte": sum(prompt_bits) / prompt_bytes if prompt_bits and prompt_bytes else None,
    }
    return Result(value=value)


def _save(job: Job, recipe) -> Result:
    columns = list(job.args["columns"])
    page = [f"# Compare families: {recipe.prompt!r}", ""]
    for column in columns:
        page += [f"## {column.get('family', '?')}: {column.get('model', '')}", "", column_figures(column), "",
                 str(column.get("text", "")), ""]
    info = {"columns": len(columns)}
    return Result(artifacts=[Artifact("text", recipe, "\n".join(page).rstrip() + "\n", info=info)])


def column_figures(column: dict) -> str:
    parts = [f"{float(column.get('tokens_per_s') or 0):.0f} tokens/s"]
    if column.get("surprise_bits") is not None:
        parts.append(f"{float(column['surprise_bits']):.2f} bits/token")
    if column.get("bits_per_byte") is not None:
        parts.append(f"{float(column['bits_per_byte']):.2f} bits/byte")
    return " · ".join(parts)
