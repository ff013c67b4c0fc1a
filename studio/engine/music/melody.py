"""The melody latent: a small MusicVAE-style VAE over two-bar melodies, so melodies can be interpolated.

A melody is 32 steps on the 16th-note grid (8 beats: two bars of 4/4). Each step holds one token,
the MusicVAE melody encoding (Roberts et al., "A Hierarchical Latent Vector Model for Learning
Long-Term Structure in Music", 2018):

    REST (0)   nothing sounds            HOLD (1)   the previous note goes on
    2 + p - PITCH_LOW                    a new note of MIDI pitch p starts (PITCH_LOW..PITCH_HIGH)

The network (built by `melody_vae_class`): a bidirectional GRU reads the tokens, its two final
states give mu and log-variance of z; a GRU decoder starts from tanh(W z) and sees z and the previous
token at every step. Decoding here is greedy (argmax), so one z always gives the same melody.

torch is imported inside functions: importing this module stays cheap (the panel reads constants).
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.interpolate import interpolate as interpolate_points
from studio.core.jobs import Artifact, Progress, Result, UserError
from studio.core.recipe import Recipe
from studio.engine.music.piece import MusicPiece, Note

STEPS_PER_BEAT = 4  # the 16th-note grid, as engine.music
STEPS = 32  # two bars of 4/4: MusicVAE's 2-bar melody
REST, HOLD = 0, 1
PITCH_LOW, PITCH_HIGH = 48, 84  # C3..C6: where folk tunes and chorale sopranos live (octave-shifted into it)
MODEL_TYPE = "studio-melody-vae"
WEIGHTS_FILE = "model.safetensors"
DEFAULT_MODEL = "builtin:melody-vae"
DEFAULT_TEMPO = 110.0
MELODY_VELOCITY = 90


@dataclass(frozen=True)
class MelodyVaeConfig:
    steps: int = STEPS
    pitch_low: int = PITCH_LOW
    pitch_high: int = PITCH_HIGH
    embed: int = 64  # 39 tokens need few dimensions
    encoder_hidden: int = 256  # per direction; sized for ~40 min of training on one CPU thread
    decoder_hidden: int = 256
    z_dim: int = 32  # MusicVAE uses 256-512; 2-bar folk melodies need far less
    model_type: str = MODEL_TYPE

    @property
    def vocab(self) -> int:
        return 2 + self.pitch_high - self.pitch_low + 1

    @property
    def start_token(self) -> int:  # the decoder's first input: an extra embedding row, never predicted
        return self.vocab

    @property
    def unknown_token(self) -> int:  # replaces dropped decoder inputs in training ("word dropout")
        return self.vocab + 1

    @classmethod
    def from_dict(cls, data: dict) -> MelodyVaeConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# --- notes <-> steps -------------------------------------------------------------------------


def into_range(pitch: int, low: int = PITCH_LOW, high: int = PITCH_HIGH) -> int:
    """Move a pitch by octaves into [low, high]."""
    while pitch < low:
        pitch += 12
    while pitch > high:
        pitch -= 12
    return pitch


def melody_tokens(notes, start: float = 0.0, steps: int = STEPS, low: int = PITCH_LOW,
                  high: int = PITCH_HIGH) -> list[int]:
    """The notes starting in [start, start + steps/4 beats) as step tokens.

    Monophonic: when notes start together the highest wins, and a note is cut where the next one
    starts. Notes sounding into the window from before it are rests (as in MusicVAE).
    """
    onsets: dict[int, tuple[int, int]] = {}  # step -> (pitch, end step)
    for note in notes:
        on = round((note.start - start) * STEPS_PER_BEAT)
        off = max(on + 1, round((note.start + note.duration - start) * STEPS_PER_BEAT))
        if 0 <= on < steps and (on not in onsets or note.pitch > onsets[on][0]):
            onsets[on] = (int(note.pitch), off)
    tokens = [REST] * steps
    order = sorted(onsets)
    for index, on in enumerate(order):
        pitch, off = onsets[on]
        following = order[index + 1] if index + 1 < len(order) else steps
        tokens[on] = 2 + into_range(pitch, low, high) - low
        for step in range(on + 1, min(off, following)):
            tokens[step] = HOLD
    return tokens


def tokens_to_notes(tokens, start: float = 0.0, low: int = PITCH_LOW, velocity: int = MELODY_VELOCITY,
                    voice: int = 0) -> list[Note]:
    """Step tokens back to notes; a HOLD with no note sounding (after a REST) is a rest."""
    notes: list[Note] = []
    pitch, onset, length = None, 0, 0
    for step, token in enumerate(list(tokens) + [REST]):
        token = int(token)
        if token == HOLD and pitch is not None:
            length += 1
            continue
        if pitch is not None:
            notes.append(Note(pitch, start + onset / STEPS_PER_BEAT, length / STEPS_PER_BEAT, velocity, voice))
        pitch, onset, length = (low + token - 2, step, 1) if token >= 2 else (None, 0, 0)
    return notes


def top_voice(piece: MusicPiece) -> list[Note]:
    """The voice with the highest mean pitch (a chorale's soprano, a tune's melody)."""
    if not piece.notes:
        return []
    voices: dict[int, list[Note]] = {}
    for note in piece.notes:
        voices.setdefault(note.voice, []).append(note)
    return max(voices.values(), key=lambda notes: sum(n.pitch for n in notes) / len(notes))


def melody_of_piece(piece: MusicPiece, start_beat: float = 0.0) -> list[int]:
    """Step tokens of the first 8 beats (two 4/4 bars) of a piece's top voice."""
    return melody_tokens(top_voice(piece), start=start_beat)


