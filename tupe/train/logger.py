"""Training logs: fairseq-like ``simple``/``json``/``tqdm`` lines, metrics.jsonl, TensorBoard."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Optional

from tqdm import tqdm


def _fmt(key: str, value) -> str:
    if isinstance(value, float):
        if key in ("lr",):
            return f"{value:.4g}"
        if key in ("wps", "wpb", "bsz", "wall", "train_wall"):
            return f"{value:.0f}"
        return f"{value:.3f}"
    return str(value)


def drop_cut_record(path: Path, log) -> None:
    """A metrics.jsonl whose last record was cut short (a full disk, or the process killed while
    writing it) is cut back to its last whole line before a resumed run appends to it; otherwise
    the next record would be glued to the broken one, and the file unreadable from there."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, 2)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        keep = data.rfind(b"\n") + 1
        f.truncate(keep)
    log(f"| {path}: dropped a record cut short at its end ({len(data) - keep} bytes; the run stopped while "
        f"writing it)")


def continue_history(path: Path, start: int, log) -> None:
    """``metrics.jsonl`` made one run's history before a run that starts at update ``start``
    appends to it (its last record cut short dropped first, ``drop_cut_record``):

    * resuming (``start`` > 0): records past ``start`` were logged after the checkpoint it resumes
      from (a kill -9 before the next save); they are dropped, as the run logs those updates again;
    * from update 0 (a new run, e.g. a finetuning command run again into its --save-dir): the
      records are an earlier run's; the file is moved aside to ``metrics.earlier-N.jsonl``, so that
      the two histories are not read as one (curves, reports), and nothing of it is lost.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return
    drop_cut_record(path, log)
    lines = path.read_text().splitlines(keepends=True)
    if not lines:
        return
    if start == 0:
        n = 1
        while (earlier := path.with_name(f"metrics.earlier-{n}.jsonl")).exists():
            n += 1
        path.rename(earlier)
        log(f"| {path}: {len(lines)} records of an earlier run in this --save-dir (this run starts at update 0) "
            f"moved to {earlier.name}")
        return

    def updates(line: str) -> int:
        try:
            return int(json.loads(line).get("num_updates") or 0)
        except (ValueError, AttributeError):
            return 0                                       # not a record of an update: kept
    keep = [line for line in lines if updates(line) <= start]
    if len(keep) < len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(keep))
        os.replace(tmp, path)
        log(f"| {path}: dropped {len(lines) - len(keep)} record(s) past update {start}, logged after the checkpoint "
            f"this run resumes from (the run logs those updates again)")


class MetricsLogger:
    """One place for every log line; rank 0 only (others get ``enabled=False``)."""

    def __init__(self, log_format: str, save_dir: Optional[Path], tensorboard_logdir: str = "",
                 enabled: bool = True):
        self.format = log_format
        self.enabled = enabled
        self.start = time.time()
        # metrics.jsonl is opened at the first record: a run that fails before it starts leaves none
        self.jsonl_path = save_dir / "metrics.jsonl" if enabled and save_dir is not None else None
        self.jsonl = None
        self.start_update: Optional[int] = None       # where the run starts (set after restoring): continue_history
        self.tb_dir = tensorboard_logdir if enabled else ""
        self._writers: dict = {}
        self.bar = None

    def info(self, message: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, flush=True)

    def _writer(self, tag: str):
        if not self.tb_dir:
            return None
        if tag not in self._writers:
            try:
                # optional extra 'tensorboard': only with --tensorboard-logdir
                from torch.utils.tensorboard import SummaryWriter  # noqa: I001  (optional: see above)
            except ImportError:
                self.info("warning: TensorBoard is not installed (pip install tensorboard); "
                          "--tensorboard-logdir ignored, metrics.jsonl still written")
                self.tb_dir = ""
                return None
            self._writers[tag] = SummaryWriter(str(Path(self.tb_dir) / tag))
        return self._writers[tag]

    def write_record(self, record: dict) -> None:
        """One JSON line in SAVE_DIR/metrics.jsonl (rank 0; nothing without a save dir)."""
        if self.jsonl_path is None:
            return
        try:
            if self.jsonl is None:
                self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)
                if self.start_update is None:
                    drop_cut_record(self.jsonl_path, self.info)
                else:
                    continue_history(self.jsonl_path, self.start_update, self.info)
                self.jsonl = open(self.jsonl_path, "a", buffering=1)
            self.jsonl.write(json.dumps(record) + "\n")
        except OSError as e:
            e.filename = e.filename or str(self.jsonl_path)       # name the file in the error
            raise

    def log(self, kind: str, stats: dict, step: int, prefix: str) -> None:
        """``kind``: train / valid / ...; ``prefix``: the line's head (``epoch 001 | valid``)."""
        if not self.enabled:
            return
        stats = {**stats, "wall": round(time.time() - self.start, 1)}
        record = {"type": kind, **{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                   for k, v in stats.items()}}
        self.write_record(record)
        writer = self._writer(stats.get("subset", kind) if kind == "valid" else kind)
        if writer is not None:
            for k, v in stats.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("epoch", "num_updates"):
                    writer.add_scalar(k, v, step)
            writer.flush()
        if self.format == "none":
            return
        if self.format == "json":
            print(json.dumps(record), flush=True)
        elif self.format == "tqdm" and self.bar is not None and kind == "train":
            self.bar.set_postfix({k: _fmt(k, v) for k, v in stats.items()
                                  if k in ("loss", "ppl", "lr", "gnorm", "wps")}, refresh=False)
        else:
            body = " | ".join(f"{k} {_fmt(k, v)}" for k, v in stats.items() if k not in ("epoch", "subset"))
            self.info(f"{prefix} | {body}")

    def progress(self, iterable, total: int, desc: str):
        if not self.enabled or self.format != "tqdm":
            return iterable
        self.bar = tqdm(iterable, total=total, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=False)
        return self.bar

    def close_progress(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self) -> None:
        self.close_progress()
        if self.jsonl is not None:
            try:
                self.jsonl.close()            # idempotent; a full disk may fail the final flush
            except OSError:
                pass
            self.jsonl = None
        for w in self._writers.values():
            w.close()
        self._writers = {}
