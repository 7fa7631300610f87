"""``tupe-study``: the paper's comparison of positional schemes, on any corpus and task.

    tupe-study --corpus wiki.txt --task data-bin/tasks/topics-bin --schemes TUPE-R,TUPE-A,BERT-A,RoPE,ALiBi,NoPE \\
        --lrs 3e-4,1e-3,3e-3 --updates 2000 --ft-lrs 1e-4,3e-4 --ft-seeds 5 --out runs/study

1. the corpus (raw text, preprocessed here, or a ``tupe-preprocess pretrain`` folder);
2. every scheme pretrained at every LR of a small grid with the same budget (``--updates``, or
   ``--minutes`` of pretraining in all, turned into updates by timing a few steps of the
   slowest scheme), seed and data order;
3. the best LR of each scheme by final validation loss, as the paper tuned each model;
4. each scheme's best model finetuned on the task (``tupe-preprocess glue`` or ``task``
   output) over LR x seeds (``tupe-glue``; the same seeds for every scheme);
5. each best model evaluated on validation blocks of every ``--eval-lengths`` (how each scheme
   behaves past its training length) and with the word order shuffled (how much it uses order);
6. ``OUT/report.md`` with plots (``tupe-report OUT`` rebuilds it): validation loss curves,
   the LR grids, updates to reach the baseline's final validation loss, the length and
   word-order tables, the downstream table with a paired comparison across seeds, machine,
   wall time and tokens/s per scheme.

Finished runs are skipped, so a stopped study resumes; progress goes to stderr. It runs on a
GPU unchanged. ``tupe-demo`` is a preset of it.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import signal
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch

from .checkpoint import load_model, read_config
from .cli import HelpFormatter, at_least, comma_list, rates, read_json, refuse_inert, write_json
from .cli import glue as sweep
from .config import SCHEMES, TupeConfig
from .logs import cli_logging
from .model.lengths import resize_positions, resize_refusal
from .model.positional import has_tables
from .preprocess.cli import main as preprocess
from .report import OBJECTIVES, STUDY_FILE, final_valid_loss, make_report, read_metrics, run_names, split_name
from .train.cpu import cpu_bf16_flags
from .train.data import updates_per_epoch
from .train.evaluate import EvaluationError, evaluate, make_task, with_rope_scaling
from .train.options import scheme_flags
from .train.trainer import main as train


def log(msg: str) -> None:
    print(f"[study] {msg}", file=sys.stderr, flush=True)


class Interrupted(Exception):
    """A step of the study was stopped by a signal (its exit code 128 + N): the study stops too."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def stopped(prog: str, e: BaseException) -> int:
    """What a study command says and returns when a signal stopped it (``Interrupted``, or Ctrl-C
    between steps): the shell's code, 130 for SIGINT, 143 for SIGTERM."""
    code = e.code if isinstance(e, Interrupted) else 128 + signal.SIGINT
    try:
        cause = signal.Signals(code - 128).name
    except ValueError:
        cause = f"a step's exit code {code}"
    print(f"{prog}: stopped by {cause}; the finished runs are kept: rerun the same command to go on",
          file=sys.stderr)
    return code


def check(code: int, failure: str) -> None:
    """A step's exit code: a signal's (>= 128, train.py and tupe-glue stopped by Ctrl-C or
    SIGTERM) stops the study with it; any other non-zero code is ``failure``."""
    if code >= 128:
        raise Interrupted(code)
    if code != 0:
        raise RuntimeError(failure)


