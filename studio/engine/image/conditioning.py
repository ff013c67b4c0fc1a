"""A1111's prompt conditioning for the CLIP-based families (SD 1.x/2.x, SDXL and the built-in models).

What it does, as A1111 does it (`modules/sd_hijack_clip.py`, emphasis "Original"):
1. The prompt is split into (text, weight) runs (`prompts.parse_attention`) and tokenized run by run.
2. Tokens fill 75-token chunks; `BREAK` closes a chunk; a chunk that fills up within 20 tokens of a comma moves
   the words after the comma to the next chunk. Each chunk is wrapped in start/end tokens and padded to 77.
3. Each chunk is encoded on its own; each token's vector is multiplied by its weight and the chunk is rescaled
   to its original mean. Chunks are joined end to end, so a 150-token prompt is two chunks, not cut at 77.
4. A textual-inversion embedding named in the text takes its vectors' places in the chunk (placeholders whose
   input embeddings are replaced by the file's vectors while the text encoder runs).
5. The negative prompt is padded with empty-prompt chunks to the same length (A1111's `pad_cond`).
SDXL encodes with both towers (penultimate layers, side by side) and takes the pooled vector from the first chunk.

Judged against compel: compel's `(word)1.2` syntax is not A1111's and it down-weights by blending prompts
rather than scaling vectors, so A1111 pictures would not come back the same; this is ~200 lines of our own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from studio.core.jobs import UserError
from studio.engine.image.prompts import parse_attention

CHUNK = 75  # tokens per chunk between the start and end tokens (CLIP's 77-token window)
COMMA_BACKTRACK = 20  # A1111's default "comma padding backtrack"


@dataclass
class Chunk:
    tokens: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    fixes: list[tuple[int, str]] = field(default_factory=list)  # (offset among the 77, embedding name)


def _name_tokens(tokenizer, embeddings: dict) -> list[tuple[list[int], str, int]]:
    """Each embedding's name as the tokenizer spells it, longest first, with its vector count."""
    named = []
    for name, embedding in embeddings.items():
        ids = tokenizer(name, add_special_tokens=False, truncation=False)["input_ids"]
        named.append((ids, name, embedding.count))
    return sorted(named, key=lambda item: -len(item[0]))


def _embedding_at(tokens: list[int], position: int, named) -> tuple[str, int, int] | None:
    for ids, name, count in named:
        if ids and tokens[position : position + len(ids)] == ids:
            return name, count, len(ids)
    return None


def chunk_prompt(tokenizer, text: str, embeddings: dict | None = None) -> list[Chunk]:
    """The prompt as A1111 chunks it: 77 tokens each (start, 75, end), weights alongside, embeddings placed."""
    start, end = tokenizer.bos_token_id, tokenizer.eos_token_id
    comma = tokenizer(",", add_special_tokens=False)["input_ids"][-1]
    named = _name_tokens(tokenizer, embeddings or {})
    parsed = parse_attention(text)
    tokenized = [tokenizer(piece, add_special_tokens=False, truncation=False)["input_ids"] for piece, _ in parsed]
    chunks: list[Chunk] = []
    chunk = Chunk()
    last_comma = -1

    def close() -> None:
        nonlocal chunk, last_comma
        pad = CHUNK - len(chunk.tokens)
        chunk.tokens = [start] + chunk.tokens + [end] * pad + [end]
        chunk.weights = [1.0] + chunk.weights + [1.0] * pad + [1.0]
        chunk.fixes = [(offset + 1, name) for offset, name in chunk.fixes]
        chunks.append(chunk)
        chunk, last_comma = Chunk(), -1

    for tokens, (piece, weight) in zip(tokenized, parsed, strict=True):
        if piece == "BREAK" and weight == -1:
            close()
            continue
        position = 0
        while position < len(tokens):
            token = tokens[position]
            if token == comma:
                last_comma = len(chunk.tokens)
            elif len(chunk.tokens) == CHUNK and last_comma != -1 and len(chunk.tokens) - last_comma <= COMMA_BACKTRACK:
                cut = last_comma + 1  # the words after the last comma move to the next chunk
                moved = (chunk.tokens[cut:], chunk.weights[cut:], [(o - cut, n) for o, n in chunk.fixes if o >= cut])
                chunk.tokens, chunk.weights = chunk.tokens[:cut], chunk.weights[:cut]
                chunk.fixes = [(o, n) for o, n in chunk.fixes if o < cut]
                close()
                chunk.tokens, chunk.weights, chunk.fixes = list(moved[0]), list(moved[1]), list(moved[2])
            if len(chunk.tokens) == CHUNK:
                close()
            found = _embedding_at(tokens, position, named)
            if found is None:
                chunk.tokens.append(token)
                chunk.weights.append(weight)
                position += 1
                continue
            name, count, spelled = found
            if len(chunk.tokens) + count > CHUNK:
                close()
            chunk.fixes.append((len(chunk.tokens), name))
            chunk.tokens += [start] * count  # placeholders: their input vectors are replaced while encoding
            chunk.weights += [weight] * count
            position += spelled
    if chunk.tokens or not chunks:
        close()
    return chunks


# --- encoding ---------------------------------------------------------------------------------------------


