"""Train the built-in emoji GAN: a small conditional StyleGAN-style generator against a projection discriminator.

The GAN draws in the emoji VAE's latent space (16x16x4, see studio/core/gan.py for why); the VAE's frozen decoder
turns a drawing into 64x64 pixels. The VAE and the text encoder are copied from models/emoji-ldm at the first start
and ship with the GAN, so it never depends on a later retraining of the diffusion model.

  python -m studio.training.gan train [--minutes N]   resumable; checkpoints every ~3 min to runs/emoji-gan/
  python -m studio.training.gan samples               a sample sheet from the checkpoint (EMA generator)
  python -m studio.training.gan evaluate              the card's figures beside the diffusion model's (eval.json)
  python -m studio.training.gan export                fp16 folder models/emoji-gan/ + MODEL_CARD.md (gan_export.py)

A recipe for a small data set (3,300 emoji) on a CPU, from the StyleGAN2 and DiffAugment papers:
- non-saturating logistic loss; R1 penalty on real images, lazily every R1_EVERY steps;
- differentiable augmentation (translation, cutout: DiffAugment's pair, in latent space) on everything D sees, real
  and fake, so D can't memorise 3,300 pictures and G is not taught the augmentations;
- an exponential moving average of G's weights is what ships (sharper, steadier than the raw G);
- style mixing in half the batches (two w's, a random crossover), which keeps coarse and fine styles apart, so
  the Explorer's style mixing means something;
- conditioning: the prompt's pooled embedding from the emoji-ldm's text encoder (frozen, copied into the run and
  shipped with the model); captions drawn per step as the diffusion model's are, so "a red heart" works too;
- matching-aware D: real pictures with a wrong caption count as fake, which makes G honour the prompt.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from studio import paths
from studio.core.gan import Discriminator, GanConfig, Generator, mix_styles
from studio.data import emoji as data_emoji
from studio.data.emoji_words import colour_name, read_cldr_keywords
from studio.training import gan_export
from studio.training import run as run_files
from studio.training.image_captions import caption_choices, emoji_words, load_tokenizer, pick_caption
from studio.training.image_model import images_to_tensor

MODEL_NAME = "emoji-gan"
BATCH = 32
LR = 0.0025  # StyleGAN2's rate for small resolutions, with Adam betas (0, 0.99)
R1_GAMMA = 0.5  # low for 64 px (StyleGAN2-ADA uses ~0.01-1 at low resolutions)
R1_EVERY = 16  # lazy regularisation: the penalty every 16 steps, scaled by 16
EMA_HALF_LIFE_IMAGES = 10_000
STYLE_MIX_PROBABILITY = 0.5
WRONG_CAPTION_WEIGHT = 0.5
CAPTION_DROP = 0.1  # some empty captions, so "" (no prompt) draws any emoji
CHECKPOINT_EVERY_S = 180
SAMPLES_EVERY_S = 20 * 60
SAMPLE_PROMPTS = ("red heart", "grinning face", "dog face", "pizza", "sunflower", "automobile", "france",
                  "thumbs up", "a blue car", "a cute cat")


def default_run_dir() -> Path:
    return run_files.run_dir(MODEL_NAME, create=False)


# --- augmentation (DiffAugment: translation + cutout, differentiable) -------------------------


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = images.shape
    shift = h // 8
    padded = F.pad(images, (shift,) * 4)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    return _cutout(_translate(padded, dx, dy, h, w), generator)


def _translate(padded: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, h: int, w: int) -> torch.Tensor:
    out = [padded[i, :, int(dy[i]) : int(dy[i]) + h, int(dx[i]) : int(dx[i]) + w] for i in range(len(dx))]
    return torch.stack(out)


def _cutout(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = images.shape
    size = h // 2
    cy = torch.randint(0, h, (n,), generator=generator)
    cx = torch.randint(0, w, (n,), generator=generator)
    ys, xs = torch.arange(h)[None, :, None], torch.arange(w)[None, None, :]
    inside = ((ys - cy[:, None, None]).abs() < size // 2) & ((xs - cx[:, None, None]).abs() < size // 2)
    return images * (~inside).unsqueeze(1).float()


# --- the run ----------------------------------------------------------------------------------


class GanRun:
    """Generator, its EMA, discriminator, optimisers, the frozen VAE and text encoder, the captions, the checkpoint."""

    def __init__(self, run_dir: Path, config: GanConfig, data: data_emoji.EmojiDataset, log=print) -> None:
        self.dir, self.log = run_dir, log
        self.train = data.split(held_out=False)
        self.load_parts()
        self.config = replace(config, latent_scaling=float(self.vae.config.scaling_factor))
        self.latent_mean, self.latent_std = self.encode(self.train.images)
        self.G, self.D = Generator(self.config), Discriminator(self.config)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=LR, betas=(0.0, 0.99))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=LR, betas=(0.0, 0.99))
        self.state = {"step": 0, "images_seen": 0, "seconds": 0.0, "history": []}
        words = emoji_words(self.train, read_cldr_keywords(), [colour_name(im) for im in self.train.images])
        self.captions = [caption_choices(w) for w in words]
        # Each emoji drawn once whatever its skin tones (from step `per_emoji_from` on; uniform before): uniformly,
        # People & Body's tone variants are 59 % of the batches, and a GAN collapses towards what it sees most.
        self.draw_weights = self.train.per_emoji_weights()

    def load_parts(self) -> None:
        """The VAE and the text encoder: copied from the diffusion model at the first start, then the run's own."""
        from diffusers import AutoencoderKL
        from transformers import CLIPTextModel

        own = self.dir / "parts"
        if not (own / "vae" / "config.json").exists():
            source = paths.builtin_model_dir("emoji-ldm")
            for part in ("vae", "text_encoder", "tokenizer"):
                shutil.copytree(source / part, own / part, dirs_exist_ok=True)
        self.vae = AutoencoderKL.from_pretrained(own / "vae", dtype=torch.float32).eval().requires_grad_(False)
        self.text_encoder = CLIPTextModel.from_pretrained(own / "text_encoder", dtype=torch.float32).eval()
        self.text_encoder.requires_grad_(False)
        self.tokenizer = load_tokenizer(own / "tokenizer")

    @torch.no_grad()
    def encode(self, images: np.ndarray, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and std of each picture, scaled as the generator draws them."""
        means, stds = [], []
        for start in range(0, len(images), batch):
            dist = self.vae.encode(images_to_tensor(images[start : start + batch])).latent_dist
            means.append(dist.mean)
            stds.append(dist.std)
        scale = float(self.vae.config.scaling_factor)
        return torch.cat(means) * scale, torch.cat(stds) * scale

    def real_latents(self, idx: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        mean, std = self.latent_mean[idx], self.latent_std[idx]
        return mean + std * torch.randn(mean.shape, generator=generator)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents / self.config.latent_scaling).sample

    @torch.no_grad()
    def embed(self, captions: list[str]) -> torch.Tensor:
        return embed_prompts(self.text_encoder, self.tokenizer, captions)

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        run_files.save_atomic({"G": self.G.state_dict(), "G_ema": self.G_ema.state_dict(), "D": self.D.state_dict(),
                               "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
                               "state": self.state, "config": self.config.to_dict()}, self.dir / run_files.CHECKPOINT)

    def load(self) -> bool:
        saved = run_files.read_checkpoint(self.dir / run_files.CHECKPOINT)
        if saved is None:
            return False
        self.G.load_state_dict(saved["G"])
        self.G_ema.load_state_dict(saved["G_ema"])
        self.D.load_state_dict(saved["D"])
        self.opt_G.load_state_dict(saved["opt_G"])
        self.opt_D.load_state_dict(saved["opt_D"])
        self.state = saved["state"]
        return True


@torch.no_grad()
def embed_prompts(text_encoder, tokenizer, prompts: list[str]) -> torch.Tensor:
    """The text encoder's pooled output (the end-of-text token's final state): one vector per prompt.

    Padded to the longest prompt, not to 77 tokens: CLIP's attention is causal, so what follows the end-of-text
    token never reaches it, and ten tokens cost an eighth of 77.
    """
    ids = tokenizer(prompts, padding="longest", truncation=True, return_tensors="pt").input_ids
    return text_encoder(ids).pooler_output.float()


# --- one step ---------------------------------------------------------------------------------


def _styles(run: GanRun, z: torch.Tensor, text: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """ws for a batch; in half the batches two w's with a random crossover (style mixing regularisation)."""
    ws = run.G.broadcast(run.G.mapping(z, text))
    if torch.rand((), generator=generator) < STYLE_MIX_PROBABILITY:
        other = run.G.broadcast(run.G.mapping(torch.randn(z.shape, generator=generator), text))
        crossover = int(torch.randint(1, run.config.num_ws, (), generator=generator))
        ws = mix_styles(ws, other, crossover)
    return ws


