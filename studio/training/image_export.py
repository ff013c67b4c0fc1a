"""The image model's sample sheets and its export: fp16 diffusers folder, MODEL_CARD.md, loss curves, samples."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import torch

from studio.data import emoji as data_emoji
from studio.data import emoji_hands
from studio.data.emoji_words import LICENCE as LICENCE_CLDR
from studio.training import run as run_files
from studio.training.eval_sentences import PER_CLASS_KEYS
from studio.training.image_captions import COMPOSED_SHARE, CONTEXT_SHARE, write_vocab_and_merges
from studio.training.image_hands import second_hand_shares
from studio.training.image_kin import KIN_SHARE, WIDE_KIN_SHARE
from studio.training.image_model import Sizes, count_params
from studio.training.image_run import Run

SAMPLE_PROMPTS = (
    "red heart",
    "grinning face",
    "france",
    "dog face",
    "red apple",
    "sunflower",
    "automobile",
    "one o'clock",
    "thumbs up",
    "cat face",
    "pizza",
    "rocket",
    "blue heart",
    "face with tears of joy",
    "japan",
    "ghost",
)


@torch.no_grad()
def sample_sheet(pipe, prompts=SAMPLE_PROMPTS, seed: int = 0, steps: int = 20, guidance: float = 4.0, columns: int = 4):
    """One image per prompt (and one more row with other seeds), captioned, as a PIL image."""
    from PIL import Image, ImageDraw

    pipe.set_progress_bar_config(disable=True)
    images = []
    for i, prompt in enumerate(prompts):
        generator = torch.Generator().manual_seed(seed + i)
        out = pipe(prompt, num_inference_steps=steps, guidance_scale=guidance, generator=generator, output_type="pil")
        images.append(out.images[0])
    cell, label_h = 96, 14
    rows = math.ceil(len(images) / columns)
    sheet = Image.new("RGB", (columns * cell, rows * (cell + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, prompt) in enumerate(zip(images, prompts, strict=False)):
        x, y = (i % columns) * cell, (i // columns) * (cell + label_h)
        sheet.paste(image.resize((cell, cell), Image.Resampling.NEAREST), (x, y))
        draw.text((x + 2, y + cell), prompt[:16], fill="black")
    return sheet


def save_samples(run: Run, path: Path | None = None) -> Path:
    path = path or run.dir / f"samples_ldm{run.state['ldm_step']:06d}.png"
    start = time.time()
    sample_sheet(run.pipeline(ema=True)).save(path)
    run.log(f"sample sheet {path} ({time.time() - start:.1f} s)")
    return path


def plot_loss_curves(history: list[dict], path: Path) -> None:
    vae = [h for h in history if h["stage"] == "vae"]
    ldm = [h for h in history if h["stage"] == "ldm"]
    decoder = [h for h in history if h["stage"] == "decoder"]
    with run_files.figure(path, figsize=(9, 3.2), dpi=80, columns=2) as axes:
        if vae:
            axes[0].plot([h["step"] for h in vae], [h["held_out_psnr"] for h in vae], label="VAE")
        if decoder:
            offset = vae[-1]["step"] if vae else 0
            axes[0].plot([offset + h["step"] for h in decoder], [h["held_out_psnr"] for h in decoder], label="decoder only")
            axes[0].legend()
        axes[0].set(title="VAE: held-out PSNR", xlabel="step", ylabel="dB")
        if ldm:
            axes[1].plot([h["step"] for h in ldm], [h["loss"] for h in ldm])
        axes[1].set(title="UNet: min-SNR v-loss (avg of 50 steps)", xlabel="step", yscale="log")


def export(run_dir: Path, model_dir: Path) -> Path:
    """fp16 safetensors of the EMA weights as a StableDiffusionPipeline folder, with card, curves and samples."""
    run = Run(run_dir, Sizes(), data_emoji.load_dataset())
    if not run.load() or run.state["scaling_factor"] is None:
        raise SystemExit("nothing to export yet: the LDM stage has not started")
    pipe = run.pipeline(ema=True)
    tmp = model_dir.with_name(model_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.to(torch.float16).save_pretrained(tmp, safe_serialization=True)
    pipe.to(torch.float32)
    write_vocab_and_merges(tmp / "tokenizer")
    (tmp / "training_state.json").write_text(json.dumps(run.state), encoding="utf-8")
    plot_loss_curves(run.state["history"], tmp / "loss_curve.png")
    sample_sheet(pipe).save(tmp / "samples.png")
    evaluation = evaluation_of(run_dir / "eval.json", tmp)
    sweep = evaluation_of(run_dir / "sweep.json", tmp)
    (tmp / "MODEL_CARD.md").write_text(model_card(run, pipe, evaluation, run_files.folder_size(tmp), sweep),
                                       encoding="utf-8")
    run_files.replace_folder(tmp, model_dir)
    print(f"exported {model_dir} ({run_files.folder_size(model_dir) / 1e6:.1f} MB)")
    return model_dir


def evaluation_of(eval_json: Path, weights: Path) -> dict | None:
    """The run's evaluation when it scored these very weights (its model hash), else None: a card never shows the
    figures of the weights before (export, `eval_image`, export again puts them in)."""
    from studio.core.catalog import content_hash

    try:
        evaluation = json.loads(eval_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return evaluation if evaluation.get("model_hash") == content_hash(weights) else None


def model_card(run: Run, pipe, evaluation: dict | None, size_bytes: int, sweep: dict | None = None) -> str:
    s = run.state
    hours = (s["seconds"]["vae"] + s["seconds"]["ldm"]) / 3600
    last_vae = next((h for h in reversed(s["history"]) if h["stage"] == "vae"), {})
    last_ldm = next((h for h in reversed(s["history"]) if h["stage"] == "ldm"), {})
    n_train, n_held = int((~run.data.held_out).sum()), int(run.data.held_out.sum())
    lines = [
        "# emoji-ldm: the built-in image model",
        "",
        "A small latent diffusion model trained from scratch on CPU on Noto Color Emoji, in the standard diffusers",
        "`StableDiffusionPipeline` layout (loads offline with `StableDiffusionPipeline.from_pretrained(folder)`).",
        "Makes 64x64 emoji-like pictures from English prompts: emoji names (`red heart`, `dog face`, `france`), Unicode",
        "subgroups (`animal mammal`, `face smiling`), and, since round 2, sentences as people type them",
        "(`a cute puppy`, `a blue car`, `the flag of japan`).",
        "",
        "## Data and licences",
        f"- {data_emoji.LICENCES['images']}: {len(run.data)} glyphs rendered with Pillow at 109 pt, centred on",
        f"  white, resized to 64x64. {n_train} for training, {n_held} held out (10 %, by a hash of the name without",
        "  skin tone). Glyphs drawn as two pictures or blank are skipped.",
        f"- Captions: {data_emoji.LICENCES['names']}; groups: {data_emoji.LICENCES['groups']}; keywords: {LICENCE_CLDR}.",
        "  Round 1 drew one of: name, alias, `name, subgroup`, `subgroup`, `subgroup, group`. Round 2 draws those half",
        "  the time, and otherwise a sentence: a subject (name, alias, a CLDR keyword such as `puppy` or `slice`, or a",
        "  colour read off the glyph with a keyword, `blue car`) in a phrasing (`a …`, `an emoji of a …`, `a picture of",
        "  a …`, `a cute …`, …; training/image_captions.py). 10 % empty (for CFG). The evaluation's sentences",
        "  (eval_sentences.PARAPHRASE_PROMPTS; set B, FRESH_SENTENCES, written before round 4; set C, UNSEEN_SENTENCES,",
        "  written before round 5 was scored; set D, BLIND_SENTENCES, written before round 6 was trained; set E,",
        "  SEALED_SENTENCES, written before round 7 was built; set F, SPARE_SENTENCES, written before round 8 was",
        "  built; set G, UNOPENED_SENTENCES, written before round 9 was designed; set H, UNTOUCHED_SENTENCES, written",
        "  before round 10 was trained) are never among the training captions (a test checks).",
        *second_hand_data_lines(s),
        "- Weights: licence as listed in assets/catalog.json; they are learnt from the OFL 1.1 glyphs above"
        + (" and the CC BY-SA 4.0 pictures below it." if "second_hand_from" in s else "."),
        "",
        "## Architecture",
        f"- VAE `AutoencoderKL` {run.sizes.vae_channels}: 64x64x3 -> 16x16x4, {count_params(pipe.vae) / 1e6:.2f} M "
        f"params; scaling factor {s['scaling_factor']:.4f}.",
        f"- Text encoder: `CLIPTextModel` {run.sizes.text_layers} layers x {run.sizes.text_hidden}, "
        f"{count_params(pipe.text_encoder) / 1e6:.2f} M params; `CLIPTokenizer` with a BPE vocabulary of "
        f"{len(pipe.tokenizer)} learnt from the captions"
        + (f" (round 7 appended the merges that make {s['new_words']} everyday words whole)." if "new_words" in s
           else "."),
        f"- UNet: `UNet2DConditionModel` {run.sizes.unet_channels}, {count_params(pipe.unet) / 1e6:.2f} M params, "
        "cross-attention below the top level; v-prediction, min-SNR-5 weighting, EMA 0.999 weights.",
        "- Scheduler: DPM-Solver++ 2M, trailing timesteps; 20 steps, guidance 3-5 recommended.",
        f"- Folder size {size_bytes / 1e6:.1f} MB (fp16 safetensors).",
        "",
        '## Choices: measured, and taken without an ablation',
        '- Measured: training length matters most here. Prompt adherence (evaluation below) was 47.5 % at LDM step',
        '  2,321 (the first committed weights) and 80.5 % at step 10,996, with nothing else changed.',
        '- Measured: 16x16x4 latents for 64x64 pictures keep 24.4 dB PSNR on held-out emoji and decode in ~8 ms on CPU.',
        '- Not ablated (one long CPU run was the budget, not several): v-prediction, min-SNR-5 weighting, EMA 0.999 and',
        '  DPM-Solver++ 2M with trailing timesteps were taken from the literature for good samples in ~20 steps.',
        '- Left out on purpose: horizontal flips (flags and text would mirror) and colour jitter (colour is in the',
        '  captions: `red heart` vs `blue heart`).',
        '',
        "## Training",
        f"- VAE: {s['vae_step']} steps (batch 32, L1 + MSE + 1e-4 KL), {s['seconds']['vae'] / 60:.0f} min; "
        f"PSNR {last_vae.get('held_out_psnr', float('nan')):.2f} dB on 128 held-out images (pooled MSE)"
        + (f"; then decoder only for {s['decoder_step']} steps." if s.get("decoder_step") else "."),
        f"- UNet + text encoder: {s['ldm_step']} steps (batch 32, AdamW 4e-4, 10 % empty captions), {s['seconds']['ldm'] / 3600:.2f} h; "
        f"last loss {last_ldm.get('loss', float('nan')):.4f}.",
        *training_rounds(s),
        f"- Total CPU wall time {hours:.2f} h on one core of a 2-core machine (torch 1 thread).",
        "- Rebuild: `python -m studio.training.image train` then `python -m studio.training.image export`.",
        "",
        "![loss curves](loss_curve.png)",
        "",
        "## Samples (fixed prompts and seeds, 20 steps, guidance 4)",
        "",
        "![samples](samples.png)",
        "",
        "## Evaluation",
    ]
    lines += evaluation_lines(evaluation) + sweep_lines(sweep)
    return "\n".join(lines) + "\n"


def training_rounds(s: dict) -> list[str]:
    """What changed in the recipe along the way (the state records the step each change began)."""
    lines = []
    if "per_emoji_from" in s:
        lines.append(f"- From LDM step {s['per_emoji_from']:,} (round 3): each emoji drawn once whatever its skin "
                     "tones (uniformly, People & Body's 1,610 tone variants were 59 % of the steps, a plant 0.8 %).")
    if "composed_from" in s:
        lines.append(f"- From LDM step {s['composed_from']:,} (round 4): {COMPOSED_SHARE:.0%} of the captions composed "
                     "as typed sentences are (an article, describing words that fit any emoji, `big`, `shiny`, a "
                     "subject, and half the time a request around it: `please draw a big red heart`); never one of "
                     "the evaluation's sentences (image_stages.HELD_OUT_SENTENCES).")
    if "everyday_words_from" in s:
        lines.append(f"- From LDM step {s['everyday_words_from']:,} (round 5): half the composed captions carry words "
                     "that name no emoji (`a big red heart for my cousin`): frequent English words (wordfreq) that no "
                     "caption of any emoji uses, nor any evaluation sentence; flags also go by their country's "
                     "adjective (`an italian flag`, studio/data/demonyms.py).")
    if "synonyms_from" in s:
        lines.append(f"- From LDM step {s['synonyms_from']:,} (round 6): everyday words for the thing that neither its "
                     "name nor its keywords use (`puppy`, `burger`, `3 o'clock`, `half past three`), hand-written and "
                     "checked against a word-frequency list (studio/data/synonyms.py).")
    if "new_words_from" in s:
        lines.append(f"- From LDM step {s['new_words_from']:,} (round 7): {s.get('new_words', 0)} of those everyday words "
                     "made whole tokens (round 1's BPE cut `kitten` into `kit` + `ten`, a clock), each new embedding "
                     "started at the mean of the names of the emoji it stands for, and a quarter of every batch "
                     "captioned with one (studio/training/image_new_words.py).")
    if "context_from" in s:
        lines.append(f"- From LDM step {s['context_from']:,} (round 8): {CONTEXT_SHARE:.0%} of the composed captions "
                     "go on after the subject to name another emoji (`a red heart in the snow`, `a pear with a "
                     "rocket`); the picture stays the subject's. Nothing two words of a held-out sentence pair is "
                     "trained together (image_captions.with_context).")
    if "kin_from" in s:
        lines.append(f"- From LDM step {s['kin_from']:,} (round 9): {KIN_SHARE:.0%} of every batch is a held-out emoji's "
                     "caption (`a tractor`, `an hourglass`) on a training picture of its Unicode subgroup (a car, a "
                     "clock): the word learns its kind, never its look. No held-out picture, nor a colour read off one, "
                     "is used; a colour in the name picks pictures of that colour (studio/training/image_kin.py).")
    if "wide_kin_from" in s:
        lines.append(f"- From LDM step {s['wide_kin_from']:,} (round 10): the kin captions take {WIDE_KIN_SHARE:.0%} of "
                     "every batch (round 9's share taught none of the words checked by name).")
    if "second_hand_from" in s:
        shares = ", ".join(f"{share:.0%} from step {step:,}" for step, share in second_hand_shares(s))
        lines.append(f"- From LDM step {s['second_hand_from']:,} (round 11): a second hand. Of the draws of an emoji "
                     f"EmojiOne also draws, a share take EmojiOne's picture under the same caption ({shares}), so a "
                     "prompt naming one emoji has two right pictures and the seed picks (image_hands.py).")
    if "decoder_shown_error_from" in s:
        lines.append(f"- Decoder stage: far-background term from decoder step {s.get('decoder_background_from', 0):,}, "
                     f"errors counted as the picture shows them from step {s['decoder_shown_error_from']:,} (the cyan "
                     "line's fix: image_stages.train_decoder).")
    return lines


def second_hand_data_lines(s: dict) -> list[str]:
    if "second_hand_from" not in s:
        return []
    return [f"- {emoji_hands.LICENCE}: 64x64 PNGs matched to the emoji above by code point, on white, shrunk to",
            "  Noto's extent; each keeps its emoji's split, so a held-out emoji is unseen in both hands (round 11)."]


def tint_line(tint: dict) -> str:
    line = (f"- cyan line at x = {tint['column']} ((G+B)/2 - R on rows whose x = 60 is white, 0-255): "
            f"{tint['tint_at_column']} (x = 60 on the same rows: {tint.get('tint_at_reference', '?')})")
    if "share_visible" in tint:
        line += (f"; per picture: 90th percentile {tint['per_picture_p90']}, {tint['share_visible']:.1%} of the "
                 f"pictures above {tint['visible_above']:g} (a visible line)")
    return line + (f"; {tint['measured_on']}" if tint.get("measured_on") else "")


def evaluation_lines(evaluation: dict | None) -> list[str]:
    """The card's evaluation: eval_image's figures, the cyan line, and the per-class table."""
    if not evaluation:
        return ["Not run yet: `python -m studio.training.eval_image`."]
    lines = [f"- {k}: {v}" for k, v in evaluation.items() if not isinstance(v, (dict, list))]
    if "edge_tint" in evaluation:
        lines.append(tint_line(evaluation["edge_tint"]))
    if "sentence_gap_pooled" in evaluation:
        lines.append(gap_line(evaluation["sentence_gap_pooled"], evaluation["sentence_gap_newest_set"]))
    if "per_class" in evaluation:
        lines += per_class_table(evaluation["per_class"])
    if "two_hands" in evaluation:
        lines += two_hand_lines(evaluation["two_hands"])
    return lines


def two_hand_lines(two: dict) -> list[str]:
    """The same pictures scored against both hands' real emoji, by a classifier trained on both (eval_image
    --hands both): a model drawing EmojiOne's heart is right, which the Noto classifier cannot always see."""
    hands = two["ceiling_per_hand"]
    lines = ["", "### Against both hands (the same pictures; a classifier trained on Noto's and EmojiOne's training "
             f"emoji, held-out accuracy {hands['noto']} on Noto's, {hands['emojione']} on EmojiOne's)", ""]
    lines += [f"- {k}: {v}" for k, v in two.items() if not isinstance(v, (dict, list))]
    if "sentence_gap_pooled" in two:
        lines.append(gap_line(two["sentence_gap_pooled"], two["sentence_gap_newest_set"]))
    return lines + per_class_table(two["per_class"])


