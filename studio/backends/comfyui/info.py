"""What a ComfyUI server has, read from `/system_stats` and `/object_info/{node}` (server.py's own routes), and the
"Test connection" report made from it.

Only the node classes we build workflows from (and the loaders whose choice lists name the server's models) are
asked for, one small request each, not the whole `/object_info` (megabytes on a server with many custom nodes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from studio.core.jobs import ModelInfo

# Node classes whose definitions we read: every node our workflows use, and the loaders that list models.
WORKFLOW_NODES = (
    "CheckpointLoaderSimple", "LoraLoader", "CLIPSetLastLayer", "CLIPTextEncode", "EmptyLatentImage", "LoadImage",
    "VAEEncode", "SetLatentNoiseMask", "KSampler", "VAEDecode", "SaveImage",
    "EmptyAceStepLatentAudio", "TextEncodeAceStepAudio", "ConditioningZeroOut", "ModelSamplingSD3",
    "EmptyLatentAudio", "ConditioningStableAudio", "CLIPLoader", "VAEDecodeAudio", "SaveAudio",
)
# folder -> (loader node, its input naming the file): the models a server offers, by kind
MODEL_LISTS = {
    "checkpoints": ("CheckpointLoaderSimple", "ckpt_name"),
    "loras": ("LoraLoader", "lora_name"),
    "vae": ("VAELoader", "vae_name"),
    "controlnet": ("ControlNetLoader", "control_net_name"),
    "upscale_models": ("UpscaleModelLoader", "model_name"),
    "text_encoders": ("CLIPLoader", "clip_name"),
}
PROBED_NODES = tuple(dict.fromkeys(WORKFLOW_NODES + tuple(node for node, _ in MODEL_LISTS.values())))
GIB = 1024**3


def combo_options(spec: Any) -> list[str]:
    """A combo input's choices in either layout object_info uses: ([choices], {...}) or ("COMBO", {"options": …})."""
    if not isinstance(spec, (list, tuple)) or not spec:
        return []
    if isinstance(spec[0], list):
        return [str(x) for x in spec[0]]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        return [str(x) for x in spec[1].get("options", [])]
    return []


def node_input(node_def: dict, name: str) -> Any:
    inputs = node_def.get("input", {})
    return (inputs.get("required", {}) or {}).get(name) or (inputs.get("optional", {}) or {}).get(name)


@dataclass
class ServerInfo:
    version: str = ""
    devices: list[dict] = field(default_factory=list)
    nodes: dict[str, dict] = field(default_factory=dict)  # class name -> its object_info definition
    folders: dict[str, list[str]] = field(default_factory=dict)  # checkpoints, loras, … -> file names
    python: str = ""
    torch: str = ""

    @classmethod
    def read(cls, system_stats: dict, node_defs: dict[str, dict]) -> ServerInfo:
        system = system_stats.get("system", {}) if isinstance(system_stats, dict) else {}
        nodes = {name: d for name, d in node_defs.items() if isinstance(d, dict) and d}
        folders = {folder: combo_options(node_input(nodes.get(node, {}), name))
                   for folder, (node, name) in MODEL_LISTS.items()}
        return cls(version=str(system.get("comfyui_version", "")), devices=list(system_stats.get("devices", [])),
                   nodes=nodes, folders=folders, python=str(system.get("python_version", "")).split(" ")[0],
                   torch=str(system.get("pytorch_version", "")))

    @property
    def device(self) -> str:
        return str(self.devices[0].get("name", "")) if self.devices else ""

    def has_nodes(self, *names: str) -> bool:
        return all(name in self.nodes for name in names)

    def samplers(self) -> list[str]:
        return combo_options(node_input(self.nodes.get("KSampler", {}), "sampler_name"))

    def models(self, where: str) -> list[ModelInfo]:
        """The checkpoints as the pickers list them: audio checkpoints (ACE-Step, Stable Audio) under Music."""
        from studio.backends.comfyui.workflow import audio_kind

        found = []
        encoders = self.folders.get("text_encoders", [])
        for name in self.folders.get("checkpoints", []):
            kind = audio_kind(name, set(self.nodes), encoders)
            label = name.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
            note = (f"{kind.replace('_', '-')} text-to-audio" if kind else "checkpoint") + f" on {where} ({self.device})"
            found.append(ModelInfo(name, "music" if kind else "image", label, where=where, note=note))
        return found

    def report(self) -> str:
        """The lines "Test connection" shows: version, GPU, free VRAM, models."""
        lines = [f"ComfyUI {self.version or '(version not reported)'}"
                 + (f" · Python {self.python}" if self.python else "") + (f" · torch {self.torch}" if self.torch else "")]
        for device in self.devices or [{}]:
            total, free = device.get("vram_total") or 0, device.get("vram_free") or 0
            memory = f"{free / GIB:.1f} GiB free of {total / GIB:.1f} GiB" if total else "memory not reported"
            lines.append(f"Device: {device.get('name') or 'not reported'} ({device.get('type', '?')}) · {memory}")
        counts = ", ".join(f"{len(self.folders.get(folder, []))} {label}{'' if len(self.folders.get(folder, [])) == 1 else 's'}"
                           for folder, label in (("checkpoints", "checkpoint"), ("loras", "LoRA"), ("vae", "VAE"),
                                                 ("controlnet", "ControlNet"), ("upscale_models", "upscaler")))
        lines.append(f"Models: {counts}")
        audio = [kind for kind, nodes in (("ACE-Step", ("EmptyAceStepLatentAudio", "TextEncodeAceStepAudio")),
                                          ("Stable Audio", ("EmptyLatentAudio", "ConditioningStableAudio")))
                 if self.has_nodes(*nodes)]
        lines.append("Audio nodes: " + (", ".join(audio) if audio else "none"))
        return "\n".join(lines)