def _fakes(run: GanRun, text: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    z = torch.randn(len(text), run.config.z_dim, generator=generator)
    return run.G.synthesis(_styles(run, z, text, generator), run.G.noises(len(text), generator))


def train_step(run: GanRun, rng: np.random.Generator, generator: torch.Generator) -> dict[str, float]:
    idx, others = (rng.choice(len(run.train), BATCH, p=run.draw_weights) for _ in range(2))
    real = run.real_latents(idx, generator)
    text = run.embed([pick_caption(rng, run.captions[i], CAPTION_DROP) for i in idx])
    wrong = run.embed([pick_caption(rng, run.captions[i], 0.0) for i in others])
    step = run.state["step"]
    # 1. D: real high, fake low, and the same real pictures under a wrong caption low (same features, other text)
    with torch.no_grad():
        fake = _fakes(run, text, generator)
    real_features = run.D.features(augment(real, generator))
    real_score = run.D.score(real_features, text)
    loss_d = (F.softplus(run.D(augment(fake, generator), text)).mean() + F.softplus(-real_score).mean()
              + WRONG_CAPTION_WEIGHT * F.softplus(run.D.score(real_features, wrong)).mean())
    run_files.optimise(run.opt_D, loss_d, clip=None)
    r1 = _r1_step(run, real, text) if step % R1_EVERY == 0 else None  # lazy: not every step
    # 2. G: make D call the fakes real
    loss_g = F.softplus(-run.D(augment(_fakes(run, text, generator), generator), text)).mean()
    run_files.optimise(run.opt_G, loss_g, clip=None)
    # 3. EMA of G
    beta = 0.5 ** (BATCH / EMA_HALF_LIFE_IMAGES)
    with torch.no_grad():
        for ema, p in zip(run.G_ema.parameters(), run.G.parameters(), strict=True):
            ema.lerp_(p, 1 - beta)
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "r1": r1, "real_score": real_score.mean().item()}


