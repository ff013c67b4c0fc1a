"""Live mode: typing a prompt or dragging a slider redraws the picture, and stale requests are superseded, never
queued up: however fast the user types, at most one live request waits behind the one being drawn."""

from __future__ import annotations

from studio.core.jobs import JobEvent
from studio.state.live import LIVE_KEY, LiveImage
from tests import fakes


def _live(live_state) -> LiveImage:
    fakes.register_fakes()
    fakes.reset_gate()
    return LiveImage(live_state, kind="fake.gated")


def test_typing_a_prompt_keeps_at_most_one_live_request_waiting_and_ends_on_the_last_text(qtbot, live_state):
    live = _live(live_state)
    values = live_state.panels["image"]
    values.update({"prompt": "a", "seed": -1})
    live.set_enabled(True)  # draws "a" at once: the engine is busy with it (held at its first step)
    assert live.seed >= 0  # a random seed drawn once, kept while Live is on
    first = next(i.job for i in live_state.jobs.values() if i.job.supersede_key == LIVE_KEY)
    # running its task (the worker's first job also picks the device: torch's import, seconds on a busy machine)
    qtbot.waitUntil(lambda: first.id in fakes.RAN, timeout=60000)

    def waiting() -> int:
        return sum(1 for i in live_state.jobs.values() if i.job.supersede_key == LIVE_KEY and i.status == JobEvent.QUEUED)

    typed, most_waiting = "a", 0
    for letter in " red heart with wings":
        typed += letter
        values.set("prompt", typed)
        last = live.request()
        qtbot.waitUntil(lambda: waiting() <= 1)  # the queue's answer: the older request superseded
        most_waiting = max(most_waiting, waiting())
    assert most_waiting == 1
    fakes.GATE.release(40)  # let the drawing finish: the running request, then the newest waiting one
    qtbot.waitUntil(lambda: live_state.jobs[last.id].status == JobEvent.FINISHED, timeout=30000)
    finished = [i for i in live_state.jobs.values() if i.job.supersede_key == LIVE_KEY and i.status == JobEvent.FINISHED]
    assert [i.job.recipe.prompt for i in finished] == ["a", "a red heart with wings"]
    assert {i.job.recipe.seed for i in finished} == {live.seed}
    assert all(not i.job.save for i in finished)  # live pictures are not saved; Generate saves


def test_only_live_values_redraw_and_nothing_is_asked_while_off_or_without_a_prompt(live_state):
    live = _live(live_state)
    assert not live.wants("prompt")  # off
    live.set_enabled(True)
    assert live.wants("prompt") and live.wants("guidance") and not live.wants("batch_count")
    live_state.panels["image"].set("prompt", "  ")
    assert live.request() is None


def test_the_live_switch_throttles_a_drag_to_one_request_per_frame(qtbot, live_state):
    from studio.widgets.live import LiveSwitch

    live = _live(live_state)
    switch = LiveSwitch(live)
    qtbot.addWidget(switch)
    live_state.panels["image"].set("prompt", "a cat face")
    switch.box.setChecked(True)
    assert live.enabled and live.submitted == 1  # switching on draws once
    for guidance in range(100):  # a drag: a hundred values in a moment
        live_state.panels["image"].set("guidance", 1.0 + guidance / 10)
    assert switch.throttle.calls == 1  # the first at once, the rest wait for the frame
    qtbot.waitUntil(lambda: switch.throttle.calls == 2, timeout=2000)  # then only the newest
    assert live.submitted == 3
    switch.box.setChecked(False)
    assert not live.enabled and switch.rate.text() == ""
    fakes.GATE.release(100)
