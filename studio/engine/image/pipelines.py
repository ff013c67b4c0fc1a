"""Loading Stable Diffusion-family image models from any source, within the memory there is.

Sources (catalog.ModelSource): a diffusers folder (the built-in models are such folders), a
single-file .safetensors checkpoint (A1111 / ComfyUI / Civitai layout: SD 1.x, 2.x, SDXL, SD 3/3.5, FLUX.1;
configured offline from shipped configs, `single_file.py`), or a Hugging Face id (the user's hub cache;
downloaded only when online). Weights load from safetensors only. Families: `families.py`.

Memory: the model's size is estimated from its parameters and compared with the free GPU
memory; the cheapest fallback that fits is taken (attention/VAE slicing and tiling, then model
CPU offload, then sequential offload) and said in plain words for the UI (`bundle.fallbacks`).

torch and diffusers are imported inside functions: the app starts without them.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core import catalog
from studio.core.catalog import CorruptModelError, ModelSource, UnsafeModelError
from studio.core.hub import hub_snapshot
from studio.core.jobs import Progress, UserError
from studio.core.model_files import checkpoint_facts
from studio.engine.image import families
from studio.engine.image.lora import LoraState
from studio.engine.image.single_file import load_single_file

GiB = 2**30

# --- memory plan -----------------------------------------------------------------------------

# Working memory per output pixel in half precision, estimated for SD1.5 at 512x512 with PyTorch SDPA
# (not measured: no GPU on the build machines):
# UNet activations for a CFG batch of 2, and a VAE decode without tiling.
UNET_BYTES_PER_PIXEL_FP16 = 2_500
VAE_BYTES_PER_PIXEL_FP16 = 2_000
VAE_TILE_PIXELS = 512 * 512  # diffusers' default tile covers about this much
HEADROOM = 0.9  # leave 10 % for the allocator and other apps


@dataclass(frozen=True)
class MemoryPlan:
    attention_slicing: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    offload: str | None = None  # None | "model" | "sequential"
    reasons: tuple[str, ...] = ()


def _gb(n: float) -> str:
    return f"{n / GiB:.1f} GB"


def plan_memory(
    weights_bytes: int,
    largest_component_bytes: int,
    device: str,
    free_bytes: int | None,
    total_bytes: int | None = None,
    width: int = 512,
    height: int = 512,
    dtype: str = "float16",
) -> MemoryPlan:
    """Choose the cheapest memory fallback that lets the model run. Pure: tested with fake numbers."""
    element = 4 if dtype == "float32" else 2
    pixels = width * height
    unet_work = UNET_BYTES_PER_PIXEL_FP16 * pixels * element // 2
    vae_work = VAE_BYTES_PER_PIXEL_FP16 * pixels * element // 2
    vae_tiled = VAE_BYTES_PER_PIXEL_FP16 * min(pixels, VAE_TILE_PIXELS) * element // 2

    if device.startswith("mps"):
        # Apple's advice for Macs with less than 64 GB: attention slicing keeps the peak low.
        if total_bytes is not None and total_bytes < 64 * GiB:
            return MemoryPlan(
                attention_slicing=True,
                reasons=(
                    f"Attention slicing on: recommended on Apple GPUs with less than 64 GB ({_gb(total_bytes)}).",
                ),
            )
        return MemoryPlan()
    if not device.startswith("cuda") or free_bytes is None:
        if total_bytes is not None and weights_bytes > 0.8 * total_bytes:
            return MemoryPlan(
                reasons=(
                    f"The model ({_gb(weights_bytes)}) nearly fills this computer's memory ({_gb(total_bytes)}); "
                    "expect swapping.",
                )
            )
        return MemoryPlan()

    budget = free_bytes * HEADROOM
    size = f"{width}x{height}"
    if weights_bytes + unet_work + vae_work <= budget:
        return MemoryPlan()
    if weights_bytes + unet_work // 2 + vae_tiled <= budget:
        return MemoryPlan(
            attention_slicing=True,
            vae_slicing=True,
            vae_tiling=True,
            reasons=(
                f"Attention slicing and VAE tiling on: the model ({_gb(weights_bytes)}) plus the working memory for "
                f"{size} ({_gb(unet_work + vae_work)}) is more than the {_gb(free_bytes)} free on the GPU.",
            ),
        )
    if largest_component_bytes + unet_work // 2 + vae_tiled <= budget:
        return MemoryPlan(
            attention_slicing=True,
            vae_slicing=True,
            vae_tiling=True,
            offload="model",
            reasons=(
                f"Model CPU offload on: the whole model ({_gb(weights_bytes)}) does not fit the {_gb(free_bytes)} free "
                "on the GPU, so each part moves to the GPU only while it runs (a little slower).",
            ),
        )
    return MemoryPlan(
        attention_slicing=True,
        vae_slicing=True,
        vae_tiling=True,
        offload="sequential",
        reasons=(
            f"Sequential CPU offload on: even the largest part of the model ({_gb(largest_component_bytes)}) does not "
            f"fit the {_gb(free_bytes)} free on the GPU, so layers stream from main memory (much slower).",
        ),
    )


# --- the loaded model ----------------------------------------------------------------------


@dataclass
class ImageBundle:
    """A loaded image model plus what generation needs to know about it."""

    pipe: Any  # the model's main diffusers pipeline (text-to-image, or inpainting for inpaint-only models)
    source: ModelSource
    device: str
    dtype: str  # the dtype the UNet / transformer runs in
    family: str  # "sd1", "sd2_inpaint", "sdxl", "sd3", "sd35_large", "flux_dev", … (core/model_files.FAMILY_LABELS)
    model_hash: str
    fallbacks: list[str] = field(default_factory=list)  # human sentences for the UI
    memory: MemoryPlan = field(default_factory=MemoryPlan)
    base_scheduler_config: dict = field(default_factory=dict)
    weights_bytes: int = 0  # for re-planning memory when a larger image is asked for
    largest_component_bytes: int = 0
    decode_vae_in_fp32: bool = False  # set once a half-precision decode gave NaNs (the black-image bug)
    preview_factors: Any = None  # (weight 4x3, bias 3) torch tensors, fitted or known; see image.py
    lora: LoraState = field(default_factory=LoraState)  # the LoRAs fused into the weights now (lora.py)
    embeddings_cache: dict = field(default_factory=dict)  # textual-inversion files loaded for this model
    _derived: dict = field(default_factory=dict)

    @property
    def inpaint_only(self) -> bool:
        """A 9-channel inpainting model or FLUX Fill: every mode runs through the inpainting pipeline."""
        return families.inpaint_only(self.family)

    @property
    def size_multiple(self) -> int:
        """Width and height must be multiples of this."""
        return families.size_multiple(self.pipe)

    @property
    def native_size(self) -> int:
        return families.native_size(self.pipe)

    def pipeline_for(self, mode: str):
        """The pipeline for "txt2img" | "img2img" | "inpaint", sharing the loaded weights (no reload)."""
        if mode not in ("txt2img", "img2img", "inpaint"):
            raise UserError(f"unknown image mode {mode!r}")
        task = "inpaint" if self.inpaint_only else mode
        if type(self.pipe).__name__ == families.PIPELINES[families.architecture(self.family)].get(task):
            return self.pipe
        if task not in self._derived:
            self._derived[task] = derive_pipeline(self.pipe, families.pipeline_class(self.family, task))
        return self._derived[task]


def derive_pipeline(pipe, cls):
    """Build the img2img / inpaint pipeline `cls` from the same component objects.

    Not `from_pipe`: it ends with `.to(dtype)` (float32 by default), which would cast the shared
    half-precision modules in place, and `.to` on an offloaded pipeline is refused.
    """
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in pipe.components.items() if k in accepted}
    if "requires_safety_checker" in accepted:
        kwargs["requires_safety_checker"] = False
    derived = cls(**kwargs)
    derived.set_progress_bar_config(disable=True)
    return derived


# --- sources -------------------------------------------------------------------------------


def _weights_variant(folder: Path) -> str | None:
    """'fp16' when the UNet / transformer exists only as fp16 variant files (some hub repos ship just that)."""
    net = folder / "unet" if (folder / "unet").is_dir() else folder / "transformer"
    if not net.is_dir() or any(p for p in net.glob("*.safetensors") if ".fp16." not in p.name):
        return None
    return "fp16" if any(net.glob("*.fp16*.safetensors")) else None


def _load_folder(folder: Path, torch_dtype):
    catalog.check_model_folder(folder, "diffusers")  # no custom code, known classes, sound safetensors
    family = families.folder_family(folder)
    cls = families.main_pipeline_class(family)
    kwargs: dict[str, Any] = {
        "torch_dtype": torch_dtype,
        "use_safetensors": True,
        "local_files_only": True,
        "trust_remote_code": False,  # diffusers' default too; said here so no caller ever changes it
    }
    variant = _weights_variant(folder)
    if variant:
        kwargs["variant"] = variant
    index = catalog.read_json(folder / "model_index.json")
    if "safety_checker" in index:
        # An artist's tool, like A1111: no NSFW filter, and 1.2 GB less to load.
        kwargs.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    try:
        return cls.from_pretrained(folder, **kwargs), family
    except Exception as exc:  # diffusers raises many kinds; the user needs one clear sentence
        if isinstance(exc, UserError):
            raise
        raise CorruptModelError(f"{folder}: could not load the model ({exc})") from exc


def _config_folder(config: str | Path, report, hub_cache: Path | None) -> Path:
    """A diffusers folder (or hub id) whose configs and tokenizers to use instead of the shipped ones."""
    folder = Path(config).expanduser()
    if folder.is_dir() and (folder / "model_index.json").exists():
        return folder
    return hub_snapshot(str(config), report, hub_cache, patterns=["model_index.json", "*/*.json", "*/*.txt", "*/*.model"])


def _load_single_file(path: Path, torch_dtype, config, report, hub_cache) -> tuple:
    """(pipeline, family, notes). Configured offline from the shipped family configs, unless `config` names a
    diffusers folder (or hub id) of the same model whose configs and tokenizers to use instead."""
    catalog.check_weights_file(path)
    if not config:
        return load_single_file(path, torch_dtype)
    family = checkpoint_facts(path).family
    config_folder = _config_folder(config, report, hub_cache)
    catalog.check_model_folder(config_folder, "diffusers")  # its model_index.json names the component classes
    cls = families.main_pipeline_class(family)
    try:
        pipe = cls.from_single_file(str(path), config=str(config_folder), torch_dtype=torch_dtype, local_files_only=True)
    except Exception as exc:  # diffusers raises many kinds; the user needs one clear sentence
        if isinstance(exc, UserError):
            raise
        raise CorruptModelError(f"{path}: could not load the checkpoint ({exc})") from exc
    return pipe, family, []


# --- load ----------------------------------------------------------------------------------


def component_bytes(pipe, dtype_bytes: int) -> dict[str, int]:
    """Parameter bytes of each torch module in the pipeline, as they will be in the target dtype."""
    import torch

    sizes = {}
    for name, module in pipe.components.items():
        if isinstance(module, torch.nn.Module):
            sizes[name] = sum(p.numel() for p in module.parameters()) * dtype_bytes
    return sizes


def _runtime_dtype(device) -> str:
    if device.device == "cpu" and device.dtype == "float16":
        return "float32"  # many CPU kernels lack float16; bfloat16 is the CPU's half type
    return device.dtype


def free_memory_now(device) -> int | None:
    """Free GPU memory at load time (the DeviceChoice's figure dates from start-up; a model may have been freed since)."""
    import torch

    if device.device.startswith("cuda") and torch.cuda.is_available():
        index = int(device.device.split(":")[1]) if ":" in device.device else 0
        free, _total = torch.cuda.mem_get_info(index)
        return int(free)
    return device.free_memory


def _apply_memory_plan(pipe, plan: MemoryPlan, device: str) -> None:
    if plan.attention_slicing:
        pipe.enable_attention_slicing()
    if plan.vae_slicing:
        pipe.vae.enable_slicing()
    if plan.vae_tiling:
        pipe.vae.enable_tiling()
    if plan.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif plan.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)


