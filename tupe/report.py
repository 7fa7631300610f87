"""``tupe-report RUN_DIR``: report.md + PNG plots from the logs of any run, sweep or demo.

It reads every ``metrics.jsonl`` under RUN_DIR (written by train.py) and every
``results.json`` (written by tupe-glue). A directory whose log has masked-LM records is a
pretraining run, named by its path; one with classification/regression metrics is a
finetuning run. Plots: training and validation MLM loss against updates and against wall
time, the LR schedule, finetuning validation metric curves. The table (also printed) has one
row per pretraining run: final valid loss and perplexity, and the downstream metric (median
over seeds, with its range) of the sweep in ``RUN_DIR/finetune/NAME`` when there is one.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
from pathlib import Path
from typing import Optional

from .checkpoint import read_config
from .cli import HelpFormatter
from .config import SCHEMES
from .logs import cli_logging

logger = logging.getLogger(__name__)

FINETUNE_METRICS = ("accuracy", "mcc", "pearson", "f1", "spearman")


def read_jsonl(path: Path) -> list[dict]:
    """The records of a ``metrics.jsonl``. A last line without its newline is a record cut short
    (the run stopped, or is writing it now): left out, with a warning; a bad line before it is an
    error naming the file and line."""
    text = path.read_text()
    lines = text.splitlines()
    if lines and not text.endswith("\n"):
        logger.warning("%s:%d: a record cut short at the end of the file (the run stopped while writing it, or is "
                       "writing it now): left out", path, len(lines))
        lines = lines[:-1]
    out = []
    for lineno, line in enumerate(lines, 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not JSON ({e.msg})") from None
    return out


def collect(run_dir: Path) -> tuple[dict, dict, dict]:
    """(pretraining runs, finetuning runs, sweep results), keyed by relative path."""
    pretrain, finetune, sweeps = {}, {}, {}
    for path in sorted(run_dir.rglob("metrics.jsonl")):
        name = str(path.parent.relative_to(run_dir)) or "."
        recs = read_jsonl(path)
        train = [r for r in recs if r.get("type") == "train"]
        valid = [r for r in recs if r.get("type") == "valid"]
        if any(k in r for r in valid for k in FINETUNE_METRICS):
            finetune[name] = {"train": train, "valid": valid}
        elif any("ppl" in r or "gen_loss" in r for r in train + valid):   # masked LM or ELECTRA
            pretrain[name] = {"train": train, "valid": valid}
    for path in sorted(run_dir.rglob("results.json")):
        sweeps[str(path.parent.relative_to(run_dir))] = json.loads(path.read_text())
    return pretrain, finetune, sweeps


def scheme_color(name: str) -> str:
    """One colour per scheme across every plot of every report: the scheme's place in the registry
    (an ELECTRA-<scheme> run, a run path like ``TUPE-R/lr0.001`` or ``SST-2/TUPE-R``: its scheme's)."""
    names = list(SCHEMES)
    for part in name.replace(ELECTRA_PREFIX, "").split("/"):
        if part in names:
            return f"C{names.index(part) % 10}"
    return f"C{sum(name.encode()) % 10}"                # not a scheme: stable, by name


SMOOTHING = 5   # training-loss points of a moving average in the pretraining plots


def _smooth(values: list[float], k: int = SMOOTHING) -> list[float]:
    out = []
    for i in range(len(values)):
        window = values[max(0, i - k + 1): i + 1]
        out.append(sum(window) / len(window))
    return out


def _save(fig, plt, out: Path, name: str, dpi: int = 110) -> str:
    """Lay out (unless the figure has its own layout engine), write and close a figure; its file
    name for the report."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(out / name, dpi=dpi)
    plt.close(fig)
    return name


def _decorate(ax, xlabel: str, ylabel: str, title: str, legend: bool = True) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=8)


def plots(out: Path, pretrain: dict, finetune: dict) -> list[str]:
    import matplotlib  # optional heavy import: only to plot
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # optional heavy import: only to plot

    files = []
    if pretrain:
        for x_key, fname, xlabel in (("num_updates", "pretrain_loss_updates.png", "updates"),
                                     ("wall", "pretrain_loss_wall.png", "wall time (s)")):
            fig, ax = plt.subplots(figsize=(7, 4.2))
            for name, run in sorted(pretrain.items()):
                color = scheme_color(name)
                tr = [r for r in run["train"] if r.get("loss") is not None]
                if tr:                 # the logged points, and their moving average (said in the legend)
                    xs = [r[x_key] for r in tr]
                    ax.plot(xs, [r["loss"] for r in tr], ".", color=color, alpha=0.3, markersize=3)
                    ax.plot(xs, _smooth([r["loss"] for r in tr]), color=color, alpha=0.6,
                            label=f"{name} train (mean of last {SMOOTHING} log points)")
                va = [r for r in run["valid"] if r.get("loss") is not None]
                if va:
                    ax.plot([r[x_key] for r in va], [r["loss"] for r in va], "o-", color=color, label=f"{name} valid")
            _decorate(ax, xlabel, "masked-LM loss (bits)", "Pretraining loss")
            files.append(_save(fig, plt, out, fname))
        fig, ax = plt.subplots(figsize=(7, 3.2))
        for k, (name, run) in enumerate(sorted(pretrain.items())):
            tr = [r for r in run["train"] if r.get("lr") is not None]       # identical schedules overlap: markers
            ax.plot([r["num_updates"] for r in tr], [r["lr"] for r in tr], color=scheme_color(name), alpha=0.7,
                    marker="os^vD<>"[k % 7], markevery=max(1, len(tr) // 8), label=name)
        _decorate(ax, "updates", "learning rate", "LR schedule")
        files.append(_save(fig, plt, out, "lr_schedule.png"))
    if finetune:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        metrics = set()
        for name, run in sorted(finetune.items()):
            metric = next((m for m in FINETUNE_METRICS if m in run["valid"][0]), None)
            if metric is None:
                continue
            metrics.add(metric)
            group = name.split("/")[1] if name.count("/") >= 1 else name
            ax.plot([r["num_updates"] for r in run["valid"]], [r[metric] for r in run["valid"] if metric in r],
                    ".-", color=scheme_color(name), alpha=0.6, label=group)
        handles, labels = ax.get_legend_handles_labels()
        uniq = dict(zip(labels, handles))
        ax.legend(uniq.values(), uniq.keys(), fontsize=8)
        ax.set_xlabel("finetuning updates")
        ax.set_ylabel("validation " + (" / ".join(sorted(metrics)) or "metric"))
        ax.set_title("Finetuning validation curves (one line per run)")
        ax.grid(alpha=0.3)
        files.append(_save(fig, plt, out, "finetune_curves.png"))
    return files


def summary_table(pretrain: dict, sweeps: dict) -> tuple[list[str], list[list[str]]]:
    header = ["model", "updates", "valid loss (bits)", "valid ppl", "downstream (median [min, max])"]
    rows = []
    for name, run in sorted(pretrain.items()):
        valid = [r for r in run["valid"] if r.get("loss") is not None]
        last = valid[-1] if valid else {}
        updates = max((r["num_updates"] for r in run["train"]), default=0)
        short = Path(name).name
        downstream = "-"
        for sweep_name, res in sweeps.items():
            if Path(sweep_name).name == short:
                parts = []
                for task, s in res.get("tasks", {}).items():
                    parts.append(f"{task} {s['metric']} {100 * s['median']:.1f} [{100 * s['min']:.1f}, "
                                 f"{100 * s['max']:.1f}]")
                downstream = "; ".join(parts) or "-"
        loss = f"{last['loss']:.3f}" if last else "-"
        if "gen_loss" in last:   # ELECTRA: its objective, then the generator's MLM and the discriminator's BCE
            loss += f" (generator {last['gen_loss']:.3f}, discriminator {last['disc_loss']:.3f})"
        rows.append([short, str(updates), loss, f"{last['ppl']:.1f}" if last.get("ppl") else "-", downstream])
    return header, rows


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- run names and metrics
STUDY_FILE = "study.json"
OBJECTIVES = ("mlm", "electra")
ELECTRA_PREFIX = "ELECTRA-"          # a run name: the scheme (masked LM) or ELECTRA-<scheme>


def run_names(schemes: list[str], objectives: list[str]) -> list[str]:
    """Every (objective, scheme) pair as one run name, masked LM first: TUPE-R, ..., ELECTRA-TUPE-R, ..."""
    return [("" if o == "mlm" else ELECTRA_PREFIX) + s for o in objectives for s in schemes]


def split_name(name: str) -> tuple[str, str]:
    """Run name -> (objective, scheme)."""
    return ("electra", name[len(ELECTRA_PREFIX):]) if name.startswith(ELECTRA_PREFIX) else ("mlm", name)


def read_metrics(run: Path) -> list[dict]:
    """A run folder's metrics.jsonl records (:func:`read_jsonl`); none without the file."""
    path = run / "metrics.jsonl"
    return read_jsonl(path) if path.is_file() else []


def final_valid_loss(run: Path) -> Optional[float]:
    valid = [r["loss"] for r in read_metrics(run) if r.get("type") == "valid" and r.get("loss") is not None]
    return valid[-1] if valid else None


# --------------------------------------------------------------------------- study reports (tupe-study, tupe-demo)
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
    import matplotlib  # optional heavy import: only to plot
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # optional heavy import: only to plot

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
        for scheme in plan["schemes"]:
            name = run_names([scheme], [objective])[0]
            c = curves.get((name, best.get(name)), [])
            if c:
                ax.plot(*zip(*c), "o-", color=scheme_color(name), alpha=0.8, label=f"{name} (lr {best[name]:g})")
        _decorate(ax, "updates", ylabels[objective],
                  f"{'Masked LM' if objective == 'mlm' else 'ELECTRA'}: validation loss, best LR of each scheme")
    files.append(_save(fig, plt, out, "study_valid_loss.png"))
    cols = min(3, len(schemes))
    rows_n = math.ceil(len(schemes) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4 * cols, 3 * rows_n), squeeze=False, sharey=True)
    for k, scheme in enumerate(schemes):
        ax = axes[k // cols][k % cols]
        for j, lr in enumerate(lrs):
            c = curves.get((scheme, lr), [])
            if c:
                ax.plot(*zip(*c), "-", color=f"C{j}", alpha=0.8, marker="os^vD"[j % 5],
                        label=f"lr {lr:g}" + (" (best)" if lr == best.get(scheme) else ""))
        ax.set_title(f"{scheme}: validation loss per LR", fontsize=9)
        ax.set_xlabel("updates", fontsize=8)
        ax.set_ylabel("validation loss (bits)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for k in range(len(schemes), rows_n * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle("Validation loss (bits) per LR")
    files.append(_save(fig, plt, out, "study_lr_grid.png", dpi=100))

    md = ["## Study", ""]
    m = state.get("machine", {})
    bf16 = ", ".join(m["cpu_bf16"]) if isinstance(m.get("cpu_bf16"), list) else m.get("cpu_bf16", "?")
    md += [f"Machine: {m.get('cpu', '?')} (bf16: {bf16}), "
           f"{m.get('cpus', '?')} cores, torch {m.get('torch', '?')}{', ' + m['device'] if m.get('device') else ''}. "
           f"Budget: {state['updates']} updates per run ({' '.join(plan['arch'])}, {plan['tokens_per_sample']} "
           f"tokens x {plan['batch']}), seed {plan['seed']}, LR grid {', '.join(f'{x:g}' for x in lrs)}. "
           f"Total wall time {state.get('wall_s', 0) / 60:.1f} min.", ""]
    quick = state["updates"] < 100          # a smoke run: throughput at that size says nothing
    header = ["scheme", "best LR", "final valid loss (bits) per LR", f"updates to reach {baseline}'s final loss",
              "wall time (best LR)"] + ([] if quick else ["tokens/s"])
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
                     f"{run.get('seconds', 0) / 60:.1f} min"] + ([] if quick else [f"{run.get('tokens_per_s') or 0:.0f}"]))
    md += ["### Pretraining", "", _table(header, rows),
           "Updates to reach the baseline's final validation loss: linear between validation points; the "
           "paper's claim is that TUPE-A reaches BERT-A's final loss in 30% of its steps."
           + (" ELECTRA runs (ELECTRA-<scheme>) report their own objective (generator MLM + 50 x replaced-token "
              "BCE, per masked token) and are compared with ELECTRA-" + baseline + "." if "electra" in objectives else ""),
           ""]

    length_md, length_files = probe_sections(out, state, plt)
    md += length_md
    files += length_files

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


