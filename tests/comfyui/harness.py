"""Which ComfyUI the contract suite talks to, and how it starts, kills and restarts one.

- COMFYUI_URL=http://host:port: a running server (the tests that kill or start servers are skipped).
- COMFYUI_DIR=/path/to/ComfyUI: a checkout the suite starts itself on 127.0.0.1 with --cpu, each server in a base
  directory of its own (COMFYUI_PYTHON: its interpreter, default `python` beside the checkout's venv or this one;
  COMFYUI_MODELS: a models folder with a checkpoint, e.g. made by scripts/make_comfyui_checkpoint.py).
- neither (CI): the stand-in server, tests/comfyui/double.py, started the same way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REAL_START_S = 240.0  # a real ComfyUI imports torch and its nodes before it listens


def target() -> str:
    if os.environ.get("COMFYUI_URL"):
        return "url"
    return "real" if os.environ.get("COMFYUI_DIR") else "double"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _comfy_python(checkout: Path) -> str:
    if os.environ.get("COMFYUI_PYTHON"):
        return os.environ["COMFYUI_PYTHON"]
    for candidate in (checkout / "venv/bin/python", checkout.parent / "venv/bin/python"):
        if candidate.exists():
            return str(candidate)
    return sys.executable


def _link_models(base: Path) -> None:
    """The shared models folder's files, linked into this server's own base directory."""
    source = Path(os.environ.get("COMFYUI_MODELS") or Path(os.environ["COMFYUI_DIR"]).parent / "models")
    for folder in ("custom_nodes", "input", "output", "temp", "user"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    for folder in ("checkpoints", "loras"):
        (base / "models" / folder).mkdir(parents=True, exist_ok=True)
        for file in (source / folder).glob("*.safetensors"):
            (base / "models" / folder / file.name).symlink_to(file)
    # a damaged checkpoint: the real loader fails on it at execution time (execution_error)
    (base / "models" / "checkpoints" / "broken.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken!")


class ServerProcess:
    """One ComfyUI (real or stand-in) on 127.0.0.1, which a test may kill and start again on the same port."""

    def __init__(self, base: Path, step_delay: float = 0.05, token: str = "", tls=None) -> None:
        self.base, self.step_delay, self.token, self.tls = base, step_delay, token, tls
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.kind = target()
        base.mkdir(parents=True, exist_ok=True)
        if self.kind == "real":
            _link_models(base)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.kind == "real":
            checkout = Path(os.environ["COMFYUI_DIR"])
            return [_comfy_python(checkout), str(checkout / "main.py"), "--cpu", "--listen", "127.0.0.1", "--port",
                    str(self.port), "--base-directory", str(self.base), "--preview-method", "latent2rgb",
                    "--disable-auto-launch", "--database-url", "sqlite:///:memory:"]
        tls = ["--tls-certfile", str(self.tls[0]), "--tls-keyfile", str(self.tls[1])] if self.tls else []
        return [sys.executable, "-m", "tests.comfyui.double", "--port", str(self.port), "--base-directory",
                str(self.base), "--step-delay", str(self.step_delay), "--token", self.token, *tls]

    def start(self) -> ServerProcess:
        log = open(self.base / "server.log", "ab")  # noqa: SIM115 - the process writes it for its whole life
        # the server inherits the suite's niceness (run it with `nice` on a shared machine)
        self.process = subprocess.Popen(self.command(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        if self.tls:  # our own client refuses the self-signed certificate, which is the point: wait for the port
            self._wait_for_port(30.0)
        else:
            self.wait_until_answering(REAL_START_S if self.kind == "real" else 30.0)
        return self

    def wait_until_answering(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {(self.base / 'server.log').read_text()[-2000:]}")
            try:
                request = urllib.request.Request(self.url + "/system_stats",
                                                 headers={"Authorization": f"Bearer {self.token}"})
                with urllib.request.urlopen(request, timeout=2):
                    return
            except OSError:
                self._wait_while_running(0.1)
        raise TimeoutError(f"no answer from {self.url} in {timeout:.0f} s")

    def _wait_while_running(self, seconds: float) -> None:
        """Between two knocks on a starting server: wait on the process itself, so a server that dies while
        starting is reported at once instead of after the whole timeout."""
        if self.process is None:
            return
        try:
            self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            return  # still starting
        raise RuntimeError(f"the server exited: {(self.base / 'server.log').read_text()[-2000:]}")

    def _wait_for_port(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                self._wait_while_running(0.1)
        raise TimeoutError(f"nothing listens on {self.port}")

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-whatever, as a crashed or unplugged machine does."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        self.kill()
        self.process = None
