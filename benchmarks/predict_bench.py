"""Raw-text prediction end to end: ``tupe-predict`` batched (its defaults: length-sorted batches of
at most 32 rows, cut where padding wastes least; and ``--max-tokens 2048``: batches by padded
positions) against the same command with one forward per line (``--batch-size 1``) and against
transformers' ``pipeline("text-classification", batch_size=32)`` on the same model converted with
``tupe-convert --hf``; each run in a fresh process, model load included.

    pip install -e '.[hf]'
    python benchmarks/predict_bench.py [--rows 300] [--rounds 2] [--arch bert_base]

The model: a TUPE-R of ``--arch``'s size with a 2-class head, its vocabulary built by
``tupe-preprocess pretrain`` from a slice of the shipped WordNet corpus (weights random: speed does
not depend on them). The text: ``--rows`` definitions of the shipped WordNet task (varied length).
Also measured, in-process: the share of the time in text preprocessing (cleaning, Moses, BPE),
and the token positions each way computes (the pipeline pads each batch of 32 in input order:
with the same per-token cost its time over the batched command's approaches that ratio).
Results (with the CPU model and its bf16 flags) in benchmarks/results/predict_cpu.json.
Target (issue 23, 2 CPU cores): >= 2x the per-line path and >= 2.5x the pipeline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from train_bench import cpu_name  # benchmarks/ is on sys.path when run as a script

from tupe import TupeConfig, TupeModel, save_pretrained
from tupe.checkpoint import load_vocabulary
from tupe.cli.predict import chunk_lines
from tupe.data.dictionary import Dictionary, model_vocab_size
from tupe.demo import DATA, prepare_corpus
from tupe.hub import from_pretrained, length_batches

PIPELINE = """
import sys, time
t = time.perf_counter()
import tupe.hf
from transformers import pipeline
clf = pipeline("text-classification", model=sys.argv[1], device="cpu")
rows = open(sys.argv[2], encoding="utf-8").read().splitlines()
out = clf(rows, batch_size=32)
assert len(out) == len(rows)
print(time.perf_counter() - t)
"""


MAX_TOKENS = 2048
TOKENS_WAY = f"tupe-predict --max-tokens {MAX_TOKENS}"
BATCHING = {"tupe-predict batched (32)": (32, None), TOKENS_WAY: (None, MAX_TOKENS)}   # (batch_size, max_tokens)


def chunks_of(rows: list) -> list[list]:
    """The chunks tupe-predict reads (``predict.chunk_lines``)."""
    out, done = [], 0
    while done < len(rows):
        out.append(rows[done: done + chunk_lines(done)])
        done += len(out[-1])
    return out


def timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ...: {proc.stderr[-2000:]}")
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=300, help="input lines")
    p.add_argument("--rounds", type=int, default=2, help="fresh-process runs of each way, in turns")
    p.add_argument("--arch", default="bert_base")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "predict_cpu.json")
    args = p.parse_args()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = prepare_corpus(tmp, 8000)
        subprocess.run([str(bin_dir / "tupe-preprocess"), "pretrain", "--input", str(corpus), "--destdir",
                        str(tmp / "bin"), "--bpe-merges", "4000", "--no-progress"], check=True, env=env)
        dictionary = Dictionary.load(tmp / "bin" / "dict.txt")
        vocabulary = load_vocabulary(tmp / "bin", model_vocab_size(dictionary))
        torch.manual_seed(0)
        model = TupeModel(TupeConfig.from_scheme("TUPE-R", model_vocab_size(dictionary), arch=args.arch,
                                                 embedding_normalize=True))
        model.register_classification_head(model.DEFAULT_HEAD, 2)
        save_pretrained(model, tmp / "clf", vocabulary=vocabulary)
        subprocess.run([str(bin_dir / "tupe-convert"), str(tmp / "clf"), str(tmp / "hf"), "--hf"], check=True,
                       env=env, capture_output=True)
        rows = [line.split("\t")[1] for line in (DATA / "task" / "test.tsv").read_text().splitlines()[1:]]
        rows = (rows * (args.rows // len(rows) + 1))[: args.rows]
        (tmp / "in.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
        predict = [str(bin_dir / "tupe-predict"), "--checkpoint", str(tmp / "clf"), "--cpu", "--input",
                   str(tmp / "in.txt")]
        ways = {"tupe-predict batched (32)": predict,
                TOKENS_WAY: predict + ["--max-tokens", str(MAX_TOKENS)],
                "tupe-predict per line": predict + ["--batch-size", "1"],
                "transformers pipeline (32)": [sys.executable, "-c", PIPELINE, str(tmp / "hf"), str(tmp / "in.txt")]}
        seconds: dict[str, list[float]] = {k: [] for k in ways}
        for r in range(args.rounds):
            for name, cmd in ways.items():
                seconds[name].append(timed(cmd, env))
                print(f"round {r + 1} {name}: {seconds[name][-1]:.1f} s", file=sys.stderr)
        # the share of text preprocessing (cleaning, Moses, BPE, ids) in the batched run
        hub = from_pretrained(tmp / "clf")
        t = time.perf_counter()
        encoded = [hub.encode(row) for row in rows]
        prep = time.perf_counter() - t
        forward = {}
        for name, (batch_size, max_tokens) in BATCHING.items():
            t = time.perf_counter()
            for chunk in chunks_of(encoded):
                hub.predict_rows(model.DEFAULT_HEAD, chunk, batch_size, max_tokens)
            forward[name] = round(time.perf_counter() - t, 2)
    # the token positions (and forwards) each way computes: the pipeline pads each batch of 32 (input
    # order) to its longest row; tupe-predict sorts each chunk by length and cuts it where padding
    # wastes least (tupe.hub.length_batches); before that it cut every 32 sorted rows
    lengths = [len(e) for e in encoded]

    def padded(rows: list[int]) -> int:
        return sum(len(rows[i: i + 32]) * max(rows[i: i + 32]) for i in range(0, len(rows), 32))

    def cut(batch_size, max_tokens) -> tuple[int, int]:
        batches = [[chunk[i] for i in b] for chunk in chunks_of(lengths)
                   for b in length_batches(chunk, batch_size, max_tokens)]
        return sum(len(b) * max(b) for b in batches), len(batches)

    cuts = {name: cut(*batching) for name, batching in BATCHING.items()}     # (positions, forwards)
    positions = {"real tokens": sum(lengths), **{name: c[0] for name, c in cuts.items()},
                 "every 32 sorted rows (the former cut)": sum(padded(sorted(c)) for c in chunks_of(lengths)),
                 "transformers pipeline (32)": padded(lengths)}
    forwards = {**{name: c[1] for name, c in cuts.items()}, "transformers pipeline (32)": -(-len(lengths) // 32)}
    med = {k: statistics.median(v) for k, v in seconds.items()}

    def paired(slow: str, fast: str) -> float:
        return round(statistics.median(a / b for a, b in zip(seconds[slow], seconds[fast])), 2)

    result = {
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
                    "python": sys.version.split()[0]},
        "model": f"TUPE-R {args.arch}, 2-class head", "rows": args.rows, "rounds": args.rounds,
        "seconds": seconds,
        "rows_per_s": {k: round(args.rows / v, 1) for k, v in med.items()},
        # speed-ups: the median over rounds of the ratio within a round (the ways of one round run
        # back to back, so that a slow spell of the machine hits them alike)
        "batched_over_per_line": paired("tupe-predict per line", "tupe-predict batched (32)"),
        "batched_over_pipeline": paired("transformers pipeline (32)", "tupe-predict batched (32)"),
        "max_tokens_over_per_line": paired("tupe-predict per line", TOKENS_WAY),
        "max_tokens_over_pipeline": paired("transformers pipeline (32)", TOKENS_WAY),
        "ratios_of_medians": {"batched_over_pipeline": round(med["transformers pipeline (32)"]
                                                             / med["tupe-predict batched (32)"], 2),
                              "max_tokens_over_pipeline": round(med["transformers pipeline (32)"] / med[TOKENS_WAY], 2)},
        "in_process": {"preprocessing_s": round(prep, 2), "forward_s": forward,
                       "preprocessing_share": round(prep / (prep + forward["tupe-predict batched (32)"]), 3)},
        "positions_computed": positions,
        "forwards": forwards,
        "pipeline_positions_over_batched": round(positions["transformers pipeline (32)"]
                                                 / positions["tupe-predict batched (32)"], 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
