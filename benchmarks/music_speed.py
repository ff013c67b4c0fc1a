"""Music speed (issue 5): seconds of music per second of compute, generation + synth, for the built-in models.

Each (model, prompt, seed) composes `--bars` bars through `studio.engine.music.generate.generate` (the function the
worker's `music.generate` task calls, with a no-op progress callback so the per-token previews are still
built) and renders them with `studio.engine.music.synth.render_piece` (the recipe's instrument, piano by default).
Real-time factor = music seconds / (generation + synth seconds); goal >= 20x on 2 cores.
In-key: fraction of the generated notes in the requested key's scale (`in_key_fraction`), per requested key,
against the corpus' own rate. Held-out loss is quoted from the model cards, not re-measured (the `eval`
command of studio/training/music.py needs the token cache and a full pass over 300 pieces).
Run: python benchmarks/music_speed.py [--seeds 3] [--bars 8] [--models builtin:music-gpt builtin:music-markov]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import write_results  # noqa: E402

PROMPTS = ["slow chorale in D minor", "lively folk reel in G", "jig in A minor", "waltz in F major",
           "hornpipe in B flat", "air in C minor"]
GOAL_RTF = 20.0


def card_quotes() -> dict:
    """The held-out figures and the corpus in-key rate as the model cards state them."""
    out: dict = {}
    gpt = (ROOT / "models" / "music-gpt" / "MODEL_CARD.md")
    if gpt.exists():
        text = gpt.read_text(encoding="utf-8")
        m = re.search(r"Held-out loss \(fp16 weights as shipped\): ([\d.]+) nats/token vs ([\d.]+)", text)
        if m:
            out["gpt_held_out_nats_per_token"] = float(m.group(1))
            out["best_ngram_held_out_nats_per_token"] = float(m.group(2))
        m = re.search(r"Best held-out checkpoint: step (\d+) \(([\d.]+) nats/token, fp32\)", text)
        if m:
            out["gpt_training_eval_nats_per_token_fp32"] = float(m.group(2))
        m = re.search(r"In-key rate of generated notes.*?:\s*([\d.]+)%; the corpus' own notes fit their tagged key\s*"
                      r"([\d.]+)%", text, re.S)
        if m:
            out["card_gpt_sample_in_key"] = float(m.group(1)) / 100
            out["corpus_in_key"] = float(m.group(2)) / 100
    markov = ROOT / "models" / "music-markov" / "MODEL_CARD.md"
    if markov.exists():
        m = re.search(r"([\d.]+) before pruning, ([\d.]+) as shipped", markov.read_text(encoding="utf-8"))
        if m:
            out["markov_held_out_nats_per_token_unpruned"] = float(m.group(1))
            out["markov_held_out_nats_per_token_shipped"] = float(m.group(2))
    out["source"] = "models/music-gpt/MODEL_CARD.md, models/music-markov/MODEL_CARD.md (quoted, not re-run)"
    return out


def summarise(model_runs: list[dict], load_s: float) -> dict:
    rtfs = [r["rtf"] for r in model_runs]
    gen_total = sum(r["generation_s"] for r in model_runs)
    synth_total = sum(r["synth_s"] for r in model_runs)
    music_total = sum(r["music_s"] for r in model_runs)
    by_key: dict[str, list[float]] = {}
    for r in model_runs:
        by_key.setdefault(r["requested_key"] or "(free)", []).append(r["in_key"])
    # weighted by notes too: the card's corpus rate counts notes, not pieces
    notes_in = sum(r["in_key"] * r["notes"] for r in model_runs)
    notes_all = sum(r["notes"] for r in model_runs)
    worst = min(model_runs, key=lambda r: r["rtf"])
    return {
        "load_s": round(load_s, 3),
        "pieces": len(model_runs),
        "rtf_median": round(statistics.median(rtfs), 1),
        "rtf_worst": round(min(rtfs), 1),
        "rtf_worst_piece": f"{worst['prompt']} seed {worst['seed']}",
        "rtf_aggregate": round(music_total / (gen_total + synth_total), 1),
        "pieces_below_goal": sum(1 for x in rtfs if x < GOAL_RTF),
        "generation_s_median": round(statistics.median(r["generation_s"] for r in model_runs), 4),
        "generation_s_max": round(max(r["generation_s"] for r in model_runs), 4),
        "synth_s_median": round(statistics.median(r["synth_s"] for r in model_runs), 4),
        "synth_s_max": round(max(r["synth_s"] for r in model_runs), 4),
        "music_s_median": round(statistics.median(r["music_s"] for r in model_runs), 2),
        "generation_ms_per_token_median": round(statistics.median(r["generation_ms_per_token"] for r in model_runs), 3),
        "generation_ms_per_token_max": round(max(r["generation_ms_per_token"] for r in model_runs), 3),
        "synth_share_of_compute": round(synth_total / (gen_total + synth_total), 3),
        "in_key_mean_of_pieces": round(statistics.mean(r["in_key"] for r in model_runs), 4),
        "in_key_of_all_notes": round(notes_in / max(1, notes_all), 4),
        "in_key_by_requested_key": {k: round(statistics.mean(v), 4) for k, v in by_key.items()},
        "meets_goal_median": statistics.median(rtfs) >= GOAL_RTF,
        "meets_goal_worst": min(rtfs) >= GOAL_RTF,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["builtin:music-gpt", "builtin:music-markov"])
    parser.add_argument("--prompts", nargs="+", default=PROMPTS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--instrument", default="piano")
    parser.add_argument("--also-threads", type=int, nargs="*", default=[1],
                        help="extra torch thread counts to time the GPT with (alternating with the app's)")
    args = parser.parse_args()
    load_before = os.getloadavg()

    import torch

    from studio.core.devices import pick_device
    from studio.core.recipe import Recipe
    from studio.engine.music import generate as M
    from studio.engine.music import synth

    device = pick_device("cpu")  # sets torch's threads as the app does; music always runs on the CPU
    threads = torch.get_num_threads()
    runs: list[dict] = []
    per_config: dict[str, dict] = {}
    for ref in args.models:
        started = time.perf_counter()
        model = M.load_music_model(ref, "cpu")
        load_s = time.perf_counter() - started
        # The app runs music on torch's global thread count (pick_device sets it: all cores on <= 4 cores).
        # The GPT is also timed on 1 thread, alternating piece by piece, to show what the thread count costs.
        thread_options = ([threads] + [t for t in args.also_threads if t != threads]) if model.kind == "gpt" else [threads]

        def recipe(prompt: str, seed: int, ref: str = ref) -> Recipe:
            return Recipe("music", prompt=prompt, model=ref, seed=seed,
                          params={"bars": args.bars, "instrument": args.instrument})

        # warm-up: first-call allocations, lazy imports, the synth's wavetables (not counted)
        for count in thread_options:
            torch.set_num_threads(count)
            for prompt in args.prompts[:2]:
                synth.render_piece(M.generate(model, recipe(prompt, 999), report=lambda p: None).piece,
                                   timbre=args.instrument)
        config_runs: dict[int, list[dict]] = {count: [] for count in thread_options}
        for prompt in args.prompts:
            wanted = M.parse_prompt(prompt)
            wanted_key = M.key_name(wanted.tonic, wanted.mode) if wanted.tonic is not None else None
            for seed in range(args.seeds):
                for count in thread_options:
                    torch.set_num_threads(count)
                    t0 = time.perf_counter()
                    gen = M.generate(model, recipe(prompt, seed), report=lambda p: None)
                    t1 = time.perf_counter()
                    synth.render_piece(gen.piece, timbre=args.instrument)
                    t2 = time.perf_counter()
                    piece = gen.piece
                    tokens = len(gen.tokens)
                    row = {
                        "model": ref, "torch_threads": count, "prompt": prompt, "seed": seed,
                        "requested_key": wanted_key, "key": piece.key, "metre": piece.metre,
                        "tempo_bpm": piece.tempo_bpm, "notes": len(piece.notes), "tokens": tokens,
                        "generation_s": round(t1 - t0, 4), "synth_s": round(t2 - t1, 4),
                        "music_s": round(piece.seconds, 3),
                        "rtf": round(piece.seconds / (t2 - t0), 2),
                        "generation_ms_per_token": round((t1 - t0) / max(1, tokens) * 1000, 3),
                        "in_key": round(M.in_key_fraction(piece.notes, wanted_key or piece.key), 4),
                        "loadavg_1min": round(os.getloadavg()[0], 2),
                    }
                    config_runs[count].append(row)
                    print(f"{ref:22s} {count}t {prompt:24s} seed {seed} {row['notes']:3d} notes "
                          f"{row['music_s']:5.1f} s music  gen {row['generation_s']:6.3f} s  "
                          f"synth {row['synth_s']:5.3f} s {row['rtf']:7.1f}x  in key {row['in_key']:.0%}", flush=True)
        torch.set_num_threads(threads)
        for count, model_runs in config_runs.items():
            runs += model_runs
            name = f"{ref} @ {count} thread{'s' if count > 1 else ''}" + (" (app default)" if count == threads else "")
            per_config[name] = summarise(model_runs, load_s)
    load_after = os.getloadavg()

    print()
    print(f"{'model':44s} {'RTF med':>8s} {'worst':>7s} {'aggr':>7s} {'gen med s':>9s} {'synth med s':>11s} "
          f"{'ms/token':>8s} {'in key':>7s}")
    for ref, s in per_config.items():
        print(f"{ref:44s} {s['rtf_median']:8.1f} {s['rtf_worst']:7.1f} {s['rtf_aggregate']:7.1f} "
              f"{s['generation_s_median']:9.3f} {s['synth_s_median']:11.3f} {s['generation_ms_per_token_median']:8.2f} "
              f"{s['in_key_of_all_notes']:7.1%}")
    for ref, s in per_config.items():
        print(f"in key by requested key, {ref}: {s['in_key_by_requested_key']}")
    print()
    write_results("music_speed", {
        "device": device.label, "torch_threads": threads, "bars": args.bars, "seeds": args.seeds,
        "instrument": args.instrument, "prompts": args.prompts,
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after],
        "note": "measured on a loaded 2-core machine: other nice'd jobs (model training, tests) were using both cores "
                "the whole time (see loadavg); absolute times are pessimistic and noisy",
        "goal_rtf": GOAL_RTF,
        "configs": per_config,
        "held_out_and_corpus_from_cards": card_quotes(),
        "runs": runs,
    })


if __name__ == "__main__":
    main()
