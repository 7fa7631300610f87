"""``tupe-validate DATA --path CHECKPOINT``: masked-LM loss and perplexity of a checkpoint on
binarized splits, without training (fairseq's validate.py); for an ELECTRA checkpoint its
objective, generator and discriminator losses, discriminator accuracy and replaced fraction."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, load_model
from ..cli import HelpFormatter
from ..logs import cli_logging
from ..model.electra import ElectraModel
from .options import add_masking_args
from .tasks import ElectraTask, MaskedLMTask, TaskError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tupe-validate", formatter_class=HelpFormatter, description=__doc__, allow_abbrev=False)
    p.add_argument("data", type=Path, help="binarized pretraining data directory (tupe-preprocess pretrain output)")
    p.add_argument("--path", required=True, help="checkpoint file, training dir or own-format dir")
    p.add_argument("--valid-subset", default="valid", help="comma-separated splits to evaluate")
    p.add_argument("--tokens-per-sample", type=int, default=None, help="default: the model's max_positions")
    p.add_argument("--sample-break-mode", default="complete", choices=["none", "complete", "complete_doc", "eos"],
                   help="how text is cut into blocks (as train.py)")
    p.add_argument("--max-sentences", "--batch-size", dest="max_sentences", type=int, default=16, help="batch size in sequences")
    p.add_argument("--max-tokens", type=int, default=None, help="batch size cap in tokens")
    add_masking_args(p)
    p.add_argument("--seed", type=int, default=1, help="seed of the masks (the same seed gives the same masks)")
    p.add_argument("--skip-invalid-size-inputs-valid-test", action="store_true",
                   help="skip samples longer than the model's max_positions (else an error)")
    p.add_argument("--cpu", action="store_true", help="run on the CPU even if CUDA is available")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    return p


def main(argv=None) -> int:
    cli_logging()
    args = build_parser().parse_args(argv)
    try:
        model = load_model(args.path, whole_electra=True)
        electra = isinstance(model, ElectraModel)
        # The trainer's own task: the same blocks, masks (epoch 0), batching and loss.
        task = (ElectraTask if electra else MaskedLMTask)(argparse.Namespace(
            data=str(args.data), tokens_per_sample=args.tokens_per_sample or model.cfg.max_positions,
            sample_break_mode=args.sample_break_mode, mask_prob=args.mask_prob,
            leave_unmasked_prob=args.leave_unmasked_prob, random_token_prob=args.random_token_prob,
            seed=args.seed, mask_whole_words=False, max_tokens=args.max_tokens, max_sentences=args.max_sentences,
            max_tokens_valid=None, max_sentences_valid=None, required_batch_size_multiple=1))
        if len(task.dictionary) != model.cfg.vocab_size:
            raise TaskError(f"{args.data / 'dict.txt'} gives {len(task.dictionary)} symbols with <mask>, "
                            f"the model has {model.cfg.vocab_size}: wrong data for this checkpoint")
        device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
        model.to(device)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()
        for subset in [s for s in args.valid_subset.split(",") if s]:
            dataset = task.dataset(subset, 0)
            batches, skipped = task.batches(dataset, 0, model.cfg.max_positions, train=False)
            if skipped and not args.skip_invalid_size_inputs_valid_test:
                raise TaskError(f"{subset}: {skipped} samples are longer than the model's max_positions "
                                f"{model.cfg.max_positions}; pass --skip-invalid-size-inputs-valid-test")
            loss_sum, count, outputs = 0.0, 0, []
            loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, collate_fn=task.collater())
            with torch.no_grad():
                for batch in loader:
                    loss, n, out = task.loss(model, batch, device, autocast)
                    loss_sum += loss.item()
                    count += n
                    if out is not None:
                        outputs.append(out)
            stats = task.metrics(loss_sum, count, outputs)   # ELECTRA: + gen_loss, disc_loss, disc_acc, replaced
            print(json.dumps({"subset": subset, **{k: round(v, 4) for k, v in stats.items()},
                              "masked_tokens": count, "samples": len(dataset) - skipped, "skipped": skipped}))
    except (TaskError, CheckpointError, FileNotFoundError) as e:
        print(f"tupe-validate: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
