"""Where a run starts from: ``--restore-file`` read once, before the model is built, so that the
model's architecture comes from it (``options.config_with_checkpoint``), and its weights loaded
into the run's model afterwards. The run's progress (optimizer, RNG, epoch) is restored by the
trainer, which owns those."""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from ..checkpoint import (
    BPE_FILE,
    CONFIG_FILE,
    DICT_FILE,
    TEXT_FILE,
    CheckpointError,
    casing_of,
    check_data_dictionary,
    config_from_checkpoint,
    load_model,
    read_checkpoint,
    write_casing,
)
from ..config import ConfigError, TupeConfig
from ..hub import INPUTS, SCORE_RANGES, read_labels, task_score_range, write_labels
from ..model.electra import is_electra_state, split_electra_state
from ..model.lengths import resize_positions, resize_refusal
from .options import ConfigConflict, checkpoint_args, config_with_checkpoint, inert_flags, model_config


class TrainingError(RuntimeError):
    """A fatal, explained problem (bad data path, diverged loss, ...)."""


@dataclass
class RestorePoint:
    """A checkpoint to start from: its file or folder, what was read, its model's config, and
    (folders) the model already loaded."""
    path: Path
    state: dict
    cfg: TupeConfig
    loaded: Optional[torch.nn.Module] = None


def find_restore(args: argparse.Namespace, save_dir: Path, electra: bool) -> Optional[RestorePoint]:
    """Read ``--restore-file`` (a file, or a save_pretrained / transformers folder). None: nothing
    to resume from (the default name, not there yet)."""
    path = Path(args.restore_file)
    if not path.is_absolute() and not path.exists():
        path = save_dir / args.restore_file
    if electra:
        return _find_electra(args, save_dir, path)
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        # A save_pretrained / transformers folder: weights only (no optimizer, no progress).
        loaded = load_model(path)
        return RestorePoint(path, {}, loaded.cfg, loaded)
    if not path.is_file():
        if args.restore_file != "checkpoint_last.pt":
            raise TrainingError(f"--restore-file {args.restore_file}: not found (also looked in {save_dir})")
        return None
    state = read_for_resume(args, save_dir, path)
    return RestorePoint(path, state, config_from_checkpoint(state.get("args"), state["model"], path))


def _find_electra(args: argparse.Namespace, save_dir: Path, path: Path) -> Optional[RestorePoint]:
    """An ELECTRA checkpoint (None: none to resume from). Any other checkpoint is an error: its
    generator would be missing."""
    if not path.is_file():
        if args.restore_file != "checkpoint_last.pt" or path.exists():
            raise TrainingError(f"--restore-file {args.restore_file}: not an ELECTRA training checkpoint "
                                f"file (looked in {save_dir})")
        return None
    state = read_for_resume(args, save_dir, path)
    if not is_electra_state(state["model"]):
        raise TrainingError(f"{path} is not an ELECTRA checkpoint (no generator.* tensors); --task electra "
                            f"resumes only its own checkpoints")
    disc = split_electra_state(state["model"])[0]
    return RestorePoint(path, state, config_from_checkpoint(state.get("args"), disc, path))


def run_config(args: argparse.Namespace, dictionary, r: Optional[RestorePoint],
               log: Callable[[str], None]) -> TupeConfig:
    """The flags' model (``options.model_config``, the vocabulary from the data's ``dictionary``),
    or with a checkpoint to restore: the checkpoint's, whose vocabulary must be the data's (see
    ``options.config_with_checkpoint``: a given flag that contradicts it is an error). A flag
    given that does nothing in this run with that model is an error too, or a note
    (``options.inert_flags``); so is another task's checkpoint without the --reset-* flags
    (``check_task_change``), and a resumed run names the training flags that changed
    (``changed_flags``)."""
    if r is not None:
        check_data_dictionary(r.path, dictionary, args.data)
    try:
        cfg = flags_cfg = model_config(args, len(dictionary), dictionary.pad())
    except ConfigError as e:
        raise TrainingError(f"the model's flags: {e}") from None
    if r is not None:
        try:
            cfg, taken = config_with_checkpoint(args, flags_cfg, r.cfg, str(r.path))
        except ConfigConflict as e:
            raise TrainingError(str(e)) from None
        if taken:
            log(f"| model from {r.path.name} (flags not given take its values): {', '.join(taken)}" + (
                f"; this resumes the run in {r.path.parent} (another model than these flags alone make: for a "
                f"new run, choose another --save-dir)" if args.restore_file == "checkpoint_last.pt" else ""))
    args.max_positions = cfg.max_positions
    last = Path(args.save_dir) / "checkpoint_last.pt"
    if r is not None and last.is_file() and r.path.resolve() != last.resolve():   # a finetuning command run again
        log(f"| note: {last} (an earlier run's) is not resumed: this run starts from {r.path}, and its checkpoints "
            f"replace that run's; to continue that run instead, give --restore-file checkpoint_last.pt without the "
            f"--reset-* flags")
    check_resize(args, r, cfg)
    if r is not None:
        check_task_change(args, r)
        changed = changed_flags(r.state.get("args"), checkpoint_args(args, cfg)) if resumes(args, r.state) else []
        if changed:
            log(f"| note: resuming with flags other than the run that saved {r.path.name}: {', '.join(changed)}; "
                f"from here on this command's apply")
    errors, notes = inert_flags(args, cfg)
    if errors:
        raise TrainingError("; ".join(errors) + ("; leave it out" if len(errors) == 1 else "; leave them out"))
    for note in notes:
        log(f"| note: {note}; ignored")
    if args.task in ("masked_lm", "electra") and args.tokens_per_sample > cfg.max_positions:
        raise TrainingError(f"--tokens-per-sample {args.tokens_per_sample} exceeds the model's max_positions "
                            f"{cfg.max_positions}" + (f" (from {r.path.name})" if r is not None else ""))
    return cfg


