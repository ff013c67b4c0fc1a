"""Text panel widgets alone: built-in and user-saved sampling presets; what a chat turn submits."""

from studio.library import presets
from studio.panels.text import TextPanel
from studio.state import State


def make_panel(qtbot):
    state = State()
    panel = TextPanel(state)
    qtbot.addWidget(panel)
    return state, panel


def choose(panel, label):
    index = panel.presets.findText(label)
    assert index > 0, f"{label!r} not offered"
    panel.presets.setCurrentIndex(index)
    panel._apply_preset(index)


def test_builtin_preset_moves_the_sliders(qtbot):
    state, panel = make_panel(qtbot)
    choose(panel, "Precise")
    assert state.text.get("temperature") == 0.3 and state.text.get("top_k") == 20


def test_saved_preset_survives_a_new_panel_and_restores_its_values(qtbot):
    state, panel = make_panel(qtbot)
    state.text.update({"temperature": 1.37, "top_k": 7, "min_p": 0.12})
    panel.save_preset("  Dreamy  ")
    assert panel.presets.currentText() == "★ Dreamy" and panel.delete_preset_button.isEnabled()

    state2, panel2 = make_panel(qtbot)  # as after a restart
    state2.text.update({"temperature": 0.5, "top_k": 40, "min_p": 0.0})
    choose(panel2, "★ Dreamy")
    assert (state2.text.get("temperature"), state2.text.get("top_k"), state2.text.get("min_p")) == (1.37, 7, 0.12)
    assert state2.text.get("prompt") == state.text.get("prompt"), "a preset never touches the prompt"

    panel2._delete_preset()
    assert panel2.presets.findText("★ Dreamy") < 0 and "Dreamy" not in presets.user_presets("text")


def test_a_damaged_presets_file_is_ignored_not_fatal(qtbot):
    presets.presets_file().write_text("{ not json", encoding="utf-8")
    _state, panel = make_panel(qtbot)
    assert panel.presets.findText("Balanced") > 0
    panel.save_preset("Fresh")  # and saving replaces the damaged file
    assert "Fresh" in presets.user_presets("text")


def test_a_chat_turn_submits_the_message_as_its_prompt_and_clears_the_inspector(qtbot):
    state, panel = make_panel(qtbot)
    state.text.update({"model": "builtin:text-markov", "prompt": "An old completion page"})
    panel.inspector.show_token({"token": " old", "id": 1, "before": [{"id": 1, "token": " old", "p": 0.5}],
                                "after": [{"id": 1, "token": " old", "p": 1.0}]})
    assert "old" in panel.inspector.toPlainText()
    state.text.set("mode", "chat")
    submitted = []
    state.submit_requested.connect(submitted.append)
    panel.chat_input.setText("  Tell me a joke  ")
    panel.generate()
    recipe = submitted[0].recipe
    assert recipe.prompt == "Tell me a joke"  # what the gallery shows and searches for this output
    assert recipe.param("messages") == [{"role": "user", "content": "Tell me a joke"}]
    assert state.text.get("prompt") == "An old completion page"  # the completion page is kept for later
    assert panel.inspector.toPlainText() == ""


# --- with a real worker and the built-in Markov model (loads in a moment) ------------------------------------


def live_panel(qtbot, live_state, **values):
    panel = TextPanel(live_state)
    qtbot.addWidget(panel)
    live_state.text.update({"model": "builtin:text-markov", "max_new_tokens": 40, **values})
    return panel


def wait_for_end(qtbot, state, job_id, timeout=60_000):
    with qtbot.waitSignal(state.job_changed, timeout=timeout,
                          check_params_cb=lambda info: info.job.id == job_id and not info.active) as blocker:
        pass
    return blocker.args[0]


def submit_and_finish(qtbot, state, action):
    jobs = []
    state.submit_requested.connect(jobs.append)
    action()
    state.submit_requested.disconnect(jobs.append)
    assert len(jobs) == 1
    return jobs[0], wait_for_end(qtbot, state, jobs[0].id)


def test_while_a_text_job_runs_the_page_is_locked_and_a_second_generate_is_ignored(qtbot, live_state):
    panel = live_panel(qtbot, live_state, prompt="Once upon a time", max_new_tokens=400)
    jobs = []
    live_state.submit_requested.connect(jobs.append)
    panel.generate()
    assert panel.page.isReadOnly() and not panel.continue_button.isEnabled() and not panel.undo_button.isEnabled()
    assert not panel.bar.generate.isEnabled() and not panel.mode_combo.isEnabled()
    panel.generate()  # Ctrl+Enter while it streams
    panel.undo()
    assert len(jobs) == 1
    info = wait_for_end(qtbot, live_state, jobs[0].id)
    assert info.status.value == "finished"
    assert not panel.page.isReadOnly() and panel.continue_button.isEnabled()
    page = panel.page.toPlainText()
    assert page.startswith("Once upon a time") and len(page) > len("Once upon a time")
    assert live_state.text.get("prompt") == page


