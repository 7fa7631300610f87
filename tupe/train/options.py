"""Command line of ``train.py``: fairseq's flag names, and their mapping onto TupeConfig.

Every flag listed here does something; an unknown flag is an error (argparse's default).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import sys
from functools import lru_cache
from typing import Optional, Sequence

from ..cli import HelpFormatter, at_least, fraction, given_dests
from ..config import POS_ENCODINGS, PRESETS, ROPE_SCALINGS, TRAINING_FIELDS, ConfigError, TupeConfig, scheme_overrides
from ..model import TupeModel
from ..model.attention import ALIASES, ATTN_IMPLS
from ..model.electra import generator_config as electra_generator_config
from ..model.lengths import resize_refusal
from ..model.positional import POSITION_INITS

# Configuration fields that come from the data's dictionary, not from a flag.
DICTIONARY_FIELDS = ("vocab_size", "padding_idx")
# A field whose flag is not ``--`` + its name with dashes (and says the opposite).
INVERTED_FLAGS = {"untie_cls": "tie_cls"}


def _betas(text: str) -> tuple[float, float]:
    try:
        value = ast.literal_eval(text)
        b1, b2 = (float(x) for x in value)
    except (ValueError, SyntaxError, TypeError):
        raise argparse.ArgumentTypeError(f"--adam-betas expects '(beta1, beta2)', got {text!r}") from None
    return b1, b2


def _floats(text: str) -> list[float]:
    try:
        values = [float(x) for x in str(text).split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number (or comma-separated numbers), got {text!r}") from None
    if not all(v >= 0 for v in values):
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return values


MASKING_DEFAULTS = {"mask_prob": 0.15, "leave_unmasked_prob": 0.1, "random_token_prob": 0.1}
MASKING_HELP = {"mask_prob": "fraction of each block's positions chosen for prediction",
                "leave_unmasked_prob": "of the chosen positions, the fraction that keep their token",
                "random_token_prob": "of the chosen positions, the fraction replaced by a random token"}


def masking_shares_error(leave_unmasked: float, random_token: float):
    """Why two masking shares cannot both hold (of the chosen positions, those kept and those
    replaced by a random word, together more than all of them: fairseq asserts the same), or None."""
    if leave_unmasked + random_token > 1:
        return f"--leave-unmasked-prob {leave_unmasked} + --random-token-prob {random_token} must be <= 1"
    return None


def add_masking_args(parser, from_run: bool = False) -> None:
    """BERT masking flags (train.py and tupe-validate share them). ``from_run``: no default
    (None): tupe-validate takes the checkpoint run's value, else ``MASKING_DEFAULTS``."""
    for key, default in MASKING_DEFAULTS.items():
        parser.add_argument("--" + key.replace("_", "-"), type=fraction, default=None if from_run else default,
                            help=MASKING_HELP[key] + (f" (default: the checkpoint run's, else {default})"
                                                      if from_run else ""))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py", description="Pretrain or finetune TUPE with fairseq's command line.",
        formatter_class=HelpFormatter, allow_abbrev=False)
    p.add_argument("data", help="binarized data directory; several joined by ':' are used one per epoch")

    g = p.add_argument_group("task")
    g.add_argument("--task", default="masked_lm", choices=["masked_lm", "electra", "sentence_prediction"],
                   help="masked_lm: pretraining (BERT masking); electra: generator + replaced-token detection; "
                        "sentence_prediction: finetuning a classification/regression head")
    g.add_argument("--criterion", default=None, choices=["masked_lm", "electra", "sentence_prediction"],
                   help="default: the task's own")
    g.add_argument("--sample-break-mode", default="complete", choices=["none", "complete", "complete_doc", "eos"],
                   help="how pretraining text is cut into blocks: none = fixed blocks across sentences, complete = whole "
                        "sentences, complete_doc = also never across a document, eos = one sentence per block")
    g.add_argument("--tokens-per-sample", type=at_least(2), default=512, help="block size, <s> included")
    add_masking_args(g)
    g.add_argument("--mask-whole-words", action="store_true", help="mask whole words (BPE @@ aware)")
    g.add_argument("--valid-subset", default="valid", help="comma-separated valid splits")
    g.add_argument("--num-workers", type=at_least(0), default=1, help="data loader processes (capped to the CPUs)")
    g.add_argument("--max-tokens", type=at_least(1), default=None, help="batch size cap in tokens (padding included)")
    g.add_argument("--max-sentences", "--batch-size", dest="max_sentences", type=at_least(1), default=None,
                   help="batch size in sequences")
    g.add_argument("--max-tokens-valid", type=at_least(1), default=None,
                   help="--max-tokens for validation (default: --max-tokens)")
    g.add_argument("--max-sentences-valid", type=at_least(1), default=None,
                   help="--max-sentences for validation (default: --max-sentences)")
    g.add_argument("--required-batch-size-multiple", type=at_least(1), default=8,
                   help="batch sizes are rounded down to a multiple of this")
    g.add_argument("--skip-invalid-size-inputs-valid-test", action="store_true",
                   help="skip validation samples longer than --max-positions (masked LM: --tokens-per-sample) (else an error)")
    g.add_argument("--seed", type=int, default=1, help="random seed (initialisation, masking, data order, dropout)")
    g.add_argument("--init-token", type=int, default=None, help="sentence_prediction: first token (0 = <s>)")
    g.add_argument("--separator-token", type=int, default=None, help="sentence_prediction: between inputs (2 = </s>)")
    g.add_argument("--num-classes", type=int, default=-1, help="sentence_prediction: classes (1 with regression)")
    g.add_argument("--regression-target", action="store_true", help="sentence_prediction: regression (STS-B)")
    g.add_argument("--truncate-sequence", action="store_true", help="truncate inputs to --max-positions")
    g.add_argument("--classification-head-name", default=TupeModel.DEFAULT_HEAD,
                   help="name of the classification head (sentence_prediction)")

    g = p.add_argument_group("model")
    g.add_argument("--arch", "-a", default="bert_base", choices=sorted(PRESETS),
                   help="model size preset; --encoder-* flags override its values")
    g.add_argument("--encoder-layers", type=int, help="number of layers (default: --arch's)")
    g.add_argument("--encoder-embed-dim", type=int, help="model width C (default: --arch's)")
    g.add_argument("--encoder-ffn-embed-dim", type=int, help="feed-forward width (default: --arch's)")
    g.add_argument("--encoder-attention-heads", type=int, help="attention heads (default: --arch's)")
    g.add_argument("--max-positions", type=int, help="default: --tokens-per-sample")
    g.add_argument("--dropout", type=float, default=0.1,
                   help="dropout on embeddings and residual branches (a training hyperparameter: never taken from "
                        "--restore-file)")
    g.add_argument("--attention-dropout", type=float, default=0.1, help="dropout on attention probabilities")
    g.add_argument("--activation-dropout", type=float, default=0.0, help="dropout after the feed-forward activation")
    g.add_argument("--pooler-dropout", type=float, default=0.1, help="dropout in the classification head")
    g.add_argument("--activation-fn", default="gelu", help="feed-forward activation: gelu, gelu_accurate, relu or tanh")
    g.add_argument("--pooler-activation-fn", default="tanh", help="classification head activation")
    g.add_argument("--encoder-normalize-before", action="store_true", help="pre-LN layers (LayerNorm before each sublayer)")
    g.add_argument("--embedding-normalize", action="store_true", help="LayerNorm on the input embedding (the TUPE models use it)")
    g.add_argument("--pos-encoding", default="tupe", choices=list(POS_ENCODINGS),
                   help="tupe = TUPE (untied positions); absolute = BERT-A baseline; rope = rotary q/k; "
                        "alibi = symmetric ALiBi bias; none = no positions (NoPE)")
    g.add_argument("--rope-theta", type=float, default=10000.0, help="RoPE base (--pos-encoding rope)")
    g.add_argument("--rope-scaling", default="none", choices=list(ROPE_SCALINGS),
                   help="RoPE frequency scaling for inputs longer than trained: linear (positions / factor), "
                        "dynamic (NTK: base raised past --max-positions) or yarn")
    g.add_argument("--rope-scaling-factor", type=float, default=1.0, help="the scaling factor (--rope-scaling)")
    g.add_argument("--rope-original-length", type=int, default=0,
                   help="YaRN's original (trained) length; 0: --max-positions")
    g.add_argument("--rel-pos", action="store_true", help="add the relative bias (TUPE-R / BERT-R)")
    g.add_argument("--rel-pos-bins", type=int, default=32, help="relative-position buckets (--rel-pos)")
    g.add_argument("--max-rel-pos", type=int, default=128, help="distance at which the relative buckets stop growing (--rel-pos)")
    g.add_argument("--tie-cls", action="store_true", help="do not untie [CLS] (TUPE-A-tie-cls ablation)")

    g = p.add_argument_group("electra (--task electra: generator + replaced-token detection)")
    g.add_argument("--generator-size-divisor", type=at_least(1), default=4,
                   help="generator width, FFN width and heads = the discriminator's / this (ELECTRA: 4 Small/Large, 3 Base)")
    g.add_argument("--generator-layers", type=at_least(1), default=None, help="default: the discriminator's")
    g.add_argument("--generator-embed-dim", type=int, default=None,
                   help="generator width (default: the discriminator's / --generator-size-divisor)")
    g.add_argument("--generator-ffn-embed-dim", type=int, default=None,
                   help="generator feed-forward width (default: the discriminator's / divisor)")
    g.add_argument("--generator-attention-heads", type=int, default=None,
                   help="generator heads (default: the discriminator's / divisor)")
    g.add_argument("--disc-weight", type=at_least(0.0, float), default=50.0, help="loss = mlm + disc_weight * rtd")

    g = p.add_argument_group("optimization")
    g.add_argument("--optimizer", default="adam", choices=["adam"],
                   help="optimizer (fairseq's Adam: decoupled weight decay, eps before bias correction)")
    g.add_argument("--adam-betas", type=_betas, default=(0.9, 0.999), help="Adam's betas, as '(beta1, beta2)'")
    g.add_argument("--adam-eps", type=at_least(0.0, float), default=1e-8, help="Adam's epsilon")
    g.add_argument("--weight-decay", "--wd", dest="weight_decay", type=at_least(0.0, float), default=0.0,
                   help="decoupled weight decay, on every parameter")
    g.add_argument("--clip-norm", type=at_least(0.0, float), default=25.0, help="clip the gradient norm to this (0: no clipping)")
    g.add_argument("--lr", type=_floats, default=[0.25], help="peak learning rate")
    g.add_argument("--lr-scheduler", default="polynomial_decay", choices=["polynomial_decay"],
                   help="learning-rate schedule: linear warmup, then polynomial decay to --end-learning-rate")
    g.add_argument("--warmup-updates", type=at_least(0), default=0, help="linear warmup updates")
    g.add_argument("--warmup-ratio", type=fraction, default=None,
                   help="warmup = ratio x total updates, total from --max-epoch (finetuning)")
    g.add_argument("--total-num-update", type=at_least(1), default=1000000, help="updates over which the schedule decays")
    g.add_argument("--end-learning-rate", type=at_least(0.0, float), default=0.0, help="learning rate at the end of the decay")
    g.add_argument("--power", type=float, default=1.0, help="power of the polynomial decay (1: linear)")
    g.add_argument("--update-freq", type=at_least(1), default=1, help="gradient accumulation steps")
    g.add_argument("--max-update", type=at_least(0), default=0, help="0 = no limit")
    g.add_argument("--max-epoch", type=at_least(0), default=0, help="0 = no limit")

    g = p.add_argument_group("precision and hardware")
    g.add_argument("--fp16", action="store_true", help="float16 autocast with dynamic loss scaling (CUDA)")
    g.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CPU and CUDA); on a CPU without "
                   "native bf16 (AVX512-BF16/AMX) it falls back to fp32 with a warning")
    g.add_argument("--force-bf16", action="store_true", help="keep bf16 autocast on a CPU without native bf16 "
                   "(emulated there: many times slower than fp32; for numerics experiments)")
    g.add_argument("--fp16-init-scale", type=float, default=2 ** 7, help="initial loss scale (--fp16)")
    g.add_argument("--fp16-scale-window", type=int, default=None,
                   help="updates without overflow before the loss scale doubles (default: 2^14 / world / update-freq)")
    g.add_argument("--threshold-loss-scale", type=float, default=None, help="never scale the loss below this (--fp16)")
    g.add_argument("--cpu", action="store_true", help="train on the CPU even if CUDA is available")
    g.add_argument("--compile", action="store_true", help="torch.compile the encoder layers (falls back to "
                   "eager with a warning where it cannot compile; see README 'Performance')")
    g.add_argument("--attn-impl", default="auto", choices=[*ATTN_IMPLS, *ALIASES],
                   help="attention kernel (tupe/model/attention.py): auto = eager or SDPA as fits, with the "
                   "positional terms as one additive mask; eager; sdpa; flex = the terms factored inside "
                   "FlexAttention (GPUs; needs --attention-dropout 0). bias = auto (earlier name). Same model "
                   "and checkpoints either way (default: %(default)s)")
    g.add_argument("--ddp-backend", default="c10d", choices=["c10d", "no_c10d"],
                   help="accepted for fairseq compatibility (both use DistributedDataParallel)")
    g.add_argument("--find-unused-parameters", action="store_true", help="DistributedDataParallel's find_unused_parameters")
    g.add_argument("--distributed-world-size", type=int, default=None,
                   help="checked against the launcher's WORLD_SIZE")

    g = p.add_argument_group("checkpoints")
    g.add_argument("--save-dir", default="checkpoints", help="where checkpoints, metrics.jsonl, dict.txt and bpe-code go")
    g.add_argument("--restore-file", default="checkpoint_last.pt",
                   help="checkpoint to start from: a file (absolute, or inside --save-dir), or a model folder; the model's "
                        "architecture is taken from it (docs/checkpoints.md)")
    g.add_argument("--position-init", choices=list(POSITION_INITS), default=None,
                   help="with a checkpoint to start from and another --max-positions than its own: its positional "
                        "tables (TUPE, BERT-A) resized to --max-positions, rows past its length copying the trained "
                        "ones or drawn as at initialisation (random); with --reset-optimizer (docs/checkpoints.md)")
    g.add_argument("--reset-optimizer", action="store_true",
                   help="start the optimizer (and loss scaler) afresh, and the update count at 0")
    g.add_argument("--reset-lr-scheduler", action="store_true", help="start the learning-rate schedule afresh")
    g.add_argument("--reset-meters", action="store_true", help="forget the best validation value")
    g.add_argument("--reset-dataloader", action="store_true", help="start at epoch 1, batch 0, with a fresh random state")
    g.add_argument("--save-interval", type=at_least(1), default=1, help="save every N epochs")
    g.add_argument("--save-interval-updates", type=at_least(0), default=0,
                   help="also save checkpoint_EPOCH_UPDATES.pt every N updates (0: never)")
    g.add_argument("--keep-interval-updates", type=at_least(-1), default=-1, help="keep only the newest N of those (-1: all)")
    g.add_argument("--keep-updates-list", type=int, nargs="+", default=[],
                   help="update numbers whose interval checkpoints are never deleted")
    g.add_argument("--no-epoch-checkpoints", action="store_true", help="do not write checkpointN.pt at the end of epochs")
    g.add_argument("--no-last-checkpoints", action="store_true", help="do not write checkpoint_last.pt (no resuming)")
    g.add_argument("--no-best-checkpoints", action="store_true", help="do not write checkpoint_best.pt")
    g.add_argument("--no-save", action="store_true", help="write no checkpoint at all")
    g.add_argument("--best-checkpoint-metric", default="loss",
                   help="validation metric that chooses checkpoint_best.pt (loss, accuracy, mcc, f1, pearson, ...)")
    g.add_argument("--maximize-best-checkpoint-metric", action="store_true", help="higher --best-checkpoint-metric is better")
    g.add_argument("--validate-interval", type=at_least(1), default=1, help="validate every N epochs")
    g.add_argument("--validate-interval-updates", type=at_least(0), default=0,
                   help="validate N times per epoch, at evenly spaced updates")
    g.add_argument("--disable-validation", action="store_true", help="never validate")

    g = p.add_argument_group("logging")
    g.add_argument("--log-format", default=None, choices=["simple", "json", "tqdm", "none"],
                   help="training log lines: simple, json, tqdm (progress bar) or none (default: tqdm, simple with "
                        "--no-progress-bar)")
    g.add_argument("--log-interval", type=at_least(1), default=100, help="log every N updates")
    g.add_argument("--no-progress-bar", action="store_true", help="no progress bar (simple log lines)")
    g.add_argument("--tensorboard-logdir", default="",
                   help="write TensorBoard scalars here (needs the tensorboard extra; empty: off)")
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args._given = given_dests(parser, argv)
    if args.max_positions is None:
        args.max_positions = args.tokens_per_sample
    if args.max_tokens is None and args.max_sentences is None:
        parser.error("give --max-sentences and/or --max-tokens (the batch size)")
    if args.fp16 and args.bf16:
        parser.error("--fp16 and --bf16 are exclusive")
    if args.task in ("masked_lm", "electra") and args.tokens_per_sample > args.max_positions:
        parser.error(f"--tokens-per-sample {args.tokens_per_sample} exceeds --max-positions {args.max_positions}")
    if len(args.lr) > 1:   # fairseq's polynomial_decay refuses them too
        parser.error(f"--lr {','.join(map(str, args.lr))}: one learning rate (the peak of --lr-scheduler polynomial_decay)")
    if why := masking_shares_error(args.leave_unmasked_prob or 0, args.random_token_prob or 0):
        parser.error(why)
    if args.warmup_ratio is not None and not args.max_epoch:
        parser.error("--warmup-ratio needs --max-epoch (the total number of updates is derived from it)")
    if args.criterion is None:
        args.criterion = args.task
    if args.criterion != args.task:
        parser.error(f"--criterion {args.criterion} does not go with --task {args.task}")
    if args.task == "sentence_prediction":
        if args.regression_target and args.num_classes not in (-1, 1):
            parser.error("--regression-target needs --num-classes 1")
        if args.regression_target:
            args.num_classes = 1
        if args.num_classes < 1:
            parser.error("--task sentence_prediction needs --num-classes")
    if args.log_format is None:
        args.log_format = "simple" if args.no_progress_bar else "tqdm"
    return args


