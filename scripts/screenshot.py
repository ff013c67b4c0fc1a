"""Screenshots of the real window, one per panel, for the README and for looking at the UI.

Run under a display, e.g.:  xvfb-run -s "-screen 0 1400x900x24" .venv/bin/python scripts/screenshot.py
Options: --generate  runs one generation in each generator panel first (built-in models)
         --out DIR   where PNGs go (default docs/)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from studio.app import create_window, tab_list  # noqa: E402

PROMPTS = {"image": "grinning face with big eyes", "text": "The meaning of life is", "music": "slow chorale in D minor"}


def open_window(width: int, out: Path):
    """The real window in a throw-away user folder, `width` wide, shown at the screen's corner."""
    os.environ.setdefault("LATENT_STUDIO_HOME", tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication([])
    app.setOrganizationName("LatentStudioScreenshots")
    app.setApplicationName("screenshots")
    window = create_window(app, warm_up=True)
    window.resize(width, 860)
    window.move(0, 0)
    window.show()
    return app, window


def apply_values(values, panel: str, settings: list[str]) -> None:
    """--set image.guidance=9: each value is read as JSON when it parses, else kept as text."""
    for setting in settings:
        key, _, text = setting.partition("=")
        owner, _, name = key.partition(".")
        if owner != panel:
            continue
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        values.set(name, value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--generate", action="store_true")
    parser.add_argument("--out", default="docs")
    parser.add_argument("--panels", default=",".join(name for name, _ in tab_list()))
    parser.add_argument("--width", type=int, default=1360, help="window width (960: half a 1080p screen)")
    parser.add_argument("--set", action="append", default=[], metavar="PANEL.KEY=VALUE",
                        help="a panel value before generating, e.g. image.model=builtin:emoji-ldm (JSON or text)")
    args = parser.parse_args()
    out = Path(args.out)
    app, window = open_window(args.width, out)
    names = args.panels.split(",")
    todo = list(names)

    def shoot_next() -> None:
        if not todo:
            window.close()
            app.quit()
            return
        name = todo.pop(0)
        window.show_panel(name)
        if args.generate and name in PROMPTS:
            window.state.panels[name].set("prompt", PROMPTS[name])
            window.state.panels[name].set("seed", 7)
            apply_values(window.state.panels[name], name, args.set)
            if name == "image":
                catch_preview_midway()
            window.panel(name).generate()  # as the Generate button does (the text panel keeps its page)

            def done(info) -> None:
                if info.modality == name and not info.active and info.job.kind != "device.warmup":
                    window.state.job_changed.disconnect(done)
                    QTimer.singleShot(400, lambda: grab(name))

            window.state.job_changed.connect(done)
        elif args.generate and name == "latent":
            shoot_latent()
        else:
            QTimer.singleShot(600, lambda: grab(name))

    def after_job(kind: str, then) -> None:
        """Call `then` once the next job of this kind has finished (or failed)."""

        def done(info) -> None:
            if info.job.kind == kind and not info.active:
                window.state.job_changed.disconnect(done)
                QTimer.singleShot(400, then)

        window.state.job_changed.connect(done)

    def shoot_latent() -> None:
        """Images tab: the dataset's map, A and B picked, a strip and a breeding saved; then the family
        tree of one child; then the Melodies tab with an interpolation."""
        panel = window.panel("latent")
        chain = [
            ("latent.map", panel.build_map),
            ("latent.decode", lambda: panel.show_point(*point_of("heart"))),
            ("latent.decode", lambda: (panel.explorer.pick("A"), panel.show_point(*point_of("grinning face")))),
            ("latent.strip", lambda: (panel.explorer.pick("B"), panel.explorer.make_strip())),
            ("latent.breed", panel.explorer.breed),
        ]

        def run(index: int = 0) -> None:
            if index == len(chain):
                grab("latent", then_next=False)
                family_tree()
                return
            kind, action = chain[index]
            after_job(kind, lambda: run(index + 1))
            action()

        def point_of(label: str) -> tuple[float, float]:
            """Where the map put the first training emoji whose label contains `label`."""
            items = [item for item in panel.map.scene().items() if label in item.toolTip().lower()]
            return panel.map.to_map(items[0].pos()) if items else (0.0, 0.0)

        def family_tree() -> None:
            from studio.panels.gallery import FamilyTreeDialog

            child = next(e for e in window.history.search(modality="image", limit=20) if e.parents)
            dialog = FamilyTreeDialog(window.history, child.id, window)
            dialog.show()
            QTimer.singleShot(300, lambda: (dialog.grab().save(str(out / "screenshot-family-tree.png")),
                                            print(out / "screenshot-family-tree.png"), dialog.close(), melodies()))

        def melodies() -> None:
            panel.tabs.setCurrentIndex(1)
            after_job("latent.melody_interpolate", lambda: grab("latent-melodies"))
            panel.interpolate_melodies()

        run()

    def catch_preview_midway() -> None:
        """One extra shot of the Image panel while it denoises: the live preview, step i/N."""

        def on_preview(modality, progress) -> None:
            if modality == "image" and progress.total and progress.step >= progress.total // 2:
                window.state.preview_changed.disconnect(on_preview)
                QTimer.singleShot(100, lambda: grab("image-preview", then_next=False))

        window.state.preview_changed.connect(on_preview)

    def grab(name: str, then_next: bool = True) -> None:
        screen = app.primaryScreen()
        frame = window.frameGeometry()  # the window only, not the empty screen around it
        picture = (screen.grabWindow(0, frame.x(), frame.y(), frame.width(), frame.height())
                   if os.environ.get("DISPLAY") else window.grab())
        suffix = "" if args.width == 1360 else f"-{args.width}"
        picture.save(str(out / f"screenshot-{name}{suffix}.png"))
        print(out / f"screenshot-{name}{suffix}.png")
        if then_next:
            shoot_next()

    QTimer.singleShot(1500, shoot_next)
    app.exec()


if __name__ == "__main__":
    main()
