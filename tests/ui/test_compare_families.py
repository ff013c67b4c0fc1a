"""Compare families (studio/state/compare.py, studio/widgets/compare_view.py, the "<medium>.compare" tasks): the
view is built offscreen, its three jobs run through the thread engine, the three columns fill with each model's
output and figures, the comparison is saved as one history entry, and restoring that entry brings it back whole."""

from __future__ import annotations

import pytest

from studio.backends.thread import ThreadEngine
from studio.core import catalog
from studio.core.jobs import UserError
from studio.library.history import History
from studio.state import State
from studio.state.compare import FAMILIES, SURPRISE_TIP, CompareState
from studio.widgets.compare_view import CompareView, compare_button


@pytest.fixture
def engine_state(tmp_path):
    """A State wired to the thread engine, and the engine's history (to read the saved comparison back)."""
    state = State()
    history = History(tmp_path / "h.sqlite3", tmp_path / "out")
    worker = ThreadEngine(history=history, device_override="cpu")
    worker.message.connect(state.handle_message)
    state.submit_requested.connect(worker.submit)
    state.cancel_requested.connect(lambda job_id: worker.cancel(job_id))
    worker.start()
    yield state, history
    worker.stop()


def _builtin_here(ref: str) -> bool:
    try:
        catalog.resolve(ref)
    except UserError:
        return False
    return True


def _text_rnn_ref(tmp_path_factory) -> str:
    if _builtin_here("builtin:text-rnn"):
        return "builtin:text-rnn"
    import shutil

    import torch

    from studio import paths
    from studio.core import rnn

    folder = tmp_path_factory.mktemp("tiny-text-rnn")
    gpt = paths.builtin_model_dir("text-gpt")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(gpt / name, folder / name)
    torch.manual_seed(0)
    rnn.RNNLanguageModel(rnn.RNNConfig(vocab_size=2048, width=16, layers=1)).save(folder, extra={"eos_token_id": 0})
    return str(folder)


def wait_done(qtbot, compare: CompareState, medium: str, timeout: int = 300_000) -> None:
    qtbot.waitUntil(lambda: not compare.running(medium) and compare.columns[medium]
                    and "Saved" in compare.messages[medium], timeout=timeout)


def test_three_text_columns_from_the_real_built_ins(qtbot, engine_state, tmp_path_factory):
    if not (_builtin_here("builtin:text-markov") and _builtin_here("builtin:text-gpt")):
        pytest.skip("the text built-ins are not installed")
    state, history = engine_state
    compare = state.compare
    compare.families["text"][1] = ("RNN", _text_rnn_ref(tmp_path_factory))
    view = CompareView(compare, "text")
    qtbot.addWidget(view)
    state.text.update({"prompt": "The meaning of life is", "seed": 7, "max_new_tokens": 24, "temperature": 0.9})
    jobs = compare.run("text")
    assert [job.kind for job in jobs] == ["text.compare"] * 3
    assert [job.recipe.model for job in jobs] == [ref for _, ref in compare.families["text"]]
    assert len({job.recipe.seed for job in jobs}) == 1 and jobs[0].recipe.seed == 7
    assert all(job.recipe.params == jobs[0].recipe.params for job in jobs), "the same settings for all three"
    wait_done(qtbot, compare, "text")
    columns = compare.columns["text"]
    assert [c["status"] for c in columns] == ["done"] * 3
    for widget, column in zip(view.columns, columns, strict=True):
        assert column["text"] and widget.text() == column["text"]
        assert column["tokens"] > 0 and column["tokens_per_s"] > 0
        assert 0 < column["surprise_bits"] < 30 and 0 < column["bits_per_byte"] < 30
        assert 0 < column["prompt_bits_per_byte"] < 30, "the prompt is scored under each model too"
        assert "tokens/s" in widget.figures.text() and "bits/token" in widget.figures.text()
        assert SURPRISE_TIP in widget.figures.toolTip()
        assert column["family"] in widget.header.text()
    # one history entry: the comparison, its recipe holding the three models and the shared settings
    entries = history.search()
    assert len(entries) == 1
    saved = entries[0].recipe
    assert saved.param("operation") == "text.compare" and saved.seed == 7
    assert [f[1] for f in saved.param("compare")["families"]] == [ref for _, ref in compare.families["text"]]
    assert saved.param("max_new_tokens") == 24 and saved.param("temperature") == 0.9
    page = entries[0].files[0].read_text(encoding="utf-8")
    assert all(c["text"].strip()[:20] in page for c in columns)
    fresh = State()  # the Gallery's double-click in a new session: the three columns are back, nothing runs
    fresh.submit_requested.connect(lambda job: pytest.fail("a restore runs no job"))
    fresh.restore(saved)
    assert [c["text"] for c in fresh.compare.columns["text"]] == [c["text"] for c in columns]
    assert [c["surprise_bits"] for c in fresh.compare.columns["text"]] == [c["surprise_bits"] for c in columns]
    assert fresh.text.get("prompt") == "The meaning of life is" and fresh.text.get("seed") == 7
    assert fresh.text.get("model") != saved.model or saved.model == "builtin:text-gpt"


