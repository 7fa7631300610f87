"""``tupe-validate DATA --path CHECKPOINT``: masked-LM loss and perplexity of a checkpoint on
binarized splits, without training (fairseq's validate.py); for an ELECTRA checkpoint its
objective, generator and discriminator losses, discriminator accuracy and replaced fraction.
``--tokens-per-sample`` evaluates at another block length (past the trained length: with
``--max-positions`` for TUPE and BERT-A, ``--rope-scaling`` for RoPE), ``--shuffle-order`` with the
word order destroyed (``train/evaluate.py``).

As fairseq's validate.py, the evaluation is set up as the run that saved the checkpoint set up
its validation: block length, sample break mode, masking and seed (and so the same masks),
batch size, from the checkpoint's saved arguments; a flag given overrides its value. So the
default reproduces the run's own validation figures. Own-format and transformers folders keep
no run arguments: the original defaults then (blocks of ``max_positions``, seed 1, ...)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, check_data_dictionary, load_model_and_run_args
from ..cli import HelpFormatter, at_least, refuse_inert
from ..config import ROPE_SCALINGS
from ..logs import cli_logging
from ..model.lengths import resize_positions
from ..model.positional import POSITION_INITS
from .evaluate import evaluate, make_task, with_rope_scaling
from .options import MASKING_DEFAULTS, add_masking_args, masking_shares_error
from .tasks import TaskError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tupe-validate", formatter_class=HelpFormatter, description=__doc__, allow_abbrev=False)
    p.add_argument("data", type=Path, help="binarized pretraining data directory (tupe-preprocess pretrain output)")
    p.add_argument("--path", required=True, help="checkpoint file, training dir or own-format dir")
    p.add_argument("--valid-subset", default="valid", help="comma-separated splits to evaluate")
    p.add_argument("--tokens-per-sample", type=at_least(2), default=None,
                   help="block length (default: the checkpoint run's, else the model's max_positions); longer "
                        "than the positional tables cover is an error, schemes without tables (RoPE, ALiBi, NoPE) "
                        "take any length")
    p.add_argument("--sample-break-mode", default=None, choices=["none", "complete", "complete_doc", "eos"],
                   help="how text is cut into blocks, as train.py (default: the checkpoint run's, else complete)")
    p.add_argument("--max-sentences", "--batch-size", dest="max_sentences", type=at_least(1), default=None,
                   help="batch size in sequences (default: the checkpoint run's validation batch size, else 16; "
                        "ELECTRA's sampling is seeded per batch, so its figures depend on it)")
    p.add_argument("--max-tokens", type=at_least(1), default=None,
                   help="batch size cap in tokens (default: the checkpoint run's validation cap, else none)")
    add_masking_args(p, from_run=True)
    p.add_argument("--mask-whole-words", action=argparse.BooleanOptionalAction, default=None,
                   help="mask whole words (default: as the checkpoint run, else off)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the masks: the same seed gives the same masks (default: the checkpoint run's, else 1)")
    p.add_argument("--skip-invalid-size-inputs-valid-test", action="store_true",
                   help="skip samples longer than the block (--tokens-per-sample) or max_positions (else an error)")
    p.add_argument("--rope-scaling", default=None, choices=list(ROPE_SCALINGS),
                   help="RoPE models: evaluate with this frequency scaling (default: the model's own)")
    p.add_argument("--rope-scaling-factor", type=at_least(1.0, float), default=None,
                   help="its factor (default: block length / max_positions, at least 1)")
    p.add_argument("--max-positions", type=at_least(2), default=None,
                   help="TUPE and BERT-A models: resize the positional tables to this many positions first (to "
                        "evaluate past the trained length; outputs within it are unchanged; tupe/model/lengths.py); "
                        "--tokens-per-sample defaults to it")
    p.add_argument("--position-init", choices=list(POSITION_INITS), default="copy",
                   help="--max-positions' rows past the trained length: copy (repeat the trained rows) or random "
                        "(drawn as at initialisation, seeded by --seed)")
    p.add_argument("--shuffle-order", action="store_true",
                   help="word-order probe: permute each block's unpredicted tokens (same masks and seed)")
    p.add_argument("--cpu", action="store_true", help="run on the CPU even if CUDA is available")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    return p


def pretraining_run(run: dict) -> bool:
    """Whether the run's arguments describe a masked-LM or ELECTRA run: the runs whose validation
    this command reproduces (an original checkpoint without a task is a masked-LM one)."""
    return bool(run) and run.get("task", "masked_lm") in ("masked_lm", "electra")


# what an evaluation takes from the run that saved the checkpoint, and where it keeps none
RUN_DEFAULTS = {"tokens_per_sample": None, "sample_break_mode": "complete", "seed": 1, "max_sentences": 16,
                "max_tokens": None, "mask_whole_words": False, "required_batch_size_multiple": 1, **MASKING_DEFAULTS}


def evaluation_settings(args: argparse.Namespace, run: dict) -> tuple[dict, list[str]]:
    """The settings of the evaluation: a flag given, else the run's value (its validation batch
    sizes where it set them), else ``RUN_DEFAULTS``; and the names taken from the run. Only a
    masked-LM or ELECTRA run validated this way: a finetuning run's values are not taken."""
    if not pretraining_run(run):
        run = {}
    run = {**run, "max_sentences": run.get("max_sentences_valid") or run.get("max_sentences"),
           "max_tokens": run.get("max_tokens_valid") or run.get("max_tokens")}
    settings, from_run = {}, []
    for key, default in RUN_DEFAULTS.items():
        given = getattr(args, key, None)
        if given is None and run.get(key) is not None:
            given = run[key]
            from_run.append(key)
        settings[key] = default if given is None else given
    return settings, from_run