# Flags that act only in some runs: (their destinations, whether they act in this run (args and
# the run's model, which may come from --restore-file), why not (a format string of a=args,
# c=the model's config), and whether the run's result is the same either way (then only a note).
_TASK = "this run is --task {a.task}"
ACTING_WHEN = (
    (("sample_break_mode", "mask_prob", "leave_unmasked_prob", "random_token_prob", "mask_whole_words"),
     lambda a, c: a.task in ("masked_lm", "electra"), "it acts with --task masked_lm or electra; " + _TASK, False),
    (("init_token", "separator_token", "num_classes", "regression_target", "truncate_sequence",
      "classification_head_name"), lambda a, c: a.task == "sentence_prediction",
     "it acts with --task sentence_prediction; " + _TASK, False),
    (("generator_size_divisor", "generator_layers", "generator_embed_dim", "generator_ffn_embed_dim",
      "generator_attention_heads", "disc_weight"), lambda a, c: a.task == "electra", "it acts with --task electra; " + _TASK,
     False),
    (("rope_theta", "rope_scaling_factor", "rope_original_length"), lambda a, c: c.pos_encoding == "rope",
     "it acts on a RoPE model (--pos-encoding rope); this one's pos_encoding is {c.pos_encoding!r}", False),
    (("rope_scaling_factor",), lambda a, c: c.rope_scaling != "none",
     "it acts with --rope-scaling linear, dynamic or yarn; the model's rope_scaling is 'none'", False),
    (("rope_original_length",), lambda a, c: c.rope_scaling == "yarn",
     "it acts with --rope-scaling yarn; the model's rope_scaling is {c.rope_scaling!r}", False),
    (("rel_pos_bins", "max_rel_pos"), lambda a, c: c.rel_pos,
     "it shapes the relative bias (--rel-pos), which the model has not", False),
    (("tie_cls",), lambda a, c: c.pos_encoding == "tupe",
     "only TUPE unties [CLS]; the model's pos_encoding is {c.pos_encoding!r}", False),
    (("warmup_updates", "total_num_update"), lambda a, c: a.warmup_ratio is None,
     "--warmup-ratio derives the warmup and the total number of updates from --max-epoch", False),
    # the run computes what was asked either way (no float16 loss to scale; no interval checkpoints to keep)
    (("fp16_init_scale", "fp16_scale_window", "threshold_loss_scale"), lambda a, c: a.fp16,
     "loss scaling needs --fp16", True),
    (("keep_interval_updates", "keep_updates_list"), lambda a, c: a.save_interval_updates > 0,
     "it keeps interval checkpoints, which need --save-interval-updates", True),
    (("save_interval", "save_interval_updates", "keep_interval_updates", "keep_updates_list", "no_epoch_checkpoints",
      "no_last_checkpoints", "no_best_checkpoints"), lambda a, c: not a.no_save, "--no-save writes no checkpoint", True),
    (("validate_interval", "validate_interval_updates", "valid_subset", "max_tokens_valid", "max_sentences_valid",
      "skip_invalid_size_inputs_valid_test", "best_checkpoint_metric", "maximize_best_checkpoint_metric"),
     lambda a, c: not a.disable_validation, "--disable-validation: nothing is validated", True),
)


