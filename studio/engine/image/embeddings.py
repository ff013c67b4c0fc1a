"""Textual-inversion embeddings (A1111's `embeddings/` folder): used by file name in the prompt and the negative.

Formats, as A1111 writes and reads them: safetensors with `emb_params` (SD 1.x/2.x) or `clip_l` + `clip_g`
(SDXL); older `.pt`/`.bin` files hold `string_to_param: {"*": tensor}` and are read only through
`torch.load(weights_only=True)`, which builds tensors, dicts and numbers and nothing else. Found in the model
folders (`core/model_folders.py`); loaded only when a prompt names one; kept per loaded model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from studio.core import catalog
from studio.core.jobs import UserError
from studio.core.model_folders import FoundFile, files_of_kind
from studio.engine.image.conditioning import check_embedding_fits
from studio.engine.image.prompts import embedding_names_in


@dataclass
class Embedding:
    name: str
    path: Path
    vectors: dict = field(default_factory=dict)  # "clip_l" / "clip_g" (SDXL files) or "" -> (count, width) tensor
    hash: str = ""  # A1111's "TI hashes": the first 12 hex digits of the file's sha256

    @property
    def count(self) -> int:
        return int(next(iter(self.vectors.values())).shape[0])

    def vectors_for(self, key: str, width: int):
        vectors = self.vectors.get(key) if key else self.vectors.get("", self.vectors.get("clip_l"))
        if vectors is None:
            raise UserError(f"the embedding {self.name} has no vectors for this model's {key or 'CLIP'} text encoder")
        check_embedding_fits(self.name, int(vectors.shape[-1]), width)
        return vectors


def _tensors_of(data) -> dict:
    """The vectors in an A1111 embedding file, by text encoder."""
    import torch

    if not isinstance(data, dict):
        raise UserError("not an embedding file (no tensors inside)")
    if "clip_l" in data and "clip_g" in data:
        return {"clip_l": data["clip_l"], "clip_g": data["clip_g"]}
    if "emb_params" in data:
        return {"": data["emb_params"]}
    params = data.get("string_to_param")
    if isinstance(params, dict) and params:
        return {"": next(iter(params.values()))}
    tensors = [v for v in data.values() if isinstance(v, torch.Tensor)]
    if len(tensors) == 1:  # a bare single-tensor file (some trainers save just the vectors)
        return {"": tensors[0]}
    raise UserError(f"not an embedding file A1111 would read (keys: {', '.join(list(data)[:5])})")


def load_embedding(path: Path) -> Embedding:
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        catalog.check_weights_file(path)
        from safetensors.torch import load_file

        data = load_file(str(path))
    else:
        try:
            with open(path, "rb") as handle:  # weights_only: tensors, dicts and numbers only; nothing runs
                data = torch.load(handle, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, … for refused content
            raise UserError(f"{path.name}: refused by the safe loader ({exc})") from exc
    try:
        vectors = _tensors_of(data)
    except UserError as exc:
        raise UserError(f"{path.name}: {exc}") from None
    vectors = {k: v.detach().float().reshape(-1, v.shape[-1]) for k, v in vectors.items()}
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return Embedding(path.stem, path, vectors, digest)


def available_embeddings() -> dict[str, FoundFile]:
    """Embedding files in the model folders, by name (the first found wins, as in A1111)."""
    found: dict[str, FoundFile] = {}
    for file in files_of_kind("embedding"):
        found.setdefault(file.name, file)
    return found


def embeddings_for(texts: list[str], cache: dict, available: dict[str, FoundFile] | None = None) -> dict[str, Embedding]:
    """The embeddings the texts name, loaded (or taken from `cache`, keyed by path, size and mtime)."""
    available = available_embeddings() if available is None else available
    used: dict[str, Embedding] = {}
    for name in embedding_names_in(" ".join(texts), sorted(available)):
        file = available[name]
        stat = file.path.stat()
        key = (str(file.path), stat.st_size, stat.st_mtime_ns)
        if key not in cache:
            cache[key] = load_embedding(file.path)
        used[name] = cache[key]
    return used
