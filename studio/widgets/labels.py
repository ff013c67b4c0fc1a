"""Labels that carry messages from outside (errors, file names, paths): they wrap, and never widen the window.

A QLabel's minimum width is its longest unbreakable run of text, so one long path or exception text in a
status line used to push the window past the screen. A MessageLabel breaks long runs where it must, caps the
text it shows (the whole text is in its tooltip) and wraps at the width it is given.
"""

from __future__ import annotations

import re

from PySide6.QtWidgets import QLabel, QWidget

LONGEST_RUN = 24  # characters of one unbroken "word" before a break opportunity is added
MOST_SHOWN = 400  # characters shown; the rest is in the tooltip

_ZERO_WIDTH_SPACE = "\u200b"


def breakable(text: str, longest_run: int = LONGEST_RUN, most: int = MOST_SHOWN) -> str:
    """The text capped to `most` characters, with a zero-width break opportunity every `longest_run`
    characters of any run without a space (paths, URLs, hashes)."""
    if len(text) > most:
        text = text[: most - 1] + "…"

    def split(match: re.Match) -> str:
        run = match.group(0)
        return _ZERO_WIDTH_SPACE.join(run[i : i + longest_run] for i in range(0, len(run), longest_run))

    return re.sub(rf"\S{{{longest_run + 1},}}", split, text)


class MessageLabel(QLabel):
    """A word-wrapped label for text of any length: its minimum width never depends on the text."""

    def __init__(self, text: str = "", parent: QWidget | None = None, most: int = MOST_SHOWN) -> None:
        super().__init__(parent)
        self.most = most  # characters shown: a few lines, so a long error doesn't push the buttons away
        self.setWordWrap(True)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        text = str(text)
        shown = breakable(text, most=self.most)
        self.setToolTip(text if shown.replace(_ZERO_WIDTH_SPACE, "") != text else "")
        super().setText(shown)

    def text(self) -> str:  # the text as set, without the break opportunities
        return super().text().replace(_ZERO_WIDTH_SPACE, "")
