"""Issue 15, items 1-5: nothing finished is ever lost — kills, races, full disks and file modes.

The full-disk tests use a real, tiny tmpfs (`mount -t tmpfs -o size=…`): they need root and are skipped without it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from studio.core.files import PARTIAL_PREFIX, atomic_write_bytes
from studio.core.jobs import Artifact, Job, JobEvent, UserError
from studio.core.recipe import Recipe
from studio.engine.music.piece import MusicPiece, Note
from studio.library.history import History, HistoryUnavailable, open_history

ROOT = Path(__file__).resolve().parents[2]


def _image(seed: int, prompt: str = "a cat") -> Artifact:
    return Artifact("image", Recipe("image", prompt=prompt, seed=seed, model="builtin:emoji-ldm"),
                    Image.new("RGB", (8, 8), (seed % 256, 0, 0)))


def _music(seconds: int = 8) -> Artifact:
    notes = [Note(60 + (i % 12), i * 0.5, 0.5) for i in range(seconds * 4)]
    piece = MusicPiece(notes, tempo_bpm=120, key="C major", metre="4/4", programs=[0, 0, 0, 0])
    return Artifact("music", Recipe("music", prompt="a tune", seed=3, model="builtin:music"), piece)


def _rows(db: Path) -> list[list[str]]:
    with sqlite3.connect(db) as conn:
        return [json.loads(files) for (files,) in conn.execute("SELECT files FROM outputs")]


# --- 1. a kill in the middle of a batch ------------------------------------------------------------------


def _cli(*argv: str, home: Path) -> subprocess.Popen:
    env = dict(os.environ, LATENT_STUDIO_HOME=str(home), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "studio", *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def test_a_kill_after_the_kth_image_keeps_every_image_finished_before_it(tmp_path):
    """SIGKILL right after the CLI announced its 2nd image of 6 (the announce comes after file + row): both are in
    the history with their files. On the old code nothing was saved before the whole batch returned."""
    home = tmp_path / "home"
    process = _cli("generate", "image", "--prompt", "a cat", "--batch-count", "6", "--steps", "4", "--seed", "40",
                   home=home)
    reported = []
    for line in process.stdout:  # the engine's own signal: one line per output, printed once it is saved
        if line.startswith("seed "):
            reported.append(Path(line.split("saved to ", 1)[1].strip()))
            if len(reported) == 2:
                process.send_signal(signal.SIGKILL)
                break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL and len(reported) == 2
    rows = _rows(home / "history.sqlite3")
    saved = {Path(f) for files in rows for f in files}
    assert set(reported) <= saved and all(path.exists() for path in saved)
    # A kill between a file and its row leaves an orphan; a kill mid-write a temp file: the next start (CLI or GUI)
    # adopts the one and removes the other. Plant both, start the CLI once more (a quick text job).
    day = reported[0].parent
    orphan = day / "orphan-image-99.png"
    orphan.write_bytes(_png_bytes(_image(99)))
    (day / f"{PARTIAL_PREFIX}left.png").write_bytes(b"half")
    env = dict(os.environ, LATENT_STUDIO_HOME=str(home))
    done = subprocess.run([sys.executable, "-m", "studio", "generate", "text", "--prompt", "a", "--max-new-tokens",
                           "2", "--seed", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    files = {Path(f) for files in _rows(home / "history.sqlite3") for f in files}
    assert orphan.resolve() in files
    assert not list(day.glob(f"{PARTIAL_PREFIX}*"))


def _png_bytes(artifact: Artifact) -> bytes:
    from studio.library.export import png_bytes

    return png_bytes(artifact.payload, artifact.recipe)


# --- 2. orphans adopted, partials removed -----------------------------------------------------------------


def test_recover_adopts_our_orphans_removes_partials_and_leaves_other_files(tmp_path):
    history = History(tmp_path / "h.sqlite3", tmp_path / "out")
    kept = history.save_artifact(_image(1))
    day = kept.files[0].parent
    orphan = day / "120000-image-2.png"
    orphan.write_bytes(_png_bytes(_image(2, "lost cat")))
    from studio.library.export import write_music_files

    music_files, _, _ = write_music_files(_music(1), day, "120000-music-3")
    Image.new("RGB", (4, 4)).save(day / "holiday.png")  # the user's own picture: no recipe of ours
    (day / f"{PARTIAL_PREFIX}abc.png").write_bytes(b"half")
    removed_kept = history.save_artifact(_image(4))
    history.delete(removed_kept.id)  # "Remove from history (keep files)": must not come back
    assert history.recover() == (1, 2)
    by_file = {e.files[0]: e for e in history.search()}
    assert by_file[orphan.resolve()].prompt == "lost cat" and by_file[orphan.resolve()].thumbnail
    assert by_file[music_files[0].resolve()].files == [f.resolve() for f in music_files]
    assert not list(day.glob(f"{PARTIAL_PREFIX}*")) and (day / "holiday.png").exists()
    assert history.recover() == (0, 0) and history.count() == 3


def test_a_partial_being_written_by_another_process_is_not_swept(tmp_path):
    from studio.core.files import PartialFile

    history = History(tmp_path / "h.sqlite3", tmp_path / "out")
    with PartialFile(tmp_path / "out" / "a.wav", new=True) as partial:
        partial.temp.write_bytes(b"RIFF")
        script = f"from studio.core.files import sweep_partials; print(sweep_partials({str(tmp_path / 'out')!r}))"
        other = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
        assert other.stdout.strip() == "0" and partial.temp.exists()
    assert (tmp_path / "out" / "a.wav").read_bytes() == b"RIFF" and history.sweep_partials() == 0


def test_a_row_for_a_file_already_adopted_is_not_added_twice(tmp_path):
    history = History(tmp_path / "h.sqlite3", tmp_path / "out")
    path = tmp_path / "out" / "x.png"
    recipe = _image(5).recipe
    first = history.add_row(recipe, [path], None, "", "image")
    assert history.add_row(recipe, [path], None, "", "image") == first and history.count() == 1


# --- 3. two processes, the same name, the same instant ---------------------------------------------------


def _racer(db: str, out: str, who: int, rounds: int, barrier) -> None:
    history = History(Path(db), Path(out))
    for round_ in range(rounds):
        barrier.wait()
        history.save_artifact(_image(round_, prompt=f"process {who}"), stem=f"race-{round_}")


def test_two_processes_saving_the_same_seed_at_once_never_share_a_file(tmp_path):
    rounds = 50
    db, out = tmp_path / "h.sqlite3", tmp_path / "out"
    History(db, out)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    racers = [context.Process(target=_racer, args=(str(db), str(out), who, rounds, barrier)) for who in (1, 2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(120)
    assert [r.exitcode for r in racers] == [0, 0]
    rows = _rows(db)
    files = [f for row in rows for f in row]
    assert len(rows) == 2 * rounds and len(set(files)) == len(files)  # no two rows on one file
    from studio.library.export import read_image_recipe

    history = History(db, out)
    for entry in history.search(limit=1000):  # and each file holds its own row's picture, not the other's
        assert read_image_recipe(entry.files[0]).prompt == entry.prompt


def test_a_new_output_never_replaces_a_file_that_appeared_after_its_name_was_chosen(tmp_path):
    target = tmp_path / "a.png"
    target.write_bytes(b"theirs")  # another process claimed the name between unique_path and our rename
    assert atomic_write_bytes(target, b"ours", new=True) == tmp_path / "a-2.png"
    assert target.read_bytes() == b"theirs" and (tmp_path / "a-2.png").read_bytes() == b"ours"


# --- 4. a full disk ---------------------------------------------------------------------------------------


@contextmanager
def _tmpfs(folder: Path, size: str, options: str = ""):
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("a tiny tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}{options}", "tmpfs", str(folder)],
                          capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path, leave: int) -> None:
    """Fill the disk holding `folder` until only `leave` bytes are free."""
    import shutil

    free = shutil.disk_usage(folder).free
    with open(folder / "filler", "wb") as handle:
        handle.write(bytes(max(0, free - leave)))


def test_music_on_a_full_disk_fails_cleanly_and_leaves_nothing_behind(tmp_path):
    with _tmpfs(tmp_path / "disk", "300k") as disk:
        history = History(tmp_path / "h.sqlite3", disk)
        (disk / "2000-01-01").mkdir()
        history.save_artifact(_music(1))  # fits
        _fill(disk, 40 * 1024)  # room for the .mid, not for the .wav
        before = sorted(p.name for p in disk.rglob("*"))
        with pytest.raises(UserError, match="disk is full"):
            history.save_artifact(_music(8))
        assert sorted(p.name for p in disk.rglob("*")) == before  # no .mid without a row, no .partial-*
        assert history.count() == 1


@pytest.mark.parametrize(("free_kb", "words"), [(8, "Nothing was generated"), (100, "could not be saved")])
def test_the_cli_on_a_full_disk_says_so_in_one_line(tmp_path, free_kb, words):
    """8 KB free: refused before the work; 100 KB: the check passes, the .mid fits, the .wav does not."""
    home = tmp_path / "home"
    home.mkdir()
    with _tmpfs(tmp_path / "disk", "600k") as disk:
        (home / "preferences.json").write_text(json.dumps({"output_folder": str(disk)}))
        _fill(disk, free_kb * 1024)
        env = dict(os.environ, LATENT_STUDIO_HOME=str(home))
        done = subprocess.run([sys.executable, "-m", "studio", "generate", "music", "--prompt", "a tune", "--bars",
                               "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert lines[-1].startswith("error: ") and "disk is full" in lines[-1] and "Traceback" not in done.stderr
        assert words in lines[-1]
        assert not [p for p in disk.rglob("*") if p.is_file() and p.name != "filler"]  # no .mid, no .partial-*


def test_an_unwritable_output_folder_fails_the_job_before_the_task_runs(tmp_path, monkeypatch):
    from studio.backends.runner import JobRunner
    from studio.core import tasks

    monkeypatch.setitem(tasks.TASKS, "test.faults_task", f"{__name__}:_recording_task")
    with _tmpfs(tmp_path / "disk", "100k", ",ro") as disk:  # read-only: even root can't write there
        runner = JobRunner(History(tmp_path / "h.sqlite3", disk))
        messages = []
        runner.run(Job("test.faults_task", _image(1).recipe), messages.append, lambda: False)
    assert messages[-1].event == JobEvent.FAILED and "can't be written" in messages[-1].error
    assert not _RECORDED


_RECORDED: list = []


def _recording_task(job, ctx):
    _RECORDED.append(job)
    raise AssertionError("the task must not run")


def test_a_history_on_a_full_disk_names_the_cause(tmp_path):
    with _tmpfs(tmp_path / "disk", "64k") as disk:
        _fill(disk, 0)
        with pytest.raises(HistoryUnavailable) as caught:
            open_history(disk / "history.sqlite3", tmp_path / "out")
    assert "disk is full" in str(caught.value) and "another Latent Studio" not in str(caught.value)


# --- 5. file modes follow the umask -----------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_output_follows_the_umask(tmp_path, umask):
    from studio.library.export import write_image_files, write_music_files, write_text_files

    old = os.umask(umask)
    try:
        text = Artifact("text", Recipe("text", prompt="once", seed=1), " upon a time")
        files = (write_image_files(_image(1), tmp_path, "i")[0] + write_text_files(text, tmp_path, "t")[0]
                 + write_music_files(_music(1), tmp_path, "m")[0])
    finally:
        os.umask(old)
    assert {p.suffix: stat.S_IMODE(p.stat().st_mode) for p in files} == {
        s: 0o666 & ~umask for s in (".png", ".md", ".mid", ".wav")}
