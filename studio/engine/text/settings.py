"""The Text panel's values and every sampling control, each with its default: the one home of them.

State's panel defaults, the engine (`TextSettings.from_params` fills what a recipe leaves out) and the CLI flags
read this class. Light on purpose, the only text module a panel may import: the standard library and core only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from studio.core.jobs import UserError
from studio.core.recipe import RANDOM_SEED

# The built-in GPT (models/text-gpt): offline, and better than the n-gram baseline on held-out text (its card).
DEFAULT_MODEL = "builtin:text-gpt"
# The recipe's own fields (Recipe.prompt, .model, .seed): panel values, never recipe params.
RECIPE_FIELDS = ("prompt", "model", "seed")

# The order the sampling stages run in (sampling.py), text-generation-webui's default: penalties on the raw
# logits, then temperature, then the truncations. Recipes made before the order was settable used exactly this.
SAMPLER_ORDER = (
    "repetition_penalty", "presence_penalty", "frequency_penalty", "dry", "temperature",
    "top_k", "top_p", "typical_p", "min_p", "mirostat", "xtc",
)
# Where a job's model runs: "auto" takes llama.cpp for a GGUF file and for a built-in model that ships one (the
# fastest path) when llama-cpp-python is installed, else transformers.
RUNTIMES = ("auto", "llama.cpp", "transformers")
DRAWS = ("cdf", "multinomial")
# Settings added after recipes were already being made, whose default changes what an old recipe's seed writes:
# the value a recipe that doesn't name them was made with. `from_params` and the panel's restore
# (State's PanelState.restore) fill them in, so an old recipe writes its own text again.
OLD_RECIPE_VALUES = {"draw": "multinomial"}


@dataclass(frozen=True)
class TextSettings:
    """Every sampling control with its default, in one place. Recipe params use the same names."""

    OLD_RECIPE_VALUES: ClassVar[dict[str, Any]] = OLD_RECIPE_VALUES  # (read by the panel's restore)

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
    # DRY ("don't repeat yourself"): a token that would extend a sequence already in the text loses
    # multiplier x base^(length - allowed length). 0 = off; its author suggests 0.8 / 1.75 / 2.
    dry_multiplier: float = 0.0
    dry_base: float = 1.75  # how fast the penalty grows with the repeat's length
    dry_allowed_length: int = 2  # repeats this long are free: short phrases recur in any text
    # A repeat never runs across these (names after a newline or a colon may recur in dialogue and lists).
    dry_sequence_breakers: tuple[str, ...] = ("\n", ":", '"', "*")
    dry_window: int = 0  # how many recent tokens DRY searches for repeats; 0 = the whole text
    # XTC ("exclude top choices"): with this probability per token, drop every token at least `xtc_threshold`
    # likely except the least likely of them. Breaks clichés; 0 = off. Its author suggests 0.1 / 0.5.
    xtc_threshold: float = 0.1
    xtc_probability: float = 0.0
    # Mirostat v2: drops tokens more surprising than a threshold that adapts so that the text's average surprise
    # stays near tau (bits per token); eta is how fast it adapts. Replaces top-k/p in effect; off by default.
    mirostat: bool = False
    mirostat_tau: float = 5.0  # llama.cpp's default target surprise
    mirostat_eta: float = 0.1  # llama.cpp's default learning rate
    # Dynamic temperature: instead of `temperature`, use low..high scaled by how unsure the model is (its entropy)
    # to the power `exponent`: sure -> careful, unsure -> adventurous. Off by default.
    dynamic_temperature: bool = False
    dynatemp_low: float = 0.5
    dynatemp_high: float = 1.5
    dynatemp_exponent: float = 1.0
    # Added to the logits of the tokens these texts encode to: ((" cat", -5.0), ...); -100 all but bans them.
    logit_bias: tuple[tuple[str, float], ...] = ()
    # Never written (case-insensitive): a banned string that appears makes the writer back up to where it began
    # and choose again there (KoboldCpp's and exllamav2's "banned strings"; removes stock phrases).
    banned_strings: tuple[str, ...] = ()
    # The order of the sampling stages (names from SAMPLER_ORDER); a stage left out runs at the end.
    sampler_order: tuple[str, ...] = SAMPLER_ORDER
    runtime: str = "auto"  # one of RUNTIMES; the complete recipe records the one that ran
    # How a token is drawn from what the chain kept: "cdf" takes one uniform number from the seeded generator and
    # finds it among the kept tokens' cumulative probabilities (costs what is kept); "multinomial" is
    # torch.multinomial over the whole vocabulary (~0.2 ms a token at 2k tokens, 2 ms at 32k), how every recipe
    # was drawn before this was a setting: `from_params` gives such recipes "multinomial", so their seeds still
    # write their texts (OLD_RECIPE_VALUES).
    draw: str = "cdf"
    # Length limit of the output, in tokens (bytes for byte-level models).
    max_new_tokens: int = 200
    # End of text is refused for this many tokens: Continue on a text the model ended would otherwise end again
    # at once and add nothing.
    min_new_tokens: int = 1
    # Generation ends when the output contains one of these; they are cut off unless include_stop.
    stop: tuple[str, ...] = ()
    include_stop: bool = field(default=False, metadata={"panel": False})  # the engine's option; no panel shows it
    # Always take the most likely token: deterministic, ignores temperature and the filters.
    greedy: bool = False
    # "completion" continues the prompt; "chat" answers `messages` with the model's chat template.
    mode: str = "completion"
    messages: tuple[dict, ...] = ()
    # Record the top-10 candidates before/after the controls for every token: the token inspector, and the loom's
    # forks (hover a token, click a candidate). On by default since the loom needs it; off saves ~5 % of the time.
    inspect: bool = True
    # LoRA adapters trained in the Train tab, merged into the model: [{"path", "weight"}]; the output's recipe
    # records each with its hash (core/adapters.py). Empty: the model as it is.
    adapters: tuple[dict, ...] = ()

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TextSettings:
        known = {f: params[f] for f in cls.__dataclass_fields__
                 if f in params and params[f] is not None and f not in RECIPE_FIELDS}
        for name, value in OLD_RECIPE_VALUES.items():
            known.setdefault(name, value)  # a recipe from before the setting: made as it was then
        if "stop" in known:
            stop = known["stop"]
            known["stop"] = tuple(s for s in ([stop] if isinstance(stop, str) else stop) if s)
        if "messages" in known:
            known["messages"] = tuple(dict(m) for m in known["messages"])
        for name in ("dry_sequence_breakers", "banned_strings"):
            if name in known:
                value = known[name]
                known[name] = tuple(str(v) for v in ([value] if isinstance(value, str) else value) if v)
        if "logit_bias" in known:
            known["logit_bias"] = parse_logit_bias(known["logit_bias"])
        if "sampler_order" in known:
            known["sampler_order"] = complete_order(known["sampler_order"])
        if "adapters" in known:
            known["adapters"] = tuple(dict(a) for a in known["adapters"])
        settings = cls(**known)
        settings.validate()
        return settings

    def to_params(self) -> dict[str, Any]:
        params = {k: v for k, v in asdict(self).items() if k not in RECIPE_FIELDS}
        params["stop"] = list(self.stop)
        params["messages"] = [dict(m) for m in self.messages]
        for name in ("dry_sequence_breakers", "banned_strings", "sampler_order"):
            params[name] = list(getattr(self, name))
        params["logit_bias"] = [[text, bias] for text, bias in self.logit_bias]
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
        if self.top_k < 0 or self.max_new_tokens < 0 or self.repetition_window < 0 or self.min_new_tokens < 0:
            problems.append("top-k, max new tokens and the repetition window cannot be negative")
        if self.repetition_penalty <= 0:
            problems.append("repetition penalty must be above 0 (1 = off)")
        if self.dry_multiplier < 0 or self.dry_base < 1 or self.dry_allowed_length < 1 or self.dry_window < 0:
            problems.append("DRY needs multiplier >= 0, base >= 1, allowed length >= 1, window >= 0")
        if not 0 <= self.xtc_threshold <= 1 or not 0 <= self.xtc_probability <= 1:
            problems.append("XTC's threshold and probability must be in [0, 1]")
        if self.mirostat_tau <= 0 or self.mirostat_eta <= 0:
            problems.append("mirostat's tau and eta must be above 0")
        if not 0 <= self.dynatemp_low <= self.dynatemp_high or self.dynatemp_exponent <= 0:
            problems.append("dynamic temperature needs 0 <= low <= high and an exponent above 0")
        if self.draw not in DRAWS:
            problems.append(f"unknown draw {self.draw!r} ({', '.join(DRAWS)})")
        if self.runtime not in RUNTIMES:
            problems.append(f"unknown runtime {self.runtime!r} ({', '.join(RUNTIMES)})")
        if self.mode not in ("completion", "chat"):
            problems.append(f"unknown mode {self.mode!r} (completion or chat)")
        if problems:
            raise UserError("; ".join(problems))


def parse_logit_bias(value) -> tuple[tuple[str, float], ...]:
    """[[text, bias], …] (a recipe) or {text: bias} -> ((text, bias), …); a bias that is not a finite number, or
    an empty text, is a UserError (a recipe must not bias by accident)."""
    pairs = value.items() if isinstance(value, dict) else value
    parsed = []
    try:
        for text, bias in pairs:
            bias = float(bias)
            if not isinstance(text, str) or not text or not math.isfinite(bias):
                raise ValueError
            parsed.append((text, bias))
    except (TypeError, ValueError):
        raise UserError("logit bias must be pairs of a non-empty text and a finite number") from None
    return tuple(parsed)


def complete_order(order) -> tuple[str, ...]:
    """A sampler order with every stage once: unknown names are a UserError, missing ones run at the end."""
    names = [str(n) for n in ([order] if isinstance(order, str) else order)]
    unknown = [n for n in names if n not in SAMPLER_ORDER]
    if unknown:
        raise UserError(f"unknown sampling stage(s) {', '.join(unknown)} (known: {', '.join(SAMPLER_ORDER)})")
    names = list(dict.fromkeys(names))
    return tuple(names + [n for n in SAMPLER_ORDER if n not in names])


# A preset sets how to sample, never what to write or how long: these keys only.
PRESET_KEYS = (
    "temperature", "top_k", "top_p", "min_p", "typical_p",
    "repetition_penalty", "presence_penalty", "frequency_penalty", "greedy",
    "dry_multiplier", "dry_base", "dry_allowed_length", "xtc_threshold", "xtc_probability",
    "mirostat", "mirostat_tau", "mirostat_eta", "dynamic_temperature", "dynatemp_low", "dynatemp_high",
    "dynatemp_exponent",
)
# The defaults: varied but coherent; the other presets change only what they name.
_BALANCED = {k: v for k, v in asdict(TextSettings()).items() if k in PRESET_KEYS}

PRESETS: dict[str, dict[str, Any]] = {
    # Near-deterministic: facts, code, definitions.
    "Precise": {**_BALANCED, "temperature": 0.3, "top_k": 20, "top_p": 0.9, "repetition_penalty": 1.15},
    "Balanced": _BALANCED,
    # Surprising: hotter, min-p instead of top-k keeps it from falling apart.
    "Creative": {**_BALANCED, "temperature": 1.1, "top_k": 0, "top_p": 1.0, "min_p": 0.05,
                 "repetition_penalty": 1.05, "presence_penalty": 0.3, "frequency_penalty": 0.1},
    # The samplers long-form writers use with bigger models: min-p, DRY against loops, XTC against clichés
    # (their authors' suggested values), no top-k/top-p.
    "Writer (DRY + XTC)": {**_BALANCED, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.02,
                           "repetition_penalty": 1.0, "dry_multiplier": 0.8, "xtc_threshold": 0.1,
                           "xtc_probability": 0.5},
    # Mirostat v2 holds the text's surprise near tau instead of cutting the tail at a fixed place.
    "Mirostat": {**_BALANCED, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "mirostat": True},
}
