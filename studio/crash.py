"""Crash reporting: uncaught exceptions are logged to a rotating file and shown in a dialog.

The history lives in SQLite with every row committed after its files, so an exception in the
UI never loses work; the dialog says so and offers the traceback to copy into a bug report.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import traceback

from PySide6.QtWidgets import QApplication, QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout

from studio import paths

log = logging.getLogger("studio.crash")
LOG_FILE = "latent-studio.log"


def setup_logging(level: int = logging.INFO) -> logging.Handler:
    """Log to stderr and to a rotating file in the user folder (1 MB × 5)."""
    handler = logging.handlers.RotatingFileHandler(paths.logs_dir() / LOG_FILE, maxBytes=1_000_000, backupCount=5,
                                                   encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.setLevel(level)
    root.addHandler(handler)
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) for h in root.handlers):
        root.addHandler(logging.StreamHandler())
    return handler


class CrashDialog(QDialog):
    def __init__(self, text: str, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Latent Studio hit an unexpected error")
        intro = QLabel(
            "Something went wrong. Your outputs and history are safe: each one was saved before it was shown.\n"
            f"The details below are also in {paths.logs_dir() / LOG_FILE}."
        )
        intro.setWordWrap(True)
        self.details = QPlainTextEdit(text)
        self.details.setReadOnly(True)
        self.details.setMinimumSize(640, 280)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = buttons.addButton("Copy details", QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(lambda: QApplication.clipboard().setText(text))
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.details)
        layout.addWidget(buttons)


def install_excepthook(show_dialog: bool = True) -> None:
    def hook(kind, value, tb) -> None:
        text = "".join(traceback.format_exception(kind, value, tb))
        log.error("uncaught exception:\n%s", text)
        app = QApplication.instance()
        if show_dialog and app is not None:
            CrashDialog(text, app.activeWindow()).exec()
        else:
            sys.__excepthook__(kind, value, tb)

    sys.excepthook = hook
