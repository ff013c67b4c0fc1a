"""The Train tab's Data step: what a folder holds and what is wrong with it, said before anything runs."""

from __future__ import annotations

import pytest

from studio.core.devices import DeviceChoice
from studio.core.jobs import Job, TaskContext
from studio.engine.train.settings import gpu_needs, gpu_tier
from studio.training.finetune_data import can_train, first_draft_captions, gpu_problem, scan_folder, scan_task
from tests.engine.finetune_fixtures import abc_folder, picture_folder, text_folder


def errors(report: dict) -> list[str]:
    return [p["text"] for p in report["problems"] if p["level"] == "error"]


def warnings(report: dict) -> list[str]:
    return [p["text"] for p in report["problems"] if p["level"] == "warning"]


@pytest.mark.parametrize("medium", ["image", "text", "music"])
def test_an_empty_folder_is_refused_in_one_line(tmp_path, medium):
    report = scan_folder(tmp_path, medium)
    assert not can_train(report) and len(errors(report)) == 1 and "nothing to learn from" in errors(report)[0]
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    assert "1 files, none of them" in errors(scan_folder(tmp_path, medium))[0]
    assert "is not a folder" in errors(scan_folder(tmp_path / "missing", medium))[0]


def test_a_folder_of_unreadable_files_is_refused_and_names_them(tmp_path):
    for name in ("a.png", "b.jpg", "c.webp"):
        (tmp_path / name).write_bytes(b"these bytes are no picture")
    report = scan_folder(tmp_path, "image")
    assert not can_train(report)
    assert errors(report) == ["3 of 3 files can't be read and are left out: a.png, b.jpg, c.webp"]
    (tmp_path / "bad.mid").write_bytes(b"MThd broken")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\xfa not utf-8")
    assert errors(scan_folder(tmp_path, "music"))[0].startswith("1 of 1 files can't be read")
    assert errors(scan_folder(tmp_path, "text"))[0].startswith("1 of 1 files can't be read")


def test_a_folder_too_big_for_memory_is_refused_before_a_byte_is_read(tmp_path):
    huge = tmp_path / "all-of-it.txt"
    with open(huge, "wb") as handle:  # sparse: 256 GB to the file system's stat, nothing on the disk
        handle.truncate(256 * 2**30)
    report = scan_folder(tmp_path, "text")
    assert not can_train(report) and "too big for this computer's memory" in errors(report)[0]
    assert report["memory"]["needed"] > report["memory"]["available"] and report["items"] == []
    small = text_folder(tmp_path / "small")
    assert "too big" in errors(scan_folder(small, "text", available=2**16))[0]  # a computer with 64 kB free


def test_duplicates_small_pictures_and_too_few_items_are_listed(tmp_path):
    folder = picture_folder(tmp_path / "pics", count=6, size=16)
    (folder / "copy.png").write_bytes((folder / "blocks_00.png").read_bytes())
    report = scan_folder(folder, "image", size=64)
    assert len(report["items"]) == 6
    text = " | ".join(warnings(report))
    assert "1 duplicates are used once: copy.png = blocks_00.png" in text
    assert "6 pictures are much smaller than the model's 64×64" in text
    assert "Only 6 pictures" in text and can_train(report)
    assert [i["caption"] for i in report["items"][:2]] == ["red blocks number 0", "red blocks number 1"]  # sidecars
    drafted = first_draft_captions(folder, report["items"])
    assert drafted[0]["caption"] == "red blocks"  # the main colour read off the picture + the file name's words


def test_music_is_read_with_its_key_metre_and_tempo_and_the_rest_explained(tmp_path):
    folder = abc_folder(tmp_path / "tunes", tunes=4)
    (folder / "waltz.abc").write_text("X:1\nT:W\nM:3/4\nL:1/8\nK:D\n|" + " ".join(["d2 f2 a2"] * 6) + "|\n")
    (folder / "odd.abc").write_text("X:1\nT:Odd\nM:7/8\nL:1/8\nK:C\n|" + " ".join(["CDEFGAB"] * 4) + "|\n")
    report = scan_folder(folder, "music")
    tags = {item["id"]: item["tags"] for item in report["items"]}
    assert tags["waltz.abc"] == {"key": "D major", "metre": "3/4", "tempo": "unknown", "voices": 1, "style": "tune"}
    assert tags["tunes.abc#1"]["key"] == "G major"
    assert "odd.abc: in 7/8 (the model knows" in warnings(report)[0]
    assert "Only 5 pieces" in " ".join(warnings(report)) and can_train(report)


def test_too_little_text_is_an_error_and_a_little_a_warning(tmp_path):
    (tmp_path / "a.txt").write_text("Just one line.")
    assert "Only 0.0 kB of text" in errors(scan_folder(tmp_path, "text"))[0]
    assert warnings(scan_folder(text_folder(tmp_path / "more", files=1), "text"))[-1].startswith("Only ")


def test_the_scan_job_reads_the_base_model_size_and_drafts_captions(tmp_path, tiny_sd_folder):
    folder = picture_folder(tmp_path / "pics", count=10)
    ctx = TaskContext(report=lambda p: None, cancelled=lambda: False, models=None,
                      device=DeviceChoice("cpu", "float32", "CPU"))
    found = scan_task(Job("train.scan", args={"folder": str(folder), "medium": "image", "model": str(tiny_sd_folder),
                                              "draft_captions": True}), ctx).value
    assert found["size"] == 32 and found["can_train"] and found["items"][0]["caption"] == "red blocks"
    assert found["items"][0]["detail"] == "32×32"


def test_a_full_size_model_on_a_computer_without_a_gpu_says_what_it_would_need():
    import torch

    assert gpu_problem(1_000_000) is None  # the built-ins train on the processor
    message = gpu_problem(860_000_000)
    if torch.cuda.is_available():
        assert message is None
    else:
        assert message.startswith("This model (860 M parameters in its UNet) trains on an NVIDIA GPU with at least 6 GB")
    assert gpu_needs(860_000_000) == gpu_problem(860_000_000) or torch.cuda.is_available()
    assert gpu_tier(4) is None and gpu_tier(8).vram_gb == 6 and gpu_tier(16).text_encoder
    assert gpu_tier(24).resolution == 768 and gpu_tier(6).checkpointing
