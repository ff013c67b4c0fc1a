"""The model manager and what it feeds: every picker marks what is not ready, LoRAs go into the prompt, and the
Image panel's sizes and defaults fit the chosen model."""

from __future__ import annotations

import pytest

from studio.core.model_folders import set_added_folders
from studio.core.recipe import Recipe
from studio.state import State

CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"


def _save(path, tensors):
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path


@pytest.fixture
def comfy(tmp_path, monkeypatch):
    """A ComfyUI install in the usual place: a FLUX transformer alone, a LoRA, an embedding, a damaged file."""
    import torch

    root = tmp_path / "home" / "ComfyUI"
    (root / "comfy").mkdir(parents=True)
    _save(root / "models" / "diffusion_models" / "flux1-dev.safetensors",
          {"double_blocks.0.img_attn.qkv.weight": torch.zeros(6, 2), "guidance_in.in_layer.weight": torch.zeros(2, 2),
           "img_in.weight": torch.zeros(2, 4), "final_layer.linear.weight": torch.zeros(4, 2)})
    _save(root / "models" / "checkpoints" / "tiny-sd15.safetensors",
          {CONV_IN: torch.zeros(8, 4, 3, 3), "first_stage_model.decoder.conv_in.weight": torch.zeros(8, 4, 3, 3),
           "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": torch.zeros(4, 2)})
    _save(root / "models" / "loras" / "ink-style.safetensors",
          {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(2, 4)})
    _save(root / "models" / "embeddings" / "badhands.safetensors", {"emb_params": torch.zeros(2, 768)})
    (root / "models" / "checkpoints" / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    monkeypatch.setenv("LATENT_STUDIO_DETECT_HOME", str(tmp_path / "home"))
    return root


@pytest.fixture
def library(qtbot, comfy):
    state = State()
    state.model_library.refresh()
    qtbot.waitUntil(lambda: state.model_library.loaded, timeout=20000)
    return state


def _entry(state, name):
    return next(e for e in state.model_library.entries if e.name == name)


def test_the_list_has_every_source_with_kind_family_and_status(library):
    found = {e.name: e for e in library.model_library.entries}
    assert found["Emoji LDM (built-in)"].status == "ready" and found["Emoji LDM (built-in)"].family == "sd1"
    flux = found["flux1-dev"]
    assert (flux.kind, flux.family, flux.status, flux.source) == ("checkpoint", "flux_dev", "needs files", "ComfyUI")
    assert "VAE" in flux.note and "T5-XXL text encoder" in flux.note and "T5 tokenizer" in flux.note
    assert found["tiny-sd15"].status == "ready" and found["tiny-sd15"].dtype == "fp32"
    assert found["ink-style"].kind == "lora" and found["badhands"].kind == "embedding"
    assert found["broken"].status == "damaged" and "truncated safetensors file" in found["broken"].note
    turbo = found["SD-Turbo"]
    assert turbo.status == "not downloaded" and turbo.size == 5_200_000_000
    assert library.model_library.online is False  # the tests' hub is switched off: said, not tried


def test_the_picker_marks_what_is_not_ready(library, qtbot):
    from studio.widgets.model_picker import ModelPicker

    picker = ModelPicker(library.image)
    qtbot.addWidget(picker)
    labels = {picker.combo.itemData(i): picker.combo.itemText(i) for i in range(picker.combo.count())}
    assert labels["stabilityai/sd-turbo"] == "SD-Turbo  (not downloaded, 5.2 GB)"
    assert labels[str(_entry(library, "flux1-dev").ref)] == "flux1-dev  (needs files)"
    assert labels[str(_entry(library, "tiny-sd15").ref)] == "tiny-sd15  (SD 1.x)"
    assert "ink-style" not in " ".join(labels.values())  # LoRAs are inserted into prompts, not picked as models


def test_the_manager_filters_says_offline_and_deletes(library, qtbot, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from studio.widgets.model_manager import ModelManagerDialog

    used = []
    dialog = ModelManagerDialog(library.model_library, use_model=used.append)
    qtbot.addWidget(dialog)
    assert dialog.connection.text().startswith("Offline: models marked ⇣ need a connection to download")
    assert "ComfyUI" in dialog.connection.text()
    dialog.kind.setCurrentText("LoRAs")
    assert [e.name for e in dialog.visible_entries()] == ["ink-style"]
    dialog.kind.setCurrentText("All")
    dialog.select_ref("stabilityai/sd-turbo")
    assert "needs a connection to download, 5.2 GB" in dialog.details.text()
    assert dialog.download_button.isEnabled() and not dialog.delete_button.isEnabled()
    broken = _entry(library, "broken")
    dialog.select_ref(broken.ref)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(library.model_library.changed, timeout=20000):
        dialog.delete_selected()
    assert not any(e.name == "broken" for e in library.model_library.entries)
    dialog.select_ref(_entry(library, "tiny-sd15").ref)
    dialog.use_button.click()
    assert used == [_entry(library, "tiny-sd15").ref]


def test_a_lora_goes_into_the_prompt_as_a1111_writes_it(library, qtbot):
    from studio.widgets.adapter_picker import AdapterPicker
    from studio.widgets.controls import PromptEdit

    prompt = PromptEdit(library.image, "prompt")
    qtbot.addWidget(prompt)
    prompt.setPlainText("a red cat")
    prompt.moveCursor(prompt.textCursor().MoveOperation.End)
    picker = AdapterPicker(library.model_library, prompt)
    picker.fill_menu()
    actions = {a.text().split("  (")[0]: a for a in picker.menu().actions()}
    actions["ink-style"].trigger()
    assert library.image.get("prompt") == "a red cat <lora:ink-style:0.8>"
    actions["badhands"].trigger()
    assert library.image.get("prompt").endswith("<lora:ink-style:0.8> badhands")


def test_sizes_fit_the_model_and_a_far_size_is_one_click_from_native(qtbot):
    from studio.widgets.model_fit import SizeFit, apply_model_defaults

    state = State()
    values = state.image
    fit = SizeFit(values)
    qtbot.addWidget(fit)
    fit.show()
    chips = [fit.chips.itemAt(i).widget().text() for i in range(fit.chips.count())]
    assert chips[0] == "64" and "1024" not in chips  # the built-in is a 64-px model
    values.update({"width": 512, "height": 512})
    assert fit.warning.isVisible() and "native 64×64" in fit.warning.text()
    fit.fix.click()
    assert (values.get("width"), values.get("height")) == (64, 64) and not fit.warning.isVisible()
    values.set("guidance_start", 0.4)
    values.set("model", "stabilityai/sd-turbo")
    apply_model_defaults(values, "stabilityai/sd-turbo")  # what picking it in the picker does
    assert (values.get("steps"), values.get("guidance"), values.get("width")) == (2, 0.0, 512)
    assert values.get("guidance_start") == 0.0  # the last model's delayed guidance is not carried over
    assert not fit.warning.isVisible()


def test_restoring_a_png_made_for_another_model_keeps_its_size_and_warns(qtbot, tmp_path):
    from studio.widgets.model_fit import SizeFit

    state = State()
    fit = SizeFit(state.image)
    qtbot.addWidget(fit)
    fit.show()
    recipe = Recipe("image", prompt="castle", model="dreamshaper_8", seed=1, params={"width": 768, "height": 512})
    state.restore(recipe)  # an A1111 PNG: its checkpoint isn't here, so the built-in stays
    assert state.image.get("model") == "builtin:emoji-ldm" and state.image.get("width") == 768
    assert fit.warning.isVisible() and fit.fix.text() == "Use 64×64"


def test_added_folders_are_listed_too(qtbot, tmp_path):
    import torch

    folder = tmp_path / "my-models"
    _save(folder / "some-lora.safetensors", {"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight": torch.zeros(2, 4)})
    set_added_folders([folder])
    state = State()
    state.model_library.refresh(check_online=False)
    qtbot.waitUntil(lambda: state.model_library.loaded, timeout=20000)
    lora = _entry(state, "some-lora")
    assert lora.source == "your folder" and lora.kind == "lora"
