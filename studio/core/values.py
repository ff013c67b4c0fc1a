"""Panel values from outside (a recipe in a file, the saved settings) checked before any panel sees them.

The schema is the medium's settings class (`engine/<medium>/settings.py`, named in `studio/media.py`): each field's
default gives its type (bool, int, float, str, list), its annotation the type of a list's items. A value of the wrong
type, not finite, out of range or too big is dropped, and said in one line; the panel keeps its default. One bad
file, or one poisoned saved setting, never reaches a widget.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from studio import media

INT_LIMITS = (-(2**63), 2**64 - 1)  # seeds go to 2**64 - 1 (core/recipe.py SEED_LIMIT); -1 is "random"
FLOAT_LIMIT = 1e15
MAX_TEXT = 1_000_000  # characters in one value (a prompt, a chat message)
MAX_ITEMS = 10_000
MAX_DEPTH = 6


def _plain_json(value: Any, depth: int = 0) -> bool:
    """A finite, bounded JSON value (what a list or a free-form value may hold)."""
    if depth > MAX_DEPTH:
        return False
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, str):
        return len(value) <= MAX_TEXT
    if isinstance(value, int):
        return INT_LIMITS[0] <= value <= INT_LIMITS[1]
    if isinstance(value, float):
        return math.isfinite(value) and abs(value) <= FLOAT_LIMIT
    if isinstance(value, (list, tuple)):
        return len(value) <= MAX_ITEMS and all(_plain_json(item, depth + 1) for item in value)
    if isinstance(value, Mapping):
        return len(value) <= MAX_ITEMS and all(isinstance(k, str) and _plain_json(v, depth + 1)
                                               for k, v in value.items())
    return False


def check_value(default: Any, value: Any, annotation: str = "") -> Any:
    """`value` as the type of `default` (an int given as 20.0 becomes 20); ValueError says why it can't be.
    None (JSON null: "not set", as old recipes write `continue_from` or a music `tempo`) is kept for a text or
    number value, as before (the widgets show it as unset); for a list or a switch it is not a value."""
    if value is None and isinstance(default, (str, int, float)) and not isinstance(default, bool):
        return None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError("not true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("not a whole number")
        if not INT_LIMITS[0] <= value <= INT_LIMITS[1]:
            raise ValueError("out of range")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("not a number")
        if not (isinstance(value, int) or math.isfinite(value)) or abs(value) > FLOAT_LIMIT:
            raise ValueError("not a finite number in range")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError("not text")
        if len(value) > MAX_TEXT:
            raise ValueError(f"longer than {MAX_TEXT:,} characters")
        return value
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)) or not _plain_json(value):
            raise ValueError("not a list of plain values")
        item = "str" if "[str" in annotation else "dict" if "[dict" in annotation else ""
        if item and not all(isinstance(v, str if item == "str" else Mapping) for v in value):
            raise ValueError(f"a list that holds something other than {'text' if item == 'str' else 'objects'}")
        return list(value)
    if not _plain_json(value):
        raise ValueError("not a plain, finite value")
    return value


def _shown(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return "a huge number"  # repr() of a 5,000-digit int raises
    if isinstance(value, (int, float, bool)) or value is None:
        return repr(value)[:40]
    return f"a {type(value).__name__}"


def _schema(medium: str) -> dict[str, tuple[Any, str]]:
    """name -> (default, annotation) from the medium's settings class."""
    settings = media.settings_class(medium)
    defaults = media.panel_defaults(medium)
    annotations = {f.name: str(f.type) for f in dataclasses.fields(settings)}
    return {name: (default, annotations.get(name, "")) for name, default in defaults.items()}


def clean_values(medium: str, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The values the medium's panel has, each checked (`check_value`); problems: one line per dropped value."""
    schema = _schema(medium)
    clean, problems = {}, []
    for name, value in values.items():
        if name not in schema:
            continue
        default, annotation = schema[name]
        try:
            clean[name] = check_value(default, value, annotation)
        except ValueError as exc:
            problems.append(f"{name} = {_shown(value)} was left out ({exc}); kept the default")
    return clean, problems
