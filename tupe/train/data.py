"""Masked-LM data: token blocks over a binarized corpus, per-epoch masking, batching.

Everything that is random here is a pure function of (seed, epoch, index), so a resumed
run sees exactly the batches and masks an uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..data.dictionary import Dictionary
from ..data.indexed_dataset import MMapIndexedDataset


# --------------------------------------------------------------------------- blocks
def block_boundaries(sizes: np.ndarray, block_size: int, mode: str) -> np.ndarray:
    """(start, end) token offsets into the concatenated corpus for each block.

    ``none``: fixed blocks across sentences; ``complete``: whole sentences packed up to
    ``block_size`` (a longer sentence is its own, over-long block); ``complete_doc``: the
    same, never crossing a document boundary (an item of size 1, i.e. an empty line);
    ``eos``: one sentence per block.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    total = int(offsets[-1])
    if mode == "none":
        starts = np.arange(0, total, block_size, dtype=np.int64)
        return np.stack([starts, np.minimum(starts + block_size, total)], axis=1)
    if mode == "eos":
        keep = sizes > 0
        return np.stack([offsets[:-1][keep], offsets[1:][keep]], axis=1)
    if mode not in ("complete", "complete_doc"):
        raise ValueError(f"unknown sample break mode {mode!r}")
    blocks = []
    start, length = 0, 0
    for i, n in enumerate(sizes.tolist()):
        begin = int(offsets[i])
        if mode == "complete_doc" and n == 1:          # document separator: close the block
            if length:
                blocks.append((start, start + length))
            start, length = begin + 1, 0
            continue
        if length and length + n > block_size:
            blocks.append((start, start + length))
            start, length = begin, 0
        if not length:
            start = begin
        length += n
    if length:
        blocks.append((start, start + length))
    return np.asarray(blocks, dtype=np.int64).reshape(-1, 2)


class TokenBlockDataset:
    """Blocks of a binarized split, each with ``<s>`` prepended."""

    def __init__(self, data: MMapIndexedDataset, tokens_per_sample: int, mode: str, bos: int):
        self.data = data
        self.bos = bos
        self.blocks = block_boundaries(data.sizes, tokens_per_sample - 1, mode)
        self.sizes = (self.blocks[:, 1] - self.blocks[:, 0] + 1).astype(np.int64)   # <s> included

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> np.ndarray:
        start, end = self.blocks[i]
        return np.concatenate([[self.bos], np.asarray(self.data._bin[start:end], dtype=np.int64)])


# --------------------------------------------------------------------------- masking
def ends_word_table(dictionary: Dictionary) -> np.ndarray:
    """Per vocabulary entry: does the NEXT token start a new word (this one has no ``@@``)?"""
    return np.array([not s.endswith("@@") for s in dictionary.symbols], dtype=bool)


@dataclass
class Masker:
    """BERT masking: over all positions draw ``int(mask_prob * n + U[0,1))`` positions (or
    words); of those ``leave_unmasked_prob`` keep their token, ``random_token_prob`` get a
    uniformly drawn non-special token, the rest ``<mask>``."""

    mask_idx: int
    vocab_size: int
    pad_idx: int = 1
    nspecial: int = 7
    mask_prob: float = 0.15
    leave_unmasked_prob: float = 0.1
    random_token_prob: float = 0.1
    seed: int = 1
    ends_word: Optional[np.ndarray] = None   # whole-word masking: token id -> no "@@"

    def __call__(self, tokens: np.ndarray, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch, index])
        n = len(tokens)
        if self.ends_word is not None:
            # word k spans tokens [starts[k], starts[k+1]); a word starts after a token without @@
            begins = np.ones(n, dtype=bool)
            begins[1:] = self.ends_word[tokens[:-1]]
            word_of = np.cumsum(begins) - 1
            n_units = int(word_of[-1]) + 1
        else:
            word_of, n_units = None, n
        num = int(self.mask_prob * n_units + rng.random())
        chosen = np.zeros(n_units, dtype=bool)
        if num:
            chosen[rng.choice(n_units, num, replace=False)] = True
        mask = chosen[word_of] if word_of is not None else chosen
        target = np.where(mask, tokens, self.pad_idx)
        inp = tokens.copy()
        rand_or_keep = self.leave_unmasked_prob + self.random_token_prob
        unmask = rand = None
        if rand_or_keep > 0:
            decide = mask & (rng.random(n) < rand_or_keep)
            if self.random_token_prob == 0:
                unmask = decide
            elif self.leave_unmasked_prob == 0:
                rand = decide
            else:
                keep = rng.random(n) < self.leave_unmasked_prob / rand_or_keep
                unmask, rand = decide & keep, decide & ~keep
        replace = mask if unmask is None else mask & ~unmask
        inp[replace] = self.mask_idx
        if rand is not None and rand.any():
            inp[rand] = rng.integers(self.nspecial, self.vocab_size, size=int(rand.sum()))
        return inp, target


