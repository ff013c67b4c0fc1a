"""Export of the neural text model: fp16 weights, tokenizer, training.json, loss curve and MODEL_CARD.md.

    python -m studio.training.text export   # the run's best weights -> models/text-gpt/
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from studio import paths
from studio.data import text as text_data
from studio.training import run as run_files
from studio.training.text_compare import per_source_figures
from studio.training.text_gguf import export_gguf
from studio.training.text_model import (
    MARKOV_NAME,
    MODEL_NAME,
    TRAINING_KEYS,
    held_out_bits_per_byte,
    model_from_settings,
    sample_text,
)
from studio.training.text_tokens import bytes_per_token, prepare_data


def export(args: argparse.Namespace) -> None:
    run_dir = Path(args.run_dir)
    out = Path(args.out) if args.out else paths.builtin_model_dir(MODEL_NAME)
    settings = json.loads((run_dir / "settings.json").read_text())
    state = run_files.read_checkpoint(run_dir / run_files.CHECKPOINT)["state"]
    best = json.loads((run_dir / "best.json").read_text())
    tokenizer = write_weights(run_dir, settings, out)
    gguf = export_gguf(out)  # the same weights for llama.cpp: the app's fastest path (text_gguf.py)

    # Numbers for the card: held-out bits/byte of the fp16 weights as shipped, and the Markov baseline.
    _, train_stream, held_stream, summary = prepare_data(run_dir, settings["vocab_size"])
    token_bytes = bytes_per_token(tokenizer)
    shipped = model_from_settings(settings, len(tokenizer), dropout=0.0)
    run_files.load_weights(shipped, out / "model.safetensors")
    shipped.tie_weights()
    bpb = held_out_bits_per_byte(shipped, held_stream, token_bytes, settings["context"])
    markov_file = run_dir.parent / MARKOV_NAME / "baseline.json"
    markov = json.loads(markov_file.read_text()) if markov_file.exists() else {}
    markov_bpb = markov.get("held_out_bpb")
    changes = [c["step"] for c in state.get("corpus_changes", [])]
    draw_loss_curve(
        state["history"], markov_bpb, out / "loss_curve.png", float(token_bytes[train_stream].mean()), changes
    )
    samples = [
        sample_text(shipped, tokenizer, prompt, new_tokens=100, temperature=0.8, seed=i)
        for i, prompt in enumerate(["The", "A hacker", "Love is", "Q:"])
    ]
    training = {k: state[k] for k in TRAINING_KEYS if k in state}
    training["step"] = max(training["step"], best["step"])  # an evaluation can come after the last checkpoint
    training.update(
        {"best_step": best["step"], "held_out_bpb_fp16": bpb, "markov_bpb": markov_bpb, "settings": settings}
    )
    training["by_source"] = by_source = per_source_figures(out / "model.safetensors", out)
    (out / "training.json").write_text(json.dumps(training, indent=1))
    write_model_card(
        out, settings, summary, training, bpb, markov, samples, sum(p.numel() for p in shipped.parameters()), by_source
    )
    run_files.log(f"wrote {gguf.name} ({gguf.stat().st_size / 1e6:.1f} MB)")
    run_files.log(
        f"exported step {best['step']} to {out}: {run_files.folder_size(out) / 1e6:.1f} MB, "
        f"held-out {bpb:.3f} bits/byte (Markov {markov_bpb})"
    )


def write_weights(run_dir: Path, settings: dict, out: Path):
    """The run's best weights as fp16 safetensors + config.json in `out`, with the tokenizer; returns the tokenizer.

    The files hold fp16; the app's loader asks for float32 on CPU.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
    model = model_from_settings(settings, len(tokenizer))
    run_files.load_weights(model, run_dir / "best.safetensors")
    model.tie_weights()
    model.eval()
    tokenizer.model_max_length = settings["context"]
    run_files.save_fp16_pretrained(model, out)
    tokenizer.save_pretrained(out)
    portable_tokenizer_config(out / "tokenizer_config.json")
    return tokenizer


