"""Every model the app can see, in one list: the model manager shows it and every model picker reads it.

Sources: the built-in models; the user's model folders and the installs of other tools found on this computer
(`model_folders.py`: checkpoints, LoRAs, embeddings, VAEs, text encoders, ControlNets, upscalers, diffusers folders);
the Hugging Face cache; and the catalog's models that can be downloaded. For each: kind, family, size on disk,
dtype, licence, location and status — ready, not downloaded, partial, damaged, or needs files (naming which).
Reads file headers and small JSON files only: runs in the window's process, off the GUI thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from studio import paths
from studio.core import catalog
from studio.core.companions import find_companions
from studio.core.model_files import PART_LABELS, family_label, folder_family
from studio.core.model_folders import ModelRoot, model_roots, scan

READY, NOT_DOWNLOADED, PARTIAL, DAMAGED, NEEDS_FILES, NOT_INSTALLED = (
    "ready", "not downloaded", "partial", "damaged", "needs files", "not installed")
# kind -> the medium whose pickers list it (adapters and parts are listed in the manager, not in model pickers)
KIND_MEDIUM = {"checkpoint": "image", "diffusers": "image"}


@dataclass(frozen=True)
class ModelEntry:
    ref: str  # what a picker sets as the model: "builtin:…", a path, or a hub id
    name: str
    kind: str  # checkpoint | diffusers | transformers | lora | embedding | vae | text_encoder | controlnet | upscaler
    medium: str  # image | text | music | melody | "" (parts and adapters)
    family: str = ""
    size: int = 0  # bytes on disk (or to download)
    dtype: str = ""
    licence: str = ""
    location: str = ""
    source: str = ""  # built-in | a tool's name | your folder | Hugging Face cache | catalog
    status: str = READY
    note: str = ""  # why it is not ready, what it needs, what it is
    defaults: dict = field(default_factory=dict, compare=False)  # the catalog's settings for this model

    @property
    def ready(self) -> bool:
        return self.status == READY

    @property
    def family_text(self) -> str:
        return family_label(self.family) if self.family else ""


def size_text(size: int) -> str:
    if size >= 1e9:
        return f"{size / 1e9:.1f} GB"
    if size >= 1e6:
        return f"{size / 1e6:.0f} MB"
    return f"{size / 1e3:.0f} kB" if size else ""


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _folder_dtype(folder: Path) -> str:
    from studio.core.model_files import describe_file

    weights = sorted(folder.rglob("*.safetensors"), key=lambda p: -p.stat().st_size)
    try:
        return describe_file(weights[0]).dtype if weights else ""
    except Exception:  # noqa: BLE001 - a damaged file is reported by the loader, not here
        return ""


def _diffusers_family(folder: Path) -> tuple[str, str]:
    """(family, problem) of a diffusers folder."""
    try:
        return folder_family(folder), ""
    except Exception as exc:  # noqa: BLE001 - anything wrong with the folder is shown as its status
        return "", str(exc)


# --- built-ins -----------------------------------------------------------------------------------------------


def builtin_entries() -> list[ModelEntry]:
    entries = []
    for model in catalog.read_catalog():
        if not model.get("builtin"):
            continue
        folder = paths.builtin_model_dir(model["id"].split(":", 1)[1])
        installed = folder.is_dir() and any(folder.iterdir())
        family = _diffusers_family(folder)[0] if installed and (folder / "model_index.json").exists() else ""
        entries.append(ModelEntry(
            model["id"], model["name"], "builtin", model.get("modality", ""), family,
            _folder_size(folder) if installed else 0, _folder_dtype(folder) if installed else "",
            model.get("licence", ""), str(folder), "built-in", READY if installed else NOT_INSTALLED,
            model.get("about", "") if installed else "trained by `python -m studio.training`; ships with the app",
            dict(model.get("defaults", {}))))
    return entries


# --- the user's folders and other tools' installs --------------------------------------------------------------


def _file_entry(found, root_source: str) -> ModelEntry:
    facts = found.facts
    where = str(found.path)
    if facts is None:
        return ModelEntry(where, found.path.stem, "unknown", "", size=found.size, location=where, source=root_source,
                          status=DAMAGED, note=found.problem)
    status, note = READY, ""
    if facts.kind == "checkpoint" and facts.missing:
        companions = find_companions(found.path, facts, tuple(r.path for r in model_roots() if r.added))
        if companions.missing:
            status = NEEDS_FILES
            note = ", ".join(PART_LABELS.get(p, p) for p in companions.missing)
        else:
            note = "uses " + ", ".join(f"{p.name}" for p in companions.files.values())
    elif facts.kind == "unknown":
        note = f"not a model this app knows ({facts.note})"
    name = found.name if facts.kind == "lora" else found.path.stem
    ref = str(found.model_path) if facts.kind == "lora" else where
    return ModelEntry(ref, name, facts.kind, KIND_MEDIUM.get(facts.kind, ""), facts.family, found.size, facts.dtype,
                      "", where, root_source, status, note)


def _diffusers_folders(root: Path, limit: int = 200) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root):
        if "model_index.json" in files:
            found.append(Path(folder))
            dirs[:] = []  # a model's own subfolders hold no other models
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if len(found) >= limit:
            break
    return found


def folder_entries(roots: list[ModelRoot] | None = None) -> list[ModelEntry]:
    roots = model_roots() if roots is None else roots
    entries = []
    for found in scan(roots, fresh=True):  # the manager lists what is there now
        root = next((r for r in roots if str(found.path).startswith(str(r.path))), None)
        source = (root.tool or "your folder") if root else "your folder"
        entries.append(_file_entry(found, source))
    for root in roots:
        if not root.path.is_dir():
            continue
        for folder in _diffusers_folders(root.path):
            family, problem = _diffusers_family(folder)
            entries.append(ModelEntry(str(folder), folder.name, "diffusers", "image", family, _folder_size(folder),
                                      _folder_dtype(folder), "", str(folder), root.tool or "your folder",
                                      DAMAGED if problem else READY, problem))
    inside = {e.location for e in entries if e.kind == "diffusers"}  # a diffusers folder's own weights: listed once
    return [e for e in entries if e.kind == "diffusers" or not any(e.location.startswith(f + os.sep) for f in inside)]


# --- the Hugging Face cache and the catalog ---------------------------------------------------------------------


def _snapshot(repo_path: Path) -> Path | None:
    ref = repo_path / "refs" / "main"
    if ref.is_file():
        snapshot = repo_path / "snapshots" / ref.read_text().strip()
        if snapshot.is_dir():
            return snapshot
    snapshots = sorted((repo_path / "snapshots").glob("*")) if (repo_path / "snapshots").is_dir() else []
    return snapshots[-1] if snapshots else None


def _medium_of_snapshot(snapshot: Path) -> tuple[str, str, str]:
    """(kind, medium, family) of a cached repo from its configs."""
    if (snapshot / "model_index.json").is_file():
        return "diffusers", "image", _diffusers_family(snapshot)[0]
    config = snapshot / "config.json"
    if config.is_file():
        try:
            model_type = str(catalog.read_json(config).get("model_type", ""))
        except Exception:  # noqa: BLE001 - shown as a plain transformers model
            model_type = ""
        return "transformers", "music" if "musicgen" in model_type else "text", ""
    return "files", "", ""


def hub_cache_entries(cache_dir: Path | None = None) -> list[ModelEntry]:
    from huggingface_hub import constants

    cache = Path(cache_dir or constants.HF_HUB_CACHE)
    entries = []
    for repo_path in sorted(cache.glob("models--*")) if cache.is_dir() else []:
        repo_id = repo_path.name[len("models--"):].replace("--", "/")
        snapshot = _snapshot(repo_path)
        partial = any((repo_path / "blobs").glob("*.partial")) or any((repo_path / "blobs").glob("*.incomplete"))
        size = sum(p.stat().st_size for p in (repo_path / "blobs").glob("*")) if (repo_path / "blobs").is_dir() else 0
        kind, medium, family = _medium_of_snapshot(snapshot) if snapshot else ("files", "", "")
        status = PARTIAL if partial or snapshot is None else READY
        note = "partly downloaded: resume it in the model manager" if status == PARTIAL else ""
        entries.append(ModelEntry(repo_id, repo_id, kind, medium, family, size, _folder_dtype(snapshot) if snapshot else "",
                                  "", str(repo_path), "Hugging Face cache", status, note))
    return entries


def catalog_entries(cached: list[ModelEntry], online: bool | None) -> list[ModelEntry]:
    """The catalog's downloadable models, merged with their cache entries when they are there."""
    by_ref = {e.ref: e for e in cached}
    entries = []
    for model in catalog.read_catalog():
        if model.get("builtin"):
            continue
        size = int(float(model.get("size_mb", 0)) * 1e6)
        here = by_ref.pop(model["id"], None)
        if here is not None:
            entries.append(ModelEntry(here.ref, model["name"], here.kind, model.get("modality", here.medium), here.family,
                                      here.size, here.dtype, model.get("licence", ""), here.location,
                                      "Hugging Face cache", here.status, here.note or model.get("about", ""),
                                      dict(model.get("defaults", {}))))
            continue
        where = "needs a connection to download" if online is False else "can be downloaded"
        entries.append(ModelEntry(model["id"], model["name"], "download", model.get("modality", ""),
                                  model.get("family", ""), size, "", model.get("licence", ""),
                                  f"Hugging Face: {model['id']}", "catalog", NOT_DOWNLOADED,
                                  f"{where}, {size_text(size)}", dict(model.get("defaults", {}))))
    return entries + list(by_ref.values())


def library(online: bool | None = None, hub_cache: Path | None = None) -> list[ModelEntry]:
    """The whole list. `online`: None = not checked (no network call here)."""
    cached = hub_cache_entries(hub_cache)
    return builtin_entries() + folder_entries() + catalog_entries(cached, online)
