"""Downloading a Hugging Face repository into the user's hub cache: progress, pause/resume, cancel, checksums.

huggingface_hub does the transfer (`hf_hub_download`, one file at a time, into the standard cache, so every other
tool sees the files too). Around it:
- the file list, sizes and checksums come first from the repository's metadata (`model_info(files_metadata=True)`);
  no answer means offline, said plainly with the size that waits ("needs a connection to download, 5.2 GB");
- each file is fetched into the cache's `blobs/` as `<etag>.partial`, in 256 kB chunks: progress is counted in
  bytes across all files, pause and cancel act between two chunks, and the next start (or a dropped connection,
  retried) continues the partial file with an HTTP Range request. (huggingface_hub 2.x removes its own partial
  files on any failure, so it cannot resume across starts.) Cancel removes the partial files;
- every file is checked before it is moved into place: sha256 against the LFS pointer's, git's blob hash for small
  files. A mismatch removes the file and says which. huggingface_hub then links it into the snapshot.
Runs on its own thread; `on_change` is called from that thread (the window's state hands it to the GUI thread).
Imports huggingface_hub inside functions (no torch, ever: the window's process downloads).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from studio.core.hub import DEFAULT_PATTERNS, hub_offline

STATES = ("waiting", "downloading", "paused", "verifying", "done", "cancelled", "failed", "offline", "damaged")


CHUNK_BYTES = 256 * 1024  # progress is reported at this grain (pause and cancel act at every read)
RETRIES = 3  # a dropped connection is resumed this many times before the download says it stopped


class _Stop(Exception):
    """Raised from the progress hook to stop a transfer between two chunks."""


def endpoint() -> str:
    """The hub's address: HF_ENDPOINT when set (a mirror, a test server), else huggingface.co (read per call)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def gigabytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


@dataclass
class RepoFile:
    name: str
    size: int
    sha256: str = ""  # LFS files: the content's sha256
    blob_id: str = ""  # git's blob hash (sha1 of "blob <size>\\0" + content) for small files


