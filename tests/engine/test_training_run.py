"""studio/training/run.py: the run folder, atomic saves, checkpoints and learning-rate schedules every trainer shares."""

from __future__ import annotations

import math

import pytest

from studio.training import run

torch = pytest.importorskip("torch")


# --- learning rates -------------------------------------------------------------------------------


def test_warm_up_climbs_linearly_to_the_peak_then_the_cosine_ends_at_the_floor():
    peak, floor, warmup, horizon = 1e-3, 1e-4, 10, 110
    rates = [run.learning_rate(step, peak, warmup, horizon, floor) for step in range(200)]
    assert rates[0] == pytest.approx(peak / warmup)  # step 0 already takes one step's share
    assert rates[4] == pytest.approx(peak * 5 / warmup)
    assert rates[warmup - 1] == pytest.approx(peak)
    assert all(a < b for a, b in zip(rates[:warmup - 1], rates[1:warmup], strict=True))
    assert rates[warmup] == pytest.approx(peak)  # the cosine starts at the peak...
    assert rates[warmup + (horizon - warmup) // 2] == pytest.approx((peak + floor) / 2)  # ...is halfway at half time
    decay = rates[warmup:horizon + 1]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False))
    assert rates[horizon] == pytest.approx(floor)  # ...and ends at the floor
    assert set(rates[horizon:]) == {rates[horizon]}  # flat after the horizon


def test_a_warm_restart_warms_up_from_the_floor_not_from_zero():
    floor = 1e-4
    first = run.learning_rate(0, 8e-4, 50, 1000, floor, warm_from=floor)
    assert first == pytest.approx(floor + (8e-4 - floor) / 50)
    assert run.learning_rate(49, 8e-4, 50, 1000, floor, warm_from=floor) == pytest.approx(8e-4)


def test_exponential_schedule_decays_per_step_and_stops_at_its_floor():
    rates = [run.exponential_learning_rate(step, 2e-3, 100, 0.9995, 1e-4) for step in range(10_000)]
    assert rates[99] == pytest.approx(2e-3)
    assert rates[1099] == pytest.approx(2e-3 * 0.9995**999)
    assert min(rates[100:]) == pytest.approx(1e-4) == rates[-1]  # 2e-3 * 0.9995^n passes 1e-4 near n = 6,000


def test_each_trainer_keeps_its_schedule():
    from studio.training import melody_vae, music_model, text_model

    # text-gpt: cosine to a tenth of the peak at max_steps, counted after the warm-up.
    assert text_model.learning_rate(100, 2e-3, 100, 3000) == pytest.approx(2e-3)
    assert text_model.learning_rate(3000, 2e-3, 100, 3000) == pytest.approx(2e-4)
    # music-gpt: 1e-4 at step 2,500; a warm restart's cycle ends at the floor at its "end".
    assert music_model.learning_rate(2500, peak=1.5e-3) == pytest.approx(1e-4)
    cycles = [{"start": 3000, "peak": 8e-4, "end": 4000}]
    assert music_model.learning_rate(2999, peak=1.5e-3, cycles=cycles) == pytest.approx(1e-4)
    assert music_model.learning_rate(3049, peak=1.5e-3, cycles=cycles) == pytest.approx(8e-4)
    assert music_model.learning_rate(4000, peak=1.5e-3, cycles=cycles) == pytest.approx(1e-4)
    # melody-vae: MusicVAE's exponential decay.
    assert melody_vae.learning_rate(1100, 2e-3) == pytest.approx(2e-3 * 0.9995**1000)


def test_optimise_clips_the_gradient_norm():
    weight = torch.nn.Parameter(torch.zeros(4))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    run.set_learning_rate(optimizer, 0.5)
    run.optimise(optimizer, (weight * torch.tensor([300.0, 400.0, 0.0, 0.0])).sum(), clip=1.0)
    # gradient (300, 400) has norm 500: clipped to norm 1, one step of lr 0.5
    assert torch.allclose(weight.detach(), torch.tensor([-0.3, -0.4, 0.0, 0.0]))


# --- files ----------------------------------------------------------------------------------------


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("disk full")  # a save that fails half-way


