"""``tupe-convert``: original (fairseq) checkpoint <-> own format (config.json + safetensors),
and either of them -> a Hugging Face transformers folder.

    tupe-convert checkpoint.pt  out_dir/          # original -> own (dict.txt, bpe-code copied)
    tupe-convert out_dir/       checkpoint.pt     # own -> original layout (readable by the original code)
    tupe-convert checkpoint.pt  hf_dir/ --hf      # -> transformers (needs the hf extra; import tupe.hf)

With --hf a classification head becomes TupeForSequenceClassification's classifier (its label
words from labels.json beside the checkpoint, or --label-dict label/dict.txt); the masked-LM
head is kept too, so the folder serves AutoModelForMaskedLM and
AutoModelForSequenceClassification.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Optional

from ..checkpoint import (
    BPE_FILE,
    CONFIG_FILE,
    DICT_FILE,
    TEXT_FILE,
    CheckpointError,
    casing_of,
    fairseq_args,
    is_hf_folder,
    load_model,
    load_vocabulary,
    read_checkpoint,
    read_pretrained_config,
    resolve_checkpoint,
    save_fairseq,
    save_pretrained,
    write_casing,
)
from ..data.dictionary import Dictionary
from ..hub import INPUTS, LABELS_FILE, SCORE_RANGES, read_labels, unfit_label_words, write_labels
from ..logs import cli_logging
from . import HelpFormatter, refuse_inert

_PLAIN = (str, int, float, bool, type(None))


def _plain_args(args) -> dict:
    """The JSON-representable part of a checkpoint's args (kept for the way back)."""
    out = {}
    for k, v in vars(args or argparse.Namespace()).items():
        if isinstance(v, _PLAIN) or (isinstance(v, (list, tuple)) and all(isinstance(x, _PLAIN) for x in v)):
            out[k] = list(v) if isinstance(v, tuple) else v
    return out


def to_own(src: Path, dest: Path) -> None:
    ckpt = resolve_checkpoint(src)
    model = load_model(ckpt)
    save_pretrained(model, dest, extra={"fairseq_args": _plain_args(read_checkpoint(ckpt).get("args"))},
                    vocabulary=load_vocabulary(ckpt, model.cfg.vocab_size))
    labels = read_labels(ckpt, model)
    if labels:
        write_labels(dest, labels)


def check_replaceable_file(dest: Path) -> None:
    """An existing ``dest`` is replaced only when it is itself a weights-only checkpoint (an
    earlier conversion), as a model folder is: a training checkpoint (its optimizer state and
    progress would be lost) or any other file is a CheckpointError, nothing touched."""
    if not dest.is_file():
        return
    try:
        held = read_checkpoint(dest)
    except CheckpointError:
        held = None
    if held is None or held.get("last_optimizer_state") or held.get("optimizer_history"):
        what = "a training checkpoint (its optimizer state and progress would be lost)" if held else "not a checkpoint"
        raise CheckpointError(f"{dest} exists and is {what}: not replaced; choose another path")


def to_fairseq(src: Path, dest: Path, fp16: bool) -> None:
    check_replaceable_file(dest)
    model = load_model(src)
    base = None if is_hf_folder(src) else read_pretrained_config(src).get("fairseq_args")
    save_fairseq(model, dest, args=fairseq_args(model.cfg, base), fp16=fp16)
    # what makes the file usable by tupe.from_pretrained and tupe-predict, beside it (where absent;
    # one that differs is kept and named)
    beside, differing = dest.parent, []
    for name in (DICT_FILE, BPE_FILE):
        if (src / name).is_file():
            if not (beside / name).exists():
                shutil.copyfile(src / name, beside / name)
            elif (beside / name).read_bytes() != (src / name).read_bytes():
                differing.append(name)
    labels = read_labels(src, model)
    if labels:
        if not (beside / LABELS_FILE).exists():
            write_labels(beside, labels)
        elif json.loads((beside / LABELS_FILE).read_text()) != labels:
            differing.append(LABELS_FILE)
    cased = casing_of(src)
    if cased is not None:
        if not (beside / TEXT_FILE).exists():
            write_casing(beside, cased)
        elif casing_of(beside) != cased:
            differing.append(TEXT_FILE)
    for name in differing:
        print(f"tupe-convert: warning: {beside / name} exists and differs from {src}'s; kept as it is, so "
              f"{dest.name} is read with it (convert into a folder of its own to keep the model's)", file=sys.stderr)