def beyond_training(cfg, trained: int) -> str:
    """What a scheme computes for positions past the trained length (the length table's note)."""
    notes = []
    if cfg.pos_encoding in ("tupe", "absolute"):
        notes.append(f"absolute table: rows {trained}+ never trained (as initialised)")
    if cfg.pos_encoding == "rope":
        notes.append("rotations of positions never seen (no table)")
    if cfg.pos_encoding == "alibi":
        notes.append("the same linear distance penalty (no table)")
    if cfg.pos_encoding == "none":
        notes.append("no positions")
    if cfg.rel_pos:
        notes.append(f"relative buckets: distances >= {cfg.max_rel_pos} share the last bucket (trained)")
    return "; ".join(notes)


def probe_sections(out: Path, state: dict, plt) -> tuple[list[str], list[str]]:
    """The length-generalisation and word-order sections (study.probe_models' numbers)."""
    lengths, probe = state.get("lengths") or {}, state.get("order_probe") or {}
    if not lengths:
        return [], []
    plan = state["plan"]
    trained = plan["tokens_per_sample"]
    columns = sorted({int(n) for row in lengths.values() for n in row})
    md, files = [], []
    if len(columns) > 1:
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        header = ["scheme", *[f"{n} tokens{' (trained)' if n == trained else ''}" for n in columns], "past the trained length"]
        rows = []
        for name, row in lengths.items():
            base, _, variant = name.partition(" + ")       # "RoPE + dynamic NTK": the RoPE model, scaled; "+ copied rows"
            cfg, _ = read_config(out / "pretrain" / base / f"lr{state['best_lr'][base]:g}" / "checkpoint_last.pt")
            cells = [f"{row[str(n)]['loss']:.3f}" if "loss" in row.get(str(n), {}) else "refused" for n in columns]
            note = {"dynamic NTK": f"the same model, RoPE's base raised past {trained} tokens (dynamic NTK, factor "
                                   f"{max(columns) / trained:g})",
                    "copied rows": f"the same model, its table's rows past {trained} replaced by copies of the trained "
                                   f"ones (position {trained} + k takes row k, Longformer's way)",
                    }.get(variant) or beyond_training(cfg, trained)
            rows.append([name, *cells, note])
            points = [(n, row[str(n)]["loss"]) for n in columns if "loss" in row.get(str(n), {})]
            if points:
                ax.plot(*zip(*points), "s--" if variant else "o-", color=scheme_color(base), label=name)
        ax.axvline(trained, color="grey", linestyle=":", label=f"trained length ({trained})")
        ax.set_xscale("log", base=2)
        ax.set_xticks(columns, [str(n) for n in columns])
        _decorate(ax, "validation block length (tokens)", "validation masked-LM loss (bits)",
                  "Loss on blocks longer than trained (best LR of each scheme)")
        files.append(_save(fig, plt, out, "study_lengths.png"))
        md += ["### Beyond the trained length", "", _table(header, rows),
               f"Validation loss (bits per masked token) of each scheme's best model on the validation text cut "
               f"into blocks of each length (same masking rate and seed). The schemes with positional tables have "
               f"tables for {max(columns)} positions, trained on {trained}-token blocks only: rows past {trained} keep "
               f"their initial values, which is what an absolute scheme brings to a longer input (+ copied rows: the "
               f"same model with those rows replaced by copies of the trained ones); RoPE, ALiBi and "
               f"NoPE have no table. Longer blocks hold more context, but (with sentence-aligned blocks) also the "
               f"sentences longer than {trained} tokens that training skipped: NoPE's row, a model without positions, "
               f"shows what the longer blocks do to any model; a scheme's rise beyond NoPE's is its own.", ""]
    if probe:
        header = ["scheme", "intact (bits)", "word order shuffled (bits)", "difference"]
        rows = [[name, f"{p['intact']:.3f}", f"{p['shuffled']:.3f}", f"{p['shuffled'] - p['intact']:+.3f}"]
                for name, p in probe.items()]
        md += ["### Word order", "", _table(header, rows),
               f"Validation loss at {trained} tokens with each block's unpredicted tokens permuted among their "
               f"positions (the same masked positions, the same seeded permutation for every model): how much each "
               f"model's predictions use word order. NoPE, which has no positions, is the control: its difference "
               f"is zero up to float rounding.", ""]
    return md, files


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def make_report(run_dir: Path, title: str = "tupe run report") -> tuple[Path, str]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: run directory not found")
    pretrain, finetune, sweeps = collect(run_dir)
    if not pretrain and not finetune:
        raise ValueError(f"{run_dir}: no metrics.jsonl with training records below it")
    md = [f"# {title}", "", f"Run directory: `{run_dir}`", ""]
    study = (run_dir / "study.json").is_file()
    if study:   # tupe-study / tupe-demo: the study's own tables and plots, best-LR runs only in the table
        section, files = study_report(run_dir)
        md += [section]
        best = json.loads((run_dir / "study.json").read_text()).get("best_lr", {})
        pretrain = {Path(k).parent.name: v for k, v in pretrain.items()
                    if Path(k).parent.name in best and Path(k).name == f"lr{float(best[Path(k).parent.name]):g}"}
        files += plots(run_dir, {}, finetune)
    else:
        files = plots(run_dir, pretrain, finetune)
    header, rows = summary_table(pretrain, sweeps)
    table = markdown_table(header, rows) if rows else ""
    if table:
        md += ["## Final numbers", "", table]
    for key in sweeps:
        md += [f"## Finetuning sweep `{key}`", ""]
        table_file = run_dir / key / "results.md"
        if table_file.is_file():
            md += [table_file.read_text(), ""]
    md += ["## Plots", ""] + [f"![{f}]({f})" for f in files] + [""]
    report = run_dir / "report.md"
    report.write_text("\n".join(md))
    return report, table


def main(argv=None) -> int:
    cli_logging()
    p = argparse.ArgumentParser(prog="tupe-report", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("run_dir", type=Path, help="a run, sweep, study or demo directory")
    p.add_argument("--title", default="tupe run report", help="the report's title")
    args = p.parse_args(argv)
    try:
        report, table = make_report(args.run_dir, args.title)
    except (FileNotFoundError, ValueError) as e:
        print(f"tupe-report: error: {e}", file=sys.stderr)
        return 1
    print(table, end="")
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
