"""A1111's prompt syntax, read as A1111 reads it (pure Python: the parsing, not the encoding).

- `<lora:name:0.8>` (and `<lyco:…>`): a LoRA and its weight; taken out of the text before encoding.
- `(word)` x1.1, `((word))` x1.21, `(word:1.5)` x1.5, `[word]` /1.1, `\\(` a literal bracket.
- `BREAK` starts a new 75-token chunk.
- Textual-inversion embeddings are used by their file name, in the prompt and in the negative prompt.

`parse_attention` follows A1111's `modules/prompt_parser.py` (`parse_prompt_attention`); the chunking that uses
it is in `conditioning.py`. The prompt itself is recorded as typed: the recipe keeps the syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A1111's extra-network tags: <kind:name:multiplier[:more]>; `lyco` is the LyCORIS extension's spelling.
_TAG = re.compile(r"<(lora|lyco):([^:>]+)(?::([^:>]*))?(?::([^>]*))?>", re.IGNORECASE)

_ATTENTION = re.compile(
    r"""
\\\(|
\\\)|
\\\[|
\\]|
\\\\|
\\|
\(|
\[|
:\s*([+-]?[.\d]+)\s*\)|
\)|
]|
[^\\()\[\]:]+|
:
""",
    re.X,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
ROUND = 1.1  # A1111: (word) multiplies attention by 1.1
SQUARE = 1 / 1.1  # [word] divides by 1.1


@dataclass(frozen=True)
class LoraTag:
    name: str
    weight: float = 1.0


def extract_loras(prompt: str) -> tuple[str, list[LoraTag], list[str]]:
    """The prompt without its LoRA tags, the tags in order (a name used twice: the last weight wins, as in A1111),
    and notes about tags that could not be read."""
    tags: dict[str, LoraTag] = {}
    notes: list[str] = []
    for match in _TAG.finditer(prompt or ""):
        name, weight_text = match.group(2).strip(), (match.group(3) or "").strip()
        try:
            weight = float(weight_text) if weight_text else 1.0
        except ValueError:
            notes.append(f"<{match.group(1)}:{name}:{weight_text}>: the weight is not a number; used 1.0")
            weight = 1.0
        if match.group(4):
            notes.append(f"<{match.group(1)}:{name}>: a separate UNet weight is not supported; {weight} used for both")
        tags.pop(name, None)
        tags[name] = LoraTag(name, weight)
    return _TAG.sub("", prompt or ""), list(tags.values()), notes


def parse_attention(text: str) -> list[tuple[str, float]]:
    """(text, weight) runs; ("BREAK", -1) marks a forced chunk break. A1111's own algorithm."""
    result: list[list] = []
    round_brackets: list[int] = []
    square_brackets: list[int] = []

    def multiply(start: int, factor: float) -> None:
        for item in result[start:]:
            item[1] *= factor

    for match in _ATTENTION.finditer(text):
        part, weight = match.group(0), match.group(1)
        if part.startswith("\\"):
            result.append([part[1:], 1.0])
        elif part == "(":
            round_brackets.append(len(result))
        elif part == "[":
            square_brackets.append(len(result))
        elif weight is not None and round_brackets:
            multiply(round_brackets.pop(), float(weight))
        elif part == ")" and round_brackets:
            multiply(round_brackets.pop(), ROUND)
        elif part == "]" and square_brackets:
            multiply(square_brackets.pop(), SQUARE)
        else:
            for i, piece in enumerate(_BREAK.split(part)):
                if i > 0:
                    result.append(["BREAK", -1])
                result.append([piece, 1.0])
    for start in round_brackets:  # unclosed brackets apply to the end, as in A1111
        multiply(start, ROUND)
    for start in square_brackets:
        multiply(start, SQUARE)
    if not result:
        result = [["", 1.0]]
    merged = [result[0]]
    for item in result[1:]:  # runs of the same weight become one piece
        if item[1] == merged[-1][1] and item[1] != -1:
            merged[-1][0] += item[0]
        else:
            merged.append(item)
    return [(piece, float(weight)) for piece, weight in merged]


def plain_text(text: str) -> str:
    """The words alone, for encoders that take no weights (SD 3, FLUX): brackets and weights dropped."""
    return " ".join(" ".join(piece for piece, weight in parse_attention(text) if weight != -1).split())


def uses_syntax(text: str) -> bool:
    """Whether A1111's weighting or BREAK changes anything in this text."""
    return any(weight != 1.0 for _piece, weight in parse_attention(text)) or "\\" in text


def embedding_names_in(text: str, names) -> list[str]:
    """The embeddings (by file name) a text uses, as whole words."""
    found = []
    for name in names:
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text or ""):
            found.append(name)
    return found
