"""Export the emoji GAN: fp16 folder models/emoji-gan/ with its parts, W statistics, samples, curves and card;
and its evaluation beside the diffusion model's (the card's figures).

  python -m studio.training.gan evaluate   writes <run dir>/eval.json (GAN and diffusion, the project's classifier)
  python -m studio.training.gan export     (training.gan calls this module; this module never imports it)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from studio.core.gan import MODEL_TYPE
from studio.data import emoji as data_emoji
from studio.training import run as run_files

PRINCIPAL_DIRECTIONS = 8  # GANSpace sliders shown in the Explorer
W_SAMPLES = 4096  # w's the principal directions are fitted on (random prompts and z's)


@torch.no_grad()
def w_statistics(run, samples: int = W_SAMPLES, seed: int = 0) -> dict[str, torch.Tensor]:
    """GANSpace: PCA of w over random captions and noise. Directions are unit rows; spread is the std along each."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    from studio.training.image_captions import pick_caption

    ws = []
    for _ in range(0, samples, 256):
        idx = rng.integers(0, len(run.captions), 256)
        text = run.embed([pick_caption(rng, run.captions[i], 0.1) for i in idx])
        ws.append(run.G_ema.mapping(torch.randn(256, run.config.z_dim, generator=generator), text))
    w = torch.cat(ws)
    centre = w.mean(dim=0)
    _, s, v = torch.linalg.svd(w - centre, full_matrices=False)
    k = PRINCIPAL_DIRECTIONS
    return {"centre": centre, "directions": v[:k].contiguous(), "spread": s[:k] / np.sqrt(len(w) - 1)}


def export(run, model_dir: Path, samples: Path) -> Path:
    """`samples`: a sample sheet of the run (training.gan.save_samples), shown in the card."""
    tmp = model_dir.with_name(model_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    run_files.save_weights({k: v.half() for k, v in run.G_ema.state_dict().items()}, tmp / "generator.safetensors")
    run_files.save_weights(w_statistics(run), tmp / "w_stats.safetensors")
    (tmp / "config.json").write_text(json.dumps({**run.config.to_dict(), "model_type": MODEL_TYPE,
                                                 "step": run.state["step"]}, indent=2), encoding="utf-8")
    for part in ("vae", "text_encoder", "tokenizer"):
        shutil.copytree(run.dir / "parts" / part, tmp / part)
    for weights in tmp.rglob("*.safetensors"):
        weights.chmod(0o644)
    shutil.copy(samples, tmp / "samples.png")
    loss_curve(run.state["history"], tmp / "loss_curve.png")
    evaluation = _read_json(run.dir / "eval.json")
    (tmp / "MODEL_CARD.md").write_text(model_card(run, evaluation, run_files.folder_size(tmp)), encoding="utf-8")
    run_files.replace_folder(tmp, model_dir)
    print(f"exported {model_dir} ({run_files.folder_size(model_dir) / 1e6:.1f} MB)")
    return model_dir


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def loss_curve(history: list[dict], path: Path) -> None:
    steps = [h["step"] for h in history]
    with run_files.figure(path, (7, 3), 110) as ax:
        ax.plot(steps, [h["loss_d"] for h in history], label="D loss")
        ax.plot(steps, [h["loss_g"] for h in history], label="G loss")
        ax.set_xlabel("step")
        ax.legend()
        ax.set_title("emoji-gan: non-saturating losses (smoothed over 50 steps)")


def model_card(run, evaluation: dict | None, size_bytes: int) -> str:
    s = run.state
    lines = [
        "# emoji-gan: the built-in GAN",
        "",
        "A small conditional StyleGAN-style generator trained from scratch on CPU on Noto Color Emoji, against a",
        "projection discriminator. One forward pass per picture (no denoising steps): the fastest generator in the app.",
        "It draws in the emoji VAE's latent space (16x16x4); the VAE's decoder, shipped beside it, makes 64x64 pixels.",
        "",
        "## Data and licences",
        f"- {data_emoji.LICENCES['images']}: the {len(run.train)} training glyphs of emoji-ldm (the same split).",
        "- Captions as emoji-ldm's round 2: names, aliases, Unicode groups, CLDR keywords (Unicode-DFS-2016,",
        "  Debian unicode-cldr-core), colours read off the glyphs, and phrasings (\"a cute …\", \"an emoji of a …\").",
        "- The text encoder and VAE are emoji-ldm's, frozen, copied at the start of training (shipped here).",
        "",
        "## Architecture",
        f"- Mapping network: z ({run.config.z_dim}) and the prompt's pooled text embedding ({run.config.text_dim}) ->"
        f" w ({run.config.w_dim}), {run.config.mapping_layers} layers, learning rate x{run.config.mapping_lr}.",
        f"- Synthesis: a learnt 4x4 constant; channels {list(run.config.channels)} at 4/8/16 px; two style-modulated "
        f"3x3 convolutions per size with per-layer noise; skip outputs; {run.config.num_ws} style inputs "
        "(style mixing: the first ones are coarse — shape, layout —, the last ones fine — colour, texture).",
        "- Discriminator: residual CNN, minibatch standard deviation, projection of the prompt embedding; "
        "matching-aware (real pictures under a wrong caption count as fake).",
        f"- Generator {sum(p.numel() for p in run.G.parameters()) / 1e6:.2f} M params; folder {size_bytes / 1e6:.1f} MB "
        "(fp16 safetensors).",
        "",
        "## Training",
        "- Non-saturating logistic loss, lazy R1 (γ 0.5, every 16 steps), DiffAugment (translation, cutout) on",
        "  everything D sees, EMA of G (half-life 10k images), style mixing in half the batches, batch 32, Adam 0.0025.",
        f"- {s['step']:,} steps ({s['images_seen']:,} images shown), {s['seconds'] / 3600:.2f} CPU hours on one core"
        + (f"; from step {s['per_emoji_from']:,} each emoji drawn once whatever its skin tones (before: every picture"
           " alike, and People & Body's tone variants were 59 % of the batches)." if "per_emoji_from" in s else "."),
        "- Rebuild: `python -m studio.training.gan train`, then `python -m studio.training.gan evaluate`, then",
        "  `python -m studio.training.gan export`.",
        "",
        "![losses](loss_curve.png)",
        "",
        "## Samples (EMA generator, truncation 1, seeds 0-5; rows: red heart, grinning face, dog face, pizza,",
        "sunflower, automobile, france, thumbs up, a blue car, a cute cat)",
        "",
        "![samples](samples.png)",
        "",
    ]
    return "\n".join(lines + evaluation_lines(evaluation)) + "\n"


def evaluation_lines(evaluation: dict | None) -> list[str]:
    if not evaluation:
        return ["## Evaluation", "", "Not run yet: `python -m studio.training.gan evaluate`."]
    models = evaluation["models"]
    names = list(models)
    lines = ["## Evaluation: mode collapse, measured (the project's classifier, eval_image.py)", "",
             "Same classifier features, prompts and seeds for every model; diffusion at its usual settings.", "",
             "| measure | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for key, label in (("prompt_adherence", "adherence, class prompts"), ("paraphrase_adherence",
                       "adherence, typed sentences"), ("diversity_ratio", "within-prompt diversity / real"),
                       ("frechet_distance_generated_vs_heldout", "Fréchet distance to held-out"),
                       ("coverage", "class coverage, empty prompt (1 = real mix)"), ("classes_seen", "classes seen"),
                       ("ms_per_image", "ms per picture (batch 1)")):
        lines.append(f"| {label} | " + " | ".join(str(models[n].get(key, "")) for n in names) + " |")
    lines += ["", f"Fréchet floor (real train vs held-out): {evaluation.get('floor')}; classifier ceiling on held-out "
              f"real emoji: {evaluation.get('ceiling')}. Threads: {evaluation.get('threads')}.", "",
              "| class | " + " | ".join(f"{n} adherence / sentences / diversity" for n in names) + " |",
              "| --- |" + " --- |" * len(names)]
    for c in models[names[0]]["per_class"]:
        cells = [f"{m['per_class'][c]['generated']} / {m['per_class'][c]['paraphrases']} / {m['per_class'][c]['diversity']}"
                 for m in models.values()]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return lines


