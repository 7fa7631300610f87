"""``tupe-preprocess pretrain``: raw corpus -> bpe-code, dict.txt, train/valid .bin/.idx.

The steps of the original ``preprocess/pretrain/process.sh`` (docs/formats.md section 6), streamed:

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
import itertools
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ..data.bpe import BPE, PROTECTED, learn_bpe, read_codes, write_codes
from ..data.dictionary import Dictionary
from ..data.indexed_dataset import IndexedDatasetBuilder, best_fitting_dtype
from . import text as T
from .common import PreprocessError, atomic_directory, chunked, parallel_map, progress, read_lines


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


def _normalize(raw: bytes) -> tuple[str, int]:
    """(normalised line, bytes dropped: invalid UTF-8 and NUL); overlong words become <unk>."""
    counts: dict = {}
    line = T.normalize_punctuation(T.pre_cleanup(T.decode_row(raw, counts)))
    bad = counts.get("invalid_utf8_bytes", 0) + counts.get("nul_bytes", 0)
    return (line if _STATE["cased"] else line.lower()), bad


def _finish(para: str, line_filter: T.LineFilter) -> tuple[Optional[str], str]:
    """Filter a joined paragraph, then split punctuation and substitute placeholders.
    Returns (None, reason) for a dropped paragraph, else (text, "")."""
    reason = line_filter.reason(para)
    if reason:
        return None, reason
    return T.substitute_placeholders(T.split_punctuation(para)), ""


def _join_lines(lines: list[Optional[str]]) -> list[str]:
    """Join hard-wrapped lines into paragraphs; None is a paragraph break."""
    paras: list[str] = []
    current = ""
    for line in lines:
        if line is not None and current and T.should_join(current, line):
            current += " " + line
            continue
        if current:
            paras.append(current)
        current = line or ""
    if current:
        paras.append(current)
    return paras


def _clean_chunk(raw_lines: list[Optional[bytes]]) -> dict:
    """Pass 1 on a chunk of input lines (None = paragraph break): normalise, join, filter,
    transform. The first and last paragraph may continue across the chunk's edges, so they
    come back raw (``head``/``tail``) for the main process to join."""
    lines, dropped = [], 0
    for raw in raw_lines:
        if raw is None:
            lines.append(None)
        else:
            line, bad = _normalize(raw)
            dropped += bad
            lines.append(line)
    paras = _join_lines(lines)
    open_start = bool(lines) and lines[0] is not None and bool(paras)
    open_end = bool(lines) and lines[-1] is not None and bool(paras)
    head = paras[0] if open_start else None
    tail = paras[-1] if open_end and (len(paras) > 1 or not open_start) else None
    body = paras[(1 if head is not None else 0): len(paras) - (1 if tail is not None else 0)]
    result = {"dropped_bytes": dropped, "head": head, "tail": tail, "single_open": open_start and open_end
              and len(paras) == 1, "body": [], "counts": Counter()}
    for para in body:
        text, reason = _finish(para, _STATE["filter"])
        if text is not None:
            result["body"].append((text, hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()))
            if _STATE["count_words"]:
                result["counts"].update(text.split())
        else:
            result["body"].append((None, reason))
    return result


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


def pass1(opts: PretrainOptions, out_path: Path, stats: Counter) -> Counter:
    """Write kept, de-duplicated paragraphs to ``out_path``; return their word counts."""
    total = sum(p.stat().st_size for p in opts.inputs)
    count_words = opts.keep_vocab_fraction < 1.0
    word_counts: Counter = Counter()
    seen: set[bytes] = set()
    state = {"cased": opts.cased, "filter": opts.filter, "count_words": count_words}

    with progress(total=total, unit="B", unit_scale=True, desc="clean", disable=not opts.show_progress) as bar, \
            open(out_path, "w", encoding="utf-8") as out:

        def emit(text: Optional[str], digest_or_reason, counted: bool) -> None:
            stats["paragraphs"] += 1
            if text is None:
                stats[f"dropped_{digest_or_reason}"] += 1
                return
            if digest_or_reason in seen:
                stats["dropped_duplicate"] += 1
                if counted:
                    word_counts.subtract(text.split())
                return
            seen.add(digest_or_reason)
            out.write(text + "\n")
            stats["paragraphs_kept"] += 1
            if count_words and not counted:
                word_counts.update(text.split())

        def finish(para: Optional[str]) -> None:   # a paragraph joined in this process
            if para:
                text, reason = _finish(para, opts.filter)
                digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest() if text else reason
                emit(text, digest, counted=False)

        carry: Optional[str] = None   # the last paragraph so far, maybe continued by the next chunk
        chunks = chunked(_raw_lines(opts.inputs, stats, bar), opts.chunk_lines * 4)
        for res in parallel_map(_clean_chunk, chunks, opts.workers, _init_worker, (state,)):
            stats["invalid_utf8_bytes"] += res["dropped_bytes"]
            head = res["head"]
            if res["single_open"]:
                if carry and T.should_join(carry, head):
                    carry += " " + head
                else:
                    finish(carry)
                    carry = head
                continue
            if head is not None and carry and T.should_join(carry, head):
                finish(carry + " " + head)
            else:
                finish(carry)
                finish(head)
            for text, digest_or_reason in res["body"]:
                emit(text, digest_or_reason, counted=True)
            word_counts.update(res["counts"])
            carry = res["tail"]
            if opts.show_progress:
                bar.set_postfix(kept=stats["paragraphs_kept"], refresh=False)
        finish(carry)
    return +word_counts   # drop words whose count fell to zero


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
def bpe_encode_file(bpe: BPE, src: Path, dst: Path, show_progress: bool, desc: str) -> np.ndarray:
    """BPE piece ids of every line of ``src``, each line followed by the separator id, as raw
    int32 in ``dst`` (line lengths, separator included, in ``dst.sizes``); returns the piece
    counts (separator excluded)."""
    sep = bpe.separator_id
    counts = np.zeros(len(bpe.pieces), dtype=np.int64)
    with open(dst, "wb") as out, open(f"{dst}.sizes", "wb") as out_sizes, \
            progress(unit="line", desc=desc, disable=not show_progress) as bar:
        for lines in chunked(read_lines(src), 20000):
            ids = bpe.encode_ids(lines)
            flat = np.fromiter(itertools.chain.from_iterable(x + [sep] for x in ids), dtype=np.int32)
            flat.tofile(out)
            np.fromiter((len(x) + 1 for x in ids), dtype=np.int32, count=len(ids)).tofile(out_sizes)
            c = np.bincount(flat, minlength=len(bpe.pieces))
            if len(c) > len(counts):   # pieces added by the reference path
                counts = np.pad(counts, (0, len(c) - len(counts)))
            counts[: len(c)] += c
            bar.update(len(lines))
    counts[sep] = 0
    return counts


def binarize_pieces(bpe: BPE, pieces_path: Path, dictionary: Dictionary, prefix: Path,
                    text_path: Optional[Path] = None) -> dict[str, int]:
    """Map piece ids to dictionary ids (the separator becomes ``</s>``), vectorized."""
    lut = np.array([dictionary.index(p) for p in bpe.pieces], dtype=np.int64)
    lut[bpe.separator_id] = dictionary.eos()
    stream = np.memmap(pieces_path, dtype=np.int32, mode="r") if pieces_path.stat().st_size else np.zeros(0, np.int32)
    sizes = np.fromfile(f"{pieces_path}.sizes", dtype=np.int32)
    unk = 0
    text = open(text_path, "w", encoding="utf-8") if text_path is not None else None
    with IndexedDatasetBuilder(prefix, best_fitting_dtype(len(dictionary) + 1)) as builder:
        start = 0
        for block in np.array_split(sizes, max(1, len(sizes) // (1 << 18))):   # bounded memory
            end = start + int(block.sum())
            pieces = np.asarray(stream[start:end])
            ids = lut[pieces]
            builder.add_items(ids, block)
            unk += int((ids == dictionary.unk()).sum())
            if text is not None:
                for line in np.split(pieces, np.cumsum(block)[:-1]):
                    text.write(" ".join(bpe.pieces[i] for i in line[:-1]) + "\n")
            start = end
    if text is not None:
        text.close()
    return {"sentences": len(sizes), "tokens": int(sizes.sum()), "unk": unk}


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
    with atomic_directory(opts.destdir, opts.force, [*opts.inputs, opts.bpe_code, opts.dict]) as tmp:
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
        counts = bpe_encode_file(bpe, tmp / "train.tok", tmp / "train.pieces", opts.show_progress, "bpe train")
        bpe_encode_file(bpe, tmp / "valid.tok", tmp / "valid.pieces", opts.show_progress, "bpe valid")
        timings["bpe_apply"] = time.time() - t
        t = time.time()
        if dictionary is None:
            dictionary = Dictionary()
            dictionary.update({bpe.pieces[i]: int(c) for i, c in enumerate(counts) if c})
            dictionary.finalize(nwords=opts.nwords, padding_factor=8)
        dictionary.save(tmp / "dict.txt")
        for split in ("train", "valid"):
            text = tmp / f"{split}.bpe" if opts.keep_text else None
            s = binarize_pieces(bpe, tmp / f"{split}.pieces", dictionary, tmp / split, text)
            for k, v in s.items():
                stats[f"{split}_{k}"] = v
            (tmp / f"{split}.pieces").unlink()
            (tmp / f"{split}.pieces.sizes").unlink()
        timings["binarize"] = time.time() - t
        if not opts.keep_text:
            for name in ("paragraphs.txt", "train.tok", "valid.tok"):
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
