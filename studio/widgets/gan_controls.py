"""The Latent Explorer's GAN box: truncation, pictures A and B by prompt and seed, Z against W, style mixing, and the
principal directions of W as sliders. Shown only while the Explorer's model is a GAN (built-in: Emoji GAN)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from studio.state.explorer import ExplorerState
from studio.state.models import model_kind
from studio.widgets.controls import ParamSlider, bound_line, row

DIRECTION_RANGE = 3.0  # standard deviations either way: far enough to see what a direction does, not off the map
DIRECTION_TICKS = 30  # slider steps per DIRECTION_RANGE


class GanControls(QGroupBox):
    def __init__(self, explorer: ExplorerState, on_decode, parent: QWidget | None = None) -> None:
        """`on_decode()` asks (throttled) for the point on show again: the panel's throttle, shared with the map."""
        super().__init__("GAN: truncation, Z and W, styles", parent)
        self.explorer, self.values, self.on_decode = explorer, explorer.values, on_decode
        self.setToolTip("What only a GAN has. Pick Emoji GAN as the model above.")
        layout = QVBoxLayout(self)
        v = self.values
        layout.addWidget(ParamSlider(v, "truncation", "Truncation ψ", 0, 1.5, 0.05, 2,
                                     tooltip="1 = as sampled (most variety); lower pulls each picture towards its "
                                             "prompt's typical one; also used for the next map"))
        for name in ("a", "b"):
            layout.addWidget(row(f"Picture {name.upper()}", bound_line(v, f"gan_prompt_{name}", "a prompt")))
            layout.addWidget(ParamSlider(v, f"gan_seed_{name}", f"Seed {name.upper()}", 0, 99999))
        shows = QHBoxLayout()
        for name in ("a", "b"):
            button = QPushButton(f"Show {name.upper()}")
            button.setToolTip("Show this prompt and seed as the point on show (then Set A/B, Add to walk…)")
            button.clicked.connect(lambda _=False, n=name: explorer.gan_picture(n))
            shows.addWidget(button)
        layout.addLayout(shows)
        compare = QPushButton("Z vs W strip (save)")
        compare.setToolTip("A to B interpolated in the noise space Z (left) and the style space W (right): W's steps "
                           "are even, Z's rush through the middle")
        compare.clicked.connect(lambda: explorer.gan_compare())
        layout.addWidget(compare)
        layout.addWidget(ParamSlider(v, "crossover", "Crossover", 1, 7,
                                     tooltip="Style inputs before this come from A (shape, layout), the rest from B "
                                             "(colour, texture)"))
        layout.addWidget(ParamSlider(v, "mix_count", "Mix grid", 1, 6, tooltip="k×k mixes of A's and B's seeds"))
        mix = QPushButton("Style mixing grid")
        mix.clicked.connect(lambda: explorer.gan_mix())
        layout.addWidget(mix)
        layout.addWidget(self._directions())
        v.value_changed.connect(self._on_value)
        self._follow_model()

    def _directions(self) -> QWidget:
        box = QWidget()
        grid = QGridLayout(box)
        grid.setContentsMargins(0, 0, 0, 0)
        title = QLabel("Principal directions of W (GANSpace)")
        title.setToolTip("The directions along which the GAN's styles vary most; each slider pushes the point on show")
        grid.addWidget(title, 0, 0, 1, 2)
        self.direction_sliders = []
        for index in range(len(self.values.get("directions_amounts") or ())):
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(-DIRECTION_TICKS, DIRECTION_TICKS)
            slider.setToolTip(f"Direction {index + 1}: −{DIRECTION_RANGE:g} to +{DIRECTION_RANGE:g} standard deviations")
            slider.valueChanged.connect(lambda value, i=index: self._set_direction(i, value))
            grid.addWidget(QLabel(f"{index + 1}"), 1 + index // 2, (index % 2) * 2)
            grid.addWidget(slider, 1 + index // 2, (index % 2) * 2 + 1)
            self.direction_sliders.append(slider)
        reset = QPushButton("Reset directions")
        reset.clicked.connect(lambda: self.values.set("directions_amounts", [0.0] * len(self.direction_sliders)))
        grid.addWidget(reset, 1 + (len(self.direction_sliders) + 1) // 2, 0, 1, 4)
        self._show_directions(self.values.get("directions_amounts"))
        return box

    def _set_direction(self, index: int, ticks: int) -> None:
        amounts = list(self.values.get("directions_amounts") or [0.0] * len(self.direction_sliders))
        amounts[index] = round(ticks * DIRECTION_RANGE / DIRECTION_TICKS, 2)
        self.values.set("directions_amounts", amounts)

    def _show_directions(self, amounts) -> None:
        for slider, amount in zip(self.direction_sliders, amounts or (), strict=False):
            slider.blockSignals(True)
            slider.setValue(round(float(amount) * DIRECTION_TICKS / DIRECTION_RANGE))
            slider.blockSignals(False)

    def _on_value(self, name: str, value) -> None:
        if name == "model":
            self._follow_model()
        elif name == "directions_amounts":
            self._show_directions(value)
            self.on_decode()
        elif name == "truncation" and "gan" in (self.explorer.current or {}):
            self.on_decode()  # a GAN picture on show is drawn again with the new ψ

    def _follow_model(self) -> None:
        self.setVisible(model_kind(str(self.values.get("model") or "")) == "gan")
