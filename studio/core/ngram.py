"""An n-gram (Markov) model over any sequence of integer symbols, with interpolated Kneser-Ney smoothing.

Generic on purpose: the text model uses bytes (0-255) plus one boundary symbol; the music n-gram uses the
note-event tokens, PAD as its boundary (studio/engine/music/models.py). The model predicts a symbol from the
`order` symbols before it:

    P_k(w | h) = max(c_k(h w) - D_k, 0) / c_k(h)  +  D_k * types_k(h) / c_k(h) * P_{k-1}(w | h')

where h' drops h's oldest symbol, c_N are raw counts at the highest order and, below it, continuation
counts (in how many distinct contexts a k-gram was seen: what makes Kneser-Ney better than plain backoff),
types_k(h) is how many distinct symbols followed h, D_k = n1 / (n1 + 2 n2) from the count-of-counts, and
P_0 is uniform. A context never seen hands its whole mass to the shorter context.

Counting: `train` counts one stream of sequences (the text model's layout: entries joined by one boundary);
`NGramCounter` counts any number of independent streams a few million symbols at a time, for callers whose
sequences must not see each other (music pads every piece on its own) or do not fit in memory at once.

Stored as `config.json` ("model_type": "studio-markov") + `counts.safetensors` (sorted n-gram codes and
counts per order), so the catalog recognises the folder and weights stay in the one safe format. The discounts
are saved too; a folder without them (the first text model) has them re-estimated from its counts on load.
No torch here: numpy only, so it loads in milliseconds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SMOOTHING = "interpolated Kneser-Ney (one discount per order, D = n1/(n1+2*n2)), uniform base"
ABSOLUTE_SMOOTHING = "interpolated absolute discounting (raw counts at every order), uniform base"
BYTE_BOUNDARY = 256  # end-of-entry symbol of the byte text model
BYTE_VOCAB = 257
BYTE_TOKENS = "utf-8 bytes"  # config.json "tokens" of a text model (music n-grams name their own token set)


@dataclass
class _Table:
    """All k-grams of one length: sorted codes, their counts, and per-context totals."""

    codes: np.ndarray  # int64, sorted; code = ((s1 * V + s2) * V + ...) + sk
    counts: np.ndarray  # int64
    discount: float
    context_codes: np.ndarray  # sorted distinct codes // V
    context_totals: np.ndarray  # sum of counts per context
    context_types: np.ndarray  # distinct next symbols per context
    context_starts: np.ndarray  # index of each context's first row in codes


def _discount(counts: np.ndarray) -> float:
    n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
    if n1 == 0:
        return 0.5
    return min(max(n1 / (n1 + 2 * n2), 0.05), 0.95)


def _make_table(codes: np.ndarray, counts: np.ndarray, vocab_size: int, discount: float | None = None) -> _Table:
    contexts = codes // vocab_size
    context_codes, starts, types = np.unique(contexts, return_index=True, return_counts=True)
    totals = np.add.reduceat(counts, starts) if len(counts) else np.zeros(0, dtype=np.int64)
    discount = _discount(counts) if discount is None else float(discount)
    return _Table(codes, counts, discount, context_codes, totals, types, starts)


def _codes_ending_at(symbols: np.ndarray, length: int, vocab_size: int) -> np.ndarray:
    """Code of the `length`-gram ending at every position (positions < length-1 give partial grams; callers pad)."""
    codes = np.zeros(len(symbols), dtype=np.int64)
    for back in range(length):
        shifted = np.zeros(len(symbols), dtype=np.int64)
        shifted[back:] = symbols[: len(symbols) - back] if back else symbols
        codes += shifted * (vocab_size**back)
    return codes


def _check_fits(vocab_size: int, order: int) -> None:
    if vocab_size ** (order + 1) >= 2**62:
        raise ValueError(f"vocabulary {vocab_size} with order {order} does not fit 64-bit n-gram codes")


class NGramCounter:
    """Counts of (order+1)-grams over streams added one at a time, merged every few million symbols.

    A stream's first `order` symbols are context only (the boundaries it is padded with, usually); every later
    symbol is counted with the `order` symbols before it. n-grams never span two streams.
    """

    MERGE_EVERY = 5_000_000  # pending codes before a merge: bounded memory for big corpora

    def __init__(self, vocab_size: int, order: int) -> None:
        _check_fits(vocab_size, order)
        self.vocab_size, self.order = vocab_size, order
        self._codes = np.zeros(0, dtype=np.int64)
        self._counts = np.zeros(0, dtype=np.int64)
        self._pending: list[np.ndarray] = []
        self._pending_size = 0

    def add_stream(self, stream: np.ndarray | list[int]) -> None:
        stream = np.asarray(stream, dtype=np.int64)
        codes = _codes_ending_at(stream, self.order + 1, self.vocab_size)[self.order :]
        self._pending.append(codes)
        self._pending_size += len(codes)
        if self._pending_size > self.MERGE_EVERY:
            self._merge()

    def _merge(self) -> None:
        if not self._pending:
            return
        new_codes, new_counts = np.unique(np.concatenate(self._pending), return_counts=True)
        if len(self._codes):
            codes, inverse = np.unique(np.concatenate([self._codes, new_codes]), return_inverse=True)
            weights = np.concatenate([self._counts, new_counts])
            new_codes, new_counts = codes, np.bincount(inverse, weights=weights).astype(np.int64)
        self._codes, self._counts = new_codes, new_counts.astype(np.int64)
        self._pending, self._pending_size = [], 0

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted distinct (order+1)-gram codes, their counts)."""
        self._merge()
        return self._codes, self._counts


