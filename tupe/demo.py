"""``python -m tupe.demo`` (``make demo``): TUPE-R vs TUPE-A vs BERT-A, end to end, on WordNet.

1. preprocess the shipped WordNet corpus (``tupe-preprocess pretrain``) and the shipped
   labelled task (does a noun gloss describe a living thing? SST-2 layout; ``tupe-preprocess glue``);
2. pretrain three small models side by side, same budget and seed (``train.py``);
3. finetune each on the task at one LR over two seeds (``tupe-glue``);
4. write ``OUT/report.md`` with plots (``tupe-report``) and print the result table.

It is a preset of ``tupe-study`` (three schemes, one pretraining LR). Default budget 12-15
minutes on 2 CPU cores: the pretraining updates and finetuning rows are scaled down by the
machine's measured speed, so that a slower CPU (AVX2 only) stays within about the same time;
``--quick`` about a minute (the tests use it); ``--minutes N`` or ``--updates N`` set the
budget. On a GPU it runs unchanged (and faster).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from .cli import HelpFormatter, at_least, refuse_inert
from .logs import cli_logging
from .preprocess.cli import main as preprocess
from .report import STUDY_FILE, make_report
from .study import Interrupted, StudyPlan, run_study, seconds_per_update, stopped

DATA = Path(__file__).parent / "demo_data"
# The demo's models: names from the scheme registry (config.SCHEMES).
MODELS = ("TUPE-R", "TUPE-A", "BERT-A")
DEMO_MARKER = ".tupe-demo"          # marks a demo folder, which the next demo replaces


def is_demo_folder(out: Path) -> bool:
    """A folder the demo may replace: its marker, or (made before the marker) a study whose task is
    the demo's own, inside the folder; never a study or anything else of the user's."""
    if (out / DEMO_MARKER).is_file():
        return True
    try:
        task = json.loads((out / STUDY_FILE).read_text())["plan"]["task"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return task == str(out / "data" / "glue-bin" / "SST-2-bin")


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


def write_sample_data(out: Path, corpus_lines: int = 30000) -> list[Path]:
    """A newcomer's "own data" (README walkthrough): ``corpus.txt`` (raw text, a paragraph per
    line: WordNet glosses and examples) and ``train.tsv`` / ``dev.tsv`` / ``test.tsv`` (a labelled
    task with a header: ``text``, ``label`` = living | other: does the gloss describe a living
    thing?), from the demo's shipped data. A file of those names already in ``out`` with other
    content (the user's own data) is a ValueError, nothing written; the same content (a rerun) is
    fine."""
    out.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=".sample-", dir=out))
    try:
        written = [prepare_corpus(staged, corpus_lines)]
        words = {"0": "other", "1": "living"}
        for split in ("train", "dev", "test"):
            rows = [line.split("\t") for line in (DATA / "task" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]]
            if split == "test":      # unlabeled, one sentence per line: what tupe-predict reads
                text, path = "".join(f"{r[1]}\n" for r in rows), staged / "test.txt"
            else:
                text = "text\tlabel\n" + "".join(f"{r[0]}\t{words[r[1]]}\n" for r in rows)
                path = staged / f"{split}.tsv"
            path.write_text(text, encoding="utf-8")
            written.append(path)
        taken = [out / p.name for p in written if (out / p.name).exists() and (out / p.name).read_bytes() != p.read_bytes()]
        if taken:
            raise ValueError(f"{', '.join(map(str, taken))} exist(s) with other content: --sample-data writes "
                             f"new files only; choose another folder")
        for p in written:
            os.replace(p, out / p.name)
        return [out / p.name for p in written]
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def run_preprocess(argv: list[str]) -> int:
    """tupe-preprocess in-process: 0, or the demo's exit code (a signal's 128 + N, said as the
    demo stopping; 1 where it failed, said by tupe-preprocess)."""
    code = preprocess(argv)
    return stopped("tupe-demo", Interrupted(code)) if code >= 128 else min(code, 1)


def prepare_task(out: Path, max_rows: dict | None) -> Path:
    raw = out / "glue" / "SST-2"
    raw.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev", "test"):
        lines = (DATA / "task" / f"{split}.tsv").read_text().splitlines(keepends=True)
        if max_rows is not None:
            lines = lines[: 1 + max_rows[split]]
        (raw / f"{split}.tsv").write_text("".join(lines))
    return out / "glue"


# Seconds per pretraining update of the default demo's slowest model on the machine its stated
# time was measured on (2-core AMD EPYC, AVX512-BF16; study.seconds_per_update: training steps
# only). Slower machines get a proportionally smaller budget (scaled_budget).
REFERENCE_SECONDS_PER_UPDATE = 0.20
DEFAULT_UPDATES, DEFAULT_TRAIN_ROWS = 500, 4000


def scaled_budget(seconds_per_update: float) -> tuple[int, Optional[dict]]:
    """Pretraining updates and finetuning rows for a machine of this measured speed: both shrink
    in proportion to its slowness against the reference (never grow), so the demo's time holds."""
    speed = REFERENCE_SECONDS_PER_UPDATE / seconds_per_update
    if speed > 0.8:            # the reference machine, give or take its own noise: the default budget
        return DEFAULT_UPDATES, None
    # 0.8: preprocessing does not shrink with the budget, so the rest shrinks a little more
    rows = {"train": int(DEFAULT_TRAIN_ROWS * speed * 0.8), "dev": 800, "test": 400}
    return max(60, int(DEFAULT_UPDATES * speed * 0.8)), rows


