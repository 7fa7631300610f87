"""Finetune an exported TUPE model on a TSV classification task with transformers.Trainer.

    tupe-convert checkpoints/tupe-r hf/tupe-r --hf           # once: a transformers folder
    python examples/hf_finetune.py --model hf/tupe-r --train glue_data/SST-2/train.tsv \
        --valid glue_data/SST-2/dev.tsv --text-columns sentence --label-column label --out runs/sst2

Rows longer than the model's positions: --max-length N --position-init copy (or random) resizes a
TUPE or BERT-A model's positional tables to N first (resize_position_embeddings, docs/study.md).
A pair task names two text columns (e.g. --text-columns sentence1 sentence2). The files have a
header line; labels are read as words and numbered as tupe-preprocess numbers them (most frequent
in --train first, ties alphabetical: tupe.preprocess.glue.label_words), so class ids agree.
Copy this file and change what you need: it is plain transformers code.
"""

import argparse
import csv
import json
import sys

import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

import tupe.hf  # noqa: F401  (registers TUPE with the Auto classes)
from tupe.model.positional import POSITION_INITS
from tupe.preprocess.glue import label_words


def read_tsv(path, text_columns, label_column):
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        rows = list(reader)
    for name in [*text_columns, label_column]:
        if rows and name not in rows[0]:
            sys.exit(f"{path}: no column {name!r} (columns: {', '.join(rows[0])})")
    if not rows:
        sys.exit(f"{path}: no rows")
    for line, r in enumerate(rows, 2):   # a short row reads None, a long one a list under None
        if None in r or None in r.values():
            sys.exit(f"{path}:{line}: expected {len(reader.fieldnames)} tab-separated fields, as the header")
    return [[r[c] for c in text_columns] for r in rows], [r[label_column] for r in rows]


class TextDataset(torch.utils.data.Dataset):
    def __init__(self, path, tokenizer, texts, labels, label2id, max_length):
        self.items = []
        for line, (text, label) in enumerate(zip(texts, labels), 2):
            if label not in label2id:
                sys.exit(f"{path}:{line}: label {label!r} does not occur in the training file")
            enc = tokenizer(*text, truncation=True, max_length=max_length)
            self.items.append({**enc, "labels": label2id[label]})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a transformers folder (tupe-convert ... --hf)")
    p.add_argument("--train", required=True)
    p.add_argument("--valid", required=True)
    p.add_argument("--text-columns", nargs="+", required=True, help="one column, or two for a pair task")
    p.add_argument("--label-column", required=True)
    p.add_argument("--out", required=True, help="where the finetuned model and tokenizer are saved")
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=None,
                   help="cut rows to this many tokens (default and most: the model's max_positions)")
    p.add_argument("--position-init", choices=POSITION_INITS, default=None,
                   help="with a --max-length past the model's positions: resize its positional tables to it first, "
                        "rows past its length copying the trained ones or drawn as at initialisation")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)

    train_x, train_y = read_tsv(args.train, args.text_columns, args.label_column)
    valid_x, valid_y = read_tsv(args.valid, args.text_columns, args.label_column)
    labels = label_words(train_y)
    label2id = {w: i for i, w in enumerate(labels)}

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    longest = tokenizer.model_max_length           # the model's max_positions (its positional tables)
    if args.max_length is not None and args.max_length > longest and args.position_init is None:
        sys.exit(f"--max-length {args.max_length}: the model covers {longest} positions (add --position-init copy "
                 f"or random to resize its positional tables to {args.max_length})")
    if args.position_init is not None and (args.max_length is None or args.max_length <= longest):
        sys.exit(f"--position-init: it resizes the model to a --max-length past its {longest} positions")
    max_length = args.max_length or longest
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)
    if args.position_init is not None:
        try:                                       # before the optimizer exists: the tables are new parameters
            model.resize_position_embeddings(max_length, args.position_init)
        except ValueError as e:                    # RoPE, ALiBi, NoPE: no table
            sys.exit(f"--position-init: {e}")
        tokenizer.model_max_length = max_length   # saved with the model below
    train = TextDataset(args.train, tokenizer, train_x, train_y, label2id, max_length)
    valid = TextDataset(args.valid, tokenizer, valid_x, valid_y, label2id, max_length)

    def accuracy(pred):
        return {"accuracy": float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())}

    training_args = TrainingArguments(
        output_dir=args.out, num_train_epochs=args.epochs, learning_rate=args.lr, warmup_steps=0.06,
        weight_decay=0.01, per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=64,
        eval_strategy="epoch", save_strategy="no", logging_steps=10, seed=args.seed, report_to="none")
    trainer = Trainer(model=model, args=training_args, train_dataset=train, eval_dataset=valid,
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=accuracy)
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    trainer.save_model(args.out)
    tokenizer.save_pretrained(args.out)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    summary = {"labels": labels, "accuracy_before": before["eval_accuracy"], "accuracy": after["eval_accuracy"],
               "majority": max(valid_y.count(w) for w in labels) / len(valid_y),
               "first_loss": losses[0], "last_loss": losses[-1]}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
