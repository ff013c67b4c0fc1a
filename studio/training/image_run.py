"""One image training run: its models, its state, and its checkpoint folder (swapped in atomically).

The run folder (default runs/emoji-ldm, or $STUDIO_RUNS_DIR/emoji-ldm) holds checkpoint/ with every
model in diffusers' layout, the optimiser and state.json. With no checkpoint there, a run resumes from the
exported fp16 weights in models/emoji-ldm/ (their training_state.json).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import torch

from studio import paths
from studio.data import emoji as data_emoji
from studio.data.emoji_words import colour_name, read_cldr_keywords
from studio.training import run as run_files
from studio.training.image_captions import (
    EmojiWords,
    caption_choices,
    emoji_words,
    load_tokenizer,
    write_clip_tokenizer,
)
from studio.training.image_model import (
    Sizes,
    build_text_encoder,
    build_unet,
    build_vae,
    images_to_tensor,
    sampling_scheduler,
)

MODEL_NAME = "emoji-ldm"


def default_run_dir() -> Path:
    return run_files.run_dir(MODEL_NAME, create=False)


def default_model_dir() -> Path:
    return paths.builtin_model_dir(MODEL_NAME)


class Run:
    """Everything training needs, and its checkpoint in one folder (swapped in atomically)."""

    def __init__(self, run_dir: Path, sizes: Sizes, data: data_emoji.EmojiDataset, log=print):
        self.dir = run_dir
        self.sizes = sizes
        self.data = data
        self.train = data.split(held_out=False)
        self.log = log
        self.state = {
            "stage": "vae",
            "vae_step": 0,
            "ldm_step": 0,
            "seconds": {"vae": 0.0, "ldm": 0.0},
            "history": [],
            "scaling_factor": None,
        }
        self.vae = self.unet = self.text_encoder = self.unet_ema = self.text_ema = self.tokenizer = None
        self.optimizer = None

    # -- captions
    def words(self, data: data_emoji.EmojiDataset) -> list[EmojiWords]:
        colours = [colour_name(image) for image in data.images]
        return emoji_words(data, read_cldr_keywords(), colours, demonyms=self.everyday_words, synonyms=self.synonyms)

    @property
    def everyday_words(self) -> bool:
        """Round 5 on: flags' country adjectives, and filler words that name nothing (image_stages)."""
        return "everyday_words_from" in self.state

    @property
    def synonyms(self) -> bool:
        """Round 6 on: everyday words for each emoji that neither its name nor its keywords use ("puppy")."""
        return "synonyms_from" in self.state

    def all_captions(self) -> list[str]:
        """The plain captions of every emoji (what a fresh run learns its BPE vocabulary from)."""
        return [c for words in self.words(self.data) for c, _ in caption_choices(words, phrased=False)]

    def caption_table(self) -> list[list[tuple[str, float]]]:
        return [caption_choices(words) for words in self.words(self.train)]

    # -- building
    def build(self) -> None:
        self.vae = build_vae(self.sizes)
        tok_dir = self.dir / "checkpoint" / "tokenizer"
        if tok_dir.exists():
            self.tokenizer = load_tokenizer(tok_dir)
        else:
            self.tokenizer = write_clip_tokenizer(
                self.all_captions(), self.dir / "tokenizer_build", self.sizes.bpe_merges
            )
        self.text_encoder = build_text_encoder(self.sizes, self.tokenizer)
        self.unet = build_unet(self.sizes, self.latent_size())
        self.unet_ema = copy.deepcopy(self.unet).requires_grad_(False)
        self.text_ema = copy.deepcopy(self.text_encoder).requires_grad_(False)

    def grow_text_vocabulary(self, tokenizer, sources: dict[int, list[int]]) -> None:
        """Round 7: both text encoders' token tables grown to `tokenizer`'s size; each new row starts as the mean of
        its `sources` rows (old token ids), scaled to the old rows' mean length, so a new word begins where the
        words it means already are."""
        for encoder in (self.text_encoder, self.text_ema):
            old = encoder.get_input_embeddings().weight.detach().clone()
            encoder.resize_token_embeddings(len(tokenizer))
            table = encoder.get_input_embeddings().weight
            length = old.norm(dim=1).mean()
            with torch.no_grad():
                for new_id, ids in sources.items():
                    row = old[ids].mean(dim=0)
                    table[new_id] = row * length / row.norm().clamp_min(1e-8)
        self.text_ema.requires_grad_(False)
        self.tokenizer = tokenizer

    def latent_size(self) -> int:
        return data_emoji.IMAGE_SIZE // 2 ** (len(self.sizes.vae_channels) - 1)

    def make_optimizer(self, stage: str, lr: float):
        params = (
            list(self.vae.parameters())
            if stage == "vae"
            else (list(self.unet.parameters()) + list(self.text_encoder.parameters()))
        )
        self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01 if stage == "ldm" else 0.0)

    # -- checkpoints
    def save(self) -> None:
        tmp = self.dir / "checkpoint.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.vae.save_pretrained(tmp / "vae")
        self.unet.save_pretrained(tmp / "unet")
        self.unet_ema.save_pretrained(tmp / "unet_ema")
        self.text_encoder.save_pretrained(tmp / "text_encoder")
        self.text_ema.save_pretrained(tmp / "text_encoder_ema")
        self.tokenizer.save_pretrained(tmp / "tokenizer")
        if self.optimizer is not None:
            torch.save({"stage": self.state["stage"], "optimizer": self.optimizer.state_dict()}, tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(self.state), encoding="utf-8")
        run_files.replace_folder(tmp, self.dir / "checkpoint")  # checkpoint.old meanwhile: see checkpoint_dir

    def checkpoint_dir(self) -> Path | None:
        for name in ("checkpoint", "checkpoint.old"):
            if (self.dir / name / "state.json").exists():
                return self.dir / name
        return None

    def load(self) -> bool:
        """Resume from the run folder, else from the exported model folder; False if starting fresh."""
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel

        ckpt = self.checkpoint_dir()
        if ckpt is not None:
            self.state = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
            self.vae = AutoencoderKL.from_pretrained(ckpt / "vae")
            self.unet = UNet2DConditionModel.from_pretrained(ckpt / "unet")
            self.unet_ema = UNet2DConditionModel.from_pretrained(ckpt / "unet_ema").requires_grad_(False)
            self.text_encoder = CLIPTextModel.from_pretrained(ckpt / "text_encoder")
            self.text_ema = CLIPTextModel.from_pretrained(ckpt / "text_encoder_ema").requires_grad_(False)
            self.tokenizer = load_tokenizer(ckpt / "tokenizer")
            self._optimizer_file = ckpt / "optimizer.pt"
            return True
        model_dir = default_model_dir()
        if (model_dir / "training_state.json").exists():
            f32 = {"torch_dtype": torch.float32}
            self.state = json.loads((model_dir / "training_state.json").read_text(encoding="utf-8"))
            self.vae = AutoencoderKL.from_pretrained(model_dir / "vae", **f32)
            self.unet = UNet2DConditionModel.from_pretrained(model_dir / "unet", **f32)
            self.text_encoder = CLIPTextModel.from_pretrained(model_dir / "text_encoder", **f32)
            self.unet_ema = copy.deepcopy(self.unet).requires_grad_(False)
            self.text_ema = copy.deepcopy(self.text_encoder).requires_grad_(False)
            self.tokenizer = load_tokenizer(model_dir / "tokenizer")
            self._optimizer_file = None
            return True
        return False

    def drop_optimizer_state(self) -> None:
        """Start the next optimiser afresh (the parameters it would restore changed shape)."""
        self._optimizer_file = None

    def restore_optimizer(self, stage: str) -> bool:
        """Load the checkpoint's optimiser state for this stage; False when there is none (a fresh optimiser)."""
        path = getattr(self, "_optimizer_file", None)
        if path is not None and path.exists():
            saved = torch.load(path, weights_only=True)
            if saved.get("stage") == stage:
                self.optimizer.load_state_dict(saved["optimizer"])
                return True
        return False

    def record(self, stage: str, step: int, **values) -> None:
        self.state["history"].append({"stage": stage, "step": step, **{k: round(v, 5) for k, v in values.items()}})

    # -- the latent data set for stage 2
    @torch.no_grad()
    def encode_latents(self, data: data_emoji.EmojiDataset, batch: int = 128):
        """Posterior mean and std of every image (sampled afresh at every step)."""
        self.vae.eval()
        means, stds = [], []
        for i in range(0, len(data), batch):
            dist = self.vae.encode(images_to_tensor(data.images[i : i + batch])).latent_dist
            means.append(dist.mean)
            stds.append(dist.std)
        return torch.cat(means), torch.cat(stds)

    def pipeline(self, ema: bool = True):
        from diffusers import StableDiffusionPipeline

        self.vae.register_to_config(scaling_factor=self.state["scaling_factor"] or 1.0)
        return StableDiffusionPipeline(
            vae=self.vae,
            text_encoder=self.text_ema if ema else self.text_encoder,
            tokenizer=self.tokenizer,
            unet=self.unet_ema if ema else self.unet,
            scheduler=sampling_scheduler(),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