def load_image_pipeline(
    source: ModelSource,
    device,
    report=None,
    *,
    config: str | Path | None = None,
    hub_cache: Path | None = None,
) -> ImageBundle:
    """Load an image model from a folder, single file or hub id onto `device` (a DeviceChoice).

    `config`: for single-file checkpoints, a local diffusers folder (or hub id) of the same
    model whose configs and tokenizers to use; without it the shipped family configs are used (no network).
    Raises UserError (and its UnsafeModelError / CorruptModelError) with a clear message.
    """
    import torch

    dtype = _runtime_dtype(device)
    torch_dtype = getattr(torch, dtype)
    fallbacks: list[str] = []
    if dtype != device.dtype:
        fallbacks.append(f"Running in {dtype}: {device.dtype} is not supported on the CPU.")
    if report:
        report(Progress(0, 0, message=f"Loading {source.name}…"))

    if source.kind == "single_file":
        pipe, family, notes = _load_single_file(Path(source.path), torch_dtype, config, report, hub_cache)
        fallbacks.extend(notes)
        weights_path = Path(source.path)
    elif source.kind in ("diffusers", "builtin"):
        pipe, family = _load_folder(Path(source.path), torch_dtype)
        weights_path = Path(source.path)
    elif source.kind == "hub":
        weights_path = hub_snapshot(source.ref, report, hub_cache)
        pipe, family = _load_folder(weights_path, torch_dtype)
    else:
        raise UserError(f"{source.name} is a {source.kind} model, not an image model")

    pipe.set_progress_bar_config(disable=True)
    sizes = component_bytes(pipe, torch.tensor([], dtype=torch_dtype).element_size())
    native = families.native_size(pipe)
    plan = plan_memory(
        sum(sizes.values()),
        max(sizes.values(), default=0),
        device.device,
        free_memory_now(device),
        device.total_memory,
        native,
        native,
        dtype,
    )
    _apply_memory_plan(pipe, plan, device.device)
    fallbacks.extend(plan.reasons)
    return ImageBundle(
        pipe=pipe,
        source=source,
        device=device.device,
        dtype=dtype,
        family=family,
        model_hash=catalog.content_hash(weights_path),
        fallbacks=fallbacks,
        memory=plan,
        base_scheduler_config=dict(pipe.scheduler.config),
        weights_bytes=sum(sizes.values()),
        largest_component_bytes=max(sizes.values(), default=0),
    )


