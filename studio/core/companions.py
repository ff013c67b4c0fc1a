"""The parts a single-file checkpoint lacks, found among the files an artist already has beside it.

FLUX and SD 3 files usually carry the transformer alone; ComfyUI keeps the VAE in `models/vae/`, the text
encoders in `models/clip/` or `models/text_encoders/`; Forge keeps `models/VAE/` and `models/text_encoder/`.
Files are matched by what their headers say and by the shapes the checkpoint expects (FLUX's pooled-text width
is CLIP-L's width; the T5 width is the transformer's text width), never by their names. Header reads only: this
runs in the window's process too (the model manager asks what is missing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from studio.core.catalog import read_safetensors_header
from studio.core.model_files import LDM, FileFacts, classify_header

# Folders beside a checkpoint's folder where the usual tools keep the other parts.
PART_FOLDERS = ("vae", "VAE", "clip", "text_encoders", "text_encoder", "t5", "CLIP")
MAX_FILES_PER_FOLDER = 200  # a header read is ~1 ms; a huge folder is not searched past this


@dataclass
class Companions:
    files: dict[str, Path] = field(default_factory=dict)  # part ("vae", "clip_l", …) -> file
    t5_tokenizer: Path | None = None  # a folder with tokenizer.json or spiece.model
    missing: tuple[str, ...] = ()  # parts (PART_LABELS keys) still not found
    use_t5: bool = False  # SD 3 runs without T5 when neither its weights nor its tokenizer are here
    notes: list[str] = field(default_factory=list)


def candidate_folders(checkpoint: Path, extra: tuple[Path, ...] = ()) -> list[Path]:
    folder = Path(checkpoint).parent
    found = [folder]
    for root in (folder.parent, folder.parent.parent, *extra):
        for name in PART_FOLDERS:
            if (root / name).is_dir():
                found.append(root / name)
    return list(dict.fromkeys(found))


def _safetensors_in(folder: Path) -> list[Path]:
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix == ".safetensors" and p.is_file())
    except OSError:
        return []
    return files[:MAX_FILES_PER_FOLDER]


def _facts(path: Path) -> FileFacts | None:
    try:
        return classify_header(read_safetensors_header(path))
    except Exception:  # noqa: BLE001 - a damaged neighbour is simply not a candidate
        return None


def _needs(header: dict, family: str) -> dict[str, int]:
    """Widths the checkpoint expects of its missing parts, read from its own shapes."""

    def shape(name: str) -> list[int] | None:
        for key in (name, LDM + name):
            if key in header:
                return header[key]["shape"]
        return None

    if family.startswith("flux"):
        return {"clip_l": (shape("vector_in.in_layer.weight") or [0, 0])[1],
                "t5xxl": (shape("txt_in.weight") or [0, 0])[1], "vae": 16}
    if family.startswith("sd3"):
        return {"pooled": (shape("y_embedder.mlp.0.weight") or [0, 0])[1],
                "t5xxl": (shape("context_embedder.weight") or [0, 0])[1], "vae": 16}
    return {"vae": 4}


def _match(part: str, facts: FileFacts, needs: dict[str, int], clip_widths: list[int]) -> bool:
    if part == "vae":
        return facts.kind == "vae" and facts.shapes.get("latent_channels") == needs.get("vae")
    if part == "t5xxl":
        return facts.parts == ("t5xxl",) and facts.shapes.get("width") == needs.get("t5xxl")
    if facts.parts != ("clip",):
        return False
    width = facts.shapes.get("width")
    if "clip_l" in needs:  # FLUX: the pooled CLIP-L output feeds vector_in
        return part == "clip_l" and width == needs["clip_l"]
    pairs = [(a, b) for a in clip_widths for b in clip_widths if a < b and a + b == needs.get("pooled")]
    if not pairs:
        return False
    narrow, wide = pairs[0]  # SD 3: CLIP-L is the narrower tower, OpenCLIP-G the wider; pooled = both
    return width == (narrow if part == "clip_l" else wide)


def find_parts(checkpoint: Path, header: dict, facts: FileFacts, wanted: list[str],
               extra: tuple[Path, ...] = ()) -> dict[str, Path]:
    needs = _needs(header, facts.family)
    candidates = []
    for folder in candidate_folders(checkpoint, extra):
        for path in _safetensors_in(folder):
            if path.resolve() != Path(checkpoint).resolve():
                other = _facts(path)
                if other is not None:
                    candidates.append((path, other))
    clip_widths = sorted({f.shapes.get("width") for _, f in candidates if f.parts == ("clip",)})
    found: dict[str, Path] = {}
    for part in wanted:
        match = next((p for p, f in candidates if _match(part, f, needs, clip_widths)), None)
        if match is not None:
            found[part] = match
    return found


def _is_t5_tokenizer(folder: Path) -> bool:
    if (folder / "spiece.model").is_file():
        return True
    tokenizer = folder / "tokenizer.json"
    if not tokenizer.is_file() or tokenizer.stat().st_size > 50 * 2**20:
        return False
    try:
        model = json.loads(tokenizer.read_text(encoding="utf-8")).get("model", {})
    except (OSError, ValueError):
        return False
    return isinstance(model, dict) and model.get("type") == "Unigram"


def _hub_tokenizer_folders() -> list[Path]:
    """T5 tokenizers in the user's Hugging Face cache (SD 3 and FLUX repos carry one; so does T5 itself)."""
    try:
        from huggingface_hub import constants

        cache = Path(constants.HF_HUB_CACHE)
    except Exception:  # noqa: BLE001 - no hub library or an odd environment: no cache to search
        return []
    found = []
    for pattern in ("models--google--t5-v1_1-xxl/snapshots/*", "models--black-forest-labs--FLUX.1-*/snapshots/*/tokenizer_2",
                    "models--stabilityai--stable-diffusion-3*/snapshots/*/tokenizer_3"):
        found.extend(sorted(cache.glob(pattern)))
    return found


