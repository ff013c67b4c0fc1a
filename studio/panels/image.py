"""Image panel: prompt and sampling controls on the left, the live preview and results on the right."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.jobs import Job
from studio.core.recipe import RecipeError
from studio.engine.image.settings import SCHEDULERS as SCHEDULER_TABLE
from studio.engine.image.settings import scheduler_label
from studio.library.export import read_image_parameters
from studio.state import State
from studio.widgets.adapter_picker import AdapterPicker
from studio.widgets.controls import (
    ColumnSplitter,
    ParamSlider,
    PromptEdit,
    RecentPrompts,
    SeedBox,
    bound_combo,
    bound_line,
    row,
    scroll_column,
)
from studio.widgets.image_view import ImageView, ThumbnailStrip, pil_to_pixmap
from studio.widgets.live import LiveSwitch
from studio.widgets.mask_painter import MaskPainter
from studio.widgets.model_fit import SizeFit, apply_model_defaults, fit_schedulers
from studio.widgets.model_picker import ModelPicker
from studio.widgets.progress import GenerateBar
from studio.widgets.sketch_pad import SketchPad

if TYPE_CHECKING:
    from studio.library.history import History

# One list: the engine's table (the CLI takes the same names); the panel shows those that fit the picked model.
SCHEDULERS = [(scheduler_label(name), name) for name in SCHEDULER_TABLE]
MODES = [("Text to image", "txt2img"), ("Image to image", "img2img"), ("Inpaint", "inpaint"),
         ("Sketch to picture", "translate")]
IMAGE_FILES = "Images (*.png *.jpg *.jpeg *.webp)"
# What an X/Y plot may vary (the engine checks the same list: studio.engine.image.generate.XY_AXES).
XY_AXES = ["seed", "steps", "guidance", "guidance_start", "variety", "scheduler", "prompt", "negative_prompt", "width",
           "height", "strength", "variation_seed", "variation_strength", "clip_skip"]
NUMERIC_AXES = {"seed", "steps", "width", "height", "variation_seed", "clip_skip"}


def parse_axis_values(axis: str, text: str) -> list:
    """'1, 2, 3' -> [1, 2, 3] for numeric axes; prompts are separated by '|' so they may hold commas."""
    parts = [p.strip() for p in text.split("|" if axis in ("prompt", "negative_prompt") else ",") if p.strip()]
    if axis in NUMERIC_AXES:
        return [int(float(p)) for p in parts]
    if axis in ("guidance", "guidance_start", "variety", "strength", "variation_strength"):
        return [float(p) for p in parts]
    return parts


class ImagePanel(QWidget):
    modality = "image"

    def __init__(self, state: State, history: History | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.history = state, history  # the history gives the recent prompts
        self.values = state.image
        self._mask_version = 0
        self._sketch_version = 0
        self.setAcceptDrops(True)
        splitter = ColumnSplitter(self._controls(), self._canvas())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(splitter)
        state.preview_changed.connect(self._on_preview)
        state.output_added.connect(self._on_output)
        state.output_restored.connect(self._on_output_restored)
        state.live.picture_arrived.connect(self._on_live_picture)
        # "Also in the file" belongs to the last dropped PNG: any other restore makes it stale
        state.restore_requested.connect(lambda name: self.unknown.hide() if name == "image" else None)

    # --- building ----------------------------------------------------------------------------

    def _prompt_box(self) -> QGroupBox:
        v = self.values
        self.prompt = PromptEdit(v, "prompt", "Describe the picture… e.g. “red heart”, “smiling cat face”")
        self.prompt.setMaximumHeight(96)
        self.negative = PromptEdit(v, "negative_prompt", "What to avoid (negative prompt)")
        self.negative.setMaximumHeight(56)
        self.prompt.submitted.connect(self.generate)
        self.negative.submitted.connect(self.generate)
        self.model = ModelPicker(v)
        self.model.picked.connect(lambda ref: apply_model_defaults(v, ref))  # its native size, steps, CFG, sampler

        prompt_box = QGroupBox("Prompt")
        prompt_layout = QVBoxLayout(prompt_box)
        prompt_layout.addWidget(row("Model", self.model))
        prompt_layout.addWidget(self.prompt)
        prompt_layout.addWidget(self.negative)
        self.recent = RecentPrompts(v, self.recent_prompts)
        self.adapters = AdapterPicker(v.model_library, self.prompt)
        recent_row = QHBoxLayout()
        recent_row.addWidget(self.adapters)
        recent_row.addStretch(1)
        recent_row.addWidget(self.recent)
        prompt_layout.addLayout(recent_row)
        return prompt_box

    def _controls(self) -> QWidget:
        v = self.values
        prompt_box = self._prompt_box()
        sampling = QGroupBox("Sampling")
        form = QVBoxLayout(sampling)
        form.addWidget(row("Mode", bound_combo(v, "mode", MODES, "Start from noise, from an image, repaint a masked "
                                                              "area, or turn a drawing into a picture")))
        self.live = LiveSwitch(self.state.live)
        form.addWidget(row("", self.live))
        steps = ParamSlider(v, "steps", "Steps", 1, 150, tooltip="Denoising steps: more is slower and usually cleaner.")
        guidance = ParamSlider(v, "guidance", "Guidance (CFG)", 0, 20, 0.5, 1,
                               tooltip="How strongly the prompt steers. Too high looks burnt; 0–1 ignores the prompt.")
        guidance_start = ParamSlider(v, "guidance_start", "Guidance from", 0, 0.9, 0.05, 2,
                                     tooltip="The share of the steps, from the first, drawn without guidance: later "
                                             "guidance keeps seeds apart and keeps the prompt's pull. 0 = guided "
                                             "throughout, as other tools do.")
        variety = ParamSlider(v, "variety", "Variety", 0, 1, 0.05, 2,
                              tooltip="Noise on the prompt in the first steps, gone by the middle ones (CADS): seeds "
                                      "of one prompt differ more in layout. 0 = off, as other tools do; SD-style "
                                      "models, not with LCM.")
        form.addWidget(steps)
        form.addWidget(guidance)
        form.addWidget(guidance_start)
        form.addWidget(variety)
        schedulers = bound_combo(v, "scheduler", SCHEDULERS, "The sampler that walks from noise to image (those "
                                                              "that fit the picked model)")
        fit_schedulers(schedulers, v)
        scheduler_row = row("Scheduler", schedulers)
        form.addWidget(scheduler_row)
        # what a one-pass sketch translation doesn't use
        self.denoising = (steps, guidance, guidance_start, variety, scheduler_row)
        form.addWidget(ParamSlider(v, "width", "Width", 64, 2048, 8, tooltip="Snapped to the model's multiple when generating."))
        form.addWidget(ParamSlider(v, "height", "Height", 64, 2048, 8, tooltip="Snapped to the model's multiple when generating."))
        self.size_fit = SizeFit(v)  # presets at the model's native size; a warning when far from it
        form.addWidget(row("Size preset", self.size_fit))
        form.addWidget(SeedBox(v))
        form.addWidget(ParamSlider(v, "batch_count", "Batch count", 1, 16, tooltip="How many images, seeds seed, seed+1, …"))
        # a GAN's own knob (StyleGAN's ψ), shown only when the picked model is a GAN
        self.truncation = ParamSlider(v, "truncation", "Truncation ψ", 0, 1.5, 0.05, 2,
                                      tooltip="GAN models: 1 = as sampled, most variety; lower pulls each picture "
                                              "towards the prompt's typical one (cleaner, less varied).")
        form.addWidget(self.truncation)
        self._show_model_controls()
        form.addWidget(ParamSlider(v, "clip_skip", "CLIP skip", 1, 4,
                                   tooltip="Read the prompt from an earlier layer of the text encoder (A1111's Clip skip; "
                                           "many anime models want 2). 1 = the last layer."))

        variation = QGroupBox("Variation and image-to-image")
        extra = QVBoxLayout(variation)
        extra.addWidget(ParamSlider(v, "variation_seed", "Variation seed", 0, 2**31 - 1,
                                    tooltip="A second seed whose noise is blended in (A1111's variation seed)."))
        extra.addWidget(ParamSlider(v, "variation_strength", "Variation strength", 0, 1, 0.01, 2,
                                    tooltip="0: the base seed exactly. 1: the variation seed. Between: a nearby variation."))
        extra.addWidget(ParamSlider(v, "strength", "Denoise strength", 0, 1, 0.01, 2,
                                    tooltip="Image to image: 0 keeps the input, 1 ignores it."))
        init_row = QHBoxLayout()
        init_row.addWidget(bound_line(v, "init_image", "input image for image-to-image / inpaint"), 1)
        browse = QPushButton("Open…")
        browse.clicked.connect(self._open_init_image)
        init_row.addWidget(browse)
        holder = QWidget()
        holder.setLayout(init_row)
        extra.addWidget(row("Input image", holder))
        extra.addWidget(row("Mask image", bound_line(v, "mask_image", "white = repaint (inpaint mode)")))

        self.unknown = QLabel()
        self.unknown.setObjectName("hint")
        self.unknown.setWordWrap(True)
        self.unknown.hide()

        return scroll_column(prompt_box, sampling, variation, self._xy_box(), self.unknown)

    def _xy_box(self) -> QWidget:
        box = QGroupBox("X/Y plot")
        layout = QVBoxLayout(box)
        self.xy = {}
        for axis, default_param, default_values in (("x", "steps", "10, 20, 30"), ("y", "guidance", "3, 5, 7")):
            combo = QComboBox()
            combo.addItems(XY_AXES)
            combo.setCurrentText(default_param)
            values = QLineEdit(default_values)
            values.setToolTip("Comma-separated values (prompts: separate with |)")
            holder = QWidget()
            line = QHBoxLayout(holder)
            line.setContentsMargins(0, 0, 0, 0)
            line.addWidget(combo)
            line.addWidget(values, 1)
            layout.addWidget(row(f"{axis.upper()} axis", holder))
            self.xy[axis] = (combo, values)
        render = QPushButton("Render X/Y plot")
        render.setToolTip("One image per pair of values, same seed, as a labelled grid (like A1111's X/Y/Z plot)")
        render.clicked.connect(self.render_xy_plot)
        layout.addWidget(render)
        return box

    def render_xy_plot(self) -> None:
        try:
            args = {}
            for axis, (combo, values) in self.xy.items():
                args[f"{axis}_param"] = combo.currentText()
                args[f"{axis}_values"] = parse_axis_values(combo.currentText(), values.text())
        except ValueError as exc:
            self.state.error_raised.emit("image", f"X/Y plot values: {exc}")
            return
        recipe = self.values.recipe()
        self.values.last_seed = recipe.seed
        self.state.submit(Job("image.xy_plot", recipe, args=args))

    def recent_prompts(self, history=None) -> list[dict]:
        history = history if history is not None else self.history
        pairs = history.recent_prompts("image") if history is not None else []
        return [{"prompt": prompt, "negative_prompt": negative} for prompt, negative in pairs]

    def _canvas(self) -> QWidget:
        self.view = ImageView(placeholder="Your image appears here.\nType a prompt and press Generate (Ctrl+Enter).\n"
                                          "Drop a PNG from A1111, Fooocus or Latent Studio to load its settings.")
        self.caption = QLabel()
        self.caption.setObjectName("hint")
        self.caption.setWordWrap(True)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.bar = GenerateBar(self.state, "image")
        self.bar.generate.clicked.connect(self.generate)
        self.results = ThumbnailStrip()
        self.results.chosen.connect(self._show_artifact)
        self.results.hide()  # shown with the first result, not as an empty box
        self.mask = MaskPainter()
        self.mask.canvas.committed.connect(self._save_mask)
        self.stage = QTabWidget()
        self.stage.addTab(self.view, "Result")
        self.sketch = SketchPad()
        self.sketch.canvas.committed.connect(self._save_sketch)
        # one input tab: the picture and its mask, or in Sketch to picture mode the drawing pad (two tabs, not three,
        # so the tab bar fits the canvas at 960 px)
        self.inputs = QStackedWidget()
        self.inputs.addWidget(self.mask)
        self.inputs.addWidget(self.sketch)
        self.stage.addTab(self.inputs, "Input and mask")
        self._show_input(self.values.get("mode"))
        self.values.value_changed.connect(self._on_value)
        canvas = QWidget()
        layout = QVBoxLayout(canvas)
        layout.addWidget(self.stage, 1)
        layout.addWidget(self.caption)
        layout.addWidget(self.bar)
        layout.addWidget(self.results)
        return canvas

    # --- behaviour ---------------------------------------------------------------------------

    def generate(self) -> None:
        self.state.generate("image")

    def _on_preview(self, modality: str, progress) -> None:
        if modality == "image" and hasattr(progress.preview, "convert"):
            self.stage.setCurrentWidget(self.view)
            self.view.set_image(progress.preview)

    def _on_output(self, artifact) -> None:
        if artifact.modality != "image":
            return
        self._show_artifact(artifact)
        self.results.add(pil_to_pixmap(artifact.payload), artifact, artifact.recipe.prompt)
        self.results.show()

    def _on_live_picture(self, artifact) -> None:
        """A Live picture: shown where results go, but not one of them (not saved; Generate saves)."""
        self.stage.setCurrentWidget(self.view)
        self.view.set_image(artifact.payload)
        self.caption.setText(f"Live · seed {artifact.recipe.seed} · not saved (Generate saves it)")

    def _show_artifact(self, artifact) -> None:
        self.stage.setCurrentWidget(self.view)
        self.view.set_image(artifact.payload)
        recipe = artifact.recipe
        where = f" · saved to {artifact.files[0]}" if artifact.files else ""
        plot = recipe.param("xy_plot")
        if isinstance(plot, dict):  # a grid: its axes vary, so naming one seed or step count would mislead
            caption = f"X/Y plot: {plot.get('x_param')} × {plot.get('y_param')} · {recipe.model}{where}"
        else:
            caption = f"seed {recipe.seed} · {recipe.param('steps')} steps · {recipe.model}{where}"
        # what the engine had to do differently (a float32 VAE retry, memory savers) or ignore: said, not hidden
        said = [str(n) for n in list(artifact.info.get("fallbacks") or []) + list(artifact.info.get("notes") or [])]
        self.caption.setText(caption + "".join(f"\n⚠ {line}" for line in dict.fromkeys(said)))

    def _on_value(self, name: str, value) -> None:
        if name == "init_image" and self.values.get("mode") == "translate":
            return  # the sketch being drawn: it stays on the Sketch tab
        if name == "init_image" and value and self.mask.canvas.set_image(str(value)):
            self.stage.setCurrentWidget(self.inputs)
            if self.values.get("mask_image"):  # the canvas shows the mask the next generation will use
                self.mask.canvas.load_mask(str(self.values.get("mask_image")))
        elif name == "mask_image" and value:
            self.mask.canvas.load_mask(str(value))
        if name == "mode":
            self._show_input(value)
        elif name == "model":
            self._show_model_controls()
        if name == "mode" and value in ("img2img", "inpaint") and self.values.get("init_image"):
            self.stage.setCurrentWidget(self.inputs)
        elif name == "mode" and value == "translate":
            self.stage.setCurrentWidget(self.inputs)
            if self.values.get("init_image") and not self._sketch_version:
                self.sketch.canvas.load(str(self.values.get("init_image")))  # a restored or chosen drawing
            self._save_sketch()

    def _save_mask(self) -> None:
        """The painted mask becomes a file the recipe can name; one file per panel session."""
        from studio import paths

        folder = paths.user_data_dir() / "masks"
        folder.mkdir(parents=True, exist_ok=True)
        path = self.mask.canvas.save_mask(folder / f"mask-{id(self):x}-{self._mask_version}.png")
        self._mask_version += 1
        self.values.set("mask_image", str(path))
        if self.values.get("mode") == "txt2img":
            self.values.set("mode", "inpaint")

    def _show_model_controls(self) -> None:
        from studio.state.models import model_kind

        self.truncation.setVisible(model_kind(str(self.values.get("model", ""))) == "gan")

    def _show_input(self, mode) -> None:
        sketching = mode == "translate"
        for widget in self.denoising:
            widget.setVisible(not sketching)
        self.inputs.setCurrentWidget(self.sketch if sketching else self.mask)
        self.stage.setTabText(self.stage.indexOf(self.inputs), "Sketch" if sketching else "Input and mask")

    def _save_sketch(self) -> None:
        """The drawing becomes the input picture a Translate recipe names (and Live redraws from)."""
        if self.values.get("mode") != "translate":
            return
        from studio import paths

        folder = paths.user_data_dir() / "sketches"
        folder.mkdir(parents=True, exist_ok=True)
        path = self.sketch.canvas.save(folder / f"sketch-{id(self):x}-{self._sketch_version}.png")
        self._sketch_version += 1
        self.values.set("init_image", str(path))

    def _open_init_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Input image", "", IMAGE_FILES)
        if path:
            self.values.set("mask_image", "")  # a mask painted on the old picture must not repaint the new one
            self.values.set("init_image", path)

    def _on_output_restored(self, modality: str, files: list) -> None:
        """A restored output's picture, shown where a new one would be."""
        picture = next((Path(f) for f in files if Path(f).suffix.lower() in (".png", ".jpg", ".jpeg", ".webp")), None)
        if modality != "image" or picture is None:
            return
        pixmap = QPixmap(str(picture))
        if not pixmap.isNull():
            self.stage.setCurrentWidget(self.view)
            self.view.set_pixmap(pixmap)

    def load_settings_from(self, path: Path) -> bool:
        """Restore the settings stored in an image (ours, A1111, Fooocus, NovelAI, ComfyUI, InvokeAI). Shows what
        was mapped or left out, and the keys kept but not used."""
        try:
            parsed = read_image_parameters(Path(path))
        except RecipeError as exc:
            self.state.error_raised.emit("image", str(exc))
            return False
        recipe, lines = parsed.recipe, list(parsed.notes)
        if not recipe.prompt.strip() and parsed.source not in ("", "Latent Studio"):
            # another tool's file without a prompt never empties the prompt box, and says so
            recipe = dataclasses.replace(recipe, prompt=str(self.values.get("prompt", "")))
            if not any("prompt box" in line for line in lines):
                lines.append("The file holds no prompt: the prompt box is left as it was.")
        self.state.restore(recipe)  # hides the label (restore_requested); shown again below if needed
        if parsed.unknown:
            kept = ", ".join(f"{k}: {v}" for k, v in parsed.unknown.items())
            lines.append(f"Also in the file (not used by this app, kept for reference): {kept}")
        if lines:
            self.unknown.setText("\n".join(lines))
            self.unknown.show()
        else:
            self.unknown.hide()
        return True

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.load_settings_from(Path(url.toLocalFile()))
                break

