"""Evaluate the built-in image model (emoji-ldm) with a small classifier trained on real emoji.

  python -m studio.training.eval_image                      the current training checkpoint (EMA weights)
  python -m studio.training.eval_image --model models/emoji-ldm   an exported diffusers folder

1. A small CNN learns the ~10 curated visual classes (face, heart, flag, ...) on the training split
   (studio/training/eval_classifier.py). Its accuracy on held-out real emoji is the ceiling for what generated
   images can score. `--hands both` also scores the same pictures with one trained on Noto's and EmojiOne's
   pictures, against both hands' real emoji (for a model trained on both, round 11).
2. Prompt adherence: >= 20 images per class from class prompts; the share the classifier puts in the asked class.
3. Fréchet distance between the classifier's penultimate features of generated and held-out real images
   (with real-train vs real-held-out as the floor, since the held-out set is small).
4. VAE reconstruction PSNR on held-out images, and timings: one 64x64 decode, one image at 20 steps.
Prints the numbers and writes them as JSON (default <run dir>/eval.json, which `image export` puts in the card).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from studio.data import emoji as data_emoji
from studio.training.eval_classifier import (
    CLASSES,
    HANDS,
    classify,
    frechet_distance,
    mean_pairwise_distance,
    per_class_accuracy,
    real_reference,
)
from studio.training.eval_sentences import PER_CLASS_KEYS, SENTENCE_SETS
from studio.training.image_model import Sizes, images_to_tensor, psnr
from studio.training.image_run import Run, default_run_dir

CLASS_PROMPTS = {
    "face": ("grinning face", "crying face", "face smiling", "smiling face with smiling eyes"),
    "heart": ("red heart", "blue heart", "green heart", "heart"),
    "flag": ("country flag", "france", "japan", "germany"),
    "animal": ("dog face", "cat face", "animal mammal", "animal bird"),
    "food": ("red apple", "pizza", "food fruit", "hamburger"),
    "plant": ("sunflower", "rose", "plant flower", "deciduous tree"),
    "vehicle": ("automobile", "bus", "transport ground", "airplane"),
    "clock": ("one o'clock", "alarm clock", "time", "three o'clock"),
    "hand": ("thumbs up", "waving hand", "raised hand", "ok hand"),
    "symbol": ("keycap 1", "red circle", "up arrow", "geometric"),
}
# The class prompts that name a Unicode group or subgroup rather than one emoji: their seeds should differ.
GROUP_PROMPTS = ("face smiling", "heart", "country flag", "animal mammal", "animal bird", "food fruit", "plant flower",
                 "transport ground", "time", "geometric")
# The held-out typed sentences, eight sets of 30: eval_sentences.SENTENCE_SETS.


def load_pipeline(model_dir: Path | None, run_dir: Path):
    """The exported folder through diffusers (as a user's folder loads), or the training checkpoint's EMA weights."""
    if model_dir is not None:
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline.from_pretrained(model_dir, dtype=torch.float32, local_files_only=True)
        state_file = model_dir / "training_state.json"
        pipe.evaluated_ldm_step = json.loads(state_file.read_text())["ldm_step"] if state_file.exists() else None
        return pipe
    run = Run(run_dir, Sizes(), data_emoji.load_dataset())
    if not run.load() or run.state["scaling_factor"] is None:
        raise SystemExit(f"no LDM checkpoint in {run_dir} yet; pass --model DIR to evaluate an exported folder")
    pipe = run.pipeline(ema=True)
    pipe.evaluated_ldm_step = run.state["ldm_step"]
    return pipe


def prompt_list(prompts: dict[str, tuple[str, ...]], per_class: int) -> list[tuple[int, int, str]]:
    """(class index, prompt index, prompt) for per_class images of each class, cycling through its prompts."""
    return [
        (k, i % len(prompts[name]), prompts[name][i % len(prompts[name])])
        for k, name in enumerate(CLASSES)
        for i in range(per_class)
    ]


def pipeline_draw(pipe, steps: int, guidance: float, guidance_start: float = 0.0, variety: float = 0.0):
    """A diffusers pipeline as a draw function: (prompts, seeds) -> uint8 pictures. `guidance_start`: the share of
    the steps drawn without guidance, as the app's "Guidance from" does; `variety`: the app's Variety, noise on the
    prompt's embedding in the first steps (both studio/engine/image/guidance.py)."""
    from studio.engine.image.guidance import ConditionAnnealing, GuidanceInterval

    pipe.set_progress_bar_config(disable=True)
    interval = GuidanceInterval(guidance, guidance_start)

    @torch.no_grad()
    def draw(prompts: list[str], seeds: list[int]) -> np.ndarray:
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        hook = interval if interval.active() else None
        text = {"prompt": prompts}
        if variety > 0:
            hook = ConditionAnnealing(variety, seeds, steps, hook)
            embeds, negative = pipe.encode_prompt(prompts, pipe._execution_device, 1, True)
            text = {"prompt_embeds": hook.first_embeds(embeds, negative), "negative_prompt_embeds": negative}
        out = pipe(**text, num_inference_steps=steps, guidance_scale=interval.initial_scale(), generator=generators,
                   output_type="np", callback_on_step_end=hook,
                   callback_on_step_end_tensor_inputs=hook.tensor_inputs if variety > 0 else ["latents"]).images
        return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)

    return draw


