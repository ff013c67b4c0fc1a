"""The folders of models an artist already has, and every model file in them.

Roots come from two places: folders the user adds (Settings' preferences.json, `model_folders`, which the window
and the engine process both read) and the installs of other tools found in the usual places — AUTOMATIC1111 and
Forge (`models/Stable-diffusion`, `models/Lora`, `embeddings`, …), ComfyUI (`models/checkpoints`, `models/loras`,
…) and InvokeAI (`models/<base>/<type>/`). Every .safetensors file under a root is classified by its header
(`model_files.py`), never its folder or name; .pt/.bin files are listed only inside an embeddings folder (they
can't be read without unpickling, and only embeddings are loaded from them, through `weights_only`). Header reads
are cached by path, size and modification time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from studio import paths
from studio.core.model_files import FileFacts, describe_file

# Where other tools keep their installs, relative to the home folder (their README's default locations).
INSTALL_GUESSES = ("stable-diffusion-webui", "stable-diffusion-webui-forge", "webui", "ComfyUI", "comfyui",
                   "Documents/ComfyUI", "invokeai", "InvokeAI", "Fooocus")
MAX_FILES = 5000  # a root with more model files than this is listed in part (said in the manager)
MAX_DEPTH = 6


@dataclass(frozen=True)
class ModelRoot:
    path: Path
    tool: str  # "A1111/Forge", "ComfyUI", "InvokeAI", "Fooocus" or "" (a folder the user added)
    added: bool  # the user added it (else: detected)


@dataclass(frozen=True)
class FoundFile:
    path: Path
    facts: FileFacts | None  # None: damaged (the error is in `problem`)
    size: int
    root: Path
    problem: str = ""

    @property
    def peft_folder(self) -> bool:
        """A PEFT adapter folder (adapter_config.json + adapter_model.safetensors): the folder is the LoRA."""
        return self.path.name == "adapter_model.safetensors" and (self.path.parent / "adapter_config.json").is_file()

    @property
    def name(self) -> str:
        return self.path.parent.name if self.peft_folder else self.path.stem

    @property
    def model_path(self) -> Path:
        return self.path.parent if self.peft_folder else self.path


def _tool_at(folder: Path) -> str:
    if (folder / "models" / "Stable-diffusion").is_dir():
        return "A1111/Forge"
    if (folder / "models" / "checkpoints").is_dir() and (folder / "comfy").is_dir():
        return "ComfyUI"
    if (folder / "invokeai.yaml").is_file() or (folder / "databases" / "invokeai.db").is_file():
        return "InvokeAI"
    if (folder / "models" / "checkpoints").is_dir() and (folder / "modules").is_dir():
        return "Fooocus"
    return ""


def detected_installs(home: Path | None = None) -> list[ModelRoot]:
    """Installs of A1111/Forge, ComfyUI, InvokeAI and Fooocus in their usual places (LATENT_STUDIO_DETECT_HOME moves
    'home' for tests)."""
    home = Path(os.environ.get("LATENT_STUDIO_DETECT_HOME") or home or Path.home())
    found = []
    for guess in INSTALL_GUESSES:
        folder = home / guess
        tool = _tool_at(folder) if folder.is_dir() else ""
        if tool:
            found.append(ModelRoot(folder, tool, added=False))
    return found


# --- the user's folders (preferences.json) ----------------------------------------------------------------


def _read_preferences() -> dict:
    try:
        data = json.loads(paths.preferences_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def added_folders() -> list[Path]:
    value = _read_preferences().get("model_folders", [])
    return [Path(p) for p in value if isinstance(p, str) and p] if isinstance(value, list) else []


def set_added_folders(folders: list[Path]) -> None:
    forget_listing()
    preferences = _read_preferences()
    preferences["model_folders"] = list(dict.fromkeys(str(f) for f in folders))
    path = paths.preferences_path()
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(preferences, indent=2), encoding="utf-8")
    os.replace(temporary, path)


def own_lora_folder() -> Path:
    """Where LoRAs trained in this app are saved (always searched: `<lora:name:1>` finds them)."""
    folder = paths.user_data_dir() / "loras"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def model_roots() -> list[ModelRoot]:
    roots = [ModelRoot(own_lora_folder(), "Latent Studio", added=False)]
    roots += [ModelRoot(folder, _tool_at(folder), added=True) for folder in added_folders()]
    known = {r.path.resolve() for r in roots if r.path.exists()}
    roots += [r for r in detected_installs() if r.path.resolve() not in known]
    return roots


# --- the files ------------------------------------------------------------------------------------------------


class _HeaderCache:
    """Facts by (path, size, mtime): re-reading thousands of headers at every start would cost seconds."""

    def __init__(self):
        self.path = paths.cache_dir() / "model_file_facts.json"
        try:
            self.data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.data = {}
        self.changed = False

    def facts(self, file: Path, stat) -> tuple[FileFacts | None, str]:
        key = f"{file}|{stat.st_size}|{stat.st_mtime_ns}"
        if key in self.data:
            entry = self.data[key]
            return (FileFacts(**{**entry["facts"], "parts": tuple(entry["facts"]["parts"]),
                                 "missing": tuple(entry["facts"]["missing"])}) if entry.get("facts") else None,
                    entry.get("problem", ""))
        try:
            facts, problem = describe_file(file), ""
        except Exception as exc:  # noqa: BLE001 - a damaged file is listed as damaged, not a crash
            facts, problem = None, str(exc)
        self.data[key] = {"facts": facts.__dict__ if facts else None, "problem": problem}
        self.changed = True
        return facts, problem

    def save(self) -> None:
        if self.changed:
            try:
                self.path.write_text(json.dumps(self.data), encoding="utf-8")
            except OSError:
                pass  # a cache we can't write only costs time


def _walk(root: Path):
    for folder, dirs, files in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        dirs[:] = [d for d in dirs if not d.startswith(".") and depth < MAX_DEPTH]
        for name in files:
            yield Path(folder) / name


def _pickle_embedding(file: Path) -> bool:
    return file.suffix in (".pt", ".bin") and any(part.lower() == "embeddings" for part in file.parts[-4:-1])


_RECENT: dict[tuple, tuple[float, list]] = {}
RESCAN_SECONDS = 5.0  # a job asks for LoRAs and embeddings each time: a listing this fresh is reused


def forget_listing() -> None:
    """Scan again next time (a folder was added, a file was saved)."""
    _RECENT.clear()


def scan(roots: list[ModelRoot], fresh: bool = False) -> list[FoundFile]:
    """Every model file under the roots, classified (each file once even if two roots hold it)."""
    import time

    key = tuple((str(r.path), r.tool) for r in roots)
    recent = _RECENT.get(key)
    if recent and not fresh and time.monotonic() - recent[0] < RESCAN_SECONDS:
        return list(recent[1])
    listing = _scan(roots)
    _RECENT[key] = (time.monotonic(), listing)
    return list(listing)


def _scan(roots: list[ModelRoot]) -> list[FoundFile]:
    cache = _HeaderCache()
    found: dict[Path, FoundFile] = {}
    for root in roots:
        if not root.path.is_dir():
            continue
        for file in _walk(root.path):
            if len(found) >= MAX_FILES:
                break
            if file.suffix != ".safetensors" and not _pickle_embedding(file):
                continue
            try:
                stat = file.stat()
                resolved = file.resolve()
            except OSError:
                continue
            if resolved in found:
                continue
            if file.suffix == ".safetensors":
                facts, problem = cache.facts(file, stat)
            else:  # read only through torch.load(weights_only=True), when used
                facts, problem = FileFacts("embedding", dtype="pickle"), ""
            found[resolved] = FoundFile(file, facts, stat.st_size, root.path, problem)
    cache.save()
    return list(found.values())


def files_of_kind(kind: str, roots: list[ModelRoot] | None = None) -> list[FoundFile]:
    return [f for f in scan(model_roots() if roots is None else roots) if f.facts is not None and f.facts.kind == kind]
