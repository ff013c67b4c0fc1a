"""Text generation speed, in one run, as ratios within it (the machine is shared: see "load_average"):

1. transformers: the app's sampling loop vs bare `model.generate` (same model, prompt, settings, new tokens).
2. GGUF: the app's loop on the built-in text-gpt.gguf (llama.cpp computes the logits, our chain samples) vs
   llama.cpp's own generate through llama-cpp-python (`Llama.generate`, its samplers in C), same settings, same
   threads; sampled (the app's default controls) and greedy. Goal >= 0.9.
3. Server: the app's OpenAI backend streaming from a local llama-cpp-python server vs the server's own timings
   (llama.cpp's perf counters, which the server prints for every request). Goal >= 0.9.
4. The time our sampling chain adds per token, at a 2k and a 32k vocabulary (random logits).
5. First-token latency of each path.
Run: python benchmarks/text_speed.py [--tokens 200] [--runs 5] [--skip-server]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import write_results  # noqa: E402
from benchmarks._text import GGUF_PROMPT, SAMPLED, median, steady_rate  # noqa: E402

PROMPT = "The meaning of life is"


def card_figures(folder: Path) -> dict:
    """Held-out figures the training wrote beside the model (eval.json or training.json), if any."""
    for name in ("eval.json", "training.json", "metrics.json"):
        path = folder / name
        if path.exists():
            figures = json.loads(path.read_text())
            # The per-evaluation history is the card's curve, not a figure of this benchmark.
            return {k: v for k, v in figures.items() if k not in ("history", "corpus_changes", "by_source")}
    return {}


def say(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def transformers_figures(args, device) -> dict:
    import torch

    from studio.core import catalog
    from studio.engine.text import generate as text

    model = text.load_text_model(catalog.resolve("builtin:text-gpt"), device.device, "float32")
    settings = text.TextSettings.from_params({"temperature": 0.8, "top_k": 40, "top_p": 1.0, "repetition_penalty": 1.0,
                                              "max_new_tokens": args.tokens, "stop": [], "inspect": False})
    hf_model, tokenizer = model.model, model.tokenizer
    inputs = tokenizer(PROMPT, return_tensors="pt").to(device.device)

    def bare() -> float:
        torch.manual_seed(0)
        started = time.perf_counter()
        with torch.inference_mode():
            out = hf_model.generate(**inputs, do_sample=True, temperature=0.8, top_k=40, top_p=1.0,
                                    max_new_tokens=args.tokens, min_new_tokens=args.tokens,
                                    pad_token_id=tokenizer.eos_token_id)
        return (out.shape[1] - inputs["input_ids"].shape[1]) / (time.perf_counter() - started)

    def ours() -> tuple[float, float]:
        result = text.generate(model, PROMPT, settings, seed=0, report=lambda p: None, cancelled=lambda: False)
        return result.tokens_per_s, result.first_token_s

    bare(), ours()
    bare_rates, our_rates, firsts = [], [], []
    for _ in range(args.runs):
        bare_rates.append(bare())
        rate, first = ours()
        our_rates.append(rate)
        firsts.append(first)
    return {"bare_generate_tokens_per_s": median(bare_rates), "app_loop_tokens_per_s": median(our_rates),
            "ratio_app_vs_bare": round(statistics.median(our_rates) / statistics.median(bare_rates), 3),
            "first_token_ms": round(statistics.median(firsts) * 1000, 1), "goal_ratio": 0.97}


def llama_own_rate(llm, prompt_ids: list[int], tokens: int, seed: int, greedy: bool) -> float:
    """llama-cpp-python's own generate: its C samplers (penalties, top-k, top-p, min-p, temperature, dist)."""
    llm.reset()
    llm.set_seed(seed)
    started, first, count = time.perf_counter(), 0.0, 0
    params = {"temp": 0.0, "repeat_penalty": SAMPLED["repetition_penalty"]} if greedy else {
        "temp": SAMPLED["temperature"], "top_k": SAMPLED["top_k"], "top_p": SAMPLED["top_p"],
        "min_p": SAMPLED["min_p"], "repeat_penalty": SAMPLED["repetition_penalty"]}
    for token in llm.generate(prompt_ids, reset=True, **params):
        count += 1
        if count == 1:
            first = time.perf_counter() - started
        if token == llm.token_eos() or count >= tokens:
            break
    return steady_rate(count, time.perf_counter() - started, first)


def llama_eval_rate(model, tokens: list[int]) -> float:
    """llama.cpp's compute alone: the same tokens read one by one, no sampling at all (the ceiling)."""
    model.start(tokens[:1])
    started = time.perf_counter()
    for token in tokens[1:]:
        model.llm.eval([token])
    return (len(tokens) - 1) / (time.perf_counter() - started)


