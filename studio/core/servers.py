"""The servers the user added (Settings › Servers): ComfyUI servers, OpenAI-compatible text servers.

Kept in the plain preferences file the app and the CLI share (`paths.preferences_path()`, key "servers"). A server's
API token is never written here: it lives in the OS keyring (or a 0600 file when there is none), looked up by the
server's name.

Each kind of server is one line in KINDS: "module:Class" of its backend, imported when a server of that kind is
added, so this module imports nothing heavy and no Qt.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields

from studio import paths

# kind -> "module:Class" of the backend that drives it (built as Class(config, history)).
KINDS: dict[str, str] = {
    "comfyui": "studio.backends.comfyui:ComfyUIBackend",
    "openai": "studio.backends.openai_text:OpenAITextBackend",
}


@dataclass(frozen=True)
class ServerConfig:
    name: str  # what pickers and the Jobs dock show ("on gpu-box"), and what a recipe's `backend` param holds
    kind: str  # a key of KINDS
    url: str  # base URL, e.g. http://127.0.0.1:8188 or https://gpu-box.example:8443
    enabled: bool = True  # a disabled server stays listed but isn't connected

    @classmethod
    def from_dict(cls, data: dict) -> ServerConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def load_servers() -> list[ServerConfig]:
    """The saved servers; an unreadable preferences file or entry gives none rather than failing to start."""
    try:
        saved = json.loads(paths.preferences_path().read_text(encoding="utf-8")).get("servers", [])
    except (OSError, ValueError, AttributeError):
        return []
    servers = []
    for entry in saved if isinstance(saved, list) else []:
        try:
            server = ServerConfig.from_dict(entry)
        except (TypeError, AttributeError):  # not an object, or missing fields
            continue
        if isinstance(server.name, str) and server.name and server.kind in KINDS and isinstance(server.url, str):
            servers.append(server)
    return servers


def save_servers(servers: list[ServerConfig]) -> None:
    path = paths.preferences_path()
    try:
        preferences = json.loads(path.read_text(encoding="utf-8"))
        preferences = preferences if isinstance(preferences, dict) else {}
    except (OSError, ValueError):
        preferences = {}
    preferences["servers"] = [asdict(server) for server in servers]
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(preferences, indent=2), encoding="utf-8")
    os.replace(temporary, path)
