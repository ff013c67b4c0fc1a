"""The music GPT's export and evaluation: fp16 weights -> models/music-gpt/, loss curve, MODEL_CARD.md.

    python -m studio.training.music export   # the run's best weights, scored as shipped
    python -m studio.training.music eval     # held-out loss (GPT vs n-gram), in-key rates
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import numpy as np

from studio import paths
from studio.core.recipe import Recipe
from studio.data import music as music_data
from studio.engine.music.generate import generate
from studio.engine.music.models import MusicNGram, load_music_model
from studio.engine.music.piece import in_key_fraction
from studio.engine.music.tokenizer import VOCAB_FILE
from studio.training import music_model
from studio.training import run as run_files
from studio.training.music_markov import MARKOV_NAME
from studio.training.music_model import held_out_loss, new_model
from studio.training.music_tokens import CONTEXT, MODEL_NAME, TokenData, ensure_tokens, run_dir


def export(args) -> None:
    data = TokenData(ensure_tokens())
    tok = data.tok
    source = run_dir() / "best.safetensors"
    if not source.exists():
        sys.exit(f"nothing to export: {source} does not exist yet (train first)")
    model = new_model(len(tok), tok)
    run_files.load_weights(model, source)
    model.eval()
    state = run_files.read_checkpoint(run_dir() / run_files.CHECKPOINT)["state"]
    folder = paths.builtin_model_dir(MODEL_NAME)
    run_files.save_fp16_pretrained(model, folder)
    tok.save(folder)
    evaluation = evaluate(data, args.eval_pieces, args.samples)
    (run_dir() / "eval.json").write_text(json.dumps(evaluation, indent=1))
    plot_loss(state["history"], evaluation.get("markov_held_out"), folder / "loss_curve.png")
    write_card(folder, state, evaluation, data)
    size = run_files.folder_size(folder) / 1e6
    run_files.log(f"exported {folder} ({size:.1f} MB): held-out {evaluation['gpt_held_out']:.4f} vs n-gram "
        f"{evaluation.get('markov_held_out')}")


def evaluate(data: TokenData, eval_pieces: int, samples: int) -> dict:
    """Held-out loss of the GPT (fp16 weights, as shipped) vs the shipped n-gram, and in-key rates."""
    windows = data.held_out_windows(eval_pieces)
    shipped = new_model(len(data.tok), data.tok)
    folder = paths.builtin_model_dir(MODEL_NAME)
    run_files.load_weights(shipped, folder / "model.safetensors")
    out = {"gpt_held_out": held_out_loss(shipped, windows), "held_out_pieces": len(windows)}
    markov_folder = paths.builtin_model_dir(MARKOV_NAME)
    if (markov_folder / "config.json").exists():
        ngram = MusicNGram.load(markov_folder)
        out["markov_held_out"] = ngram.mean_loss([w.tolist() for w in windows])
        out["markov_order"] = ngram.order
        out["improvement"] = 1 - out["gpt_held_out"] / out["markov_held_out"]
        out["baseline"] = f"shipped order-{ngram.order} n-gram ({ngram.smoothing}, pruned)"
        grid = run_dir() / "markov_eval.json"
        if grid.exists():  # the strongest n-gram of the grid, before pruning: the honest baseline
            summary = json.loads(grid.read_text())
            if summary.get("eval_pieces") == len(windows) and summary["held_out"] < out["markov_held_out"]:
                out["markov_held_out"] = summary["held_out"]
                out["improvement"] = 1 - out["gpt_held_out"] / summary["held_out"]
                out["baseline"] = (f"best n-gram of the grid: order {summary['order']}, {summary['smoothing']}, "
                                   f"{'transposed copies' if summary['augment'] else 'original keys'}, unpruned")
    out["corpus_in_key"] = corpus_in_key_rate(data)
    out.update(sample_in_key_rates(folder, samples))
    return out


def corpus_in_key_rate(data: TokenData) -> float:
    """How often the corpus' own notes fit the key its tags name (natural + harmonic minor)."""
    hits = total = 0
    for i in range(len(data.events)):
        tags = data.tok.tags_of(data.tags[i].tolist())
        pitches = [n.pitch for n in data.tok.decode_notes(data.events[i].tolist(), tags.metre)]
        scale = music_data.scale_pitch_classes(tags.tonic, tags.mode)
        hits += sum(1 for p in pitches if p % 12 in scale)
        total += len(pitches)
    return hits / max(1, total)


SAMPLE_PROMPTS = ["slow chorale in D minor", "lively folk reel in G", "jig in A minor", "3/4 waltz in F",
                  "folk song in E flat major", "hornpipe in B flat", "chorale in A major", "air in C minor"]


def sample_in_key_rates(folder: Path, samples: int) -> dict:
    model = load_music_model(str(folder), "cpu")
    rates, lines = [], []
    for index in range(samples):
        prompt = SAMPLE_PROMPTS[index % len(SAMPLE_PROMPTS)]
        recipe = Recipe(modality="music", prompt=prompt, model=str(folder), seed=index,
                        params={"bars": 8, "temperature": 1.0, "top_k": 0, "top_p": 0.95})
        piece = generate(model, recipe).piece
        rate = in_key_fraction(piece.notes, piece.key)
        rates.append(rate)
        lines.append(f"{prompt!r} seed {index}: {len(piece.notes)} notes, {piece.key}, in key {rate:.0%}")
    return {"sample_in_key": float(np.mean(rates)) if rates else None, "samples": lines}


