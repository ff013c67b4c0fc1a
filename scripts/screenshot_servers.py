"""Screenshots of the ComfyUI servers at work: two stand-in servers (tests/comfyui/double.py) in Settings › Servers,
three image jobs spread over them in the Jobs dock, and the Servers dialog after "Test connection".

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshot_servers.py --out /tmp/shots [--width 960]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def wait_until(app, condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("screenshot step timed out")
        app.processEvents()
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="/tmp/servers-shots")
    parser.add_argument("--width", type=int, default=1360)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp())
    os.environ.setdefault("LATENT_STUDIO_HOME", str(home))
    os.environ.pop("COMFYUI_DIR", None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from PySide6.QtWidgets import QApplication

    from studio.app import create_window, find_probe
    from studio.core.servers import ServerConfig, load_servers, save_servers
    from studio.widgets.servers_dialog import ServersDialog
    from tests.comfyui.harness import ServerProcess

    servers = [ServerProcess(home / f"server-{i}", step_delay=0.15).start() for i in (1, 2)]
    save_servers([ServerConfig("gpu-box", "comfyui", servers[0].url), ServerConfig("studio-2", "comfyui", servers[1].url),
                  ServerConfig("text-box", "openai", "http://127.0.0.1:8080", enabled=False)])
    app = QApplication([])
    app.setOrganizationName("LatentStudioScreenshots")
    window = create_window(app, warm_up=False)
    window.resize(args.width, 860)
    window.show()
    state = window.state
    wait_until(app, lambda: len(state.backend_models.for_medium("image")) >= 2)
    state.image.update({"backend": "gpu-box", "model": "sd15-double.safetensors", "width": 64, "height": 64,
                        "steps": 12, "prompt": "a lighthouse at dusk"})
    jobs = [state.generate("image") for _ in range(3)]
    wait_until(app, lambda: all(not state.jobs[job.id].active for job in jobs), 120)
    app.processEvents()
    suffix = "" if args.width == 1360 else f"-{args.width}"
    window.grab().save(str(out / f"screenshot-comfyui-jobs{suffix}.png"))
    dialog = ServersDialog(load_servers(), find_probe, window)
    dialog.show()
    dialog.test.click()
    wait_until(app, lambda: dialog.result.text().startswith(("ComfyUI", "Not connected")))
    app.processEvents()
    dialog.grab().save(str(out / "screenshot-servers-dialog.png"))
    print(out / f"screenshot-comfyui-jobs{suffix}.png", out / "screenshot-servers-dialog.png")
    dialog.close()
    window.worker.stop()
    for server in servers:
        server.stop()


if __name__ == "__main__":
    main()
