"""Sampler names the user picks -> diffusers scheduler classes, and which of them fit a model.

Names match recipe.A1111_SAMPLERS, so a PNG written here reads back in A1111 and vice versa.
A scheduler is always rebuilt from the model's own scheduler config (betas, prediction type,
timestep spacing), so switching sampler never changes what the model was trained with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# the names live with the settings (the panel and the CLI read them there, without this module)
from studio.engine.image.settings import FLOW_ALIASES, SCHEDULERS, scheduler_label, scipy_available  # noqa: F401

DEFAULT_SCHEDULER = "euler_a"

# Sampler switches must not leak settings from one class into the next (e.g. Karras sigmas
# staying on after DPM++ 2M Karras): these keys are reset to their class defaults.
_RESET_KEYS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "algorithm_type", "solver_order")


class UnknownScheduler(ValueError):
    pass


def model_supports_lcm(scheduler_config: Mapping[str, Any], unet_config: Mapping[str, Any] | None = None) -> bool:
    """LCM needs a consistency-distilled model: one that ships an LCM scheduler or a guidance-embedding UNet."""
    if scheduler_config.get("_class_name") == "LCMScheduler":
        return True
    return bool(unet_config and unet_config.get("time_cond_proj_dim"))


def _compatible_class_names(scheduler) -> set[str]:
    names = {type(scheduler).__name__}
    names.update(cls.__name__ for cls in getattr(scheduler, "compatibles", []))
    return names


def available_schedulers(pipe) -> list[str]:
    """The sampler names that fit this pipeline's model, in the picker's order."""
    compatible = _compatible_class_names(pipe.scheduler)
    unet = getattr(pipe, "unet", None)
    lcm_ok = model_supports_lcm(dict(pipe.scheduler.config), dict(unet.config) if unet is not None else None)
    names = []
    for name, (class_name, _extra, _label) in SCHEDULERS.items():
        if name == "lcm":
            if lcm_ok:
                names.append(name)
            continue
        if name == "lms" and not scipy_available():
            continue
        if class_name in compatible:
            names.append(name)
    return names


def model_default_scheduler(scheduler_config: Mapping[str, Any], available: list[str]) -> str:
    """The sampler the model ships with (its authors chose it), else DEFAULT_SCHEDULER, else the first that fits."""
    class_name = scheduler_config.get("_class_name", "")
    for name, (cls, extra, _label) in SCHEDULERS.items():
        if cls != class_name or name not in available:
            continue
        if all(scheduler_config.get(k, v) == v for k, v in extra.items() if k == "use_karras_sigmas"):
            return name
    return DEFAULT_SCHEDULER if DEFAULT_SCHEDULER in available else available[0]


def make_scheduler(name: str, base_config: Mapping[str, Any]):
    """A fresh diffusers scheduler of kind `name`, built from the model's own scheduler config."""
    import diffusers

    if name not in SCHEDULERS:
        raise UnknownScheduler(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    class_name, extra, _label = SCHEDULERS[name]
    config = {k: v for k, v in dict(base_config).items() if k not in _RESET_KEYS}
    if class_name == "DDIMScheduler":
        # DDIM's own defaults clip the predicted x0 to [-1, 1], which is right for pixels and wrong for latents:
        # from a config that doesn't say (DPM-Solver, UniPC, Euler ones) it drew noise blobs. SD's own configs
        # say clip_sample False, as A1111 does.
        config.setdefault("clip_sample", False)
        config.setdefault("set_alpha_to_one", False)
    cls = getattr(diffusers, class_name)
    return cls.from_config(config, **extra)


def set_scheduler(pipe, name: str, base_config: Mapping[str, Any]) -> None:
    pipe.scheduler = make_scheduler(name, base_config)