@dataclass
class StudyPlan:
    schemes: list[str]
    lrs: list[float]
    updates: Optional[int] = None          # pretraining updates per run, or:
    minutes: Optional[float] = None        # pretraining minutes for all runs together
    arch: list[str] = field(default_factory=lambda: ["--arch", "bert_small"])
    tokens_per_sample: int = 128
    batch: int = 16
    seed: int = 1
    validations: int = 8                   # validations over the budget (curve points)
    baseline: str = "BERT-A"
    task: Optional[str] = None             # a NAME-bin folder
    ft_lrs: list[float] = field(default_factory=lambda: [1e-4, 3e-4])
    ft_seeds: int = 3
    ft_epochs: Optional[int] = None
    ft_batch: int = 32
    max_updates: Optional[int] = None      # cap on the calibrated updates
    objectives: list[str] = field(default_factory=lambda: ["mlm"])   # mlm and/or electra
    eval_lengths: list[int] = field(default_factory=list)             # validation block lengths after training

    def max_positions(self, scheme: str) -> int:
        """A scheme with positional tables gets tables for every evaluated length (rows past the
        trained length stay as initialised: what the length section reports); one without (RoPE,
        ALiBi, NoPE) keeps max_positions = the trained length, which RoPE's scaling reads."""
        tables = has_tables(TupeConfig.from_scheme(scheme, vocab_size=8, arch="bert_tiny", max_positions=8))
        return max([self.tokens_per_sample, *self.eval_lengths]) if tables else self.tokens_per_sample

    @property
    def names(self) -> list[str]:
        return run_names(self.schemes, self.objectives)

    def baseline_of(self, name: str) -> str:
        """The baseline a run is compared with: the baseline scheme under the same objective."""
        return run_names([self.baseline], [split_name(name)[0]])[0]


