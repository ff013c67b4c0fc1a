"""A cancel the engine doesn't answer turns Cancel into Force stop, in the panel's bar and in the Jobs dock."""

from studio.core.jobs import Job, JobEvent, JobMessage, Result
from studio.core.recipe import Recipe
from studio.state import State
from studio.widgets.progress import GenerateBar, JobQueueView


def test_an_unanswered_cancel_offers_force_stop_and_the_button_asks_for_it(qtbot):
    state = State()
    bar, queue = GenerateBar(state, "image"), JobQueueView(state)
    qtbot.addWidget(bar)
    qtbot.addWidget(queue)
    job = state.submit(Job("image.generate", Recipe("image", prompt="a big decode")))
    for event in (JobEvent.QUEUED, JobEvent.STARTED):
        state.handle_message(JobMessage(event, job))
    assert bar.cancel.text() == "Cancel"
    cancels, force_stops = [], []
    state.cancel_requested.connect(cancels.append)
    state.force_stop_requested.connect(lambda: force_stops.append(True))
    bar.cancel.click()
    assert cancels == [job.id] and not force_stops
    state.offer_force_stop(job)  # what the backend's cancel_unanswered is wired to
    row = queue.rows[job.id]
    assert bar.cancel.text() == "Force stop" and row.cancel.text() == "Force stop"
    bar.cancel.click()
    assert force_stops == [True] and cancels == [job.id]
    state.handle_message(JobMessage(JobEvent.CANCELLED, job, error="Force stopped: the engine was restarted."))
    assert not bar.cancel.isEnabled() and "Force stopped" in bar.status.text()


def test_force_stop_is_not_offered_for_a_job_that_already_ended(qtbot):
    state = State()
    bar = GenerateBar(state, "image")
    qtbot.addWidget(bar)
    job = state.submit(Job("image.generate", Recipe("image", prompt="done")))
    state.handle_message(JobMessage(JobEvent.FINISHED, job, result=Result()))
    state.offer_force_stop(job)
    assert bar.cancel.text() == "Cancel"


def test_a_running_jobs_wrapped_title_is_shown_whole_in_a_narrow_dock(qtbot):
    state = State()
    queue = JobQueueView(state)
    qtbot.addWidget(queue)
    queue.resize(220, 400)
    queue.show()
    job = state.submit(Job("image.generate", Recipe("image", prompt="a big shiny red apple please for my friend")))
    for event in (JobEvent.QUEUED, JobEvent.STARTED):
        state.handle_message(JobMessage(event, job))
    title = queue.rows[job.id].title
    qtbot.waitUntil(lambda: title.width() > 0 and title.isVisible())
    needed = title.heightForWidth(title.width())
    assert needed > title.fontMetrics().lineSpacing()  # it wraps, with Cancel on the row
    assert title.height() >= needed  # and no line of it is cut off
