"""The worker's model cache: load once, reuse, free the old model when the user switches."""

from __future__ import annotations

import gc
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class ModelCache:
    """One loaded model per slot ("image", "text", "music", …).

    Keeping one per slot bounds memory on small machines while still letting the user hop
    between panels without reloading. A different key in the same slot frees the old model
    first, so two large image models never sit in memory together.
    """

    def __init__(self, on_free: Callable[[], None] | None = None) -> None:
        self._slots: dict[str, tuple[Hashable, Any]] = {}
        self._on_free = on_free  # e.g. empty the CUDA cache
        self.loads = 0  # how many times a loader ran (tests and the status bar read it)

    def get(self, slot: str, key: Hashable, loader: Callable[[], T]) -> T:
        held = self._slots.get(slot)
        if held is not None and held[0] == key:
            return held[1]
        if held is not None:
            self.free(slot)
        model = loader()
        self.loads += 1
        self._slots[slot] = (key, model)
        return model

    def peek(self, slot: str) -> Any | None:
        held = self._slots.get(slot)
        return held[1] if held else None

    def key(self, slot: str) -> Hashable | None:
        held = self._slots.get(slot)
        return held[0] if held else None

    def free(self, slot: str) -> None:
        if self._slots.pop(slot, None) is not None:
            gc.collect()  # drop the tensors now, not at some later collection
            if self._on_free:
                self._on_free()

    def clear(self) -> None:
        for slot in list(self._slots):
            self.free(slot)