class MaskedLMDataset(torch.utils.data.Dataset):
    """(input, target) pairs for one epoch; the masks are redrawn when ``epoch`` changes."""

    def __init__(self, blocks: TokenBlockDataset, masker: Masker, epoch: int = 1):
        self.blocks, self.masker, self.epoch = blocks, masker, epoch
        self.sizes = blocks.sizes

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int):
        return (i, *self.masker(self.blocks[i], self.epoch, i))


def collate(samples, pad_idx: int) -> dict:
    """Right-pad a list of (index, input, target) into a batch dict."""
    T = max(len(s[1]) for s in samples)
    inp = torch.full((len(samples), T), pad_idx, dtype=torch.long)
    tgt = torch.full((len(samples), T), pad_idx, dtype=torch.long)
    for b, (_, x, y) in enumerate(samples):
        inp[b, : len(x)] = torch.from_numpy(x)
        tgt[b, : len(y)] = torch.from_numpy(y)
    ids = torch.tensor([s[0] for s in samples])
    ntokens = int(inp.ne(pad_idx).sum())
    return {"id": ids, "tokens": inp, "target": tgt, "nsentences": len(samples), "ntokens": ntokens}


# --------------------------------------------------------------------------- batching
class TaskError(RuntimeError):
    """Bad data for a task (or flags that cannot batch it): names the file or the flag."""


def batch_by_size(indices: np.ndarray, sizes: np.ndarray, max_tokens: Optional[int],
                  max_sentences: Optional[int], required_multiple: int = 1) -> list[np.ndarray]:
    """Greedy batches of consecutive ``indices``: padded size (bsz x longest) <= max_tokens
    and bsz <= max_sentences; batch sizes rounded down to ``required_multiple`` when larger. A
    sample longer than ``max_tokens`` is a TaskError, as in fairseq (it would make a batch over
    the cap that the flag promises, which is what keeps a run inside its memory)."""
    longest = int(sizes[indices].max()) if len(indices) else 0
    if max_tokens and longest > max_tokens:
        raise TaskError(f"a sample of {longest} tokens exceeds the batch cap of {max_tokens} tokens (--max-tokens, "
                        f"or --max-tokens-valid for validation; padding included): raise it to at least {longest}, "
                        f"or shorten the samples (--tokens-per-sample; finetuning: --truncate-sequence)")
    max_tokens = max_tokens or math.inf
    max_sentences = max_sentences or math.inf
    batches, current, longest = [], [], 0
    for idx in indices.tolist():
        n = int(sizes[idx])
        new_longest = max(longest, n)
        if current and (len(current) + 1 > max_sentences or new_longest * (len(current) + 1) > max_tokens):
            keep = len(current)
            if keep > required_multiple:
                keep = keep - keep % required_multiple if keep % required_multiple else keep
            batches.append(np.asarray(current[:keep]))
            current = current[keep:]
            longest = max((int(sizes[i]) for i in current), default=0)
            new_longest = max(longest, n)
        current.append(idx)
        longest = new_longest
    if current:
        batches.append(np.asarray(current))
    return batches


def filter_by_size(indices: np.ndarray, sizes: np.ndarray, max_positions: int) -> tuple[np.ndarray, int]:
    ok = sizes[indices] <= max_positions
    return indices[ok], int((~ok).sum())


def epoch_batches(dataset: MaskedLMDataset, seed: int, epoch: int, max_tokens: Optional[int],
                  max_sentences: Optional[int], required_multiple: int, max_positions: int,
                  shuffle: bool = True) -> tuple[list[np.ndarray], int]:
    """This epoch's batches: length-sorted with a random tie-break, then shuffled (fairseq's
    masked_lm order); returns (batches, number of over-long samples skipped)."""
    sizes = dataset.sizes
    if shuffle:
        rng = np.random.default_rng([seed, epoch, 0])
        order = np.lexsort((rng.permutation(len(sizes)), sizes))
    else:
        order = np.argsort(sizes, kind="stable")
    order, skipped = filter_by_size(order, sizes, max_positions)
    batches = batch_by_size(order, sizes, max_tokens, max_sentences, required_multiple)
    if shuffle:
        perm = np.random.default_rng([seed, epoch, 1]).permutation(len(batches))
        batches = [batches[i] for i in perm]
    return batches, skipped


def shard(batches: Sequence[np.ndarray], rank: int, world: int) -> list[Optional[np.ndarray]]:
    """Rank r takes batches r, r+W, ...; ranks short of one get None (a dummy batch)."""
    per_rank = math.ceil(len(batches) / world)
    out = list(batches[rank::world])
    return out + [None] * (per_rank - len(out))


def updates_per_epoch(bin_dir: Path, tokens_per_sample: int, batch: int) -> int:
    """Pretraining updates in one epoch of ``bin_dir``'s train split (complete-mode blocks)."""
    blocks = block_boundaries(MMapIndexedDataset(bin_dir / "train").sizes, tokens_per_sample - 1, "complete")
    return max(1, math.ceil(len(blocks) / batch))
