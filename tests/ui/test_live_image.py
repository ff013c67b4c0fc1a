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
    values.update({"prompt": "", "seed": -1})
    live.set_enabled(True)
    assert live.seed >= 0  # a random seed drawn once, kept while Live is on
    waiting = []
    typed = ""
    for letter in "a red heart with wings":
        typed += letter
        values.set("prompt", typed)
        job = live.request()
        waiting.append(sum(1 for info in live_state.jobs.values()
                           if info.job.supersede_key == LIVE_KEY and info.status == JobEvent.QUEUED))
    qtbot.waitUntil(lambda: sum(1 for i in live_state.jobs.values() if i.status == JobEvent.SUPERSEDED) >= 10)
    assert max(waiting) <= 2  # the running one's successor, and at most one more until the queue supersedes it
    fakes.GATE.release(40)  # let the drawing finish: the running request, then the newest waiting one
    qtbot.waitUntil(lambda: live_state.jobs[job.id].status == JobEvent.FINISHED, timeout=10000)
    finished = [i for i in live_state.jobs.values() if i.job.supersede_key == LIVE_KEY and i.status == JobEvent.FINISHED]
    assert len(finished) == 2 and finished[-1].job.recipe.prompt == "a red heart with wings"
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