def main(argv=None) -> int:
    cli_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    refuse_inert(parser, argv, [("rope_scaling_factor", args.rope_scaling is not None, "it is --rope-scaling's factor"),
                                ("position_init", args.max_positions is not None, "it is for --max-positions")])
    if args.max_positions is not None and args.tokens_per_sample is None:
        args.tokens_per_sample = args.max_positions        # evaluated at the length asked for
    try:
        model, run = load_model_and_run_args(args.path, whole_electra=True)   # one read of the checkpoint
        settings, from_run = evaluation_settings(args, run)   # from_run: what the run's own validation used
        if from_run:
            print(f"tupe-validate: as the run that saved {args.path}: "
                  + ", ".join(f"{k} {settings[k]}" for k in from_run), file=sys.stderr)
        elif not pretraining_run(run):   # own format, transformers folder, finetuning run
            kept = "keeps no training arguments" if not run else f"was saved by a {run.get('task')} run"
            print(f"tupe-validate: {args.path} {kept}: the defaults (blocks of "
                  f"{settings['tokens_per_sample'] or model.cfg.max_positions} tokens, seed {settings['seed']}, "
                  f"batches of {settings['max_sentences']}), not necessarily its run's validation", file=sys.stderr)
        if why := masking_shares_error(settings["leave_unmasked_prob"], settings["random_token_prob"]):
            raise TaskError(why)
        if not getattr(model, "lm_head_trained", True):
            raise CheckpointError(f"{args.path}: its masked-LM head was never trained (made new when an ELECTRA "
                                  f"discriminator or a transformers classifier without one was loaded): its "
                                  f"masked-LM loss would say nothing about the model")
        resized = {}                                            # what the output line says of a resize
        if args.max_positions is not None:
            trained = model.cfg.max_positions
            torch.manual_seed(settings["seed"])                 # --position-init random: the same rows each time
            try:
                resize_positions(model, args.max_positions, args.position_init)
            except ValueError as e:
                raise TaskError(f"--max-positions: {e}") from None
            print(f"tupe-validate: positional tables resized from {trained} to {args.max_positions} positions"
                  + (f" (rows past {trained}: {args.position_init})" if args.max_positions > trained else ""),
                  file=sys.stderr)
            resized = {"max_positions": args.max_positions, "trained_max_positions": trained,
                       **({"position_init": args.position_init} if args.max_positions > trained else {})}
        length = settings.pop("tokens_per_sample") or model.cfg.max_positions
        if args.rope_scaling is not None:
            factor = args.rope_scaling_factor or max(1.0, length / model.cfg.max_positions)
            with_rope_scaling(model, args.rope_scaling, factor)
        task = make_task(model, str(args.data), length, batch=settings.pop("max_sentences"), **settings)
        check_data_dictionary(args.path, task.dictionary, args.data)
        device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
        model.to(device)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()
        for subset in [s for s in args.valid_subset.split(",") if s]:
            stats = evaluate(model, task, subset, device, autocast, shuffle_order=args.shuffle_order,
                             skip_invalid=args.skip_invalid_size_inputs_valid_test, seed=task.args.seed)
            print(json.dumps({"subset": subset, **{k: round(v, 4) if isinstance(v, float) else v
                                                   for k, v in stats.items()},
                              "tokens_per_sample": task.args.tokens_per_sample,
                              **({"rope_scaling": model.cfg.rope_scaling,
                                  "rope_scaling_factor": model.cfg.rope_scaling_factor} if args.rope_scaling else {}),
                              **resized,
                              **({"shuffled_order": True} if args.shuffle_order else {})}))
    except (TaskError, CheckpointError, FileNotFoundError) as e:
        print(f"tupe-validate: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
