"""Where things live: the app's read-only assets and models, and the user's data.

Frozen-aware: inside a PyInstaller bundle the read-only files sit under `sys._MEIPASS`.
User data (outputs, history, settings, logs) lives in platformdirs' folders and can be
moved with the LATENT_STUDIO_HOME environment variable (tests and portable installs).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "LatentStudio"


def install_root() -> Path:
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root)
    return Path(__file__).resolve().parent.parent


def assets_dir() -> Path:
    return install_root() / "assets"


def models_dir() -> Path:
    return install_root() / "models"


def builtin_model_dir(name: str) -> Path:
    return models_dir() / name


def user_data_dir() -> Path:
    override = os.environ.get("LATENT_STUDIO_HOME")
    if override:
        path = Path(override)
    else:
        from platformdirs import user_data_path

        path = user_data_path(APP_NAME, appauthor=False)
    path.mkdir(parents=True, exist_ok=True)
    return path


def outputs_dir() -> Path:
    path = user_data_dir() / "outputs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def preferences_path() -> Path:
    """Plain JSON the app and the command line both read (QSettings would drag Qt into the CLI)."""
    return user_data_dir() / "preferences.json"


def saved_output_folder() -> Path | None:
    """The output folder chosen in Settings, or None (never chosen, or an unreadable preferences file)."""
    import json

    try:
        folder = json.loads(preferences_path().read_text(encoding="utf-8")).get("output_folder")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(folder) if isinstance(folder, str) and folder else None


def remember_output_folder(folder: Path) -> None:
    import json

    path = preferences_path()
    try:
        preferences = json.loads(path.read_text(encoding="utf-8"))
        preferences = preferences if isinstance(preferences, dict) else {}
    except (OSError, ValueError):
        preferences = {}
    preferences["output_folder"] = str(folder)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(preferences, indent=2), encoding="utf-8")
    os.replace(temporary, path)


def chosen_outputs_dir() -> Path:
    """Where new outputs go: the folder chosen in Settings, else the default one."""
    return saved_output_folder() or outputs_dir()


def history_db_path() -> Path:
    return user_data_dir() / "history.sqlite3"


def cache_dir() -> Path:
    """Derived data that can be rebuilt (dataset renders, token caches)."""
    override = os.environ.get("LATENT_STUDIO_CACHE")
    if override:
        path = Path(override)
    else:
        from platformdirs import user_cache_path

        path = user_cache_path(APP_NAME, appauthor=False)
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_root() -> Path:
    """Where training runs keep checkpoints and logs: $STUDIO_RUNS_DIR, else the checkout's runs/ (git-ignored)."""
    override = os.environ.get("STUDIO_RUNS_DIR") or os.environ.get("STUDIO_RUNS")  # the text trainer's old name
    return Path(override) if override else install_root() / "runs"


def adapters_dir() -> Path:
    """Adapters (LoRAs) the user trained in the Train tab: one folder each, with its card."""
    path = user_data_dir() / "adapters"
    path.mkdir(parents=True, exist_ok=True)
    return path


def training_dir() -> Path:
    """The Train tab's run folders (checkpoints, sample grids, logs): kept so a run resumes after a restart."""
    path = user_data_dir() / "training"
    path.mkdir(parents=True, exist_ok=True)
    return path


def logs_dir() -> Path:
    path = user_data_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path
