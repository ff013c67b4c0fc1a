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