def gan_draw(run, truncation: float = 1.0):
    """The run's EMA generator as a draw function for eval_image: (prompts, seeds) -> uint8 pictures."""
    from studio.core.gan import truncate

    @torch.no_grad()
    def draw(prompts: list[str], seeds: list[int]) -> np.ndarray:
        text = run.embed(prompts)
        z = torch.stack([torch.randn(run.config.z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])
        w = run.G_ema.mapping(z, text)
        if truncation != 1.0:
            w = truncate(w, run.G_ema.mapping(torch.randn(256, run.config.z_dim, generator=torch.Generator()
                                                          .manual_seed(0)), text[:1].expand(256, -1)).mean(0), truncation)
        noises = run.G_ema.noises(len(seeds), torch.Generator().manual_seed(seeds[0]))
        pixels = run.decode(run.G_ema.synthesis(run.G_ema.broadcast(w), noises))
        return ((pixels.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()

    return draw


def evaluate_models(run, ldm_dir: Path, per_class: int = 24) -> dict:
    """The GAN and the diffusion model through the same evaluation, with ms per picture."""
    import time

    from diffusers import StableDiffusionPipeline

    from studio.training import eval_image

    classifier, real = eval_image.real_reference()
    models = {}
    pipe = StableDiffusionPipeline.from_pretrained(ldm_dir, dtype=torch.float32, local_files_only=True)
    draws = {"GAN (ψ 1)": gan_draw(run, 1.0), "GAN (ψ 0.7)": gan_draw(run, 0.7),
             "diffusion, 20 steps": eval_image.pipeline_draw(pipe, 20, 4.0)}
    reused = eval_image.reusable_scores(ldm_dir, eval_image.default_run_dir(), per_class)
    for name, draw in draws.items():
        if name.startswith("diffusion") and reused is not None:
            scores = dict(reused)
        else:
            scores, _ = eval_image.evaluate_draw(draw, classifier, real, per_class)
        draw(["red heart"], [0])
        began = time.perf_counter()
        for seed in range(5):
            draw(["red heart"], [seed])
        scores["ms_per_image"] = round((time.perf_counter() - began) / 5 * 1000, 1)
        models[name] = scores
    return {"models": models, "floor": real["floor"], "ceiling": real["ceiling"], "threads": torch.get_num_threads(),
            "gan_step": run.state["step"]}
