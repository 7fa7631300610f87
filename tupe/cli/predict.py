"""``tupe-predict``: predictions of a finetuned checkpoint.

(a) GLUE test-set submission files from the binarized test split(s):

    tupe-predict --checkpoint runs/glue/RTE/best --glue-task RTE --data data-bin/glue/RTE-bin --out submission/

writes ``submission/RTE.tsv`` (``index<TAB>prediction``; MNLI: ``MNLI-m.tsv`` and ``MNLI-mm.tsv``).

(b) Raw sentences (or tab-separated pairs), one per line, from a file or stdin, with the
same cleaning, Moses tokenisation and BPE as the training data; prints label and probability:

    echo -e "a sentence\\tits pair" | tupe-predict --checkpoint runs/glue/RTE/best
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import torch

from ..checkpoint import CheckpointError, check_data_dictionary, load_model
from ..data.dictionary import Dictionary
from ..data.indexed_dataset import MMapIndexedDataset
from ..data.indexed_dataset import exists as dataset_exists
from ..hub import INPUTS, SCORE_RANGES, HubError, TupeHub, classify, from_pretrained, read_labels, task_score_range
from ..logs import cli_logging, listed
from ..model import TupeModel
from ..preprocess.glue import TASKS as GLUE_TASKS
from ..preprocess.text import decode_row, describe_repairs
from . import HelpFormatter, at_least, refuse_inert, write_text_whole

logger = logging.getLogger(__name__)

SUBMISSION_NAMES = {"MNLI": {"test": "MNLI-m", "test1": "MNLI-mm"}}
# GLUE tasks whose server wants 0/1 (the others, and your own tasks, get the label words)
NUMERIC_LABELS = {"CoLA", "SST-2", "MRPC", "QQP", "WNLI"}


def glue_test_rows(data: Path, split: str, n_inputs: int, max_positions: int) -> tuple[list[torch.Tensor], list[int]]:
    """``<s> input0 </s> [</s> input1 </s>]`` rows of a binarized test split, cut to ``max_positions``
    as finetuning's ``--truncate-sequence`` cuts, and the indices of the rows that were cut."""
    parts = []
    for k in range(n_inputs):
        prefix = data / f"input{k}" / split
        if not dataset_exists(prefix):
            raise HubError(f"{prefix}.bin/.idx not found (a pair task needs input0 and input1)")
        parts.append(MMapIndexedDataset(prefix))
    if n_inputs == 2 and len(parts[0]) != len(parts[1]):
        raise HubError(f"{data}: input0/{split} and input1/{split} differ in length")
    rows, cut = [], []
    for i in range(len(parts[0])):
        ids = [torch.tensor([0]), parts[0][i]]
        if n_inputs == 2:
            ids += [torch.tensor([2]), parts[1][i]]
        row = torch.cat(ids)
        if len(row) > max_positions:
            cut.append(i)
        rows.append(row[:max_positions])
    if not rows:
        raise HubError(f"{data}/input0/{split}: empty split")
    return rows, cut


def check_test_data(head: str, n_classes: int, n_inputs: int, label_dict: Optional[Dictionary], data: Path,
                    labels: dict) -> None:
    """The test data fits the head as it was finetuned (what the run's labels.json records; a
    checkpoint without it is not checked): one sentence or a pair per row, and the same label
    words in the same order (another label/dict.txt would write other words for the same class)."""
    expected = labels.get(INPUTS, {}).get(head)
    if expected in (1, 2) and expected != n_inputs:
        kinds = {1: "one sentence per row (input0)", 2: "sentence pairs (input0 and input1)"}
        raise HubError(f"{data}: the test data has {kinds[n_inputs]}, but head {head!r} was finetuned on "
                       f"{kinds[expected]}: binarize the test split as the training data was")
    if label_dict is None:
        return
    words = label_dict.words()
    if len(words) < n_classes:
        raise HubError(f"{data / 'label' / 'dict.txt'}: {len(words)} label(s) {words}, but head {head!r} has "
                       f"{n_classes} classes")
    trained = labels.get(head)
    if trained and list(trained) != words[:n_classes]:
        raise HubError(f"{data / 'label' / 'dict.txt'}: labels {words[:n_classes]}, but head {head!r} was finetuned "
                       f"with {list(trained)} (class i is the i-th word): use the TASK-bin folder the model was "
                       f"finetuned on, or binarize with the same labels")