def portable_tokenizer_config(path: Path) -> None:
    """Name the class transformers 4.x and 5.x both know (5.x writes its own "TokenizersBackend")."""
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    for machine_specific in ("is_local", "local_files_only", "backend"):
        config.pop(machine_specific, None)
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def write_model_card(
    out: Path,
    settings: dict,
    summary: dict,
    training: dict,
    bpb: float,
    markov: dict,
    samples: list[str],
    params: int,
    by_source: dict | None = None,
) -> None:
    markov_bpb = markov.get("held_out_bpb")
    gain = 100 * (1 - bpb / markov_bpb) if markov_bpb else None
    versus = "not measured against" if gain is None else f"{gain:.1f} % below" if gain >= 0 else f"{-gain:.1f} % above"
    hours = training["wall_seconds"] / 3600
    sample_text_md = "\n\n".join("```\n" + s.strip() + "\n```" for s in samples)
    corpus_history = "".join(
        f"Up to step {change['step']:,} the model trained on an earlier, different corpus; "
        f"from there it went on with those weights on the corpus above, with a fresh optimiser (warm-up, cosine). "
        f"Held-out figures before that step are on the earlier corpus's held-out set (the broken line in the curve).\n"
        for change in training.get("corpus_changes", [])
    )
    by_source_md = ""
    if by_source:
        rows = "\n".join(
            f"| {name} | {f['held_out_bytes']:,} | {f['gpt_bpb']:.3f} | {f['markov_bpb']:.3f} | {f['gpt_below_markov_percent']:.1f} % |"
            for name, f in by_source.items()
        )
        by_source_md = (
            "\nBy source (`python -m studio.training.text compare`; the Markov model retrained on the same split):\n\n"
            "| held-out part | bytes | text-gpt | order-5 Markov | text-gpt below Markov |\n|---|---|---|---|---|\n"
            + rows
            + "\n"
        )
    card = f"""# text-gpt — the built-in neural text model of Latent Studio

A small GPT-2-style causal language model (transformers `GPT2LMHeadModel`) trained from scratch on
fortune cookies and three hacker/satirical dictionaries (the Jargon File, The Devil's Dictionary, FOLDOC).
It writes short quips, jokes and dictionary-style entries. Load it like any transformers model:

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained("models/text-gpt")
model = AutoModelForCausalLM.from_pretrained("models/text-gpt")
```

## Data and licence
{text_data.corpus_markdown(summary)}
- {text_data.WEIGHTS_LICENCE}

## Architecture
GPT-2: {settings["layers"]} layers × {settings["width"]} wide, {settings["heads"]} heads, context {settings["context"]} tokens,
tied input/output embeddings, {params / 1e6:.2f} M parameters, stored as fp16 safetensors.
Tokenizer: byte-level BPE (`tokenizers`), {settings["vocab_size"]} tokens including `<|endoftext|>`, which ends each entry.

## Training
`python -m studio.training.text train` on CPU (1-2 threads, nice 10): AdamW (β 0.9/0.95, weight decay 0.1),
peak learning rate with warm-up and cosine decay, batches of 8 random {settings["context"]}-token windows, dropout {settings["dropout"]}.
Steps: {training["step"]:,} ({training["tokens"]:,} tokens); wall time {hours:.2f} h. The exported weights are the best
held-out checkpoint (step {training["best_step"]:,}).
{corpus_history}
![loss curve](loss_curve.png)

## Evaluation (held-out bits per byte, lower is better)
| model | bits/byte |
|---|---|
| text-gpt (these fp16 weights) | {bpb:.3f} |
| order-5 byte Markov, {markov.get("smoothing", "interpolated Kneser-Ney")} (`models/text-markov`) | {markov_bpb if markov_bpb is None else f"{markov_bpb:.3f}"} |

text-gpt is {versus} the Markov baseline. Both predict the same held-out entries, each followed by an
end-of-text symbol counted as one byte.
{by_source_md}
## Samples (temperature 0.8, seeds 0-3)
{sample_text_md}
"""
    (out / "MODEL_CARD.md").write_text(card, encoding="utf-8")



def draw_loss_curve(
    history: list[dict],
    markov_bpb: float | None,
    path: Path,
    bytes_per_train_token: float = 1.0,
    corpus_changes: list[int] | None = None,
) -> None:
    """Held-out (blue) and training (grey, smoothed) bits/byte against step, drawn with Pillow (no matplotlib).

    A corpus change (a dashed line) starts a new held-out set: the blue line is broken there, because
    figures on two different held-out sets are not one curve.
    """
    from PIL import Image, ImageDraw

    width, height, margin = 640, 360, 48
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    points = [(h["step"], h["held_out_bpb"]) for h in history if h.get("held_out_bpb") is not None]
    train = [(h["step"], h["train_loss"] / math.log(2) / bytes_per_train_token) for h in history if h.get("train_loss")]
    if not points:
        image.save(path)
        return
    max_step = max(p[0] for p in points) or 1
    values = [p[1] for p in points] + ([markov_bpb] if markov_bpb else [])
    low, high = min(values + [v for _, v in train] + [2.0]) - 0.1, min(max(values), 8.0) + 0.1

    def xy(step: float, value: float) -> tuple[float, float]:
        x = margin + (width - 2 * margin) * step / max_step
        y = height - margin - (height - 2 * margin) * (min(value, high) - low) / (high - low)
        return x, y

    draw.rectangle([margin, margin, width - margin, height - margin], outline="black")
    for level in np.arange(math.ceil(low * 2) / 2, high, 0.5):
        _, y = xy(0, level)
        draw.line([margin, y, width - margin, y], fill=(225, 225, 225))
        draw.text((4, y - 6), f"{level:.1f}", fill="black")
    if markov_bpb:
        _, y = xy(0, markov_bpb)
        draw.line([margin, y, width - margin, y], fill=(200, 60, 60), width=2)
        draw.text((width - margin - 190, y - 14), f"order-5 Markov {markov_bpb:.3f}", fill=(200, 60, 60))
    if len(train) > 1:
        draw.line([xy(s, v) for s, v in train], fill=(150, 150, 150), width=1)
    changes = sorted(corpus_changes or [])
    for change in changes:
        x, _ = xy(change, low)
        for y in range(margin, height - margin, 8):
            draw.line([x, y, x, y + 4], fill=(90, 90, 90))
        draw.text((x - 84, margin + 6), "larger corpus ->", fill=(90, 90, 90))
    bounds = [-1] + changes + [float("inf")]
    for begin, end in zip(bounds, bounds[1:], strict=False):
        segment = [xy(s, v) for s, v in points if begin < s <= end]
        if segment:
            draw.line(segment if len(segment) > 1 else segment * 2, fill=(30, 90, 200), width=2)
    baseline_note = " on the latest corpus" if changes else ""
    draw.text(
        (margin, 12),
        f"bits/byte: text-gpt held-out (blue), training (grey); Markov baseline{baseline_note} (red)",
        fill="black",
    )
    draw.text((width - margin - 80, height - margin + 8), f"step {max_step:,}", fill="black")
    draw.text((margin, height - margin + 8), "0", fill="black")
    image.save(path)

