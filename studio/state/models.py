"""Whether a recipe's model is something this machine can load: asked by every restore (State's and the Latent
Explorer's). Its own module so that `state/explorer.py` needs nothing from `state/__init__.py` (no import circle)."""

from __future__ import annotations


def model_is_here(ref: str) -> bool:
    """Whether a recipe's model names something loadable here: a built-in, a path, a Hugging Face id."""
    from studio.core import catalog  # reads file headers and folder layouts only (no torch)

    try:
        catalog.resolve(ref)
    except Exception:  # noqa: BLE001 - missing, damaged or not a model: all mean "not here"
        return False
    return True
