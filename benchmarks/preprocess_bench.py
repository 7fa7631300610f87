"""Benchmark of ``tupe-preprocess pretrain`` on a generated corpus (>= 20 MB by default).

Reports tokens/second overall and per stage for --workers 1 and --workers 2, and compares BPE
application + binarization (HF tokenizers) with a pure-Python greedy BPE of the same codes on
the same text. Results go to benchmarks/results/preprocess.json (and stdout).

    python benchmarks/preprocess_bench.py [--mb 20] [--out benchmarks/results/preprocess.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from tupe.data.bpe import BPE, apply_word_reference, format_pieces, read_codes
from tupe.data.dictionary import Dictionary
from tupe.preprocess.common import binarize_lines, read_lines
from tupe.preprocess.pretrain import PretrainOptions, binarize_pieces, bpe_encode_file, run_pretrain

SYLLABLES = ("ka ri to na me su lo pe di ra ne mi ko sa tu ve li do ba ge fu hi jo la mo nu po "
             "re si ta vu wa yo ze an el in on ur st th ch sh").split()


def make_corpus(path: Path, megabytes: float, seed: int = 0) -> None:
    """Paragraphs of Zipf-distributed pseudo-words (60k types) with punctuation and capitals."""
    rng = np.random.default_rng(seed)
    vocab = ["".join(rng.choice(SYLLABLES, size=rng.integers(1, 5))) for _ in range(60000)]
    vocab = list(dict.fromkeys(vocab))
    probs = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
    probs /= probs.sum()
    target = int(megabytes * 1e6)
    written = 0
    with open(path, "w") as f:
        while written < target:
            words = rng.choice(len(vocab), size=4000, p=probs)
            lengths = rng.integers(5, 25, size=400)
            out, pos = [], 0
            for n in lengths:
                sent = " ".join(vocab[i] for i in words[pos: pos + n])
                pos += n
                if pos >= len(words):
                    break
                out.append(sent[0].upper() + sent[1:] + rng.choice([".", ".", ",", "?", "!"]))
            paras = [" ".join(out[i: i + 5]) for i in range(0, len(out), 5)]
            text = "\n".join(paras) + "\n\n"
            f.write(text)
            written += len(text)


def python_bpe_binarize(lines, merges, dictionary, prefix, cache: bool):
    """The pure-Python baseline: greedy by rank per word (``cache=False``: the straightforward
    version, every word computed; ``cache=True``: with subword-nmt's word cache), then the
    same line binarizer as the GLUE path."""
    ranks = {(a, b): i for i, (a, b, _) in enumerate(merges)}
    memo: dict[str, str] = {}

    def word(w):
        if not cache:
            return format_pieces(apply_word_reference(w, ranks))
        if w not in memo:
            memo[w] = format_pieces(apply_word_reference(w, ranks))
        return memo[w]

    return binarize_lines((" ".join(word(w) for w in line.split()) for line in lines), dictionary, prefix)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=float, default=20.0, help="corpus size in MB")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "preprocess.json")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tupe-bench-"))
    corpus = work / "corpus.txt"
    make_corpus(corpus, args.mb)
    size_mb = corpus.stat().st_size / 1e6
    print(f"corpus: {size_mb:.1f} MB at {corpus}")
    results = {"machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                           "python": platform.python_version()}, "corpus_mb": round(size_mb, 2), "runs": {}}
    for workers in (1, 2):
        opts = PretrainOptions(inputs=[corpus], destdir=work / f"out{workers}", workers=workers,
                               show_progress=False, keep_text=True, force=True)
        t = time.time()
        summary = run_pretrain(opts)
        total = time.time() - t
        tokens = summary["tokens"]
        results["runs"][f"workers_{workers}"] = {
            "seconds": round(total, 2), "tokens": tokens, "tokens_per_s": round(tokens / total),
            "mb_per_s": round(size_mb / total, 3),
            "stages_s": summary["timings_s"],
            "stage_tokens_per_s": {k: round(tokens / max(v, 1e-9)) for k, v in summary["timings_s"].items()},
        }
        print(f"workers={workers}: {total:.1f}s, {tokens / total:,.0f} tokens/s, stages {summary['timings_s']}")
    speedup = results["runs"]["workers_1"]["seconds"] / results["runs"]["workers_2"]["seconds"]
    results["workers_2_speedup"] = round(speedup, 2)

    # BPE application + binarization: compiled (the pipeline's code) vs pure Python, same codes,
    # same text, identical output bytes
    out = work / "out1"
    merges = read_codes(out / "bpe-code")
    dictionary = Dictionary.load(out / "dict.txt")
    t = time.time()
    bpe = BPE(merges)
    bpe_encode_file(bpe, out / "train.tok", work / "train.pieces", False, "")
    s_fast = binarize_pieces(bpe, work / "train.pieces", dictionary, work / "fast")
    fast = time.time() - t
    lines = list(read_lines(out / "train.tok"))
    timings = {}
    for cache in (False, True):
        t = time.time()
        s_slow = python_bpe_binarize(lines, merges, dictionary, work / f"slow{int(cache)}", cache)
        timings[cache] = time.time() - t
        assert (work / "fast.bin").read_bytes() == (work / f"slow{int(cache)}.bin").read_bytes(), "outputs differ"
        assert (work / "fast.idx").read_bytes() == (work / f"slow{int(cache)}.idx").read_bytes(), "outputs differ"
        assert s_fast == s_slow
    results["bpe_apply_binarize"] = {
        "lines": len(lines), "tokens": s_fast["tokens"], "merges": len(merges),
        "compiled_s": round(fast, 2), "python_s": round(timings[False], 2),
        "python_cached_s": round(timings[True], 2),
        "speedup_vs_python": round(timings[False] / fast, 2),
        "speedup_vs_python_cached": round(timings[True] / fast, 2),
        "compiled_tokens_per_s": round(s_fast["tokens"] / fast)}
    print(f"BPE apply + binarize: compiled {fast:.1f}s vs pure Python {timings[False]:.1f}s "
          f"({timings[False] / fast:.1f}x), with a word cache {timings[True]:.1f}s ({timings[True] / fast:.1f}x)")
    print(f"full pipeline --workers 2 vs 1: {speedup:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
