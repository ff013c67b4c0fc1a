"""First-run welcome: what each panel does, where outputs go, how to add models. Shown once."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QLabel, QVBoxLayout

SETTINGS_KEY = "welcome/dismissed"

WELCOME_HTML = """
<h2>Welcome to Latent Studio</h2>
<p>Everything works offline on the small built-in models; nothing is downloaded unless you ask.</p>
<ul>
<li><b>Image</b> — type a prompt, press <b>Ctrl+Enter</b>; watch the picture form step by step.
    Drop a PNG from AUTOMATIC1111, Fooocus or Latent Studio onto it to load its settings.</li>
<li><b>Text</b> — write a beginning and let the model continue it, or chat. Every sampling slider
    has a tooltip saying what it does; the token inspector shows it happening.</li>
<li><b>Music</b> — describe a piece (“slow chorale in D minor”), hear it, see it on the piano roll,
    continue it, export MIDI, WAV or FLAC.</li>
<li><b>Latent Explorer</b> — wander the space a model draws from: map, walk, interpolate, breed.</li>
<li><b>Gallery</b> — everything you made, with its recipe; double-click to make it again.</li>
</ul>
<p><b>Your outputs</b> are saved in <code>{outputs}</code> (File › Open output folder),
each with the recipe needed to make it again.</p>
<p><b>Your own models:</b> click <b>…</b> beside a model list and choose a Stable Diffusion
<code>.safetensors</code> checkpoint or diffusers folder, a language-model folder (transformers), or a MusicGen
folder. Models in your Hugging Face cache can be typed by id, e.g. <code>stabilityai/sd-turbo</code>.</p>
<p><b>Esc</b> cancels the running job at its next step.</p>
"""


class WelcomeDialog(QDialog):
    def __init__(self, outputs_dir: str, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Welcome to Latent Studio")
        text = QLabel(WELCOME_HTML.format(outputs=outputs_dir))
        text.setWordWrap(True)
        text.setMinimumWidth(560)
        self.dont_show = QCheckBox("Don't show this again")
        self.dont_show.setChecked(False)  # the user chooses; pre-ticked, one OK hid the welcome for good
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(self.dont_show)
        layout.addWidget(buttons)
        self.finished.connect(self._remember)

    def _remember(self, _result: int) -> None:
        if self.dont_show.isChecked():
            QSettings().setValue(SETTINGS_KEY, True)


def should_show_welcome() -> bool:
    return not QSettings().value(SETTINGS_KEY, False, type=bool)
