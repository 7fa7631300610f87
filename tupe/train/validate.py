"""``tupe-validate DATA --path CHECKPOINT``: masked-LM loss and perplexity of a checkpoint on
binarized splits, without training (fairseq's validate.py)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from functools import partial
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, load_model
from ..data.dictionary import MASK
from ..data.indexed_dataset import MMapIndexedDataset, exists as dataset_exists
from .data import Masker, MaskedLMDataset, TokenBlockDataset, collate, epoch_batches
from .options import add_masking_args
from .tasks import TaskError as TrainingError, load_dictionary, masked_lm_loss


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tupe-validate", description=__doc__, allow_abbrev=False)
    p.add_argument("data", type=Path)
    p.add_argument("--path", required=True, help="checkpoint file, training dir or own-format dir")
    p.add_argument("--valid-subset", default="valid")
    p.add_argument("--tokens-per-sample", type=int, default=None, help="default: the model's max_positions")
    p.add_argument("--sample-break-mode", default="complete", choices=["none", "complete", "complete_doc", "eos"])
    p.add_argument("--max-sentences", "--batch-size", dest="max_sentences", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=None)
    add_masking_args(p)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--skip-invalid-size-inputs-valid-test", action="store_true")
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--bf16", action="store_true")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        model = load_model(args.path)
        dictionary = load_dictionary(args.data / "dict.txt")
        if len(dictionary) != model.cfg.vocab_size:
            raise TrainingError(f"{args.data / 'dict.txt'} gives {len(dictionary)} symbols with <mask>, "
                                f"the model has {model.cfg.vocab_size}: wrong data for this checkpoint")
        device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
        model.to(device)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()
        tps = args.tokens_per_sample or model.cfg.max_positions
        masker = Masker(dictionary.index(MASK), len(dictionary), dictionary.pad(), dictionary.nspecial,
                        args.mask_prob, args.leave_unmasked_prob, args.random_token_prob, args.seed)
        for subset in [s for s in args.valid_subset.split(",") if s]:
            prefix = args.data / subset
            if not dataset_exists(prefix):
                raise TrainingError(f"{prefix}.bin/.idx not found")
            dataset = MaskedLMDataset(TokenBlockDataset(MMapIndexedDataset(prefix), tps, args.sample_break_mode,
                                                        dictionary.bos()), masker, epoch=0)
            batches, skipped = epoch_batches(dataset, args.seed, 0, args.max_tokens, args.max_sentences, 1,
                                             model.cfg.max_positions, shuffle=False)
            if skipped and not args.skip_invalid_size_inputs_valid_test:
                raise TrainingError(f"{subset}: {skipped} samples are longer than the model's max_positions "
                                    f"{model.cfg.max_positions}; pass --skip-invalid-size-inputs-valid-test")
            loss_sum, count = 0.0, 0
            loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, collate_fn=partial(collate, pad_idx=1))
            with torch.no_grad():
                for batch in loader:
                    loss, n = masked_lm_loss(model, batch, device, dictionary.pad(), autocast)
                    loss_sum += loss.item()
                    count += n
            bits = loss_sum / max(count, 1) / math.log(2)
            print(json.dumps({"subset": subset, "loss": round(bits, 4), "ppl": round(2 ** bits, 4),
                              "masked_tokens": count, "samples": len(dataset) - skipped, "skipped": skipped}))
    except (TrainingError, CheckpointError, FileNotFoundError) as e:
        print(f"tupe-validate: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
