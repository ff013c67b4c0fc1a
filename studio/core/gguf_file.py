"""A GGUF file's header read by us, before llama.cpp sees the file: the magic, the version and the metadata.

The metadata says what to ask llama.cpp for (the trained context length) and what the model picker can show (the
architecture, the chat template) without loading any weights. The reader is strict and bounded: a damaged or hostile
header is a CorruptModelError naming the file, never a huge allocation. Format: llama.cpp's docs/gguf.md (little
endian: magic "GGUF", u32 version, u64 tensor count, u64 key-value count, then each key and its typed value).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

GGUF_VERSIONS = (2, 3)  # what llama.cpp reads today (version 1 was dropped in 2023)
MAX_KEYS = 100_000  # real files have tens
MAX_STRING = 16 * 2**20  # a chat template is kB; a 16 MB string is not a header
MAX_ARRAY = 16_000_000  # a vocabulary is at most a few hundred thousand tokens
# value type -> struct format (scalars); 8 = string, 9 = array
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9


class GGUFError(ValueError):
    """The header is not a GGUF header llama.cpp reads."""


def _read(handle: BinaryIO, size: int) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise GGUFError("the header ends early (a truncated file?)")
    return data


def _string(handle: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", _read(handle, 8))
    if length > MAX_STRING:
        raise GGUFError(f"a {length:,}-byte string in the header")
    return _read(handle, length).decode("utf-8", errors="replace")


def _value(handle: BinaryIO, kind: int, keep: bool) -> Any:
    if kind in SCALARS:
        fmt = SCALARS[kind]
        return struct.unpack(fmt, _read(handle, struct.calcsize(fmt)))[0]
    if kind == STRING:
        return _string(handle)
    if kind == ARRAY:
        item, count = struct.unpack("<IQ", _read(handle, 12))
        if count > MAX_ARRAY:
            raise GGUFError(f"an array of {count:,} items in the header")
        if item in SCALARS and not keep:  # skipped without reading item by item (a vocabulary's scores)
            handle.seek(count * struct.calcsize(SCALARS[item]), 1)
            return count
        values = [_value(handle, item, keep) for _ in range(count)]
        return values if keep else count
    raise GGUFError(f"unknown value type {kind}")


def read_metadata(path: Path, keep_arrays: bool = False) -> dict[str, Any]:
    """Every key of the header with its value (an array as its length unless `keep_arrays`), plus "gguf.version"."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        if head[:4] != b"GGUF":
            raise GGUFError("it does not start with the GGUF magic")
        version = struct.unpack("<I", head[4:8])[0] if len(head) == 8 else 0
        if version not in GGUF_VERSIONS:
            raise GGUFError(f"GGUF version {version} is not one llama.cpp reads (2 or 3)")
        _tensors, keys = struct.unpack("<QQ", _read(handle, 16))
        if keys > MAX_KEYS:
            raise GGUFError(f"{keys:,} metadata keys")
        metadata: dict[str, Any] = {"gguf.version": version}
        for _ in range(keys):
            key = _string(handle)
            (kind,) = struct.unpack("<I", _read(handle, 4))
            metadata[key] = _value(handle, kind, keep_arrays)
    return metadata


def context_length(metadata: dict[str, Any]) -> int:
    """The context the model was trained with ("<architecture>.context_length"), 0 when the file doesn't say."""
    value = metadata.get(f"{metadata.get('general.architecture', '')}.context_length", 0)
    return int(value) if isinstance(value, int) and value > 0 else 0
