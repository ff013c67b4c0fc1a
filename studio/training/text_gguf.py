"""The built-in text-gpt as a GGUF file, so llama.cpp (llama-cpp-python) runs it: the app's fastest path.

    python -m studio.training.text gguf          # models/text-gpt/model.safetensors -> models/text-gpt/text-gpt.gguf

Written with the `gguf` package (llama.cpp's own gguf-py) the way llama.cpp's converter writes a GPT-2
(`convert_hf_to_gguf.py`, conversion/gpt2.py): the same tensor names, Conv1D weights transposed to llama.cpp's
layout, the byte-level BPE vocabulary with its merges, and the pre-tokenizer named "gpt-2" (the converter can't name
ours: it identifies tokenizers by a hash of a test string, and ours was trained here). The weights stay as the
safetensors hold them (fp16; norms and biases in f32, as llama.cpp wants them), so the file is ~8 MB and both
runtimes compute with the same numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

GGUF_NAME = "text-gpt.gguf"
# Conv1D layers of GPT-2 store (in, out); llama.cpp's matmuls want (out, in), as the converter transposes them.
TRANSPOSED = (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")


def export_gguf(folder: Path, out: Path | None = None, chat_template: str | None = None) -> Path:
    """Write `folder`'s GPT-2 (config.json, model.safetensors, tokenizer.json) as one GGUF file; returns its path.
    The built-in has no chat template (it never learnt a chat); `chat_template` writes one (the tests use it)."""
    import gguf
    from safetensors.numpy import load_file

    folder = Path(folder)
    out = Path(out) if out else folder / GGUF_NAME
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    writer = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.GPT2])
    writer.add_name(folder.name)
    writer.add_block_count(config["n_layer"])
    writer.add_context_length(config["n_positions"])
    writer.add_embedding_length(config["n_embd"])
    writer.add_feed_forward_length(config.get("n_inner") or 4 * config["n_embd"])
    writer.add_head_count(config["n_head"])
    writer.add_layer_norm_eps(config["layer_norm_epsilon"])
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    add_vocabulary(writer, folder, config)
    if chat_template:
        writer.add_chat_template(chat_template)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GPT2, config["n_layer"])
    for name, weights in sorted(load_file(str(folder / "model.safetensors")).items()):
        if name.endswith((".attn.bias", ".attn.masked_bias")) or name == "lm_head.weight":
            continue  # the causal mask is llama.cpp's own; the output layer is tied to the embedding
        if name.endswith(TRANSPOSED):
            weights = weights.T
        mapped = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise ValueError(f"{name}: no GGUF name for this tensor (not a GPT-2?)")
        # 1-D tensors (norms, biases) in f32, as the converter writes them; matrices as stored (fp16)
        writer.add_tensor(mapped, np.ascontiguousarray(weights.astype(np.float32 if weights.ndim == 1 else np.float16)))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def add_vocabulary(writer, folder: Path, config: dict) -> None:
    """The byte-level BPE tokenizer: tokens by id, their kinds, the merges, end of text."""
    import gguf

    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    vocab: dict[str, int] = tokenizer["model"]["vocab"]
    special = {t["id"]: t["content"] for t in tokenizer.get("added_tokens", [])}
    by_id = {i: t for t, i in vocab.items()} | special
    size = config["vocab_size"]
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(size)]
    kinds = [gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL if i in by_id
             else gguf.TokenType.UNUSED for i in range(size)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")  # GPT-2's own split regex, which ours uses (ByteLevel, use_regex)
    writer.add_token_list(tokens)
    writer.add_token_types(kinds)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(config.get("bos_token_id", 0))
    writer.add_eos_token_id(config.get("eos_token_id", 0))
    writer.add_add_bos_token(False)  # GPT-2 reads a prompt as it is; the app starts an empty one with end of text
