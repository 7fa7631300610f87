"""``tupe-preprocess glue``: GLUE TSV files -> ``TASK-bin/{input0,input1,label}``.

Per row only (docs/formats.md section 6): clean, Moses-tokenise, lower-case, apply the pretraining
BPE codes, binarize with the pretraining ``dict.txt``. One output line per input row; the
only rows ever dropped are QQP's malformed ones (counted and reported), as the original.
TSVs are read without quote processing (GLUE text contains quote characters).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..data.bpe import BPE
from ..data.dictionary import Dictionary
from . import text as T
from .common import PreprocessError, atomic_directory, binarize_lines, chunked, parallel_map, progress
from .pretrain import load_codes_and_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GlueTask:
    name: str
    inputs: tuple[int, ...]             # 1-based columns in train/dev files
    label: int                          # 1-based label column in train (and dev unless dev_label)
    test_inputs: tuple[int, ...]
    labels: Optional[tuple[str, ...]]   # allowed label words; None = regression (STS-B: STSB_RANGE)
    dev_label: Optional[int] = None
    header: bool = True                 # train/dev have a header line (test always has one)
    drop_malformed: bool = False        # QQP: skip train/dev rows without the right field count
    files: dict = field(default_factory=lambda: {"train": "train.tsv", "valid": "dev.tsv", "test": "test.tsv"})

    @property
    def num_classes(self) -> int:
        return 1 if self.labels is None else len(self.labels)


BINARY = ("0", "1")
STSB_RANGE = (0.0, 5.0)                 # STS-B's similarity scores (its labels are stored scaled to [0, 1])
NLI2 = ("entailment", "not_entailment")
TASKS: dict[str, GlueTask] = {t.name: t for t in [
    GlueTask("CoLA", (4,), 2, (2,), BINARY, header=False),
    GlueTask("SST-2", (1,), 2, (2,), BINARY),
    GlueTask("MRPC", (4, 5), 1, (4, 5), BINARY),
    GlueTask("QQP", (4, 5), 6, (2, 3), BINARY, drop_malformed=True),
    GlueTask("STS-B", (8, 9), 10, (8, 9), None),
    GlueTask("MNLI", (9, 10), 12, (9, 10), ("contradiction", "entailment", "neutral"), dev_label=16,
             files={"train": "train.tsv", "valid": "dev_matched.tsv", "valid1": "dev_mismatched.tsv",
                    "test": "test_matched.tsv", "test1": "test_mismatched.tsv"}),
    GlueTask("QNLI", (2, 3), 4, (2, 3), NLI2),
    GlueTask("RTE", (2, 3), 4, (2, 3), NLI2),
    GlueTask("WNLI", (2, 3), 4, (2, 3), BINARY),
]}


def parse_tasks(spec: str) -> list[GlueTask]:
    if spec.strip().upper() == "ALL":
        return list(TASKS.values())
    by_lower = {k.lower(): v for k, v in TASKS.items()}
    out = []
    for name in (s.strip() for s in spec.split(",") if s.strip()):
        if name.lower() not in by_lower:
            raise PreprocessError(f"unknown GLUE task {name!r}; choose from {', '.join(TASKS)} or ALL")
        out.append(by_lower[name.lower()])
    return out


@dataclass
class SplitRows:
    texts: list[tuple[str, ...]]
    labels: Optional[list[str]]
    skipped_malformed: int = 0
    lines: Optional[list[int]] = None      # the file line of each row, where known
    repairs: dict = field(default_factory=dict)   # text.decode_row's counts (bad bytes, overlong words)


def check_score(label: str, score_range: tuple[float, float], what: str, hint: str = "") -> float:
    """A regression label as a number inside ``score_range``, else a PreprocessError beginning
    with ``what`` (the file, line and kind of score)."""
    try:
        value = float(label)
    except ValueError:
        raise PreprocessError(f"{what} {label!r} is not a number") from None
    lo, hi = score_range
    if not lo <= value <= hi:      # also NaN
        raise PreprocessError(f"{what} {value} is outside [{lo:g}, {hi:g}]{hint}")
    return value


def read_split(task: GlueTask, split: str, path: Path) -> SplitRows:
    """Rows of one TSV: the input columns (and label), checked field count and label set."""
    is_test = split.startswith("test")
    columns = task.test_inputs if is_test else task.inputs
    label_col = None if is_test else (task.dev_label if split != "train" and task.dev_label else task.label)
    has_header = True if is_test else task.header
    texts, labels, skipped, repairs = [], ([] if label_col else None), 0, {}
    with open(path, "rb") as f:
        expected = None
        for lineno, raw in enumerate(f, 1):
            line = T.decode_row(raw, repairs, first=lineno == 1)
            fields = line.split("\t")
            if lineno == 1 and has_header:
                expected = len(fields)
                continue
            if expected is None:
                expected = max(max(columns), label_col or 0)
            if len(fields) != expected:
                if task.drop_malformed and not is_test:
                    skipped += 1
                    continue
                raise PreprocessError(f"{path}:{lineno}: expected {expected} tab-separated fields, "
                                      f"found {len(fields)}")
            texts.append(tuple(fields[c - 1] for c in columns))
            if label_col:
                label = fields[label_col - 1].strip()
                if task.labels is None:
                    check_score(label, STSB_RANGE, f"{path}:{lineno}: STS-B score")
                elif label not in task.labels:
                    raise PreprocessError(f"{path}:{lineno}: label {label!r} is not one of "
                                          f"{', '.join(task.labels)} for {task.name}")
                labels.append(label)
    if not texts:
        raise PreprocessError(f"{path}: no data rows")
    return SplitRows(texts, labels, skipped, repairs=repairs)


_CLEAN: dict = {}


def _init_clean(cased: bool) -> None:
    _CLEAN["lower"] = not cased


def _clean_rows(rows: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return [tuple(T.glue_clean(t, lowercase=_CLEAN["lower"]) for t in row) for row in rows]


def build_label_dictionary(labels: list[str]) -> Dictionary:
    """The label dictionary of a classification task: its words most frequent first, ties in
    alphabetical order (class id = index - specials). The one numbering rule of the project."""
    d = Dictionary()
    d.update(Counter(labels))
    d.finalize(padding_factor=8)
    return d


def label_words(labels: list[str]) -> list[str]:
    """The class names in class-id order (``build_label_dictionary``'s rule), for code that
    numbers labels itself (examples/hf_finetune.py)."""
    distinct = set(labels)
    d = build_label_dictionary(labels)
    return [w for w in d.symbols[d.nspecial:] if w in distinct]


def write_task(out: Path, name: str, splits: dict, n_inputs: int, label_dict: Optional[Dictionary],
               score_range: Optional[tuple[float, float]], bpe: BPE, dictionary: Dictionary, dict_path: Path,
               workers: int, cased: bool, show_progress: bool) -> dict:
    """Write ``input0/ [input1/] label/`` for validated rows (``splits[split] = (path, SplitRows)``):
    texts cleaned, BPE-encoded and binarized with the pretraining dictionary; class labels
    through ``label_dict``; regression scores mapped from ``score_range`` to [0, 1] into
    ``label/SPLIT.label``. Returns the task's description (rows per split, label words)."""
    for k in range(n_inputs):
        (out / f"input{k}").mkdir(parents=True)
        shutil.copyfile(dict_path, out / f"input{k}" / "dict.txt")
    (out / "label").mkdir()
    if label_dict is not None:
        label_dict.save(out / "label" / "dict.txt")
    num_classes = 1 if label_dict is None else len(label_dict) - label_dict.nspecial
    info: dict = {"num_classes": num_classes, "regression": label_dict is None, "inputs": n_inputs, "splits": {}}
    if label_dict is not None:
        info["label_words"] = label_dict.words()      # in class order
        info["num_classes"] = len(info["label_words"])
    else:
        info["score_range"] = list(score_range)
    lo, hi = score_range or (0.0, 1.0)
    for split, (path, rows) in splits.items():
        cleaned: list[tuple[str, ...]] = []
        with progress(total=len(rows.texts), unit="row", desc=f"{name} {split}",
                      disable=not show_progress) as bar:
            for chunk in parallel_map(_clean_rows, chunked(rows.texts, 200), workers, _init_clean, (cased,)):
                cleaned.extend(chunk)
                bar.update(len(chunk))
        for k in range(n_inputs):
            encoded = bpe.apply([row[k] for row in cleaned])
            binarize_lines(encoded, dictionary, out / f"input{k}" / split)
        if rows.labels is not None:
            if label_dict is not None:
                binarize_lines(rows.labels, label_dict, out / "label" / split)
            else:
                with open(out / "label" / f"{split}.label", "w") as f:
                    for value in rows.labels:
                        f.write(f"{(float(value) - lo) / (hi - lo)}\n")
        info["splits"][split] = {"file": str(path), "rows": len(rows.texts),
                                 "skipped_malformed": rows.skipped_malformed, "repairs": rows.repairs}
    return info


def process_task(task: GlueTask, raw_dir: Path, bpe: BPE, dictionary: Dictionary, dict_path: Path,
                 out: Path, workers: int, cased: bool, show_progress: bool) -> dict:
    task_dir = raw_dir / task.name
    if not task_dir.is_dir():
        raise PreprocessError(f"{task_dir}: GLUE task folder not found")
    splits = {}
    for split, filename in task.files.items():
        path = task_dir / filename
        if not path.is_file():
            if split.startswith("test"):
                log.warning(f"tupe-preprocess: warning: {path} not found; {task.name} gets no {split} split")
                continue
            raise PreprocessError(f"{path}: GLUE file not found")
        splits[split] = (path, read_split(task, split, path))   # validate everything before work

    label_dict = None
    if task.labels is not None:
        label_dict = build_label_dictionary(splits["train"][1].labels)
        for path, rows in splits.values():
            unseen = sorted(set(rows.labels or ()) - set(label_dict.symbols))
            if unseen:
                raise PreprocessError(f"{path}: label(s) {', '.join(unseen)} never occur in the training "
                                      f"split, so the label dictionary has no class for them")
    info = write_task(out, task.name, splits, len(task.inputs), label_dict, None if task.labels else STSB_RANGE,
                      bpe, dictionary, dict_path, workers, cased, show_progress)
    info["task"] = task.name
    info["num_classes"] = task.num_classes    # the task's fixed label set, whatever train holds
    info["cased"] = cased                     # read by training runs (their text.json) and the hub
    if label_dict is not None:
        info["label_words"] = label_dict.words()[: task.num_classes]
    (out / "glue.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def run_glue(glue_dir: Path, tasks: str, bpe_dir: Path, destdir: Path, workers: int = 1,
             cased: bool = False, show_progress: bool = True, force: bool = False) -> dict:
    glue_dir, bpe_dir, destdir = Path(glue_dir), Path(bpe_dir), Path(destdir)
    if not glue_dir.is_dir():
        raise PreprocessError(f"{glue_dir}: GLUE data folder not found")
    codes_path, dict_path = bpe_dir / "bpe-code", bpe_dir / "dict.txt"
    for p in (codes_path, dict_path):
        if not p.is_file():
            raise PreprocessError(f"{p}: not found (--bpe-dir must hold the pretraining bpe-code and dict.txt)")
    selected = parse_tasks(tasks)
    merges, dictionary = load_codes_and_dict(codes_path, dict_path)
    bpe = BPE(merges)
    results = {}
    for task in selected:
        with atomic_directory(destdir / f"{task.name}-bin", force, [glue_dir / task.name, codes_path, dict_path]) as tmp:
            results[task.name] = process_task(task, glue_dir, bpe, dictionary, dict_path, tmp,
                                              workers, cased, show_progress)
    return results
