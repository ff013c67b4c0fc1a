"""A stand-in ComfyUI server for CI, where the real one can't be installed: `python -m tests.comfyui.double --port N`.

Written from ComfyUI's own server code (server.py: the routes, uploads, /view, /queue, /interrupt, the websocket and
its feature-flag handshake; execution.py: validate_prompt's errors, PromptExecutor's messages; main.py: the progress
hook and its preview frames; protocol.py: binary event types). It answers the same routes with the same JSON and
sends the same websocket messages in the same order, including validation refusals, execution errors, interrupts
and binary previews. It is not a generator: its "sampler" paints seeded noise mixed with the starting picture, so
outputs depend on seed, prompt, LoRAs, mask and denoise as a real model's do, but show nothing. The contract suite
(tests/comfyui/) runs the same tests against it and against a real ComfyUI.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import heapq
import io
import json
import os
import struct
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from aiohttp import WSMsgType, web
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.comfyui.double_nodes import NODES, Interrupted, NodeFailure, node_definitions

VERSION = "0.3.64"  # the ComfyUI release whose server code this double follows
PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA = 1, 4


class Double:
    def __init__(self, base: Path, checkpoints: list[str], loras: list[str], step_delay: float, token: str) -> None:
        self.base, self.step_delay, self.token = base, step_delay, token
        self.dirs = {kind: base / kind for kind in ("input", "output", "temp")}
        for folder in self.dirs.values():
            folder.mkdir(parents=True, exist_ok=True)
        self.models = {"checkpoints": checkpoints, "loras": loras, "vae": [], "controlnet": [], "upscale_models": [],
                       "text_encoders": ["t5_base.safetensors"]}
        self.queue: list = []  # heap of (number, prompt_id, prompt, extra_data, outputs), as PromptQueue keeps it
        self.running: dict[int, tuple] = {}
        self.history: dict[str, dict] = {}
        self.number = 0
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.flags: dict[str, dict] = {}
        self.client_id: str | None = None
        self.interrupted = False
        self.wake = asyncio.Event()
        self.requests: list[tuple[str, str, bytes]] = []  # (method, path, body) for the "nothing more" tests

    # --- messages (server.py send_json / send_bytes) -------------------------------------------

    async def send(self, event: str, data: dict, sid: str | None = None) -> None:
        targets = [self.sockets[sid]] if sid in self.sockets else ([] if sid else list(self.sockets.values()))
        for ws in targets:
            try:
                await ws.send_json({"type": event, "data": data})
            except ConnectionError:
                pass

    async def send_preview(self, image: Image.Image, prompt_id: str, node_id: str) -> None:
        sid = self.client_id
        if sid not in self.sockets:
            return
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=95)
        if self.flags.get(sid, {}).get("supports_preview_metadata"):
            meta = json.dumps({"node_id": node_id, "prompt_id": prompt_id, "display_node_id": node_id,
                               "parent_node_id": None, "real_node_id": node_id, "image_type": "image/jpeg",
                               "sent_at": time.time()}).encode()  # sent_at: the stand-in's own, for the benchmark
            body = struct.pack(">I", PREVIEW_IMAGE_WITH_METADATA) + struct.pack(">I", len(meta)) + meta
        else:
            body = struct.pack(">I", PREVIEW_IMAGE) + struct.pack(">I", 1)
        try:
            await self.sockets[sid].send_bytes(body + buffer.getvalue())
        except ConnectionError:
            pass

    async def progress(self, value: int, most: int, prompt_id: str, node_id: str, preview: Image.Image | None) -> None:
        """main.py's progress hook: a client that announced supports_preview_metadata gets progress_state and the
        preview with its metadata first (WebUIProgressHandler.update_handler), then `progress`; any other client gets
        `progress` and then the bare preview frame."""
        sid = self.client_id
        with_metadata = self.flags.get(sid, {}).get("supports_preview_metadata")
        if with_metadata:
            await self.send("progress_state", {"prompt_id": prompt_id, "nodes": {node_id: {
                "value": value, "max": most, "state": "running", "node_id": node_id, "prompt_id": prompt_id,
                "display_node_id": node_id, "parent_node_id": None, "real_node_id": node_id}}}, sid)
            if preview is not None:
                await self.send_preview(preview, prompt_id, node_id)
        await self.send("progress", {"value": value, "max": most, "prompt_id": prompt_id, "node": node_id}, sid)
        if preview is not None and not with_metadata:
            await self.send_preview(preview, prompt_id, node_id)

    def queue_info(self) -> dict:
        return {"exec_info": {"queue_remaining": len(self.queue) + len(self.running)}}

    async def queue_updated(self) -> None:
        await self.send("status", {"status": self.queue_info()})

    # --- routes ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=100 * 1024 * 1024, middlewares=[self.guard])
        routes = [
            web.get("/ws", self.websocket), web.get("/system_stats", self.system_stats),
            web.get("/object_info", self.object_info), web.get("/object_info/{node_class}", self.object_info),
            web.get("/models/{folder}", self.model_list), web.get("/prompt", self.get_prompt),
            web.post("/prompt", self.post_prompt), web.get("/queue", self.get_queue), web.post("/queue", self.post_queue),
            web.post("/interrupt", self.interrupt), web.get("/history", self.get_history),
            web.get("/history/{prompt_id}", self.get_history), web.post("/upload/image", self.upload_image),
            web.post("/upload/mask", self.upload_mask), web.get("/view", self.view),
            web.get("/features", self.features),
        ]
        app.add_routes(routes + [web.route(r.method, "/api" + r.path, r.handler) for r in routes])
        return app

    @web.middleware
    async def guard(self, request, handler):
        """A bearer token, as a reverse proxy in front of ComfyUI asks for it (ComfyUI itself has none)."""
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401, text="401: Unauthorized")
        body = await request.read() if request.can_read_body and request.content_type == "application/json" else b""
        self.requests.append((request.method, request.path_qs, body))  # multipart is read by the handler itself
        return await handler(request)

    async def websocket(self, request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.rel_url.query.get("clientId", "") or uuid.uuid4().hex
        self.sockets[sid], self.flags[sid] = ws, {}
        try:
            await self.send("status", {"status": self.queue_info(), "sid": sid}, sid)
            first = True
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    data = json.loads(message.data)
                    if first and data.get("type") == "feature_flags":
                        self.flags[sid] = data.get("data", {})
                        await self.send("feature_flags", {"supports_preview_metadata": True,
                                                          "max_upload_size": 100 * 1024 * 1024}, sid)
                    first = False
        finally:
            if self.sockets.get(sid) is ws:
                self.sockets.pop(sid, None)
        return ws

    async def system_stats(self, request):
        return web.json_response({
            "system": {"os": os.name, "ram_total": 8 * 2**30, "ram_free": 6 * 2**30, "comfyui_version": VERSION,
                       "python_version": sys.version, "pytorch_version": "none (contract double)",
                       "embedded_python": False, "argv": ["main.py"]},
            "devices": [{"name": "cpu", "type": "cpu", "index": None, "vram_total": 8 * 2**30,
                         "vram_free": 6 * 2**30, "torch_vram_total": 0, "torch_vram_free": 0}]})

    def definitions(self) -> dict:
        inputs = sorted(p.name for p in self.dirs["input"].iterdir() if p.is_file())
        return node_definitions(self.models, inputs)

    async def object_info(self, request):
        everything = self.definitions()
        wanted = request.match_info.get("node_class")
        if wanted is not None:
            return web.json_response({wanted: everything[wanted]} if wanted in everything else {})
        return web.json_response(everything)

    async def model_list(self, request):
        folder = request.match_info["folder"]
        return web.json_response(self.models[folder]) if folder in self.models else web.Response(status=404)

    async def features(self, request):
        return web.json_response({"supports_preview_metadata": True})

    async def get_prompt(self, request):
        return web.json_response(self.queue_info())

    async def post_prompt(self, request):
        body = await request.json()
        number = float(body["number"]) if "number" in body else self.number
        if "number" not in body:
            number = -number if body.get("front") else number
            self.number += 1
        if "prompt" not in body:
            error = {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided",
                     "extra_info": {}}
            return web.json_response({"error": error, "node_errors": {}}, status=400)
        prompt, prompt_id = body["prompt"], str(body.get("prompt_id", uuid.uuid4()))
        ok, error, outputs, node_errors = validate_prompt(prompt, self.definitions())
        if not ok:
            return web.json_response({"error": error, "node_errors": node_errors}, status=400)
        extra = dict(body.get("extra_data", {}))
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        heapq.heappush(self.queue, (number, prompt_id, prompt, extra, outputs))
        await self.queue_updated()
        self.wake.set()
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})

    async def get_queue(self, request):
        return web.json_response({"queue_running": [list(x) for x in self.running.values()],
                                  "queue_pending": [list(x) for x in self.queue]})

    async def post_queue(self, request):
        body = await request.json()
        if body.get("clear"):
            self.queue = []
        for prompt_id in body.get("delete", []):
            self.queue = [item for item in self.queue if item[1] != prompt_id]
            heapq.heapify(self.queue)
        await self.queue_updated()
        return web.Response(status=200)

    async def interrupt(self, request):
        try:
            body = await request.json()
        except ValueError:
            body = {}
        target = body.get("prompt_id")
        if not target or any(item[1] == target for item in self.running.values()):
            self.interrupted = True
        return web.Response(status=200)

    async def get_history(self, request):
        prompt_id = request.match_info.get("prompt_id")
        if prompt_id is None:
            return web.json_response(self.history)
        return web.json_response({prompt_id: self.history[prompt_id]} if prompt_id in self.history else {})

    def _upload_target(self, post) -> tuple[Path, str, str] | None:
        image = post.get("image")
        if image is None or not getattr(image, "filename", None):
            return None
        kind = post.get("type") or "input"
        folder = self.dirs.get(kind, self.dirs["input"]) / os.path.normpath(post.get("subfolder", ""))
        path = (folder / image.filename).resolve()
        if os.path.commonpath((self.dirs[kind].resolve(), path)) != str(self.dirs[kind].resolve()):
            return None
        return path, kind, str(post.get("subfolder", ""))

    async def _upload(self, request, save) -> web.Response:
        post = await request.post()
        target = self._upload_target(post)
        if target is None:
            return web.Response(status=400)
        path, kind, subfolder = target
        data = post["image"].file.read()
        path.parent.mkdir(parents=True, exist_ok=True)
        if post.get("overwrite") not in ("true", "1"):
            counter = 1
            while path.exists() and hashlib.sha256(path.read_bytes()).digest() != hashlib.sha256(data).digest():
                path = path.with_name(f"{Path(post['image'].filename).stem} ({counter}){path.suffix}")
                counter += 1
        failure = save(post, data, path)
        if failure is not None:
            return failure
        return web.json_response({"name": path.name, "subfolder": subfolder, "type": kind})

    async def upload_image(self, request):
        return await self._upload(request, lambda post, data, path: path.write_bytes(data) and None)

    async def upload_mask(self, request):
        def save(post, data, path):  # server.py: the original's pixels with the uploaded mask's alpha
            reference = json.loads(post.get("original_ref"))
            name = reference.get("filename", "")
            if not name or name[0] == "/" or ".." in name:
                return web.Response(status=400)
            original = self.dirs.get(reference.get("type", "output"), self.dirs["output"]) / reference.get(
                "subfolder", "") / name
            if original.is_file():
                with Image.open(original) as picture:
                    merged = picture.convert("RGBA")
                merged.putalpha(Image.open(io.BytesIO(data)).convert("RGBA").getchannel("A"))
                merged.save(path, compress_level=4)
            return None

        return await self._upload(request, save)

    async def view(self, request):
        query = request.rel_url.query
        name = query.get("filename", "")
        if not name or name[0] == "/" or ".." in name:
            return web.Response(status=400)
        folder = self.dirs.get(query.get("type", "output"))
        path = folder / query.get("subfolder", "") / os.path.basename(name) if folder else None
        if path is None or not path.is_file():
            return web.Response(status=404)
        return web.FileResponse(path, headers={"Content-Disposition": f'filename="{path.name}"'})

    # --- execution (main.py prompt_worker + execution.py PromptExecutor) -------------------------

    async def worker(self) -> None:
        counter = 0
        while True:
            while not self.queue:
                self.wake.clear()
                await self.wake.wait()
            item = heapq.heappop(self.queue)
            self.running[counter] = item
            await self.queue_updated()
            status, outputs = await self.execute(item)
            self.running.pop(counter)
            counter += 1
            self.history[item[1]] = {"prompt": list(item), "outputs": outputs, "status": status}
            await self.queue_updated()
            if self.client_id is not None:
                await self.send("executing", {"node": None, "prompt_id": item[1]}, self.client_id)

    async def execute(self, item) -> tuple[dict, dict]:
        _number, prompt_id, prompt, extra, outputs = item
        self.interrupted = False
        self.client_id = extra.get("client_id")
        sid = self.client_id
        stamp = lambda: int(time.time() * 1000)  # noqa: E731
        await self.send("execution_start", {"prompt_id": prompt_id, "timestamp": stamp()}, sid)
        await self.send("execution_cached", {"nodes": [], "prompt_id": prompt_id, "timestamp": stamp()}, sid)
        results: dict[str, tuple] = {}
        ui: dict[str, dict] = {}
        executed: list[str] = []
        for node_id in execution_order(prompt, outputs):
            node = prompt[node_id]
            await self.send("executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id}, sid)
            arguments = {k: (results[v[0]][v[1]] if is_link(v) else v) for k, v in node["inputs"].items()}
            try:
                results[node_id], shown = await NODES[node["class_type"]](self, arguments, prompt_id, node_id,
                                                                         prompt, extra)
            except Interrupted:
                await self.send("execution_interrupted", {"prompt_id": prompt_id, "node_id": node_id,
                                                          "node_type": node["class_type"], "executed": executed,
                                                          "timestamp": stamp()}, sid)
                return {"status_str": "error", "completed": False, "messages": []}, ui
            except NodeFailure as failure:
                await self.send("execution_error", {
                    "prompt_id": prompt_id, "node_id": node_id, "node_type": node["class_type"], "executed": executed,
                    "exception_message": str(failure), "exception_type": "RuntimeError", "traceback": [],
                    "current_inputs": {}, "current_outputs": [], "timestamp": stamp()}, sid)
                return {"status_str": "error", "completed": False, "messages": []}, ui
            executed.append(node_id)
            if shown:
                ui[node_id] = shown
                await self.send("executed", {"node": node_id, "display_node": node_id, "output": shown,
                                             "prompt_id": prompt_id}, sid)
        await self.send("execution_success", {"prompt_id": prompt_id, "timestamp": stamp()}, sid)
        return {"status_str": "success", "completed": True, "messages": []}, ui

    def save_png(self, image: Image.Image, prefix: str, prompt: dict, extra: dict) -> dict:
        """SaveImage: `prompt` and each extra_pnginfo entry as text chunks, names PREFIX_00001_.png."""
        info = PngInfo()
        info.add_text("prompt", json.dumps(prompt))
        for key, value in (extra.get("extra_pnginfo") or {}).items():
            info.add_text(key, json.dumps(value))
        path = self.next_name(prefix, "png")
        image.save(path, pnginfo=info, compress_level=4)
        return {"filename": path.name, "subfolder": str(path.parent.relative_to(self.dirs["output"])).strip("."),
                "type": "output"}

    def next_name(self, prefix: str, suffix: str) -> Path:
        folder = (self.dirs["output"] / prefix).parent
        folder.mkdir(parents=True, exist_ok=True)
        stem = Path(prefix).name
        counter = 1 + len(list(folder.glob(f"{stem}_*_.{suffix}")))
        return folder / f"{stem}_{counter:05}_.{suffix}"


def is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def execution_order(prompt: dict, outputs: list[str]) -> list[str]:
    order: list[str] = []

    def visit(node_id: str) -> None:
        if node_id in order:
            return
        for value in prompt[node_id]["inputs"].values():
            if is_link(value):
                visit(value[0])
        order.append(node_id)

    # ComfyUI's order among output nodes is a set's (execution.py: list(good_outputs)): not the graph's. The stand-in
    # runs the last first, so clients that assume the graph's order fail here too.
    for output in sorted(outputs, key=lambda n: int(n) if n.isdigit() else 0, reverse=True):
        visit(output)
    return order


def _reason(kind: str, message: str, details: str, name: str) -> dict:
    return {"type": kind, "message": message, "details": details, "extra_info": {"input_name": name}}


def validate_node(prompt: dict, node_id: str, definitions: dict) -> list[dict]:
    """execution.py validate_inputs, for what our workflows use: missing inputs, bad links, list and range checks."""
    node = prompt[node_id]
    spec = definitions[node["class_type"]]["input"]
    reasons = []
    for name, (kind, *options) in spec.get("required", {}).items():
        options = options[0] if options else {}
        if name not in node["inputs"]:
            reasons.append(_reason("required_input_missing", "Required input is missing", name, name))
            continue
        value = node["inputs"][name]
        if is_link(value):
            source = prompt.get(value[0])
            outputs = definitions.get(source["class_type"], {}).get("output", []) if source else []
            if source is None or value[1] >= len(outputs) or (outputs[value[1]] != kind and not isinstance(kind, list)):
                reasons.append(_reason("return_type_mismatch", "Return type mismatch between linked nodes", name, name))
        elif isinstance(kind, list) and value not in kind:
            reasons.append(_reason("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {kind}", name))
        elif kind in ("INT", "FLOAT"):
            if "min" in options and value < options["min"]:
                reasons.append(_reason("value_smaller_than_min", f"Value {value} smaller than min of {options['min']}",
                                       f"{name}", name))
            if "max" in options and value > options["max"]:
                reasons.append(_reason("value_bigger_than_max", f"Value {value} bigger than max of {options['max']}",
                                       f"{name}", name))
    return reasons


def validate_prompt(prompt, definitions: dict) -> tuple[bool, dict | None, list[str], dict]:
    if not isinstance(prompt, dict):
        return False, {"type": "invalid_prompt", "message": "Invalid prompt", "details": "", "extra_info": {}}, [], {}
    for node_id, node in prompt.items():
        if "class_type" not in node:
            return False, {"type": "invalid_prompt", "message": "Cannot execute because a node is missing the "
                           "class_type property.", "details": f"Node ID '#{node_id}'", "extra_info": {}}, [], {}
        if node["class_type"] not in definitions:
            return False, {"type": "invalid_prompt", "message": f"Cannot execute because node {node['class_type']} "
                           "does not exist.", "details": f"Node ID '#{node_id}'", "extra_info": {}}, [], {}
    outputs = [n for n, node in prompt.items() if definitions[node["class_type"]].get("output_node")]
    if not outputs:
        return False, {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "",
                       "extra_info": {}}, [], {}
    node_errors = {}
    for node_id in prompt:
        reasons = validate_node(prompt, node_id, definitions)
        if reasons:
            node_errors[node_id] = {"errors": reasons, "dependent_outputs": outputs,
                                    "class_type": prompt[node_id]["class_type"]}
    if node_errors:
        details = "\n".join(f"{r['message']}: {r['details']}" for e in node_errors.values() for r in e["errors"])
        return False, {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                       "details": details, "extra_info": {}}, [], node_errors
    return True, None, outputs, {}


async def serve(port: int, base: Path, checkpoints: list[str], loras: list[str], step_delay: float, token: str,
                tls: tuple[str, str] | None = None) -> None:
    double = Double(base, checkpoints, loras, step_delay, token)
    runner = web.AppRunner(double.app(), access_log=None)
    await runner.setup()
    context = None
    if tls:  # server.py's --tls-certfile/--tls-keyfile
        import ssl

        context = ssl.SSLContext(protocol=ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile=tls[0], keyfile=tls[1])
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=context)
    await site.start()
    print(f"listening on {site._server.sockets[0].getsockname()[1]}", flush=True)  # noqa: SLF001
    await double.worker()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--base-directory", type=Path, required=True)
    parser.add_argument("--checkpoints", default="sd15-double.safetensors,ace_step_v1_3.5b.safetensors,broken.safetensors")
    parser.add_argument("--loras", default="detail-double.safetensors")
    parser.add_argument("--step-delay", type=float, default=0.05, help="seconds per sampling step")
    parser.add_argument("--token", default="", help="answer 401 unless this bearer token is sent")
    parser.add_argument("--tls-certfile")
    parser.add_argument("--tls-keyfile")
    args = parser.parse_args()
    np.seterr(all="ignore")
    tls = (args.tls_certfile, args.tls_keyfile) if args.tls_certfile else None
    asyncio.run(serve(args.port, args.base_directory, [c for c in args.checkpoints.split(",") if c],
                      [lora for lora in args.loras.split(",") if lora], args.step_delay, args.token, tls))


if __name__ == "__main__":
    main()
