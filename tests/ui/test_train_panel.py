"""The Train tab end to end through a real engine thread: read a folder (its problems shown before anything runs),
train, stop and resume, watch the loss curve and the grids, save the picked checkpoint, and use the adapter from the
Text panel's own model picker, the output's recipe recording it with its hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.core import adapters
from studio.panels.train import TrainPanel
from studio.widgets.model_picker import ADAPTER_PREFIX, ModelPicker
from tests.engine.finetune_fixtures import text_folder, tiny_text_model

WAIT = 120_000


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return tiny_text_model(tmp_path_factory.mktemp("base") / "tiny-gpt")


def panel_for(qtbot, state) -> TrainPanel:
    panel = TrainPanel(state)
    qtbot.addWidget(panel)
    return panel


def read_folder(qtbot, panel: TrainPanel, folder: Path) -> None:
    panel.values.set("folder", str(folder))
    panel.read_button.click()
    qtbot.waitUntil(lambda: panel.train.report is not None and panel.train.report["folder"] == str(folder),
                    timeout=WAIT)


def test_an_empty_folder_shows_its_problem_and_nothing_can_start(qtbot, live_state, tmp_path):
    panel = panel_for(qtbot, live_state)
    panel.values.set("medium", "text")
    read_folder(qtbot, panel, tmp_path)
    assert "nothing to learn from" in panel.problems.text() and "✖" in panel.problems.text()
    assert not panel.start_button.isEnabled()
    panel.train.start()  # even asked directly, it refuses in words
    assert panel.message.text().startswith("Read a folder without errors first")


def test_every_control_explains_itself():
    from studio.engine.train.settings import HELP, TrainSettings

    assert set(HELP) == {f for f in TrainSettings.__dataclass_fields__} - {"medium"}
    assert all(len(text) > 30 for text in HELP.values())


def test_train_stop_resume_save_and_use_the_adapter_from_the_text_picker(qtbot, live_state, tmp_path, tiny_base):
    panel = panel_for(qtbot, live_state)
    train = panel.train
    panel.values.update({"medium": "text", "model": str(tiny_base), "steps": 8, "sample_every": 4, "batch": 2,
                         "rank": 2, "name": "Psalm voice"})
    read_folder(qtbot, panel, text_folder(tmp_path / "psalms"))
    assert panel.table.rowCount() == 4 and panel.start_button.isEnabled() and "4 text files" in panel.summary.text()

    steps_seen = []
    train.loss_added.connect(lambda step, _loss: steps_seen.append(step))
    panel.start_button.click()
    qtbot.waitUntil(lambda: len(steps_seen) >= 2, timeout=WAIT)
    assert panel.stop_button.isEnabled() and not panel.start_button.isEnabled()
    panel.stop_button.click()
    qtbot.waitUntil(lambda: not train.running(), timeout=WAIT)
    assert "Resume goes on from it" in panel.message.text()
    assert panel.runs.count() == 1 and "Psalm voice" in panel.runs.itemText(0)

    panel.resume_button.click()
    qtbot.waitUntil(lambda: not train.running(), timeout=WAIT)
    assert "Finished" in panel.message.text(), panel.message.text()
    assert [int(s) for s, _ in train.history] == list(range(1, 9))  # the curve runs on from where it stopped
    assert len(panel.plot.steps) == 8 and panel.runs.count() == 0
    assert {c["step"] for c in train.checkpoints} >= {0, 4, 8}
    assert train.picked == train.suggested() and panel.checkpoints.list.count() >= 3

    rows = [panel.checkpoints.list.item(i).text() for i in range(panel.checkpoints.list.count())]
    panel.checkpoints.list.setCurrentRow(next(i for i, text in enumerate(rows) if text.startswith("step 4 ")))
    assert train.picked == 4 and "Step 4" in panel.checkpoints.texts.toPlainText()
    with qtbot.waitSignal(train.saved, timeout=WAIT) as saved:
        panel.save_button.click()
    folder = saved.args[0]
    assert adapters.read_adapter(folder)["step"] == 4 and "model list" in panel.saved_note.text()

    picker = ModelPicker(live_state.text)
    qtbot.addWidget(picker)
    labels = [picker.combo.itemText(i) for i in range(picker.combo.count())]
    assert "tiny-gpt + Psalm voice" in labels
    picker.combo.setCurrentIndex(labels.index("tiny-gpt + Psalm voice"))
    assert live_state.text.get("model") == str(tiny_base)
    assert live_state.text.get("adapters") == [{"path": folder, "weight": 1.0}]
    assert picker.combo.currentData() == ADAPTER_PREFIX + folder

    live_state.text.update({"prompt": "Verily", "max_new_tokens": 6, "seed": 3})
    with qtbot.waitSignal(live_state.output_added, timeout=WAIT) as output:
        live_state.generate("text")
    used = output.args[0].recipe.params["adapters"]
    assert used[0]["path"] == folder and used[0]["sha256"] == adapters.adapter_hash(folder)

    picker.combo.setCurrentIndex(0)  # back to a plain model: the adapter goes with it
    assert live_state.text.get("adapters") == []
