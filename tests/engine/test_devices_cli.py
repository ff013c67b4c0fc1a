"""Device choice on this CPU machine, and the headless CLI's failure modes."""

import subprocess
import sys
from pathlib import Path

import pytest

from studio.core.devices import pick_device

ROOT = Path(__file__).resolve().parents[2]


def test_cpu_machine_picks_cpu_fp32():
    choice = pick_device("auto")
    assert (choice.device, choice.dtype) == ("cpu", "float32")
    assert "CPU" in choice.label


def test_asking_for_a_missing_gpu_falls_back_and_says_so():
    choice = pick_device("cuda")
    assert choice.device == "cpu"
    assert "CUDA was asked for but is not available" in choice.label


def test_dtype_override():
    assert pick_device("cpu", "bfloat16").dtype == "bfloat16"


def test_thread_count_can_be_pinned_for_a_busy_machine(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("LATENT_STUDIO_THREADS", "1")
    try:
        assert "CPU (1 thread)" in pick_device("cpu").label
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("LATENT_STUDIO_THREADS", "many")  # nonsense is ignored, not fatal
        assert pick_device("cpu").device == "cpu"
    finally:
        torch.set_num_threads(before)


def test_torch_libraries_preload_then_torch_imports_and_works():
    """The GIL-free preload (see devices.preload_torch_libraries) must leave torch fully usable."""
    code = ("from studio.core.devices import preload_torch_libraries; loaded = preload_torch_libraries(); "
            "import torch; print(loaded, float(torch.ones(3).sum()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    expected = "['libc10', 'libtorch_cpu'] 3.0" if sys.platform.startswith("linux") else "3.0"
    assert expected in done.stdout


def run_cli(*args, home):
    env = {"LATENT_STUDIO_HOME": str(home), "LATENT_STUDIO_CACHE": str(home / "cache"), "PATH": "/usr/bin:/bin",
           "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "studio", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


def test_cli_missing_model_fails_with_a_clear_message(tmp_path):
    result = run_cli("generate", "image", "--prompt", "x", "--model", "builtin:no-such-model", "--out",
                     str(tmp_path / "x.png"), home=tmp_path)
    assert result.returncode == 2
    assert "built-in model 'no-such-model' is missing" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_cli_refuses_a_pickle_checkpoint(tmp_path):
    import pickle

    fake = tmp_path / "model.safetensors"
    fake.write_bytes(pickle.dumps({"a": 1}))
    result = run_cli("generate", "image", "--prompt", "x", "--model", str(fake), home=tmp_path)
    assert result.returncode == 2
    assert "pickle" in result.stderr and "Traceback" not in result.stderr


def test_install_desktop_entry(tmp_path):
    from studio.desktop import install_desktop_entry

    entry = install_desktop_entry(tmp_path)
    text = entry.read_text()
    assert "Exec=" in text and "-m studio" in text and "Icon=latent-studio" in text
    assert (tmp_path / "icons/hicolor/256x256/apps/latent-studio.png").exists()
    assert (tmp_path / "icons/hicolor/scalable/apps/latent-studio.svg").exists()


def test_cli_text_writes_the_requested_txt_with_its_recipe(tmp_path):
    from studio.library.export import recipe_from_file

    out = tmp_path / "story.txt"
    result = run_cli("generate", "text", "--prompt", "The wizard said", "--seed", "3", "--max-new-tokens", "20",
                     "--out", str(out), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "the generated text goes to stdout"
    assert out.exists() and not (tmp_path / "story.md").exists()
    recipe = recipe_from_file(out)
    assert (recipe.prompt, recipe.seed) == ("The wizard said", 3)


def test_cli_music_writes_midi_and_wav_beside_it(tmp_path):
    from studio.library.export import recipe_from_file

    out = tmp_path / "reel.mid"
    result = run_cli("generate", "music", "--prompt", "lively folk reel in G", "--seed", "1", "--bars", "2",
                     "--out", str(out), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.exists() and (tmp_path / "reel.wav").exists()
    assert recipe_from_file(out).seed == 1
    assert result.stderr.count("step 1/") <= 1, "progress is redrawn only when the step changes"


def test_cli_out_into_a_folder_and_into_nowhere(tmp_path):
    folder = tmp_path / "renders"
    folder.mkdir()
    args = ("generate", "text", "--model", "builtin:text-markov", "--prompt", "The", "--max-new-tokens", "5")
    inside = run_cli(*args, "--out", str(folder), home=tmp_path)
    assert inside.returncode == 0, inside.stderr
    assert [p.suffix for p in folder.iterdir()] == [".md"]  # inside the folder, not "renders.md" beside it
    nowhere = run_cli(*args, "--out", "/proc/no-such-place/x.md", home=tmp_path)
    assert nowhere.returncode == 2 and "Traceback" not in nowhere.stderr and "error:" in nowhere.stderr


def test_cli_convert_of_an_empty_checkpoint_fails_clearly(tmp_path):
    import torch

    empty = tmp_path / "empty.pt"
    torch.save({"epoch": 5}, empty)
    result = run_cli("convert-checkpoint", str(empty), home=tmp_path)
    assert result.returncode == 2 and "no tensors" in result.stderr and "Traceback" not in result.stderr


def test_selftest_keeps_out_of_the_users_history_and_prints_only_its_verdicts(tmp_path):
    result = run_cli("selftest", "--out", str(tmp_path / "check"), home=tmp_path / "user")
    assert result.returncode == 0, result.stderr
    assert [line.split(":")[1].split()[0] for line in result.stdout.splitlines()] == ["ok", "ok", "ok"]
    assert not (tmp_path / "user" / "outputs").exists() and not (tmp_path / "user" / "history.sqlite3").exists()


def test_files_given_on_the_command_line_open_the_app_with_them(tmp_path, monkeypatch):
    import studio.app
    from studio.__main__ import main

    picture = tmp_path / "made elsewhere.png"
    picture.write_bytes(b"x")
    opened = []
    monkeypatch.setattr(studio.app, "main", lambda argv=None, open_paths=None: opened.append(open_paths) or 0)
    assert main([str(picture)]) == 0 and opened == [[picture]]


@pytest.mark.parametrize("bad", [["image", "--steps", "0"], ["image", "--width", "-64"], ["image", "--batch-count", "0"],
                                 ["image", "--scheduler", "bogus"], ["music", "--tempo", "-40"],
                                 ["music", "--instrument", "kazooo"], ["music", "--bars", "0"]])
def test_cli_rejects_bad_values_before_any_work(tmp_path, bad):
    from studio.__main__ import main

    with pytest.raises(SystemExit) as stopped:
        main(["generate", bad[0], "--prompt", "x", *bad[1:]])
    assert stopped.value.code == 2


def test_cli_saves_into_the_output_folder_chosen_in_settings(tmp_path):
    import json

    chosen = tmp_path / "chosen"
    (tmp_path / "preferences.json").write_text(json.dumps({"output_folder": str(chosen)}))
    args = ("generate", "text", "--model", "builtin:text-markov", "--prompt", "The", "--max-new-tokens", "5")
    result = run_cli(*args, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [p.suffix for p in chosen.rglob("*.md")] == [".md"]
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.md"))


def test_a_damaged_preferences_file_falls_back_to_the_default_folder(tmp_path, monkeypatch):
    from studio import paths

    monkeypatch.setenv("LATENT_STUDIO_HOME", str(tmp_path))
    (tmp_path / "preferences.json").write_text("{not json")
    assert paths.chosen_outputs_dir() == tmp_path / "outputs"
    paths.remember_output_folder(tmp_path / "elsewhere")  # repairs the file
    assert paths.chosen_outputs_dir() == tmp_path / "elsewhere"


def test_cli_the_builtin_gan_and_sketch_models_draw_offline_and_repeat_with_their_seed(tmp_path):
    """The built-in one-pass models through the CLI (generic loader, no network): same seed, same picture; a
    sketch of a heart comes back a red picture where the lines were drawn."""
    import numpy as np
    from PIL import Image, ImageDraw

    pictures = []
    for run in ("a", "b"):
        out = tmp_path / f"gan-{run}.png"
        result = run_cli("generate", "image", "--model", "builtin:emoji-gan", "--prompt", "red heart", "--seed", "5",
                         "--out", str(out), home=tmp_path)
        assert result.returncode == 0, result.stderr
        pictures.append(np.asarray(Image.open(out).convert("RGB")))
    assert pictures[0].shape == (64, 64, 3) and (pictures[0] == pictures[1]).all()
    sketch = Image.new("RGB", (256, 256), "white")
    ImageDraw.Draw(sketch).ellipse((48, 48, 208, 208), outline=(220, 30, 40), width=6)  # a red outline: a red thing
    sketch.save(tmp_path / "sketch.png")
    out = tmp_path / "translated.png"
    result = run_cli("generate", "image", "--mode", "translate", "--init-image", str(tmp_path / "sketch.png"),
                     "--prompt", "a drawing", "--seed", "1", "--out", str(out), home=tmp_path)
    assert result.returncode == 0, result.stderr
    picture = np.asarray(Image.open(out).convert("RGB")).astype(int)
    inside = picture[20:44, 20:44].reshape(-1, 3).mean(axis=0)
    assert picture.shape == (64, 64, 3) and inside[0] > inside[2] + 20  # filled, and red rather than blue
