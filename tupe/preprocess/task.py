"""``tupe-preprocess task``: your own labelled TSV/CSV files -> ``NAME-bin/{input0,input1,label}``.

The same layout, text pipeline and error rules as ``tupe-preprocess glue``, for any
classification, regression or sentence-pair task::

    tupe-preprocess task --train topics/train.tsv --valid topics/dev.tsv --test topics/test.tsv \\
        --header --text-columns text --label-column topic --bpe-dir data-bin/wiki --destdir data-bin/topics-bin

Columns are 1-based numbers or, with ``--header``, names; two text columns make a pair task.
Class labels are the words of the training file's label column (most frequent first, as GLUE's
label dictionaries); a valid/test label that never occurs in training is an error naming the
file and line. ``--regression LO HI`` reads numbers in [LO, HI] and stores them scaled to [0, 1]
(predictions are scaled back). A test file without the label column is unlabeled. ``task.json``
records the classes, the label words and the rows per split; ``train.py --task
sentence_prediction --num-classes K``, ``tupe-glue --tasks NAME`` (by folder name) and
``tupe-predict`` work on the output unchanged.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Optional, Sequence, Union

from ..data.bpe import BPE
from . import text as T
from .common import PreprocessError, atomic_directory
from .glue import SplitRows, build_label_dictionary, check_score, write_task
from .pretrain import load_codes_and_dict

log = logging.getLogger(__name__)

TASK_FILE = "task.json"
Column = Union[int, str]


def parse_column(spec: str) -> Column:
    spec = spec.strip()
    if spec.isdigit():
        if int(spec) < 1:
            raise PreprocessError(f"column numbers are 1-based, got {spec}")
        return int(spec)
    return spec


def _rows(path: Path, delimiter: str, repairs: dict):
    """(line number, fields) of a TSV (no quoting, as GLUE) or CSV (quotes honoured) file; bad
    bytes and overlong words repaired and counted (text.decode_row)."""
    if delimiter == "\t":
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                yield lineno, T.decode_row(raw, repairs, first=lineno == 1).split("\t")
        return
    with open(path, "rb") as f:
        text = "\n".join(T.decode_row(raw, repairs, first=i == 0) for i, raw in enumerate(f))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    try:
        for fields in reader:
            yield start, fields
            start = reader.line_num + 1
    except csv.Error as e:
        raise PreprocessError(f"{path}:{reader.line_num}: {e}") from None


def delimiter_for(path: Path, delimiter: str) -> str:
    if delimiter != "auto":
        return {"tab": "\t", "comma": ","}.get(delimiter, delimiter)
    return "," if path.suffix.lower() == ".csv" else "\t"


def read_rows(path: Path, text_columns: Sequence[Column], label_column: Column, header: bool,
              delimiter: str, regression: Optional[tuple[float, float]], require_label: bool) -> SplitRows:
    """Texts (and labels) of one file, with every bad row reported by file and line."""
    if not path.is_file():
        raise PreprocessError(f"{path}: file not found")
    texts: list[tuple[str, ...]] = []
    lines: list[int] = []
    labels: Optional[list[str]] = []
    index: Optional[list[int]] = None
    label_index: Optional[int] = None
    expected = None
    repairs: dict = {}
    for lineno, fields in _rows(path, delimiter_for(path, delimiter), repairs):
        if not any(f.strip() for f in fields) and len(fields) <= 1:
            continue                                       # blank line: nothing to keep
        if index is None:
            names = [f.strip() for f in fields] if header else []

            def locate(col: Column, what: str, names: list[str] = names) -> Optional[int]:
                if isinstance(col, int):
                    return col - 1
                if not header:
                    raise PreprocessError(f"{path}: column {col!r} is a name: add --header (or give its number)")
                if col not in names:
                    return None if what == "label" else _missing(path, col, names)
                return names.index(col)

            index = [locate(c, "text") for c in text_columns]
            label_index = locate(label_column, "label")
            if len(set(index)) < len(index):                # a pair of each sentence with itself
                raise PreprocessError(f"{path}: --text-columns {' '.join(map(str, text_columns))} names column "
                                      f"{index[0] + 1} twice")
            if label_index in index:                        # the model would read its answer
                raise PreprocessError(f"{path}: the label column {label_column!r} is also a text column "
                                      f"(--text-columns {' '.join(map(str, text_columns))})")
            expected = len(fields)
            if label_index is not None and label_index >= expected:
                label_index = None                          # no label column: unlabeled (a test file)
            if max(index) >= expected:
                raise PreprocessError(f"{path}:{lineno}: {len(fields)} fields, but text column "
                                      f"{max(index) + 1} was asked for")
            if label_index is None:
                if require_label:
                    raise PreprocessError(f"{path}: no label column {label_column!r}"
                                          + (f" (columns: {', '.join(names)})" if header else ""))
                labels = None
            if header:
                continue
        if len(fields) != expected:
            raise PreprocessError(f"{path}:{lineno}: expected {expected} fields (as the first line), found {len(fields)}")
        texts.append(tuple(fields[i] for i in index))
        lines.append(lineno)
        if labels is not None:
            label = fields[label_index].strip()
            if not label:
                raise PreprocessError(f"{path}:{lineno}: empty label")
            if regression is not None:
                check_score(label, regression, f"{path}:{lineno}: score", " (--regression)")
            labels.append(label)
    if not texts:
        raise PreprocessError(f"{path}: no data rows" + (" (only a header line)" if header and index is not None else ""))
    return SplitRows(texts, labels, lines=lines, repairs=repairs)


# Label-column names that mark a first row as a header, whatever else the column holds.
HEADER_WORDS = {"label", "labels", "class", "classes", "category", "categories", "topic", "target", "y",
                "sentiment", "gold_label", "score", "rating", "tag", "intent"}


def looks_like_header(rows: SplitRows, regression: bool) -> Optional[str]:
    """Why the first row (read as data, no --header) looks like a header, or None. Signs: its label
    is a usual column name (label, class, topic, ...); or, for classes, it occurs once, in row 1,
    while the other rows share a few labels; or, for regression, it is the only non-number."""
    if not rows.labels:
        return None
    first, rest = rows.labels[0], rows.labels[1:]
    if first.strip().lower() in HEADER_WORDS:
        return f"its label {first!r} is a column name"
    if regression:
        def number(x: str) -> bool:
            try:
                float(x)
                return True
            except ValueError:
                return False
        if not number(first) and rest and all(number(x) for x in rest):
            return f"its score {first!r} is not a number, all the others are"
        return None
    if len(rest) >= 4 and first not in rest:
        distinct = set(rest)
        if len(distinct) <= max(2, len(rest) // 4):
            return (f"its label {first!r} occurs nowhere else, while the other {len(rest)} rows share "
                    f"{len(distinct)} labels")
    return None


def _missing(path: Path, col: str, names: list[str]):
    raise PreprocessError(f"{path}: no column {col!r} in the header (columns: {', '.join(names)})")


def run_task(train: Path, valid: Path, test: Optional[Path], text_columns: Sequence[str], label_column: str,
             bpe_dir: Path, destdir: Path, header: bool = False, delimiter: str = "auto",
             regression: Optional[tuple[float, float]] = None, workers: int = 1, cased: bool = False,
             show_progress: bool = True, force: bool = False, header_check: bool = True) -> dict:
    if not 1 <= len(text_columns) <= 2:
        raise PreprocessError(f"--text-columns takes one column (single sentences) or two (pairs), got {len(text_columns)}")
    if regression is not None and not regression[0] < regression[1]:
        raise PreprocessError(f"--regression LO HI needs LO < HI, got {regression[0]:g} {regression[1]:g}")
    columns = [parse_column(c) for c in text_columns]
    label = parse_column(label_column)
    bpe_dir, destdir = Path(bpe_dir), Path(destdir)
    codes_path, dict_path = bpe_dir / "bpe-code", bpe_dir / "dict.txt"
    for p in (codes_path, dict_path):
        if not p.is_file():
            raise PreprocessError(f"{p}: not found (--bpe-dir must hold the pretraining bpe-code and dict.txt)")
    files = {"train": Path(train), "valid": Path(valid), **({"test": Path(test)} if test else {})}
    regression_scores = regression
    if regression is not None and not header and header_check:
        regression_scores = None      # read the scores as words first: a header's word is then reported as such
    splits = {split: (path, read_rows(path, columns, label, header, delimiter, regression_scores,
                                      require_label=split != "test"))
              for split, path in files.items()}                   # validate everything before work
    if not header and header_check:
        for path, rows in splits.values():
            why = looks_like_header(rows, regression is not None)
            if why:
                raise PreprocessError(f"{path}:{rows.lines[0]}: the first row looks like a header ({why}): add "
                                      f"--header (columns may then be given by name), or --no-header-check if "
                                      f"it is data")
        if regression is not None:
            splits = {split: (path, read_rows(path, columns, label, header, delimiter, regression,
                                              require_label=split != "test")) for split, path in files.items()}
    label_dict = None
    if regression is None:
        label_dict = build_label_dictionary(splits["train"][1].labels)
        known = set(label_dict.symbols[label_dict.nspecial:])
        for path, rows in splits.values():
            for line, word in zip(rows.lines, rows.labels or ()):
                if word not in known:
                    raise PreprocessError(f"{path}:{line}: label {word!r} never occurs in the training file "
                                          f"{files['train']}, so there is no class for it")

    merges, dictionary = load_codes_and_dict(codes_path, dict_path)
    name = destdir.name[:-4] if destdir.name.endswith("-bin") else destdir.name
    with atomic_directory(destdir, force, [*files.values(), codes_path, dict_path]) as tmp:
        info = write_task(tmp, name, splits, len(columns), label_dict, regression, BPE(merges), dictionary,
                          dict_path, workers, cased, show_progress)
        info = {"task": name, **info, "text_columns": list(text_columns), "label_column": label_column,
                "cased": cased}
        (tmp / TASK_FILE).write_text(json.dumps(info, indent=2) + "\n")
    summary = ", ".join(f"{s} {v['rows']}" for s, v in info["splits"].items())
    kind = "regression" if regression else f"{info['num_classes']} classes ({', '.join(info['label_words'][:8])})"
    repaired = "".join(f"; {s}: {r}" for s, v in info["splits"].items()
                       if (r := T.describe_repairs(v.get("repairs", {}))))
    log.info(f"tupe-preprocess: {name}: {kind}; rows: {summary} -> {destdir}{repaired}")
    return info