def find_t5_tokenizer(checkpoint: Path, files: dict[str, Path], extra: tuple[Path, ...] = ()) -> Path | None:
    """A T5 tokenizer beside the checkpoint or its T5 weights, in a ComfyUI install, or in the Hugging Face cache."""
    places = candidate_folders(checkpoint, extra)
    if "t5xxl" in files:
        places.insert(0, files["t5xxl"].parent)
    for folder in list(places):
        try:
            places.extend(p for p in folder.iterdir() if p.is_dir() and ("t5" in p.name.lower() or "token" in p.name.lower()))
        except OSError:
            continue
    for folder in Path(checkpoint).resolve().parents:  # a ComfyUI install ships its T5 tokenizer with its code
        if (folder / "comfy" / "text_encoders" / "t5_tokenizer").is_dir():
            places.append(folder / "comfy" / "text_encoders" / "t5_tokenizer")
            break
    places.extend(_hub_tokenizer_folders())
    return next((p for p in dict.fromkeys(places) if _is_t5_tokenizer(p)), None)


def find_companions(checkpoint: Path, facts: FileFacts, extra: tuple[Path, ...] = ()) -> Companions:
    """Everything a checkpoint lacks that can be found near it; what is still missing, named."""
    checkpoint = Path(checkpoint)
    wanted = list(facts.missing)
    sd3 = facts.family.startswith("sd3")
    if sd3 and "t5xxl" not in facts.parts:
        wanted.append("t5xxl")  # optional for SD 3: used when it is here
    header = read_safetensors_header(checkpoint)
    files = find_parts(checkpoint, header, facts, wanted, extra) if wanted else {}
    missing = [p for p in facts.missing if p not in files]
    companions = Companions(files, None, ())
    if "t5xxl" in facts.parts or "t5xxl" in files:
        companions.t5_tokenizer = find_t5_tokenizer(checkpoint, files, extra)
        companions.use_t5 = companions.t5_tokenizer is not None
        if companions.t5_tokenizer is None and not sd3:
            missing.append("t5_tokenizer")
        elif companions.t5_tokenizer is None:
            companions.notes.append("T5 left out: no T5 tokenizer (tokenizer.json or spiece.model) beside the "
                                    "checkpoint; SD 3 runs on its CLIP encoders alone, with weaker prompt following.")
    elif sd3:
        companions.notes.append("No T5-XXL text encoder with this checkpoint: SD 3 runs on its CLIP encoders alone, "
                                "with weaker prompt following.")
    elif facts.family.startswith("flux") and find_t5_tokenizer(checkpoint, files, extra) is None:
        missing.append("t5_tokenizer")
    companions.missing = tuple(dict.fromkeys(missing))
    return companions