def gguf_figures(args) -> dict:
    from studio import paths
    from studio.engine.text.generate import generate
    from studio.engine.text.llama import llama_threads, load_gguf
    from studio.engine.text.settings import TextSettings

    model = load_gguf(paths.builtin_model_dir("text-gpt") / "text-gpt.gguf")
    prompt_ids = model.encode(GGUF_PROMPT)
    figures: dict = {"threads": llama_threads(), "prompt": GGUF_PROMPT,
                     "rates": "tokens/s after the first token (prompt and setup left out)"}
    for label, greedy in (("sampled", False), ("greedy", True)):
        settings = TextSettings(**SAMPLED, greedy=greedy, max_new_tokens=args.tokens, inspect=False)
        with_inspector = TextSettings(**SAMPLED, greedy=greedy, max_new_tokens=args.tokens, inspect=True)
        llama_own_rate(model.llm, prompt_ids, args.tokens, 0, greedy)
        generate(model, GGUF_PROMPT, settings, 0)
        own, ours, inspected, firsts, ceiling = [], [], [], [], []
        for run in range(args.runs):
            own.append(llama_own_rate(model.llm, prompt_ids, args.tokens, run, greedy))
            result = generate(model, GGUF_PROMPT, settings, run)
            elapsed = len(result.token_ids) / result.tokens_per_s if result.tokens_per_s else 0.0
            ours.append(steady_rate(len(result.token_ids), elapsed, result.first_token_s))
            firsts.append(result.first_token_s)
            ceiling.append(llama_eval_rate(model, prompt_ids + result.token_ids))
            inspected.append(generate(model, GGUF_PROMPT, with_inspector, run).tokens_per_s)
        figures[label] = {
            "llama_cpp_generate_tokens_per_s": median(own), "app_tokens_per_s": median(ours),
            "ratio_app_vs_llama_cpp": round(statistics.median(ours) / statistics.median(own), 3),
            "llama_cpp_compute_only_tokens_per_s": median(ceiling),
            "ratio_app_vs_compute_only": round(statistics.median(ours) / statistics.median(ceiling), 3),
            "app_with_token_candidates_tokens_per_s_incl_prompt": median(inspected),
            "first_token_ms": round(statistics.median(firsts) * 1000, 2), "goal_ratio": 0.9}
    return figures


def chain_figures() -> dict:
    """µs our chain (sampling.py via chain.py) takes per token on random logits, with the app's defaults and
    with every newer sampler on; plus what recording the token candidates adds. Wall time and this process's CPU
    time (the CPU figure moves less with what else runs on the machine)."""
    import torch

    from studio.engine.text.chain import SamplerChain
    from studio.engine.text.sampling import inspect_candidates
    from studio.engine.text.settings import TextSettings

    class Vocabulary:  # what SamplerChain asks of a model, for a vocabulary of `size`
        eos_id = 0

        def __init__(self, size: int) -> None:
            self.size = size

        def encode(self, text: str) -> list[int]:
            return [1]

        def vocab_texts(self) -> list[str]:
            return [f"t{i}" for i in range(self.size)]

    cases = {"defaults": TextSettings(inspect=False),
             "dry_xtc_mirostat_dynatemp_min_p": TextSettings(dry_multiplier=0.8, xtc_probability=0.5, mirostat=True,
                                                             dynamic_temperature=True, min_p=0.05, inspect=False)}
    figures: dict = {}
    for size in (2048, 32000):
        generator = torch.Generator().manual_seed(0)
        rows = [torch.randn(size, generator=generator) * 3 for _ in range(40)]
        history = [int(i) for i in torch.randint(0, size, (256,), generator=generator)]
        rows = [row.numpy() for row in rows]  # as the models hand them over
        for name, settings in cases.items():
            chain = SamplerChain(settings, Vocabulary(size), 0)
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(5):
                for row in rows:
                    chain.choose(chain.process(row, history))
            count = 5 * len(rows)
            figures[f"vocab_{size}_{name}_us"] = round((time.perf_counter() - wall) / count * 1e6, 1)
            figures[f"vocab_{size}_{name}_cpu_us"] = round((time.process_time() - cpu) / count * 1e6, 1)
        wall, cpu = time.perf_counter(), time.process_time()
        for row in rows:
            inspect_candidates(row, row, lambda ids: "x")
        figures[f"vocab_{size}_token_candidates_us"] = round((time.perf_counter() - wall) / len(rows) * 1e6, 1)
        figures[f"vocab_{size}_token_candidates_cpu_us"] = round((time.process_time() - cpu) / len(rows) * 1e6, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-server", action="store_true")
    args = parser.parse_args()

    import torch

    from studio.core.devices import cpu_threads, pick_device

    torch.set_num_threads(cpu_threads())
    device = pick_device("auto")
    figures: dict = {"device": device.label, "new_tokens": args.tokens, "runs": args.runs,
                     "torch_threads": torch.get_num_threads(),
                     "load_average_at_start": [round(v, 2) for v in os.getloadavg()]}
    say("transformers: app loop vs model.generate")
    figures["transformers"] = transformers_figures(args, device)
    say("GGUF: app vs llama.cpp's own generate")
    figures["gguf_llama_cpp"] = gguf_figures(args)
    if not args.skip_server:
        from benchmarks.text_server_speed import server_figures

        say("OpenAI-compatible server: app vs the server")
        figures["openai_server"] = server_figures(args)
    say("the sampling chain alone")
    figures["sampling_chain"] = chain_figures()
    figures["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    figures["model_card_figures"] = card_figures(ROOT / "models" / "text-gpt")
    write_results("text_speed", figures)


if __name__ == "__main__":
    main()
