"""The Latent Explorer's state without its panel: jobs built, results taken, recipes restored, no widget anywhere."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

from studio.core.jobs import Artifact, JobEvent, JobMessage, Result
from studio.core.recipe import Recipe
from studio.state import State
from studio.state.explorer import latent_ends_of, melody_values

ROOT = Path(__file__).resolve().parents[2]


def finish(state, job, result):
    """What the worker would send for a finished job."""
    state.handle_message(JobMessage(JobEvent.QUEUED, job))
    state.handle_message(JobMessage(JobEvent.FINISHED, job, result=result))


def recorder(signal):
    seen = []
    signal.connect(lambda *args: seen.append(args if len(args) > 1 else args[0]))
    return seen


def test_the_explorer_module_builds_no_widgets_and_imports_no_torch():
    code = ("import sys; import studio.state.explorer; "
            "print('PySide6.QtWidgets' in sys.modules, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_a_decode_result_is_what_set_a_takes_without_a_panel():
    state = State()
    explorer = state.explorer
    submitted = recorder(state.submit_requested)
    shown = recorder(explorer.shown_changed)
    explorer.point(0.25, -0.5)
    assert explorer.marks["current"] == [(0.25, -0.5)]
    job = explorer.decode()
    assert submitted == [job] and job.kind == "latent.decode" and job.supersede_key == "latent.decode"
    assert job.args["at"] == {"point": [0.25, -0.5]} and job.id in explorer.pending
    explorer.pick("A")  # before the picture arrives: the clicked point itself
    assert explorer.picks["A"] == {"point": [0.25, -0.5]}
    image, z = Image.new("RGB", (8, 8), "red"), np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    finish(state, job, Result(value=(image, z)))
    assert shown == [image] and explorer.shown_image is image and job.id not in explorer.pending
    explorer.pick("B")  # the picture on show: its exact latent
    assert explorer.picks["B"] == {"latent": z.ravel().tolist(), "shape": [2, 2, 2]}
    assert explorer.marks["B"] == [(0.25, -0.5)] and explorer.message == "B set."


def test_a_strip_result_plays_its_frames_and_says_where_it_was_saved():
    state = State()
    explorer = state.explorer
    explorer.make_strip()
    assert "Set A and B first" in explorer.message and not explorer.pending
    explorer.picks = {"A": {"path": "a.png"}, "B": {"path": "b.png"}}
    state.panels["latent"].update({"frames": 5, "mode": "lerp", "fps": 4})
    job = explorer.make_strip()
    assert (job.kind, job.save, job.args["frames"], job.args["mode"]) == ("latent.strip", True, 5, "lerp")
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "green", "blue")]
    played, saved = recorder(explorer.frames_changed), recorder(explorer.saved_ready)
    artifact = Artifact("animation", Recipe("animation", prompt="lerp interpolation, 5 frames"), frames,
                        files=[Path("/out/strip.gif"), Path("/out/strip.mp4")])
    finish(state, job, Result([artifact]))
    assert played == [frames] and explorer.frames == frames and saved == [[artifact]]
    assert explorer.message == "Saved to the gallery: strip.gif"


def test_a_walk_a_map_and_a_breeding_each_land_in_their_place():
    state = State()
    explorer = state.explorer
    explorer.point(1.0, 2.0)
    explorer.add_walk_point()
    explorer.point(3.0, 4.0)
    explorer.add_walk_point()
    assert explorer.marks["walk"] == [(1.0, 2.0), (3.0, 4.0)] and len(explorer.walk_points) == 2
    walk = explorer.play_walk()
    assert walk.args["points"] == [{"point": [1.0, 2.0]}, {"point": [3.0, 4.0]}] and not walk.save
    finish(state, walk, Result(value=["f1", "f2"]))
    assert explorer.frames == ["f1", "f2"] and explorer.message == "Playing a 2-frame walk."

    view = SimpleNamespace(points=np.zeros((3, 2)), thumbnails=[], labels=[], paths=["a", "b", "c"], explained=[0.4, 0.2])
    state.panels["latent"].set("source", "dataset")
    finish(state, explorer.build_map(), Result(value=view))
    assert explorer.map is view and explorer.map_paths == ["a", "b", "c"] and explorer.marks == {}
    assert explorer.message.startswith("3 images mapped; the two axes hold 60%")

    explorer.picks = {"A": {"point": [0, 0]}, "B": {"point": [1, 1]}}
    breed = explorer.breed()
    children = [Artifact("image", Recipe("image", prompt=f"child {i}"), Image.new("RGB", (4, 4))) for i in range(2)]
    finish(state, breed, Result(children))
    assert explorer.family == children

    explorer.clear_walk()
    assert explorer.walk_points == [] and "walk" not in explorer.marks and explorer.frames == []


def test_a_failed_melody_job_is_told_in_the_melodies_tab_and_forgotten():
    state = State()
    explorer = state.explorer
    job = explorer.interpolate_melodies()
    assert explorer.melody_message == "Encoding and decoding melodies…"
    state.handle_message(JobMessage(JobEvent.FAILED, job, error="melody model not found"))
    assert explorer.melody_message == explorer.message == "melody model not found"
    assert job.id not in explorer.pending


def test_restoring_a_strip_sets_the_picks_in_state_with_no_panel_built():
    state = State()
    a, b = {"latent": [0.5] * 8, "shape": [2, 2, 2]}, {"path": "/pictures/cat.png"}
    strip = Recipe("animation", prompt="lerp interpolation, 5 frames", seed=0,
                   params={"operation": "latent.strip", "a": a, "b": b, "frames": 5, "mode": "lerp", "fps": 4})
    asked = recorder(state.restore_requested)
    state.restore(strip)
    assert asked == ["latent"] and state.explorer.picks == {"A": a, "B": b}
    assert "A and B are back" in state.explorer.message
    assert state.panels["latent"].get("frames") == 5 and state.panels["latent"].get("tab") == "images"


def test_restoring_outputs_of_other_panels_is_not_the_explorers():
    state = State()
    assert not state.explorer.restore(Recipe("image", prompt="red heart"))
    told = recorder(state.error_raised)
    assert state.explorer.restore(Recipe("image", prompt="child 1 of 4", params={"operation": "latent.breed"}))
    assert told and "latent map" in told[0][1] and "latent map" in state.explorer.message


def test_recipe_helpers_moved_with_the_explorer():
    melody = Recipe("music", model="builtin:melody-vae",
                    params={"operation": "latent.melody_interpolate", "a": {"seed": 3}, "b": {"path": "/x.mid"},
                            "steps": 5, "method": "lerp"})
    assert melody_values(melody) == {"melody_model": "builtin:melody-vae", "melody_a": "seed", "melody_seed_a": 3,
                                     "melody_b": "/x.mid", "melody_steps": 5, "melody_mode": "lerp"}
    points = [{"latent": [0.0] * 4, "shape": [1, 2, 2]}] * 2
    walk = Recipe("animation", params={"operation": "latent.walk", "points": points, "frames_per_leg": 7})
    assert latent_ends_of(walk) == ({"frames": 7}, {"walk": points})
    on_a_map = Recipe("animation", params={"operation": "latent.strip", "a": {"point": [0, 1]}, "b": {"point": [1, 0]}})
    assert latent_ends_of(on_a_map) is None
