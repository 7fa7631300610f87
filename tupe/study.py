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
5. ``OUT/report.md`` with plots (``tupe-report OUT`` rebuilds it): validation loss curves,
   the LR grids, updates to reach the baseline's final validation loss, the downstream table
   with a paired comparison across seeds, machine, wall time and tokens/s per scheme.

Finished runs are skipped, so a stopped study resumes; progress goes to stderr. It runs on a
GPU unchanged. ``tupe-demo`` is a preset of it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from .config import SCHEMES
from .logs import cli_logging
from .train.options import scheme_flags

STUDY_FILE = "study.json"
OBJECTIVES = ("mlm", "electra")
ELECTRA_PREFIX = "ELECTRA-"          # a run name: the scheme (masked LM) or ELECTRA-<scheme>


def run_names(schemes: list[str], objectives: list[str]) -> list[str]:
    """Every (objective, scheme) pair as one run name, masked LM first: TUPE-R, ..., ELECTRA-TUPE-R, ..."""
    return [("" if o == "mlm" else ELECTRA_PREFIX) + s for o in objectives for s in schemes]


def split_name(name: str) -> tuple[str, str]:
    """Run name -> (objective, scheme)."""
    return ("electra", name[len(ELECTRA_PREFIX):]) if name.startswith(ELECTRA_PREFIX) else ("mlm", name)


def log(msg: str) -> None:
    print(f"[study] {msg}", file=sys.stderr, flush=True)


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

    @property
    def names(self) -> list[str]:
        return run_names(self.schemes, self.objectives)

    def baseline_of(self, name: str) -> str:
        """The baseline a run is compared with: the baseline scheme under the same objective."""
        return run_names([self.baseline], [split_name(name)[0]])[0]