# what does not change the training: where things go, how progress is shown, when the run stops
# (extending --max-update is how a run is continued), what is saved and validated when
_NOT_TRAINING = {"data", "save_dir", "restore_file", "tensorboard_logdir", "log_format", "log_interval", "no_progress_bar",
                 "num_workers", "position_init", "reset_optimizer", "reset_lr_scheduler", "reset_meters", "reset_dataloader",
                 "cpu",
                 "distributed_world_size", "ddp_backend", "find_unused_parameters", "lm_head_trained", "max_update",
                 "save_interval", "save_interval_updates", "keep_interval_updates", "keep_updates_list",
                 "no_epoch_checkpoints", "no_last_checkpoints", "no_best_checkpoints", "no_save", "validate_interval",
                 "validate_interval_updates", "disable_validation", "valid_subset", "max_tokens_valid",
                 "max_sentences_valid", "skip_invalid_size_inputs_valid_test"}


def check_resize(args: argparse.Namespace, r: Optional[RestorePoint], cfg: TupeConfig) -> None:
    """--position-init: the checkpoint's positional tables are resized to --max-positions when its
    weights are loaded (``load_weights``); refused where that cannot happen or would do nothing."""
    init = getattr(args, "position_init", None)
    if init is None:
        return
    if r is None or r.cfg.max_positions == cfg.max_positions:
        raise TrainingError("--position-init does nothing here (it resizes the positional tables of the checkpoint "
                            "to start from to another --max-positions" + (
                                f"; {r.path.name} has {cfg.max_positions} already" if r is not None else "") + ")")
    if args.task == "electra":
        raise TrainingError("--position-init: not with --task electra (it resizes the checkpoint of a masked-LM or "
                            "finetuning run; an ELECTRA model has a generator's tables too)")
    if why := resize_refusal(r.cfg):
        raise TrainingError(f"--position-init: {why}")
    if r.state.get("last_optimizer_state") and not args.reset_optimizer:
        raise TrainingError(f"--position-init: {r.path.name}'s optimizer state is for tables of {r.cfg.max_positions} "
                            f"positions; add --reset-optimizer")


def check_task_change(args: argparse.Namespace, r: RestorePoint) -> None:
    """A checkpoint of another task (pretraining -> finetuning) gives its weights only: its data
    position is in another dataset, its optimizer state is for other parameters, its best value is
    of another metric (a masked-LM loss that no accuracy would beat: no checkpoint_best.pt). The
    --reset-* flags that say so are required, as the original finetuning command gives them."""
    saved = getattr(r.state.get("args"), "task", None)
    if saved is None or saved == args.task or not r.state.get("extra_state"):
        return
    missing = [flag for flag, given in (("--reset-optimizer", args.reset_optimizer), ("--reset-dataloader",
               args.reset_dataloader), ("--reset-meters", args.reset_meters)) if not given]
    if missing:
        raise TrainingError(f"{r.path} was saved by a --task {saved} run; this is --task {args.task}: its data position, "
                            f"optimizer state and best value are the other task's. Start from its weights only: "
                            f"add {' '.join(missing)} (as the original finetuning command does)")


def resumes(args: argparse.Namespace, state: dict) -> bool:
    """Whether the run continues a checkpoint's training (its progress and optimizer), rather than
    starting from its weights (the --reset-* flags of finetuning)."""
    return not (args.reset_optimizer or args.reset_dataloader) and "train_iterator" in state.get("extra_state", {})


def changed_flags(stored: Optional[argparse.Namespace], now: argparse.Namespace) -> list[str]:
    """The training flags whose value differs from the checkpoint's run (``--lr 0.001 (was
    0.0005)``): a resumed run is then another training than the interrupted one. The model's
    fields are compared elsewhere (``options.config_with_checkpoint``); flags the checkpoint's
    run did not have are left out."""
    if stored is None:
        return []
    before, skip = vars(stored), {*_NOT_TRAINING, *TupeConfig.architecture_fields(), "arch", "tie_cls"}
    out = []
    for key, value in sorted(vars(now).items()):
        if key in before and key not in skip and before[key] != value:
            out.append(f"--{key.replace('_', '-')} {fmt(value)} (was {fmt(before[key])})")
    return out