def melody_piece(tokens, tempo_bpm: float = DEFAULT_TEMPO) -> MusicPiece:
    return MusicPiece(tokens_to_notes(tokens), tempo_bpm=tempo_bpm, metre="4/4", style="tune")


# --- the network ------------------------------------------------------------------------------


@functools.cache
def melody_vae_class():
    """The torch module class, made on first use so that importing this file does not import torch."""
    import torch
    from torch import nn

    class MelodyVae(nn.Module):
        def __init__(self, config: MelodyVaeConfig) -> None:
            super().__init__()
            self.config = config
            self.embed = nn.Embedding(config.vocab + 2, config.embed)  # + start and unknown tokens
            self.encoder = nn.GRU(config.embed, config.encoder_hidden, batch_first=True, bidirectional=True)
            self.to_mu = nn.Linear(2 * config.encoder_hidden, config.z_dim)
            self.to_logvar = nn.Linear(2 * config.encoder_hidden, config.z_dim)
            self.z_to_hidden = nn.Linear(config.z_dim, config.decoder_hidden)
            self.decoder = nn.GRU(config.embed + config.z_dim, config.decoder_hidden, batch_first=True)
            self.out = nn.Linear(config.decoder_hidden, config.vocab)

        def encode(self, tokens):
            """(B, T) tokens -> mu, logvar, each (B, z_dim)."""
            _, last = self.encoder(self.embed(tokens))  # last: (2, B, H), forward and backward final states
            both = torch.cat([last[0], last[1]], dim=-1)
            return self.to_mu(both), self.to_logvar(both)

        def decoder_inputs(self, tokens, dropout: float = 0.0):
            start = torch.full_like(tokens[:, :1], self.config.start_token)
            inputs = torch.cat([start, tokens[:, :-1]], dim=1)  # teacher forcing: the true previous token
            if dropout > 0:  # hide some previous tokens, so the decoder must lean on z
                hidden = torch.rand(inputs.shape, device=inputs.device) < dropout
                hidden[:, 0] = False
                inputs = inputs.masked_fill(hidden, self.config.unknown_token)
            return inputs

        def decode_logits(self, z, tokens, dropout: float = 0.0):
            """Teacher-forced logits (B, T, vocab) for the target tokens."""
            inputs = self.embed(self.decoder_inputs(tokens, dropout))
            zs = z[:, None, :].expand(-1, inputs.shape[1], -1)
            hidden = torch.tanh(self.z_to_hidden(z))[None]
            out, _ = self.decoder(torch.cat([inputs, zs], dim=-1), hidden)
            return self.out(out)

        @torch.no_grad()
        def greedy(self, z, steps: int | None = None):
            """(B, z_dim) -> (B, steps) tokens, each step the most likely token given the ones before."""
            steps = steps or self.config.steps
            token = torch.full((z.shape[0], 1), self.config.start_token, dtype=torch.long, device=z.device)
            hidden = torch.tanh(self.z_to_hidden(z))[None]
            chosen = []
            for _ in range(steps):
                step_in = torch.cat([self.embed(token), z[:, None, :]], dim=-1)
                out, hidden = self.decoder(step_in, hidden)
                token = self.out(out).argmax(-1)
                chosen.append(token)
            return torch.cat(chosen, dim=1)

    return MelodyVae