def per_class_table(per_class: dict) -> list[str]:
    """One row per class: the classifier's ceiling, the class prompts, each sentence set (A, B, ... in the order
    they were written) and the diversity."""
    columns = [("real", "ceiling (held-out real)"), ("generated", "class prompts")]
    columns += [(key, f"{'typed sentences' if name == 'paraphrase' else key.replace('_', ' ')} (set {chr(65 + i)})")
                for i, (name, key) in enumerate(PER_CLASS_KEYS.items())]
    columns.append(("diversity", "diversity / real"))
    lines = ["", "| class | " + " | ".join(label for _, label in columns) + " |", "|" + " --- |" * (len(columns) + 1)]
    for name, row in per_class.items():
        lines.append(f"| {name} | " + " | ".join(str(row.get(key, "")) for key, _ in columns) + " |")
    return lines


def gap_line(pooled: dict, newest: dict) -> str:
    """The typed sentences' gap to the class prompts, with its uncertainty (eval_image.sentence_gap)."""
    def said(gap: dict) -> str:
        return f"{gap['points']} points (95 % interval {gap['ci95'][0]} to {gap['ci95'][1]})"

    return (f"- Typed sentences trail the class prompts by {said(pooled)} over all {pooled['sentences']} held-out "
            f"sentences, and by {said(newest)} on the newest set alone ({newest['sentences']} sentences, written "
            "before anything was designed from it). Sentences resampled: a set of 30 alone is uncertain by about 6.")


def sweep_lines(sweep: dict | None) -> list[str]:
    """The card's table of guidance settings (eval_image --sweep, on these very weights): pull against variety."""
    if not sweep:
        return []
    lines = ["", "## Guidance, Guidance from and Variety (class prompts, 24 seeds x 10 classes, 20 steps)", "",
             "| sampler | guidance | guidance from | variety | adherence | diversity / real | group prompts' diversity |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    own = "model's own"  # rows from before the sweep named samplers used the model's own
    lines += [f"| {r.get('sampler', own)} | {r['guidance']:g} | {r['guidance_start']:g} | {r['variety']:g} | "
              f"{r['adherence']} | {r['diversity_ratio']} | {r['diversity_ratio_group_prompts']} |"
              + (" {adherence} | {diversity_ratio} | {diversity_ratio_group_prompts} |".format(**r["two_hands"])
                 if "two_hands" in r else "")
              for r in sweep["rows"]]
    if any("two_hands" in r for r in sweep["rows"]):  # the same pictures against both hands (eval_image --hands both)
        lines[3] += " adherence, both hands | diversity, both hands | group prompts' diversity, both hands |"
        lines[4] += " --- | --- | --- |"
    return lines