def write_submission(model: TupeModel, head: str, task: str, data: Path, out_dir: Path,
                     batch_size: Optional[int] = 32, max_tokens: Optional[int] = None,
                     labels: Optional[dict] = None) -> list[Path]:
    """The submission file(s) of ``task`` from ``data``'s test split(s). ``labels``: what the run
    recorded of its heads (``tupe.hub.read_labels``): the data is checked against it
    (:func:`check_test_data`) and a regression head's predictions are mapped back to the score
    range it was finetuned with (else the data's own)."""
    if head not in model.classification_heads:
        raise HubError(f"the checkpoint has no classification head {head!r} (it has "
                       f"{sorted(model.classification_heads) or 'none'})")
    named = data.name[: -len("-bin")] if data.name.endswith("-bin") else None
    if task in GLUE_TASKS and named in GLUE_TASKS and named != task:   # its predictions under another task's name
        raise HubError(f"--glue-task {task} with {data}, the binarized {named}: the submission file would "
                       f"hold {named}'s predictions under {task}'s name")
    labels = labels or {}
    n_classes = model.head_sizes[head]
    label_dict = Dictionary.load(data / "label" / "dict.txt") if n_classes > 1 else None
    n_inputs = 2 if (data / "input1").is_dir() else 1
    check_test_data(head, n_classes, n_inputs, label_dict, data, labels)
    lo, hi = labels.get(SCORE_RANGES, {}).get(head) or task_score_range(data)
    splits = ["test", "test1"] if task == "MNLI" else ["test"]
    tests = {split: glue_test_rows(data, split, n_inputs, model.cfg.max_positions) for split in splits}
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, (rows, cut) in tests.items():
        if cut:
            logger.warning("%s/input0/%s: %d of %d row(s) longer than the model's %d positions, cut to them as "
                           "finetuning's --truncate-sequence cuts (indices %s)", data, split, len(cut), len(rows),
                           model.cfg.max_positions, listed(cut))
        logits = classify(model, head, rows, batch_size, max_tokens)
        path = out_dir / f"{SUBMISSION_NAMES.get(task, {}).get(split, task)}.tsv"
        lines = ["index\tprediction\n"]
        for i, row in enumerate(logits):
            if label_dict is None:   # back to the task's range (STS-B: 0..5), clipped to it
                value = f"{min(max(lo + row.item() * (hi - lo), lo), hi):.3f}"
            else:
                word = label_dict[int(row.argmax()) + label_dict.nspecial]
                value = str(int(word)) if task in NUMERIC_LABELS else word
            lines.append(f"{i}\t{value}\n")
        write_text_whole(path, "".join(lines))   # a submission file is whole or absent, never cut short
        written.append(path)
    return written


# Input lines read, validated and encoded before their batches run: a small first chunk (its
# results come early), then large ones (a length sort over more rows leaves less padding: on 2000
# short rows of varied length, chunks of 256 computed 26% more positions than there are tokens,
# 128 + 2048 computes 6% more).
FIRST_CHUNK_LINES = 128
CHUNK_LINES = 2048


def chunk_lines(done: int) -> int:
    """The size of the next chunk, after ``done`` lines were run."""
    return CHUNK_LINES if done else FIRST_CHUNK_LINES


def predict_raw(hub: TupeHub, head: str, lines, out=None, source: str = "stdin", batch_size: Optional[int] = 32,
                max_tokens: Optional[int] = None) -> int:
    """One ``label<TAB>probability`` line per non-blank input line (bytes or str), in input order.

    The input is read in chunks (FIRST_CHUNK_LINES lines, then CHUNK_LINES): each chunk is
    repaired as the preprocessing does (BOM, CRLF, invalid UTF-8 and NUL bytes, overlong words),
    checked (fields, one sentence or a pair as the head was finetuned) and encoded, then run in
    length-sorted batches of at most ``batch_size`` rows (and ``max_tokens`` padded positions),
    cut where padding wastes least, each padded only to its longest row (``TupeHub.predict_rows``,
    ``tupe.hub.length_batches``); its results are written before the next chunk is read (bounded
    memory, early output). Blank lines are skipped; repairs, skips and rows longer than the model's
    ``max_positions`` (cut to them, as finetuning's ``--truncate-sequence``) are counted and
    reported on stderr.
    ``batch_size=1``: one forward per line."""
    out = out or sys.stdout
    n, blank, cut, repairs, pending = 0, [], [], {}, []
    if hub.model.head_sizes.get(head) == 1 and head not in hub.labels.get(SCORE_RANGES, {}):
        print(f"tupe-predict: note: no score range is recorded for regression head {head!r} (a run's labels.json "
              f"has it): values are mapped from [0, 1] to STS-B's 0..5", file=sys.stderr)

    def flush() -> None:
        nonlocal n
        if pending:
            results = hub.labels_of(head, hub.predict_rows(head, pending, batch_size, max_tokens))
            out.write("".join(f"{label}\t{prob:.4f}\n" if prob == prob else f"{label}\n" for label, prob in results))
            out.flush()
            n += len(pending)
            pending.clear()

    for lineno, line in enumerate(lines, 1):
        line = decode_row(line if isinstance(line, bytes) else line.encode("utf-8", "surrogateescape"),
                          repairs, first=lineno == 1)
        if not line.strip():
            blank.append(lineno)
            continue
        fields = line.split("\t")
        if len(fields) > 2:
            raise HubError(f"{source}:{lineno}: expected a sentence or a tab-separated pair, got {len(fields)} fields")
        hub.check_inputs(head, len(fields) == 2, f"{source}:{lineno}: ")
        if len(fields) == 2 and not (fields[0].strip() and fields[1].strip()):
            raise HubError(f"{source}:{lineno}: a sentence pair with an empty {'first' if not fields[0].strip() else 'second'} "
                           f"sentence (sentence<TAB>pair, both non-empty)")
        row, was_cut = hub.encode_row(fields[0], fields[1] if len(fields) == 2 else None)
        pending.append(row)
        if was_cut:
            cut.append(lineno)
        if len(pending) >= chunk_lines(n):
            flush()
    flush()
    if blank:
        print(f"tupe-predict: {source}: skipped {len(blank)} blank line(s) ({listed(blank)}); the output has one line "
              f"per non-blank input line", file=sys.stderr)
    if cut:
        print(f"tupe-predict: {source}: {len(cut)} line(s) longer than the model's {hub.model.cfg.max_positions} "
              f"positions, cut to them as finetuning's --truncate-sequence cuts ({listed(cut)})", file=sys.stderr)
    if describe_repairs(repairs):
        print(f"tupe-predict: {source}: {describe_repairs(repairs)}", file=sys.stderr)
    return n


