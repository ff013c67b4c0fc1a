"""The ComfyUI contract suite: what the app does with a ComfyUI server, the same tests against a real one
(COMFYUI_URL / COMFYUI_DIR) and, in CI, against the stand-in written from ComfyUI's server code (double.py)."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
from PIL import Image

from studio.backends.comfyui.ui_graph import check_ui_workflow
from studio.core.jobs import JobEvent
from studio.library.export import read_image_parameters
from tests.comfyui.conftest import JOB_TIMEOUT_MS, LONG_STEPS, image_recipe, run


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
    steps = [(p.step, p.total, p.preview is not None) for p in progress]
    assert progress[-1].step == progress[-1].total and "on gpu-box" in progress[-1].message, steps
    assert watch.previews(job), "no preview frame reached the app"
    outputs = watch.outputs(job)
    # each picture's own seed: it remakes that picture alone (a server runs a batch's chains in any order)
    assert sorted(a.recipe.seed for a in outputs) == [21, 22]
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


def _picture(path, colour, size=64):
    Image.new("RGB", (size, size), colour).save(path)
    return str(path)


def test_image_to_image_uploads_the_starting_picture(qtbot, servers, connect, tmp_path):
    server = servers("s1")
    backend = connect("gpu-box", server)
    watch = connect.watch
    start = _picture(tmp_path / "start.png", (200, 30, 30))
    plain = run(qtbot, backend, watch, image_recipe(backend, seed=5))
    job = run(qtbot, backend, watch, image_recipe(backend, seed=5, mode="img2img", init_image=start, strength=0.5))
    assert watch.last(job).event == JobEvent.FINISHED, watch.last(job).error
    output = watch.outputs(job)[0]
    graph = json.loads(Image.open(output.files[0]).text["prompt"])
    loaded = [n["inputs"]["image"] for n in graph.values() if n["class_type"] == "LoadImage"]
    assert len(loaded) == 1 and loaded[0].startswith("latent-studio-")  # named by content, not the user's path
    uploaded = Image.open(__import__("io").BytesIO(_get(server, f"/view?type=input&filename={loaded[0]}")))
    assert uploaded.getpixel((10, 10)) == (200, 30, 30)
    assert output.recipe.param("init_image") == start and output.recipe.param("strength") == 0.5
    assert not np.array_equal(_pixels(output), _pixels(watch.outputs(plain)[0]))


def test_inpainting_uploads_the_mask_as_comfyui_reads_it(qtbot, servers, connect, tmp_path):
    server = servers("s1")
    backend = connect("gpu-box", server)
    watch = connect.watch
    start = _picture(tmp_path / "start.png", (30, 200, 30))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))  # white = repaint: the left half
    mask.save(tmp_path / "mask.png")
    common = dict(seed=9, init_image=start, strength=1.0)
    img2img = run(qtbot, backend, watch, image_recipe(backend, mode="img2img", **common))
    job = run(qtbot, backend, watch, image_recipe(backend, mode="inpaint", mask_image=str(tmp_path / "mask.png"),
                                                  **common))
    assert watch.last(job).event == JobEvent.FINISHED, watch.last(job).error
    output = watch.outputs(job)[0]
    graph = json.loads(Image.open(output.files[0]).text["prompt"])
    assert {"LoadImage", "VAEEncode", "SetLatentNoiseMask"} <= {n["class_type"] for n in graph.values()}
    name = next(n["inputs"]["image"] for n in graph.values() if n["class_type"] == "LoadImage")
    masked = Image.open(__import__("io").BytesIO(_get(server, f"/view?type=input&filename={name}")))
    alpha = masked.getchannel("A")
    assert alpha.getpixel((5, 30)) == 0 and alpha.getpixel((60, 30)) == 255  # repaint = transparent (MASK 1)
    assert masked.convert("RGB").getpixel((60, 30)) == (30, 200, 30)  # the original's pixels kept
    assert not np.array_equal(_pixels(output), _pixels(watch.outputs(img2img)[0]))


def test_a_lora_with_its_weight_changes_the_picture(qtbot, servers, connect):
    server = servers("s1")
    backend = connect("gpu-box", server)
    watch = connect.watch
    loras = backend.pool.server("gpu-box").info.folders["loras"]
    if not loras:
        pytest.skip("the server has no LoRA")
    name = loras[0].rsplit(".", 1)[0]
    plain = run(qtbot, backend, watch, image_recipe(backend, seed=3))
    job = run(qtbot, backend, watch, image_recipe(backend, seed=3, prompt=f"a lighthouse <lora:{name}:0.8>"))
    assert watch.last(job).event == JobEvent.FINISHED, watch.last(job).error
    output = watch.outputs(job)[0]
    graph = json.loads(Image.open(output.files[0]).text["prompt"])
    lora = next(n["inputs"] for n in graph.values() if n["class_type"] == "LoraLoader")
    assert lora["lora_name"] == loras[0] and lora["strength_model"] == 0.8 == lora["strength_clip"]
    assert all("<lora" not in n["inputs"].get("text", "") for n in graph.values())  # CLIP never sees the tag
    assert "<lora:" in output.recipe.prompt  # our recipe keeps it as the user wrote it
    assert not np.array_equal(_pixels(output), _pixels(watch.outputs(plain)[0]))


def test_unknown_lora_and_refused_workflow_fail_with_the_reason(qtbot, servers, connect):
    server = servers("s1")
    backend = connect("gpu-box", server)
    watch = connect.watch
    missing = run(qtbot, backend, watch, image_recipe(backend, prompt="x <lora:no-such-lora:1>"))
    assert watch.last(missing).event == JobEvent.FAILED and "no-such-lora" in watch.last(missing).error
    refused = run(qtbot, backend, watch, image_recipe(backend, guidance=1000.0))  # KSampler's cfg goes to 100
    error = watch.last(refused).error
    assert watch.last(refused).event == JobEvent.FAILED and "refused" in error and "cfg" in error.lower() or "100" in error
    broken = run(qtbot, backend, watch, image_recipe(backend, model="broken.safetensors"))
    assert watch.last(broken).event == JobEvent.FAILED and "CheckpointLoaderSimple" in watch.last(broken).error


def _queue(server) -> tuple[list, list]:
    queue = _get(server, "/queue")
    return [item[1] for item in queue["queue_running"]], [item[1] for item in queue["queue_pending"]]


def test_cancel_while_running_interrupts_and_the_next_job_runs(qtbot, servers, connect):
    server = servers("s1")
    backend = connect("gpu-box", server)
    watch = connect.watch
    job = run(qtbot, backend, watch, image_recipe(backend, steps=LONG_STEPS), wait=False)
    qtbot.waitUntil(lambda: any(m.event == JobEvent.PROGRESS and m.progress.step >= 1
                                for m in watch.messages.get(job.id, [])), timeout=300_000)
    backend.cancel(job.id)
    qtbot.waitUntil(lambda: watch.ended(job), timeout=120_000)
    assert watch.last(job).event == JobEvent.CANCELLED
    steps = [m.progress.step for m in watch.messages[job.id] if m.event == JobEvent.PROGRESS]
    assert max(steps) < LONG_STEPS and _queue(server) == ([], [])
    after = run(qtbot, backend, watch, image_recipe(backend))
    assert watch.last(after).event == JobEvent.FINISHED


def test_cancel_while_queued_on_the_server_deletes_it_there(qtbot, servers, connect):
    server = servers("s1")
    backend = connect("gpu-box", server)
    watch = connect.watch
    first = run(qtbot, backend, watch, image_recipe(backend, steps=LONG_STEPS // 2), wait=False)
    second = run(qtbot, backend, watch, image_recipe(backend, seed=99), wait=False)
    qtbot.waitUntil(lambda: JobEvent.STARTED in watch.events(first) and len(_queue(server)[1]) == 1, timeout=300_000)
    pending = _queue(server)[1][0]
    backend.cancel(second.id)
    qtbot.waitUntil(lambda: watch.ended(second), timeout=60_000)
    assert watch.last(second).event == JobEvent.CANCELLED and JobEvent.STARTED not in watch.events(second)
    assert pending not in _queue(server)[1]
    qtbot.waitUntil(lambda: watch.ended(first), timeout=600_000)
    assert watch.last(first).event == JobEvent.FINISHED
    assert pending not in _get(server, "/history")  # it never ran


def test_a_server_killed_mid_job_fails_that_job_and_the_queue_goes_on_elsewhere(qtbot, servers, connect, pool):
    one, two = servers("s1"), servers("s2")
    first, second = connect("box-1", one), connect("box-2", two)
    watch = connect.watch
    doomed = run(qtbot, first, watch, image_recipe(first, steps=LONG_STEPS), wait=False)
    busy = run(qtbot, second, watch, image_recipe(second, steps=LONG_STEPS // 4), wait=False)
    qtbot.waitUntil(lambda: JobEvent.STARTED in watch.events(doomed) and JobEvent.STARTED in watch.events(busy),
                    timeout=300_000)
    waiting = run(qtbot, first, watch, image_recipe(first, seed=77), wait=False)  # a tie: queued on box-1, its pick
    qtbot.waitUntil(lambda: len(_queue(one)[1]) == 1, timeout=60_000)
    one.kill()
    qtbot.waitUntil(lambda: watch.ended(doomed), timeout=60_000)
    error = watch.last(doomed).error
    assert watch.last(doomed).event == JobEvent.FAILED and "box-1 went away" in error
    qtbot.waitUntil(lambda: watch.ended(waiting) and watch.ended(busy), timeout=600_000)
    assert watch.last(waiting).event == JobEvent.FINISHED  # never started on box-1: box-2 ran it
    assert watch.last(waiting).result.info["server"] == "box-2"
    assert watch.outputs(waiting)[0].recipe.param("backend") == "box-2"
    one.start()  # the same address again: the backend reconnects by itself
    qtbot.waitUntil(lambda: pool.server("box-1").up, timeout=300_000)
    back = run(qtbot, first, watch, image_recipe(first, seed=78))
    assert watch.last(back).event == JobEvent.FINISHED and watch.last(back).result.info["server"] == "box-1"


def test_two_servers_share_one_queue_and_the_jobs_dock_says_which_ran_what(qtbot, servers, connect):
    from studio.state import State
    from studio.widgets.progress import JobQueueView

    one, two = servers("s1"), servers("s2")
    first, _second = connect("box-1", one), connect("box-2", two)
    watch = connect.watch
    state = State()
    first.message.connect(state.handle_message)
    _second.message.connect(state.handle_message)
    dock = JobQueueView(state)
    qtbot.addWidget(dock)
    jobs = [run(qtbot, first, watch, image_recipe(first, seed=40 + i), wait=False) for i in range(4)]
    qtbot.waitUntil(lambda: all(watch.ended(job) for job in jobs), timeout=900_000)
    assert [watch.last(job).event for job in jobs] == [JobEvent.FINISHED] * 4
    ran_on = [watch.last(job).result.info["server"] for job in jobs]
    assert set(ran_on) == {"box-1", "box-2"}  # all submitted to box-1's backend, spread over both
    shown = [dock.rows[job.id].detail.text() for job in jobs]
    assert all(f"on {server}" in text for server, text in zip(ran_on, shown, strict=True)), shown


def test_a_remote_output_restores_and_runs_again_there_or_on_this_computer(qtbot, servers, connect):
    from studio.backends.router import Backends
    from studio.library.export import recipe_from_file
    from studio.state import State
    from tests.test_backends_router import ScriptedBackend

    server = servers("s1")
    backend = connect("gpu-box", server)
    watch = connect.watch
    made = run(qtbot, backend, watch, image_recipe(backend, seed=1234))
    picture = watch.outputs(made)[0].files[0]
    local = ScriptedBackend("This computer")
    backends = Backends(local)
    backends.add("gpu-box", backend, start=False)
    state = State()
    errors = []
    state.error_raised.connect(lambda medium, text: errors.append(text))
    backends.message.connect(state.handle_message)
    state.submit_requested.connect(backends.submit)
    state.set_backend_models(backends.available_models())
    state.restore(recipe_from_file(picture))
    assert errors == [] and state.image.get("backend") == "gpu-box" and state.image.get("seed") == 1234
    again = state.generate("image")
    qtbot.waitUntil(lambda: watch.ended(again), timeout=JOB_TIMEOUT_MS)
    assert watch.last(again).event == JobEvent.FINISHED and watch.last(again).result.info["server"] == "gpu-box"
    assert np.array_equal(_pixels(watch.outputs(again)[0]), _pixels(watch.outputs(made)[0]))  # same recipe, same picture
    state.image.set("backend", "")  # the model picker's "on this computer"
    here = state.generate("image")
    assert local.submitted == [here] and here.recipe.seed == 1234


def test_text_to_audio_is_saved_as_flac_with_the_recipe(qtbot, servers, connect):
    from studio.core.jobs import Job
    from studio.core.recipe import Recipe
    from studio.library.export import read_audio_recipe

    server = servers("s1")
    backend = connect("gpu-box", server)
    watch = connect.watch
    audio = [m.ref for m in backend.available_models() if m.medium == "music"]
    if not audio:
        pytest.skip("the server has no ACE-Step or Stable Audio checkpoint")
    recipe = Recipe("music", prompt="warm synth pads, 90 bpm", model=audio[0], seed=8,
                    params={"duration": 2.0, "steps": 3, "guidance": 5.0, "backend": "gpu-box"})
    job = backend.submit(Job("music.generate", recipe))
    qtbot.waitUntil(lambda: watch.ended(job), timeout=JOB_TIMEOUT_MS)
    assert watch.last(job).event == JobEvent.FINISHED, watch.last(job).error
    output = watch.outputs(job)[0]
    assert output.files[0].suffix == ".flac"
    assert read_audio_recipe(output.files[0]).seed == 8
    import soundfile

    samples, rate = soundfile.read(output.files[0])
    assert rate == 44100 and abs(len(samples) / rate - 2.0) < 0.1