@lru_cache(maxsize=1)
def flag_defaults() -> dict:
    """Every train.py option's default, by destination (read only; one parser built per process)."""
    return {a.dest: a.default for a in build_parser()._actions}


def inert_flags(args: argparse.Namespace, cfg: TupeConfig) -> tuple[list[str], list[str]]:
    """The flags given (``args._given``) that do nothing in this run with model ``cfg``: (errors,
    notes). A flag given with another value than its default is an error (what was asked would
    silently not happen: ``--rope-theta 500000`` without ``--pos-encoding rope``, ``--mask-prob``
    when finetuning); with its default's value, or one that the run's result does not depend on
    (loss scaling without --fp16), a note."""
    given, defaults = getattr(args, "_given", set()), flag_defaults()
    errors, notes, said = [], [], set()
    for dests, acts, why, soft in ACTING_WHEN:
        if acts(args, cfg):
            continue
        for dest in dests:
            if dest not in given or dest in said:
                continue
            said.add(dest)
            value = getattr(args, dest)
            shown = "--" + dest.replace("_", "-") + ("" if isinstance(value, bool) else
                                                     " " + (" ".join(map(str, value)) if isinstance(value, list) else str(value)))
            text = f"{shown} does nothing here ({why.format(a=args, c=cfg)})"
            (notes if soft or value == defaults[dest] else errors).append(text)
    return errors, notes


