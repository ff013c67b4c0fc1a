"""The engine in its own process: messages in order across the boundary, a crash or a Force stop restarts it with
the queue intact, a kill loses no finished output, and the window's process never imports torch."""

from __future__ import annotations

import os
import signal

import pytest

from studio.backends.engine_process import EngineConfig
from studio.backends.local import FORCE_STOP_AFTER_MS, LocalEngine
from studio.core.jobs import Job, JobEvent
from studio.core.recipe import Recipe
from studio.library.history import History
from tests.fakes import PROCESS_FAKES


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "gate"
    os.mkfifo(path)
    return str(path)


def release(fifo: str, steps: int) -> None:
    """Let a gated task run `steps` steps (opening blocks until the task has opened its end: no sleep)."""
    with open(fifo, "wb", buffering=0) as pipe:
        pipe.write(b"x" * steps)


@pytest.fixture
def engine(qtbot, tmp_path):
    config = EngineConfig(history_db=str(tmp_path / "history.sqlite3"), outputs_dir=str(tmp_path / "outputs"),
                          extra_tasks=PROCESS_FAKES, threads=1)
    engine = LocalEngine(config)
    events: list = []
    engine.message.connect(events.append)
    engine.events = events
    engine.start()
    yield engine
    engine.stop()


def wait_for(qtbot, engine, job, *events, timeout=30000):
    """Wait until `job` reaches one of `events` (a terminal one, usually); return that message."""
    wanted = set(events)

    def reached():
        assert any(m.job.id == job.id and m.event in wanted for m in engine.events)

    qtbot.waitUntil(reached, timeout=timeout)
    return next(m for m in engine.events if m.job.id == job.id and m.event in wanted)


def test_messages_and_previews_keep_their_order_across_the_boundary(qtbot, engine, fifo):
    job = engine.submit(Job("fake.piped", args={"steps": 4, "fifo": fifo, "value": 42}, save=False))
    qtbot.waitUntil(lambda: engine.running is not None and engine.running.id == job.id, timeout=30000)
    release(fifo, 4)
    done = wait_for(qtbot, engine, job, JobEvent.FINISHED)
    mine = [m for m in engine.events if m.job.id == job.id]
    assert [m.event for m in mine] == [JobEvent.QUEUED, JobEvent.STARTED] + [JobEvent.PROGRESS] * 4 + [JobEvent.FINISHED]
    assert [m.progress.preview.getpixel((0, 0))[0] for m in mine if m.event == JobEvent.PROGRESS] == [1, 2, 3, 4]
    assert done.result.value == 42


def test_a_segfault_fails_the_job_by_name_restarts_the_engine_and_the_queue_goes_on(qtbot, engine):
    crash = engine.submit(Job("fake.segfault", Recipe("image", prompt="a red fox", seed=1), save=False))
    after = engine.submit(Job("fake.piped", args={"steps": 2}, save=False))
    failed = wait_for(qtbot, engine, crash, JobEvent.FAILED)
    assert "image: a red fox" in failed.error and "signal 11" in failed.error and "restarted" in failed.error
    assert wait_for(qtbot, engine, after, JobEvent.FINISHED, JobEvent.FAILED).event == JobEvent.FINISHED


def test_a_job_that_ignores_cancel_is_force_stopped_and_the_queue_stays(qtbot, engine, fifo):
    stuck = engine.submit(Job("fake.stubborn", args={"fifo": fifo}, save=False))
    queued = engine.submit(Job("fake.piped", args={"steps": 1}, save=False))
    qtbot.waitUntil(lambda: any(m.job.id == stuck.id and m.event == JobEvent.PROGRESS for m in engine.events),
                    timeout=30000)
    old_pid = engine._process.pid
    with qtbot.waitSignal(engine.cancel_unanswered, timeout=FORCE_STOP_AFTER_MS + 1000) as unanswered:
        engine.cancel(stuck.id)
    assert unanswered.args[0].id == stuck.id
    assert [j.id for j in engine.pending()] == [queued.id]  # still queued
    engine.force_stop()
    assert wait_for(qtbot, engine, stuck, JobEvent.CANCELLED).event == JobEvent.CANCELLED
    assert wait_for(qtbot, engine, queued, JobEvent.FINISHED).event == JobEvent.FINISHED
    assert engine._process.pid != old_pid


