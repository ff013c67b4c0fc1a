"""Models: whether a recipe's model is something this machine can load (asked by every restore, State's and the
Latent Explorer's), and the models the backends can see (servers' models, for the pickers). Its own module so that
`state/explorer.py` needs nothing from `state/__init__.py` (no import circle)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from studio.core.jobs import ModelInfo


def model_kind(ref: str) -> str:
    """What a model reference is ("builtin", "diffusers", "gan", "transformers", …), read from its folder's files
    (no torch); "" when it can't be resolved here. Panels show a GAN's own controls with it."""
    from studio.core import catalog

    try:
        return catalog.resolve(ref).kind
    except Exception:  # noqa: BLE001 - missing or damaged: no kind
        return ""


class BackendModels(QObject):
    """The models every backend can see, as the app last heard; one object shared by all panels' states."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.models: list[ModelInfo] = []

    def set(self, models: list[ModelInfo]) -> None:
        if list(models) != self.models:
            self.models = list(models)
            self.changed.emit()

    def for_medium(self, medium: str, remote_only: bool = True) -> list[ModelInfo]:
        return [m for m in self.models if m.medium == medium and (m.where or not remote_only)]

    def find(self, ref: str, where: str) -> ModelInfo | None:
        return next((m for m in self.models if m.ref == ref and m.where == where), None)


def model_is_here(ref: str) -> bool:
    """Whether a recipe's model names something loadable here: a built-in, a path, a Hugging Face id."""
    from studio.core import catalog  # reads file headers and folder layouts only (no torch)

    try:
        catalog.resolve(ref)
    except Exception:  # noqa: BLE001 - missing, damaged or not a model: all mean "not here"
        return False
    return True
