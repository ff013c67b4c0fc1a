"""A LoRA on a Stable Diffusion-family model (the built-in emoji-ldm, SD 1.x/2.x folders and files) from a folder of
pictures with captions and a trigger word.

As diffusers' own LoRA scripts do (train_text_to_image_lora.py): the base pipeline frozen, PEFT LoRA layers on the
UNet's attention projections (`unet.add_adapter`) and optionally on the text encoder's, the denoising loss of
the built-in's trainer (image_model.ldm_loss: min-SNR weighted, epsilon or v by the model's scheduler), latents
encoded once by the model's VAE. The same code runs on a CUDA GPU for full-size models: weights in fp16, the LoRA
in fp32, gradient checkpointing where the card's memory tier asks for it (settings.GPU_TIERS).
"""

from __future__ import annotations

import io
from pathlib import Path

from studio.core import catalog
from studio.core.jobs import UserError
from studio.training.finetune_data import gpu_problem, image_base_facts, load_images
from studio.training.image_model import images_to_tensor, ldm_loss

UNET_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]  # every attention block's projections (diffusers' scripts)
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
SAMPLE_PROMPTS = 4
SAMPLE_SEEDS = 2
SAMPLE_STEPS = 20
SAMPLE_GUIDANCE = 5.0
SCORE_SEED = 1234  # the fixed noise and timesteps every checkpoint is scored on


def lora_config(rank: int, targets: list[str]):
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=targets)


def captioned(item: dict, trigger: str) -> str:
    caption = str(item.get("caption") or "").strip()
    trigger = trigger.strip()
    if not trigger:
        return caption
    return f"{trigger}, {caption}" if caption else trigger