def main(argv=None) -> int:
    cli_logging()
    p = argparse.ArgumentParser(prog="tupe-demo", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder (replaced: a folder "
                   "that is not an earlier demo's is refused)")
    p.add_argument("--quick", action="store_true", help="about a minute: tiny models, a slice of the data")
    p.add_argument("--minutes", type=at_least(0.01, float), default=None, help="scale the default budget (12-15 min on 2 cores)")
    p.add_argument("--updates", type=at_least(1), default=None, help="pretraining updates per model")
    p.add_argument("--workers", type=at_least(1), default=2, help="preprocessing processes")
    p.add_argument("--objective", default="mlm", choices=["mlm", "electra", "both"],
                   help="pretraining objective: masked LM (the paper's), ELECTRA (generator + replaced-token "
                        "detection, same budget), or both side by side (twice the pretraining time)")
    p.add_argument("--sample-data", type=Path, metavar="DIR", help="only write sample data to DIR (a raw "
                   "corpus.txt, a labelled train.tsv/dev.tsv and test.txt; the README's walkthrough) and exit")
    p.add_argument("--sample-lines", type=at_least(1), default=30000, help="--sample-data: lines of raw text to write")
    args = p.parse_args(argv)
    sample = args.sample_data is not None
    refuse_inert(p, argv, [("sample_lines", sample, "it is --sample-data's")] + [
        (dest, not sample, "--sample-data only writes the sample data") for dest in
        ("out", "quick", "minutes", "updates", "workers", "objective")])
    if args.sample_data is not None:
        try:
            paths = write_sample_data(args.sample_data, args.sample_lines)
        except ValueError as e:
            print(f"tupe-demo: error: {e}", file=sys.stderr)
            return 1
        for path in paths:
            print(f"tupe-demo: wrote {path} ({sum(1 for _ in open(path, encoding='utf-8'))} lines)")
        return 0


    start = time.time()
    out = args.out
    if out.exists() and any(out.iterdir()) and not is_demo_folder(out):
        print(f"tupe-demo: error: --out {out} exists and is not a demo folder: the demo replaces its folder whole, "
              f"so nothing was touched; choose a new folder", file=sys.stderr)
        return 1
    if out.exists():
        shutil.rmtree(out)
    (out / "data").mkdir(parents=True)
    (out / DEMO_MARKER).write_text("a tupe-demo folder: the next tupe-demo --out here replaces it\n")
    schemes = list(MODELS)
    if args.quick:
        plan = StudyPlan(schemes=schemes, lrs=[1e-3], updates=120, tokens_per_sample=64, batch=16, validations=5,
                         arch=["--arch", "bert_tiny", "--encoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128"],
                         ft_lrs=[1e-3], ft_seeds=1, ft_epochs=2)
        merges, corpus_lines, rows = 1000, 12000, {"train": 600, "dev": 200, "test": 50}
    else:
        plan = StudyPlan(schemes=schemes, lrs=[1e-3], updates=DEFAULT_UPDATES, tokens_per_sample=128, batch=16,
                         validations=5, arch=["--arch", "bert_small"], ft_lrs=[3e-4], ft_seeds=2, ft_epochs=1)
        merges, corpus_lines, rows = 8000, None, None

    log(f"1/4 preprocessing the WordNet corpus{' (a slice)' if corpus_lines else ''}")
    corpus = prepare_corpus(out / "data", corpus_lines)
    bin_dir = out / "data" / "bin"
    code = run_preprocess(["pretrain", "--input", str(corpus), "--destdir", str(bin_dir), "--bpe-merges", str(merges),
                           "--nwords", "16384", "--valid-every", "50", "--workers", str(args.workers), "--no-progress",
                           "--min-chars", "40", "--min-letters", "30"])
    if code:
        return code

    if args.updates is not None:
        plan.updates = args.updates
    elif args.minutes is not None:
        plan.updates = max(20, int(plan.updates * args.minutes / (1.5 if args.quick else 12)))
    elif not args.quick:
        # Fit the stated time on slower machines: scale pretraining updates and finetuning rows by
        # this machine's measured speed against the reference (never up).
        try:
            measured = seconds_per_update(plan, bin_dir, out / "data")
            if REFERENCE_SECONDS_PER_UPDATE / measured <= 0.8:
                # A shared VM has slow spells of a few seconds (here: 0.21-0.29 s per update on one
                # day); a slow reading is taken again before the budget is cut, the faster one counts.
                measured = min(measured, seconds_per_update(plan, bin_dir, out / "data"))
        except RuntimeError as e:
            print(f"tupe-demo: error: {e}", file=sys.stderr)
            return 1
        except (Interrupted, KeyboardInterrupt) as e:
            return stopped("tupe-demo", e)
        plan.updates, rows = scaled_budget(measured)
        log(f"   {measured:.3f}s per update here ({REFERENCE_SECONDS_PER_UPDATE}s on the reference machine): "
            f"{plan.updates} updates per model" + (f", {rows['train']} finetuning rows" if rows else ""))

    log("   preparing the labelled task")
    glue_raw = prepare_task(out / "data", rows)
    code = run_preprocess(["glue", "--glue-dir", str(glue_raw), "--tasks", "SST-2", "--bpe-dir", str(bin_dir),
                           "--destdir", str(out / "data" / "glue-bin"), "--workers", str(args.workers), "--no-progress"])
    if code:
        return code
    plan.task = str(out / "data" / "glue-bin" / "SST-2-bin")
    plan.objectives = ["mlm", "electra"] if args.objective == "both" else [args.objective]

    log(f"2-3/4 pretraining {', '.join(plan.names)} ({plan.updates} updates each), then finetuning each")
    try:
        run_study(plan, bin_dir, out, args.workers)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"tupe-demo: error: {e}", file=sys.stderr)
        return 1
    except (Interrupted, KeyboardInterrupt) as e:
        return stopped("tupe-demo", e)

    log("4/4 report")
    objective = {"mlm": "", "electra": " (ELECTRA)", "both": " (masked LM and ELECTRA)"}[args.objective]
    report, table = make_report(out, title=f"tupe demo: TUPE-R vs TUPE-A vs BERT-A on WordNet{objective}")
    print(table, end="")
    print(f"report: {report} ({time.time() - start:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