def adapt_memory_to_size(bundle: ImageBundle, width: int, height: int, free_bytes: int | None = None) -> list[str]:
    """Before a large image: switch on the slicing/tiling the plan for that size needs.

    The load-time plan assumed the model's native size. Offload is not changed here (moving a
    loaded model between offload modes is fragile); slicing and tiling can be turned on any time.
    Returns the new fallback sentences (also added to bundle.fallbacks).
    """
    if not bundle.device.startswith("cuda"):
        return []
    if free_bytes is None:
        import torch

        index = int(bundle.device.split(":")[1]) if ":" in bundle.device else 0
        free_bytes = int(torch.cuda.mem_get_info(index)[0])
    # free memory already excludes the loaded weights, so plan for the working memory only
    needed = plan_memory(0, 0, bundle.device, free_bytes, None, width, height, bundle.dtype)
    old = bundle.memory
    added = []
    if needed.attention_slicing and not old.attention_slicing:
        bundle.pipe.enable_attention_slicing()
        added.append("attention slicing")
    if needed.vae_tiling and not old.vae_tiling:
        bundle.pipe.vae.enable_slicing()
        bundle.pipe.vae.enable_tiling()
        added.append("VAE tiling")
    if not added:
        return []
    bundle.memory = MemoryPlan(
        attention_slicing=old.attention_slicing or needed.attention_slicing,
        vae_slicing=old.vae_slicing or needed.vae_tiling,
        vae_tiling=old.vae_tiling or needed.vae_tiling,
        offload=old.offload,
        reasons=old.reasons,
    )
    what = " and ".join(added)
    sentence = (
        f"{what[0].upper() + what[1:]} on for {width}x{height}: its working memory is more than the "
        f"{_gb(free_bytes)} free on the GPU."
    )
    bundle.fallbacks.append(sentence)
    return [sentence]


__all__ = [
    "CorruptModelError",
    "ImageBundle",
    "MemoryPlan",
    "UnsafeModelError",
    "adapt_memory_to_size",
    "derive_pipeline",
    "hub_snapshot",
    "load_image_pipeline",
    "plan_memory",
]
