"""Sampling presets the user saves by name, per panel, in a JSON file in the user data folder.

A preset only moves sliders: it stores how to sample (temperature, top-k, …), never the prompt,
seed or model, and the recipe of every output still records each value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio import paths
from studio.core.files import atomic_write_bytes


def presets_file() -> Path:
    return paths.user_data_dir() / "presets.json"


def _read_all() -> dict[str, dict[str, dict[str, Any]]]:
    try:
        data = json.loads(presets_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or damaged: no user presets, never a crash
    return data if isinstance(data, dict) else {}


def user_presets(modality: str) -> dict[str, dict[str, Any]]:
    presets = _read_all().get(modality, {})
    return {name: values for name, values in presets.items() if isinstance(values, dict)}


def save_user_preset(modality: str, name: str, values: dict[str, Any]) -> None:
    name = name.strip()
    if not name:
        raise ValueError("a preset needs a name")
    data = _read_all()
    data.setdefault(modality, {})[name] = values
    atomic_write_bytes(presets_file(), json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8"))


def delete_user_preset(modality: str, name: str) -> bool:
    data = _read_all()
    if name not in data.get(modality, {}):
        return False
    del data[modality][name]
    atomic_write_bytes(presets_file(), json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8"))
    return True
