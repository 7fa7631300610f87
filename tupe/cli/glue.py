"""``tupe-glue``: the paper's GLUE protocol in one command.

For each task: a learning-rate grid x seeds of the original finetuning recipe (warmup ratio
0.06, batch 32, 5 epochs for MNLI/QNLI/QQP and 10 otherwise), the median over seeds for each
learning rate, the best learning rate, and a table in the layout of the paper's Table 1.

    tupe-glue --checkpoint checkpoints/tupe-r/checkpoint_best.pt --data-dir data-bin/glue --out runs/glue

Runs already finished (``result.json`` present) are skipped, so an interrupted sweep resumes;
each run folder records what it finetunes (``command.json``: the train.py flags and the
pretrained model's SHA-256), and a sweep that would run another finetune in a folder of an
earlier one (another --checkpoint, --epochs, --extra, ...) is refused before anything runs.
Ctrl-C or SIGTERM stops it: the running finetunes get the signal (they stop as ``train.py``
does), none is started after it, and the command exits with 130 (SIGINT) or 143 (SIGTERM),
saying how many finished.
The best checkpoint of each task's representative run (best learning rate, median seed) is
kept in ``OUT/TASK/best/`` for ``tupe-predict``; the other runs' checkpoints are deleted
unless ``--keep-all``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import shutil
import signal
import statistics
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..checkpoint import CONFIG_FILE, CheckpointError, read_config, resolve_checkpoint
from ..config import ConfigError
from ..hub import BESIDE_FILES
from ..logs import cli_logging
from ..preprocess.glue import TASKS as GLUE_TASKS
from ..train.options import ConfigConflict, config_with_checkpoint, inert_flags, model_config, parse_args
from . import HelpFormatter, Stopped, at_least, attach_flag_values, comma_list, rates, read_json, stop_on_sigterm, write_json
from .records import RUN_RECORD, model_fingerprint, record_differences, run_record


@dataclass(frozen=True)
class TaskRecipe:
    num_classes: int
    metric: str
    epochs: int
    valid_subset: str = "valid"


# The original finetuning recipe per GLUE task: (metric, epochs, validation subsets); the number of
# classes is the task's label set, defined once with its file layout (tupe/preprocess/glue.py).
_GLUE_RECIPES = {
    "MNLI": ("accuracy", 5, "valid,valid1"),
    "QNLI": ("accuracy", 5),
    "QQP": ("accuracy", 5),
    "SST-2": ("accuracy", 10),
    "CoLA": ("mcc", 10),
    "MRPC": ("accuracy", 10),
    "RTE": ("accuracy", 10),
    "STS-B": ("pearson", 10),
    "WNLI": ("accuracy", 10),
}
RECIPES = {name: TaskRecipe(GLUE_TASKS[name].num_classes, *recipe) for name, recipe in _GLUE_RECIPES.items()}


def recipe_for(task: str, data_dir: Path) -> TaskRecipe:
    """GLUE's recipe, or one for your own task (``tupe-preprocess task``) from its ``task.json``:
    its number of classes, accuracy (Pearson for regression), 10 epochs."""
    if task in RECIPES:
        return RECIPES[task]
    info_path = data_dir / f"{task}-bin" / "task.json"
    if not info_path.is_file():
        raise FileNotFoundError(f"{info_path} not found: {task!r} is not a GLUE task, and its folder was not "
                                f"written by tupe-preprocess task")
    info = json.loads(info_path.read_text())
    regression = bool(info.get("regression"))
    return TaskRecipe(1 if regression else int(info["num_classes"]), "pearson" if regression else "accuracy", 10)


# The paper's Table 1 columns: (column, task, valid subset).
COLUMNS = [("MNLI-m", "MNLI", "valid"), ("MNLI-mm", "MNLI", "valid1"), ("QNLI", "QNLI", "valid"),
           ("QQP", "QQP", "valid"), ("SST", "SST-2", "valid"), ("CoLA", "CoLA", "valid"),
           ("MRPC", "MRPC", "valid"), ("RTE", "RTE", "valid"), ("STS", "STS-B", "valid")]
PAPER = {  # GLUE dev, BERT-base size (docs/formats.md section 5)
    "BERT-A": [84.93, 84.91, 91.34, 91.04, 92.88, 55.19, 88.29, 68.61, 89.43, 82.96],
    "BERT-R": [85.81, 85.84, 92.16, 91.12, 92.90, 55.43, 89.26, 71.46, 88.94, 83.66],
    "TUPE-A": [86.05, 85.99, 91.92, 91.16, 93.19, 63.09, 88.37, 71.61, 88.88, 84.47],
    "TUPE-R": [86.21, 86.19, 92.17, 91.30, 93.26, 63.56, 89.89, 73.56, 89.23, 85.04],
    "TUPE-A-mid (300k)": [84.76, 84.83, 90.96, 91.00, 92.25, 62.13, 87.10, 68.79, 88.16, 83.33],
    "TUPE-R-mid (300k)": [84.86, 85.21, 91.23, 91.14, 92.41, 62.47, 87.29, 69.85, 88.63, 83.68],
    "TUPE-A-tie-cls": [85.91, 85.73, 91.90, 91.05, 93.17, 59.46, 88.53, 69.54, 88.97, 83.81],
}


def finetune_args(data: Path, checkpoint: Path, save: Path, recipe: TaskRecipe, lr: float, seed: int,
                  batch_size: int, extra: list[str]) -> list[str]:
    """The original finetuning command (README of the TUPE code), variables substituted; the
    best checkpoint is kept (no --no-best-checkpoints) so that prediction has one. No
    architecture flag: train.py takes the whole model (and --max-positions) from the checkpoint."""
    # the original's float16 (a CPU falls back to fp32 with a warning), unless ``extra`` chooses bfloat16
    fp16 = [] if {"--bf16", "--force-bf16"} & set(extra) else ["--fp16", "--fp16-init-scale", "4",
                                                                 "--threshold-loss-scale", "1", "--fp16-scale-window", "128"]
    args = [str(data), *fp16, "--restore-file", str(checkpoint),
            "--max-sentences", str(batch_size), "--max-tokens", "4400", "--task", "sentence_prediction",
            "--reset-optimizer", "--reset-dataloader", "--reset-meters", "--required-batch-size-multiple", "1",
            "--init-token", "0", "--separator-token", "2", "--criterion", "sentence_prediction",
            "--num-classes", str(recipe.num_classes), "--dropout", "0.1", "--attention-dropout", "0.1",
            "--weight-decay", "0.01", "--optimizer", "adam", "--adam-betas", "(0.9, 0.999)", "--adam-eps", "1e-06",
            "--clip-norm", "1.0", "--validate-interval-updates", "2", "--lr-scheduler", "polynomial_decay",
            "--lr", str(lr), "--warmup-ratio", "0.06", "--max-epoch", str(recipe.epochs), "--seed", str(seed),
            "--save-dir", str(save), "--no-progress-bar", "--log-interval", "100", "--no-epoch-checkpoints",
            "--no-last-checkpoints", "--find-unused-parameters", "--skip-invalid-size-inputs-valid-test",
            "--truncate-sequence", "--tensorboard-logdir", str(save / "tb"), "--best-checkpoint-metric",
            recipe.metric, "--maximize-best-checkpoint-metric", "--valid-subset", recipe.valid_subset]
    if recipe.num_classes == 1:
        args.append("--regression-target")
    return args + extra


class Finetunes:
    """The finetune processes running now, so that a signal to the sweep reaches them (Ctrl-C
    reaches the whole process group; ``kill PID`` only the sweep) and none starts after it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running: set[subprocess.Popen] = set()
        self.stop_signal: Optional[int] = None

    def run(self, cmd: list[str], log) -> Optional[tuple[int, str]]:
        """``train.py CMD`` to its end, stderr to ``log``: (exit code, stdout); None when the sweep
        was stopped before it started."""
        with self.lock:
            if self.stop_signal is not None:
                return None
            proc = subprocess.Popen([sys.executable, "-m", "tupe.train.trainer", *cmd], stdout=subprocess.PIPE,
                                    stderr=log, text=True)
            self.running.add(proc)
        try:
            stdout = proc.communicate()[0]
        finally:
            with self.lock:
                self.running.discard(proc)
        return proc.returncode, stdout

    def stop(self, signum: int) -> None:
        with self.lock:
            self.stop_signal = signum
            for proc in self.running:
                if proc.poll() is None:
                    proc.send_signal(signum)


