"""The Text panel's newer samplers, the chain's order and the controls a server can't honour, on the panel alone."""

from studio.core.jobs import ModelInfo
from studio.panels.text import TextPanel
from studio.state import State
from studio.widgets.sampler_controls import format_bias, parse_bias, parse_texts


def make_panel(qtbot):
    state = State()
    panel = TextPanel(state)
    qtbot.addWidget(panel)
    return state, panel


def test_logit_bias_text_round_trips_and_drops_what_it_cannot_read():
    pairs = parse_bias('cat:-5; " dog":+2.5; User:: 1; nonsense; x:lots')
    assert pairs == [["cat", -5.0], [" dog", 2.5], ["User:", 1.0]]
    assert parse_bias(format_bias(pairs)) == pairs
    assert parse_texts("a;\\n\\n;b") == ["a", "\n\n", "b"]


def test_new_sampler_controls_write_the_state_and_follow_a_restore(qtbot):
    state, panel = make_panel(qtbot)
    panel.controls["dry_multiplier"].box.setValue(0.8)
    assert state.text.get("dry_multiplier") == 0.8
    panel.controls["logit_bias"].setText("cat:-5")
    panel.controls["logit_bias"].textEdited.emit("cat:-5")
    assert state.text.get("logit_bias") == [["cat", -5.0]]
    state.text.update({"banned_strings": ["a testament to"], "mirostat": True})
    assert panel.controls["banned_strings"].text() == "a testament to" and panel.controls["mirostat"].isChecked()


def test_the_chain_order_is_shown_and_settable(qtbot):
    state, panel = make_panel(qtbot)
    order = panel.controls["sampler_order"]
    assert order.order()[:3] == ["repetition_penalty", "presence_penalty", "frequency_penalty"]
    order.move("min_p", 0)
    assert state.text.get("sampler_order")[0] == "min_p" and order.order()[0] == "min_p"
    state.text.set("sampler_order", ["xtc"])  # a recipe naming only some stages: the rest follow in order
    assert order.order()[0] == "xtc" and len(order.order()) == 11
    recipe = state.text.recipe()
    assert recipe.params["sampler_order"] == ["xtc"]


def test_a_servers_unsupported_settings_are_greyed_out_with_the_reason(qtbot):
    state, panel = make_panel(qtbot)
    why = "gpu-box (vLLM) doesn't accept dry_multiplier"
    state.set_backend_models([ModelInfo("qwen", "text", "qwen", where="gpu-box",
                                        unsupported=(("dry_multiplier", why), ("runtime", "it runs on the server")))])
    state.text.update({"backend": "gpu-box", "model": "qwen"})
    dry = panel.controls["dry_multiplier"]
    assert not dry.isEnabled() and why in dry.toolTip() and why in dry.slider.toolTip()
    assert not panel.controls["runtime"].isEnabled() and panel.controls["min_p"].isEnabled()
    state.text.update({"backend": "", "model": "builtin:text-gpt"})  # back on this computer: everything works
    assert dry.isEnabled() and "Don't repeat yourself" in dry.toolTip()