class NGramModel:
    """Counts for k-grams of length 1..order+1 and the Kneser-Ney maths over them."""

    def __init__(
        self,
        vocab_size: int,
        order: int,
        boundary: int,
        tables: list[tuple[np.ndarray, np.ndarray]],
        discounts: list[float] | None = None,
        smoothing: str = SMOOTHING,
    ):
        """`discounts` (one per table) are estimated from each table's counts when not given."""
        _check_fits(vocab_size, order)
        self.vocab_size, self.order, self.boundary = vocab_size, order, boundary
        self.smoothing_name = smoothing
        discounts = list(discounts) if discounts is not None else [None] * len(tables)
        # tables[k-1] holds k-grams, k = 1 .. order+1
        self.tables = [
            _make_table(np.asarray(c, np.int64), np.asarray(n, np.int64), vocab_size, d)
            for (c, n), d in zip(tables, discounts, strict=True)
        ]

    @property
    def discounts(self) -> list[float]:
        return [t.discount for t in self.tables]

    # -- training ---------------------------------------------------------------------------------------

    @classmethod
    def train(cls, sequences: list[np.ndarray] | np.ndarray, vocab_size: int, order: int, boundary: int) -> NGramModel:
        """Count a list of sequences as one stream: `order` boundaries, then each sequence closed by one."""
        counter = NGramCounter(vocab_size, order)
        counter.add_stream(pad_sequences(sequences, order, boundary))
        return cls.from_counts(*counter.counts(), vocab_size, order, boundary)

    @classmethod
    def from_counts(
        cls,
        codes: np.ndarray,
        counts: np.ndarray,
        vocab_size: int,
        order: int,
        boundary: int,
        kneser_ney: bool = True,
        discounts: list[float] | None = None,
    ) -> NGramModel:
        """The model over counted (order+1)-grams. Lower orders get Kneser-Ney continuation counts (a k-gram
        counts the distinct (k+1)-grams it ends), or with kneser_ney=False raw counts (absolute discounting)."""
        tables = [(codes, counts)]
        for k in range(order, 0, -1):
            suffixes = tables[0][0] % (vocab_size**k)
            if kneser_ney:
                tables.insert(0, np.unique(suffixes, return_counts=True))
            else:
                low, inverse = np.unique(suffixes, return_inverse=True)
                tables.insert(0, (low, np.bincount(inverse, weights=tables[0][1]).astype(np.int64)))
        smoothing = SMOOTHING if kneser_ney else ABSOLUTE_SMOOTHING
        return cls(vocab_size, order, boundary, tables, discounts, smoothing)

    def pruned(self, min_count: int, keep_discounts: bool = False) -> NGramModel:
        """Drop highest-order n-grams seen fewer than min_count times (smaller file, slightly worse model).

        The top discount is re-estimated from what is left unless keep_discounts (the estimate from all counts;
        with min_count 2 nothing is left seen once, and the estimate falls back to 0.5).
        """
        raw = [(t.codes, t.counts) for t in self.tables]
        codes, counts = raw[-1]
        keep = counts >= min_count
        raw[-1] = (codes[keep], counts[keep])
        discounts = self.discounts if keep_discounts else None
        return NGramModel(self.vocab_size, self.order, self.boundary, raw, discounts, self.smoothing_name)

    # -- probabilities ----------------------------------------------------------------------------------

    def distribution(self, history: list[int] | np.ndarray) -> np.ndarray:
        """P(next symbol | the last `order` symbols of history) for every symbol: float64[vocab], sums to 1."""
        history = list(history)[-self.order :] if self.order else []
        history = [self.boundary] * (self.order - len(history)) + history
        probs = np.full(self.vocab_size, 1.0 / self.vocab_size)
        for k, table in enumerate(self.tables, start=1):
            context = 0
            for symbol in history[len(history) - (k - 1) :] if k > 1 else []:
                context = context * self.vocab_size + int(symbol)
            row = np.searchsorted(table.context_codes, context)
            if row >= len(table.context_codes) or table.context_codes[row] != context:
                continue  # unseen context: keep the shorter context's distribution
            total, types = table.context_totals[row], table.context_types[row]
            start = table.context_starts[row]
            symbols = table.codes[start : start + types] % self.vocab_size
            counts = table.counts[start : start + types]
            mixed = probs * (table.discount * types / total)
            mixed[symbols] += np.maximum(counts - table.discount, 0) / total
            probs = mixed
        return probs

    def log_probs(self, history: list[int] | np.ndarray) -> np.ndarray:
        return np.log(np.maximum(self.distribution(history), 1e-300))

    def sequence_log2_probs(self, stream: np.ndarray) -> np.ndarray:
        """log2 P(stream[i] | stream[i-order:i]) for i >= order, vectorised over the whole stream."""
        stream = np.asarray(stream, dtype=np.int64)
        positions = np.arange(self.order, len(stream))
        probs = np.full(len(positions), 1.0 / self.vocab_size)
        for k, table in enumerate(self.tables, start=1):
            codes = _codes_ending_at(stream, k, self.vocab_size)[positions]
            contexts = codes // self.vocab_size
            row = np.clip(np.searchsorted(table.context_codes, contexts), 0, max(len(table.context_codes) - 1, 0))
            seen = table.context_codes[row] == contexts if len(table.context_codes) else np.zeros(len(codes), bool)
            at = np.clip(np.searchsorted(table.codes, codes), 0, max(len(table.codes) - 1, 0))
            count = np.where(table.codes[at] == codes, table.counts[at], 0) if len(table.codes) else 0
            total = np.where(seen, table.context_totals[row], 1)
            mixed = (
                np.maximum(count - table.discount, 0) / total
                + table.discount * table.context_types[row] / total * probs
            )
            probs = np.where(seen, mixed, probs)
        return np.log2(probs)

    def bits_per_symbol(self, sequences: list[np.ndarray]) -> float:
        """Average -log2 P over every symbol of the sequences and their closing boundaries."""
        stream = pad_sequences(sequences, self.order, self.boundary)
        return float(-self.sequence_log2_probs(stream).mean())

    # -- files ------------------------------------------------------------------------------------------

    def save(self, folder: Path, extra_card: str = "", extra_config: dict | None = None) -> None:
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for k, table in enumerate(self.tables, start=1):
            tensors[f"codes.{k}"] = table.codes
            tensors[f"counts.{k}"] = table.counts.astype(smallest_count_dtype(table.counts))
        save_file(tensors, str(folder / "counts.safetensors"))
        (folder / "counts.safetensors").chmod(0o644)  # safetensors writes 0600; the file ships with the app
        config = {
            "model_type": "studio-markov",
            "vocab_size": self.vocab_size,
            "order": self.order,
            "boundary": self.boundary,
            "smoothing": self.smoothing_name,
            "discounts": self.discounts,
            **(extra_config or {}),
        }
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        if extra_card:
            (folder / "MODEL_CARD.md").write_text(extra_card, encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> NGramModel:
        from safetensors.numpy import load_file

        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        tensors = load_file(str(folder / "counts.safetensors"))
        tables = [
            (tensors[f"codes.{k}"], tensors[f"counts.{k}"].astype(np.int64)) for k in range(1, config["order"] + 2)
        ]
        smoothing = config.get("smoothing", SMOOTHING)
        return cls(config["vocab_size"], config["order"], config["boundary"], tables, config.get("discounts"), smoothing)


def smallest_count_dtype(counts: np.ndarray) -> type:
    """Most high-order counts are tiny: uint16 instead of int32 keeps the shipped folder under 20 MB."""
    largest = int(counts.max()) if len(counts) else 0
    return np.uint16 if largest <= np.iinfo(np.uint16).max else np.int32


def pad_sequences(sequences: list[np.ndarray] | np.ndarray, order: int, boundary: int) -> np.ndarray:
    """One stream: `order` boundaries, then each sequence followed by a boundary (which is predicted too)."""
    if isinstance(sequences, np.ndarray) and sequences.ndim == 1:
        sequences = [sequences]
    parts = [np.full(order, boundary, dtype=np.int64)]
    for sequence in sequences:
        parts.append(np.asarray(sequence, dtype=np.int64))
        parts.append(np.array([boundary], dtype=np.int64))
    return np.concatenate(parts)


# -- text as bytes -------------------------------------------------------------------------------------------


def texts_to_symbols(texts: list[str]) -> list[np.ndarray]:
    return [np.frombuffer(t.encode("utf-8"), dtype=np.uint8).astype(np.int64) for t in texts]


def train_byte_model(texts: list[str], order: int = 5) -> NGramModel:
    return NGramModel.train(texts_to_symbols(texts), BYTE_VOCAB, order, BYTE_BOUNDARY)


def symbols_to_text(symbols: list[int]) -> str:
    """Bytes back to text; an unfinished UTF-8 character at the end is left out until it completes."""
    data = bytes(s for s in symbols if 0 <= s < 256)
    return (
        data.decode("utf-8", errors="ignore") if _ends_mid_character(data) else data.decode("utf-8", errors="replace")
    )


def _ends_mid_character(data: bytes) -> bool:
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte or ASCII: does it expect more bytes than we have?
            needed = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            return needed > back
    return False


def perplexity_bits(log2_probs: np.ndarray) -> float:
    return float(-np.mean(log2_probs)) if len(log2_probs) else math.nan
