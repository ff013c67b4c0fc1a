"""The image model's training stages, each resumable and bounded by a deadline.

  vae      the autoencoder, until VAE_STEPS or VAE_MAX_MINUTES
  ldm      the UNet and the text encoder on the VAE's latents (sampled afresh from each posterior), EMA weights
  decoder  an optional later fine-tune of the VAE decoder alone, which leaves the latents where they are
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from studio.training import run as run_files
from studio.training.image_captions import (
    COMPOSED_SHARE,
    CONTEXT_SHARE,
    context_subjects,
    filler_words,
    pick_training_caption,
    tokenize,
    without_held_out,
)
from studio.training.image_hands import second_hand_draws
from studio.training.image_kin import KIN_SHARE, KinDraws, kin_share
from studio.training.image_model import ema_update, images_to_tensor, ldm_loss, noise_scheduler, psnr, vae_loss
from studio.training.image_new_words import start_new_words
from studio.training.image_run import Run

CHECKPOINT_EVERY_S = 180
SAMPLES_EVERY_S = 20 * 60
VAE_STEPS = 1500
VAE_MAX_MINUTES = 45


def train_vae(
    run: Run, deadline: float, batch: int = 32, lr: float = 1e-3, seed: int = 0, steps: int = VAE_STEPS
) -> None:
    run.state["stage"] = "vae"
    run.make_optimizer("vae", lr)
    run.restore_optimizer("vae")
    rng = np.random.default_rng(seed + run.state["vae_step"])
    held = run.data.split(held_out=True)
    held_images = images_to_tensor(held.images[:128])
    stage_deadline = min(deadline, time.time() + VAE_MAX_MINUTES * 60 - run.state["seconds"]["vae"])
    last_save = last_time = time.time()
    run.vae.train()
    while run.state["vae_step"] < steps and time.time() < stage_deadline:
        step = run.state["vae_step"]
        # Cosine decay to 10 % over the planned steps or the stage's time, whichever ends first
        # (on a shared CPU the time limit usually comes first).
        progress = min(1.0, max(step / steps, run.state["seconds"]["vae"] / (VAE_MAX_MINUTES * 60)))
        run_files.set_learning_rate(run.optimizer, run_files.cosine(progress, lr, lr / 10))
        images = images_to_tensor(run.train.images[rng.integers(0, len(run.train), batch)])
        loss, parts = vae_loss(run.vae, images)
        run_files.optimise(run.optimizer, loss)
        run.state["vae_step"] = step + 1
        now = time.time()
        run.state["seconds"]["vae"] += now - last_time
        last_time = now
        if step % 50 == 0:
            run.vae.eval()
            with torch.no_grad():
                held_psnr = psnr(run.vae(held_images).sample, held_images)
            run.vae.train()
            run.record("vae", step, loss=loss.item(), held_out_psnr=held_psnr, **parts)
            run.log(
                f"vae step {step} loss {loss.item():.4f} l1 {parts['l1']:.4f} kl {parts['kl']:.2f} "
                f"held-out PSNR {held_psnr:.2f} dB ({run.state['seconds']['vae'] / max(step, 1):.2f} s/step)"
            )
        if now - last_save > CHECKPOINT_EVERY_S:
            run.save()
            last_save = now
    run.vae.eval()
    run.save()


@torch.no_grad()
def drawn_latents(run: Run, images: torch.Tensor, captions: list[str], generator: torch.Generator,
                  strengths: tuple[float, float] = (0.3, 0.7), steps: int = 8) -> torch.Tensor:
    """Latents the diffusion model itself drew back from the pictures' own, partly noised (image-to-image):
    what the decoder meets in use, with the pictures they came from as the answer."""
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline(**run.pipeline(ema=True).components)
    pipe.set_progress_bar_config(disable=True)
    strength = float(torch.empty(()).uniform_(*strengths, generator=generator))
    steps = max(steps, math.ceil(1 / strength))  # img2img runs int(steps * strength) of them: at least one
    out = pipe(captions, image=(images + 1) / 2, strength=strength, num_inference_steps=steps, guidance_scale=4.0,
               generator=generator, output_type="latent").images
    return out / run.state["scaling_factor"]


BACKGROUND_WEIGHT = 4.0  # the decoder stage's extra weight on far background pixels (see background_loss)
DRAWN_POOL = 512  # latents the diffusion model drew, made once per session: a step then costs one decode, not a sampling
DECODER_WARMUP = 100  # steps: Adam's first steps move every weight by ~lr, which cost round 1's decoder 6 dB at once


def drawn_pool(run: Run, size: int, generator: torch.Generator, batch: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(latents the diffusion model drew, the training pictures each came from), `size` of them."""
    rng = np.random.default_rng(int(torch.randint(0, 2**31, (), generator=generator)))
    latents, targets = [], []
    for _ in range(0, size, batch):
        idx = rng.integers(0, len(run.train), batch)
        images = images_to_tensor(run.train.images[idx])
        latents.append(drawn_latents(run, images, [run.train.names[i] for i in idx], generator))
        targets.append(images)
    run.log(f"drew {size} latents from partly noised training latents for the decoder")
    return torch.cat(latents)[:size], torch.cat(targets)[:size]