def main(argv=None) -> int:
    cli_logging()
    p = argparse.ArgumentParser(prog="tupe-predict", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--checkpoint", required=True, help="finetuned checkpoint file or directory")
    p.add_argument("--head", default=TupeModel.DEFAULT_HEAD, help="the classification head to predict with")
    p.add_argument("--glue-task", help="write the GLUE submission file(s) for this task (or predictions for "
                                       "the test split of your own task: any name, label words written)")
    p.add_argument("--data", type=Path, help="the task's binarized folder (TASK-bin) for --glue-task")
    p.add_argument("--out", type=Path, default=Path("."), help="folder for the submission files")
    p.add_argument("--input", type=Path, help="raw sentences (TSV: sentence[TAB]pair); default stdin")
    p.add_argument("--batch-size", type=at_least(1), default=None, help="at most this many rows per forward "
                   "(default 32, or no limit with --max-tokens); rows are sorted by length and each batch padded to "
                   "its longest row (1: one forward per line)")
    p.add_argument("--max-tokens", type=at_least(1), default=None, help="at most this many token positions per "
                   "forward, padding included (a longer row runs alone); short rows then share larger batches")
    p.add_argument("--cpu", action="store_true", help="run on the CPU even if CUDA is available")
    args = p.parse_args(argv)
    glue = bool(args.glue_task)
    refuse_inert(p, argv, [("input", not glue, "--glue-task predicts the test split of --data"),
                           ("data", glue, "it is --glue-task's binarized task folder"),
                           ("out", glue, "predictions on raw text go to stdout")])
    if args.batch_size is None and args.max_tokens is None:
        args.batch_size = 32
    if args.input is not None and not args.input.is_file():     # before the model is loaded
        print(f"tupe-predict: error: --input {args.input}: no such file", file=sys.stderr)
        return 1
    try:
        if args.glue_task:
            if args.data is None:
                p.error("--glue-task needs --data (the TASK-bin folder)")
            model = load_model(args.checkpoint)
            if (args.data / "input0" / "dict.txt").is_file():
                check_data_dictionary(args.checkpoint, Dictionary.load(args.data / "input0" / "dict.txt"), args.data)
            if torch.cuda.is_available() and not args.cpu:
                model.cuda()
            for path in write_submission(model, args.head, args.glue_task, args.data, args.out, args.batch_size,
                                         args.max_tokens, labels=read_labels(args.checkpoint, model)):
                print(f"tupe-predict: wrote {path}", file=sys.stderr)
        else:
            hub = from_pretrained(args.checkpoint)
            if torch.cuda.is_available() and not args.cpu:
                hub.cuda()
            heads = sorted(hub.model.classification_heads)
            if not heads:
                raise HubError(f"{args.checkpoint} has no classifier: it is a pretraining (masked-LM) checkpoint. "
                               f"Finetune one on labelled data first: tupe-preprocess task ..., then train.py "
                               f"TASK-bin --task sentence_prediction --num-classes K --restore-file {args.checkpoint} "
                               f"... (docs/finetuning.md); for masked-LM use, tupe.from_pretrained(...).fill_mask")
            if args.head not in heads:
                raise HubError(f"the checkpoint has no classification head {args.head!r} (it has {heads}): "
                               f"choose one with --head")
            if args.input:
                with open(args.input, "rb") as src:
                    n = predict_raw(hub, args.head, src, source=str(args.input), batch_size=args.batch_size,
                                    max_tokens=args.max_tokens)
            else:
                n = predict_raw(hub, args.head, getattr(sys.stdin, "buffer", sys.stdin), batch_size=args.batch_size,
                                max_tokens=args.max_tokens)
            if n == 0:
                raise HubError(f"{args.input or 'stdin'}: no sentences to predict")
    except (HubError, CheckpointError, FileNotFoundError) as e:
        print(f"tupe-predict: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:   # the reader stopped (`| head`): stop quietly, as a shell tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error at exit's flush
        return 128 + 13   # SIGPIPE's code
    except OSError as e:   # a full disk, a read-only --out: said, not a traceback
        print(f"tupe-predict: error: {e.filename or 'output'}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
