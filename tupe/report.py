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
import sys
from pathlib import Path

from .logs import cli_logging

FINETUNE_METRICS = ("accuracy", "mcc", "pearson", "f1", "spearman")


def read_jsonl(path: Path) -> list[dict]:
    out = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
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


def _smooth(values: list[float], k: int = 5) -> list[float]:
    out = []
    for i in range(len(values)):
        window = values[max(0, i - k + 1): i + 1]
        out.append(sum(window) / len(window))
    return out


def plots(out: Path, pretrain: dict, finetune: dict) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    if pretrain:
        for x_key, fname, xlabel in (("num_updates", "pretrain_loss_updates.png", "updates"),
                                     ("wall", "pretrain_loss_wall.png", "wall time (s)")):
            fig, ax = plt.subplots(figsize=(7, 4.2))
            for i, (name, run) in enumerate(sorted(pretrain.items())):
                color = f"C{i}"
                tr = [r for r in run["train"] if r.get("loss") is not None]
                if tr:
                    ax.plot([r[x_key] for r in tr], _smooth([r["loss"] for r in tr]), color=color, alpha=0.5,
                            label=f"{name} train")
                va = [r for r in run["valid"] if r.get("loss") is not None]
                if va:
                    ax.plot([r[x_key] for r in va], [r["loss"] for r in va], "o-", color=color, label=f"{name} valid")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("masked-LM loss (bits)")
            ax.set_title("Pretraining loss")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            fig.tight_layout()
            fig.savefig(out / fname, dpi=110)
            plt.close(fig)
            files.append(fname)
        fig, ax = plt.subplots(figsize=(7, 3.2))
        for i, (name, run) in enumerate(sorted(pretrain.items())):
            tr = [r for r in run["train"] if r.get("lr") is not None]
            ax.plot([r["num_updates"] for r in tr], [r["lr"] for r in tr], color=f"C{i}", label=name)
        ax.set_xlabel("updates")
        ax.set_ylabel("learning rate")
        ax.set_title("LR schedule")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "lr_schedule.png", dpi=110)
        plt.close(fig)
        files.append("lr_schedule.png")
    if finetune:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        groups = sorted({name.split("/")[1] if name.count("/") >= 1 else name for name in finetune})
        for name, run in sorted(finetune.items()):
            metric = next((m for m in FINETUNE_METRICS if m in run["valid"][0]), None)
            if metric is None:
                continue
            group = name.split("/")[1] if name.count("/") >= 1 else name
            ax.plot([r["num_updates"] for r in run["valid"]], [r[metric] for r in run["valid"] if metric in r],
                    ".-", color=f"C{groups.index(group) % 10}", alpha=0.6, label=group)
        handles, labels = ax.get_legend_handles_labels()
        uniq = dict(zip(labels, handles))
        ax.legend(uniq.values(), uniq.keys(), fontsize=8)
        ax.set_xlabel("finetuning updates")
        ax.set_ylabel("validation metric")
        ax.set_title("Finetuning validation curves (one line per run)")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "finetune_curves.png", dpi=110)
        plt.close(fig)
        files.append("finetune_curves.png")
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
        from .study import study_report

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
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--title", default="tupe run report")
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