def generate_class_images(draw, per_class: int, batch: int = 8, seed: int = 1234,
                          prompts: dict[str, tuple[str, ...]] = CLASS_PROMPTS):
    """per_class images for each class, cycling through its prompts; fixed seeds, so reruns match.

    `draw(prompts, seeds)` makes the pictures (pipeline_draw for diffusion; the GAN's own). Returns (images, class
    labels, prompt ids): images of one prompt share a prompt id.
    """
    items = prompt_list(prompts, per_class)
    images = []
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        seeds = [seed + 1000 * k + start % per_class + i for i, (k, _, _) in enumerate(chunk)]
        images.append(draw([p for _, _, p in chunk], seeds))
    labels = np.array([k for k, _, _ in items])
    prompt_ids = np.array([k * 100 + j for k, j, _ in items])
    return np.concatenate(images), labels, prompt_ids


def coverage(classifier, draw, real: dict, count: int = 240, batch: int = 16, seed: int = 99) -> dict:
    """Mode collapse, measured: the classes the classifier sees among pictures drawn for the empty prompt, against
    the classes of the real emoji. 1 - total variation distance: 1 = the same mix, 0 = no overlap."""
    images = np.concatenate([draw([""] * batch, list(range(seed + s, seed + s + batch))) for s in range(0, count, batch)])
    pred, _ = classify(classifier, images)
    generated = np.bincount(pred, minlength=len(CLASSES)) / len(pred)
    real_mix = np.bincount(real["all_labels"], minlength=len(CLASSES)) / len(real["all_labels"])
    return {"coverage": round(1 - 0.5 * float(np.abs(generated - real_mix).sum()), 3),
            "classes_seen": int((generated >= 0.01).sum()),
            "class_mix": {c: round(float(g), 3) for c, g in zip(CLASSES, generated, strict=True)}}


VISIBLE_TINT = 8.0  # per picture, (G+B)/2 - R on 0-255: round 1's hearts at 9-15 showed a faint line on white


def edge_tint(images: np.ndarray, column: int = 62, reference: int = 60) -> dict[str, float]:
    """The cyan column, measured: how much bluer-green than red `column` (x = 62, where round 1's pictures had a
    faint cyan line) is on the rows where the `reference` column two pixels in is white background, against the
    reference column itself on those rows. 0 = no line. (A tinted pixel is no longer "white", so only the reference
    column may decide which rows are background.) The mean over all pictures hides a line in a few of them, so
    each picture is also measured alone: the 90th percentile, and the share above VISIBLE_TINT."""
    pixels = images.astype(np.float32)
    cyan = (pixels[..., 1] + pixels[..., 2]) / 2 - pixels[..., 0]  # (N, H, W)
    rows = pixels[:, :, reference].min(axis=-1) > 230
    if not rows.any():
        return {"column": column, "tint_at_column": 0.0, "tint_at_reference": 0.0}
    counted = rows.sum(axis=1) >= 4  # pictures with some background at the reference column
    per_picture = (cyan[:, :, column] * rows).sum(axis=1)[counted] / rows.sum(axis=1)[counted]
    return {"column": column, "tint_at_column": round(float(cyan[:, :, column][rows].mean()), 2),
            "tint_at_reference": round(float(cyan[:, :, reference][rows].mean()), 2),
            "per_picture_p90": round(float(np.percentile(per_picture, 90)), 2) if len(per_picture) else 0.0,
            "share_visible": round(float((per_picture > VISIBLE_TINT).mean()), 3) if len(per_picture) else 0.0,
            "visible_above": VISIBLE_TINT}


