"""Music panel: describe a piece, compose it, see it on the piano roll, hear it, continue it, export it.

With a MusicGen model picked the same panel makes audio instead of notes: the controls MusicGen cannot use
(bars, tempo, key, voices, instrument, Continue, the piano roll) are hidden and guidance + duration shown.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QLabel,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.jobs import Job, UserError
from studio.engine.music import settings as musicgen  # MAX_SECONDS, is_musicgen_ref: the light face
from studio.library.export import convert_audio, waveform_png
from studio.state import State
from studio.widgets.audio_player import AudioPlayer
from studio.widgets.compare_view import compare_button
from studio.widgets.controls import (
    ColumnSplitter,
    ParamSlider,
    PromptEdit,
    RecentPrompts,
    SeedBox,
    bound_combo,
    row,
    scroll_column,
)
from studio.widgets.flow import FlowLayout
from studio.widgets.labels import MessageLabel
from studio.widgets.model_picker import ModelPicker
from studio.widgets.piano_roll import PianoRoll
from studio.widgets.progress import GenerateBar

if TYPE_CHECKING:
    from studio.library.history import History

KEYS = [("From the prompt", "")] + [
    (f"{tonic} {mode}", f"{tonic} {mode}")
    for mode in ("major", "minor")
    for tonic in ("C", "G", "D", "A", "E", "B", "F#", "F", "Bb", "Eb", "Ab", "Db")
]
INSTRUMENTS = [("Piano", "piano"), ("Organ", "organ"), ("Plucked string", "pluck")]
NOTES_PLACEHOLDER = "e.g. “slow chorale in D minor”, “lively folk reel in G”, “waltz in 3/4”"
AUDIO_PLACEHOLDER = "e.g. “lo-fi hip hop beat with mellow piano”, “upbeat 80s synth-pop, 120 bpm”"
NOTES_HINT = "Style, key, metre and tempo words are understood; others are ignored."


def understood_line(prompt: str, understood: list[str], ignored: list[str]) -> str:
    """What the note models made of this piece's prompt: said for every piece, so it never shows an older one's."""
    quoted = f"“{prompt.strip()[:60]}”" if prompt.strip() else "the empty prompt"
    if not understood:
        told = f" (ignored: {', '.join(ignored)})" if ignored else ""
        return (f"Nothing in {quoted} was understood{told}: the piece follows the model's defaults, so other "
                "unknown words give the same music. Try a style (jig, chorale, waltz), a key (D minor), a metre (3/4) "
                "or a tempo (slow, 120 bpm).")
    text = f"{quoted}: understood {', '.join(understood)}"
    return text + (f" · ignored: {', '.join(ignored)}" if ignored else "")
AUDIO_HINT = "MusicGen reads the whole prompt: genre, instruments, mood and tempo words all count."


class MusicPanel(QWidget):
    modality = "music"

    def __init__(self, state: State, history: History | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.history = state, history  # the history gives the recent prompts
        self.values = state.music
        self.current = None  # the Artifact on the roll
        self._continuing = False  # True while Continue itself sets continue_from
        self.player = AudioPlayer(self)
        splitter = ColumnSplitter(self._controls(), self._stage())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(splitter)
        self._note_jobs: set[int] = set()
        self.makes_audio = False  # the picked model is MusicGen: audio out, no notes
        self._apply_model()
        self.values.value_changed.connect(lambda name, _value: self._apply_model() if name == "model" else None)
        self.values.value_changed.connect(self._on_continue_from)
        self._on_continue_from("continue_from", self.values.get("continue_from"))  # restored before this panel existed
        state.preview_changed.connect(self._on_preview)
        state.output_added.connect(self._on_output)
        state.result_ready.connect(self._on_result)
        self._opening: int | None = None  # the "music.open" job whose notes the roll waits for
        state.result_ready.connect(self._on_opened)
        state.output_restored.connect(self._on_output_restored)
        self.player.unavailable.connect(self._say)
        self.player.playing_changed.connect(self._on_playing)
        self.player.position_changed.connect(self._on_position)

    def recent_prompts(self, history=None) -> list[dict]:
        history = history if history is not None else self.history
        pairs = history.recent_prompts(("music", "audio")) if history is not None else []
        return [{"prompt": prompt} for prompt, _negative in pairs]

    def _controls(self) -> QWidget:
        v = self.values
        self.prompt = PromptEdit(v, "prompt", NOTES_PLACEHOLDER)
        self.prompt.setMaximumHeight(80)
        self.prompt.submitted.connect(self.generate)
        prompt_box = QGroupBox("Prompt")
        p = QVBoxLayout(prompt_box)
        p.addWidget(row("Model", ModelPicker(v)))
        p.addWidget(self.prompt)
        self.understood = QLabel(NOTES_HINT)
        self.understood.setObjectName("hint")
        self.understood.setWordWrap(True)
        p.addWidget(self.understood)
        self.recent = RecentPrompts(v, self.recent_prompts)
        p.addWidget(self.recent, 0, Qt.AlignmentFlag.AlignRight)

        sampling = QGroupBox("Sampling")
        s = QVBoxLayout(sampling)
        s.addWidget(ParamSlider(v, "temperature", "Temperature", 0.05, 2, 0.05, 2,
                                tooltip="Low: safe, predictable lines. High: adventurous, more wrong notes."))
        # Two top-k sliders on one value: ~260 note events vs MusicGen's 2048 audio codes (its default is 250).
        self.top_k_notes = ParamSlider(v, "top_k", "Top-k", 0, 100, tooltip="Only the k likeliest next events (0 = no limit).",
                                       special="off")
        self.top_k_audio = ParamSlider(v, "top_k", "Top-k", 0, 1000, tooltip="Only the k likeliest audio codes (0 = no limit).",
                                       special="off")
        s.addWidget(self.top_k_notes)
        s.addWidget(self.top_k_audio)
        s.addWidget(ParamSlider(v, "top_p", "Top-p", 0.05, 1, 0.01, 2, tooltip="Only the likeliest events holding p of the probability."))
        self.guidance = ParamSlider(v, "guidance", "Guidance", 1, 10, 0.5, 1,
                                    tooltip="How closely the audio follows the prompt (1 = no guidance; MusicGen's default is 3).",
                                    special="off")
        self.duration = ParamSlider(v, "duration", "Duration (s)", 1, musicgen.MAX_SECONDS, 1, 0,
                                    tooltip="Seconds of audio; about 50 model steps a second.")
        self.notes_only = [
            self.top_k_notes,
            ParamSlider(v, "bars", "Length (bars)", 1, 64, tooltip="How many bars to compose (or to add when continuing)."),
            ParamSlider(v, "tempo", "Tempo (BPM)", 0, 240, special="auto", tooltip="0 = from the prompt or the style's usual tempo."),
            row("Key", bound_combo(v, "key", KEYS, "Override the key the prompt asks for")),
            ParamSlider(v, "voices", "Voices", 0, 4, special="auto", tooltip="0 = the style's usual number (chorales 4, tunes 1)."),
            row("Instrument", bound_combo(v, "instrument", INSTRUMENTS, "The synthesizer's timbre")),
        ]
        self.audio_only = [self.top_k_audio, self.guidance, self.duration]
        for widget in self.notes_only[1:] + [self.guidance, self.duration]:
            s.addWidget(widget)
        s.addWidget(SeedBox(v))

        return scroll_column(prompt_box, sampling)

    def _stage(self) -> QWidget:
        self.roll = PianoRoll()
        self.roll.note_clicked.connect(self._hear_note)
        self.wave = QLabel("The waveform of MusicGen's audio shows here.")  # stands in for the roll
        self.wave.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.wave.setMinimumHeight(160)
        self.bar = GenerateBar(self.state, "music", label="Compose", unit="tok")
        self.bar.generate.clicked.connect(self.generate)
        self.play_button = QPushButton("▶ Play")
        self.play_button.clicked.connect(self.toggle_play)
        self.continue_button = QPushButton("Continue")
        self.continue_button.setToolTip("Extend the current piece, or a MIDI file you choose, by the bars set on the left")
        continue_menu = QMenu(self.continue_button)
        self.continue_current_action = continue_menu.addAction("Continue this piece", self.continue_piece)
        continue_menu.addAction("Continue a MIDI file…", self.continue_midi_file)
        continue_menu.aboutToShow.connect(
            lambda: self.continue_current_action.setEnabled(bool(self.current and self.current.files)))
        self.continue_button.setMenu(continue_menu)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save as MIDI, WAV or FLAC; the recipe is stored inside the file")
        self.export_button.clicked.connect(self.export)
        transport = FlowLayout()  # wraps onto a second line in a narrow window
        for button in (self.play_button, self.continue_button, self.export_button):
            transport.addWidget(button)
        self.compare_button = compare_button(self.state.compare, "music", self)  # Markov, RNN, GPT side by side
        transport.addWidget(self.compare_button)
        self.message = MessageLabel()
        self.message.setObjectName("hint")
        holder = QWidget()
        layout = QVBoxLayout(holder)
        layout.addWidget(self.roll, 1)
        layout.addWidget(self.wave, 1)
        layout.addLayout(transport)
        layout.addWidget(self.bar)
        layout.addWidget(self.message)
        return holder

    # --- behaviour ---------------------------------------------------------------------------

    def _apply_model(self) -> None:
        """Show the controls the picked model can use; hide the rest (cheap: reads config.json, no torch)."""
        # a server's music models are audio models (ComfyUI's ACE-Step / Stable Audio): duration and guidance apply
        self.makes_audio = bool(self.values.get("backend")) or musicgen.is_musicgen_ref(str(self.values.get("model") or ""))
        self.bar.unit = "tok" if self.makes_audio else "bars"  # MusicGen counts audio tokens; the note models bars
        for widget in self.notes_only + [self.roll, self.continue_button]:
            widget.setVisible(not self.makes_audio)
        for widget in self.audio_only + [self.wave]:
            widget.setVisible(self.makes_audio)
        self.understood.setText(AUDIO_HINT if self.makes_audio else NOTES_HINT)
        self.prompt.setPlaceholderText(AUDIO_PLACEHOLDER if self.makes_audio else NOTES_PLACEHOLDER)

    def generate(self) -> None:
        """Compose: a new piece, or, right after a continuation was restored from the gallery, that continuation
        again. "continue_from" is only ever set while a continuation is pending, and cleared once submitted."""
        self.state.generate("music")  # a file that is gone fails the job with a message naming it
        self.values.set("continue_from", "")

    def continue_piece(self) -> None:
        """Extend the piece on the roll (its saved MIDI file)."""
        source = next((f for f in self.current.files if f.suffix == ".mid"), None) if self.current else None
        if source is None:
            self.continue_midi_file()
            return
        self.continue_from(source)

    def continue_midi_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Continue a MIDI file", "", "MIDI (*.mid *.midi)")
        if path:
            self.continue_from(Path(path))

    def continue_from(self, source: Path) -> None:
        self._continuing = True  # set by Continue itself: not a restored continuation to announce
        try:
            self.values.set("continue_from", str(source))
        finally:
            self._continuing = False
        self.generate()

    def _on_continue_from(self, name: str, value) -> None:
        if name == "continue_from" and value and not self._continuing:
            self._say(f"Compose will continue {Path(str(value)).name} (restored), as the recipe did.")

    def _on_preview(self, modality: str, progress) -> None:
        if modality == "music" and isinstance(progress.preview, list):
            self.roll.set_notes(progress.preview)

    def _on_output(self, artifact) -> None:
        if artifact.modality not in ("music", "audio"):
            return
        if str(artifact.recipe.param("operation") or "").startswith("latent."):
            return  # a melody strip saved from the Latent Explorer: it shows there, not over this panel's piece
        if artifact.recipe.param("operation") == "music.compare":
            return  # a saved comparison of model families: it shows in its own view
        self.player.stop()  # the old piece's sound must not run on under the new piece's roll
        self.current = artifact
        if artifact.modality == "audio":
            self._show_waveform(artifact.payload[0])
        else:
            self.roll.set_notes(getattr(artifact.payload, "notes", []), getattr(artifact.payload, "beats_per_bar", None))
        if "understood" in artifact.info:  # note models say what they made of the prompt; MusicGen reads it all
            self.understood.setText(understood_line(artifact.recipe.prompt, artifact.info.get("understood") or [],
                                                    artifact.info.get("ignored") or []))
        self._say(f"seed {artifact.recipe.seed} · saved to {', '.join(str(f) for f in artifact.files)}")

    def _on_output_restored(self, modality: str, files: list) -> None:
        """A restored piece: its notes back on the roll (read from its MIDI file by the engine)."""
        midi = next((Path(f) for f in files if Path(f).suffix.lower() in (".mid", ".midi")), None)
        if modality != "music" or midi is None:
            return
        self._opening = self.state.submit(Job("music.open", args={"path": str(midi)}, save=False)).id

    def _on_opened(self, job, result) -> None:
        if job.id != self._opening:
            return
        piece = result.value
        self.roll.set_notes(getattr(piece, "notes", []), getattr(piece, "beats_per_bar", None))
        self._say(f"{len(getattr(piece, 'notes', []))} notes from {Path(job.args['path']).name}")

    def _show_waveform(self, samples) -> None:
        picture = QPixmap()
        picture.loadFromData(waveform_png(samples, max(160, self.wave.width()), max(110, self.wave.height())))
        self.wave.setPixmap(picture)

    def _audio_file(self) -> Path | None:
        if not self.current:
            return None
        return next((f for f in self.current.files if f.suffix in (".wav", ".flac")), None)

    def toggle_play(self) -> None:
        if self.player.playing:
            self.player.stop()
            return
        if self.current is not None and self.current.modality == "audio":
            samples, rate = self.current.payload  # MusicGen's samples, as generated
            self.player.play(samples, rate)
            return
        audio = self._audio_file()
        if audio is None:
            self._say("Compose something first.")
            return
        import soundfile

        samples, rate = soundfile.read(str(audio), dtype="float32")
        self.player.play(samples, rate)

    def _hear_note(self, pitch: int) -> None:
        job = Job("music.note", args={"pitch": pitch, "instrument": self.values.get("instrument")}, save=False,
                  supersede_key="music.note")
        self._note_jobs.add(job.id)
        self.state.submit(job)

    def _on_result(self, job, result) -> None:
        if job.id in self._note_jobs:
            self._note_jobs.discard(job.id)
            samples, rate = result.value
            self.player.play(samples, rate)

    def _on_playing(self, playing: bool) -> None:
        self.play_button.setText("■ Stop" if playing else "▶ Play")
        if not playing:
            self.roll.set_playhead(None)

    def _on_position(self, seconds: float) -> None:
        tempo = getattr(self.current.payload, "tempo_bpm", 120) if self.current else 120
        self.roll.set_playhead(seconds * tempo / 60.0)

    def export(self) -> None:
        if not self.current or not self.current.files:
            self._say("Compose something first.")
            return
        formats = "WAV (*.wav);;FLAC (*.flac)" if self.current.modality == "audio" else "MIDI (*.mid);;WAV (*.wav);;FLAC (*.flac)"
        path, chosen = QFileDialog.getSaveFileName(self, "Export music", self.current.files[0].stem, formats)
        if not path:
            return
        try:
            self._say(f"Exported {export_music_file(self.current, Path(path), chosen)}")
        except (OSError, UserError, StopIteration) as exc:
            self._say(f"Could not export to {path}: {exc or 'the saved files are missing'}")

    def _say(self, text: str) -> None:
        self.message.setText(text)


EXPORT_SUFFIXES = (".mid", ".midi", ".wav", ".flac")


def export_music_file(artifact, target: Path, chosen_filter: str = "") -> Path:
    """Copy the saved MIDI/WAV (recipe inside) or convert the WAV to FLAC with its recipe."""
    suffix = target.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:  # no suffix, or a dot inside the name ("Reel v1.2"): the filter decides
        suffix = ".flac" if "FLAC" in chosen_filter else ".wav" if "WAV" in chosen_filter else ".mid"
        target = target.with_name(target.name + suffix)
    if suffix in (".mid", ".midi") and not any(f.suffix == ".mid" for f in artifact.files):
        suffix = ".wav"  # MusicGen made audio, not notes: there is no MIDI to give
        target = target.with_suffix(suffix)
    if suffix in (".mid", ".midi"):
        source = next(f for f in artifact.files if f.suffix == ".mid")
        shutil.copyfile(source, target)
        return target
    wav = next(f for f in artifact.files if f.suffix == ".wav")
    if suffix == ".wav":
        shutil.copyfile(wav, target)
        return target
    return convert_audio(wav, target, artifact.recipe.to_json())