@dataclass
class Tower:
    """One text encoder as A1111 reads it."""

    tokenizer: object
    encoder: object
    key: str  # which vectors of an embedding file it takes: "clip_l", "clip_g" or "" (SD 1.x/2.x: the only ones)
    layer: int  # hidden state to read, counted from the end: -1 = the last
    final_norm: bool  # SD 1.x/2.x pass an earlier layer through the final layer norm (clip skip); SDXL does not
    pooled: bool = False


def towers(pipe, architecture: str, clip_skip: int) -> list[Tower]:
    if architecture == "sdxl":  # SDXL reads the penultimate layer of both towers, clip skip counting from there
        return [Tower(pipe.tokenizer, pipe.text_encoder, "clip_l", -(clip_skip + 2), False),
                Tower(pipe.tokenizer_2, pipe.text_encoder_2, "clip_g", -(clip_skip + 2), False, pooled=True)]
    return [Tower(pipe.tokenizer, pipe.text_encoder, "", -(clip_skip + 1), clip_skip > 0)]


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _encode_chunk(tower: Tower, chunk: Chunk, embeddings: dict, device):
    import torch

    ids = list(chunk.tokens)
    pad, end = _pad_id(tower.tokenizer), tower.tokenizer.eos_token_id
    if pad != end:  # OpenCLIP pads with its own token after the first end token (A1111 does the same)
        first_end = ids.index(end)
        ids = ids[: first_end + 1] + [pad] * (len(ids) - first_end - 1)
    table = tower.encoder.get_input_embeddings()

    def place_vectors(_module, _inputs, output):
        for offset, name in chunk.fixes:
            vectors = embeddings[name].vectors_for(tower.key, output.shape[-1])
            output[0, offset : offset + len(vectors)] = vectors.to(output)
        return output

    hook = table.register_forward_hook(place_vectors) if chunk.fixes else None
    try:
        out = tower.encoder(torch.tensor([ids], device=device), output_hidden_states=True)
    finally:
        if hook is not None:
            hook.remove()
    z = out.hidden_states[tower.layer] if (tower.layer != -1 or tower.final_norm) else out.last_hidden_state
    if tower.final_norm:
        z = getattr(tower.encoder, "text_model", tower.encoder).final_layer_norm(z)
    if any(w != 1.0 for w in chunk.weights):
        weights = torch.tensor(chunk.weights, device=z.device, dtype=z.dtype).view(1, -1, 1)
        original_mean = z.mean()
        z = z * weights
        z = z * (original_mean / z.mean())  # A1111's "Original" emphasis keeps the chunk's mean
    pooled = out.text_embeds if tower.pooled else None
    return z, pooled


def encode_text(towers_: list[Tower], text: str, embeddings: dict, device):
    """(embeddings (1, 77 x chunks, width), pooled or None) for one prompt."""
    import torch

    per_tower, pooled = [], None
    for tower in towers_:
        chunks = chunk_prompt(tower.tokenizer, text, embeddings)
        encoded = [_encode_chunk(tower, chunk, embeddings, device) for chunk in chunks]
        per_tower.append(torch.cat([z for z, _ in encoded], dim=1))
        if tower.pooled:
            pooled = encoded[0][1]  # the first chunk's, as A1111 does
    return torch.cat(per_tower, dim=-1), pooled


def _pad_to(z, length: int, empty):
    import torch

    repeats = (length - z.shape[1]) // empty.shape[1]
    return torch.cat([z] + [empty] * repeats, dim=1) if repeats > 0 else z


def a1111_prompt_embeds(pipe, architecture: str, prompt: str, negative: str, clip_skip: int, embeddings: dict) -> dict:
    """The pipeline's prompt_embeds / negative_prompt_embeds (and SDXL's pooled ones) for a prompt in A1111 syntax."""
    import torch

    device = pipe._execution_device
    used = towers(pipe, architecture, clip_skip)
    with torch.inference_mode():
        cond, pooled = encode_text(used, prompt, embeddings, device)
        zero_negative = not negative and architecture == "sdxl" and pipe.config.get("force_zeros_for_empty_prompt")
        if zero_negative:  # as diffusers' SDXL pipelines do for an empty negative prompt
            uncond, negative_pooled = torch.zeros_like(cond), torch.zeros_like(pooled)
        else:
            uncond, negative_pooled = encode_text(used, negative, embeddings, device)
            empty, _ = encode_text(used, "", {}, device)
            length = max(cond.shape[1], uncond.shape[1])
            cond, uncond = _pad_to(cond, length, empty), _pad_to(uncond, length, empty)
    dtype = used[0].encoder.dtype
    kwargs = {"prompt_embeds": cond.to(dtype), "negative_prompt_embeds": uncond.to(dtype)}
    if architecture == "sdxl":
        kwargs.update(pooled_prompt_embeds=pooled.to(dtype), negative_pooled_prompt_embeds=negative_pooled.to(dtype))
    return kwargs


def check_embedding_fits(name: str, width: int, expected: int) -> None:
    if width != expected:
        raise UserError(f"the embedding {name} holds {width}-wide vectors, but this model's text encoder takes "
                        f"{expected}: it was made for another model family")
