"""Writing files so that a crash never leaves half of one under its real name, and naming new outputs.

Every writer puts its bytes in a hidden temp file in the target's folder (named with PARTIAL_PREFIX) and
renames it over the final name when complete: at any moment there is either no file or a whole one under the
visible name. Temp files a crash leaves behind are swept by History.sweep_partials, which looks for the prefix.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL_PREFIX = ".partial-"  # hidden on Unix; swept by History.sweep_partials


def atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Call `write` with an open binary handle on a temp file, flush it to disk, then rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


@contextmanager
def partial_path(path: Path) -> Iterator[Path]:
    """For writers that want a file name rather than a handle (mido, soundfile): yields the temp path to
    write, renamed over `path` when the block ends without an error and removed when it raises."""
    path = Path(path)
    temp = path.with_name(PARTIAL_PREFIX + path.name)
    try:
        yield temp
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def unique_path(folder: Path, stem: str, suffix: str) -> Path:
    """`folder/stem.suffix`, or `stem-2.suffix`… if taken. Stems are made filename-safe."""
    safe = re.sub(r"[^\w\-]+", "-", stem).strip("-")[:60] or "output"
    candidate = folder / f"{safe}{suffix}"
    counter = 2
    while candidate.exists():
        candidate = folder / f"{safe}-{counter}{suffix}"
        counter += 1
    return candidate