def machine() -> dict:
    from .train.cpu import cpu_bf16_flags

    info = {"python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        import torch
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
    from .preprocess.cli import main as preprocess

    if corpus.is_dir():
        for name in ("dict.txt", "bpe-code", "train.bin", "valid.bin"):
            if not (corpus / name).is_file():
                raise FileNotFoundError(f"{corpus}: no {name}; give raw text or a tupe-preprocess pretrain folder")
        return corpus
    bin_dir = out / "data" / "bin"
    if (bin_dir / "preprocess.json").is_file():
        log(f"corpus already preprocessed in {bin_dir}")
        return bin_dir
    log(f"preprocessing {corpus}")
    if preprocess(["pretrain", "--input", str(corpus), "--destdir", str(bin_dir), "--workers", str(workers),
                   "--no-progress", "--force", *extra]) != 0:
        raise RuntimeError(f"tupe-preprocess pretrain failed on {corpus}")
    return bin_dir


def pretrain_args(plan: StudyPlan, data: Path, name: str, lr: float, updates: int, save: Path) -> list[str]:
    from .demo import updates_per_epoch

    objective, scheme = split_name(name)
    task = "electra" if objective == "electra" else "masked_lm"
    per_epoch = updates_per_epoch(data, plan.tokens_per_sample, plan.batch)
    checks = max(1, round(per_epoch / max(1, updates / plan.validations)))   # "N times per epoch"
    return [str(data), *plan.arch, "--task", task, "--criterion", task, "--sample-break-mode", "complete",
            "--tokens-per-sample", str(plan.tokens_per_sample), "--max-positions", str(plan.tokens_per_sample),
            "--max-sentences", str(plan.batch), "--lr", f"{lr:g}", "--warmup-updates", str(max(1, updates // 10)),
            "--total-num-update", str(updates), "--max-update", str(updates), "--adam-betas", "(0.9, 0.98)",
            "--adam-eps", "1e-6", "--clip-norm", "1.0", "--weight-decay", "0.01", "--seed", str(plan.seed),
            "--mask-prob", "0.15", "--embedding-normalize", "--validate-interval-updates", str(checks),
            "--no-epoch-checkpoints", "--num-workers", "0", "--log-format", "none",
            "--log-interval", str(max(1, updates // 50)), "--save-dir", str(save),
            "--skip-invalid-size-inputs-valid-test", *scheme_flags(scheme)]


def seconds_per_update(plan: StudyPlan, data: Path, out: Path, steps: int = 8) -> float:
    """Time a few updates of each scheme (after the first, which includes start-up): the slowest."""
    from .train.trainer import main as train

    worst = 0.0
    for scheme in plan.names:
        save = out / "calibration" / scheme
        t = time.time()
        args = pretrain_args(plan, data, scheme, plan.lrs[0], steps, save)
        i = args.index("--validate-interval-updates")
        del args[i: i + 2]                                        # time the updates, not validations
        if train(args + ["--no-save", "--disable-validation"]) != 0:
            raise RuntimeError(f"calibration run of {scheme} failed")
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


def read_metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def final_valid_loss(run: Path) -> Optional[float]:
    valid = [r["loss"] for r in read_metrics(run) if r.get("type") == "valid" and r.get("loss") is not None]
    return valid[-1] if valid else None


def run_study(plan: StudyPlan, corpus: Path, out: Path, workers: int = 2, preprocess_args: Optional[list] = None) -> Path:
    from .cli import glue as sweep
    from .train.trainer import main as train

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
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STUDY_FILE
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    start = time.time()
    data = prepare_corpus(Path(corpus), out, workers, preprocess_args or [])

    updates = plan.updates or state.get("updates") or calibrate(plan, data, out)
    state.update({"plan": asdict(plan), "updates": updates, "corpus": str(corpus), "data": str(data),
                  "machine": machine(), "runs": state.get("runs", {})})
    state_path.write_text(json.dumps(state, indent=2) + "\n")

    runs = [(s, lr) for s in plan.names for lr in plan.lrs]
    for i, (scheme, lr) in enumerate(runs, 1):
        save = out / "pretrain" / scheme / f"lr{lr:g}"
        key = f"{scheme}/lr{lr:g}"
        if key in state["runs"] and (save / "checkpoint_last.pt").is_file():
            log(f"[{i}/{len(runs)}] {key}: done before, skipped")
            continue
        log(f"[{i}/{len(runs)}] pretraining {key}: {updates} updates")
        t = time.time()
        if train(pretrain_args(plan, data, scheme, lr, updates, save)) != 0:
            raise RuntimeError(f"pretraining {key} failed (see {save})")
        train_recs = [r for r in read_metrics(save) if r.get("type") == "train" and r.get("wps")]
        state["runs"][key] = {"scheme": scheme, "lr": lr, "seconds": round(time.time() - t, 1),
                              "final_valid_loss": final_valid_loss(save),
                              "tokens_per_s": round(statistics.median(r["wps"] for r in train_recs), 1) if train_recs else None}
        state_path.write_text(json.dumps(state, indent=2) + "\n")
        log(f"    {key}: valid loss {state['runs'][key]['final_valid_loss']:.3f} bits, {time.time() - t:.0f}s")

    best = {}
    for scheme in plan.names:
        candidates = {lr: state["runs"][f"{scheme}/lr{lr:g}"]["final_valid_loss"] for lr in plan.lrs}
        candidates = {lr: v for lr, v in candidates.items() if v is not None and math.isfinite(v)}
        if not candidates:
            raise RuntimeError(f"{scheme}: no run ended with a finite validation loss")
        best[scheme] = min(candidates, key=lambda lr: (candidates[lr], lr))
    state["best_lr"] = {s: best[s] for s in plan.names}
    state_path.write_text(json.dumps(state, indent=2) + "\n")
    log("best pretraining LR per scheme: " + ", ".join(f"{s} {lr:g}" for s, lr in best.items()))

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
            if sweep.main(args) != 0:
                raise RuntimeError(f"finetuning {scheme} failed (see {out / 'finetune' / scheme})")
    state["wall_s"] = round(state.get("wall_s", 0) + time.time() - start, 1)
    state_path.write_text(json.dumps(state, indent=2) + "\n")
    from .report import make_report
    report, _ = make_report(out)
    return report


# --------------------------------------------------------------------------- report
def updates_to_reach(curve: list[tuple[int, float]], target: float) -> Optional[float]:
    """First update at which the validation curve reaches ``target`` (linear between points)."""
    prev = None
    for u, loss in curve:
        if loss <= target:
            if prev is None or prev[1] == loss:
                return float(u)
            (u0, l0) = prev
            return u0 + (l0 - target) / (l0 - loss) * (u - u0)
        prev = (u, loss)
    return None


def seed_values(sweep_dir: Path, task: str, lr: float, metric: str) -> dict[int, float]:
    """Per seed, the best validation metric of the finetunes at ``lr`` (tupe-glue's result.json)."""
    out = {}
    for path in sorted((sweep_dir / task).glob(f"lr{lr:g}_seed*/result.json")):
        seed = int(path.parent.name.split("_seed")[1])
        value = json.loads(path.read_text()).get("valid", {}).get("valid", {}).get(metric)
        if value is not None:
            out[seed] = float(value)
    return out


def study_report(out: Path) -> tuple[str, list[str]]:
    """Markdown sections and plot files of a study directory."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    state = json.loads((out / STUDY_FILE).read_text())
    plan = state["plan"]
    objectives = plan.get("objectives", ["mlm"])
    schemes, lrs, baseline = run_names(plan["schemes"], objectives), plan["lrs"], plan["baseline"]
    baseline_of = {s: run_names([baseline], [split_name(s)[0]])[0] for s in schemes}
    best = {s: float(v) for s, v in state.get("best_lr", {}).items()}
    curves = {}
    for scheme in schemes:
        for lr in lrs:
            recs = read_metrics(out / "pretrain" / scheme / f"lr{lr:g}")
            curves[scheme, lr] = [(r["num_updates"], r["loss"]) for r in recs
                                  if r.get("type") == "valid" and r.get("loss") is not None]
    files = []
    ylabels = {"mlm": "validation masked-LM loss (bits)",
               "electra": "validation ELECTRA objective (bits per masked token)"}
    fig, axes = plt.subplots(1, len(objectives), figsize=(7.5 * len(objectives), 4.5), squeeze=False)
    for ax, objective in zip(axes[0], objectives):
        for i, scheme in enumerate(plan["schemes"]):
            name = run_names([scheme], [objective])[0]
            c = curves.get((name, best.get(name)), [])
            if c:
                ax.plot(*zip(*c), "o-", color=f"C{i}", label=f"{name} (lr {best[name]:g})")
        ax.set_xlabel("updates")
        ax.set_ylabel(ylabels[objective])
        ax.set_title(f"{'Masked LM' if objective == 'mlm' else 'ELECTRA'}: validation loss, best LR of each scheme")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "study_valid_loss.png", dpi=110)
    plt.close(fig)
    files.append("study_valid_loss.png")
    cols = min(3, len(schemes))
    rows_n = math.ceil(len(schemes) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4 * cols, 3 * rows_n), squeeze=False, sharey=True)
    for k, scheme in enumerate(schemes):
        ax = axes[k // cols][k % cols]
        for j, lr in enumerate(lrs):
            c = curves.get((scheme, lr), [])
            if c:
                ax.plot(*zip(*c), ".-", color=f"C{j}", label=f"lr {lr:g}" + (" (best)" if lr == best.get(scheme) else ""))
        ax.set_title(scheme, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for k in range(len(schemes), rows_n * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle("Validation loss (bits) per LR")
    fig.tight_layout()
    fig.savefig(out / "study_lr_grid.png", dpi=100)
    plt.close(fig)
    files.append("study_lr_grid.png")

    md = ["## Study", ""]
    m = state.get("machine", {})
    bf16 = ", ".join(m["cpu_bf16"]) if isinstance(m.get("cpu_bf16"), list) else m.get("cpu_bf16", "?")
    md += [f"Machine: {m.get('cpu', '?')} (bf16: {bf16}), "
           f"{m.get('cpus', '?')} cores, torch {m.get('torch', '?')}{', ' + m['device'] if m.get('device') else ''}. "
           f"Budget: {state['updates']} updates per run ({' '.join(plan['arch'])}, {plan['tokens_per_sample']} "
           f"tokens x {plan['batch']}), seed {plan['seed']}, LR grid {', '.join(f'{x:g}' for x in lrs)}. "
           f"Total wall time {state.get('wall_s', 0) / 60:.1f} min.", ""]
    header = ["scheme", "best LR", "final valid loss (bits) per LR", f"updates to reach {baseline}'s final loss",
              "wall time (best LR)", "tokens/s"]
    rows = []
    for scheme in schemes:
        base_curve = curves.get((baseline_of[scheme], best.get(baseline_of[scheme])), [])
        target = base_curve[-1][1] if base_curve else None
        base_updates = base_curve[-1][0] if base_curve else None
        per_lr = []
        for lr in lrs:
            run = state["runs"].get(f"{scheme}/lr{lr:g}", {})
            v = run.get("final_valid_loss")
            per_lr.append(("**" if lr == best.get(scheme) else "") + (f"{v:.3f}" if v is not None else "-")
                          + ("**" if lr == best.get(scheme) else ""))
        reach = updates_to_reach(curves.get((scheme, best.get(scheme)), []), target) if target is not None else None
        reach_txt = "not reached" if reach is None else f"{reach:.0f} ({100 * reach / base_updates:.0f}%)"
        run = state["runs"].get(f"{scheme}/lr{best.get(scheme, lrs[0]):g}", {})
        rows.append([scheme, f"{best.get(scheme, float('nan')):g}", " / ".join(per_lr), reach_txt,
                     f"{run.get('seconds', 0) / 60:.1f} min", f"{run.get('tokens_per_s') or 0:.0f}"])
    md += ["### Pretraining", "", _table(header, rows),
           "Updates to reach the baseline's final validation loss: linear between validation points; the "
           "paper's claim is that TUPE-A reaches BERT-A's final loss in 30% of its steps."
           + (" ELECTRA runs (ELECTRA-<scheme>) report their own objective (generator MLM + 50 x replaced-token "
              "BCE, per masked token) and are compared with ELECTRA-" + baseline + "." if "electra" in objectives else ""),
           ""]

    finetune = out / "finetune"
    task = Path(plan["task"]).name[: -len("-bin")] if plan.get("task") else None
    if task and finetune.is_dir():
        header = ["scheme", "metric", "median [min, max] over seeds", f"paired difference vs {baseline} (median)",
                  f"seeds better than {baseline}"]
        rows, per_seed = [], {}
        for scheme in schemes:
            res_path = finetune / scheme / "results.json"
            if not res_path.is_file():
                continue
            res = json.loads(res_path.read_text())["tasks"].get(task)
            if not res:
                continue
            per_seed[scheme] = (res["metric"], seed_values(finetune / scheme, task, res["lr"], res["metric"]))
            rows.append([scheme, f"{res['metric']} (lr {res['lr']:g})",
                         f"{100 * res['median']:.1f} [{100 * res['min']:.1f}, {100 * res['max']:.1f}]"])
        for row in rows:
            vals = per_seed[row[0]][1]
            base = per_seed.get(baseline_of[row[0]], (None, {}))[1]
            common = sorted(set(vals) & set(base))
            if row[0] == baseline_of[row[0]] or not common:
                row += ["-", "-"]
                continue
            diffs = [vals[s] - base[s] for s in common]
            row += [f"{100 * statistics.median(diffs):+.1f}", f"{sum(d > 0 for d in diffs)}/{len(common)}"]
        md += [f"### Finetuning on {task}", "", _table(header, rows) if rows else "(no finetuning results)",
               "Each scheme's best-LR model, finetuned over the same LR grid and the same seeds; the table "
               "uses each scheme's best finetuning LR (median over seeds); the paired difference compares "
               "seed with seed at those LRs" + (" (ELECTRA runs against ELECTRA-" + baseline + ")"
                                                  if "electra" in objectives else "") + ".", ""]
    return "\n".join(md), files


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def parse_floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main(argv=None) -> int:
    cli_logging()
    p = argparse.ArgumentParser(prog="tupe-study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, required=True, help="raw text, or a tupe-preprocess pretrain folder")
    p.add_argument("--task", type=Path, help="a NAME-bin folder (tupe-preprocess glue/task output) to finetune on")
    p.add_argument("--schemes", default="TUPE-R,TUPE-A,BERT-A,RoPE,ALiBi,NoPE",
                   help=f"comma-separated, from {', '.join(SCHEMES)}")
    p.add_argument("--baseline", default=None, help="the scheme every other is compared with (default: BERT-A "
                   "when it is among --schemes, else the first scheme)")
    p.add_argument("--objectives", default="mlm", help="pretraining objectives, comma-separated: mlm, electra "
                   "(ELECTRA-<scheme> runs: generator + replaced-token detection, --task electra)")
    p.add_argument("--lrs", default="3e-4,1e-3,3e-3", help="pretraining LR grid")
    p.add_argument("--quick", action="store_true", help="a smoke run: bert_tiny, 64 tokens, 30 updates (unless "
                   "given), one finetuning LR, 2 seeds, 1 epoch")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--updates", type=int, help="pretraining updates per run")
    budget.add_argument("--minutes", type=float, help="pretraining minutes for all runs together")
    p.add_argument("--arch", default="bert_small")
    p.add_argument("--tokens-per-sample", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--validations", type=int, default=8, help="validation points over the budget")
    p.add_argument("--ft-lrs", default="1e-4,3e-4")
    p.add_argument("--ft-seeds", type=int, default=None, help="finetuning seeds (default 5; --quick: 2)")
    p.add_argument("--ft-epochs", type=int, default=None, help="default: the task's recipe")
    p.add_argument("--out", type=Path, default=Path("runs/study"))
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    if args.quick:
        args.arch, args.tokens_per_sample, args.batch = "bert_tiny", 64, 8
        args.ft_lrs, args.ft_epochs = args.ft_lrs.split(",")[0], 1
        args.ft_seeds = args.ft_seeds or 2
        if args.updates is None and args.minutes is None:
            args.updates = 30
    args.ft_seeds = args.ft_seeds or 5
    if args.updates is None and args.minutes is None:
        p.error("give a budget: --updates N (per run) or --minutes M (all pretraining)")
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    if args.baseline is None and schemes:
        args.baseline = "BERT-A" if "BERT-A" in schemes else schemes[0]
        print(f"tupe-study: baseline {args.baseline} (give --baseline to choose another)", file=sys.stderr)
    plan = StudyPlan(schemes=schemes, lrs=parse_floats(args.lrs),
                     updates=args.updates, minutes=args.minutes, arch=["--arch", args.arch],
                     tokens_per_sample=args.tokens_per_sample, batch=args.batch, seed=args.seed,
                     validations=args.validations, baseline=args.baseline,
                     task=str(args.task) if args.task else None, ft_lrs=parse_floats(args.ft_lrs),
                     ft_seeds=args.ft_seeds, ft_epochs=args.ft_epochs,
                     objectives=[o.strip() for o in args.objectives.split(",") if o.strip()])
    try:
        report = run_study(plan, args.corpus, args.out, args.workers)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"tupe-study: error: {e}", file=sys.stderr)
        return 1
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
