"""Train tab (issue 20): what an adapter trained on data the built-ins never saw changes, and what it costs.

    python benchmarks/finetune_effects.py image [--minutes 10]   # emoji redrawn as 16-px pixel art, trigger "pxlart"
    python benchmarks/finetune_effects.py text  [--minutes 5]    # the King James Bible's Psalms and Proverbs
    python benchmarks/finetune_effects.py music [--minutes 5]    # Palestrina (music21's corpus), 4-voice pieces

Each run goes through the Train tab's own code: the folder is read by the Data step (finetune_data.scan_folder),
trained by the engine's job (finetune.train_task, resumable, checkpoints with scores and sample grids) and saved as an
adapter (finetune_card.save_task), then generated with through the normal generation tasks. A first run of a few
steps measures the seconds per step on this machine; the run's steps are set from it to fit --minutes.

Figures (JSON in benchmarks/results/finetune_<medium>.json): minutes of training, seconds per step, peak memory of
the process (ru_maxrss), and per medium:
  text   held-out bits per byte (10 % of the passages, never trained on) of the built-in and of the adapted model,
         at every checkpoint, and the minutes at which it first dropped by 20 %;
  music  held-out loss (nats/token) at every checkpoint; pitch and rhythm statistics of pieces composed with and
         without the adapter against the Palestrina pieces' own (durations, melodic intervals, notes off the scale);
  image  the pixel-art measure (below) of pictures made with the trigger word, with and without the adapter, on
         emoji the folder holds and on emoji it does not, against the folder's own pictures.

Data licences: the KJV text is in the public domain (Debian `bible-kjv-text`, read with `bible` from `bible-kjv`;
`apt-get install bible-kjv`); Palestrina's masses are in music21's corpus (BSD-licensed software, the encodings
distributed with music21; music public domain); the emoji are Noto Color Emoji (OFL 1.1).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import write_results  # noqa: E402

TRIGGER = "pxlart"
BLOCK = 4  # 64-px pictures drawn as 16-px pixel art: each art pixel is a 4x4 block


# --- the folders ----------------------------------------------------------------------------------------------------


def kjv_folder(folder: Path) -> dict:
    """Psalms and Proverbs, one file per chapter, verse numbers stripped; each verse a paragraph."""
    folder.mkdir(parents=True, exist_ok=True)
    books = {"Psalms": 150, "Proverbs": 31}
    total = 0
    for book, chapters in books.items():
        for chapter in range(1, chapters + 1):
            out = subprocess.run(["bible", "-f", f"{book} {chapter}:1-200"], capture_output=True, text=True,
                                 check=True).stdout
            verses = [line.split(" ", 1)[1] for line in out.splitlines() if line[:3] in ("Psa", "Prv") and " " in line]
            text = "\n\n".join(verses)
            (folder / f"{book.lower()}-{chapter:03d}.txt").write_text(text, encoding="utf-8")
            total += len(text.encode())
    return {"source": "King James Version (1611), Psalms and Proverbs; public domain; Debian bible-kjv-text",
            "bytes": total}


def palestrina_folder(folder: Path, files: int) -> dict:
    import music21

    folder.mkdir(parents=True, exist_ok=True)
    corpus = sorted((Path(music21.__file__).parent / "corpus" / "palestrina").glob("*.krn"))
    chosen = corpus[:: max(1, len(corpus) // files)][:files]
    for path in chosen:
        (folder / path.name).write_bytes(path.read_bytes())
    return {"source": "music21 corpus/palestrina (Humdrum **kern, Palestrina's masses)", "files": len(chosen)}


def pixel_art(picture):
    """An emoji redrawn as 16-px pixel art: 4x4 block means, a 16-colour palette, blown up with hard edges."""
    from PIL import Image

    small = picture.resize((64 // BLOCK, 64 // BLOCK), Image.Resampling.BOX)
    small = small.quantize(colors=16, method=Image.Quantize.MEDIANCUT).convert("RGB")
    return small.resize((64, 64), Image.Resampling.NEAREST)


def emoji_sets(count: int) -> tuple[list, list]:
    """(pictures for the folder, names held back to prompt with): emoji of several classes, none skin-toned."""
    from studio.data import emoji as data_emoji

    data = data_emoji.load_dataset()
    classes = data.classes()
    rows = [i for i, name in enumerate(data.names) if "skin tone" not in name and classes[i] is not None]
    rows = rows[:: max(1, len(rows) // (count + 16))]
    return [(data.names[i], data.images[i]) for i in rows[:count]], [data.names[i] for i in rows[count:count + 16]]


def pixel_folder(folder: Path, count: int) -> tuple[dict, list[str], list[str]]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    kept, unseen = emoji_sets(count)
    for index, (name, image) in enumerate(kept):
        stem = f"{index:02d}-{name.replace(' ', '_')}"
        pixel_art(Image.fromarray(image)).save(folder / f"{stem}.png")
        (folder / f"{stem}.txt").write_text(name, encoding="utf-8")
    return {"source": "Noto Color Emoji (OFL 1.1), redrawn as 16-px pixel art", "pictures": len(kept)}, \
        [name for name, _ in kept], unseen


# --- measures -------------------------------------------------------------------------------------------------------


def pixelation(picture) -> float:
    """How much of a picture is flat 4x4 blocks: 1 - (mean distance to the block means) / (mean distance to the
    picture's mean), at the best of the 16 block offsets (the model need not align its blocks with ours).
    Pixel art scores near 1; a smooth drawing lower; noise near 0."""
    import numpy as np

    pixels = np.asarray(picture.convert("RGB"), dtype=np.float32)
    spread = np.abs(pixels - pixels.mean(axis=(0, 1))).mean() + 1e-6
    best = 0.0
    for dy in range(BLOCK):
        for dx in range(BLOCK):
            part = pixels[dy:dy + 56, dx:dx + 56]
            blocks = part.reshape(14, BLOCK, 14, BLOCK, 3).mean(axis=(1, 3), keepdims=True)
            residual = np.abs(part.reshape(14, BLOCK, 14, BLOCK, 3) - blocks).mean()
            best = max(best, 1 - residual / spread)
    return float(best)


def music_statistics(pieces: list[list]) -> dict:
    """Durations (beats), melodic intervals within a voice (semitones) and the share of notes off the key's scale
    (against a key estimated from the notes: the corpus builder's estimator)."""
    from collections import Counter

    from studio.engine.music.piece import Note, in_key_fraction, key_name, key_of_histogram, pitch_class_histogram

    durations, intervals, off = Counter(), Counter(), []
    for notes in pieces:
        if not notes:
            continue
        for note in notes:
            durations[min(8.0, round(float(note[2]) * 4) / 4)] += 1
        for voice in {int(n[4]) for n in notes}:
            line = sorted((n for n in notes if int(n[4]) == voice), key=lambda n: n[1])
            for a, b in zip(line, line[1:], strict=False):
                intervals[max(-12, min(12, int(b[0]) - int(a[0])))] += 1
        tonic, mode = key_of_histogram(pitch_class_histogram((n[0], n[2]) for n in notes))
        off.append(1 - in_key_fraction([Note(int(n[0]), 0.0, 1.0) for n in notes], key_name(tonic, mode)))
    total_d, total_i = sum(durations.values()) or 1, sum(intervals.values()) or 1
    return {"durations": {str(k): v / total_d for k, v in sorted(durations.items())},
            "intervals": {str(k): v / total_i for k, v in sorted(intervals.items())},
            "mean_duration": sum(k * v for k, v in durations.items()) / total_d,
            "stepwise": sum(v for k, v in intervals.items() if 1 <= abs(k) <= 2) / total_i,
            "off_scale": sum(off) / max(1, len(off))}


def divergence(p: dict, q: dict) -> float:
    """Jensen-Shannon divergence (bits) between two histograms given as {bin: share}."""
    import math

    keys = set(p) | set(q)
    mixed = {k: (p.get(k, 0) + q.get(k, 0)) / 2 for k in keys}

    def kl(a: dict) -> float:
        return sum(a[k] * math.log2(a[k] / mixed[k]) for k in keys if a.get(k, 0) > 0)

    return 0.5 * kl(p) + 0.5 * kl(q)


# --- the run --------------------------------------------------------------------------------------------------------


def context():
    from studio.core.devices import DeviceChoice
    from studio.core.jobs import TaskContext
    from studio.core.model_cache import ModelCache

    return TaskContext(report=lambda p: None, cancelled=lambda: False, models=ModelCache(),
                       device=DeviceChoice("cpu", "float32", "CPU"))


def train(medium: str, folder: Path, minutes: float, work: Path, **settings) -> tuple[dict, dict, float]:
    """Probe the speed with 6 steps, then train a run sized to `minutes`; returns (report, state, s/step)."""
    from studio.core.jobs import Job
    from studio.training import finetune
    from studio.training.finetune_data import scan_folder

    report = scan_folder(folder, medium)
    print(f"{medium}: {report['summary']}; problems: {report['problems']}", flush=True)
    done = finetune.RunFolder(work / "run")
    if done.exists() and done.state().get("finished"):  # --work of a run that finished: measure it again only
        state = done.state()
        return report, state, state["train_seconds"] / state["step"]
    base = {"medium": medium, "folder": str(folder), "seed": 0, "checkpoint_minutes": 60, **settings}
    probe = finetune.train_task(Job("train.run", args={"settings": {**base, "steps": 6, "sample_every": 6},
                                                       "items": report["items"], "run_dir": str(work / "probe")}),
                                context()).value["state"]
    per_step = probe["train_seconds"] / 6  # the steps alone; the grids and scores come on top (about a tenth)
    steps = max(20, int(minutes * 60 * 0.85 / per_step))
    print(f"{medium}: ~{per_step:.2f} s/step (probe) -> {steps} steps for {minutes} min", flush=True)
    state = finetune.train_task(Job("train.run", args={"settings": {**base, "steps": steps}, "items": report["items"],
                                                       "run_dir": str(work / "run")}), context()).value["state"]
    return report, state, state["train_seconds"] / steps


def save(work: Path, step: int, name: str) -> str:
    from studio.core.jobs import Job
    from studio.training.finetune_card import save_task

    return save_task(Job("train.save", args={"run_dir": str(work / "run"), "step": step, "name": name}),
                     context()).value["adapter"]


def curve(state: dict) -> list[dict]:
    return [{"step": c["step"], "minutes": round(c.get("seconds", 0) / 60, 2), "score": c.get("score")}
            for c in state["checkpoints"] if c.get("score") is not None]


def measure_text(args, work: Path) -> dict:
    data = kjv_folder(work / "kjv")
    report, state, per_step = train("text", work / "kjv", args.minutes, work, name="kjv-psalms")
    scores = curve(state)
    base, last = scores[0]["score"], scores[-1]["score"]
    drop = next((c["minutes"] for c in scores if c["score"] <= 0.8 * base), None)
    adapter = save(work, state["step"], "kjv-psalms")
    from studio.core.recipe import Recipe
    from studio.engine.text.generate import generate_text

    samples = {}
    for label, adapters in (("built-in", []), ("adapted", [{"path": adapter, "weight": 1.0}])):
        text, _recipe, _info = generate_text(Recipe("text", prompt="The LORD", model="builtin:text-gpt", seed=7,
                                                    params={"max_new_tokens": 60, "adapters": adapters}))
        samples[label] = text
    return {"data": data, "items": len(report["items"]), "steps": state["step"], "seconds_per_step": per_step,
            "held_out_bits_per_byte": {"built-in": base, "adapted": last, "drop_percent": 100 * (1 - last / base)},
            "minutes_to_20_percent_drop": drop, "curve": scores, "samples": samples, "adapter": adapter}


def compose(adapter: str | None, prompt: str, seeds: int) -> list[list]:
    from studio.core import adapters as lora
    from studio.core.recipe import Recipe
    from studio.engine.music.generate import generate
    from studio.engine.music.models import load_music_model

    entries = lora.resolve([{"path": adapter}], "music") if adapter else []
    model = load_music_model("builtin:music-gpt", "cpu", entries)
    pieces = []
    for seed in range(seeds):
        piece = generate(model, Recipe("music", prompt=prompt, model="builtin:music-gpt", seed=seed,
                                       params={"bars": 8})).piece
        pieces.append([[n.pitch, n.start, n.duration, n.velocity, n.voice] for n in piece.notes])
    return pieces


def measure_music(args, work: Path) -> dict:
    data = palestrina_folder(work / "palestrina", args.files)
    report, state, per_step = train("music", work / "palestrina", args.minutes, work, name="palestrina")
    scores = curve(state)
    adapter = save(work, state["step"], "palestrina")
    from studio.training.finetune_music import user_pieces

    target = music_statistics([p["notes"] for p in user_pieces(work / "palestrina", report["items"])])
    prompt = "chorale in 4/2"
    stats = {"palestrina": target}
    for label, path in (("built-in", None), ("adapted", adapter)):
        found = music_statistics(compose(path, prompt, args.seeds))
        found["js_durations"] = divergence(found["durations"], target["durations"])
        found["js_intervals"] = divergence(found["intervals"], target["intervals"])
        stats[label] = found
    return {"data": data, "items": len(report["items"]), "left_out": report["problems"], "steps": state["step"],
            "seconds_per_step": per_step, "held_out_loss": {"built-in": scores[0]["score"], "adapted": scores[-1]["score"]},
            "curve": scores, "prompt": prompt, "statistics": stats, "adapter": adapter}


def measure_image(args, work: Path) -> dict:
    from PIL import Image

    data, kept, unseen = pixel_folder(work / "pixel", args.pictures)  # the same folder again for a --work rerun
    folder_score = sum(pixelation(Image.open(p)) for p in sorted((work / "pixel").glob("*.png"))) / len(kept)
    from studio.data import emoji as data_emoji

    report, state, per_step = train("image", work / "pixel", args.minutes, work, name="pixel-emoji",
                                    trigger=TRIGGER, rank=8)
    adapter = save(work, state["step"], "pixel-emoji")
    source = data_emoji.load_dataset()
    originals = [Image.fromarray(source.images[source.names.index(n)]) for n in kept]
    figures = {"folder": folder_score, "emoji_originals": sum(map(pixelation, originals)) / len(originals)}
    from studio.core import catalog
    from studio.core.devices import DeviceChoice
    from studio.core.recipe import Recipe
    from studio.engine.image.generate import generate
    from studio.engine.image.pipelines import load_image_pipeline

    bundle = load_image_pipeline(catalog.resolve("builtin:emoji-ldm"), DeviceChoice("cpu", "float32", "CPU"))
    for names, where in ((kept[:8], "in_folder"), (unseen[:8], "not_in_folder")):
        for label, adapters in (("built-in", []), ("adapted", [{"path": adapter, "weight": 1.0}])):
            made = [a.payload for name in names for seed in range(2)
                    for a in generate(Recipe("image", prompt=f"{TRIGGER}, {name}", model="builtin:emoji-ldm",
                                             seed=seed, params={"steps": 20, "adapters": adapters}), bundle=bundle)]
            figures[f"{where}/{label}"] = sum(map(pixelation, made)) / len(made)
            sheet = Image.new("RGB", (64 * 8, 64 * 2), "white")
            for index, picture in enumerate(made[:16]):
                sheet.paste(picture, ((index // 2) * 64, (index % 2) * 64))
            sheet.save(work / f"{where}-{label}.png")
    return {"data": data, "items": len(report["items"]), "steps": state["step"], "seconds_per_step": per_step,
            "pixelation": figures, "curve": curve(state), "grid_pixelation": grid_curve(work / "run"),
            "trigger": TRIGGER, "adapter": adapter,
            "sheets": str(work)}


def grid_curve(run_dir: Path) -> list[dict]:
    """The pixel-art measure of each checkpoint's sample grid (fixed seeds, the folder's captions with the trigger):
    the style arriving, step by step and minute by minute."""
    import json

    from PIL import Image

    out = []
    for folder in sorted((run_dir / "checkpoints").glob("step-*")):
        state = json.loads((folder / "state.json").read_text())
        if not (folder / "samples.png").exists():
            continue
        grid = Image.open(folder / "samples.png").convert("RGB")
        cells = [grid.crop((x, y, x + 64, y + 64)) for y in range(0, grid.height, 64) for x in range(0, grid.width, 64)]
        entry = next(c for c in state["checkpoints"] if c["step"] == state["step"])
        out.append({"step": state["step"], "minutes": round(entry.get("seconds", 0) / 60, 2),
                    "pixelation": sum(map(pixelation, cells)) / len(cells)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("medium", choices=["image", "text", "music"])
    parser.add_argument("--minutes", type=float, default=None, help="training time (default: the goal: 10/5/5)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--files", type=int, default=90, help="music: Palestrina files copied (4-voice ones train)")
    parser.add_argument("--seeds", type=int, default=6, help="music: pieces composed per model")
    parser.add_argument("--pictures", type=int, default=32, help="image: pictures in the folder")
    parser.add_argument("--work", default="", help="keep the folders and the run here (default: a temporary folder)")
    parser.add_argument("--busy", default="", help="what else ran on the machine, for the record")
    args = parser.parse_args()
    args.minutes = args.minutes or {"image": 10, "text": 5, "music": 5}[args.medium]
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="finetune-"))
    started = time.monotonic()
    figures = {"image": measure_image, "text": measure_text, "music": measure_music}[args.medium](args, work)
    figures.update(minutes_budget=args.minutes, threads=args.threads, total_minutes=(time.monotonic() - started) / 60,
                   peak_ram_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, busy=args.busy)
    write_results(f"finetune_{args.medium}", figures)


if __name__ == "__main__":
    main()
