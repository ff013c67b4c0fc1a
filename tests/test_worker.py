"""The worker thread: order, progress, cancel, failure, supersede, saving before reporting."""

import pytest

from studio.backends.thread import ThreadEngine as Worker
from studio.core.jobs import Job, JobEvent
from studio.core.recipe import Recipe
from studio.library.history import History
from tests import fakes


@pytest.fixture
def worker(qtbot, tmp_path):
    fakes.register_fakes()
    fakes.reset_gate()
    history = History(tmp_path / "history.sqlite3", tmp_path / "outputs")
    w = Worker(history=history, device_override="cpu")
    w.messages = []
    w.message.connect(w.messages.append)
    w.start()
    yield w
    fakes.GATE.release(100)
    w.stop()


def events_for(worker, job):
    return [m.event for m in worker.messages if m.job_id == job.id]


def wait_for_event(qtbot, worker, job, event, timeout=10000):
    # The messages list is filled by a queued connection, so this waits on delivered signals.
    qtbot.waitUntil(lambda: event in events_for(worker, job), timeout=timeout)


def test_progress_arrives_in_order_then_finished(qtbot, worker):
    job = Job("fake.steps", args={"steps": 6, "value": 42})
    with qtbot.waitSignal(worker.message, timeout=10000, check_params_cb=lambda m: m.event == JobEvent.FINISHED):
        worker.submit(job)
    steps = [m.progress.step for m in worker.messages if m.event == JobEvent.PROGRESS]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert events_for(worker, job)[:2] == [JobEvent.QUEUED, JobEvent.STARTED]
    finished = worker.messages[-1]
    assert finished.result.value == 42
    assert all(m.progress.elapsed >= 0 for m in worker.messages if m.progress)


def test_cancel_mid_job_stops_within_one_step(qtbot, worker):
    job = Job("fake.gated", args={"steps": 10})
    worker.submit(job)
    fakes.GATE.release(3)
    qtbot.waitUntil(lambda: any(m.progress and m.progress.step == 3 for m in worker.messages), timeout=10000)
    worker.cancel(job.id)
    fakes.GATE.release(1)  # the task reaches its next step and sees the flag
    wait_for_event(qtbot, worker, job, JobEvent.CANCELLED)
    steps = [m.progress.step for m in worker.messages if m.event == JobEvent.PROGRESS]
    assert steps == [1, 2, 3], "no step may run after the one in flight when Cancel was pressed"
    assert JobEvent.FINISHED not in events_for(worker, job)


def test_failed_job_reports_and_next_job_still_runs(qtbot, worker):
    bad = Job("fake.failing")
    user_bad = Job("fake.failing", args={"user_error": True})
    good = Job("fake.steps", args={"steps": 2})
    worker.submit(bad)
    worker.submit(user_bad)
    worker.submit(good)
    wait_for_event(qtbot, worker, good, JobEvent.FINISHED)
    failures = [m for m in worker.messages if m.event == JobEvent.FAILED]
    assert [m.job_id for m in failures] == [bad.id, user_bad.id]
    assert "RuntimeError: boom" in failures[0].error
    assert failures[1].error == "the model file is damaged"  # user errors are shown as written
    assert worker.isRunning()


def test_jobs_run_in_submission_order(qtbot, worker):
    jobs = [Job("fake.steps", args={"steps": 1}) for _ in range(5)]
    for job in jobs:
        worker.submit(job)
    wait_for_event(qtbot, worker, jobs[-1], JobEvent.FINISHED)
    assert fakes.RAN == [job.id for job in jobs]


def test_cancel_a_queued_job_removes_it_unrun(qtbot, worker):
    blocker = Job("fake.gated", args={"steps": 1})
    queued = Job("fake.steps", args={"steps": 1})
    after = Job("fake.steps", args={"steps": 1})
    worker.submit(blocker)
    worker.submit(queued)
    worker.submit(after)
    worker.cancel(queued.id)
    fakes.GATE.release(1)
    wait_for_event(qtbot, worker, after, JobEvent.FINISHED)
    assert queued.id not in fakes.RAN
    assert JobEvent.CANCELLED in events_for(worker, queued)


def test_newer_job_with_same_key_supersedes_queued_one(qtbot, worker):
    blocker = Job("fake.gated", args={"steps": 1})
    worker.submit(blocker)
    drags = [Job("fake.steps", args={"steps": 1, "value": i}, supersede_key="slider") for i in range(20)]
    for job in drags:
        worker.submit(job)
    fakes.GATE.release(1)
    wait_for_event(qtbot, worker, drags[-1], JobEvent.FINISHED)
    ran = [job_id for job_id in fakes.RAN if job_id != blocker.id]
    assert ran == [drags[-1].id], "only the newest queued slider request is worth running"
    superseded = [m.job_id for m in worker.messages if m.event == JobEvent.SUPERSEDED]
    assert superseded == [job.id for job in drags[:-1]]


def test_outputs_are_in_history_before_finished_arrives(qtbot, worker):
    seen_at_finish = []

    def on_message(message):
        if message.event == JobEvent.FINISHED:
            artifact = message.result.artifacts[0]
            entry = worker.history.get(artifact.entry_id)
            seen_at_finish.append((entry is not None, all(p.exists() for p in artifact.files)))

    worker.message.connect(on_message)
    job = Job("fake.image", Recipe("image", prompt="a red square", seed=7))
    worker.submit(job)
    wait_for_event(qtbot, worker, job, JobEvent.FINISHED)
    assert seen_at_finish == [(True, True)]


def test_model_cache_loads_once_and_frees_on_switch():
    from studio.core.model_cache import ModelCache

    freed = []
    cache = ModelCache(on_free=lambda: freed.append(True))
    first = cache.get("image", ("a",), lambda: object())
    assert cache.get("image", ("a",), lambda: object()) is first
    assert cache.loads == 1
    cache.get("image", ("b",), lambda: object())
    assert cache.loads == 2 and freed == [True]
    cache.get("text", ("t",), lambda: object())
    assert cache.key("image") == ("b",), "another slot does not evict the image model"


def test_outputs_finished_before_a_cancel_are_saved_and_reported(qtbot, worker):
    job = Job("fake.half_batch", recipe=Recipe("image", prompt="green square", seed=3))
    with qtbot.waitSignal(worker.message, timeout=10000, check_params_cb=lambda m: m.event == JobEvent.CANCELLED) as got:
        worker.submit(job)
    kept = got.args[0].result.artifacts
    assert len(kept) == 1 and kept[0].files and kept[0].files[0].exists()
    assert [e.prompt for e in worker.history.search()] == ["green square"]


def test_the_rate_counts_from_the_first_step_not_from_the_job_start(qtbot, worker):
    from studio.core.jobs import Progress
    from studio.widgets.progress import progress_text

    job = Job("fake.steps", args={"steps": 6})
    with qtbot.waitSignal(worker.message, timeout=10000, check_params_cb=lambda m: m.event == JobEvent.FINISHED):
        worker.submit(job)
    rates = [m.progress.rate for m in worker.messages if m.event == JobEvent.PROGRESS]
    assert rates[0] == 0.0 and all(rate > 0 for rate in rates[1:])
    # a 100 s model load before step 1 doesn't stretch the ETA: 5 steps left at 2 steps/s is 2 s... 3 s
    text = progress_text(Progress(5, 10, elapsed=100.0, rate=2.0))
    assert "2.0 it/s" in text and "ETA 2 s" in text or "ETA 3 s" in text