def test_killing_the_engine_mid_batch_keeps_every_finished_output(qtbot, engine, fifo, tmp_path):
    recipe = Recipe("image", prompt="kill test", seed=10)
    job = engine.submit(Job("fake.batch", recipe, args={"count": 5, "stop_after": 3, "fifo": fifo}))
    qtbot.waitUntil(lambda: sum(m.job.id == job.id and m.event == JobEvent.OUTPUT for m in engine.events) == 3,
                    timeout=30000)
    os.kill(engine._process.pid, signal.SIGKILL)
    failed = wait_for(qtbot, engine, job, JobEvent.FAILED)
    assert "SIGKILL" in failed.error
    history = History(tmp_path / "history.sqlite3", tmp_path / "outputs")
    entries = history.search()
    assert sorted(e.recipe.seed for e in entries) == [10, 11, 12]
    assert all(path.exists() for e in entries for path in e.files)


def test_free_memory_restarts_the_engine_after_the_running_job_and_the_queue_goes_on(qtbot, engine, fifo):
    """Engine › Free memory: a new engine process (its memory really goes back to the system), only once the running
    job has finished; the job queued behind it runs on the new one."""
    qtbot.waitUntil(lambda: engine.ready_at > 0, timeout=30000)
    running = engine.submit(Job("fake.piped", args={"steps": 2, "fifo": fifo, "value": 1}, save=False))
    queued = engine.submit(Job("fake.piped", args={"steps": 0, "value": 2}, save=False))
    qtbot.waitUntil(lambda: engine.running is not None and engine.running.id == running.id, timeout=30000)
    old_pid, old_ready = engine._process.pid, engine.ready_at
    engine.free_memory()
    assert engine._process.pid == old_pid  # not while a job runs
    release(fifo, 2)
    assert wait_for(qtbot, engine, running, JobEvent.FINISHED).result.value == 1
    qtbot.waitUntil(lambda: engine.ready_at > old_ready, timeout=30000)
    assert engine._process.pid != old_pid
    assert wait_for(qtbot, engine, queued, JobEvent.FINISHED).result.value == 2


def test_the_next_job_is_on_its_way_before_the_window_handles_the_end_of_the_last(qtbot, engine):
    """Live: while the window shows one picture, the engine already draws the next (no idle engine during a paint)."""
    first = engine.submit(Job("fake.piped", args={"steps": 0, "value": 1}, save=False))
    second = engine.submit(Job("fake.piped", args={"steps": 0, "value": 2}, save=False))
    running_when_first_ended = []

    def on_message(message) -> None:
        if message.job.id == first.id and message.event == JobEvent.FINISHED:
            running_when_first_ended.append(engine.running)

    engine.message.connect(on_message)
    wait_for(qtbot, engine, second, JobEvent.FINISHED)
    assert running_when_first_ended and running_when_first_ended[0] is not None
    assert running_when_first_ended[0].id == second.id


def test_the_reader_stops_quietly_when_the_window_has_gone(qtbot, tmp_path):
    """At exit the engine's last words can reach a deleted QObject: the reader ends instead of raising."""
    import shiboken6

    config = EngineConfig(history_db=str(tmp_path / "h.sqlite3"), outputs_dir=str(tmp_path / "out"), threads=1)
    engine = LocalEngine(config)
    stale = engine._generation + 1  # a generation the window ignores: nothing restarts
    assert engine._hand_over(stale, 0) is True
    shiboken6.delete(engine)
    assert engine._hand_over(stale, 0) is False
