"""The Text panel's values and every sampling control, each with its default: the one home of them.

State's panel defaults, the engine (`TextSettings.from_params` fills what a recipe leaves out) and the CLI flags
read this class. Light on purpose, the only text module a panel may import: the standard library and core only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from studio.core.jobs import UserError
from studio.core.recipe import RANDOM_SEED

# The built-in GPT (models/text-gpt): offline, and better than the n-gram baseline on held-out text (its card).
DEFAULT_MODEL = "builtin:text-gpt"
# The recipe's own fields (Recipe.prompt, .model, .seed): panel values, never recipe params.
RECIPE_FIELDS = ("prompt", "model", "seed")


@dataclass(frozen=True)
class TextSettings:
    """Every sampling control with its default, in one place. Recipe params use the same names."""

    prompt: str = ""  # the completion page (chat mode keeps its turns in `messages`)
    model: str = DEFAULT_MODEL
    # Where the job runs: "" = this computer's engine, else a server's name from Settings › Servers (the model picker
    # sets it with the model). Recorded in the recipe, so a remote output says where it was made.
    backend: str = ""
    seed: int = RANDOM_SEED  # -1: a new random seed each run; the seed drawn is recorded in the recipe
    # Divides the logits: < 1 sharpens the distribution (safer, more repetitive), > 1 flattens it (wilder).
    temperature: float = 0.8
    # Keep only the k most likely tokens; 0 = off. 40 cuts the long tail of nonsense a tiny model has.
    top_k: int = 40
    # Nucleus: keep the fewest tokens whose probabilities add up to p; 1.0 = off.
    top_p: float = 0.95
    # Drop tokens less likely than min_p x the best one; adapts to how sure the model is; 0 = off.
    min_p: float = 0.0
    # Locally typical sampling: keep tokens whose surprise is close to the average; 1.0 = off.
    typical_p: float = 1.0
    # > 1 makes tokens already in the recent text less likely (CTRL-style: divides positive logits).
    # 1.1 tames the loops small models fall into without forbidding the words a sentence needs.
    repetition_penalty: float = 1.1
    # How many recent tokens the penalties look at; 0 = the whole prompt + output.
    repetition_window: int = 64
    # Subtract this from the logit of every token already present (OpenAI-style); 0 = off.
    presence_penalty: float = 0.0
    # Subtract this x (times the token occurred); 0 = off.
    frequency_penalty: float = 0.0
    # Length limit of the output, in tokens (bytes for byte-level models).
    max_new_tokens: int = 200
    # Generation ends when the output contains one of these; they are cut off unless include_stop.
    stop: tuple[str, ...] = ()
    include_stop: bool = field(default=False, metadata={"panel": False})  # the engine's option; no panel shows it
    # Always take the most likely token: deterministic, ignores temperature and the filters.
    greedy: bool = False
    # "completion" continues the prompt; "chat" answers `messages` with the model's chat template.
    mode: str = "completion"
    messages: tuple[dict, ...] = ()
    # Record the top-10 candidates before/after the filters for every token (the token inspector).
    inspect: bool = False
    # LoRA adapters trained in the Train tab, merged into the model: [{"path", "weight"}]; the output's recipe
    # records each with its hash (core/adapters.py). Empty: the model as it is.
    adapters: tuple[dict, ...] = ()

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TextSettings:
        known = {f: params[f] for f in cls.__dataclass_fields__
                 if f in params and params[f] is not None and f not in RECIPE_FIELDS}
        if "stop" in known:
            stop = known["stop"]
            known["stop"] = tuple(s for s in ([stop] if isinstance(stop, str) else stop) if s)
        if "messages" in known:
            known["messages"] = tuple(dict(m) for m in known["messages"])
        if "adapters" in known:
            known["adapters"] = tuple(dict(a) for a in known["adapters"])
        settings = cls(**known)
        settings.validate()
        return settings

    def to_params(self) -> dict[str, Any]:
        params = {k: v for k, v in asdict(self).items() if k not in RECIPE_FIELDS}
        params["stop"] = list(self.stop)
        params["messages"] = [dict(m) for m in self.messages]
        params["adapters"] = [dict(a) for a in self.adapters]
        return params

    def validate(self) -> None:
        problems = []
        if self.temperature < 0:
            problems.append("temperature must be 0 or more")
        if not 0 < self.top_p <= 1 or not 0 < self.typical_p <= 1:
            problems.append("top-p and typical-p must be in (0, 1]")
        if not 0 <= self.min_p <= 1:
            problems.append("min-p must be in [0, 1]")
        if self.top_k < 0 or self.max_new_tokens < 0 or self.repetition_window < 0:
            problems.append("top-k, max new tokens and the repetition window cannot be negative")
        if self.repetition_penalty <= 0:
            problems.append("repetition penalty must be above 0 (1 = off)")
        if self.mode not in ("completion", "chat"):
            problems.append(f"unknown mode {self.mode!r} (completion or chat)")
        if problems:
            raise UserError("; ".join(problems))


# A preset sets how to sample, never what to write or how long: these keys only.
PRESET_KEYS = (
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "greedy",
)

PRESETS: dict[str, dict[str, Any]] = {
    # Near-deterministic: facts, code, definitions.
    "Precise": {
        "temperature": 0.3,
        "top_k": 20,
        "top_p": 0.9,
        "min_p": 0.0,
        "typical_p": 1.0,
        "repetition_penalty": 1.15,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "greedy": False,
    },
    # The defaults: varied but coherent.
    "Balanced": {k: v for k, v in asdict(TextSettings()).items() if k in PRESET_KEYS},
    # Surprising: hotter, min-p instead of top-k keeps it from falling apart.
    "Creative": {
        "temperature": 1.1,
        "top_k": 0,
        "top_p": 1.0,
        "min_p": 0.05,
        "typical_p": 1.0,
        "repetition_penalty": 1.05,
        "presence_penalty": 0.3,
        "frequency_penalty": 0.1,
        "greedy": False,
    },
}