FINETUNES = Finetunes()


def refused_by_train(cmd: list[str], cfg) -> Optional[str]:
    """What train.py would refuse in ``cmd`` before training (its parser's errors, flags that do
    nothing with the model ``cfg``: ``options.inert_flags``), to say once before a sweep starts
    rather than in every run's log; None: nothing."""
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            train_args = parse_args(cmd)
    except SystemExit:
        return said.getvalue().strip().splitlines()[-1].removeprefix("train.py: error: ")
    try:   # flags that contradict the checkpoint's model (an --extra '--arch ...')
        config_with_checkpoint(train_args, model_config(train_args, cfg.vocab_size, cfg.padding_idx), cfg, "the checkpoint")
    except (ConfigConflict, ConfigError) as e:
        return str(e)
    return "; ".join(inert_flags(train_args, cfg)[0]) or None


def run_one(cmd: list[str], save: Path, record: Optional[dict] = None) -> Optional[dict]:
    """One finetune; its ``{"best": ...}`` line becomes ``result.json``. None: it failed, or the
    sweep was stopped. ``record`` (:func:`run_record`) is written into the run's folder first."""
    result = save / "result.json"
    if result.is_file():
        return read_json(result)
    if FINETUNES.stop_signal is not None:
        return None
    save.mkdir(parents=True, exist_ok=True)
    if record is not None:
        write_json(save / RUN_RECORD, record, indent=1)
    with open(save / "train.log", "w") as log:
        finished = FINETUNES.run(cmd, log)
        if finished is None:
            return None
        returncode, stdout = finished
        log.write(stdout)
    best = [json.loads(line)["best"] for line in stdout.splitlines() if line.startswith('{"best"')]
    if returncode != 0 or not best:
        return None
    write_json(result, best[-1])
    return best[-1]