def diversity(features: np.ndarray, labels: np.ndarray, prompt_ids: np.ndarray, real_features: np.ndarray,
              real_labels: np.ndarray) -> dict[str, dict[str, float]]:
    """Per class: mean pairwise feature distance among images of one prompt (different seeds), against the same
    measure over all real emoji of that class. A ratio near 0 means every seed draws the same picture."""
    out = {}
    for k, name in enumerate(CLASSES):
        ids = np.unique(prompt_ids[labels == k])
        within = [mean_pairwise_distance(features[prompt_ids == p]) for p in ids]
        real = mean_pairwise_distance(real_features[real_labels == k])
        out[name] = {"generated": round(float(np.mean(within)), 3), "real": round(real, 3),
                     "ratio": round(float(np.mean(within)) / real, 3) if real else None,
                     "by_prompt": {int(p): round(w / real, 3) if real else None for p, w in zip(ids, within, strict=True)}}
    return out


@torch.no_grad()
def vae_psnr(vae, images: np.ndarray) -> float:
    """Mean per-image PSNR of encode (posterior mean) -> decode."""
    values = []
    for i in range(0, len(images), 64):
        x = images_to_tensor(images[i : i + 64]).to(vae.dtype)
        recon = vae.decode(vae.encode(x).latent_dist.mean).sample.float()
        values += [psnr(r[None], o[None]) for r, o in zip(recon, x.float(), strict=False)]
    return float(np.mean(values))


