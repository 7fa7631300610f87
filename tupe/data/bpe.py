"""fastBPE-compatible byte-pair encoding: codes file, learning, and fast application.

Codes file: one merge per line, ``left right count``, most frequent first; the line
number is the merge's rank. Words are split into characters with ``</w>`` glued to the
last one; applied output marks every non-final piece with ``@@`` (``un@@ tied``).

``apply_word_reference`` is the specification (greedy by rank, all occurrences of the best
pair merged left to right, as fastBPE does). ``BPE`` applies the same codes through HF
``tokenizers`` (compiled) and falls back to the reference for words with characters the
codes never saw (the compiled model would drop them silently).
"""

from __future__ import annotations

import heapq
import os
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

EOW = "</w>"
SEP = "@@"
# Placeholders of the preprocessing: never split by BPE (they are dictionary specials).
PROTECTED = frozenset(("<unk>", "<url>", "<email>", "<file>", "</s>", "<s>", "<pad>", "<mask>"))
_PROTECTED_WORD = re.compile(r"(?<!\S)(?:" + "|".join(map(re.escape, sorted(PROTECTED))) + r")(?!\S)")
_WHITESPACE = re.compile(r"\s+")


class BPEError(ValueError):
    """A malformed codes file."""


# --------------------------------------------------------------------------- codes file
def read_codes(path: Union[str, os.PathLike]) -> list[tuple[str, str, int]]:
    merges = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").split(" ")
            if len(parts) != 3:
                raise BPEError(f"{path}:{lineno}: expected 'left right count', got {line.rstrip()!r}")
            left, right, count = parts
            try:
                merges.append((left, right, int(count)))
            except ValueError:
                raise BPEError(f"{path}:{lineno}: count {count!r} is not an integer") from None
    if not merges:
        raise BPEError(f"{path}: empty BPE codes file")
    return merges