def field_flag(name: str) -> Optional[str]:
    """The train.py flag of a TupeConfig field (None: it comes from the dictionary)."""
    if name in DICTIONARY_FIELDS:
        return None
    return "--" + INVERTED_FLAGS.get(name, name).replace("_", "-")


def model_config(args: argparse.Namespace, vocab_size: int, padding_idx: int = 1) -> TupeConfig:
    """The one place where training flags become the model configuration: ``--arch``'s preset,
    then every flag named after a field (``TupeConfig.from_args``); the dictionary gives the
    vocabulary; ``--tie-cls`` (the one flag that says the opposite of its field) sets untie_cls=False."""
    return TupeConfig.from_args(args, vocab_size=vocab_size, padding_idx=padding_idx,
                                untie_cls=False if args.tie_cls else None)


def gave_field(args: argparse.Namespace, name: str) -> Optional[str]:
    """The flag by which the user set field ``name`` on the command line, or None.

    Given = the option appears on the command line (with any value, also the default's);
    ``--arch NAME`` counts as giving the four sizes of its preset (unless their own flags are
    given). ``--max-positions`` left out is not given, even though it then defaults to
    ``--tokens-per-sample``. Everything else (argparse defaults) is not given.
    """
    given = getattr(args, "_given", set())
    dest = INVERTED_FLAGS.get(name, name)
    if dest in given:
        return field_flag(name)
    if name in PRESETS[args.arch] and "arch" in given:
        return f"--arch {args.arch}"
    return None


