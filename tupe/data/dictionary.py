"""fairseq-format dictionary (``dict.txt``) with this fork's seven special symbols."""

from __future__ import annotations

import os
from collections import Counter
from typing import Iterable, Optional, Sequence, Union

import torch

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<file>", "<email>", "<url>")
MASK = "<mask>"


class DictionaryError(ValueError):
    """A malformed dictionary file."""


class Dictionary:
    """Symbol <-> index map. Indices 0-6 are ``<s> <pad> </s> <unk> <file> <email> <url>``."""

    def __init__(self) -> None:
        self.symbols: list[str] = []
        self.count: list[int] = []
        self.indices: dict[str, int] = {}
        for s in SPECIALS:
            self.add_symbol(s)
        self.nspecial = len(self.symbols)
        self.bos_index, self.pad_index, self.eos_index, self.unk_index = 0, 1, 2, 3

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, sym: str) -> bool:
        return sym in self.indices

    def __getitem__(self, idx: int) -> str:
        return self.symbols[idx]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dictionary) and self.symbols == other.symbols

    def index(self, sym: str) -> int:
        return self.indices.get(sym, self.unk_index)

    def pad(self) -> int:
        return self.pad_index

    def eos(self) -> int:
        return self.eos_index

    def bos(self) -> int:
        return self.bos_index

    def unk(self) -> int:
        return self.unk_index

    def add_symbol(self, word: str, n: int = 1, overwrite: bool = False) -> int:
        if word in self.indices and not overwrite:
            idx = self.indices[word]
            self.count[idx] += n
            return idx
        idx = len(self.symbols)
        self.indices[word] = idx
        self.symbols.append(word)
        self.count.append(n)
        return idx

    # ------------------------------------------------------------------ building
    def update(self, counts: Union[Counter, dict]) -> None:
        for word, n in counts.items():
            self.add_symbol(word, n)

    def finalize(self, threshold: int = -1, nwords: int = -1, padding_factor: int = 8) -> None:
        """Sort by frequency (ties alphabetical), keep ``nwords`` symbols in total (specials
        included) with count >= ``threshold``, then pad with ``madeupwordNNNN`` entries to a
        multiple of ``padding_factor``."""
        if nwords <= 0:
            nwords = len(self)
        special = self.symbols[: self.nspecial]
        special_counts = self.count[: self.nspecial]
        rest = sorted(zip(self.symbols[self.nspecial:], self.count[self.nspecial:]))
        rest.sort(key=lambda wc: -wc[1])   # stable: ties stay alphabetical
        kept = [(w, c) for w, c in rest if c >= threshold][: max(0, nwords - self.nspecial)]
        self.symbols = special + [w for w, _ in kept]
        self.count = special_counts + [c for _, c in kept]
        self.indices = {s: i for i, s in enumerate(self.symbols)}
        i = 0
        while padding_factor > 1 and len(self) % padding_factor:
            self.add_symbol(f"madeupword{i:04d}", n=0)
            i += 1

    def words(self) -> list[str]:
        """The symbols after the special ones, without ``finalize``'s ``madeupword`` padding: a
        label dictionary's label words in class order (class i is ``words()[i]``)."""
        return [s for s in self.symbols[self.nspecial:] if not s.startswith("madeupword")]

    # ------------------------------------------------------------------ file I/O
    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "Dictionary":
        """Read a ``dict.txt``; a bad line raises an error naming file and line."""
        d = cls()
        with open(path, "rb") as f:
            for lineno, data in enumerate(f, 1):
                try:
                    raw = data.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DictionaryError(f"{path}:{lineno}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
                if lineno == 1 and raw.startswith("\ufeff"):
                    raw = raw[1:]                                 # a byte-order mark from an editor
                line = raw.rstrip("\n").rstrip("\r")
                if not line.strip():
                    raise DictionaryError(f"{path}:{lineno}: empty line in dictionary")
                overwrite = False
                parts = line.rstrip().rsplit(" ", 1)
                if len(parts) == 2 and parts[1] == "#fairseq:overwrite":
                    overwrite = True
                    parts = parts[0].rsplit(" ", 1)
                if len(parts) != 2:
                    raise DictionaryError(f"{path}:{lineno}: expected '<token> <count>', got {line!r}")
                word, field = parts
                try:
                    count = int(field)
                except ValueError:
                    raise DictionaryError(f"{path}:{lineno}: count {field!r} is not an integer") from None
                if word in d and not overwrite:
                    raise DictionaryError(f"{path}:{lineno}: duplicate word {word!r} (add "
                                          f"'#fairseq:overwrite' to the line to allow it)")
                d.add_symbol(word, count, overwrite=overwrite)
        return d

    def save(self, path: Union[str, os.PathLike]) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for sym, c in zip(self.symbols[self.nspecial:], self.count[self.nspecial:]):
                f.write(f"{sym} {c}\n")

    # ------------------------------------------------------------------ encoding
    def encode_line(self, line: str, append_eos: bool = True) -> torch.Tensor:
        ids = [self.index(w) for w in line.split()]
        if append_eos:
            ids.append(self.eos_index)
        return torch.tensor(ids, dtype=torch.long)

    def string(self, ids: Iterable[int], bpe_symbol: Optional[str] = None,
               skip: Sequence[int] = (0, 1, 2)) -> str:
        """Symbols of ``ids`` (skipping ``<s>``, ``<pad>``, ``</s>``), optionally with BPE
        removed (``bpe_symbol="@@ "``)."""
        text = " ".join(self.symbols[int(i)] for i in ids if int(i) not in skip)
        if bpe_symbol:
            text = (text + " ").replace(bpe_symbol, "").rstrip()
        return text


def model_vocab_size(dictionary: Dictionary) -> int:
    """V of a model trained with this dictionary: the masked-LM task appends ``<mask>``."""
    return len(dictionary) + (0 if MASK in dictionary else 1)
