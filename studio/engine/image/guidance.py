"""Classifier-free guidance in a limited interval: the first steps run on the prompt alone, guidance joins later.

Kynkäänniemi et al. 2024 ("Applying guidance in a limited interval improves sample and distribution quality in
diffusion models") show that guidance at the highest noise levels is what makes every seed draw the same layout,
while the prompt's look is set in the middle steps. Switching guidance off for the first share of the steps keeps
the seeds apart and keeps the pull of the prompt: on the built-in emoji model, guidance 6 from step 6 of 20 scores
the class prompts as guidance 4 throughout does, with a third more variety between seeds (see its card).

diffusers' pipelines read their scale from `pipe._guidance_scale` at every step, but build the doubled batch of
text embeddings (unconditional + prompt) once, at the start, when the scale is over 1. So an unguided step keeps
both branches and uses a scale of (just over) 1, which is the conditional prediction alone.
"""

from __future__ import annotations

UNGUIDED = 1.0 + 1e-6  # > 1 keeps the pipeline's two branches; uncond + 1.0 * (cond - uncond) is cond


def first_guided_step(start: float, steps: int) -> int:
    """The index of the first guided step when `start` (0..1) of `steps` run unguided."""
    return min(steps, max(0, round(start * steps)))


class GuidanceInterval:
    """Wraps a `callback_on_step_end` hook; sets the guidance scale the next step uses."""

    def __init__(self, scale: float, start: float, inner=None):
        self.scale, self.start, self.inner = scale, start, inner

    def active(self) -> bool:
        return self.scale > 1 and self.start > 0

    def initial_scale(self) -> float:
        """What the pipeline is called with: two branches from the start, guidance off until the interval."""
        return UNGUIDED if self.active() else self.scale

    def __call__(self, pipe, step: int, timestep, tensors: dict) -> dict:
        out = self.inner(pipe, step, timestep, tensors) if self.inner is not None else {}
        if self.active() and hasattr(pipe, "_guidance_scale"):
            steps = int(getattr(pipe, "_num_timesteps", 0) or 0)  # the steps actually run (img2img runs fewer)
            pipe._guidance_scale = self.scale if step + 1 >= first_guided_step(self.start, steps) else UNGUIDED
        return out


# --- variety: condition-annealed sampling ------------------------------------------------------------------------

# Sadat et al. 2024 ("CADS: Unleashing the diversity of diffusion models through condition-annealed sampling",
# ICLR): guidance pulls every seed to the same picture because the prompt's embedding is the same at every step.
# Noise on that embedding in the first steps, annealed away by the middle ones, lets the seeds choose different
# layouts; the clean prompt then decides what they show. The paper's schedule: the embedding is noise alone while
# more than ANNEALED_UNTIL of the way is left to go, clean once CLEAN_FROM is left, linear in between.
ANNEALED_UNTIL = 0.9
CLEAN_FROM = 0.6
NOISE_SEED_OFFSET = 0x5EED  # the embedding's noise is not the starting latents' noise of the same seed


def annealing_weight(remaining: float) -> float:
    """γ: how much of the clean embedding a step sees, from the share of the way still to go (1 = the first step)."""
    if remaining <= CLEAN_FROM:
        return 1.0
    if remaining >= ANNEALED_UNTIL:
        return 0.0
    return (ANNEALED_UNTIL - remaining) / (ANNEALED_UNTIL - CLEAN_FROM)


def annealed_embedding(clean, strength: float, remaining: float, generators):
    """√γ·y + s·√(1-γ)·n, rescaled to the clean embedding's mean and spread per prompt (CADS's ψ = 1), so the
    text model's output keeps the scale the denoiser knows. One generator per prompt of the batch."""
    import torch

    gamma = annealing_weight(remaining)
    if gamma >= 1.0 or strength <= 0:
        return clean
    noise = torch.stack([torch.randn(clean.shape[1:], generator=g, dtype=torch.float32) for g in generators])
    noise = noise.to(clean.device, clean.dtype)
    noisy = gamma**0.5 * clean + strength * (1 - gamma) ** 0.5 * noise
    dims = tuple(range(1, clean.dim()))
    spread = noisy.std(dims, keepdim=True).clamp_min(1e-6)
    return (noisy - noisy.mean(dims, keepdim=True)) / spread * clean.std(dims, keepdim=True) + clean.mean(dims, keepdim=True)


class ConditionAnnealing:
    """Wraps a `callback_on_step_end` hook; gives the next step the prompt's embedding with its share of noise.

    The pipeline must be given `prompt_embeds` (first_embeds: already annealed for step 0) and list `tensor_inputs`
    in its callback tensors. SDXL's pooled embedding (the text's summary the UNet adds to its time embedding) is
    annealed the same way, or it alone would pull every seed to one layout. The noise comes from its own generators
    seeded by the picture's seed, so a recipe regenerates bit for bit.
    """

    def __init__(self, strength: float, seeds: list[int], steps: int, inner=None):
        import torch

        self.strength, self.steps, self.inner = strength, max(1, steps), inner
        self.generators = [torch.Generator("cpu").manual_seed(int(seed) + NOISE_SEED_OFFSET) for seed in seeds]
        # the pooled vector's noise has generators of its own: an SD 1.x picture draws exactly as it did without them
        self.pooled_generators = [torch.Generator("cpu").manual_seed(int(seed) + NOISE_SEED_OFFSET + 1)
                                  for seed in seeds]
        self.clean = self.negative = self.pooled = self.negative_pooled = None

    def first_embeds(self, prompt_embeds, negative_embeds):
        self.clean, self.negative = prompt_embeds, negative_embeds
        return annealed_embedding(prompt_embeds, self.strength, 1.0, self.generators)

    def first_pooled(self, pooled, negative_pooled):
        """SDXL: the pooled embedding the first step sees; later steps get theirs through "add_text_embeds"."""
        self.pooled, self.negative_pooled = pooled, negative_pooled
        return annealed_embedding(pooled, self.strength, 1.0, self.pooled_generators)

    @property
    def tensor_inputs(self) -> list[str]:
        return ["latents", "prompt_embeds"] + (["add_text_embeds"] if self.pooled is not None else [])

    def __call__(self, pipe, step: int, timestep, tensors: dict) -> dict:
        out = self.inner(pipe, step, timestep, tensors) if self.inner is not None else {}
        steps = int(getattr(pipe, "_num_timesteps", 0) or self.steps)  # the steps actually run (img2img runs fewer)
        if self.clean is not None and step + 1 < steps:
            remaining = 1.0 - (step + 1) / steps
            out["prompt_embeds"] = _beside_negative(
                annealed_embedding(self.clean, self.strength, remaining, self.generators), self.negative,
                tensors["prompt_embeds"])
            if self.pooled is not None:
                out["add_text_embeds"] = _beside_negative(
                    annealed_embedding(self.pooled, self.strength, remaining, self.pooled_generators),
                    self.negative_pooled, tensors["add_text_embeds"])
        return out


def _beside_negative(embeds, negative, current):
    """[negative, prompt] when the pipeline runs both branches (guidance), else the prompt's alone."""
    import torch

    return torch.cat([negative, embeds]) if current.shape[0] == 2 * embeds.shape[0] else embeds
