"""Model sources and load safety: pickles refused by their bytes, damaged safetensors named clearly."""

import pickle
import time
import zipfile

import pytest

from studio.core import catalog
from studio.core.catalog import CorruptModelError, UnsafeModelError, check_weights_file, check_weights_folder
from studio.core.jobs import UserError


def write_safetensors(path, tensors=None):
    import torch
    from safetensors.torch import save_file

    save_file(tensors or {"w": torch.ones(16, 16)}, str(path))
    return path


def test_valid_safetensors_passes(tmp_path):
    check_weights_file(write_safetensors(tmp_path / "ok.safetensors"))


def test_pickle_named_safetensors_is_refused_by_its_bytes(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    with pytest.raises(UnsafeModelError, match="pickle"):
        check_weights_file(path)


def test_torch_zip_checkpoint_is_refused(tmp_path):
    path = tmp_path / "model.ckpt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": 1}))
    with pytest.raises(UnsafeModelError, match="convert"):
        check_weights_file(path)


def test_truncated_safetensors_names_the_file_quickly(tmp_path):
    path = write_safetensors(tmp_path / "big.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    started = time.perf_counter()
    with pytest.raises(CorruptModelError, match="big.safetensors.*truncated"):
        check_weights_file(path)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("entry", [{"dtype": "F32", "shape": [1]}, "not a tensor", {"data_offsets": None}])
def test_a_header_entry_without_offsets_is_a_clear_error(tmp_path, entry):
    import json
    import struct

    header = json.dumps({"weight": entry}).encode()
    path = tmp_path / "odd.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    with pytest.raises(CorruptModelError, match="odd.safetensors.*offsets"):
        check_weights_file(path)


def test_header_cut_short_and_garbage_are_clear_errors(tmp_path):
    path = write_safetensors(tmp_path / "cut.safetensors")
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CorruptModelError, match="cut.safetensors"):
        check_weights_file(path)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(CorruptModelError, match="garbage.safetensors"):
        check_weights_file(garbage)


def test_folder_with_only_pickles_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps({}))
    with pytest.raises(UnsafeModelError):
        check_weights_folder(tmp_path)
    write_safetensors(tmp_path / "model.safetensors")
    check_weights_folder(tmp_path)  # safetensors present: the .bin is simply never read


def test_resolve_kinds(tmp_path):
    diffusers_dir = tmp_path / "sd"
    diffusers_dir.mkdir()
    (diffusers_dir / "model_index.json").write_text("{}")
    assert catalog.resolve(str(diffusers_dir)).kind == "diffusers"
    lm = tmp_path / "lm"
    lm.mkdir()
    (lm / "config.json").write_text('{"model_type": "gpt2"}')
    assert catalog.resolve(str(lm)).kind == "transformers"
    markov = tmp_path / "markov"
    markov.mkdir()
    (markov / "config.json").write_text('{"model_type": "studio-markov"}')
    assert catalog.resolve(str(markov)).kind == "markov"
    single = write_safetensors(tmp_path / "model.safetensors")
    assert catalog.resolve(str(single)).kind == "single_file"
    assert catalog.resolve("stabilityai/sd-turbo").kind == "hub"


@pytest.mark.parametrize("ref", ["", "builtin:no-such-model", "/no/such/file.safetensors", "not a model ref"])
def test_resolve_errors_are_user_errors(ref):
    with pytest.raises(UserError):
        catalog.resolve(ref)


def test_content_hash_is_stable_and_cached(tmp_path):
    path = write_safetensors(tmp_path / "a.safetensors")
    first = catalog.content_hash(path)
    assert len(first) == 10 and first == catalog.content_hash(path)
    other = write_safetensors(tmp_path / "b.safetensors", {"w": __import__("torch").zeros(3)})
    assert catalog.content_hash(other) != first


def test_convert_pickle_uses_the_safe_loader(tmp_path):
    import torch

    good = tmp_path / "good.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, good)
    converted = catalog.convert_pickle_to_safetensors(good)
    check_weights_file(converted)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as handle:
        pickle.dump({"w": Evil()}, handle)
    with pytest.raises(UnsafeModelError, match="refused"):
        catalog.convert_pickle_to_safetensors(evil)


def test_convert_finds_nested_tensors_and_handles_a_pickle_named_safetensors(tmp_path):
    import torch
    from safetensors.torch import load_file

    wrapped = tmp_path / "trained.pt"
    torch.save({"model": {"w": torch.ones(3)}, "optimizer": {"state": {0: {"m": torch.zeros(3)}}}, "epoch": 5}, wrapped)
    assert set(load_file(catalog.convert_pickle_to_safetensors(wrapped))) == {"w"}  # weights only, no optimiser

    nested = tmp_path / "nested.pt"
    torch.save({"w": torch.ones(1), "meta": {"x": torch.ones(2)}}, nested)
    assert set(load_file(catalog.convert_pickle_to_safetensors(nested))) == {"w", "meta.x"}

    renamed = tmp_path / "renamed.safetensors"  # what the "is a pickle" message tells users to convert
    torch.save({"w": torch.ones(3)}, renamed)
    converted = catalog.convert_pickle_to_safetensors(renamed)
    assert converted.name == "renamed.converted.safetensors" and renamed.read_bytes()[:2] == b"PK"
    assert set(load_file(converted)) == {"w"}

    empty = tmp_path / "empty.pt"
    torch.save({"epoch": 5}, empty)
    with pytest.raises(CorruptModelError, match="no tensors"):
        catalog.convert_pickle_to_safetensors(empty)
