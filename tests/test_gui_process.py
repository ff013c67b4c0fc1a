"""The window's process never imports torch, diffusers or transformers: an image, a text and a music job on the
built-in models run in the engine process, and their outputs come back to the window."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import sys
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication
    from studio.app import create_window
    from studio.core.jobs import JobEvent

    app = QApplication([])
    window = create_window(app, warm_up=False)
    window.show()
    results = {}

    def on_job(info):
        if info.status in (JobEvent.FINISHED, JobEvent.FAILED, JobEvent.CANCELLED):
            results[info.modality] = (info.status.value, info.error)
            if len(results) == 3:
                loop.quit()

    window.state.job_changed.connect(on_job)
    outputs = []
    window.state.output_added.connect(lambda artifact: outputs.append(artifact.modality))
    state = window.state
    state.image.update({"prompt": "red heart", "steps": 4, "seed": 1})
    state.text.update({"prompt": "The", "max_new_tokens": 8, "seed": 1})
    state.music.update({"prompt": "jig in A minor", "bars": 1, "seed": 1})
    for medium in ("image", "text", "music"):
        state.generate(medium)
    loop = QEventLoop()
    QTimer.singleShot(240000, loop.quit)  # a bound, not a wait: the loop ends when the three jobs have
    loop.exec()
    heavy = [name for name in ("torch", "diffusers", "transformers") if name in sys.modules]
    print("RESULTS", sorted(results.items()))
    print("OUTPUTS", sorted(outputs))
    print("HEAVY", heavy)
    window.worker.stop()
""")


@pytest.mark.slow
def test_the_window_process_imports_no_torch_after_image_text_and_music_jobs(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LATENT_STUDIO_ENGINE": "process",
           "LATENT_STUDIO_HOME": str(tmp_path / "home"), "LATENT_STUDIO_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in done.stdout.splitlines() if " " in line}
    assert "RESULTS" in lines, done.stdout + done.stderr
    assert lines["RESULTS"] == "[('image', ('finished', '')), ('music', ('finished', '')), ('text', ('finished', ''))]"
    assert lines["OUTPUTS"] == "['image', 'music', 'text']"
    assert lines["HEAVY"] == "[]"