def label_words_for(labels: dict, head: str, label_dict: Optional[Path], k: int) -> Optional[list[str]]:
    """Class names of ``head``: a GLUE label dictionary if given, else what is known beside the
    checkpoint (``labels``: ``tupe.hub.read_labels``)."""
    if label_dict is not None:
        words = Dictionary.load(label_dict).words()[:k]
        if len(words) != k:
            raise CheckpointError(f"{label_dict}: {len(words)} labels for a head of {k} classes")
        return words
    words = labels.get(head)
    why = unfit_label_words(words, head, k)
    if why:                                   # another model's labels.json left beside it
        print(f"tupe-convert: warning: {why}: not used (LABEL_0 ...; --label-dict gives them)", file=sys.stderr)
        return None
    return list(words) if words else None


def to_hf(src: Path, dest: Path, head: Optional[str], label_dict: Optional[Path], cased: Optional[bool]) -> None:
    try:
        from ..hf import export_hf  # optional dependency (extra 'hf': transformers)
    except ImportError as e:
        raise CheckpointError(str(e)) from None
    model = load_model(src)
    sizes = model.head_sizes
    chosen = head or (model.DEFAULT_HEAD if model.DEFAULT_HEAD in sizes else (next(iter(sizes)) if len(sizes) == 1 else None))
    labels = read_labels(src, model)               # label words, inputs (1 or 2), a regression head's range
    words = inputs = score_range = None
    if chosen in sizes:
        words = label_words_for(labels, chosen, label_dict, sizes[chosen])
        inputs = labels.get(INPUTS, {}).get(chosen)
        score_range = labels.get(SCORE_RANGES, {}).get(chosen)
    export_hf(model, dest, head=chosen, label_words=words, cased=cased,
              vocabulary=load_vocabulary(src, model.cfg.vocab_size), inputs=inputs if inputs in (1, 2) else None,
              score_range=score_range)


def main(argv=None) -> int:
    cli_logging()
    p = argparse.ArgumentParser(prog="tupe-convert", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("src", type=Path, help="checkpoint file / training dir, or an own-format dir")
    p.add_argument("dest", type=Path, help="output directory (own format) or .pt file (original)")
    p.add_argument("--to", choices=("auto", "tupe", "fairseq", "hf"), default="auto",
                   help="target format (auto: the other one)")
    p.add_argument("--fp16", action="store_true", help="store weights in float16 (original format)")
    p.add_argument("--hf", action="store_true", help="write a Hugging Face transformers folder (same as --to hf)")
    p.add_argument("--head", help="--hf: the classification head to export as the sequence classifier "
                                  "(default: sentence_classification_head, or the only head)")
    p.add_argument("--label-dict", type=Path, help="--hf: the task's label/dict.txt (class names)")
    p.add_argument("--cased", action="store_true", help="--hf: the tokenizer keeps case (default: as recorded "
                   "beside the checkpoint: training runs on --cased data write text.json; else lower-case)")
    args = p.parse_args(argv)
    target = "hf" if args.hf else args.to
    if target == "auto":
        target = "fairseq" if (args.src / CONFIG_FILE).is_file() else "tupe"
    hf = f"it is for the transformers folder (--hf); this conversion writes the {target} format"
    refuse_inert(p, argv, [("fp16", target == "fairseq", f"float16 storage is for --to fairseq; "
                                                         f"this conversion writes the {target} format"),
                           ("head", target == "hf", hf), ("label_dict", target == "hf", hf), ("cased", target == "hf", hf)])
    try:
        if target == "hf":
            to_hf(args.src, args.dest, args.head, args.label_dict, True if args.cased else None)
        elif target == "tupe":
            to_own(args.src, args.dest)
        else:
            if not (args.src / CONFIG_FILE).is_file():
                raise CheckpointError(f"{args.src}: no {CONFIG_FILE}; --to fairseq needs an own-format or transformers directory")
            to_fairseq(args.src, args.dest, args.fp16)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"tupe-convert: error: {e}", file=sys.stderr)
        return 1
    print(f"tupe-convert: wrote {args.dest} ({target} format)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