def _r1_step(run: GanRun, real: torch.Tensor, text: torch.Tensor) -> float:
    real = real.detach().requires_grad_(True)
    score = run.D(real, text).sum()
    (grad,) = torch.autograd.grad(score, real, create_graph=True)
    penalty = grad.pow(2).sum(dim=(1, 2, 3)).mean()
    run_files.optimise(run.opt_D, penalty * (R1_GAMMA / 2) * R1_EVERY, clip=None)
    return penalty.item()


# --- the loop ---------------------------------------------------------------------------------


def train(run_dir: Path, minutes: float | None, threads: int, seed: int = 0) -> GanRun:
    torch.set_num_threads(threads)
    log = run_files.make_logger(run_dir)
    run = GanRun(run_dir, GanConfig(), data_emoji.load_dataset(), log)
    if run.load():
        log(f"resumed at step {run.state['step']} ({run.state['images_seen']:,} images seen)")
    else:
        g, d = (sum(p.numel() for p in m.parameters()) / 1e6 for m in (run.G, run.D))
        log(f"fresh run: {len(run.train)} images, G {g:.2f} M params, D {d:.2f} M params")
    run.state.setdefault("per_emoji_from", run.state["step"])
    deadline = time.time() + minutes * 60 if minutes else float("inf")
    rng = np.random.default_rng(seed + run.state["step"])
    generator = torch.Generator().manual_seed(seed + run.state["step"])
    samples = {"at": time.time()}

    def step() -> dict:
        parts = train_step(run, rng, generator)
        run.state["images_seen"] += BATCH
        return parts

    def maybe_samples() -> None:  # a sample sheet every SAMPLES_EVERY_S, at a checkpoint
        if time.time() - samples["at"] > SAMPLES_EVERY_S:
            save_samples(run)
            samples["at"] = time.time()

    run_files.train_until(run, deadline, step, log, checkpoint_every_s=CHECKPOINT_EVERY_S, on_checkpoint=maybe_samples)
    save_samples(run)
    return run


@torch.no_grad()
def save_samples(run: GanRun, seeds: int = 6) -> Path:
    """One row per sample prompt, one column per seed, from the EMA generator."""
    from PIL import Image

    rows = []
    for prompt in SAMPLE_PROMPTS:
        text = run.embed([prompt] * seeds)
        generator = torch.Generator().manual_seed(0)
        z = torch.randn(seeds, run.config.z_dim, generator=generator)
        images = run.decode(run.G_ema(z, text, run.G_ema.noises(seeds, generator)))
        pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        rows.append(np.concatenate(list(pixels), axis=1))
    path = run.dir / f"samples-{run.state['step']:06d}.png"
    Image.fromarray(np.concatenate(rows, axis=0)).resize((seeds * 128, len(rows) * 128), Image.NEAREST).save(path)
    run.log(f"samples: {path}")
    return path


def main() -> None:
    command, run = run_files.trainer_command(__doc__, MODEL_NAME, ["samples", "evaluate", "export"], train,
                                             lambda folder: GanRun(folder, GanConfig(), data_emoji.load_dataset()))
    if command == "samples":
        print(save_samples(run))
    elif command == "evaluate":
        result = gan_export.evaluate_models(run, paths.builtin_model_dir("emoji-ldm"))
        (run.dir / "eval.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        print(json.dumps({n: {k: v for k, v in m.items() if k not in ("per_class", "class_mix")}
                          for n, m in result["models"].items()}, indent=2))
    elif command == "export":
        gan_export.export(run, paths.builtin_model_dir(MODEL_NAME), save_samples(run))

if __name__ == "__main__":
    main()
