"""Text generation speed: the app's sampling loop (streaming, per-token cancel checks) vs bare `model.generate`.

Same model, prompt, sampling settings and number of new tokens, alternated in one run.
Figures: tokens/s of each, ratio app/bare (goal >= 0.97), first-token latency, and held-out
bits/byte of the built-in neural model and of the Markov baseline (from their model cards' JSON).
Run: python benchmarks/text_speed.py [--model builtin:text-gpt] [--tokens 200] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import write_results  # noqa: E402

PROMPT = "The meaning of life is"


def card_figures(folder: Path) -> dict:
    """Held-out figures the training wrote beside the model (eval.json or training.json), if any."""
    for name in ("eval.json", "training.json", "metrics.json"):
        path = folder / name
        if path.exists():
            figures = json.loads(path.read_text())
            # The per-evaluation history is the card's curve, not a figure of this benchmark.
            return {k: v for k, v in figures.items() if k not in ("history", "corpus_changes")}
    return {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="builtin:text-gpt")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import torch

    from studio.core import catalog
    from studio.core.devices import pick_device
    from studio.engine.text import generate as text

    device = pick_device("auto")
    source = catalog.resolve(args.model)
    model = text.load_text_model(source, device.device, "float32")
    # Sampling without filters that `generate` and our loop implement differently: temperature + top-k.
    settings = text.TextSettings.from_params({"temperature": 0.8, "top_k": 40, "top_p": 1.0, "repetition_penalty": 1.0,
                                              "max_new_tokens": args.tokens, "stop": []})
    hf_model, tokenizer = model.model, model.tokenizer
    inputs = tokenizer(PROMPT, return_tensors="pt").to(device.device)

    def bare() -> tuple[float, int]:
        torch.manual_seed(0)
        started = time.perf_counter()
        with torch.inference_mode():
            out = hf_model.generate(**inputs, do_sample=True, temperature=0.8, top_k=40, top_p=1.0,
                                    max_new_tokens=args.tokens, min_new_tokens=args.tokens,
                                    pad_token_id=tokenizer.eos_token_id)
        return time.perf_counter() - started, out.shape[1] - inputs["input_ids"].shape[1]

    def ours() -> tuple[float, int, float]:
        started = time.perf_counter()
        result = text.generate(model, PROMPT, settings, seed=0, report=lambda p: None, cancelled=lambda: False)
        return time.perf_counter() - started, len(result.token_ids), result.first_token_s

    bare()
    ours()
    bare_rates, our_rates, first_tokens = [], [], []
    for _ in range(args.runs):
        seconds, count = bare()
        bare_rates.append(count / seconds)
        seconds, count, first = ours()
        our_rates.append(count / seconds)
        first_tokens.append(first)
    figures = {
        "model": args.model,
        "device": device.label,
        "new_tokens": args.tokens,
        "runs": args.runs,
        "bare_generate_tokens_per_s": round(statistics.median(bare_rates), 1),
        "app_loop_tokens_per_s": round(statistics.median(our_rates), 1),
        "ratio_app_vs_bare": round(statistics.median(our_rates) / statistics.median(bare_rates), 3),
        "first_token_ms": round(statistics.median(first_tokens) * 1000, 1),
        "goal_ratio": 0.97,
    }
    if source.path is not None:
        figures["model_card_figures"] = card_figures(Path(source.path))
    markov = catalog.resolve("builtin:text-markov") if (ROOT / "models" / "text-markov").exists() else None
    if markov is not None:
        figures["markov_card_figures"] = card_figures(Path(markov.path))
    write_results("text_speed", figures)


if __name__ == "__main__":
    main()