def build_melody_vae(config: MelodyVaeConfig | None = None):
    return melody_vae_class()(config or MelodyVaeConfig())


# --- save / load ------------------------------------------------------------------------------


@dataclass
class MelodyModel:
    net: Any  # MelodyVae, float32, eval mode
    config: MelodyVaeConfig
    folder: Path
    info: dict = field(default_factory=dict)  # config.json's "training" block (steps, held-out figures)


def save_melody_vae(net, folder: Path, info: dict | None = None, half: bool = True) -> Path:
    """config.json (+ `info` as its "training" block) and model.safetensors, fp16 by default."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.half() if half else v).detach().contiguous() for k, v in net.state_dict().items()}
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    config = {**asdict(net.config), "training": info or {}}
    (folder / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    return folder


def load_melody_vae(folder, device: str = "cpu") -> MelodyModel:
    """A melody VAE folder (config.json + model.safetensors). Pickles are refused, by their bytes."""
    from safetensors.torch import load_file

    from studio.core.catalog import check_weights_file, check_weights_folder

    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.exists():
        raise UserError(f"{folder} has no config.json: it is not a melody VAE folder")
    data = json.loads(config_path.read_text(encoding="utf-8"))
    if data.get("model_type") != MODEL_TYPE:
        raise UserError(f"{folder} is a {data.get('model_type')!r} model, not a melody VAE ({MODEL_TYPE})")
    check_weights_folder(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.exists():
        raise UserError(f"{folder} has no {WEIGHTS_FILE}")
    check_weights_file(weights)
    config = MelodyVaeConfig.from_dict(data)
    net = build_melody_vae(config)
    net.load_state_dict({k: v.float() for k, v in load_file(str(weights)).items()})
    net.to(device).eval()
    return MelodyModel(net, config, folder, data.get("training", {}))


# --- encode, decode, interpolate ---------------------------------------------------------------


def encode(model: MelodyModel, melody) -> np.ndarray:
    """A melody (step tokens, or notes starting at beat 0) -> z, the posterior mean (deterministic)."""
    import torch

    tokens = melody if melody and isinstance(melody[0], int | np.integer) else melody_tokens(
        melody, steps=model.config.steps, low=model.config.pitch_low, high=model.config.pitch_high)
    with torch.no_grad():
        mu, _ = model.net.encode(torch.as_tensor([list(tokens)], dtype=torch.long))
    return mu[0].numpy().astype(np.float32)


def decode_tokens(model: MelodyModel, zs) -> list[list[int]]:
    import torch

    batch = torch.as_tensor(np.stack([np.asarray(z, dtype=np.float32) for z in zs]))
    return model.net.greedy(batch).tolist()


def decode(model: MelodyModel, z) -> list[Note]:
    return tokens_to_notes(decode_tokens(model, [z])[0], low=model.config.pitch_low)


def prior_sample(model: MelodyModel, seed: int) -> np.ndarray:
    """z ~ N(0, I), the same for the same seed on every machine (numpy's PCG64)."""
    return np.random.default_rng(int(seed)).standard_normal(model.config.z_dim).astype(np.float32)


def latent_of(model: MelodyModel, melody) -> np.ndarray:
    """z for an array (already a latent), step tokens or notes."""
    if isinstance(melody, np.ndarray):
        return melody.astype(np.float32)
    return encode(model, melody)


def interpolate_latents(a: np.ndarray, b: np.ndarray, steps: int, method: str = "slerp") -> list[np.ndarray]:
    """`steps` latents from a to b; the ends are a and b exactly, so they decode to a's and b's melodies."""
    if method not in ("slerp", "lerp"):
        raise UserError(f"unknown interpolation {method!r}: use slerp or lerp")
    points = interpolate_points(a, b, steps, method)
    if steps >= 2:
        points[0], points[-1] = a, b
    return points


def interpolate(model: MelodyModel, a, b, steps: int, method: str = "slerp") -> list[list[Note]]:
    """Melodies from a to b (latents, step tokens or notes), each two bars starting at beat 0."""
    zs = interpolate_latents(latent_of(model, a), latent_of(model, b), steps, method)
    return [tokens_to_notes(t, low=model.config.pitch_low) for t in decode_tokens(model, zs)]


# --- the worker task --------------------------------------------------------------------------


@dataclass
class MelodyInterpolation:
    """What the panel shows and plays: plain data, no torch."""

    melodies: list[MusicPiece]  # one per step, each starting at beat 0
    sequence: MusicPiece  # all of them one after another, voice = step % 2 (alternating colours)
    audio: np.ndarray  # the sequence rendered by the synth, float32 (n, 2)
    sample_rate: int
    beats_per_melody: float = STEPS / STEPS_PER_BEAT


def _melody_model(job, ctx) -> MelodyModel:
    from studio.core.catalog import resolve

    ref = job.args.get("model") or DEFAULT_MODEL
    source = resolve(ref)
    return ctx.models.get("melody", (ref, "cpu"), lambda: load_melody_vae(source.path))


def melody_spec_latent(model: MelodyModel, spec: dict) -> np.ndarray:
    """{"seed": n} a prior sample · {"notes": [[pitch, start, duration], ...]} · {"path": "x.mid"} a MIDI file's opening
    · {"latent": [...]} a z."""
    if "latent" in spec:
        return np.asarray(spec["latent"], dtype=np.float32)
    if "seed" in spec:
        return prior_sample(model, spec["seed"])
    if "notes" in spec:
        notes = [n if isinstance(n, Note) else Note(int(n[0]), float(n[1]), float(n[2])) for n in spec["notes"]]
        return encode(model, notes)
    if "path" in spec:
        from studio.engine.music.midi import read_midi

        path = Path(spec["path"])
        if not path.exists():
            raise UserError(f"cannot read {path.name}: the file does not exist")
        tokens = melody_of_piece(read_midi(path))
        if all(t == REST for t in tokens):
            raise UserError(f"{path.name} has no notes in its first two bars")
        return encode(model, tokens)
    raise UserError(f"not a melody: {spec}")


def sequence_of(melodies: list[MusicPiece], beats: float, tempo_bpm: float) -> MusicPiece:
    notes = [Note(n.pitch, n.start + index * beats, n.duration, n.velocity, index % 2)
             for index, melody in enumerate(melodies) for n in melody.notes]
    return MusicPiece(notes, tempo_bpm=tempo_bpm, metre="4/4", programs=[0, 0], style="tune")


def interpolate_task(job, ctx) -> Result:
    """latent.melody_interpolate: args a, b (melody specs), steps, method, tempo, instrument, model.

    Returns the melodies and their audio as `value`; with job.save also the whole strip as a music artifact.
    """
    from dataclasses import replace

    from studio.engine.music import synth

    model = _melody_model(job, ctx)
    steps, method = int(job.args.get("steps", 8)), job.args.get("method", "slerp")
    tempo = float(job.args.get("tempo") or DEFAULT_TEMPO)
    ctx.report(Progress(0, 3, message="encoding the two melodies"))
    a, b = (melody_spec_latent(model, job.args[name]) for name in ("a", "b"))
    ctx.check()
    ctx.report(Progress(1, 3, message=f"decoding {steps} melodies"))
    zs = interpolate_latents(a, b, steps, method)
    melodies = [MusicPiece(tokens_to_notes(t, low=model.config.pitch_low), tempo_bpm=tempo, metre="4/4")
                for t in decode_tokens(model, zs)]
    ctx.check()
    ctx.report(Progress(2, 3, message="rendering audio"))
    beats = model.config.steps / STEPS_PER_BEAT
    sequence = sequence_of(melodies, beats, tempo)
    mono_voice = replace(sequence, notes=[replace(n, voice=0) for n in sequence.notes])  # centred, not panned
    audio = synth.render_piece(mono_voice, synth.SAMPLE_RATE, timbre=job.args.get("instrument", "piano"))
    ctx.report(Progress(3, 3))
    value = MelodyInterpolation(melodies, sequence, audio, synth.SAMPLE_RATE, beats)
    artifacts = [Artifact("music", _recipe(job, model, steps, method, tempo), sequence)] if job.save else []
    return Result(artifacts, value=value, info={"latents": [z.tolist() for z in zs]})


def _recipe(job, model: MelodyModel, steps: int, method: str, tempo: float) -> Recipe:
    """Saved to the gallery: the recipe names both ends, so the strip can be made again."""
    from studio.core.catalog import content_hash

    seed = int(job.args["a"].get("seed", 0))
    params = {"operation": job.kind, "a": job.args["a"], "b": job.args["b"], "steps": steps, "method": method,
              "tempo": tempo, "instrument": job.args.get("instrument", "piano")}
    return Recipe("music", prompt=f"melody interpolation A to B ({method}, {steps} steps)",
                  model=job.args.get("model") or DEFAULT_MODEL, model_hash=content_hash(model.folder), seed=seed,
                  params=params, device="cpu", dtype="float32")