def test_cancel_keeps_the_text_that_streamed_in_as_the_page(qtbot, live_state, monkeypatch):
    from studio import state as state_module
    from tests import fakes

    fakes.register_fakes()
    fakes.reset_gate()
    monkeypatch.setitem(state_module.JOB_KINDS, "text", "fake.gated")  # streams " word" per step, one step per release
    panel = live_panel(qtbot, live_state, prompt="The")
    jobs = []
    live_state.submit_requested.connect(jobs.append)
    with qtbot.waitSignal(live_state.preview_changed, timeout=10_000):
        panel.generate()
        fakes.GATE.release(1)
    live_state.cancel(jobs[0].id)
    fakes.GATE.release(1)
    info = wait_for_end(qtbot, live_state, jobs[0].id, timeout=10_000)
    assert info.status.value == "cancelled"
    assert panel.page.toPlainText() == "The word"
    assert live_state.text.get("prompt") == "The word"  # kept: survives a restart, is what Continue continues
    assert panel.continue_button.isEnabled() and not panel.page.isReadOnly()


def test_completion_and_chat_keep_their_own_pages_and_undo_steps(qtbot, live_state):
    panel = live_panel(qtbot, live_state, prompt="My completion draft.")
    live_state.text.set("mode", "chat")
    assert panel.page.toPlainText() == ""  # no conversation yet
    panel.chat_input.setText("Hello there")
    submit_and_finish(qtbot, live_state, panel.generate)
    assert [m["role"] for m in live_state.text.get("messages")] == ["user", "assistant"]
    assert panel.page.toPlainText().startswith("User: Hello there\nAssistant: ")

    live_state.text.set("mode", "completion")
    assert panel.page.toPlainText() == "My completion draft."
    panel.undo()  # nothing generated in completion mode: nothing to undo
    assert panel.page.toPlainText() == "My completion draft."

    live_state.text.set("mode", "chat")
    panel.undo()  # takes back the whole turn; the question returns to the input
    assert panel.page.toPlainText() == "" and panel.chat_input.text() == "Hello there"
    assert live_state.text.get("messages") == []
    assert live_state.text.get("prompt") == "My completion draft."


def test_regenerate_samples_again_with_a_new_seed_even_when_the_seed_is_locked(qtbot, live_state):
    panel = live_panel(qtbot, live_state, prompt="A hacker", seed=1234)
    first, _ = submit_and_finish(qtbot, live_state, panel.generate)
    second, _ = submit_and_finish(qtbot, live_state, panel.regenerate)
    assert first.recipe.seed == 1234 and second.recipe.seed != 1234
    assert second.recipe.prompt == "A hacker"  # the generated span was taken back first
    assert live_state.text.get("seed") == 1234  # the lock stays for the next Generate


def test_restoring_a_chat_recipe_brings_back_its_conversation_and_keeps_the_completion_page(qtbot):
    from studio.core.recipe import Recipe

    state, panel = make_panel(qtbot)
    state.text.set("prompt", "My completion draft.")
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Tell me a story"}]
    state.restore(Recipe("text", prompt="Tell me a story", seed=5, params={"mode": "chat", "messages": messages}))
    assert panel.page.toPlainText() == "User: Hi\nAssistant: Hello."
    assert panel.chat_input.text() == "Tell me a story"  # the answered message, ready to send again
    assert state.text.get("prompt") == "My completion draft."

    state.restore(Recipe("text", prompt="The quick brown fox", seed=6, params={"mode": "completion"}))
    assert panel.page.toPlainText() == "The quick brown fox"


def test_the_stop_field_follows_restored_values(qtbot):
    state, panel = make_panel(qtbot)
    state.text.set("stop", ["\n", "."])
    assert panel.stops.text() == "\\n;."
    panel.stops.setText("THE END")
    assert state.text.get("stop") == ["THE END"]


def test_inspector_spans_use_the_engines_character_spans():
    from studio.panels.text import inspector_spans

    # the engine's spans: a healed leading space ("Ġand" → "and") and half a UTF-8 character (no characters)
    tokens = [{"token": " and", "start": 0, "end": 3}, {"token": "\ufffd", "start": 3, "end": 3},
              {"token": "\ufffd", "start": 3, "end": 4}, {"token": " so", "start": 4, "end": 7}]
    spans = inspector_spans(tokens)
    assert [(t["start"], t["end"]) for t in spans] == [(0, 3), (3, 4), (4, 7)]
    assert [(t["start"], t["end"]) for t in inspector_spans(tokens, shift=-1)][0] == (-1, 2)


def test_an_old_recipe_is_drawn_as_it_was_made_and_a_new_one_as_now(qtbot):
    from studio.core.recipe import Recipe

    state, _panel = make_panel(qtbot)
    assert state.text.get("draw") == "cdf"
    state.restore(Recipe("text", prompt="Old", seed=5, params={"mode": "completion", "temperature": 0.7}))
    assert state.text.get("draw") == "multinomial"  # made before "draw" existed: its seed writes its text again
    assert state.text.recipe().params["draw"] == "multinomial"
    state.restore(Recipe("text", prompt="New", seed=6, params={"mode": "completion", "draw": "cdf"}))
    assert state.text.get("draw") == "cdf"
