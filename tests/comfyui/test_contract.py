"""The ComfyUI contract suite: what the app does with a ComfyUI server, the same tests against a real one
(COMFYUI_URL / COMFYUI_DIR) and, in CI, against the stand-in written from ComfyUI's server code (double.py)."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
from PIL import Image

from studio.backends.comfyui.ui_graph import check_ui_workflow
from studio.core.jobs import JobEvent
from studio.library.export import read_image_parameters
from tests.comfyui.conftest import image_recipe, run


def _get(server, path: str):
    with urllib.request.urlopen(server.url + path, timeout=30) as reply:
        return json.loads(reply.read()) if reply.headers.get_content_type() == "application/json" else reply.read()


def _post(server, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(server.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _pixels(artifact) -> np.ndarray:
    return np.asarray(Image.open(artifact.files[0]).convert("RGB"), dtype=np.int16)


def test_text_to_image_saves_each_picture_with_our_recipe_and_a_comfyui_graph(qtbot, servers, connect):
    server = servers("s1")
    backend = connect("gpu-box", server)
    watch = connect.watch
    job = run(qtbot, backend, watch, image_recipe(backend, seed=21, batch_count=2))
    assert watch.last(job).event == JobEvent.FINISHED, watch.last(job).error
    events = watch.events(job)
    assert events[0] == JobEvent.QUEUED and events[1] == JobEvent.STARTED
    progress = [m.progress for m in watch.messages[job.id] if m.event == JobEvent.PROGRESS]
    assert progress[-1].step == progress[-1].total and "on gpu-box" in progress[-1].message
    assert watch.previews(job), "no preview frame reached the app"
    outputs = watch.outputs(job)
    assert [a.recipe.seed for a in outputs] == [21, 22]  # each picture's own seed: it remakes that picture alone
    assert watch.last(job).result.info["server"] == "gpu-box"
    for artifact in outputs:
        assert artifact.entry_id is not None and artifact.files[0].exists()
        parsed = read_image_parameters(artifact.files[0])
        assert parsed.recipe.param("backend") == "gpu-box" and parsed.recipe.model == artifact.recipe.model
        assert parsed.recipe.param("batch_count") == 1 and parsed.recipe.seed == artifact.recipe.seed
        text = Image.open(artifact.files[0]).text
        graph, workflow = json.loads(text["prompt"]), json.loads(text["workflow"])
        definitions = backend.pool.server("gpu-box").info.nodes
        assert check_ui_workflow(workflow, definitions) == []
        assert {n["type"] for n in workflow["nodes"]} == {n["class_type"] for n in graph.values()}
        status, answer = _post(server, "/prompt", {"prompt": graph})  # the server itself accepts the graph
        assert status == 200, answer
    assert not np.array_equal(_pixels(outputs[0]), _pixels(outputs[1]))
