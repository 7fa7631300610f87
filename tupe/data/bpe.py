"""fastBPE-compatible byte-pair encoding: codes file, learning, and fast application.

Codes file: one merge per line, ``left right count``, most frequent first; the line
number is the merge's rank. Words are split into characters with ``</w>`` glued to the
last one; applied output marks every non-final piece with ``@@`` (``un@@ tied``).

``apply_word_reference`` is the specification (greedy by rank, all occurrences of the best
pair merged left to right, as fastBPE does). ``BPE`` applies the same codes through HF
``tokenizers`` (compiled) and falls back to the reference for words with characters the
compiled vocabulary does not hold (the compiled model would drop them silently).
"""

from __future__ import annotations

import heapq
import itertools
import os
import re
from collections import defaultdict
from typing import Iterable, Sequence, Union

from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

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
    """Apply fastBPE codes with HF ``tokenizers``; exactly the reference's output.

    ``encode_ids`` returns piece ids (an id space of this object; ``pieces[i]`` is the
    formatted piece, e.g. ``un@@`` or ``tied``), so that counting and binarizing can stay in
    numpy; ``apply`` returns the BPE text.
    """

    def __init__(self, merges: Sequence[tuple[str, str, int]]):

        self.ranks = {(a, b): i for i, (a, b, _) in enumerate(merges)}
        # Latin/Greek/Cyrillic/..., general punctuation and symbols, plus every character of
        # the codes: a character that no merge uses stays a piece of its own, exactly as in
        # fastBPE. Words with any other character go through the reference implementation.
        code_chars: set[str] = set()
        for a, b, _ in merges:
            for piece in (a, b):
                code_chars.update(piece[: -len(EOW)] if piece.endswith(EOW) else piece)
        ranges = [(0x0000, 0x07FF), (0x2000, 0x2BFF)]
        chars = {chr(c) for lo, hi in ranges for c in range(lo, hi + 1)} | code_chars
        chars = {c for c in chars if not c.isspace()}
        extra = "".join(sorted(c for c in code_chars if not any(lo <= ord(c) <= hi for lo, hi in ranges)))
        self._unknown = re.compile("[^\\s" + "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in ranges)
                                   + re.escape(extra).replace("]", "\\]") + "]")
        vocab: dict[str, int] = {}
        for c in sorted(chars):
            vocab.setdefault(c, len(vocab))
            vocab.setdefault(c + EOW, len(vocab))
        for a, b, _ in merges:
            vocab.setdefault(a, len(vocab))
            vocab.setdefault(b, len(vocab))
            vocab.setdefault(a + b, len(vocab))
        model = models.BPE(vocab=vocab, merges=[(a, b) for a, b, _ in merges],
                           end_of_word_suffix=EOW, fuse_unk=False)
        self.tokenizer = Tokenizer(model)
        self.tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        self.tokenizer.add_tokens([AddedToken(p, single_word=True, normalized=False) for p in sorted(PROTECTED)])
        raw = sorted(self.tokenizer.get_vocab(with_added_tokens=True).items(), key=lambda kv: kv[1])
        assert [i for _, i in raw] == list(range(len(raw)))
        self.pieces: list[str] = [format_pieces([tok]) for tok, _ in raw]
        self._piece_id = {p: i for i, p in enumerate(self.pieces)}
        self.separator_id = self._piece_id["</s>"]   # never produced by BPE: a line separator
        self._cache: dict[str, list[int]] = {}
        self.cache_size = 1 << 20

    @classmethod
    def from_file(cls, path: Union[str, os.PathLike]) -> "BPE":
        return cls(read_codes(path))

    def _fallback_ids(self, line: str) -> list[int]:
        """Words with characters beyond the compiled vocabulary: the reference; new pieces
        get new ids."""
        ids = []
        for piece in apply_line_reference(line, self.ranks).split():
            if piece not in self._piece_id:
                self._piece_id[piece] = len(self.pieces)
                self.pieces.append(piece)
            ids.append(self._piece_id[piece])
        return ids

    def encode_ids(self, lines: Sequence[str]) -> list[list[int]]:
        """Piece ids of each whitespace-tokenised line.

        Distinct words are segmented once (in one compiled batch) and cached: text is
        Zipfian, so most tokens are a dictionary lookup."""
        cache = self._cache
        split = [line.split() for line in lines]
        missing = list({w for words in split for w in words if w not in cache})
        if missing:
            if len(cache) + len(missing) > self.cache_size:
                cache.clear()
            fast = [w for w in missing if self._unknown.search(w) is None]
            for w, enc in zip(fast, self.tokenizer.encode_batch(fast, add_special_tokens=False)):
                cache[w] = enc.ids
            for w in missing:
                if w not in cache:
                    cache[w] = self._fallback_ids(w)
        return [list(itertools.chain.from_iterable([cache[w] for w in words])) for words in split]

    def apply(self, lines: Sequence[str]) -> list[str]:
        """BPE text of a batch of whitespace-tokenised lines (``un@@ tied``)."""
        pieces = self.pieces
        return [" ".join([pieces[i] for i in ids]) for ids in self.encode_ids(lines)]

    def apply_line(self, line: str) -> str:
        return self.apply([line])[0]
