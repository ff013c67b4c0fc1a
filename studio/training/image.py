"""Train the built-in image model: a small latent diffusion model on Noto Color Emoji.

Three parts, saved as a standard diffusers `StableDiffusionPipeline` folder (models/emoji-ldm/):
  vae/           AutoencoderKL, 64x64x3 <-> 16x16x4
  text_encoder/  a tiny CLIPTextModel, trained jointly with the UNet on emoji names, aliases and groups
  tokenizer/     a CLIPTokenizer whose BPE vocabulary is learnt from those captions
  unet/          UNet2DConditionModel in the VAE's latent space, v-prediction, min-SNR weighted, EMA weights
  scheduler/     DPM-Solver++ (2M), good in ~20 steps

Training runs on a CPU core for hours, so it is resumable and goes in two stages with one command:
  python -m studio.training.image train [--stage all|vae|ldm] [--minutes N]
      stage vae: the autoencoder, until VAE_STEPS (or its share of the time);
      stage ldm: the UNet + text encoder on cached VAE latents, until --minutes runs out (default: forever).
  python -m studio.training.image export      fp16 weights + MODEL_CARD.md + loss curve + sample sheet
  python -m studio.training.image samples     a sample sheet from the current checkpoint (to look at progress)
  python -m studio.training.image train --stage decoder --minutes N   sharpen the VAE decoder only
  python -m studio.training.image train --stage decoder-samples --minutes N   ... on the UNet's own latents too
It checkpoints every ~3 minutes to the run folder (default runs/emoji-ldm, or $STUDIO_RUNS_DIR/emoji-ldm),
and with no checkpoint there it resumes from the fp16 weights in models/emoji-ldm/ (training_state.json).

The code: image_captions.py (captions, tokenizer), image_model.py (models, losses), image_run.py (one run and its
checkpoint), image_stages.py (the training stages), image_export.py (sample sheets, export, card); run.py holds
what every trainer shares.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from studio.data import emoji as data_emoji
from studio.training import run as run_files
from studio.training.image_export import export, save_samples
from studio.training.image_hands import SECOND_HAND_SHARE
from studio.training.image_model import Sizes, count_params
from studio.training.image_run import Run, default_model_dir, default_run_dir
from studio.training.image_stages import (
    BACKGROUND_WEIGHT,
    VAE_STEPS,
    CaptionRules,
    train_decoder,
    train_ldm,
    train_vae,
)


def train(run_dir: Path, stage: str, minutes: float | None, threads: int, vae_steps: int = VAE_STEPS,
          lr: float = 4e-4, decay_to: float | None = None, background_weight: float = BACKGROUND_WEIGHT,
          rules: CaptionRules | None = None) -> None:
    torch.set_num_threads(threads)
    log = run_files.make_logger(run_dir)
    deadline = time.time() + minutes * 60 if minutes else float("inf")
    run = Run(run_dir, Sizes(), data_emoji.load_dataset(), log)
    if run.load():
        log(f"resumed: stage {run.state['stage']}, vae step {run.state['vae_step']}, ldm step {run.state['ldm_step']}")
    else:
        run.build()
        log(
            f"fresh run: {len(run.train)} training images; VAE {count_params(run.vae) / 1e6:.2f} M, "
            f"UNet {count_params(run.unet) / 1e6:.2f} M, text encoder {count_params(run.text_encoder) / 1e6:.2f} M, "
            f"vocabulary {len(run.tokenizer)}"
        )
    if stage in ("all", "vae") and run.state["stage"] == "vae":
        train_vae(run, deadline, steps=vae_steps)
        log(f"vae stage done at step {run.state['vae_step']}")
    if stage in ("decoder", "decoder-samples"):
        train_decoder(run, deadline, on_samples=stage == "decoder-samples", background_weight=background_weight)
        return
    if stage in ("all", "ldm") and time.time() < deadline:
        train_ldm(run, deadline, lr=lr, decay_to=decay_to, on_checkpoint=save_samples, rules=rules or CaptionRules())
        save_samples(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["train", "export", "samples"])
    parser.add_argument(
        "--stage",
        choices=["all", "vae", "ldm", "decoder", "decoder-samples"],
        default="all",
        help="decoder: fine-tune only the VAE decoder (latents stay put); decoder-samples: half of each batch on "
        "latents the diffusion model drew (fixes the cyan column, see image_stages.train_decoder)",
    )
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long (default: never)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--vae-steps", type=int, default=VAE_STEPS)
    parser.add_argument("--lr", type=float, default=4e-4, help="the UNet and text encoder's peak learning rate")
    parser.add_argument("--decay-to", type=float, default=None,
                        help="cosine-decay the learning rate to this by the end of --minutes (default: constant)")
    parser.add_argument("--per-emoji", action="store_true",
                        help="draw each emoji once whatever its skin tones (round 3); default: every image alike")
    parser.add_argument("--compose", action="store_true",
                        help="add composed captions (describing words, requests; round 4); default: round 3's")
    parser.add_argument("--everyday-words", action="store_true",
                        help="round 5: filler words that name nothing around composed captions, and flags' country "
                        "adjectives (needs wordfreq: pip install -e '.[train]')")
    parser.add_argument("--synonyms", action="store_true",
                        help="round 6: everyday words for each emoji that neither its name nor its keywords use "
                        "('puppy', 'burger', \"3 o'clock\"; studio/data/synonyms.py), with round 5's words")
    parser.add_argument("--new-words", action="store_true",
                        help="round 7 (with --synonyms): the everyday words made whole tokens, their embeddings started "
                        "from the emoji they name, and a quarter of every batch captioned with them")
    parser.add_argument("--context", action="store_true",
                        help="round 8 (with --everyday-words): composed captions that go on to name another emoji "
                        "after the subject ('a red heart in the snow'), the picture still the subject's")
    parser.add_argument("--kin", action="store_true",
                        help="round 9: the held-out emoji's words ('tractor', 'hourglass') taught as their kind, "
                        "captioning training pictures of the same Unicode subgroup (5 %% of every batch)")
    parser.add_argument("--wide-kin", action="store_true",
                        help="round 10: round 9's kin captions on 15 %% of every batch")
    parser.add_argument("--second-hand", type=float, nargs="?", const=SECOND_HAND_SHARE, default=0.0,
                        metavar="SHARE", help="round 11: EmojiOne's picture of the same emoji (Debian ruby-gemojione) "
                        "on SHARE (default %(const)s) of the draws of each emoji it draws, under the same captions, "
                        "so one name has two right pictures; once begun it stays on at the share last given")
    parser.add_argument("--background-weight", type=float, default=BACKGROUND_WEIGHT,
                        help="decoder stages: weight of the far-background term (the cyan column's fix)")
    parser.add_argument("--run-dir", type=Path, default=default_run_dir())
    parser.add_argument("--model-dir", type=Path, default=default_model_dir())
    args = parser.parse_args()
    if args.new_words and not args.synonyms:
        parser.error("--new-words makes round 6's synonyms whole tokens: give --synonyms too")
    if args.context and not args.everyday_words:
        parser.error("--context phrases join round 5's composed captions: give --everyday-words too")
    if args.command == "train":
        rules = CaptionRules(args.per_emoji, args.compose, args.everyday_words, args.synonyms, args.new_words,
                             args.context, args.kin, args.wide_kin, args.second_hand)
        train(args.run_dir, args.stage, args.minutes, args.threads, args.vae_steps, args.lr, args.decay_to,
              args.background_weight, rules)
    elif args.command == "export":
        torch.set_num_threads(args.threads)
        export(args.run_dir, args.model_dir)
    else:
        torch.set_num_threads(args.threads)
        run = Run(args.run_dir, Sizes(), data_emoji.load_dataset(), run_files.make_logger(args.run_dir))
        if not run.load():
            raise SystemExit("no checkpoint yet")
        save_samples(run)


if __name__ == "__main__":
    main()
