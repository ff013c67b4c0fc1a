"""Writing files so that a crash never leaves half of one under its real name, and naming new outputs.

Every writer puts its bytes in a hidden temp file in the target's folder (named with PARTIAL_PREFIX, unique per
write) and moves it to the final name when complete: at any moment there is either no file or a whole one under
the visible name. A new output's name is *claimed* (`new=True`): the whole temp file is hard-linked to the name,
which fails if the name exists, and then the next free name is tried — two processes saving the same seed at the
same instant never replace each other's file. Explicit targets (Save as…) are replaced as before.

The final file gets the mode the user's umask asks for (0644 under umask 022), whatever the writer: temp files are
made 0600 by `mkstemp`, and are chmod-ed here before they become visible.

While a temp file is being written its writer holds an exclusive `flock` on it; `sweep_partials` removes only
temp files nobody holds (a kill releases the lock), so a sweep never deletes another running process's write.
"""

from __future__ import annotations

import errno
import io
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; a sweep there removes only temp files older than an hour
    fcntl = None

PARTIAL_PREFIX = ".partial-"  # hidden on Unix; swept by sweep_partials
CHECK_BYTES = 64 * 1024  # check_writable: room for at least this much
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux: /proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:  # elsewhere: set and restore at once (the only portable way to read it)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def final_mode() -> int:
    """The mode of a new output file: 0666 less the umask, as `open()` would give it."""
    return 0o666 & ~current_umask()


def _new_temp(path: Path) -> tuple[int, Path]:
    """A fresh hidden temp file beside `path` (never shared with another writer), locked while we write it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=path.suffix, dir=path.parent)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd, Path(name)


def _candidates(path: Path) -> Iterator[Path]:
    yield path
    counter = 2
    while True:
        yield path.with_name(f"{path.stem}-{counter}{path.suffix}")
        counter += 1


def _claim(temp: Path, path: Path) -> Path:
    """Give the whole temp file its final name without ever replacing one: the first free of path, path-2, …"""
    for candidate in _candidates(path):
        try:
            os.link(temp, candidate)  # atomic, and fails if the name exists
        except FileExistsError:
            continue
        except OSError as exc:  # a file system without hard links (FAT, some network shares)
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            try:  # claim the name with an exclusive create, then move the whole file over our own claim
                os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                continue
            os.replace(temp, candidate)
            return candidate
        temp.unlink(missing_ok=True)
        return candidate
    raise AssertionError("unreachable")


def _finish(fd: int, temp: Path, path: Path, new: bool) -> Path:
    os.fchmod(fd, final_mode()) if hasattr(os, "fchmod") else os.chmod(temp, final_mode())
    if new:
        return _claim(temp, path)
    os.replace(temp, path)
    return path


def atomic_write(path: Path, write: Callable[[io.BufferedWriter], None], new: bool = False) -> Path:
    """Call `write` with an open binary handle on a temp file, flush it to disk, then move it to `path` (with
    `new`, claim the first free name from `path` on). Returns the final path."""
    path = Path(path)
    fd, temp = _new_temp(path)
    try:
        with os.fdopen(os.dup(fd), "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        return _finish(fd, temp, path, new)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, new: bool = False) -> Path:
    return atomic_write(path, lambda handle: handle.write(data), new=new)


class PartialFile:
    """For writers that want a file name rather than a handle (mido, soundfile): write `temp`; when the block
    ends without an error it is moved to its final name, `path` (claimed with `new`); when it raises it is
    removed."""

    def __init__(self, path: Path, new: bool = False) -> None:
        self.path, self.new = Path(path), new
        self.fd, self.temp = _new_temp(self.path)

    def __enter__(self) -> PartialFile:
        return self

    def __exit__(self, kind, value, trace) -> None:
        try:
            if kind is None:
                self.path = _finish(self.fd, self.temp, self.path, self.new)
        except BaseException:
            self.temp.unlink(missing_ok=True)
            raise
        finally:
            if kind is not None:
                self.temp.unlink(missing_ok=True)
            os.close(self.fd)


@contextmanager
def partial_path(path: Path, new: bool = False) -> Iterator[Path]:
    """PartialFile when only the temp name is wanted (the final name is `path`; with `new` use PartialFile)."""
    with PartialFile(path, new) as partial:
        yield partial.temp


def in_use(path: Path) -> bool:
    """Whether another writer holds this temp file (it is being written right now)."""
    if fcntl is None:
        import time

        try:
            return time.time() - path.stat().st_mtime < 3600
        except OSError:
            return False
    try:
        with open(path, "rb") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
    except OSError:
        return False
    return False


def sweep_partials(folder: Path) -> int:
    """Delete the temp files a killed writer left in `folder` and its dated subfolders (never one being written).
    Only our own temp names: the output folder may be one the user chose, full of their own files."""
    removed = 0
    for pattern in (f"{PARTIAL_PREFIX}*", f"*/{PARTIAL_PREFIX}*"):
        for path in Path(folder).glob(pattern):
            if path.is_file() and not in_use(path):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def check_writable(folder: Path) -> None:
    """Raise OSError (with the folder's name) unless a file can be created in `folder` right now."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=folder)
        try:  # some bytes, not just a name: a full disk still lets an empty file be made
            view = memoryview(bytes(CHECK_BYTES))
            while view:  # a nearly full disk takes part of a write and fails only at the next one
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as exc:
        raise OSError(exc.errno, f"the output folder {folder} can't be written ({exc.strerror or exc})") from exc


def unique_path(folder: Path, stem: str, suffix: str) -> Path:
    """`folder/stem.suffix`, or `stem-2.suffix`… if taken: a first guess; `new=True` writes claim it for real.
    Stems are made filename-safe."""
    safe = re.sub(r"[^\w\-]+", "-", stem).strip("-")[:60] or "output"
    candidate = folder / f"{safe}{suffix}"
    counter = 2
    while candidate.exists():
        candidate = folder / f"{safe}-{counter}{suffix}"
        counter += 1
    return candidate