def test_the_same_seed_gives_the_same_columns(qtbot, engine_state):
    if not _builtin_here("builtin:text-markov"):
        pytest.skip("text-markov is not installed")
    state, _history = engine_state
    compare = state.compare
    compare.families["text"] = [("Markov", "builtin:text-markov")] * 3  # fast: one model three times
    state.text.update({"prompt": "Hello", "seed": 3, "max_new_tokens": 30})
    compare.run("text")
    wait_done(qtbot, compare, "text")
    first = [c["text"] for c in compare.columns["text"]]
    assert first[0] == first[1] == first[2]
    compare.run("text")
    wait_done(qtbot, compare, "text")
    assert [c["text"] for c in compare.columns["text"]] == first


def test_three_piano_rolls_and_the_restore_brings_the_comparison_back(qtbot, engine_state):
    refs = [ref for _, ref in FAMILIES["music"]]
    if not all(_builtin_here(ref) for ref in refs):
        pytest.skip("the music built-ins are not all installed")
    state, history = engine_state
    compare = state.compare
    view = CompareView(compare, "music")
    qtbot.addWidget(view)
    view.resize(960, 400)
    state.music.update({"prompt": "folk tune in D major", "seed": 5, "bars": 2, "temperature": 1.0})
    compare.run("music")
    wait_done(qtbot, compare, "music")
    columns = compare.columns["music"]
    for widget, column in zip(view.columns, columns, strict=True):
        assert column["status"] == "done" and column["notes"] and column["key"] == "D major"
        assert len(widget.body.notes) == len(column["notes"])
        assert column["tokens_per_s"] > 0 and column["surprise_bits"] > 0
        assert "bits/token" in widget.figures.text()
    (entry,) = history.search()
    assert entry.modality == "music" and any(f.suffix == ".mid" for f in entry.files)
    # a new session: the Gallery's double-click restores the whole comparison, no job runs
    fresh = State()
    submitted = []
    fresh.submit_requested.connect(submitted.append)
    button = compare_button(fresh.compare, "music", None)
    fresh.restore(entry.recipe)
    assert not submitted
    restored = fresh.compare.columns["music"]
    assert [c["notes"] for c in restored] == [c["notes"] for c in columns]
    assert [c["family"] for c in restored] == ["Markov", "RNN", "Transformer"]
    assert fresh.music.get("seed") == 5 and fresh.music.get("bars") == 2 and fresh.music.get("prompt") == "folk tune in D major"
    dialog = button.dialogs["dialog"]
    qtbot.addWidget(dialog)
    assert dialog.isVisible()
    assert [len(c.body.notes) for c in dialog.view.columns] == [len(c["notes"]) for c in columns]
    assert "back" in dialog.view.message.text()


@pytest.mark.parametrize("medium", ["text", "music"])
def test_the_pickers_list_the_rnn_built_ins_and_mark_a_missing_one(qtbot, medium, monkeypatch, tmp_path):
    from PySide6.QtCore import QCoreApplication

    from studio import paths
    from studio.state import PanelState
    from studio.widgets.model_picker import ModelPicker

    QCoreApplication.setOrganizationName("LatentStudioTests")
    values = PanelState(medium, {"model": f"builtin:{medium}-gpt"})
    picker = ModelPicker(values)
    qtbot.addWidget(picker)
    refs = [picker.combo.itemData(i) for i in range(picker.combo.count())]
    assert f"builtin:{medium}-rnn" in refs and f"builtin:{medium}-markov" in refs
    monkeypatch.setattr(paths, "builtin_model_dir", lambda name: tmp_path / "nowhere" / name)  # not exported yet
    picker.refill()
    labels = [picker.combo.itemText(i) for i in range(picker.combo.count())]
    rnn_label = labels[[picker.combo.itemData(i) for i in range(picker.combo.count())].index(f"builtin:{medium}-rnn")]
    assert "RNN" in rnn_label and "not installed yet" in rnn_label


def test_a_missing_family_fails_its_column_and_the_others_still_save(qtbot, engine_state):
    if not _builtin_here("builtin:text-markov"):
        pytest.skip("text-markov is not installed")
    state, history = engine_state
    compare = state.compare
    compare.families["text"] = [("Markov", "builtin:text-markov"), ("RNN", "builtin:no-such-rnn"),
                                ("Transformer", "builtin:text-markov")]
    state.text.update({"prompt": "Hi", "seed": 1, "max_new_tokens": 10})
    compare.run("text")
    wait_done(qtbot, compare, "text")
    assert [c["status"] for c in compare.columns["text"]] == ["done", "failed", "done"]
    assert "missing" in compare.columns["text"][1]["error"]
    (entry,) = history.search()
    assert [c["status"] for c in entry.recipe.param("compare")["columns"]] == ["done", "failed", "done"]


def test_the_text_panel_button_runs_the_comparison_and_shows_it(qtbot, engine_state):
    if not _builtin_here("builtin:text-markov"):
        pytest.skip("text-markov is not installed")
    from studio.panels.text import TextPanel

    state, _history = engine_state
    state.compare.families["text"] = [("Markov", "builtin:text-markov")] * 3
    panel = TextPanel(state)
    qtbot.addWidget(panel)
    state.text.update({"prompt": "Once", "seed": 2, "max_new_tokens": 12})
    panel.compare_button.click()
    dialog = panel.compare_button.dialogs["dialog"]
    qtbot.addWidget(dialog)
    assert dialog.isVisible()
    wait_done(qtbot, state.compare, "text")
    assert all(column.text() for column in dialog.view.columns)
    assert panel.page.toPlainText() == "Once", "the panel's own page is left alone"