@dataclass
class Download:
    repo_id: str
    cache_dir: Path | None = None
    patterns: list[str] = field(default_factory=lambda: list(DEFAULT_PATTERNS))
    size_hint: int = 0  # bytes the catalog expects (said while offline, before the metadata is read)
    state: str = "waiting"
    done: int = 0
    total: int = 0
    message: str = ""
    files: list[RepoFile] = field(default_factory=list)
    bad: list = field(default_factory=list)  # files whose checksum did not match (removed)
    _stop: str = ""  # "", "pause" or "cancel"
    _thread: threading.Thread | None = None
    _notify: Callable | None = None  # on_change of the running start()

    # --- control (any thread) --------------------------------------------------------------------------------

    def start(self, on_change: Callable[[Download], None] | None = None) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop = ""
        self._thread = threading.Thread(target=self.run, args=(on_change,), name=f"download {self.repo_id}", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        self._stop = "pause"

    def cancel(self) -> None:
        self._stop = "cancel"
        if self._thread is None or not self._thread.is_alive():
            self._remove_partials()
            self._set("cancelled", "Cancelled; partial files removed.")

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    @property
    def active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- the work (its own thread) -------------------------------------------------------------------------------

    def _set(self, state: str, message: str = "") -> None:
        self.state, self.message = state, message
        if self._notify is not None:
            self._notify(self)

    def run(self, on_change: Callable[[Download], None] | None = None) -> None:
        self._notify = on_change
        try:
            self._run()
        except _Stop:
            if self._stop == "cancel":
                self._remove_partials()
                self._set("cancelled", "Cancelled; partial files removed.")
            else:
                self._set("paused", f"Paused at {gigabytes(self.done)} of {gigabytes(self.total)}; resume continues "
                                    "from there.")
        except Exception as exc:  # noqa: BLE001 - network and disk errors come in many classes; said in one line
            if _is_offline_error(exc):
                self._set("offline", self.offline_message())
            else:
                self._set("failed", f"Download stopped: {' '.join(str(exc).split())[:200]}. Resume continues it.")

    def offline_message(self) -> str:
        size = self.total or self.size_hint
        return "Offline: needs a connection to download" + (f", {gigabytes(size)}." if size else ".")

    def _run(self) -> None:
        if hub_offline():
            self._set("offline", self.offline_message() + " (the hub is switched off: HF_HUB_OFFLINE)")
            return
        self._set("downloading", "Reading the file list…")
        commit, self.files = repo_files(self.repo_id, self.patterns)
        self.total = sum(f.size for f in self.files)
        self.done, self.bad = 0, []
        for file in self.files:
            self._check_stop()
            self._download_file(file, commit)
        self._set("verifying", "Checking the files…")
        missing = [name for name in self.verify(commit) if name not in self.bad]
        if self.bad:
            self._set("damaged", "Checksum mismatch, removed: " + ", ".join(self.bad) + ". Download again to fetch them.")
        elif missing:
            self._set("failed", "Missing after the download: " + ", ".join(missing))
        else:
            _write_ref(self.repo_id, commit, self.cache_dir)
            self._set("done", f"Downloaded and verified, {gigabytes(self.total)}.")

    def _check_stop(self) -> None:
        if self._stop:
            raise _Stop()

    def _download_file(self, file: RepoFile, commit: str) -> None:
        """One file into the cache's blobs/, resumable (our own `.partial` with a Range request), checked, then
        linked into the snapshot by huggingface_hub itself (it finds the blob there and downloads nothing)."""
        from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

        before = self.done
        url = hf_hub_url(self.repo_id, file.name, revision=commit, endpoint=endpoint())
        meta = get_hf_file_metadata(url, timeout=10)
        blobs = repo_cache_folder(self.repo_id, self.cache_dir) / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        blob = blobs / meta.etag
        if not blob.is_file():
            partial = blobs / f"{meta.etag}.partial"
            for attempt in range(RETRIES + 1):  # a dropped connection resumes where it stopped
                try:
                    self._transfer(meta.location, partial, before, file.size)
                    break
                except _Stop:
                    raise
                except Exception as exc:  # noqa: BLE001 - transport errors differ between HTTP clients
                    if attempt == RETRIES or _is_offline_error(exc) or not _is_transient(exc):
                        raise
            if not file_matches(partial, file):
                partial.unlink(missing_ok=True)
                self.bad.append(file.name)
                return
            partial.rename(blob)
        hf_hub_download(self.repo_id, file.name, revision=commit, cache_dir=self.cache_dir, endpoint=endpoint())
        self.done = before + file.size
        self._set("downloading", f"{gigabytes(self.done)} of {gigabytes(self.total)}")

    def _transfer(self, url: str, partial: Path, before: int, size: int) -> None:
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        have = partial.stat().st_size if partial.exists() else 0
        if size and have >= size:
            return
        headers = build_hf_headers()
        headers["Accept-Encoding"] = "identity"
        if have:
            headers["Range"] = f"bytes={have}-"
        with get_session().stream("GET", url, headers=headers, timeout=30, follow_redirects=True) as response:
            hf_raise_for_status(response)
            if have and response.status_code == 200:  # the server ignored the range: start again
                have = 0
            said = have
            with open(partial, "ab" if have else "wb") as out:
                for chunk in response.iter_bytes():  # as it arrives: what came before a cut is kept
                    out.write(chunk)
                    have += len(chunk)
                    self.done = before + have
                    if have - said >= CHUNK_BYTES:
                        said = have
                        self._set("downloading", f"{gigabytes(self.done)} of {gigabytes(self.total)}")
                    self._check_stop()  # between two reads; the partial file stays for a resume

    def verify(self, commit: str) -> list[str]:
        """Files of the snapshot missing or of the wrong size (each was checked against its checksum before it
        was moved into the cache)."""
        folder = snapshot_folder(self.repo_id, commit, self.cache_dir)
        return [f.name for f in self.files if not (folder / f.name).is_file() or (folder / f.name).stat().st_size != f.size]

    def _remove_partials(self) -> None:
        blobs = repo_cache_folder(self.repo_id, self.cache_dir) / "blobs"
        for partial in blobs.glob("*.partial") if blobs.is_dir() else []:
            partial.unlink(missing_ok=True)
        self.done = 0


# --- the repository -----------------------------------------------------------------------------------------------


def repo_files(repo_id: str, patterns: list[str]) -> tuple[str, list[RepoFile]]:
    """(commit, the files matching `patterns` with sizes and checksums) from the hub's metadata."""
    from huggingface_hub import HfApi

    info = HfApi(endpoint=endpoint()).model_info(repo_id, files_metadata=True, timeout=10)
    files = []
    for sibling in info.siblings or []:
        if not any(fnmatch.fnmatch(sibling.rfilename, pattern) for pattern in patterns):
            continue
        lfs = sibling.lfs
        size = (lfs.size if lfs else sibling.size) or 0
        files.append(RepoFile(sibling.rfilename, int(size), lfs.sha256 if lfs else "", sibling.blob_id or ""))
    return info.sha, files


def repo_cache_folder(repo_id: str, cache_dir: Path | None) -> Path:
    from huggingface_hub import constants

    return Path(cache_dir or constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"


def snapshot_folder(repo_id: str, commit: str, cache_dir: Path | None) -> Path:
    return repo_cache_folder(repo_id, cache_dir) / "snapshots" / commit


def _write_ref(repo_id: str, commit: str, cache_dir: Path | None) -> None:
    """refs/main -> the commit: how a cache lookup by id (no revision) finds this snapshot (the cache's own layout)."""
    refs = repo_cache_folder(repo_id, cache_dir) / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    (refs / "main").write_text(commit)


def _is_transient(exc: BaseException) -> bool:
    return any(word in type(exc).__name__ for word in ("Protocol", "ReadError", "Timeout", "Reset", "Incomplete",
                                                        "ChunkedEncoding", "RemoteDisconnected"))


def file_matches(path: Path, expected: RepoFile) -> bool:
    if expected.sha256:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(2**22), b""):
                digest.update(block)
        return digest.hexdigest() == expected.sha256
    if expected.blob_id:
        data = path.read_bytes()
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == expected.blob_id
    return path.stat().st_size == expected.size


def _is_offline_error(exc: BaseException) -> bool:
    """A failure to reach the hub at all (refused, unresolvable, timed out before an answer) rather than an answer."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        name = type(exc).__name__
        if name in ("ConnectError", "ConnectTimeout", "OfflineModeIsEnabled", "NameResolutionError",
                    "ConnectionRefusedError", "gaierror") or isinstance(exc, ConnectionRefusedError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def is_online(timeout: float = 3.0) -> bool:
    """Whether the hub answers at all (any HTTP answer counts), checked with one short request."""
    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint(), timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure to get an answer means offline here
        return False
    return True