def write_codes(merges: Iterable[tuple[str, str, int]], path: Union[str, os.PathLike]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for left, right, count in merges:
            f.write(f"{left} {right} {count}\n")


# --------------------------------------------------------------------------- learning
def learn_bpe(word_counts: dict[str, int], num_merges: int, min_count: int = 2
              ) -> list[tuple[str, str, int]]:
    """Learn up to ``num_merges`` merges from whitespace-token counts (fastBPE's algorithm:
    repeatedly merge the most frequent adjacent pair; ties go to the smaller pair). Stops
    early when no pair occurs ``min_count`` times."""
    words = [(tuple(w[:-1]) + (w[-1] + EOW,), c) for w, c in word_counts.items() if w]
    vocab = [list(w) for w, _ in words]
    counts = [c for _, c in words]
    pair_count: dict[tuple[str, str], int] = defaultdict(int)
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i, symbols in enumerate(vocab):
        for a, b in zip(symbols, symbols[1:]):
            pair_count[(a, b)] += counts[i]
            where[(a, b)].add(i)
    # max-heap of (-count, pair); stale entries are skipped when popped
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    merges: list[tuple[str, str, int]] = []
    while len(merges) < num_merges and heap:
        neg, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -neg:
            continue
        if -neg < min_count:
            break
        merges.append((pair[0], pair[1], -neg))
        merged = pair[0] + pair[1]
        changed: dict[tuple[str, str], int] = defaultdict(int)
        for i in list(where.pop(pair, ())):
            symbols, c = vocab[i], counts[i]
            for a, b in zip(symbols, symbols[1:]):
                changed[(a, b)] -= c
            j, out = 0, []
            while j < len(symbols):
                if j + 1 < len(symbols) and symbols[j] == pair[0] and symbols[j + 1] == pair[1]:
                    out.append(merged)
                    j += 2
                else:
                    out.append(symbols[j])
                    j += 1
            vocab[i] = out
            for a, b in zip(out, out[1:]):
                changed[(a, b)] += c
                where[(a, b)].add(i)
        pair_count.pop(pair, None)
        for p, delta in changed.items():
            if p == pair or delta == 0:
                continue
            pair_count[p] += delta
            if pair_count[p] <= 0:
                pair_count.pop(p)
            else:
                heapq.heappush(heap, (-pair_count[p], p))
    return merges


# --------------------------------------------------------------------------- applying
def apply_word_reference(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """fastBPE on one word: merge the lowest-ranked adjacent pair (all its occurrences, left
    to right) until no pair is in the codes. Returns pieces, the last ending in ``</w>``."""
    symbols = list(word[:-1]) + [word[-1] + EOW]
    while len(symbols) > 1:
        best = min(((ranks[p], p) for p in zip(symbols, symbols[1:]) if p in ranks), default=None)
        if best is None:
            break
        a, b = best[1]
        out, j = [], 0
        while j < len(symbols):
            if j + 1 < len(symbols) and symbols[j] == a and symbols[j + 1] == b:
                out.append(a + b)
                j += 2
            else:
                out.append(symbols[j])
                j += 1
        symbols = out
    return symbols


def format_pieces(pieces: Sequence[str]) -> str:
    """``['un', 'tied</w>']`` -> ``'un@@ tied'``; protected placeholders stay whole."""
    return " ".join(p if p in PROTECTED else p[: -len(EOW)] if p.endswith(EOW) else p + SEP
                    for p in pieces)


def apply_line_reference(line: str, ranks: dict[tuple[str, str], int]) -> str:
    return " ".join(w if w in PROTECTED else format_pieces(apply_word_reference(w, ranks))
                    for w in line.split())


class BPE:
    """Apply fastBPE codes with HF ``tokenizers``; exact same output as the reference."""

    def __init__(self, merges: Sequence[tuple[str, str, int]]):
        from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

        self.ranks = {(a, b): i for i, (a, b, _) in enumerate(merges)}
        chars: set[str] = set()
        for a, b, _ in merges:
            for piece in (a, b):
                chars.update(piece[: -len(EOW)] if piece.endswith(EOW) else piece)
        vocab: dict[str, int] = {}
        for c in sorted(chars):
            vocab.setdefault(c, len(vocab))
            vocab.setdefault(c + EOW, len(vocab))
        for a, b, _ in merges:
            vocab.setdefault(a, len(vocab))
            vocab.setdefault(b, len(vocab))
            vocab.setdefault(a + b, len(vocab))
        self.known_chars = frozenset(chars)
        model = models.BPE(vocab=vocab, merges=[(a, b) for a, b, _ in merges],
                           end_of_word_suffix=EOW, fuse_unk=False)
        self.tokenizer = Tokenizer(model)
        self.tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        self.tokenizer.add_tokens([AddedToken(p, single_word=True, normalized=False) for p in sorted(PROTECTED)])

    @classmethod
    def from_file(cls, path: Union[str, os.PathLike]) -> "BPE":
        return cls(read_codes(path))

    def _fallback(self, line: str) -> str:
        return apply_line_reference(line, self.ranks)

    def apply(self, lines: Sequence[str]) -> list[str]:
        """BPE-encode a batch of whitespace-tokenised lines."""
        out: list[Optional[str]] = [None] * len(lines)
        fast_idx, fast_lines = [], []
        for i, line in enumerate(lines):
            if self.known_chars.issuperset(_WHITESPACE.sub("", _PROTECTED_WORD.sub("", line))):
                fast_idx.append(i)
                fast_lines.append(line)
            else:
                out[i] = self._fallback(line)
        if fast_lines:
            for i, enc in zip(fast_idx, self.tokenizer.encode_batch(fast_lines, add_special_tokens=False)):
                out[i] = format_pieces(enc.tokens)
        return out  # type: ignore[return-value]

    def apply_line(self, line: str) -> str:
        return self.apply([line])[0]


def word_counts_of(lines: Iterable[str]) -> Counter:
    counts: Counter = Counter()
    for line in lines:
        counts.update(line.split())
    return counts


def codes_path(directory: Union[str, os.PathLike]) -> Path:
    return Path(directory) / "bpe-code"