def machine() -> dict:

    info = {"python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["device"] = torch.cuda.get_device_name()
    except ImportError:
        pass
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor() or platform.machine()
    info["cpu_bf16"] = cpu_bf16_flags() or "none"
    return info


def prepare_corpus(corpus: Path, out: Path, workers: int, extra: list[str]) -> Path:
    """A tupe-preprocess pretrain folder: ``corpus`` itself, or the raw text preprocessed into OUT/data/bin."""

    if corpus.is_dir():
        for name in ("dict.txt", "bpe-code", "train.bin", "valid.bin"):
            if not (corpus / name).is_file():
                raise FileNotFoundError(f"{corpus}: no {name}; give raw text or a tupe-preprocess pretrain folder")
        return corpus
    bin_dir = out / "data" / "bin"
    if (bin_dir / "preprocess.json").is_file():
        inputs = [Path(p).resolve() for p in read_json(bin_dir / "preprocess.json").get("inputs", [])]
        if inputs != [corpus.resolve()]:
            raise ValueError(f"{bin_dir} was preprocessed from {', '.join(map(str, inputs)) or 'another corpus'}, "
                             f"not {corpus}: use another --out (or the earlier --corpus)")
        log(f"corpus already preprocessed in {bin_dir}")
        return bin_dir
    log(f"preprocessing {corpus}")
    check(preprocess(["pretrain", "--input", str(corpus.resolve()), "--destdir", str(bin_dir), "--workers",
                      str(workers), "--no-progress", "--force", *extra]),
          f"tupe-preprocess pretrain failed on {corpus}")   # stopped by a signal (>= 128): the study stops
    return bin_dir


def pretrain_args(plan: StudyPlan, data: Path, name: str, lr: float, updates: int, save: Path) -> list[str]:

    objective, scheme = split_name(name)
    task = "electra" if objective == "electra" else "masked_lm"
    per_epoch = updates_per_epoch(data, plan.tokens_per_sample, plan.batch)
    checks = max(1, round(per_epoch / max(1, updates / plan.validations)))   # "N times per epoch"
    return [str(data), *plan.arch, "--task", task, "--criterion", task, "--sample-break-mode", "complete",
            "--tokens-per-sample", str(plan.tokens_per_sample), "--max-positions", str(plan.max_positions(scheme)),
            "--max-sentences", str(plan.batch), "--lr", f"{lr:g}", "--warmup-updates", str(max(1, updates // 10)),
            "--total-num-update", str(updates), "--max-update", str(updates), "--adam-betas", "(0.9, 0.98)",
            "--adam-eps", "1e-6", "--clip-norm", "1.0", "--weight-decay", "0.01", "--seed", str(plan.seed),
            "--mask-prob", "0.15", "--embedding-normalize", "--validate-interval-updates", str(checks),
            "--no-epoch-checkpoints", "--num-workers", "0", "--log-format", "none",
            "--log-interval", str(max(1, updates // 50)), "--save-dir", str(save),
            "--skip-invalid-size-inputs-valid-test", *scheme_flags(scheme)]


def seconds_per_update(plan: StudyPlan, data: Path, out: Path, steps: int = 8) -> float:
    """Time a few updates of each scheme (after the first, which includes start-up): the slowest."""

    worst = 0.0
    for scheme in plan.names:
        save = out / "calibration" / scheme
        t = time.time()
        args = pretrain_args(plan, data, scheme, plan.lrs[0], steps, save)
        i = args.index("--validate-interval-updates")
        del args[i: i + 2]                                        # time the updates, not validations
        check(train(args + ["--no-save", "--disable-validation"]), f"calibration run of {scheme} failed")
        walls = [r["wall"] for r in read_metrics(save) if r.get("type") == "train"]
        per_update = (walls[-1] - walls[0]) / (len(walls) - 1) if len(walls) > 1 else (time.time() - t) / steps
        worst = max(worst, per_update)
    return worst


def calibrate(plan: StudyPlan, data: Path, out: Path) -> int:
    """Updates per run so that all pretraining runs fit ``plan.minutes``, budgeted for the slowest scheme."""
    worst = seconds_per_update(plan, data, out)
    runs = len(plan.names) * len(plan.lrs)
    # The timed steps leave out validation, checkpoints and start-up; whole runs took about 1.5x
    # the timed step time here (bert_small, 8 validations per run).
    updates = int(plan.minutes * 60 / (runs * worst * 1.5))
    if plan.max_updates:
        updates = min(updates, plan.max_updates)
    log(f"calibration: {worst:.3f}s per update (slowest scheme) -> {updates} updates per run "
        f"for {runs} runs in {plan.minutes:g} min")
    return max(20, updates)


def run_study(plan: StudyPlan, corpus: Path, out: Path, workers: int = 2, preprocess_args: Optional[list] = None) -> Path:

    for s in plan.schemes:
        if s not in SCHEMES:
            raise ValueError(f"unknown scheme {s!r}; choose from {', '.join(SCHEMES)}")
    for o in plan.objectives:
        if o not in OBJECTIVES:
            raise ValueError(f"unknown objective {o!r}; choose from {', '.join(OBJECTIVES)}")
    if plan.baseline not in plan.schemes:
        raise ValueError(f"the baseline {plan.baseline!r} is not among the schemes {plan.schemes}")
    if (plan.updates is None) == (plan.minutes is None):
        raise ValueError("give exactly one budget: updates per run or minutes in all")
    task = Path(plan.task) if plan.task else None
    if task is not None and not (task.is_dir() and task.name.endswith("-bin")):
        raise FileNotFoundError(f"{task}: not a NAME-bin task folder (tupe-preprocess glue or task output)")
    if not Path(corpus).exists():        # checked before anything is created
        raise FileNotFoundError(f"--corpus {corpus}: no such file or directory")
    state_path = out / STUDY_FILE
    state = read_json(state_path) if state_path.is_file() else {}
    check_resumable(state, plan, corpus, state_path)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    data = prepare_corpus(Path(corpus), out, workers, preprocess_args or [])

    updates = plan.updates or state.get("updates") or calibrate(plan, data, out)
    state.update({"plan": asdict(plan), "updates": updates, "corpus": str(corpus), "data": str(data),
                  "machine": machine(), "runs": state.get("runs", {})})
    write_json(state_path, state)

    runs = [(s, lr) for s in plan.names for lr in plan.lrs]
    for i, (scheme, lr) in enumerate(runs, 1):
        save = out / "pretrain" / scheme / f"lr{lr:g}"
        key = f"{scheme}/lr{lr:g}"
        if key in state["runs"] and (save / "checkpoint_last.pt").is_file():
            log(f"[{i}/{len(runs)}] {key}: done before, skipped")
            continue
        log(f"[{i}/{len(runs)}] pretraining {key}: {updates} updates")
        t = time.time()
        check(train(pretrain_args(plan, data, scheme, lr, updates, save)), f"pretraining {key} failed (see {save})")
        train_recs = [r for r in read_metrics(save) if r.get("type") == "train" and r.get("wps")]
        state["runs"][key] = {"scheme": scheme, "lr": lr, "seconds": round(time.time() - t, 1),
                              "final_valid_loss": final_valid_loss(save),
                              "tokens_per_s": round(statistics.median(r["wps"] for r in train_recs), 1) if train_recs else None}
        write_json(state_path, state)
        log(f"    {key}: valid loss {state['runs'][key]['final_valid_loss']:.3f} bits, {time.time() - t:.0f}s")

    best = {}
    for scheme in plan.names:
        candidates = {lr: state["runs"][f"{scheme}/lr{lr:g}"]["final_valid_loss"] for lr in plan.lrs}
        candidates = {lr: v for lr, v in candidates.items() if v is not None and math.isfinite(v)}
        if not candidates:
            raise RuntimeError(f"{scheme}: no run ended with a finite validation loss")
        best[scheme] = min(candidates, key=lambda lr: (candidates[lr], lr))
    state["best_lr"] = {s: best[s] for s in plan.names}
    write_json(state_path, state)
    log("best pretraining LR per scheme: " + ", ".join(f"{s} {lr:g}" for s, lr in best.items()))

    probe_models(plan, state, data, out)
    write_json(state_path, state)

    if task is not None:
        name = task.name[: -len("-bin")]
        for scheme in plan.names:
            ckpt = out / "pretrain" / scheme / f"lr{best[scheme]:g}" / "checkpoint_last.pt"
            log(f"finetuning {scheme} (lr {best[scheme]:g} model) on {name}: lrs "
                f"{','.join(f'{x:g}' for x in plan.ft_lrs)} x {plan.ft_seeds} seeds")
            args = ["--checkpoint", str(ckpt), "--data-dir", str(task.parent), "--tasks", name,
                    "--lrs", ",".join(f"{x:g}" for x in plan.ft_lrs), "--seeds", str(plan.ft_seeds),
                    "--batch-size", str(plan.ft_batch), "--out", str(out / "finetune" / scheme), "--label", scheme]
            if plan.ft_epochs:
                args += ["--epochs", str(plan.ft_epochs)]
            check(sweep.main(args), f"finetuning {scheme} failed (see {out / 'finetune' / scheme})")
    state["wall_s"] = round(state.get("wall_s", 0) + time.time() - start, 1)
    write_json(state_path, state)
    report, _ = make_report(out)
    return report


# What the finished pretraining runs of a study depend on: resuming one with other values would
# keep those runs and report them under the new plan. (Schemes, LRs and objectives may be added;
# finetuning is checked by tupe-glue, run by run.)
RUN_DEFINING = ("arch", "tokens_per_sample", "batch", "seed", "validations", "eval_lengths")


def check_resumable(state: dict, plan: StudyPlan, corpus: Path, state_path: Path) -> None:
    """A study folder is resumed only with the plan its finished runs were made with."""
    if not state.get("runs"):
        return
    before = state.get("plan", {})
    differences = [f"{name}: {before[name]} then, {getattr(plan, name)} now" for name in RUN_DEFINING
                   if name in before and before[name] != getattr(plan, name)]
    if plan.updates is not None and state.get("updates") not in (None, plan.updates):
        differences.append(f"updates: {state['updates']} then, {plan.updates} now")
    if state.get("corpus") and Path(state["corpus"]).resolve() != Path(corpus).resolve():
        differences.append(f"corpus: {state['corpus']} then, {corpus} now")
    if differences:
        raise ValueError(f"{state_path.parent} holds a study whose {len(state['runs'])} finished run(s) were made "
                         f"with another plan ({'; '.join(differences)}): resuming would report them under this one. "
                         f"Use another --out, or the earlier flags (recorded in {state_path})")


def evaluate_lengths(model, plan: StudyPlan, data: Path, lengths: list[int], row: dict) -> None:
    """``row[str(L)]``: the model's validation loss on blocks of L tokens, or the reason it cannot."""
    for n in lengths:
        try:
            stats = evaluate(model, make_task(model, str(data), n, batch=plan.batch, seed=plan.seed),
                             skip_invalid=True, seed=plan.seed)
            row[str(n)] = {"loss": stats["loss"], "samples": stats["samples"]}
        except EvaluationError as e:
            row[str(n)] = {"error": str(e)}


def probe_models(plan: StudyPlan, state: dict, data: Path, out: Path) -> None:
    """Each masked-LM scheme's best model on validation blocks of every ``eval_lengths`` (and the
    training length), and the word-order probe at the training length (train/evaluate.py):
    ``state["lengths"][scheme][L]`` and ``state["order_probe"][scheme]``. Done ones are kept."""
    lengths = sorted({plan.tokens_per_sample, *plan.eval_lengths})
    state.setdefault("lengths", {})
    state.setdefault("order_probe", {})
    for name in plan.names:
        objective, _ = split_name(name)
        if objective != "mlm":
            continue
        path = out / "pretrain" / name / f"lr{state['best_lr'][name]:g}" / "checkpoint_last.pt"
        cfg, _ = read_config(path)
        rows = [name, *([f"{name} + dynamic NTK"] if cfg.pos_encoding == "rope" and len(lengths) > 1 else []),
                *([f"{name} + copied rows"] if resize_refusal(cfg) is None and len(lengths) > 1 else [])]
        if name in state["order_probe"] and all(str(n) in state["lengths"].get(r, {}) for r in rows for n in lengths):
            continue                                 # done (a study of an earlier version gains its new rows)
        model = load_model(path)
        row = state["lengths"].setdefault(name, {})
        evaluate_lengths(model, plan, data, lengths, row)
        task = make_task(model, str(data), plan.tokens_per_sample, batch=plan.batch, seed=plan.seed)
        intact = evaluate(model, task, skip_invalid=True, seed=plan.seed)["loss"]
        shuffled = evaluate(model, task, shuffle_order=True, skip_invalid=True, seed=plan.seed)["loss"]
        state["order_probe"][name] = {"intact": intact, "shuffled": shuffled}
        if model.cfg.pos_encoding == "rope" and len(lengths) > 1:   # + dynamic NTK scaling past the trained length
            with_rope_scaling(model, "dynamic", max(lengths) / plan.tokens_per_sample)   # (in place: last use)
            evaluate_lengths(model, plan, data, lengths, state["lengths"].setdefault(f"{name} + dynamic NTK", {}))
        if resize_refusal(model.cfg) is None and len(lengths) > 1:   # + the trained rows copied past the trained length
            resize_positions(model, plan.tokens_per_sample)              # (in place: last use) untrained rows dropped,
            resize_positions(model, max(lengths), "copy")                # the trained ones repeated (Longformer's way)
            evaluate_lengths(model, plan, data, lengths, state["lengths"].setdefault(f"{name} + copied rows", {}))
        log(f"{name}: loss at " + ", ".join(f"{n}: {row[str(n)].get('loss', float('nan')):.3f}" for n in lengths)
            + f" bits; word order shuffled {shuffled:.3f} (intact {intact:.3f})")


block_lengths = comma_list(int, "whole numbers", lambda v: v >= 2, ">= 2", empty=True)   # --eval-lengths


def main(argv=None) -> int:
    cli_logging()
    p = argparse.ArgumentParser(prog="tupe-study", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--corpus", type=Path, required=True, help="raw text, or a tupe-preprocess pretrain folder")
    p.add_argument("--task", type=Path, help="a NAME-bin folder (tupe-preprocess glue/task output) to finetune on")
    p.add_argument("--schemes", type=comma_list(), default="TUPE-R,TUPE-A,BERT-A,RoPE,ALiBi,NoPE",
                   help=f"comma-separated, from {', '.join(SCHEMES)}")
    p.add_argument("--baseline", default=None, help="the scheme every other is compared with (default: BERT-A "
                   "when it is among --schemes, else the first scheme)")
    p.add_argument("--objectives", type=comma_list(), default="mlm", help="pretraining objectives, comma-separated: mlm, electra "
                   "(ELECTRA-<scheme> runs: generator + replaced-token detection, --task electra)")
    p.add_argument("--lrs", type=rates, default="3e-4,1e-3,3e-3", help="pretraining LR grid")
    p.add_argument("--quick", action="store_true", help="a smoke run: bert_tiny, 64 tokens, 30 updates (unless "
                   "given), one finetuning LR, 2 seeds, 1 epoch")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--updates", type=at_least(1), help="pretraining updates per run")
    budget.add_argument("--minutes", type=at_least(0.01, float), help="pretraining minutes for all runs together")
    p.add_argument("--arch", default="bert_small", help="model size preset for every scheme")
    p.add_argument("--tokens-per-sample", type=at_least(2), default=128, help="pretraining block size")
    p.add_argument("--batch", type=at_least(1), default=16, help="pretraining sequences per batch")
    p.add_argument("--seed", type=int, default=1, help="seed of every pretraining run")
    p.add_argument("--validations", type=at_least(1), default=8, help="validation points over the budget")
    p.add_argument("--ft-lrs", type=rates, default="1e-4,3e-4", help="comma-separated finetuning learning rates")
    p.add_argument("--ft-seeds", type=at_least(1), default=None, help="finetuning seeds (default 5; --quick: 2)")
    p.add_argument("--ft-epochs", type=at_least(1), default=None, help="default: the task's recipe")
    p.add_argument("--eval-lengths", type=block_lengths, default="",
                   help="comma-separated validation block lengths at which every scheme's best model is evaluated "
                        "after training (length generalisation; the models' tables get max_positions = the longest)")
    p.add_argument("--out", type=Path, default=Path("runs/study"), help="study folder (resumes: finished runs are skipped)")
    p.add_argument("--workers", type=at_least(1), default=2, help="preprocessing processes")
    args = p.parse_args(argv)
    refuse_inert(p, argv, [(dest, args.task is not None, "it is for finetuning on --task") for dest in
                           ("ft_lrs", "ft_seeds", "ft_epochs")])
    if args.quick:
        args.arch, args.tokens_per_sample, args.batch = "bert_tiny", 64, 8
        args.ft_lrs, args.ft_epochs = args.ft_lrs[:1], 1
        args.ft_seeds = args.ft_seeds or 2
        if args.updates is None and args.minutes is None:
            args.updates = 30
    args.ft_seeds = args.ft_seeds or 5
    if args.updates is None and args.minutes is None:
        p.error("give a budget: --updates N (per run) or --minutes M (all pretraining)")
    schemes, objectives = args.schemes, args.objectives
    if args.baseline is None and schemes:
        args.baseline = "BERT-A" if "BERT-A" in schemes else schemes[0]
        print(f"tupe-study: baseline {args.baseline} (give --baseline to choose another)", file=sys.stderr)
    plan = StudyPlan(schemes=schemes, lrs=args.lrs,
                     updates=args.updates, minutes=args.minutes, arch=["--arch", args.arch],
                     tokens_per_sample=args.tokens_per_sample, batch=args.batch, seed=args.seed,
                     validations=args.validations, baseline=args.baseline,
                     task=str(args.task) if args.task else None, ft_lrs=args.ft_lrs,
                     ft_seeds=args.ft_seeds, ft_epochs=args.ft_epochs,
                     objectives=objectives, eval_lengths=args.eval_lengths)
    try:
        report = run_study(plan, args.corpus, args.out, args.workers)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"tupe-study: error: {e}", file=sys.stderr)
        return 1
    except (Interrupted, KeyboardInterrupt) as e:
        return stopped("tupe-study", e)
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