# --------------------------------------------------------------------------- aggregation
def column_value(best: dict, subset: str, metric: str) -> Optional[float]:
    """A run's metric on ``subset`` at the validation where the first subset was best."""
    value = best.get("valid", {}).get(subset, {}).get(metric)
    return None if value is None else float(value)


def aggregate(runs: dict[str, dict[float, dict[int, dict]]], recipes: Optional[dict] = None) -> dict[str, dict]:
    """``runs[task][lr][seed]`` = a run's best record. Per task: the median over seeds for each
    learning rate, the learning rate with the best median, its spread, the representative
    seed (the median run) and the table columns (medians at that learning rate)."""
    out = {}
    for task, by_lr in runs.items():
        recipe = (recipes or RECIPES)[task]
        medians = {}
        for lr, by_seed in by_lr.items():
            values = [column_value(b, "valid", recipe.metric) for b in by_seed.values()]
            values = [v for v in values if v is not None]
            if values:
                medians[lr] = statistics.median(values)
        if not medians:
            continue
        best_lr = max(medians, key=lambda lr: (medians[lr], -lr))
        seeds = {s: column_value(b, "valid", recipe.metric) for s, b in runs[task][best_lr].items()}
        seeds = {s: v for s, v in seeds.items() if v is not None}
        ranked = sorted(seeds, key=lambda s: (seeds[s], s))
        representative = ranked[(len(ranked) - 1) // 2]
        columns = {}
        for name, col_task, subset in COLUMNS:
            if col_task == task:
                vals = [column_value(b, subset, recipe.metric) for b in runs[task][best_lr].values()]
                vals = [v for v in vals if v is not None]
                if vals:
                    columns[name] = statistics.median(vals)
        out[task] = {"metric": recipe.metric, "lr": best_lr, "median": medians[best_lr],
                     "medians_by_lr": medians, "min": min(seeds.values()), "max": max(seeds.values()),
                     "seeds": len(seeds), "representative_seed": representative, "columns": columns}
    return out


def table(summary: dict[str, dict], label: str, paper: bool) -> tuple[list[str], list[list]]:
    """The paper's Table 1 layout when GLUE tasks were run (your own tasks as extra columns after
    Avg); with only your own tasks, a column per task run (``task (metric)``), no Avg."""
    own = [t for t in summary if t not in RECIPES]
    own_header = [f"{t} ({summary[t]['metric']})" for t in own]
    own_values = [round(100 * summary[t]["median"], 2) for t in own]
    if len(own) == len(summary):
        return ["model"] + own_header, [[label] + own_values]
    header = ["model"] + [c for c, _, _ in COLUMNS] + ["Avg"] + own_header
    values = []
    for name, task, _ in COLUMNS:
        v = summary.get(task, {}).get("columns", {}).get(name)
        values.append(None if v is None else round(100 * v, 2))
    known = [v for v in values if v is not None]
    avg = round(sum(known) / len(known), 2) if len(known) == len(values) else None
    rows = [[label] + values + [avg] + own_values]
    if paper:
        rows += [[f"{k} (paper)"] + v + [None] * len(own) for k, v in PAPER.items()]
    return header, rows


def write_tables(out: Path, summary: dict, label: str, paper: bool) -> str:
    header, rows = table(summary, label, paper)
    fmt = lambda v: "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))  # noqa: E731
    md = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    md += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    md.append("")
    md.append("Per task: metric, best learning rate, median over seeds [min, max] (x100).")
    md.append("")
    for task, s in summary.items():
        md.append(f"- {task}: {s['metric']}, lr {s['lr']:g}, {100 * s['median']:.2f} "
                  f"[{100 * s['min']:.2f}, {100 * s['max']:.2f}] over {s['seeds']} seeds")
    text = "\n".join(md) + "\n"
    (out / "results.md").write_text(text)
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows([[("" if v is None else v) for v in row] for row in rows])
    write_json(out / "results.json", {"label": label, "tasks": summary})
    return text


BEST_RUN = "run.json"      # in OUT/TASK/best/: which run's checkpoint it holds


def representative(out: Path, task: str, s: dict) -> Path:
    return out / task / f"lr{s['lr']:g}_seed{s['representative_seed']}"


def best_holds(best: Path, run: Path) -> bool:
    """Whether OUT/TASK/best/ holds ``run``'s checkpoint (its run.json; a best/ of an earlier version:
    the same result.json)."""
    if (best / BEST_RUN).is_file():
        return read_json(best / BEST_RUN).get("run") == run.name
    return (best / "result.json").is_file() and (run / "result.json").is_file() and \
        read_json(best / "result.json") == read_json(run / "result.json")


def without_checkpoint(out: Path, summary: dict) -> list[tuple[str, Path]]:
    """The tasks whose representative run has no checkpoint left and is not the one best/ holds:
    its checkpoint was deleted after an earlier sweep, in which another run was the representative
    (a sweep extended with more seeds or LRs can choose another)."""
    return [(task, representative(out, task, s)) for task, s in summary.items()
            if not (representative(out, task, s) / "checkpoint_best.pt").is_file()
            and not best_holds(out / task / "best", representative(out, task, s))]


def keep_representatives(out: Path, summary: dict, keep_all: bool) -> None:
    for task, s in summary.items():
        run = representative(out, task, s)
        best = out / task / "best"
        if (run / "checkpoint_best.pt").is_file():
            best.mkdir(parents=True, exist_ok=True)
            for name in ("checkpoint_best.pt", "result.json", *BESIDE_FILES):
                if (run / name).is_file():
                    shutil.copyfile(run / name, best / name)
            write_json(best / BEST_RUN, {"run": run.name})
        if not keep_all:
            for ckpt in (out / task).glob("lr*_seed*/checkpoint*.pt"):
                ckpt.unlink()


def main(argv=None) -> int:
    cli_logging()
    p = argparse.ArgumentParser(prog="tupe-glue", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--checkpoint", required=True, type=Path, help="pretrained checkpoint (file or run dir)")
    p.add_argument("--data-dir", required=True, type=Path, help="tupe-preprocess glue output (TASK-bin folders)")
    p.add_argument("--out", required=True, type=Path, help="folder for the runs (OUT/TASK/lrLR_seedS/) and the result tables")
    p.add_argument("--tasks", type=comma_list(), default="ALL",
                   help="ALL (the GLUE tasks) or names, e.g. RTE,MRPC,STS-B; your own tasks "
                        "(tupe-preprocess task) by folder name: NAME for DATA_DIR/NAME-bin")
    p.add_argument("--lrs", type=rates, default="2e-5,3e-5,4e-5,5e-5", help="comma-separated finetuning learning rates")
    p.add_argument("--seeds", type=at_least(1), default=5, help="seeds 1..N per learning rate")
    p.add_argument("--batch-size", type=at_least(1), default=32, help="sentences per batch (--max-sentences)")
    p.add_argument("--epochs", type=at_least(1), default=None, help="override the per-task epochs")
    p.add_argument("--jobs", type=at_least(1), default=1, help="finetunes run at the same time")
    p.add_argument("--label", default=None, help="row name in the table (default: the checkpoint's scheme)")
    p.add_argument("--paper", action="store_true", help="add the paper's rows to the table")
    p.add_argument("--keep-all", action="store_true", help="keep every run's checkpoint")
    p.add_argument("--extra", default="", help="more train.py flags for every run, e.g. '--cpu' or '--cpu --bf16'")
    args = p.parse_args(attach_flag_values(sys.argv[1:] if argv is None else list(argv), ("--extra",)))
    tasks = list(RECIPES) if [t.upper() for t in args.tasks] == ["ALL"] else args.tasks
    try:
        checkpoint = args.checkpoint if (args.checkpoint / CONFIG_FILE).is_file() else resolve_checkpoint(args.checkpoint)
        cfg, _ = read_config(checkpoint)
        label = args.label or cfg.name
    except (CheckpointError, FileNotFoundError) as e:
        print(f"tupe-glue: error: {e}", file=sys.stderr)
        return 1
    recipes = {}
    for t in tasks:
        if not (args.data_dir / f"{t}-bin").is_dir():
            print(f"tupe-glue: error: {args.data_dir / f'{t}-bin'} not found (run tupe-preprocess glue, or "
                  f"tupe-preprocess task for your own task; GLUE tasks: {', '.join(RECIPES)})", file=sys.stderr)
            return 1
        try:
            recipes[t] = recipe_for(t, args.data_dir)
        except (FileNotFoundError, KeyError, ValueError) as e:
            print(f"tupe-glue: error: {e}", file=sys.stderr)
            return 1
    jobs = []
    for task in tasks:
        recipe = recipes[task]
        if args.epochs:
            recipe = TaskRecipe(recipe.num_classes, recipe.metric, args.epochs, recipe.valid_subset)
        for lr in args.lrs:
            for seed in range(1, args.seeds + 1):
                save = args.out / task / f"lr{lr:g}_seed{seed}"
                cmd = finetune_args(args.data_dir / f"{task}-bin", checkpoint, save, recipe, lr, seed,
                                    args.batch_size, args.extra.split())
                jobs.append((task, lr, seed, cmd, save))
    refused = refused_by_train(jobs[0][3], cfg) if jobs else None
    if refused:
        print(f"tupe-glue: error: train.py would refuse every finetune of this sweep: {refused} (check --extra)",
              file=sys.stderr)
        return 1
    # a run folder of an earlier sweep is reused (its result, or resumed) only for the same finetune
    fingerprint = model_fingerprint(checkpoint)
    records, conflicts, unrecorded = {}, [], 0
    try:
        for *_, cmd, save in jobs:
            records[save] = run_record(cmd, fingerprint)
            if (save / "result.json").is_file():
                read_json(save / "result.json")                      # a damaged one: said now, not mid-sweep
            if (save / RUN_RECORD).is_file():
                differences = record_differences(read_json(save / RUN_RECORD), records[save])
                if differences:
                    conflicts.append(f"{save}: {'; '.join(differences)}")
            elif (save / "result.json").is_file():
                unrecorded += 1
    except ValueError as e:
        print(f"tupe-glue: error: {e}", file=sys.stderr)
        return 1
    if conflicts:
        shown = "\n  ".join(conflicts[:5]) + (f"\n  ... and {len(conflicts) - 5} more" if len(conflicts) > 5 else "")
        print(f"tupe-glue: error: {len(conflicts)} run folder(s) in {args.out} hold another finetune than this command "
              f"would run, and their results would be taken as this one's:\n  {shown}\nUse another --out, the "
              f"earlier command's flags (recorded in each folder's {RUN_RECORD}), or delete those folders to run "
              f"them again.", file=sys.stderr)
        return 1
    if unrecorded:
        print(f"tupe-glue: note: {unrecorded} finished run(s) in {args.out} have no {RUN_RECORD} (made before this "
              f"sweep recorded its commands): their results are reused without a check", file=sys.stderr)
    print(f"tupe-glue: {len(jobs)} finetunes ({len(tasks)} tasks x {len(args.lrs)} lrs x {args.seeds} seeds), "
          f"{args.jobs} at a time; logs in {args.out}/TASK/lr*_seed*/train.log", file=sys.stderr)
    runs: dict = {}
    failed = []
    FINETUNES.stop_signal = None
    with stop_on_sigterm():                        # SIGTERM unwinds like Ctrl-C (Stopped)
        pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))
        try:
            futures = [(job, pool.submit(run_one, job[3], job[4], records[job[4]])) for job in jobs]
            for i, ((task, lr, seed, _, save), fut) in enumerate(futures, 1):
                best = fut.result()
                if best is None:
                    failed.append(str(save))
                    print(f"tupe-glue: [{i}/{len(jobs)}] {task} lr {lr:g} seed {seed}: FAILED (see {save}/train.log)",
                          file=sys.stderr)
                    continue
                runs.setdefault(task, {}).setdefault(lr, {})[seed] = best
                print(f"tupe-glue: [{i}/{len(jobs)}] {task} lr {lr:g} seed {seed}: "
                      f"{best['best_checkpoint_metric']} {best['best']:.4f}", file=sys.stderr)
            summary = aggregate(runs, recipes)
            for _attempt in range(2):     # a representative whose checkpoint is gone: finetuned again (the same seed)
                stale = without_checkpoint(args.out, summary)
                for task, run in stale:
                    (_, lr, seed, cmd, save), = [j for j in jobs if j[4] == run]
                    print(f"tupe-glue: {task}: the representative run {run.name} has no checkpoint left (deleted after "
                          f"an earlier sweep, when another run was the representative; --keep-all keeps them): "
                          f"finetuning it again for {run.parent / 'best'}", file=sys.stderr)
                    kept = read_json(run / "result.json")
                    (run / "result.json").unlink()
                    best = run_one(cmd, save, records[save])
                    if best is None:                   # its result stays; best/ is said to be stale below
                        write_json(run / "result.json", kept)
                    else:
                        runs[task][lr][seed] = best
                if stale:
                    summary = aggregate(runs, recipes)
        except (KeyboardInterrupt, Stopped) as e:
            signum = e.signum if isinstance(e, Stopped) else signal.SIGINT
            FINETUNES.stop(signum)
            pool.shutdown(wait=True, cancel_futures=True)
            done = sum((save / "result.json").is_file() for *_, save in jobs)
            print(f"tupe-glue: stopped by {signal.Signals(signum).name}: {done} of {len(jobs)} finetunes finished, "
                  f"kept; rerun the same command to run the others (one cut short starts again)", file=sys.stderr)
            return 128 + signum
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    args.out.mkdir(parents=True, exist_ok=True)
    text = write_tables(args.out, summary, label, args.paper)
    keep_representatives(args.out, summary, args.keep_all)
    stale = without_checkpoint(args.out, summary)
    for _task, run in stale:
        print(f"tupe-glue: {run.parent / 'best'} does not hold the representative run {run.name}: its checkpoint "
              f"is gone and finetuning it again did not give it back (see above)", file=sys.stderr)
    print(text)
    print(f"tupe-glue: tables in {args.out}/results.{{md,csv,json}}", file=sys.stderr)
    if failed:
        print(f"tupe-glue: {len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or stale else 0


if __name__ == "__main__":
    sys.exit(main())
