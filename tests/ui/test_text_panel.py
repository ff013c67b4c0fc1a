"""Text panel widgets alone: built-in and user-saved sampling presets; what a chat turn submits."""

from studio.engine import presets
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
    panel.inspector.setPlainText("candidates of a token on the old page")
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