def fmt(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def read_for_resume(args: argparse.Namespace, save_dir: Path, path: Path) -> dict:
    """read_checkpoint; a damaged checkpoint_last.pt of this run is an error that lists the
    intact checkpoints to resume from (never a silent start from scratch over the run's files)."""
    try:
        return read_checkpoint(path)
    except CheckpointError as e:
        if args.restore_file != "checkpoint_last.pt":
            raise
        intact = []
        others = sorted((p for p in save_dir.glob("checkpoint*.pt") if p.name != path.name),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        for p in others:
            try:
                history = read_checkpoint(p).get("optimizer_history") or [{}]
            except (CheckpointError, OSError):
                continue
            intact.append(f"{p.name} (update {history[-1].get('num_updates', '?')})")
            if len(intact) == 3:
                break
        hint = (f"Intact checkpoints in {save_dir}, newest first: {', '.join(intact)}. To resume from "
                f"one, rerun the same command with --restore-file {intact[0].split(' ')[0]}") if intact else \
            (f"No intact checkpoint is left in {save_dir}: move the damaged file away to start this run "
             f"again from scratch")
        raise TrainingError(f"{e}\nThis run's {path.name} cannot be read, so training did not start (it would "
                            f"not start from scratch over this run's files). {hint}") from None


def load_weights(model, loaded, path: Path, log: Callable[[str], None],
                 label_words: Optional[list] = None, position_init: Optional[str] = None) -> None:
    """A loaded checkpoint's weights into the run's model (its positional tables first resized to
    the run's max_positions with --position-init, ``check_resize``): heads this task does not use are
    dropped, a new head is kept as initialised (both said). A kept head whose classes were other
    label words, or the same in another order, in the checkpoint's run (its labels.json) than this
    task's ``label_words`` is said too: class i keeps its weights, whatever its word now is."""
    if loaded.cfg.max_positions != model.cfg.max_positions:
        trained = loaded.cfg.max_positions
        resize_positions(loaded, model.cfg.max_positions, position_init)
        log(f"| positional tables of {path.name} resized from {trained} to {model.cfg.max_positions} positions"
            + (f" (rows past {trained}: {position_init})" if model.cfg.max_positions > trained else ""))
    ours = model.head_sizes
    recorded = read_labels(path, loaded) if label_words else {}
    for name, k in loaded.head_sizes.items():
        if name in ours and ours[name] != k:
            raise TrainingError(f"{path}: classification head {name!r} has {k} classes, "
                                f"--num-classes asks for {ours[name]}")
        if name in ours and recorded.get(name) and list(recorded[name]) != list(label_words[:k]):
            log(f"| warning: classification head {name!r} of {path.name} was finetuned with the labels "
                f"{list(recorded[name])} (class i is the i-th), this task's are {list(label_words[:k])}: "
                f"each class keeps its weights under its new word"
                + (" (the same words in another order: binarize with the checkpoint's label order to keep "
                   "them)" if sorted(recorded[name]) == sorted(label_words[:k]) else ""))
        if name not in ours:
            log(f"| dropping classification head {name!r} of {path.name} (not used by this task)")
            del loaded.classification_heads[name]
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("classification_heads.") for k in missing), (missing, unexpected)
    if missing:
        log(f"| new classification head(s) {sorted(set(k.split('.')[1] for k in missing))} (not in {path.name})")


def write_run_files(args: argparse.Namespace, task, save_dir: Path) -> None:
    """Make a run directory self-contained for load_model / from_pretrained / tupe-predict: the
    vocabulary (dict.txt, bpe-code, text.json: whether the text keeps case) beside the checkpoints
    and, for finetuning, labels.json
    (label words, the head's number of inputs, a regression task's score range)."""
    save_dir.mkdir(parents=True, exist_ok=True)
    words = getattr(task, "label_words", None)
    data_dir = Path(args.data.split(":")[0])
    regression = getattr(task, "regression", False)
    if words is not None or regression:
        head = args.classification_head_name
        labels = {head: (words or [])[: args.num_classes], INPUTS: {head: task.n_inputs}}
        if regression:   # predictions are mapped back to this range
            labels[SCORE_RANGES] = {head: list(task_score_range(data_dir))}
        write_labels(save_dir, labels)
    sources = [data_dir, data_dir / "input0", Path(args.restore_file).parent]
    for name in (DICT_FILE, BPE_FILE):
        src = next((d / name for d in sources if (d / name).is_file()), None)
        if src is not None and not (save_dir / name).exists():
            shutil.copyfile(src, save_dir / name)
    # whether the text keeps case (tupe-preprocess --cased), for the hub and tupe-predict on this dir
    cased = next((c for c in map(casing_of, sources) if c is not None), None)
    if cased is not None and not (save_dir / TEXT_FILE).exists():
        write_casing(save_dir, cased)
