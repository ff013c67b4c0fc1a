"""Music panel: describe a piece, compose it, see it on the piano roll, hear it, continue it, export it."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from studio.engine.jobs import Job
from studio.state import State
from studio.widgets.audio_player import AudioPlayer
from studio.widgets.controls import ParamSlider, PromptEdit, SeedBox, bound_combo, row, scroll_column
from studio.widgets.model_picker import ModelPicker
from studio.widgets.piano_roll import PianoRoll
from studio.widgets.progress import GenerateBar

KEYS = [("From the prompt", "")] + [
    (f"{tonic} {mode}", f"{tonic} {mode}")
    for mode in ("major", "minor")
    for tonic in ("C", "G", "D", "A", "E", "B", "F#", "F", "Bb", "Eb", "Ab", "Db")
]
INSTRUMENTS = [("Piano", "piano"), ("Organ", "organ"), ("Plucked string", "pluck")]


class MusicPanel(QWidget):
    modality = "music"

    def __init__(self, state: State, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.values = state.music
        self.current = None  # the Artifact on the roll
        self.player = AudioPlayer(self)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self._controls())
        splitter.addWidget(self._stage())
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([440, 640])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(splitter)
        self._note_jobs: set[int] = set()
        state.preview_changed.connect(self._on_preview)
        state.output_added.connect(self._on_output)
        state.result_ready.connect(self._on_result)
        self.player.unavailable.connect(self._say)
        self.player.playing_changed.connect(self._on_playing)
        self.player.position_changed.connect(self._on_position)

    def _controls(self) -> QWidget:
        v = self.values
        self.prompt = PromptEdit(v, "prompt", "e.g. “slow chorale in D minor”, “lively folk reel in G”, “waltz in 3/4”")
        self.prompt.setMaximumHeight(80)
        self.prompt.submitted.connect(self.generate)
        prompt_box = QGroupBox("Prompt")
        p = QVBoxLayout(prompt_box)
        p.addWidget(row("Model", ModelPicker(v, allow_demo=False)))
        p.addWidget(self.prompt)
        self.understood = QLabel("Style, key, metre and tempo words are understood; others are ignored.")
        self.understood.setObjectName("hint")
        self.understood.setWordWrap(True)
        p.addWidget(self.understood)

        sampling = QGroupBox("Sampling")
        s = QVBoxLayout(sampling)
        s.addWidget(ParamSlider(v, "temperature", "Temperature", 0.05, 2, 0.05, 2,
                                tooltip="Low: safe, predictable lines. High: adventurous, more wrong notes."))
        s.addWidget(ParamSlider(v, "top_k", "Top-k", 0, 100, tooltip="Only the k likeliest next events (0 = no limit)."))
        s.addWidget(ParamSlider(v, "top_p", "Top-p", 0.05, 1, 0.01, 2, tooltip="Only the likeliest events holding p of the probability."))
        s.addWidget(ParamSlider(v, "bars", "Length (bars)", 1, 64, tooltip="How many bars to compose (or to add when continuing)."))
        s.addWidget(ParamSlider(v, "tempo", "Tempo (BPM)", 0, 240, tooltip="0 = from the prompt or the style's usual tempo."))
        s.addWidget(row("Key", bound_combo(v, "key", KEYS, "Override the key the prompt asks for")))
        s.addWidget(ParamSlider(v, "voices", "Voices", 0, 4, tooltip="0 = the style's usual number (chorales 4, tunes 1)."))
        s.addWidget(row("Instrument", bound_combo(v, "instrument", INSTRUMENTS, "The synthesizer's timbre")))
        s.addWidget(SeedBox(v))

        return scroll_column(prompt_box, sampling)

    def _stage(self) -> QWidget:
        self.roll = PianoRoll()
        self.roll.note_clicked.connect(self._hear_note)
        self.bar = GenerateBar(self.state, "music", label="Compose", unit="tok")
        self.bar.generate.clicked.connect(self.generate)
        self.play_button = QPushButton("▶ Play")
        self.play_button.clicked.connect(self.toggle_play)
        self.continue_button = QPushButton("Continue…")
        self.continue_button.setToolTip("Extend the current piece (or a MIDI file you choose) by the bars set on the left")
        self.continue_button.clicked.connect(self.continue_piece)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save as MIDI, WAV or FLAC; the recipe is stored inside the file")
        self.export_button.clicked.connect(self.export)
        transport = QHBoxLayout()
        for button in (self.play_button, self.continue_button, self.export_button):
            transport.addWidget(button)
        self.message = QLabel()
        self.message.setObjectName("hint")
        self.message.setWordWrap(True)
        holder = QWidget()
        layout = QVBoxLayout(holder)
        layout.addWidget(self.roll, 1)
        layout.addLayout(transport)
        layout.addWidget(self.bar)
        layout.addWidget(self.message)
        return holder

    # --- behaviour ---------------------------------------------------------------------------

    def generate(self) -> None:
        self.values.set("continue_from", "")
        self.state.generate("music")

    def continue_piece(self) -> None:
        source = self.current.files[0] if self.current and self.current.files else None
        if source is None:
            path, _ = QFileDialog.getOpenFileName(self, "Continue a MIDI file", "", "MIDI (*.mid *.midi)")
            if not path:
                return
            source = Path(path)
        self.values.set("continue_from", str(source))
        self.state.generate("music")

    def _on_preview(self, modality: str, progress) -> None:
        if modality == "music" and isinstance(progress.preview, list):
            self.roll.set_notes(progress.preview)

    def _on_output(self, artifact) -> None:
        if artifact.modality != "music":
            return
        self.current = artifact
        self.roll.set_notes(getattr(artifact.payload, "notes", []))
        understood = artifact.info.get("understood")
        ignored = artifact.info.get("ignored")
        if understood:
            text = f"Understood: {', '.join(understood) if isinstance(understood, list) else understood}"
            if ignored:
                text += f" · ignored: {', '.join(ignored)}"
            self.understood.setText(text)
        self._say(f"seed {artifact.recipe.seed} · saved to {', '.join(str(f) for f in artifact.files)}")

    def _audio_file(self) -> Path | None:
        if not self.current:
            return None
        return next((f for f in self.current.files if f.suffix in (".wav", ".flac")), None)

    def toggle_play(self) -> None:
        if self.player.playing:
            self.player.stop()
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
        path, chosen = QFileDialog.getSaveFileName(self, "Export music", self.current.files[0].stem,
                                                   "MIDI (*.mid);;WAV (*.wav);;FLAC (*.flac)")
        if path:
            self._say(f"Exported {export_music_file(self.current, Path(path), chosen)}")

    def _say(self, text: str) -> None:
        self.message.setText(text)


def export_music_file(artifact, target: Path, chosen_filter: str = "") -> Path:
    """Copy the saved MIDI/WAV (recipe inside) or convert the WAV to FLAC with its recipe."""
    suffix = target.suffix.lower() or (".flac" if "FLAC" in chosen_filter else ".wav" if "WAV" in chosen_filter else ".mid")
    target = target.with_suffix(suffix)
    if suffix in (".mid", ".midi"):
        source = next(f for f in artifact.files if f.suffix == ".mid")
        shutil.copyfile(source, target)
        return target
    wav = next(f for f in artifact.files if f.suffix == ".wav")
    if suffix == ".wav":
        shutil.copyfile(wav, target)
        return target
    import soundfile

    from studio.engine import synth

    samples, rate = soundfile.read(str(wav), dtype="float32")
    synth.write_audio(samples, rate, target, artifact.recipe.to_json())
    return target
