"""The HTTP side of one ComfyUI server (aiohttp, in the pool's event loop thread): JSON calls, uploads, `/view`.

TLS certificates are verified (aiohttp's default: the system's trust store); a token is sent as a bearer header, the
way reverse proxies in front of ComfyUI expect it. Failures become one line a user can act on (`describe`).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import aiohttp

CALL_TIMEOUT_S = 30.0  # one API call (a big /object_info or an upload on a slow link included)
CONNECT_TIMEOUT_S = 10.0


class ServerError(Exception):
    """The server answered, but not with what we asked for; the text says what it said."""


def describe(exc: BaseException) -> str:
    """One line for a failed call: what a user can check (address, certificate, token, the server itself)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"its TLS certificate could not be verified ({exc.certificate_error})"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return f"the TLS connection failed ({exc})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = getattr(exc.os_error, "strerror", None) or str(exc.os_error)
        return f"cannot connect ({reason})"
    if isinstance(exc, aiohttp.ClientResponseError):
        if exc.status in (401, 403):
            return f"the server refused the token (HTTP {exc.status})"
        return f"HTTP {exc.status} {exc.message}"
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "no answer in time"
    if isinstance(exc, aiohttp.ClientError | ConnectionError):
        return f"the connection was lost ({type(exc).__name__}{': ' + str(exc) if str(exc) else ''})"
    return f"{type(exc).__name__}: {exc}"


def ws_url(base: str, client_id: str) -> str:
    scheme, rest = base.split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws?clientId={client_id}"


def new_session(token: str) -> aiohttp.ClientSession:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S)
    return aiohttp.ClientSession(headers=headers, timeout=timeout)


class Http:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base.rstrip("/")

    async def get_json(self, path: str) -> Any:
        async with self.session.get(self.base + path, timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S)) as reply:
            reply.raise_for_status()
            return await reply.json(content_type=None)

    async def post_json(self, path: str, body: dict) -> tuple[int, Any]:
        """(status, parsed body or text): POST /prompt answers 400 with the validation errors as JSON."""
        async with self.session.post(self.base + path, json=body,
                                     timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S)) as reply:
            if reply.status in (401, 403):
                reply.raise_for_status()
            text = await reply.text()
            try:
                return reply.status, json.loads(text) if text else None
            except ValueError:
                return reply.status, text

    async def upload(self, path: str, name: str, data: bytes, fields: dict[str, str]) -> dict:
        """POST /upload/image or /upload/mask (multipart, as the editor sends it): the server's {name, subfolder, type}."""
        form = aiohttp.FormData()
        form.add_field("image", data, filename=name, content_type="image/png")
        for key, value in fields.items():
            form.add_field(key, value)
        async with self.session.post(self.base + path, data=form,
                                     timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S)) as reply:
            if reply.status != 200:
                raise ServerError(f"the upload of {name} was refused (HTTP {reply.status}: {(await reply.text())[:200]})")
            return await reply.json(content_type=None)

    async def view(self, item: dict) -> bytes:
        """An output file, as `executed` named it ({filename, subfolder, type})."""
        params = {"filename": str(item.get("filename", "")), "subfolder": str(item.get("subfolder", "")),
                  "type": str(item.get("type", "output"))}
        async with self.session.get(self.base + "/view", params=params,
                                    timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S * 4)) as reply:
            if reply.status != 200:
                raise ServerError(f"the output {params['filename']} could not be fetched (HTTP {reply.status})")
            return await reply.read()