def far_background(images: torch.Tensor, margin: int = 2) -> torch.Tensor:
    """(N, 1, H, W) mask of pixels that are white, and white within `margin` pixels around: the emoji's empty
    surroundings, where a decoder has no business drawing anything."""
    ink = (images < 0.94).any(dim=1, keepdim=True).float()  # not white in some channel ([-1, 1] pixels)
    return 1.0 - F.max_pool2d(ink, 2 * margin + 1, stride=1, padding=margin)


def shown_error(recon: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """recon - images as the picture will show it: a picture is clamped to [-1, 1] when shown, so where the answer
    is pure white (or black) going beyond it costs nothing. That leaves the decoder a margin above the white
    background, where a small dip no longer shows as a tint, instead of asking it to sit exactly at the edge."""
    return torch.where(images >= 1.0, (recon - 1.0).clamp(max=0.0),
                       torch.where(images <= -1.0, (recon + 1.0).clamp(min=0.0), recon - images))


def background_loss(recon: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Mean error on the far background. The cyan column at x = 62 is a colour fringe: the decoder dips the red
    channel there, in proportion to the picture's red, even in its reconstruction of a real red heart (7 of 255,
    drawn ones 18) — too few pixels for the whole-picture loss to notice, so they get their own term."""
    mask = far_background(images)
    return (shown_error(recon, images).abs() * mask).sum() / (mask.sum() * recon.shape[1]).clamp(min=1.0)


def train_decoder(run: Run, deadline: float, batch: int = 32, lr: float = 3e-4, seed: int = 1,
                  on_samples: bool = False, max_steps: int | None = None,
                  background_weight: float = BACKGROUND_WEIGHT, shown_only: bool = True) -> None:
    """Fine-tune only the VAE decoder: sharper pictures without moving the latents the UNet was trained on.

    `on_samples`: half of each batch decodes latents the diffusion model drew (`drawn_pool`) instead of the
    encoder's, so the decoder learns what it meets in use. `background_weight`: the far-background term
    (`background_loss`) against the cyan column at x = 62. Round 2 blamed that column on the border code diffusers'
    one-sided downsampling padding writes into the latent's last column; but putting the encoder's own last latent
    columns into drawn red hearts left the line as it was (18.2 vs 18.4 of 255), and the VAE's reconstruction of
    a real red heart has it too: a colour fringe the decoder draws beside a strong colour. What removed it is
    `shown_only` (errors as the picture shows them, `shown_error`): asked to sit exactly on pure white, the decoder
    dipped below it beside red; free to go beyond it, it keeps a margin. On 48 drawn pictures the red hearts' line
    went 12 -> 0.7 of 255 and held-out PSNR rose 23.1 -> 23.9 dB; a heavier background term alone (weight 20) had
    removed the line too, but cost 1.2 dB and turned red hearts orange."""
    step0 = run.state.setdefault("decoder_step", 0)
    if background_weight:
        run.state.setdefault("decoder_background_from", step0)
    if shown_only:
        run.state.setdefault("decoder_shown_error_from", step0)
    rng = np.random.default_rng(seed + step0)
    generator = torch.Generator().manual_seed(seed + step0)
    run.vae.eval()
    pool = drawn_pool(run, DRAWN_POOL, generator) if on_samples else None
    run.vae.train()
    run.vae.encoder.requires_grad_(False)
    run.vae.quant_conv.requires_grad_(False)
    params = list(run.vae.decoder.parameters()) + list(run.vae.post_quant_conv.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr)
    held = images_to_tensor(run.data.split(held_out=True).images[:128])
    last_save = time.time()
    while time.time() < deadline and (max_steps is None or run.state["decoder_step"] - step0 < max_steps):
        step = run.state["decoder_step"]
        run_files.set_learning_rate(optimizer, run_files.warmup(step - step0, lr, DECODER_WARMUP))
        images = images_to_tensor(run.train.images[rng.integers(0, len(run.train), batch)])
        with torch.no_grad():
            latents = run.vae.encode(images).latent_dist.sample()
        if pool is not None:  # half the batch: the diffusion model's latents, with the pictures they came from
            half = rng.integers(0, len(pool[0]), batch // 2)
            latents[: batch // 2], images[: batch // 2] = pool[0][half], pool[1][half]
        recon = run.vae.decode(latents).sample
        error = shown_error(recon, images) if shown_only else recon - images
        loss = error.abs().mean() + error.pow(2).mean() + background_weight * background_loss(recon, images)
        run_files.optimise(optimizer, loss, clip=None)
        run.state["decoder_step"] = step + 1
        if step % 50 == 0:
            with torch.no_grad():
                held_psnr = psnr(run.vae.decode(run.vae.encode(held).latent_dist.mean).sample, held)
            run.record("decoder", step, loss=loss.item(), held_out_psnr=held_psnr)
            run.log(f"decoder step {step} loss {loss.item():.4f} held-out PSNR {held_psnr:.2f} dB")
        if time.time() - last_save > CHECKPOINT_EVERY_S:
            run.save()
            last_save = time.time()
    run.vae.eval().requires_grad_(False)
    run.save()


def draw_weights(run: Run, per_emoji: bool) -> np.ndarray | None:
    """How training images are drawn: uniformly (rounds 1-2), or each emoji once whatever its skin tones (round 3
    on; the step it began is kept in the state, so the card can say which steps saw which mix)."""
    if not per_emoji:
        return None
    run.state.setdefault("per_emoji_from", run.state["ldm_step"])
    run.log(f"drawing each emoji once whatever its skin tones, from ldm step {run.state['per_emoji_from']}")
    return run.train.per_emoji_weights()


def held_out_sentences() -> frozenset[str]:
    """The evaluation's typed sentences, lower-cased: composed captions must never be one of them."""
    from studio.training.eval_sentences import SENTENCE_SETS

    return frozenset(p.lower() for table in SENTENCE_SETS.values() for ps in table.values() for p in ps)


HELD_OUT_SENTENCES = held_out_sentences()


def composing_words(run: Run, compose: bool) -> list | None:
    """Each training emoji's words, when captions compose (round 4 on; the step it began is kept in the state)."""
    if not compose:
        return None
    run.state.setdefault("composed_from", run.state["ldm_step"])
    run.log(f"composed captions ({COMPOSED_SHARE:.0%}) from ldm step {run.state['composed_from']}")
    return run.words(run.train)


def start_everyday_words(run: Run, everyday: bool, synonyms: bool = False) -> None:
    """Round 5 on (the step it began is kept in the state): flags' adjectives in the captions, fillers in them;
    round 6 on, everyday synonyms as subjects too."""
    if everyday or synonyms:
        run.state.setdefault("everyday_words_from", run.state["ldm_step"])
    if synonyms:
        run.state.setdefault("synonyms_from", run.state["ldm_step"])
        run.log(f"everyday synonyms ('puppy', 'burger', '3 o'clock') from ldm step {run.state['synonyms_from']}")


def everyday_fillers(run: Run, all_words: list) -> tuple[str, ...]:
    """The filler words of round 5 on (none before): frequent English words no caption of any emoji uses, nor any
    of the evaluation's sentences, so a caption with one can never be one of them. `all_words`: every emoji's."""
    if not run.everyday_words:
        return ()
    fillers = filler_words(all_words, HELD_OUT_SENTENCES)
    run.log(f"filler words ({len(fillers)}, e.g. {', '.join(fillers[:8])}) from ldm step "
            f"{run.state['everyday_words_from']}; flags say their country's adjective")
    return fillers


def context_phrases(run: Run, context: bool, all_words: list) -> tuple[str, ...]:
    """Round 8 on (needs round 5's fillers; the step it began is kept in the state): the subjects a context phrase
    can name, from every emoji's words."""
    if context and not run.everyday_words:
        raise ValueError("round 8's context phrases join round 5's composed captions: train with everyday words too")
    if context:
        run.state.setdefault("context_from", run.state["ldm_step"])
    if "context_from" not in run.state:
        return ()
    found = context_subjects(all_words)
    run.log(f"context phrases ({CONTEXT_SHARE:.0%} of composed captions, {len(found)} subjects, e.g. "
            f"'a red heart in the snow') from ldm step {run.state['context_from']}")
    return found


def kin_draws(run: Run, kin: bool, all_words: list, fillers: tuple[str, ...],
              context: tuple[str, ...], wide_kin: bool = False) -> KinDraws | None:
    """Round 9 on (the step it began is kept in the state): the held-out emoji's words on their subgroup's training
    pictures (image_kin); round 10 on, a wider share of every batch. `all_words`: every emoji's, held-out ones
    included."""
    if kin or wide_kin:
        run.state.setdefault("kin_from", run.state["ldm_step"])
    if wide_kin:
        run.state.setdefault("wide_kin_from", run.state["ldm_step"])
    if "kin_from" not in run.state:
        return None
    share = kin_share(run.state)
    draws = KinDraws(run.data, all_words or run.words(run.data), HELD_OUT_SENTENCES, fillers, context, share)
    example = f", e.g. '{draws.words[0].name}'" if draws.words else ""
    widened = f", {share:.0%} from ldm step {run.state['wide_kin_from']}" if "wide_kin_from" in run.state else ""
    run.log(f"kin captions ({len(draws.words)} held-out emoji's words on their subgroup's training "
            f"pictures{example}): {KIN_SHARE:.0%} of every batch from ldm step {run.state['kin_from']}{widened}")
    return draws


@dataclass(frozen=True)
class CaptionRules:
    """The rounds' caption rules a training session asks for; a rule once begun stays on (its first step is kept in
    the run's state), so a later session that leaves one out still trains with it."""

    per_emoji: bool = False  # round 3: each emoji drawn once whatever its skin tones
    compose: bool = False  # round 4: describing words and requests
    everyday: bool = False  # round 5: fillers that name nothing, flags' adjectives
    synonyms: bool = False  # round 6: everyday synonyms as subjects
    new_words: bool = False  # round 7: the synonyms made whole tokens, a share of every batch on them
    context: bool = False  # round 8: phrases naming another emoji after the subject
    kin: bool = False  # round 9: the held-out emoji's words on training pictures of their subgroup
    wide_kin: bool = False  # round 10: round 9's kin captions on a wider share of every batch
    second_hand: float = 0.0  # round 11: the share of an emoji's draws that take EmojiOne's picture (0: as before)


class CaptionDraws:
    """Which training emoji a batch holds and what their captions say, under every round's caption rules (the
    step each round began is kept in the run's state)."""

    def __init__(self, run: Run, rules: CaptionRules):
        start_everyday_words(run, rules.everyday, rules.synonyms)
        self.count = len(run.train)
        self.weights = draw_weights(run, rules.per_emoji)
        all_words = run.words(run.data) if run.everyday_words else []  # every emoji's, for fillers and context
        self.fillers = everyday_fillers(run, all_words)
        self.context = context_phrases(run, rules.context, all_words)
        self.new_words = start_new_words(run, rules.new_words, self.weights, HELD_OUT_SENTENCES, self.fillers,
                                         self.context)
        self.captions = [without_held_out(choices, HELD_OUT_SENTENCES) for choices in run.caption_table()]
        self.composing = composing_words(run, rules.compose or run.everyday_words)
        self.kin = kin_draws(run, rules.kin, all_words, self.fillers, self.context, rules.wide_kin)

    def draw(self, rng: np.random.Generator, batch: int, drop: float) -> tuple[np.ndarray, list[str]]:
        idx = rng.choice(self.count, batch, p=self.weights) if self.weights is not None else \
            rng.integers(0, self.count, batch)
        texts = [pick_training_caption(rng, self.captions[i], self.composing[i] if self.composing else None, drop,
                                       HELD_OUT_SENTENCES, self.fillers, self.context) for i in idx]
        if self.new_words is not None:
            idx, texts = self.new_words.swap_in(rng, idx, texts, drop)
        if self.kin is not None:
            idx, texts = self.kin.swap_in(rng, idx, texts, drop)
        return idx, texts


def train_ldm(
    run: Run,
    deadline: float,
    batch: int = 32,
    lr: float = 4e-4,
    ema_decay: float = 0.999,
    caption_drop: float = 0.1,
    seed: int = 0,
    on_checkpoint=None,
    decay_to: float | None = None,
    rules: CaptionRules = CaptionRules(),
) -> None:
    run.vae.eval().requires_grad_(False)
    run.state["stage"] = "ldm"
    mean, std = run.encode_latents(run.train)
    if run.state["scaling_factor"] is None:
        run.state["scaling_factor"] = float(1.0 / mean.std())
        run.log(f"latent scaling factor {run.state['scaling_factor']:.4f}")
    scale = run.state["scaling_factor"]
    scheduler = noise_scheduler()
    draws = CaptionDraws(run, rules)  # may grow the text encoder
    hands = second_hand_draws(run, rules.second_hand)
    run.make_optimizer("ldm", lr)
    resumed = run.restore_optimizer("ldm")
    step0 = run.state["ldm_step"]
    if not resumed:  # a fresh optimiser (a new round on exported weights) warms up again from here
        run.state["ldm_warm_from"] = step0
    warm_from = run.state.get("ldm_warm_from", 0)
    started = time.time()
    rng = np.random.default_rng(seed + step0)
    generator = torch.Generator().manual_seed(seed + step0)
    last_save = last_samples = last_time = time.time()
    session_seconds = 0.0  # training time since this run resumed (the state's counter holds every session's)
    run.unet.train()
    run.text_encoder.train()
    recent = collections.deque(maxlen=50)
    while time.time() < deadline:
        step = run.state["ldm_step"]
        rate = run_files.warmup(step - warm_from, lr, 300)  # short warm-up, then constant ...
        if decay_to is not None and deadline != float("inf"):  # ... or down to decay_to by the deadline
            rate = run_files.cosine((time.time() - started) / (deadline - started), lr, decay_to) * rate / lr
        run_files.set_learning_rate(run.optimizer, rate)
        idx, texts = draws.draw(rng, batch, caption_drop)
        means, stds = mean[idx], std[idx]
        if hands is not None:
            means, stds, _ = hands.swap(rng, idx, means, stds)
        latents = (means + stds * torch.randn(means.shape, generator=generator)) * scale
        ids = tokenize(run.tokenizer, texts)
        loss = ldm_loss(run.unet, run.text_encoder, scheduler, latents, ids, generator)
        run_files.optimise(run.optimizer, loss)
        # EMA warms up (decay grows with steps) so early exports are not dominated by the random init.
        decay = min(ema_decay, (1 + step) / (10 + step))
        ema_update(run.unet_ema, run.unet, decay)
        ema_update(run.text_ema, run.text_encoder, decay)
        run.state["ldm_step"] = step + 1
        recent.append(loss.item())
        now = time.time()
        run.state["seconds"]["ldm"] += now - last_time
        session_seconds += now - last_time
        last_time = now
        if step % 50 == 0:
            avg = float(np.mean(recent))
            run.record("ldm", step, loss=avg)
            run.log(
                f"ldm step {step} loss {avg:.4f} ({session_seconds / max(step - step0 + 1, 1):.2f} "
                f"s/step this session, {run.state['seconds']['ldm'] / 3600:.2f} h in all)"
            )
        if now - last_save > CHECKPOINT_EVERY_S:
            run.save()
            last_save = now
            if on_checkpoint and now - last_samples > SAMPLES_EVERY_S:
                on_checkpoint(run)
                last_samples = time.time()
                last_time = time.time()  # sampling time is not training time
    run.save()