def training_device(device: str) -> tuple[str, str]:
    """(device, dtype of the frozen weights): CUDA trains in fp16, anything else on the CPU in fp32."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return device, "float16"
    return "cpu", "float32"


class ImageTrainer:
    medium = "image"
    score_name = "denoising loss on fixed noise"

    def __init__(self, record: dict, run_dir: Path, device: str) -> None:
        self.record, self.run_dir = record, Path(run_dir)
        self.settings = record["settings"]
        self.device, self.dtype = training_device(device)

    def prepare(self, report=None, cancelled=None) -> None:
        import torch

        from studio.core.devices import DeviceChoice
        from studio.engine.image.pipelines import load_image_pipeline

        facts = image_base_facts(self.record["base_model"])
        blocked = gpu_problem(facts["parameters"])
        if blocked:
            raise UserError(blocked)
        bundle = load_image_pipeline(catalog.resolve(self.record["base_model"]), DeviceChoice("cpu", "float32", "CPU"),
                                     report)
        self.pipe = pipe = bundle.pipe
        for part in (pipe.unet, pipe.vae, pipe.text_encoder):
            part.requires_grad_(False)
        multiple = bundle.size_multiple
        self.size = max(multiple, int(self.settings.get("resolution") or facts["size"]) // multiple * multiple)
        self.latents = self._encode(load_images(Path(self.settings["folder"]), self.record["items"], self.size))
        trigger = str(self.settings.get("trigger") or "")
        self.captions = [captioned(item, trigger) for item in self.record["items"]]
        self.ids = pipe.tokenizer(self.captions, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                                  truncation=True, return_tensors="pt").input_ids
        rank = int(self.settings["rank"])
        pipe.unet.add_adapter(lora_config(rank, UNET_TARGETS))
        self.notes = []
        self.text_lora = bool(self.settings.get("train_text_encoder", False))
        if self.text_lora:
            try:
                pipe.text_encoder.add_adapter(lora_config(rank, TEXT_TARGETS))
            except ValueError as exc:  # transformers 5.25 asks for PEFT >= 0.22 to hold (and to load) such a LoRA
                self.text_lora = False
                self.notes.append(f"the text encoder was not trained: {exc}")
        self._to_device(torch)
        from diffusers import DDPMScheduler

        self.noise = DDPMScheduler.from_config(bundle.base_scheduler_config)
        self.prompts = list(dict.fromkeys(self.captions))[:SAMPLE_PROMPTS]
        self.data_summary = {"pictures": len(self.captions), "size": self.size, "trigger": trigger,
                             "text_encoder_trained": self.text_lora, "notes": self.notes}

    def _encode(self, images):
        """The pictures as scaled latent means (once: the VAE is frozen, so they never change)."""
        import torch

        vae = self.pipe.vae
        pixels = images_to_tensor(images)
        with torch.no_grad():
            means = [vae.encode(pixels[i:i + 16]).latent_dist.mean for i in range(0, len(pixels), 16)]
        return torch.cat(means) * vae.config.scaling_factor

    def _to_device(self, torch) -> None:
        if self.device == "cpu":
            return
        from studio.engine.train.settings import gpu_tier

        dtype = getattr(torch, self.dtype)
        self.pipe.to(self.device, dtype)
        for param in self.parameters():
            param.data = param.data.float()  # LoRA weights train in fp32 on top of fp16 weights (diffusers' way)
        tier = gpu_tier(torch.cuda.get_device_properties(0).total_memory / 2**30)
        if tier is None or tier.checkpointing:
            self.pipe.unet.enable_gradient_checkpointing()
        self.latents = self.latents.to(self.device, dtype)

    def parameters(self) -> list:
        parts = [self.pipe.unet] + ([self.pipe.text_encoder] if self.text_lora else [])
        return [p for part in parts for p in part.parameters() if p.requires_grad]

    def loss(self, step: int, seed: int):
        import torch

        generator = torch.Generator().manual_seed(seed)
        batch = int(self.record["plan"]["batch"])
        chosen = torch.randint(0, len(self.latents), (batch,), generator=generator)
        with torch.autocast(self.device.split(":")[0], enabled=self.device != "cpu"):
            return ldm_loss(self.pipe.unet, self.pipe.text_encoder, self.noise, self.latents[chosen],
                            self.ids[chosen], generator)

    def score(self) -> float:
        """The loss on every picture at the same noise and timesteps each time: comparable between checkpoints."""
        import torch

        generator = torch.Generator().manual_seed(SCORE_SEED)
        with torch.no_grad():
            losses = [float(ldm_loss(self.pipe.unet, self.pipe.text_encoder, self.noise, self.latents[i:i + 16],
                                     self.ids[i:i + 16], generator)) for i in range(0, len(self.latents), 16)]
        return sum(losses) / len(losses)

    def samples(self, seed: int) -> dict:
        """A grid: the first prompts (rows) at fixed seeds (columns), as PNG bytes."""
        import torch
        from PIL import Image

        pictures = []
        with torch.no_grad():
            for prompt in self.prompts:
                for column in range(SAMPLE_SEEDS):
                    generator = torch.Generator("cpu").manual_seed(seed % 2**31 + column)
                    pictures.append(self.pipe(prompt, num_inference_steps=SAMPLE_STEPS, guidance_scale=SAMPLE_GUIDANCE,
                                              height=self.size, width=self.size, generator=generator).images[0])
        grid = Image.new("RGB", (self.size * SAMPLE_SEEDS, self.size * len(self.prompts)), "white")
        for index, picture in enumerate(pictures):
            grid.paste(picture, ((index % SAMPLE_SEEDS) * self.size, (index // SAMPLE_SEEDS) * self.size))
        out = io.BytesIO()
        grid.save(out, format="PNG")
        return {"kind": "image", "prompts": self.prompts, "seeds": SAMPLE_SEEDS, "png": out.getvalue()}

    def lora_state(self) -> dict:
        from peft import get_peft_model_state_dict

        state = {f"unet.{k}": v for k, v in get_peft_model_state_dict(self.pipe.unet).items()}
        if self.text_lora:
            state.update({f"text_encoder.{k}": v for k, v in get_peft_model_state_dict(self.pipe.text_encoder).items()})
        return state

    def load_lora_state(self, tensors: dict) -> None:
        from peft import set_peft_model_state_dict

        for prefix, part in (("unet.", self.pipe.unet), ("text_encoder.", self.pipe.text_encoder)):
            own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            if own:
                set_peft_model_state_dict(part, own)
