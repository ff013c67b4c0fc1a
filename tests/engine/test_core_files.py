"""studio.core.files: whole files or none under the visible name, and fresh output names."""

from __future__ import annotations

import pytest

from studio.core.files import PARTIAL_PREFIX, atomic_write, atomic_write_bytes, partial_path, unique_path


def test_atomic_write_leaves_no_temp_file_behind(tmp_path):
    path = atomic_write_bytes(tmp_path / "sub" / "a.txt", b"one")
    assert path.read_bytes() == b"one"

    def half_then_crash(handle):
        handle.write(b"half")
        raise RuntimeError("the writer failed")

    with pytest.raises(RuntimeError):
        atomic_write(path, half_then_crash)
    assert path.read_bytes() == b"one"  # the old file stands
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]


def test_partial_path_renames_when_whole_and_removes_when_not(tmp_path):
    target = tmp_path / "piece.mid"
    with partial_path(target) as temp:
        assert temp.name.startswith(PARTIAL_PREFIX) and temp.parent == tmp_path
        temp.write_bytes(b"MThd")
        assert not target.exists()
    assert target.read_bytes() == b"MThd"
    with pytest.raises(ValueError), partial_path(tmp_path / "other.wav") as temp:
        temp.write_bytes(b"RIFF")
        raise ValueError("the writer failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["piece.mid"]


def test_unique_path_is_safe_and_fresh(tmp_path):
    first = unique_path(tmp_path, "a boat / at sea?", ".png")
    assert first.name == "a-boat-at-sea.png"
    first.write_bytes(b"")
    assert unique_path(tmp_path, "a boat / at sea?", ".png").name == "a-boat-at-sea-2.png"
    assert unique_path(tmp_path, "///", ".md").name == "output.md"