def plot_loss(history: list[dict], markov_loss: float | None, path: Path) -> None:
    points = [h for h in history if "held_out" in h and h["held_out"] == h["held_out"]]  # evaluated ones
    steps = [h["step"] for h in points]
    with run_files.figure(path, figsize=(6, 3.5), dpi=100) as ax:
        ax.plot(steps, [h["train"] for h in points], label="train (augmented)")
        ax.plot(steps, [h["held_out"] for h in points], label="held-out")
        for change in (h for h in history if "data_changed" in h):
            ax.axvline(change["step"], color="lightgrey", linewidth=0.8)  # corpus grew: held-out set changed
        if markov_loss:
            ax.axhline(markov_loss, color="grey", linestyle="--", label="n-gram baseline (held-out)")
        ax.set_xlabel("step")
        ax.set_ylabel("nats / token")
        ax.set_title("music-gpt")
        ax.legend()


def write_card(folder: Path, state: dict, evaluation: dict, data: TokenData) -> None:
    stats = json.loads((run_dir() / "tokens_stats.json").read_text())
    licences = "\n".join(f"- **{name}**: {text}" for name, text in music_data.LICENCES.items())
    since_change = state["history"]
    for index, entry in enumerate(state["history"]):
        if "data_changed" in entry:
            since_change = state["history"][index + 1:]
    scored = [h for h in since_change if "held_out" in h and h["held_out"] == h["held_out"]]
    best = min(scored, key=lambda h: h["held_out"]) if scored else {}
    markov = evaluation.get("markov_held_out")
    comparison = (f"{evaluation['gpt_held_out']:.4f} nats/token vs {markov:.4f} for the {evaluation['baseline']} "
                  f"on the same tokens: {evaluation['improvement']:.1%} lower"
                  if markov else f"{evaluation['gpt_held_out']:.4f} nats/token (n-gram not built yet)")
    samples = "\n".join(f"- {line}" for line in evaluation.get("samples", []))
    size = run_files.folder_size(folder) / 1e6
    arch = music_model.ARCH
    text = f"""# Music GPT (built-in)

A small GPT-2 (transformers `GPT2LMHeadModel`, {arch['n_layer']} layers x {arch['n_embd']}, {arch['n_head']} heads,
context {CONTEXT}) over note-event tokens, trained here on 2 CPU cores. Folder size {size:.1f} MB (fp16 safetensors).
Loads with `AutoModelForCausalLM.from_pretrained(folder)`; the vocabulary is `{VOCAB_FILE}` (see
`studio/engine/music/tokenizer.py` for the token grammar).

## Data
music21's bundled corpus (read offline from the music21 wheel): {stats['pieces']} pieces, {stats['tokens']:,} tokens,
{stats['held_out_pieces']} held out (5 % by a hash of the piece id). Pieces per collection: {stats['collections']}.
Style tags: {stats['styles']}. Transposition augmentation during training (random shift in -6..+5 semitones,
key tag moved with it).

### Licences (music21/corpus/license.txt: "Some encodings included in the corpus may not be used for commercial uses")
{licences}

Because of the Essen collection, treat these weights as **non-commercial** unless retrained without it.

## Training
- Steps: {state['step']:,} at batch of packed {CONTEXT}-token windows; {state['tokens']:,} tokens seen;
  wall time {state['wall'] / 3600:.2f} h on 1 CPU thread (shared machine). AdamW, peak lr 1.5e-3, cosine to 1e-4 over 2,500 steps.
- Warm restarts: {state.get('cycles') or 'none'}.
- Best checkpoint (exported): step {best.get('step')}, {best.get('held_out', float('nan')):.4f} nats/token in fp32 on the
  training monitor's 120 held-out pieces (the evaluation below uses 300).

![loss curve](loss_curve.png)

## Evaluation (held-out pieces, first {CONTEXT} tokens each, own key)
- Held-out loss (fp16 weights as shipped): {comparison}.
- In-key rate of generated notes (8 bars, temperature 1.0, top-p 0.95, key from the prompt):
  {evaluation.get('sample_in_key', float('nan')):.1%}; the corpus' own notes fit their tagged key
  {evaluation['corpus_in_key']:.1%} of the time (scale = major, or natural + harmonic minor).

## Samples (seeded; regenerate with the same recipe)
{samples}

Built by `python -m studio.training.music train` then `python -m studio.training.music export`
({platform.python_version()}, torch, transformers; see pyproject.toml).
"""
    (folder / "MODEL_CARD.md").write_text(text, encoding="utf-8")


def eval_only(args) -> None:
    data = TokenData(ensure_tokens())
    print(json.dumps(evaluate(data, args.eval_pieces, args.samples), indent=1))
