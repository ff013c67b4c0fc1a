"""The model list every picker and the model manager show, with the downloads in flight (QtCore only).

Listing reads file headers and folders (`core/model_library.py`) and asks the hub once whether it answers: both on
a worker thread, never the GUI thread; the result arrives through a queued signal. Downloads run on their own
threads (`core/downloads.py`) and report through `download_changed`.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from studio.core.downloads import Download
from studio.core.model_library import NOT_DOWNLOADED, PARTIAL, ModelEntry


class ModelLibrary(QObject):
    changed = Signal()  # a new list
    download_changed = Signal(object)  # a Download (progress, state, message)
    _listed = Signal(object, object)  # (entries, online) from the listing thread
    _download_event = Signal(object)  # from download threads

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.entries: list[ModelEntry] = []
        self.online: bool | None = None  # None: not asked yet
        self.loaded = False
        self.downloads: dict[str, Download] = {}
        self._listing: threading.Thread | None = None
        self._again = False
        self._listed.connect(self._on_listed)
        self._download_event.connect(self._on_download)

    # --- the list ---------------------------------------------------------------------------------------------

    def refresh(self, check_online: bool = True) -> None:
        """List again on a worker thread (a second call while listing lists once more afterwards)."""
        if self._listing is not None and self._listing.is_alive():
            self._again = True
            return
        self._listing = threading.Thread(target=self._list, args=(check_online,), name="model list", daemon=True)
        self._listing.start()

    def wait(self, timeout: float = 30.0) -> None:
        """For tests and scripts: block until the current listing is done (the signal still comes queued)."""
        if self._listing is not None:
            self._listing.join(timeout)

    def _list(self, check_online: bool) -> None:
        from studio.core.downloads import is_online
        from studio.core.hub import hub_offline
        from studio.core.model_library import library

        online = None
        if check_online:
            online = False if hub_offline() else is_online()
        try:
            entries = library(online)
        except Exception as exc:  # noqa: BLE001 - a listing failure must not take the window down
            entries = [ModelEntry("", "the model list could not be read", "unknown", "", status="damaged",
                                  note=str(exc))]
        self._listed.emit(entries, online)

    def _on_listed(self, entries, online) -> None:
        self.entries, self.online, self.loaded = list(entries), online, True
        self.changed.emit()
        if self._again:
            self._again = False
            self.refresh()

    def for_medium(self, medium: str) -> list[ModelEntry]:
        """What a model picker of this medium lists: runnable models, ready or not."""
        kinds = ("builtin", "checkpoint", "diffusers", "transformers", "download")
        return [e for e in self.entries if e.medium == medium and e.kind in kinds and e.ref]

    def of_kind(self, kind: str) -> list[ModelEntry]:
        return [e for e in self.entries if e.kind == kind]

    def find(self, ref: str) -> ModelEntry | None:
        return next((e for e in self.entries if e.ref == ref), None)

    # --- actions ------------------------------------------------------------------------------------------------

    def add_folder(self, folder: Path) -> None:
        from studio.core.model_folders import added_folders, set_added_folders

        set_added_folders(added_folders() + [Path(folder)])
        self.refresh(check_online=False)

    def remove_folder(self, folder: Path) -> None:
        from studio.core.model_folders import added_folders, set_added_folders

        set_added_folders([f for f in added_folders() if f != Path(folder)])
        self.refresh(check_online=False)

    def delete(self, entry: ModelEntry) -> str:
        """Remove a model's files from disk; returns what was removed, in words. Built-ins stay."""
        if entry.kind == "builtin" or entry.status == NOT_DOWNLOADED:
            return ""
        target = Path(entry.ref) if entry.kind == "lora" and Path(entry.ref).is_dir() else Path(entry.location)
        if entry.source == "Hugging Face cache" and target.name.startswith("models--"):
            shutil.rmtree(target)
        elif target.is_dir():
            shutil.rmtree(target)
        elif target.is_file():
            target.unlink()
        self.refresh(check_online=False)
        return str(target)

    def download(self, ref: str) -> Download:
        download = self.downloads.get(ref)
        if download is None:
            entry = self.find(ref)
            download = self.downloads[ref] = Download(ref, size_hint=entry.size if entry else 0)
        download.start(self._download_event.emit)
        return download

    def pause(self, ref: str) -> None:
        if ref in self.downloads:
            self.downloads[ref].pause()

    def cancel(self, ref: str) -> None:
        if ref in self.downloads:
            self.downloads[ref].cancel()

    def resumable(self, entry: ModelEntry) -> bool:
        download = self.downloads.get(entry.ref)
        return entry.status == PARTIAL or (download is not None and download.state in ("paused", "failed", "offline"))

    def _on_download(self, download: Download) -> None:
        self.download_changed.emit(download)
        if download.state in ("done", "cancelled", "damaged"):
            self.refresh(check_online=False)
