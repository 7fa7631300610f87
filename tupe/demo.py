"""``python -m tupe.demo`` (``make demo``): TUPE-R vs TUPE-A vs BERT-A, end to end, on WordNet.

1. preprocess the shipped WordNet corpus (``tupe-preprocess pretrain``) and the shipped
   labelled task (does a noun gloss describe a living thing? SST-2 layout; ``tupe-preprocess glue``);
2. pretrain three small models side by side, same budget and seed (``train.py``);
3. finetune each on the task over a small LR x seed grid (``tupe-glue``);
4. write ``OUT/report.md`` with plots (``tupe-report``) and print the result table.

Default budget about 14 minutes on 2 CPU cores; ``--quick`` about a minute (the tests use it);
``--minutes N`` or ``--updates N`` scale it. On a GPU it runs unchanged (and faster).
"""

from __future__ import annotations

import argparse
import gzip
import math
import shutil
import sys
import time
from pathlib import Path

DATA = Path(__file__).parent / "demo_data"
MODELS = {"TUPE-R": ["--rel-pos"], "TUPE-A": [], "BERT-A": ["--pos-encoding", "absolute"]}


def log(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def prepare_corpus(out: Path, max_lines: int | None) -> Path:
    path = out / "corpus.txt"
    with gzip.open(DATA / "corpus.txt.gz", "rt", encoding="utf-8") as src, open(path, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if max_lines is not None and i >= max_lines:
                break
            dst.write(line)
    return path


def prepare_task(out: Path, max_rows: dict | None) -> Path:
    raw = out / "glue" / "SST-2"
    raw.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev", "test"):
        lines = (DATA / "task" / f"{split}.tsv").read_text().splitlines(keepends=True)
        if max_rows is not None:
            lines = lines[: 1 + max_rows[split]]
        (raw / f"{split}.tsv").write_text("".join(lines))
    return out / "glue"


def updates_per_epoch(bin_dir: Path, tokens_per_sample: int, batch: int) -> int:
    from .data.indexed_dataset import MMapIndexedDataset
    from .train.data import block_boundaries

    blocks = block_boundaries(MMapIndexedDataset(bin_dir / "train").sizes, tokens_per_sample - 1, "complete")
    return max(1, math.ceil(len(blocks) / batch))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tupe-demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--quick", action="store_true", help="about a minute: tiny models, a slice of the data")
    p.add_argument("--minutes", type=float, default=None, help="scale the default budget (14 min on 2 cores)")
    p.add_argument("--updates", type=int, default=None, help="pretraining updates per model")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)

    from .cli import glue as sweep
    from .preprocess.cli import main as preprocess
    from .report import make_report
    from .train.trainer import main as train

    start = time.time()
    out = args.out
    if out.exists():
        shutil.rmtree(out)
    (out / "data").mkdir(parents=True)
    if args.quick:
        arch = ["--arch", "bert_tiny", "--encoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128"]
        tps, batch, updates, merges = 64, 16, 120, 1000
        corpus_lines, rows = 12000, {"train": 600, "dev": 200, "test": 50}
        lrs, seeds, epochs = "1e-3", 1, 2
    else:
        arch = ["--arch", "bert_small"]
        tps, batch, updates, merges = 128, 16, 600, 8000
        corpus_lines, rows = None, None
        lrs, seeds, epochs = "1e-4,3e-4", 2, 1
    if args.minutes is not None:
        updates = max(20, int(updates * args.minutes / (1.5 if args.quick else 14)))
    if args.updates is not None:
        updates = args.updates

    log(f"1/4 preprocessing the WordNet corpus{' (a slice)' if corpus_lines else ''} and the task")
    corpus = prepare_corpus(out / "data", corpus_lines)
    bin_dir = out / "data" / "bin"
    if preprocess(["pretrain", "--input", str(corpus), "--destdir", str(bin_dir), "--bpe-merges", str(merges),
                   "--nwords", "16384", "--valid-every", "50", "--workers", str(args.workers), "--no-progress",
                   "--min-chars", "40", "--min-letters", "30"]) != 0:
        return 1
    glue_raw = prepare_task(out / "data", rows)
    if preprocess(["glue", "--glue-dir", str(glue_raw), "--tasks", "SST-2", "--bpe-dir", str(bin_dir),
                   "--destdir", str(out / "data" / "glue-bin"), "--workers", str(args.workers), "--no-progress"]) != 0:
        return 1

    per_epoch = updates_per_epoch(bin_dir, tps, batch)
    checks = max(1, round(per_epoch / max(1, updates / 5)))   # ~5 validations over the budget
    log(f"2/4 pretraining {', '.join(MODELS)}: {updates} updates each ({per_epoch} per epoch), "
        f"{arch[1]}, {tps} tokens, batch {batch}")
    for name, flags in MODELS.items():
        t = time.time()
        code = train([str(bin_dir), *arch, "--task", "masked_lm", "--sample-break-mode", "complete",
                      "--tokens-per-sample", str(tps), "--max-positions", str(tps), "--max-sentences", str(batch),
                      "--lr", "1e-3", "--warmup-updates", str(max(1, updates // 10)), "--total-num-update",
                      str(updates), "--max-update", str(updates), "--adam-betas", "(0.9, 0.98)",
                      "--adam-eps", "1e-6", "--clip-norm", "1.0", "--weight-decay", "0.01", "--seed", "1",
                      "--mask-prob", "0.15", "--embedding-normalize", "--validate-interval-updates", str(checks),
                      "--no-epoch-checkpoints", "--num-workers", "0", "--log-format", "none", "--log-interval",
                      str(max(1, updates // 50)), "--save-dir", str(out / "pretrain" / name),
                      "--skip-invalid-size-inputs-valid-test", *flags])
        if code != 0:
            return code
        log(f"    {name}: {time.time() - t:.0f}s")

    log(f"3/4 finetuning each on the WordNet task (lr {lrs}, {seeds} seed(s), {epochs} epochs)")
    for name in MODELS:
        code = sweep.main(["--checkpoint", str(out / "pretrain" / name / "checkpoint_last.pt"),
                           "--data-dir", str(out / "data" / "glue-bin"), "--tasks", "SST-2", "--lrs", lrs,
                           "--seeds", str(seeds), "--epochs", str(epochs), "--batch-size", "32",
                           "--out", str(out / "finetune" / name), "--label", name])
        if code != 0:
            return code

    log("4/4 report")
    report, table = make_report(out, title="tupe demo: TUPE-R vs TUPE-A vs BERT-A on WordNet")
    print(table, end="")
    print(f"report: {report} ({time.time() - start:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
