"""Hugging Face hub folders: the user's cache first, a resumable download when online, progress for the UI.

Shared by every medium that takes a hub id (image pipelines, MusicGen). huggingface_hub and tqdm are imported
inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from studio.core.jobs import Progress, UserError

# Files worth fetching from a hub repo when the caller names none: configs, tokenizers and safetensors
# weights in the component folders -- not the multi-GB root checkpoints many repos also carry, nor pickles.
DEFAULT_PATTERNS = ["model_index.json", "*/*.json", "*/*.txt", "*/*.model", "*/*.safetensors"]


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GB"


def hub_offline() -> bool:
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return constants.HF_HUB_OFFLINE or value.strip().lower() in ("1", "true", "yes", "on")


def _download_progress_class(report):
    """A tqdm class that turns huggingface_hub's byte counters into Progress reports."""
    from tqdm import tqdm

    class ReportingTqdm(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs["file"] = io.StringIO()  # nothing on the console; the UI shows it instead
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            done = super().update(n)
            if report is not None and self.unit == "B" and self.total:
                report(
                    Progress(
                        int(self.n), int(self.total), message=f"Downloading model: {_gb(self.n)} of {_gb(self.total)}"
                    )
                )
            return done

    return ReportingTqdm


def hub_snapshot(repo_id: str, report=None, cache_dir: Path | None = None, patterns: list[str] | None = None) -> Path:
    """A local folder for a hub repo: the user's cache first; a (resumable) download when online."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    patterns = patterns or DEFAULT_PATTERNS
    try:
        return Path(snapshot_download(repo_id, local_files_only=True, allow_patterns=patterns, cache_dir=cache_dir))
    except LocalEntryNotFoundError:
        pass
    if hub_offline():
        raise UserError(
            f"{repo_id} is not in the Hugging Face cache and the hub is switched off (HF_HUB_OFFLINE). "
            "Connect and unset HF_HUB_OFFLINE to download it, or choose a local model."
        ) from None
    try:
        folder = snapshot_download(
            repo_id, allow_patterns=patterns, cache_dir=cache_dir, tqdm_class=_download_progress_class(report)
        )
    except Exception as exc:  # network errors come in many classes; all mean the same to the user
        raise UserError(
            f"could not download {repo_id} from Hugging Face: {exc}. Partial files resume next time."
        ) from exc
    return Path(folder)
