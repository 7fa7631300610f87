"""``tupe-preprocess pretrain``: raw corpus -> bpe-code, dict.txt, train/valid .bin/.idx.

The steps of the original ``preprocess/pretrain/process.sh`` (NOTES.md section 6), streamed:

  pass 1  read (plain text or WikiExtractor) -> drop invalid UTF-8 -> pre-cleanup -> Moses
          punctuation normalisation + non-printing removal -> lower-case   [workers]
          -> join hard-wrapped lines -> length/letter/backslash/pipe filter -> split
          punctuation -> <url>/<email>/<file> + hyphen split -> corpus-wide dedup  [main]
  pass 2  21% word-frequency cut -> sentence segmentation -> Moses tokenisation -> merge
          short sentences -> drop short lines   [workers]; every 200th paragraph to valid;
          one sentence per line, documents separated by an empty line
  BPE     learn on train (or reuse --bpe-code), apply (HF tokenizers)
  dict    build (--nwords, padded to a multiple of 8) or reuse --dict; binarize

Memory grows only with the dedup filter (8 bytes + set overhead per distinct paragraph) and
the word-count tables; everything else streams through temporary files in the output dir.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from ..data.bpe import BPE, PROTECTED, learn_bpe, read_codes, write_codes
from ..data.dictionary import Dictionary
from . import text as T
from .common import (PreprocessError, atomic_directory, binarize_lines, chunked, parallel_map,
                     progress, read_lines)


@dataclass
class PretrainOptions:
    inputs: list[Path]
    destdir: Path
    workers: int = 1
    cased: bool = False
    filter: T.LineFilter = field(default_factory=T.LineFilter)
    keep_vocab_fraction: float = 0.21
    valid_every: int = 200
    min_sentence_words: int = 5
    max_merged_chars: int = 250
    min_line_chars: int = 20
    bpe_merges: int = 32640
    bpe_code: Optional[Path] = None
    dict: Optional[Path] = None
    nwords: int = 32768
    show_progress: bool = True
    force: bool = False
    keep_text: bool = False
    chunk_lines: int = 500


# --------------------------------------------------------------------------- workers
_STATE: dict = {}


def _init_worker(state: dict) -> None:
    _STATE.clear()
    _STATE.update(state)


def _normalize_chunk(raw_lines: list[Optional[bytes]]) -> tuple[list[Optional[str]], int]:
    """Pass 1 per-line work. ``None`` marks a paragraph break (blank line, <doc> marker)."""
    out, dropped = [], 0
    for raw in raw_lines:
        if raw is None:
            out.append(None)
            continue
        line, bad = T.decode_utf8(raw)
        dropped += bad
        line = T.normalize_punctuation(T.pre_cleanup(line))
        out.append(line if _STATE["cased"] else line.lower())
    return out, dropped


def _tokenize_chunk(paragraphs: list[str]) -> list[list[str]]:
    """Pass 2: one paragraph -> its kept, tokenised sentences."""
    keep: Optional[frozenset] = _STATE.get("keep_words")
    out = []
    for para in paragraphs:
        if keep is not None:
            para = " ".join(w if w in keep else "<unk>" for w in para.split())
        sentences = [T.moses_tokenize(s) for s in T.split_sentences(para)]
        sentences = T.merge_short_sentences(sentences, _STATE["min_sentence_words"],
                                            _STATE["max_merged_chars"])
        out.append([s for s in sentences if len(s) >= _STATE["min_line_chars"]])
    return out


# --------------------------------------------------------------------------- pass 1
def _raw_lines(paths: list[Path], stats: Counter, bar) -> Iterator[Optional[bytes]]:
    """Input lines as bytes; None at paragraph breaks (blank lines, WikiExtractor markers)."""
    for path in paths:
        with open(path, "rb") as f:
            for raw in f:
                bar.update(len(raw))
                stats["lines_read"] += 1
                stripped = raw.strip()
                if not stripped or stripped.startswith(b"<doc ") or stripped.startswith(b"<doc>") \
                        or stripped == b"</doc>":
                    yield None
                else:
                    yield raw.rstrip(b"\r\n")
        yield None


def _join(lines: Iterator[Optional[str]]) -> Iterator[tuple[str, int]]:
    """Join hard-wrapped lines; yields (paragraph, number of input lines in it)."""
    current, parts = "", 0
    for line in lines:
        if line is not None and current and T.should_join(current, line):
            current, parts = current + " " + line, parts + 1
            continue
        if current:
            yield current, parts
        current, parts = (line or ""), (1 if line else 0)
    if current:
        yield current, parts


def pass1(opts: PretrainOptions, out_path: Path, stats: Counter) -> Counter:
    """Write kept, de-duplicated paragraphs to ``out_path``; return their word counts."""
    total = sum(p.stat().st_size for p in opts.inputs)
    word_counts: Counter = Counter()
    seen: set[bytes] = set()
    state = {"cased": opts.cased}
    with progress(total=total, unit="B", unit_scale=True, desc="clean", disable=not opts.show_progress) as bar, \
            open(out_path, "w", encoding="utf-8") as out:
        chunks = chunked(_raw_lines(opts.inputs, stats, bar), opts.chunk_lines * 4)

        def normalized():
            for lines, dropped in parallel_map(_normalize_chunk, chunks, opts.workers, _init_worker, (state,)):
                stats["invalid_utf8_bytes"] += dropped
                yield from lines

        for para, _ in _join(normalized()):
            stats["paragraphs"] += 1
            reason = opts.filter.reason(para)
            if reason:
                stats[f"dropped_{reason}"] += 1
                continue
            para = T.substitute_placeholders(T.split_punctuation(para))
            digest = hashlib.blake2b(para.encode("utf-8"), digest_size=8).digest()
            if digest in seen:
                stats["dropped_duplicate"] += 1
                continue
            seen.add(digest)
            out.write(para + "\n")
            stats["paragraphs_kept"] += 1
            if opts.keep_vocab_fraction < 1.0:
                word_counts.update(para.split())
            if opts.show_progress:
                bar.set_postfix(kept=stats["paragraphs_kept"], refresh=False)
    return word_counts


def frequent_words(word_counts: Counter, fraction: float) -> frozenset:
    """The most frequent ``fraction`` of distinct tokens (ties: alphabetical)."""
    ranked = sorted(word_counts.items(), key=lambda wc: (-wc[1], wc[0]))
    keep = int(round(len(ranked) * fraction))
    return frozenset(w for w, _ in ranked[:keep]) | frozenset(T.PROTECTED)


# --------------------------------------------------------------------------- pass 2
def pass2(opts: PretrainOptions, para_path: Path, train_path: Path, valid_path: Path,
          keep_words: Optional[frozenset], stats: Counter) -> Counter:
    """Sentence-split and tokenise paragraphs into train/valid text; return train word counts."""
    state = {"keep_words": keep_words, "min_sentence_words": opts.min_sentence_words,
             "max_merged_chars": opts.max_merged_chars, "min_line_chars": opts.min_line_chars}
    counts: Counter = Counter()
    n = stats["paragraphs_kept"]
    with open(train_path, "w", encoding="utf-8") as train, open(valid_path, "w", encoding="utf-8") as valid, \
            progress(total=n, unit="par", desc="tokenize", disable=not opts.show_progress) as bar:
        i = 0
        for docs in parallel_map(_tokenize_chunk, chunked(read_lines(para_path), opts.chunk_lines),
                                 opts.workers, _init_worker, (state,)):
            for sentences in docs:
                split = "valid" if i % opts.valid_every == opts.valid_every - 1 else "train"
                i += 1
                if not sentences:
                    stats["dropped_empty_document"] += 1
                    continue
                f = valid if split == "valid" else train
                f.write("\n".join(sentences) + "\n\n")
                stats[f"{split}_documents"] += 1
                stats[f"{split}_sentences"] += len(sentences)
                if split == "train":
                    for s in sentences:
                        counts.update(s.split())
            bar.update(len(docs))
    return counts


# --------------------------------------------------------------------------- BPE + dict
def apply_bpe_file(bpe: BPE, src: Path, dst: Path, show_progress: bool, desc: str) -> Counter:
    counts: Counter = Counter()
    with open(dst, "w", encoding="utf-8") as out, \
            progress(unit="line", desc=desc, disable=not show_progress) as bar:
        for lines in chunked(read_lines(src), 20000):
            encoded = bpe.apply(lines)
            for line in encoded:
                counts.update(line.split())
            out.write("\n".join(encoded) + "\n")
            bar.update(len(lines))
    return counts


def check_dict_matches_codes(dictionary: Dictionary, merges, dict_path: Path, codes_path: Path) -> None:
    """A --dict must be made of pieces its --bpe-code can produce: single characters or merge
    results (``un@@`` = the piece ``un``, ``tied`` = ``tied</w>``)."""
    results = {a + b for a, b, _ in merges}
    symbols = [s for s in dictionary.symbols[dictionary.nspecial:]
               if s not in PROTECTED and not s.startswith("madeupword")][:500]
    if not symbols:
        raise PreprocessError(f"{dict_path}: the dictionary has no entries")

    def producible(sym: str) -> bool:
        core = sym[:-2] if sym.endswith("@@") else sym
        piece = core if sym.endswith("@@") else core + "</w>"
        return len(core) <= 1 or piece in results

    bad = [s for s in symbols if not producible(s)]
    if len(bad) > 0.1 * len(symbols):
        raise PreprocessError(f"{dict_path}: does not match the BPE codes {codes_path}: {len(bad)} of its "
                              f"first {len(symbols)} entries cannot be produced by those codes "
                              f"(e.g. {', '.join(bad[:5])})")


def load_codes_and_dict(bpe_code: Optional[Path], dict_path: Optional[Path]):
    merges = read_codes(bpe_code) if bpe_code else None
    dictionary = Dictionary.load(dict_path) if dict_path else None
    if merges is not None and dictionary is not None:
        check_dict_matches_codes(dictionary, merges, dict_path, bpe_code)
    return merges, dictionary


def run_pretrain(opts: PretrainOptions) -> dict:
    start = time.time()
    for p in opts.inputs:
        if not Path(p).is_file():
            raise PreprocessError(f"{p}: input file not found")
    for p in (opts.bpe_code, opts.dict):
        if p is not None and not Path(p).is_file():
            raise PreprocessError(f"{p}: file not found")
    if opts.valid_every < 2:
        raise PreprocessError("--valid-every must be >= 2")
    merges, dictionary = load_codes_and_dict(opts.bpe_code, opts.dict)
    stats: Counter = Counter()
    timings: dict[str, float] = {}
    with atomic_directory(opts.destdir, opts.force) as tmp:
        t = time.time()
        word_counts = pass1(opts, tmp / "paragraphs.txt", stats)
        timings["clean"] = time.time() - t
        if stats["paragraphs_kept"] == 0:
            reasons = {k: v for k, v in stats.items() if k.startswith("dropped_")}
            raise PreprocessError(f"{', '.join(map(str, opts.inputs))}: empty corpus: no paragraph left "
                                  f"after filtering ({stats['lines_read']} lines read; dropped: {reasons})")
        keep = None
        if opts.keep_vocab_fraction < 1.0:
            keep = frequent_words(word_counts, opts.keep_vocab_fraction)
            stats["distinct_words"] = len(word_counts)
            stats["distinct_words_kept"] = len(keep)
        del word_counts
        t = time.time()
        train_counts = pass2(opts, tmp / "paragraphs.txt", tmp / "train.tok", tmp / "valid.tok", keep, stats)
        timings["tokenize"] = time.time() - t
        for split in ("train", "valid"):
            if stats[f"{split}_sentences"] == 0:
                raise PreprocessError(
                    f"{', '.join(map(str, opts.inputs))}: the {split} split is empty "
                    f"({stats['paragraphs_kept']} paragraphs kept, every {opts.valid_every}th to valid); "
                    f"give more text or a smaller --valid-every")
        t = time.time()
        if merges is None:
            merges = learn_bpe(train_counts, opts.bpe_merges)
            if not merges:
                raise PreprocessError("no BPE merge could be learned: the training text is too small")
            stats["bpe_merges_learned"] = len(merges)
        write_codes(merges, tmp / "bpe-code")
        timings["bpe_learn"] = time.time() - t
        t = time.time()
        bpe = BPE(merges)
        bpe_counts = apply_bpe_file(bpe, tmp / "train.tok", tmp / "train.bpe", opts.show_progress, "bpe train")
        apply_bpe_file(bpe, tmp / "valid.tok", tmp / "valid.bpe", opts.show_progress, "bpe valid")
        timings["bpe_apply"] = time.time() - t
        t = time.time()
        if dictionary is None:
            dictionary = Dictionary()
            dictionary.update(bpe_counts)
            dictionary.finalize(nwords=opts.nwords, padding_factor=8)
        dictionary.save(tmp / "dict.txt")
        for split in ("train", "valid"):
            s = binarize_lines(read_lines(tmp / f"{split}.bpe"), dictionary, tmp / split)
            for k, v in s.items():
                stats[f"{split}_{k}"] = v
        timings["binarize"] = time.time() - t
        for name in ("paragraphs.txt", "train.tok", "valid.tok", "train.bpe", "valid.bpe"):
            if not opts.keep_text:
                (tmp / name).unlink()
        tokens = stats["train_tokens"] + stats["valid_tokens"]
        summary = {
            "inputs": [str(p) for p in opts.inputs],
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()
                        if k not in ("inputs", "filter")} | {"filter": asdict(opts.filter)},
            "stats": dict(sorted(stats.items())),
            "tokens": tokens,
            "unk_rate": (stats["train_unk"] + stats["valid_unk"]) / max(1, tokens),
            "dictionary_size": len(dictionary),
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
            "duration_s": round(time.time() - start, 3),
        }
        (tmp / "preprocess.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