@torch.no_grad()
def timings(pipe, steps: int, guidance: float = 4.0, runs: int = 5) -> dict[str, float]:
    """One 64x64 VAE decode, and one picture at `steps` (the median of `runs`, after a warm-up)."""
    import statistics

    z = torch.randn(1, 4, 16, 16)
    pipe.vae.decode(z)
    start = time.perf_counter()
    for _ in range(5):
        pipe.vae.decode(z)
    decode_ms = (time.perf_counter() - start) / 5 * 1000
    pipe("red heart", num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    seconds = []
    for seed in range(runs):
        start = time.perf_counter()
        pipe("red heart", num_inference_steps=steps, guidance_scale=guidance, generator=torch.Generator().manual_seed(seed))
        seconds.append(time.perf_counter() - start)
    return {"vae_decode_ms": round(decode_ms, 1), "seconds_per_image": round(statistics.median(seconds), 3)}


def score_generated(classifier, images, labels, prompt_ids, real) -> dict:
    """Adherence per class, the Fréchet distance to held-out real emoji and the diversity of one set of images.

    `real` holds the classifier's view of the real data: held-out features, all features and all labels.
    """
    pred, feats = classify(classifier, images)
    adherence = per_class_accuracy(pred, labels)
    hits = pred == labels
    spread = diversity(feats, labels, prompt_ids, real["all_features"], real["all_labels"])
    return {
        "adherence": round(float(hits.mean()), 3),
        "per_class": adherence,
        "frechet_distance_vs_heldout": round(frechet_distance(feats, real["held_features"]), 2),
        "diversity_ratio": round(float(np.mean([v["ratio"] for v in spread.values()])), 3),
        "diversity": spread,
        "prompt_hits": np.array([hits[prompt_ids == p].mean() for p in np.unique(prompt_ids)]),
    }


BOOTSTRAP_DRAWS = 4000


def sentence_gap(class_hits: np.ndarray, sentence_hits: np.ndarray, seed: int = 0) -> dict:
    """How many points the typed sentences trail the class prompts, with a 95 % bootstrap interval.

    The class prompts are the fixed list the goal is measured against; the sentences are a sample of what people
    type, and the unit that varies is the sentence, not the picture: a sentence's seeds mostly agree (the model
    draws that emoji or it does not), so 30 sentences give a set's score a standard error of about 6 points, and one
    set can land 15 points from another by which emoji its writer happened to name. So sentences are resampled."""
    rng = np.random.default_rng(seed)
    resampled = rng.choice(sentence_hits, (BOOTSTRAP_DRAWS, len(sentence_hits))).mean(axis=1)
    low, high = np.percentile(100 * (class_hits.mean() - resampled), [2.5, 97.5])
    return {"points": round(float(100 * (class_hits.mean() - sentence_hits.mean())), 1),
            "ci95": [round(float(low), 1), round(float(high), 1)], "sentences": len(sentence_hits)}


def sentence_gaps(classes: dict, sets: dict) -> dict:
    """The gap to every sentence pooled (the precise figure) and to the newest set alone (the one nothing was
    designed from)."""
    pooled = np.concatenate([scores["prompt_hits"] for scores in sets.values()])
    newest = list(sets)[-1]
    return {"typed_sentence_adherence": round(float(pooled.mean()), 3),
            "sentence_gap_pooled": sentence_gap(classes["prompt_hits"], pooled),
            "sentence_gap_newest_set": sentence_gap(classes["prompt_hits"], sets[newest]["prompt_hits"]) | {
                "set": newest}}


def remembered(draw):
    """`draw` that keeps every picture by (prompt, seed): a second reference scores the same pictures undrawn."""
    kept: dict[tuple[str, int], np.ndarray] = {}

    def draw_once(prompts: list[str], seeds: list[int]) -> np.ndarray:
        missing = [(p, s) for p, s in zip(prompts, seeds, strict=True) if (p, s) not in kept]
        if missing:
            fresh = draw([p for p, _ in missing], [s for _, s in missing])
            kept.update(zip(missing, fresh, strict=True))
        return np.stack([kept[(p, s)] for p, s in zip(prompts, seeds, strict=True)])

    return draw_once


def group_prompt_diversity(spread: dict) -> float:
    """The diversity ratio over GROUP_PROMPTS only: a prompt naming one emoji ("red heart") has one right picture,
    so seeds agreeing is no fault there; one naming a group ("animal mammal") should vary like the group does."""
    ratios = [spread[name]["by_prompt"][k * 100 + j] for k, name in enumerate(CLASSES)
              for j, prompt in enumerate(CLASS_PROMPTS[name]) if prompt in GROUP_PROMPTS]
    return round(float(np.mean([r for r in ratios if r is not None])), 3)


def evaluate_draw(draw, classifier, real: dict, per_class: int = 24, log=print) -> tuple[dict, np.ndarray]:
    """Adherence to class prompts and paraphrases, diversity, Fréchet distance and coverage of one draw function."""
    start = time.time()
    gen_x, gen_y, gen_p = generate_class_images(draw, per_class)
    log(f"generated {len(gen_y)} images in {time.time() - start:.0f} s")
    classes = score_generated(classifier, gen_x, gen_y, gen_p, real)
    sets, first_sentences = {}, None
    for name, prompts in SENTENCE_SETS.items():  # the same seeds for every set
        set_x, set_y, set_p = generate_class_images(draw, per_class, prompts=prompts)
        sets[name] = score_generated(classifier, set_x, set_y, set_p, real)
        first_sentences = set_x if first_sentences is None else first_sentences
    result = {
        "prompt_adherence": classes["adherence"],
        **{f"{name}_adherence": scores["adherence"] for name, scores in sets.items()},
        **sentence_gaps(classes, sets),
        "edge_tint": edge_tint(np.concatenate([gen_x, first_sentences])),
        "diversity_ratio": classes["diversity_ratio"],
        "diversity_ratio_group_prompts": group_prompt_diversity(classes["diversity"]),
        "frechet_distance_generated_vs_heldout": classes["frechet_distance_vs_heldout"],
        **coverage(classifier, draw, real),
        "per_class": {
            c: {
                "real": real["ceiling_per_class"].get(c),
                "generated": classes["per_class"].get(c),
                **{PER_CLASS_KEYS[name]: scores["per_class"].get(c) for name, scores in sets.items()},
                "diversity": classes["diversity"][c]["ratio"],
            }
            for c in CLASSES
        },
    }
    return result, gen_x


def reusable_scores(model_dir: Path, run_dir: Path, per_class: int, steps: int = 20, guidance: float = 4.0) -> dict | None:
    """The diffusion model's scores from its own evaluation (<run dir>/eval.json), when they were made on the very
    weights in `model_dir` with the same settings: the GAN's and the few-step model's evaluations set them beside
    theirs without drawing the same 240 pictures again (the draws are seeded, so a rerun gives the same numbers)."""
    from studio.core.catalog import content_hash

    try:
        saved = json.loads((run_dir / "eval.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    same = (saved.get("model_hash") == content_hash(model_dir) and saved.get("images_per_class") == per_class
            and saved.get("steps") == steps and saved.get("guidance_scale") == guidance
            and not saved.get("guidance_start") and not saved.get("variety"))
    if not same:
        return None
    keep = ("prompt_adherence", *(f"{name}_adherence" for name in SENTENCE_SETS), "typed_sentence_adherence",
            "sentence_gap_pooled", "sentence_gap_newest_set", "diversity_ratio",
            "diversity_ratio_group_prompts", "frechet_distance_generated_vs_heldout", "coverage", "edge_tint", "per_class")
    return {k: saved[k] for k in keep if k in saved} | {"reused_from": str(run_dir / "eval.json")}


def evaluate(pipe, per_class: int = 24, steps: int = 20, guidance: float = 4.0, log=print,
             guidance_start: float = 0.0, variety: float = 0.0, hands: str = "noto") -> dict:
    """The figures against Noto's real emoji; with `hands="both"` also, on the very same pictures, against Noto's and
    EmojiOne's (under "two_hands")."""
    classifier, real = real_reference(log)
    draw = remembered(pipeline_draw(pipe, steps, guidance, guidance_start, variety))
    scores, gen_x = evaluate_draw(draw, classifier, real, per_class, log)
    per_class_scores = scores.pop("per_class")
    result = {
        "evaluated_ldm_step": getattr(pipe, "evaluated_ldm_step", None),
        "classes": len(CLASSES),
        "ceiling_heldout_accuracy": real["ceiling"],
        **scores,
        "images_per_class": per_class,
        "steps": steps,
        "guidance_scale": guidance,
        "guidance_start": guidance_start,
        "variety": variety,
        "frechet_distance_train_vs_heldout_floor": real["floor"],
        "vae_psnr_heldout_db": round(vae_psnr(pipe.vae, real["held_out_images"]), 2),
        **timings(pipe, steps),
        "torch_threads": torch.get_num_threads(),
        "per_class": per_class_scores,
    }
    if hands == "both":
        classifier, real = real_reference(log, hands)
        two, _ = evaluate_draw(draw, classifier, real, per_class, log)
        result["two_hands"] = {"ceiling_heldout_accuracy": real["ceiling"], "ceiling_per_hand": real["ceiling_per_hand"],
                               "frechet_distance_train_vs_heldout_floor": real["floor"], **two}
    return result, gen_x


def use_sampler(pipe, sampler: str, own) -> str:
    """Switch the pipeline to the app's sampler `sampler`, rebuilt from the config of `own` (the model's own
    scheduler) as the Image panel does, or back to `own` itself for ""; returns the name the rows record."""
    from studio.engine.image.schedulers import make_scheduler

    pipe.scheduler = make_scheduler(sampler, own.config) if sampler else own
    return sampler or "model's own"


def sweep(pipe, settings: list[tuple[float, float, float, str]], per_class: int = 24, steps: int = 20,
          log=print, hands: str = "noto") -> dict:
    """Class-prompt adherence and diversity at each (guidance, guidance from, variety, sampler): how much pull each
    setting trades for how much variety (the model card's table). `hands="both"`: each row also scored, on the same
    pictures, against both hands (under "two_hands")."""
    references = [real_reference(log)] + ([real_reference(log, hands)] if hands == "both" else [])
    own = pipe.scheduler
    rows = []
    for guidance, start, variety, sampler in settings:
        used = use_sampler(pipe, sampler, own)
        images, labels, prompt_ids = generate_class_images(pipeline_draw(pipe, steps, guidance, start, variety), per_class)
        scored = [score_generated(classifier, images, labels, prompt_ids, real) for classifier, real in references]
        rows.append({"guidance": guidance, "guidance_start": start, "variety": variety, "sampler": used,
                     **sweep_scores(scored[0])} | ({"two_hands": sweep_scores(scored[1])} if len(scored) > 1 else {}))
        log(json.dumps(rows[-1]))
    return {"images_per_class": per_class, "steps": steps, "rows": rows}


def sweep_scores(scores: dict) -> dict:
    return {"adherence": scores["adherence"], "diversity_ratio": scores["diversity_ratio"],
            "diversity_ratio_group_prompts": group_prompt_diversity(scores["diversity"])}


def sweep_setting(text: str) -> tuple[float, float, float, str]:
    """ "GUIDANCE:FROM:VARIETY:SAMPLER" (missing numbers 0, missing sampler the model's own), e.g. 6:0.2:0.15 or
    8:0.2:0.15:euler_a."""
    from studio.engine.image.settings import SCHEDULERS

    parts = text.split(":")
    sampler = parts.pop() if len(parts) == 4 else ""
    if not 1 <= len(parts) <= 3 or (sampler and sampler not in SCHEDULERS):
        raise argparse.ArgumentTypeError(f"{text!r}: give guidance[:from[:variety[:sampler]]], a sampler of "
                                         f"{', '.join(SCHEDULERS)}")
    try:
        numbers = [float(p) for p in parts]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    return (*numbers, *[0.0] * (3 - len(numbers)), sampler)


def save_generated_grid(images: np.ndarray, per_class: int, path: Path) -> None:
    """One row per class (first 12 images), so the numbers can be checked by eye."""
    from PIL import Image

    cols = min(12, per_class)
    rows = [np.concatenate(list(images[k * per_class : k * per_class + cols]), axis=1) for k in range(len(CLASSES))]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="an exported diffusers folder (default: checkpoint)")
    parser.add_argument("--run-dir", type=Path, default=default_run_dir())
    parser.add_argument("--per-class", type=int, default=24)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=4.0)
    parser.add_argument("--guidance-start", type=float, default=0.0,
                        help="the share of the steps drawn without guidance (the Image panel's Guidance from)")
    parser.add_argument("--variety", type=float, default=0.0,
                        help="noise on the prompt's embedding in the first steps (the Image panel's Variety, CADS)")
    parser.add_argument("--hands", choices=HANDS, default="noto",
                        help="both: also score the same pictures against Noto's and EmojiOne's real emoji, with a "
                        "classifier trained on both (a model trained on both hands, round 11)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default <run dir>/eval.json, or sweep.json with --sweep)")
    parser.add_argument("--sweep", type=sweep_setting, nargs="+", default=None, metavar="G:FROM:VARIETY[:SAMPLER]",
                        help="score only the class prompts at each of these settings (the model card's table)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pipe = load_pipeline(args.model, args.run_dir)
    if args.sweep:
        write_result(sweep(pipe, args.sweep, args.per_class, args.steps, hands=args.hands), args.model,
                     args.out or args.run_dir / "sweep.json")
        return
    result, generated = evaluate(pipe, args.per_class, args.steps, args.guidance, guidance_start=args.guidance_start,
                                 variety=args.variety, hands=args.hands)
    out = write_result(result, args.model, args.out or args.run_dir / "eval.json")
    save_generated_grid(generated, args.per_class, out.with_name("eval_generated.png"))


def write_result(result: dict, model: Path | None, out: Path) -> Path:
    """The figures as JSON, with the hash of the weights they were made on (a card shows only its own weights')."""
    if model is not None:  # which weights these are: a later evaluation may reuse the scores (reusable_scores)
        from studio.core.catalog import content_hash

        result["model_hash"] = content_hash(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
