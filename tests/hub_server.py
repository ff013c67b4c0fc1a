"""A stand-in for the Hugging Face Hub on 127.0.0.1, for download tests (the Hub's server is not on any registry).

Written from what huggingface_hub's client asks and reads (huggingface_hub 2.x: `HfApi.model_info` and
`file_download.get_hf_file_metadata` / `http_get`):
- `GET /api/models/{repo}/revision/{rev}?blobs=true` -> {"id", "sha", "siblings": [{"rfilename", "size", "blobId",
  "lfs": {"size", "sha256", "pointerSize"}}]};
- `HEAD /{repo}/resolve/{rev}/{file}` -> `X-Repo-Commit`, `ETag` (git blob id; for LFS files `X-Linked-Etag` = the
  sha256 and `X-Linked-Size`), `Content-Length`;
- `GET /{repo}/resolve/{rev}/{file}` -> the bytes, `Range: bytes=N-` answered with 206 and `Content-Range`.
Test hooks: `drop_once` (send part of a file, then close the connection), `hold_at` (send that many bytes, then wait
until `release` is set), `corrupt` (serve other bytes than the checksums say), and `requests` (what was asked).
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

COMMIT = "a" * 40
LFS_MIN = 1024  # files from this size on are "LFS" files, as on the Hub (where the line is 10 MB)


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]]):
        self.repos = repos
        self.requests: list[tuple[str, str, str]] = []  # (method, path, Range header)
        self.drop_once: dict[str, int] = {}  # file -> bytes sent before the connection is cut (first GET only)
        self.hold_at: dict[str, int] = {}  # file -> bytes sent before waiting for `release`
        self.release = threading.Event()
        self.corrupt: set[str] = set()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def siblings(self, repo: str) -> list[dict]:
        found = []
        for name, data in self.repos[repo].items():
            entry = {"rfilename": name, "size": len(data), "blobId": _git_blob_id(data)}
            if len(data) >= LFS_MIN:
                entry["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134}
            found.append(entry)
        return found

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _file(self):
                parts = unquote(urlparse(self.path).path).strip("/").split("/")
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo, name = "/".join(parts[:2]), "/".join(parts[4:])
                    if name in hub.repos.get(repo, {}):
                        return repo, name
                return None, None

            def do_HEAD(self):  # noqa: N802 - http.server's naming
                hub.requests.append(("HEAD", self.path, self.headers.get("Range", "")))
                repo, name = self._file()
                if repo is None:
                    self.send_error(404)
                    return
                data = hub.repos[repo][name]
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{_git_blob_id(data)}"')
                if len(data) >= LFS_MIN:
                    self.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
                    self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()

            def do_GET(self):  # noqa: N802
                hub.requests.append(("GET", self.path, self.headers.get("Range", "")))
                path = urlparse(self.path).path
                if path.startswith("/api/models/"):
                    repo = "/".join(path[len("/api/models/"):].split("/")[:2])
                    if repo not in hub.repos:
                        self.send_error(404)
                        return
                    body = json.dumps({"id": repo, "sha": COMMIT, "siblings": hub.siblings(repo)}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                repo, name = self._file()
                if repo is None:
                    self.send_error(404)
                    return
                self._send_file(name, hub.repos[repo][name])

            def _send_file(self, name: str, data: bytes):
                if name in hub.corrupt:
                    data = bytes(b ^ 0xFF for b in data)
                start = 0
                ranged = self.headers.get("Range", "")
                if ranged.startswith("bytes="):
                    start = int(ranged[len("bytes="):].split("-")[0])
                body = data[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                cut = hub.drop_once.pop(name, None)
                if cut is not None:  # part of the file, then the connection goes: an interrupted transfer
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                hold = hub.hold_at.get(name)
                if hold is not None and start < hold:
                    self.wfile.write(body[: hold - start])
                    self.wfile.flush()
                    hub.release.wait(30)
                    body = body[hold - start:]
                for offset in range(0, len(body), 4096):
                    try:
                        self.wfile.write(body[offset : offset + 4096])
                    except (BrokenPipeError, ConnectionResetError):
                        return

        return Handler


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