class ConfigConflict(ValueError):
    """Flags that contradict a restored checkpoint's model."""


def config_with_checkpoint(args: argparse.Namespace, flags_cfg: TupeConfig, stored: TupeConfig,
                           source: str) -> tuple[TupeConfig, list[str]]:
    """The model of a run restored from a checkpoint whose model is ``stored``.

    Every architecture field (``TupeConfig.architecture_fields()``) comes from the checkpoint: a
    flag the user gave that says otherwise is an error naming the field, both values and the
    flag; the vocabulary must match the data's dictionary. The dropout rates (TRAINING_FIELDS)
    are this run's flags. Returns the config and the fields that the checkpoint set to other
    values than the flags' defaults would have (for one line in the log).
    """
    values, conflicts, taken = {}, [], []
    for name in TupeConfig.architecture_fields():
        theirs, ours = getattr(stored, name), getattr(flags_cfg, name)
        values[name] = theirs
        if theirs == ours:
            continue
        if name == "max_positions" and getattr(args, "position_init", None) and gave_field(args, name):
            values[name] = ours                      # the checkpoint's tables resized (restore.check_resize)
            continue
        if name in DICTIONARY_FIELDS:
            conflicts.append(f"{name}: the checkpoint has {theirs!r}, the data's dictionary gives {ours!r} "
                             f"(this checkpoint was trained with another dict.txt)")
        elif (flag := gave_field(args, name)) is not None:
            shown = "given" if name in INVERTED_FLAGS else repr(ours)
            resizable = name == "max_positions" and resize_refusal(stored) is None
            conflicts.append(f"{name}: the checkpoint has {theirs!r}, {flag} asks for {shown} "
                             f"(leave {flag.split()[0]} out to take the checkpoint's value"
                             + (", or add --position-init copy|random to resize its positional tables)" if resizable else ")"))
        else:
            taken.append(f"{name}={theirs!r}")
    if conflicts:
        raise ConfigConflict(f"{source}: the command line contradicts the checkpoint's model: " + "; ".join(conflicts))
    values.update({name: getattr(flags_cfg, name) for name in TRAINING_FIELDS})
    try:
        return TupeConfig(**values), taken
    except ConfigError as e:
        raise ConfigConflict(f"{source}: {e}") from None