def test_save_atomic_replaces_whole_files_and_a_failed_save_leaves_the_old_one(tmp_path):
    path = tmp_path / "checkpoint.pt"
    run.save_atomic({"step": 1}, path)
    run.save_atomic({"step": 2}, path)
    assert torch.load(path, weights_only=True) == {"step": 2}
    with pytest.raises(RuntimeError, match="disk full"):
        run.save_atomic({"step": 3, "bad": Unpicklable()}, path)
    assert torch.load(path, weights_only=True) == {"step": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no partial file left behind


def test_save_weights_writes_safetensors_atomically(tmp_path):
    from safetensors.torch import load_file

    base = torch.arange(6.0)
    run.save_weights({"a": base[:3], "b": base[3:]}, tmp_path / "best.safetensors", metadata={"step": "7"})
    loaded = load_file(str(tmp_path / "best.safetensors"))
    assert torch.equal(loaded["a"], base[:3]) and torch.equal(loaded["b"], base[3:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.safetensors"]


def test_replace_folder_swaps_a_whole_folder(tmp_path):
    final, temporary = tmp_path / "checkpoint", tmp_path / "checkpoint.tmp"
    final.mkdir()
    (final / "state.json").write_text("old")
    temporary.mkdir()
    (temporary / "state.json").write_text("new")
    run.replace_folder(temporary, final)
    assert (final / "state.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_run_dir_is_under_the_runs_folder_and_logs_go_to_train_log(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STUDIO_RUNS_DIR", str(tmp_path / "runs"))
    assert not run.run_dir("toy", create=False).exists()
    folder = run.run_dir("toy")
    assert folder == tmp_path / "runs" / "toy" and folder.is_dir()
    log = run.make_logger(folder)
    log("step 1")
    log("step 2")
    lines = (folder / "train.log").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["step 1", "step 2"]
    assert capsys.readouterr().out.splitlines() == lines


def test_runs_folder_falls_back_to_the_old_text_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("STUDIO_RUNS_DIR", raising=False)
    monkeypatch.setenv("STUDIO_RUNS", str(tmp_path))
    assert run.runs_root() == tmp_path
    monkeypatch.delenv("STUDIO_RUNS")
    from studio import paths

    assert run.runs_root() == paths.install_root() / "runs"  # the checkout's git-ignored runs/


def tiny_model_and_optimizer(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return model, optimizer


def test_a_run_folder_resumes_where_it_stopped(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_RUNS_DIR", str(tmp_path))
    checkpoint = run.run_dir("toy") / run.CHECKPOINT
    assert run.read_checkpoint(checkpoint) is None  # a new run
    model, optimizer = tiny_model_and_optimizer(0)
    run.optimise(optimizer, model(torch.ones(1, 3)).sum())
    run.save_checkpoint(checkpoint, model, optimizer, {"step": 1, "history": [{"loss": 0.5}]})

    again, again_optimizer = tiny_model_and_optimizer(1)  # other weights until restored
    state = run.restore(run.read_checkpoint(checkpoint), again, again_optimizer)
    assert state == {"step": 1, "history": [{"loss": 0.5}]}
    assert torch.equal(again.weight, model.weight)
    assert again_optimizer.state_dict()["state"][0]["step"] == 1  # Adam's moments came back too
    # One more step from either gives the same weights: the resume is exact.
    for m, o in ((model, optimizer), (again, again_optimizer)):
        run.optimise(o, m(torch.ones(1, 3)).sum())
    assert torch.equal(again.weight, model.weight)


def test_a_checkpoint_saved_before_run_py_still_loads(tmp_path):
    """The format of existing run folders: torch.save of {"model", "optimizer", "state"} in checkpoint.pt."""
    model, optimizer = tiny_model_and_optimizer(0)
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": {"step": 9}},
               tmp_path / "checkpoint.pt")
    again, again_optimizer = tiny_model_and_optimizer(1)
    assert run.restore(run.read_checkpoint(tmp_path / "checkpoint.pt"), again, again_optimizer) == {"step": 9}
    assert torch.equal(again.bias, model.bias)


def test_fp16_export_is_half_precision_and_readable_and_the_model_stays_float32(tmp_path):
    pytest.importorskip("transformers")
    from safetensors.torch import load_file
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=16, n_positions=8, n_embd=8, n_layer=1, n_head=2))
    run.save_fp16_pretrained(model, tmp_path / "model")
    weights = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert {t.dtype for t in weights.values()} == {torch.float16}
    assert (tmp_path / "model" / "model.safetensors").stat().st_mode & 0o777 == 0o644
    assert next(model.parameters()).dtype == torch.float32
    loaded = GPT2LMHeadModel(model.config)
    run.load_weights(loaded, tmp_path / "model" / "model.safetensors")
    assert torch.allclose(loaded.transformer.wte.weight, model.transformer.wte.weight, atol=1e-2)
    assert run.folder_size(tmp_path / "model") == sum(f.stat().st_size for f in (tmp_path / "model").iterdir())


def test_cosine_never_goes_below_its_floor():
    assert min(run.cosine(p / 10, 1.0, 0.25) for p in range(30)) == 0.25
    assert run.cosine(0.0, 1.0) == 1.0 and math.isclose(run.cosine(1.0, 1.0), 0.0, abs_tol=1e-15)
