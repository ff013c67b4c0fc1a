"""Device and dtype choice: CUDA, else Apple MPS, else CPU; half precision on GPUs only.

torch is imported inside functions: choosing a device must not slow the app's start-up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cuda", "cuda:1", "mps", "cpu"
    dtype: str  # "float16", "bfloat16", "float32"
    name: str  # what the user sees, e.g. "NVIDIA RTX 4090" or "CPU (2 threads)"
    free_memory: int | None = None  # bytes, where the backend tells
    total_memory: int | None = None
    note: str = ""  # e.g. why the asked-for device was not used

    @property
    def label(self) -> str:
        free = f", {self.free_memory / 2**30:.1f} GiB free" if self.free_memory else ""
        note = f" ({self.note})" if self.note else ""
        return f"{self.device.upper()} · {self.dtype} · {self.name}{free}{note}"

    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)


def _cuda_choice(torch, index: int = 0) -> DeviceChoice:
    props = torch.cuda.get_device_properties(index)
    free, total = torch.cuda.mem_get_info(index)
    # bf16 keeps fp32's range (no overflow to inf/NaN) where the card computes it natively
    dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return DeviceChoice(f"cuda:{index}" if index else "cuda", dtype, props.name, free, total)


def _mps_choice(torch) -> DeviceChoice:
    total = None
    try:
        total = torch.mps.recommended_max_memory()
    except (AttributeError, RuntimeError):
        pass
    return DeviceChoice("mps", "float16", "Apple GPU (Metal)", None, total)


def cpu_threads() -> int:
    # LATENT_STUDIO_THREADS wins: on a machine whose cores are busy with other work, torch's
    # threads wait on each other (benchmarks/latent_speed.py measured a 2-thread decode going from
    # 5 ms to 900 ms at load 5 on 2 cores, while 1 thread stayed at 13 ms).
    wanted = os.environ.get("LATENT_STUDIO_THREADS", "")
    if wanted.isdigit() and int(wanted) > 0:
        return int(wanted)
    # Leave one core to the GUI thread on big machines; all cores on small ones.
    cores = os.cpu_count() or 1
    return max(1, cores - 1) if cores > 4 else cores


def _cpu_choice() -> DeviceChoice:
    total = None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    threads = cpu_threads()
    return DeviceChoice("cpu", "float32", f"CPU ({threads} thread{'' if threads == 1 else 's'})", None, total)


# Loaded ahead of `import torch`, in the order torch links them (libtorch_python is small and quick).
TORCH_CORE_LIBRARIES = ("libc10", "libtorch_cpu")


def preload_torch_libraries() -> list[str]:
    """Map torch's big C++ library with the GIL released, so the GUI thread keeps running meanwhile.

    `import torch` dlopens libtorch_cpu (400 MB, ~190 ms of relocations and static initialisers) while
    holding the GIL, and the GUI thread, which needs the GIL to run any Python slot, froze for that
    long (benchmarks/responsiveness.py, "cold"). `ctypes.CDLL(path)` would hold the GIL too; calling
    libc's own `dlopen` as a ctypes foreign function releases it. The import then finds the library
    already mapped. Linux and macOS only (torch on Windows loads its DLLs its own way); any failure is
    harmless: the import then does the loading itself.
    """
    import ctypes
    import importlib.util
    import sys

    if "torch" in sys.modules or sys.platform == "win32":
        return []
    loaded = []
    try:
        spec = importlib.util.find_spec("torch")
        if spec is None or spec.origin is None:
            return []
        dlopen = ctypes.CDLL(None).dlopen
        dlopen.restype, dlopen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int]
        folder = os.path.join(os.path.dirname(spec.origin), "lib")
        suffix = ".dylib" if sys.platform == "darwin" else ".so"
        for name in TORCH_CORE_LIBRARIES:
            path = os.path.join(folder, name + suffix)
            # RTLD_LOCAL, as torch itself loads them: their C++ symbols (protobuf, fmt, ...) must not
            # clobber other libraries'. The later import reuses this mapping either way.
            if os.path.exists(path) and dlopen(os.fsencode(path), os.RTLD_NOW | os.RTLD_LOCAL):
                loaded.append(name)
    except (OSError, AttributeError):
        pass
    return loaded


def pick_device(override: str = "auto", dtype_override: str = "auto") -> DeviceChoice:
    """The best device present, or the user's override when that device exists."""
    preload_torch_libraries()
    import torch

    wanted = (override or "auto").lower()
    if wanted not in DEVICE_CHOICES and not wanted.startswith("cuda:"):
        raise ValueError(f"unknown device {override!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    choice = None
    if wanted.startswith("cuda") or wanted == "auto":
        if torch.cuda.is_available():
            index = int(wanted.split(":")[1]) if ":" in wanted else 0
            choice = _cuda_choice(torch, index)
    if choice is None and wanted in ("mps", "auto"):
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            choice = _mps_choice(torch)
    if choice is None:
        choice = _cpu_choice()
        if wanted not in ("auto", "cpu"):
            choice = replace(choice, note=f"{wanted.upper()} was asked for but is not available")
    if dtype_override and dtype_override != "auto":
        choice = replace(choice, dtype=dtype_override)
    if choice.device == "cpu":
        torch.set_num_threads(cpu_threads())
    return choice


def empty_cache(device: str) -> None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()
