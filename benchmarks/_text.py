"""What the text benchmarks share (text_speed.py and text_server_speed.py): prompts, settings, rates."""

from __future__ import annotations

import statistics

GGUF_PROMPT = "A hacker is"  # the built-in goes on for long from here (fewer runs cut short by an end of text)
# The app's default controls, minus what llama.cpp's own sampler chain has no equal for (typical-p is off anyway)
SAMPLED = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.0, "repetition_penalty": 1.1,
           "repetition_window": 64}


def median(values: list[float], digits: int = 1) -> float:
    return round(statistics.median(values), digits)


def steady_rate(count: int, elapsed: float, first: float) -> float:
    """Tokens per second after the first token (the prompt's reading and the setup left out), so a run that ends
    early at an end of text compares fairly with one that doesn't."""
    return (count - 1) / (elapsed - first) if count > 1 and elapsed > first else 0.0
