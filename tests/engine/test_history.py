"""History: rows point at complete files, search and favourites work, a SIGKILL loses nothing committed."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from PIL import Image

from studio.core.files import PARTIAL_PREFIX
from studio.core.jobs import Artifact
from studio.core.recipe import Recipe
from studio.library.export import read_image_parameters, read_text_recipe
from studio.library.history import History


def make_history(tmp_path):
    return History(tmp_path / "history.sqlite3", tmp_path / "outputs")


def test_save_image_writes_png_with_both_chunks_and_a_row(tmp_path):
    history = make_history(tmp_path)
    recipe = Recipe("image", prompt="red heart", seed=5, params={"steps": 20, "guidance": 5, "width": 32, "height": 32})
    entry = history.save_artifact(Artifact("image", recipe, Image.new("RGB", (32, 32), "red")))
    assert entry.files[0].exists() and entry.thumbnail.startswith(b"\x89PNG")
    parsed = read_image_parameters(entry.files[0])
    assert parsed.recipe == recipe  # the `studio` chunk gives the full recipe back
    with Image.open(entry.files[0]) as image:
        assert "Steps: 20" in image.text["parameters"]


def test_text_entry_round_trips_its_recipe(tmp_path):
    history = make_history(tmp_path)
    recipe = Recipe("text", prompt="Once upon", seed=1, params={"temperature": 0.7})
    entry = history.save_artifact(Artifact("text", recipe, " a time there was a fox."))
    assert read_text_recipe(entry.files[0]) == recipe
    assert entry.files[0].read_text().endswith("Once upon a time there was a fox.\n")
    assert entry.summary.startswith("a time")


def test_search_filter_and_favourites(tmp_path):
    history = make_history(tmp_path)
    for prompt, modality in [("red heart", "image"), ("blue whale", "image"), ("a red story", "text")]:
        payload = Image.new("RGB", (8, 8)) if modality == "image" else "text"
        history.save_artifact(Artifact(modality, Recipe(modality, prompt=prompt), payload))
    assert [e.prompt for e in history.search("red")] == ["a red story", "red heart"]
    assert [e.prompt for e in history.search("red", modality="image")] == ["red heart"]
    assert [e.prompt for e in history.search("red", modality=("image", "text"))] == ["a red story", "red heart"]
    assert history.search(modality=("music", "audio")) == []
    whale = history.search("whale")[0]
    history.set_favourite(whale.id, True)
    assert [e.prompt for e in history.search(favourites_only=True)] == ["blue whale"]
    history.set_tags(whale.id, "ocean animals")
    assert history.search("ocean")[0].id == whale.id


def test_search_finds_percent_and_underscore_as_typed(tmp_path):
    history = make_history(tmp_path)
    for prompt in ("100% red", "snake_case cat", "plain dog"):
        history.save_artifact(Artifact("text", Recipe("text", prompt=prompt), "text"))
    assert [e.prompt for e in history.search("_")] == ["snake_case cat"]
    assert [e.prompt for e in history.search("%")] == ["100% red"]


def test_lineage_follows_parents(tmp_path):
    history = make_history(tmp_path)
    a = history.save_artifact(Artifact("image", Recipe("image", prompt="a"), Image.new("RGB", (4, 4))))
    b = history.save_artifact(Artifact("image", Recipe("image", prompt="b"), Image.new("RGB", (4, 4))))
    child = history.save_artifact(Artifact("image", Recipe("image", prompt="c", parents=(a.id, b.id)), Image.new("RGB", (4, 4))))
    assert [e.id for e in history.lineage(child.id)] == [child.id, a.id, b.id]


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from PIL import Image
    from studio.library.history import History
    from studio.core.jobs import Artifact
    from studio.core.recipe import Recipe

    history = History(sys.argv[1], sys.argv[2])
    rng = np.random.default_rng(0)
    for index in range(10_000):
        # Noise does not compress: each PNG is ~770 KB, so a kill lands mid-write often.
        pixels = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
        artifact = Artifact("image", Recipe("image", prompt=f"noise {index}", seed=index), Image.fromarray(pixels))
        history.save_artifact(artifact)
        print(index, flush=True)
    """
)


def test_sigkill_mid_run_leaves_database_and_files_consistent(tmp_path):
    db, outputs = tmp_path / "history.sqlite3", tmp_path / "outputs"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(outputs)], stdout=subprocess.PIPE, env=env, text=True)
    for _ in range(6):  # let a few rows commit, then kill it while it writes the next file
        assert process.stdout.readline(), "writer died early"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    history = History(db, outputs)
    entries = history.search(limit=10_000)
    assert len(entries) >= 6
    for entry in entries:
        with Image.open(entry.files[0]) as image:
            image.load()  # raises on a truncated PNG
            assert image.size == (512, 512)
    visible = [p for p in outputs.rglob("*") if p.is_file() and not p.name.startswith(PARTIAL_PREFIX)]
    for path in visible:
        with Image.open(path) as image:
            image.load()
    history.sweep_partials()
    assert not list(outputs.rglob(f"{PARTIAL_PREFIX}*"))


def test_jpeg_and_webp_carry_parameters_that_read_back(tmp_path):
    from studio.library.export import write_jpeg_or_webp

    recipe = Recipe("image", prompt="a red heart", negative_prompt="blurry", model="builtin:emoji-ldm", seed=42,
                    params={"steps": 20, "guidance": 5.0, "scheduler": "euler_a", "width": 64, "height": 64})
    for suffix in (".jpg", ".webp"):
        path = write_jpeg_or_webp(Image.new("RGB", (64, 64), "red"), tmp_path / f"out{suffix}", recipe)
        parsed = read_image_parameters(path).recipe
        assert (parsed.prompt, parsed.negative_prompt, parsed.seed, parsed.param("steps")) == ("a red heart", "blurry", 42, 20)


def test_the_sweep_removes_only_our_partial_files_where_we_write(tmp_path):
    history = make_history(tmp_path)
    day = history.outputs_dir / "2026-11-23"
    day.mkdir(parents=True)
    ours = [history.outputs_dir / ".partial-a.png", day / ".partial-b.wav"]
    theirs = [history.outputs_dir / "notes.tmp", day / "draft.tmp", history.outputs_dir / "project" / "build" / ".partial-x"]
    for path in ours + theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert history.sweep_partials() == 2
    assert not any(p.exists() for p in ours) and all(p.exists() for p in theirs)


def test_a_damaged_database_is_moved_aside_and_a_new_history_starts(tmp_path):
    from studio.library.history import open_history

    db = tmp_path / "history.sqlite3"
    db.write_bytes(bytes(range(256)) * 20)  # not a database
    history, note = open_history(db, tmp_path / "outputs")
    assert "damaged" in note and history.search() == []
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("history.sqlite3.damaged-")]
    assert len(kept) == 1 and kept[0].read_bytes() == bytes(range(256)) * 20  # kept for recovery, not deleted
    history.save_artifact(Artifact("text", Recipe("text", prompt="after"), "x"))
    assert [e.prompt for e in open_history(db, tmp_path / "outputs")[0].search()] == ["after"]