def scheme_flags(name: str) -> list[str]:
    """The train.py flags of a registered scheme (``config.SCHEMES``), e.g. TUPE-R -> --rel-pos."""
    defaults = {f.name: f.default for f in dataclasses.fields(TupeConfig)}
    flags = []
    for field_name, value in scheme_overrides(name).items():
        if field_name in INVERTED_FLAGS:
            if value is False:
                flags.append(field_flag(field_name))
        elif isinstance(value, bool):
            if value:
                flags.append(field_flag(field_name))
        elif value != defaults[field_name]:
            flags += [field_flag(field_name), str(value)]
    return flags


def generator_config(args: argparse.Namespace, cfg: TupeConfig) -> TupeConfig:
    """ELECTRA's generator from the --generator-* flags (see model/electra.py)."""

    return electra_generator_config(cfg, args.generator_size_divisor, args.generator_layers, args.generator_embed_dim,
                 args.generator_ffn_embed_dim, args.generator_attention_heads)


def checkpoint_args(args: argparse.Namespace, cfg: TupeConfig) -> argparse.Namespace:
    """A Namespace of plain values for the checkpoint (what the original code stores), with
    the resolved model fields (``pos_encoding``, ``untie_cls``, dims) filled in."""
    plain = {}
    for k, v in vars(args).items():
        if k.startswith("_"):
            continue
        plain[k] = list(v) if isinstance(v, tuple) else v
    plain["adam_betas"] = str(tuple(args.adam_betas))   # fairseq stores the string
    plain.update(cfg.to_dict())
    return argparse.Namespace(**plain)
