"""Install the freedesktop launcher: a .desktop entry and icons in the user's XDG folders.

`python -m studio install-desktop` — no root needed; the entry runs this very interpreter (or the
bundled executable), so it works from a venv or a PyInstaller folder alike.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from studio import paths

ICON_SIZES = (16, 32, 48, 64, 128, 256)


def launch_command() -> str:
    if getattr(sys, "frozen", False):
        return shlex.quote(sys.executable)
    return f"{shlex.quote(sys.executable)} -m studio"


def install_desktop_entry(data_home: Path | None = None) -> Path:
    data_home = Path(data_home or os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share"))
    icons = paths.assets_dir() / "icons"
    for size in ICON_SIZES:
        target = data_home / f"icons/hicolor/{size}x{size}/apps/latent-studio.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(icons / f"latent-studio-{size}.png", target)
    scalable = data_home / "icons/hicolor/scalable/apps/latent-studio.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(paths.assets_dir() / "icon.svg", scalable)
    entry = (paths.assets_dir() / "latent-studio.desktop").read_text(encoding="utf-8")
    entry = entry.replace("Exec=latent-studio %F", f"Exec={launch_command()} %F")  # %F: "Open with" files
    target = data_home / "applications/latent-studio.desktop"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(entry, encoding="utf-8")
    return target
