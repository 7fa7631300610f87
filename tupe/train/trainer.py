"""The training engine behind ``train.py`` / ``tupe-train`` (masked-LM pretraining).

One process or ``torchrun``-launched data parallel (NCCL on GPUs, gloo on CPU). A run killed
at any point and restarted with the same command resumes from ``checkpoint_last.pt`` and ends
with the same weights (bitwise on CPU in fp32): model, optimizer, loss scaler, RNG and the
position in the epoch's batch list are all in the checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist

from ..checkpoint import (CONFIG_FILE, CheckpointError, build_and_load, config_from_checkpoint,
                          fairseq_state_dict, load_electra_state, load_model, read_checkpoint, read_manifest,
                          sha256_file, write_manifest, checkpoint_tensors, progress_of)
from ..config import TupeConfig
from ..data.dictionary import DictionaryError
from ..data.indexed_dataset import IndexedDatasetError
from ..model import set_attn_impl
from ..model.attention import kernel_name, needs_factored
from ..model.compile import compile_layers, compile_unavailable
from ..model.electra import is_electra_state, split_electra_state
from .cpu import EMULATED_BF16, cpu_supports_bf16, retain_freed_memory
from .data import shard
from .logger import MetricsLogger
from .optim import DynamicLossScaler, FairseqAdam, PolynomialDecay
from .options import ConfigConflict, checkpoint_args, config_with_checkpoint, model_config, parse_args
from .savedir import SaveDirError, SaveDirLock, describe_os_error
from .tasks import TaskError, build_task

LN2 = math.log(2)


class TrainingError(RuntimeError):
    """A fatal, explained problem (bad data path, diverged loss, ...)."""


# --------------------------------------------------------------------------- setup helpers
def init_distributed(args) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.distributed_world_size is not None and args.distributed_world_size != world:
        raise TrainingError(f"--distributed-world-size {args.distributed_world_size} but the launcher "
                            f"started {world} process(es) (WORLD_SIZE); use torchrun --nproc_per_node")
    use_cuda = torch.cuda.is_available() and not args.cpu
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", init_method="env://")
    return rank, world, device


@dataclass
class RestorePoint:
    """A checkpoint to start from: its file or folder, what was read, its model's config, and
    (folders) the model already loaded."""
    path: Path
    state: dict
    cfg: TupeConfig
    loaded: Optional[torch.nn.Module] = None


# --------------------------------------------------------------------------- trainer
class Trainer:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rank, self.world, self.device = init_distributed(args)
        self.master = self.rank == 0
        if self.device.type == "cpu":
            retain_freed_memory()                    # reuse pages step to step (see cpu.py)
        self.save_dir = Path(args.save_dir)
        self.log = MetricsLogger(args.log_format, self.save_dir if self.master else None,
                                 args.tensorboard_logdir, enabled=self.master)
        torch.manual_seed(args.seed)
        self.task = build_task(args)
        self.dictionary = self.task.dictionary
        self.restore_from = self._find_restore()        # the checkpoint to start from, read once
        self.cfg = self._config(model_config(args, len(self.dictionary), self.dictionary.pad()))
        self.model = self.task.build_model(self.cfg)  # TupeModel, or ElectraModel for --task electra
        self.stat_keys = self.task.stat_keys         # task statistics logged beside the loss (ELECTRA)
        self.task.prepare_model(self.model)          # classification heads: after the BERT init
        self.model.to(self.device)
        self._speed_options()
        self.precision = self._precision()
        self.optimizer = FairseqAdam(self.model.parameters(), lr=args.lr[0], betas=args.adam_betas,
                                     eps=args.adam_eps, weight_decay=args.weight_decay)
        window = args.fp16_scale_window or max(1, 2 ** 14 // self.world // args.update_freq)
        self.scaler = DynamicLossScaler(args.fp16_init_scale, window, args.threshold_loss_scale) \
            if self.precision == "fp16" else None
        self.num_updates, self.epoch, self.iterations_in_epoch = 0, 1, 0
        self.best: Optional[float] = None
        self.best_record: Optional[dict] = None      # every subset's metrics at the best validation
        self.stop_requested = False
        self.stop_signal: Optional[int] = None       # SIGINT/SIGTERM received: exit 128 + its number
        self._last_valid_is_best = False
        self.restore()
        self.schedule = self._schedule()
        self.ddp = self.model
        if self.world > 1:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=args.find_unused_parameters)

    # ------------------------------------------------------------------ configuration
    def _speed_options(self) -> None:
        """--attn-impl and --compile: how the model runs, not what it is (nothing saved changes)."""
        a = self.args
        if kernel_name(a.attn_impl) != "auto":
            if needs_factored(kernel_name(a.attn_impl)) and self.cfg.attention_dropout > 0:
                raise TrainingError(f"--attn-impl {a.attn_impl} cannot drop attention probabilities "
                                    f"(FlexAttention has no attention dropout): add --attention-dropout 0 "
                                    f"(now {self.cfg.attention_dropout}) or use --attn-impl auto")
            set_attn_impl(self.model, a.attn_impl)
        if a.compile:
            if compile_layers(self.model, self.device, warn=False):
                self.log.info("--compile: encoder layers compiled (the first updates include compile time)")
            else:
                self.log.info(f"warning: --compile: {compile_unavailable(self.device)}; training eager")

    def _precision(self) -> str:
        a = self.args
        if a.fp16 and self.device.type != "cuda":
            mode = "bf16" if cpu_supports_bf16() else "fp32"
            self.log.info(f"warning: --fp16 needs CUDA; training on the CPU in {mode} instead")
            return mode
        if a.fp16:
            return "fp16"
        if a.bf16 and self.device.type == "cpu" and not cpu_supports_bf16() and not a.force_bf16:
            self.log.info(f"warning: --bf16 on a CPU without native bf16 (no AVX512-BF16 or AMX): {EMULATED_BF16}; "
                          f"training in fp32 instead (--force-bf16 keeps bf16)")
            return "fp32"
        if a.bf16 or a.force_bf16:
            return "bf16"
        return "fp32"

    def autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype)

    def _schedule(self) -> PolynomialDecay:
        a = self.args
        total, warmup = a.total_num_update, a.warmup_updates
        if a.warmup_ratio is not None:   # the original counts batches, not update-freq groups
            _, batches, _ = self._epoch_batches(1)
            total = math.ceil(len(batches) / self.world) * a.max_epoch
            warmup = int(total * a.warmup_ratio)
        return PolynomialDecay(a.lr[0], warmup, total, a.end_learning_rate, a.power)

    # ------------------------------------------------------------------ data
    def _epoch_batches(self, epoch: int):
        dataset = self.task.dataset("train", epoch)
        batches, skipped = self.task.batches(dataset, epoch, self.cfg.max_positions, train=True)
        return dataset, batches, skipped

    def _loader(self, dataset, batches):
        workers = min(self.args.num_workers, os.cpu_count() or 1)
        return torch.utils.data.DataLoader(
            dataset, batch_sampler=batches, num_workers=workers, collate_fn=self.task.collater(),
            generator=torch.Generator().manual_seed(self.args.seed))   # never touches the global RNG

    # ------------------------------------------------------------------ one update
    def _forward(self, batch: dict):
        return self.task.loss(self.ddp, batch, self.device, self.autocast())

    def train_step(self, group: list[tuple[dict, bool]]) -> Optional[dict]:
        """Forward/backward over ``update_freq`` micro-batches, then one optimizer step."""
        self.model.train()
        scale = self.scaler.scale if self.scaler else 1.0
        # loss (nats), sample_size, ntokens, nsentences, then the task's statistics (ELECTRA)
        totals = torch.zeros(4 + len(self.stat_keys), dtype=torch.float64)
        for j, (batch, dummy) in enumerate(group):
            last = j == len(group) - 1
            sync = contextlib.nullcontext() if (last or self.world == 1) else self.ddp.no_sync()
            with sync:
                loss, sample_size, out = self._forward(batch)
                if dummy:
                    loss = loss * 0.0
                (loss * scale).backward()
            if not dummy:
                stats = [out[k] for k in self.stat_keys]
                totals += torch.tensor([loss.item(), sample_size, batch["ntokens"], batch["nsentences"], *stats],
                                       dtype=torch.float64)
        if self.world > 1:
            dist.all_reduce(totals)
        loss_sum, sample_size, ntokens, nsentences = totals[:4].tolist()
        task_stats = dict(zip(self.stat_keys, totals[4:].tolist()))
        # DDP averaged the gradients over W workers: W / sample_size turns them into the mean
        # over all masked tokens of the update (and removes the loss scale).
        factor = self.world / max(sample_size, 1.0) / scale
        params = [p for p in self.model.parameters() if p.grad is not None]
        torch._foreach_mul_([p.grad for p in params], factor)
        clip = self.args.clip_norm if self.args.clip_norm > 0 else float("inf")
        gnorm = float(torch.nn.utils.clip_grad_norm_(params, clip))
        overflow = not math.isfinite(gnorm)
        if self.scaler is not None and overflow:
            self.scaler.update(True)
            self.optimizer.zero_grad(set_to_none=True)
            self.log.info(f"| WARNING: overflow detected, skipping update {self.num_updates + 1}, "
                          f"loss scale now {self.scaler.scale:g}")
            return None
        if overflow or not math.isfinite(loss_sum):
            raise FloatingPointError(
                f"loss is {loss_sum / max(sample_size, 1):g} (gradient norm {gnorm:g}) at update "
                f"{self.num_updates + 1}: training diverged. Nothing was saved for this update; "
                f"lower --lr or raise --warmup-updates and restart from the last checkpoint")
        lr = self.schedule.for_update(self.num_updates + 1)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.num_updates += 1
        if self.scaler is not None:
            self.scaler.update(False)
        return {"loss_sum": loss_sum, "sample_size": sample_size, "ntokens": ntokens,
                "nsentences": nsentences, "gnorm": gnorm, "lr": lr, **task_stats}

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict[str, dict]:
        a = self.args
        results = {}
        self.model.eval()
        for subset in [s for s in a.valid_subset.split(",") if s]:
            dataset = self.task.dataset(subset, 0)   # epoch 0: fixed masks, comparable across epochs
            batches, skipped = self.task.batches(dataset, 0, self.cfg.max_positions, train=False)
            if skipped and not a.skip_invalid_size_inputs_valid_test:
                raise TrainingError(f"{subset}: {skipped} samples are longer than --max-positions "
                                    f"{self.cfg.max_positions}; pass --skip-invalid-size-inputs-valid-test "
                                    f"(or --truncate-sequence)")
            totals = torch.zeros(2, dtype=torch.float64)
            outputs = []
            mine = [b for b in shard(batches, self.rank, self.world) if b is not None]
            for batch in self._loader(dataset, mine):
                loss, n, out = self._forward(batch)
                totals += torch.tensor([loss.item(), n], dtype=torch.float64)
                if out is not None:
                    outputs.append(out)
            if self.world > 1:
                dist.all_reduce(totals)
                if outputs or self.task.name != "masked_lm":
                    gathered = [None] * self.world
                    dist.all_gather_object(gathered, outputs)
                    outputs = [o for part in gathered for o in part]
            stats = {"subset": subset, "epoch": self.epoch,
                     **self.task.metrics(totals[0].item(), totals[1].item(), outputs),
                     "num_updates": self.num_updates}
            if skipped:
                stats["skipped"] = skipped
            results[subset] = stats
            self.log.log("valid", stats, self.num_updates, f"epoch {self.epoch:03d} | valid on '{subset}' subset")
        first = next(iter(results.values()))
        metric = first.get(a.best_checkpoint_metric)
        if metric is None:
            names = [k for k in first if k not in ("subset", "epoch", "num_updates", "skipped")]
            raise TrainingError(f"--best-checkpoint-metric {a.best_checkpoint_metric!r} is not a validation "
                                f"metric of {self.task.name} (choose from {', '.join(names)})")
        better = self.best is None or (metric > self.best if a.maximize_best_checkpoint_metric else metric < self.best)
        if better and math.isfinite(metric):
            self.best = metric
            self.best_record = {"num_updates": self.num_updates, "epoch": self.epoch, "valid": results}
        self._last_valid_is_best = bool(better)
        return results

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "args": checkpoint_args(self.args, self.cfg),
            "model": fairseq_state_dict(self.model),
            "optimizer_history": [{"criterion_name": {"masked_lm": "MaskedLmLoss", "electra": "ElectraLoss"}.get(
                                       self.task.name, "SentencePredictionCriterion"),
                                   "optimizer_name": "FairseqAdam",
                                   "lr_scheduler_state": {"best": self.best}, "num_updates": self.num_updates}],
            "extra_state": {
                "train_iterator": {"epoch": self.epoch, "iterations_in_epoch": self.iterations_in_epoch},
                "best": self.best, "best_record": self.best_record, "rng": rng,
                "loss_scaler": self.scaler.state_dict() if self.scaler else None,
                "precision": self.precision,
            },
            "last_optimizer_state": self.optimizer.state_dict(),
            **({"electra": {"generator": self.model.gen_cfg.to_dict(), "disc_weight": self.model.disc_weight}}
               if self.task.name == "electra" else {}),
        }

    def save(self, end_of_epoch: bool, is_best: bool = False) -> None:
        a = self.args
        if not self.master or a.no_save:
            return
        names = []
        if end_of_epoch:
            if not a.no_epoch_checkpoints and (self.epoch - 1) % a.save_interval == 0:
                names.append(f"checkpoint{self.epoch - 1}.pt")
        elif a.save_interval_updates and self.num_updates % a.save_interval_updates == 0:
            names.append(f"checkpoint_{self.epoch}_{self.num_updates}.pt")
        if is_best and not a.no_best_checkpoints:
            names.append("checkpoint_best.pt")
        if not a.no_last_checkpoints:
            names.append("checkpoint_last.pt")
        if not names:
            return
        self.save_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.save_dir / f".tmp-{os.getpid()}.pt"
        parts = [self.save_dir / f".{name}.part" for name in names]
        done, before = [], read_manifest(self.save_dir)
        try:
            torch.save(self.state(), tmp)
            digest = sha256_file(tmp)
            # Phase 1: the new digest recorded beside the old one, so that a crash at any point
            # below leaves every file matching one of its recorded digests. Phase 2: replace.
            # Phase 3: only the new digests.
            write_manifest(self.save_dir, {**before, **{n: before.get(n, [])[-1:] + [digest] for n in names}})
            for name, part in zip(names, parts):   # each file replaced atomically: never a torn one
                shutil.copyfile(tmp, part)
                os.replace(part, self.save_dir / name)
                done.append(name)
            write_manifest(self.save_dir, {**before, **{n: [digest] for n in names}})
        except (OSError, RuntimeError) as e:
            for p in (tmp, *parts):
                p.unlink(missing_ok=True)
            try:       # each file's recorded digest: the new one where it was replaced, else as before
                write_manifest(self.save_dir, {**before, **{n: [digest] for n in done}})
            except OSError:
                pass
            kept = ", ".join(n for n in ("checkpoint_last.pt", "checkpoint_best.pt")
                             if (self.save_dir / n).is_file() and n not in done) or "none yet"
            raise TrainingError(
                f"could not save {', '.join(names)} in {self.save_dir} at update {self.num_updates}: "
                f"{describe_os_error(e, self.save_dir)}. Nothing is damaged: the previous checkpoints are as "
                f"they were ({kept}; {', '.join(done) or 'none'} written at this update), temporary files removed. "
                f"Free space or fix the directory, then rerun the same command to resume") from None
        tmp.unlink()
        self._retention()

    def _retention(self) -> None:
        a = self.args
        if a.keep_interval_updates <= 0:
            return
        found = []
        for p in self.save_dir.glob("checkpoint_*_*.pt"):
            m = re.fullmatch(r"checkpoint_(\d+)_(\d+)\.pt", p.name)
            if m:
                found.append((int(m.group(2)), p))
        found.sort(reverse=True)
        removed = False
        for updates, p in found[a.keep_interval_updates:]:
            if updates not in set(a.keep_updates_list):
                p.unlink()
                removed = True
        if removed:
            write_manifest(self.save_dir, read_manifest(self.save_dir))

    def _find_restore(self) -> Optional[RestorePoint]:
        """Read ``--restore-file`` (a file, or a save_pretrained / transformers folder) once, before
        the model is built: the model's architecture comes from it. None: nothing to resume from."""
        a = self.args
        path = Path(a.restore_file)
        if not path.is_absolute() and not path.exists():
            path = self.save_dir / a.restore_file
        if self.task.name == "electra":
            return self._find_electra(path)
        if path.is_dir() and (path / CONFIG_FILE).is_file():
            # A save_pretrained / transformers folder: weights only (no optimizer, no progress).
            loaded = load_model(path)
            return RestorePoint(path, {}, loaded.cfg, loaded)
        if not path.is_file():
            if a.restore_file != "checkpoint_last.pt":
                raise TrainingError(f"--restore-file {a.restore_file}: not found (also looked in {self.save_dir})")
            return None
        state = self._read_checkpoint(path)
        return RestorePoint(path, state, config_from_checkpoint(state.get("args"), state["model"], path))

    def _find_electra(self, path: Path) -> Optional[RestorePoint]:
        """An ELECTRA checkpoint (None: none to resume from). Any other checkpoint is an error: its
        generator would be missing."""
        if not path.is_file():
            if self.args.restore_file != "checkpoint_last.pt" or path.exists():
                raise TrainingError(f"--restore-file {self.args.restore_file}: not an ELECTRA training checkpoint "
                                    f"file (looked in {self.save_dir})")
            return None
        state = self._read_checkpoint(path)
        if not is_electra_state(state["model"]):
            raise TrainingError(f"{path} is not an ELECTRA checkpoint (no generator.* tensors); --task electra "
                                f"resumes only its own checkpoints")
        disc = split_electra_state(state["model"])[0]
        return RestorePoint(path, state, config_from_checkpoint(state.get("args"), disc, path))

    def _config(self, flags_cfg: TupeConfig) -> TupeConfig:
        """The flags' model, or with a checkpoint to restore: the checkpoint's (see
        ``options.config_with_checkpoint``: a given flag that contradicts it is an error)."""
        a, r = self.args, self.restore_from
        cfg = flags_cfg
        if r is not None:
            try:
                cfg, taken = config_with_checkpoint(a, flags_cfg, r.cfg, str(r.path))
            except ConfigConflict as e:
                raise TrainingError(str(e)) from None
            if taken:
                self.log.info(f"| model from {r.path.name} (flags not given take its values): {', '.join(taken)}")
        a.max_positions = cfg.max_positions
        if a.task in ("masked_lm", "electra") and a.tokens_per_sample > cfg.max_positions:
            raise TrainingError(f"--tokens-per-sample {a.tokens_per_sample} exceeds the model's max_positions "
                                f"{cfg.max_positions}" + (f" (from {r.path.name})" if r is not None else ""))
        return cfg

    def restore(self) -> None:
        r = self.restore_from
        if r is None:
            return
        if self.task.name == "electra":
            load_electra_state(self.model, r.state["model"], r.path, "this command's model (--generator-* flags)")
        else:
            loaded = r.loaded or build_and_load(r.cfg, checkpoint_tensors(r.state["model"], r.path), r.path)
            self._load_weights(loaded, r.path)
        self.restore_from = None                         # the state is not needed any more
        self._restore_progress(r.state, r.path)

    def _read_checkpoint(self, path: Path) -> dict:
        """read_checkpoint; a damaged checkpoint_last.pt of this run is an error that lists the
        intact checkpoints to resume from (never a silent start from scratch over the run's files)."""
        try:
            return read_checkpoint(path)
        except CheckpointError as e:
            if self.args.restore_file != "checkpoint_last.pt":
                raise
            intact = []
            others = sorted((p for p in self.save_dir.glob("checkpoint*.pt") if p.name != path.name),
                            key=lambda p: p.stat().st_mtime, reverse=True)
            for p in others:
                try:
                    history = read_checkpoint(p).get("optimizer_history") or [{}]
                except (CheckpointError, OSError):
                    continue
                intact.append(f"{p.name} (update {history[-1].get('num_updates', '?')})")
                if len(intact) == 3:
                    break
            hint = (f"Intact checkpoints in {self.save_dir}, newest first: {', '.join(intact)}. To resume from "
                    f"one, rerun the same command with --restore-file {intact[0].split(' ')[0]}") if intact else \
                (f"No intact checkpoint is left in {self.save_dir}: move the damaged file away to start this run "
                 f"again from scratch")
            raise TrainingError(f"{e}\nThis run's {path.name} cannot be read, so training did not start (it would "
                                f"not start from scratch over this run's files). {hint}") from None

    def _load_weights(self, loaded, path: Path) -> None:
        ours = self.model.head_sizes
        for name, k in loaded.head_sizes.items():
            if name in ours and ours[name] != k:
                raise TrainingError(f"{path}: classification head {name!r} has {k} classes, "
                                    f"--num-classes asks for {ours[name]}")
            if name not in ours:
                self.log.info(f"| dropping classification head {name!r} of {path.name} (not used by this task)")
                del loaded.classification_heads[name]
        missing, unexpected = self.model.load_state_dict(loaded.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("classification_heads.") for k in missing), (missing, unexpected)
        if missing:
            self.log.info(f"| new classification head(s) {sorted(set(k.split('.')[1] for k in missing))} "
                          f"(not in {path.name})")

    def _restore_progress(self, state: dict, path: Path) -> None:
        a = self.args
        extra = state.get("extra_state", {})
        if not a.reset_optimizer and state.get("last_optimizer_state"):
            try:
                self.optimizer.load_state_dict(state["last_optimizer_state"])
            except (ValueError, KeyError, RuntimeError) as e:
                raise TrainingError(f"{path}: its optimizer state does not fit this model ({e}); to start "
                                    f"from its weights only add --reset-optimizer (finetuning: also "
                                    f"--reset-dataloader --reset-meters, as the original commands do)") from None
            if self.scaler is not None and extra.get("loss_scaler"):
                self.scaler.load_state_dict(extra["loss_scaler"])
        history = state.get("optimizer_history") or [{}]
        if not a.reset_optimizer and not a.reset_lr_scheduler:
            self.num_updates = int(history[-1].get("num_updates", 0))
        if not a.reset_meters:
            self.best = extra.get("best")
            self.best_record = extra.get("best_record")
        if not a.reset_dataloader and "train_iterator" in extra:
            self.epoch = int(extra["train_iterator"]["epoch"])
            self.iterations_in_epoch = int(extra["train_iterator"]["iterations_in_epoch"])
        rng = extra.get("rng")
        if rng is not None and not a.reset_dataloader:
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.device)
        saved_epoch, saved_updates = progress_of(state)
        saved = f"saved at epoch {saved_epoch}, update {saved_updates}" if saved_updates is not None else "weights only"
        now = (self.epoch, self.num_updates)
        self.log.info(f"| loaded checkpoint {path} ({saved}" + ("" if now == (saved_epoch, saved_updates) else
                      f"; this run starts at epoch {now[0]}, update {now[1]}") + ")")

    # ------------------------------------------------------------------ the loop
    def _done(self) -> bool:
        a = self.args
        return (a.max_update and self.num_updates >= a.max_update) or \
            (a.max_epoch and self.epoch > a.max_epoch) or self.stop_requested

    def _handle_signal(self, signum, frame) -> None:
        self.stop_requested = True
        self.stop_signal = signum
        self.log.info(f"| received {signal.Signals(signum).name}: saving checkpoint_last.pt after this update")

    def run(self) -> int:
        a = self.args
        if self.master and not a.no_save:   # make the run directory self-contained for load_model
            self.save_dir.mkdir(parents=True, exist_ok=True)
            words = getattr(self.task, "label_words", None)
            data_dir = Path(a.data.split(":")[0])
            if words is not None or getattr(self.task, "regression", False):
                from ..hub import INPUTS, LABELS_FILE, SCORE_RANGES, task_score_range
                labels = {a.classification_head_name: (words or [])[: a.num_classes],
                          INPUTS: {a.classification_head_name: self.task.n_inputs}}
                if getattr(self.task, "regression", False):   # predictions are mapped back to this range
                    labels[SCORE_RANGES] = {a.classification_head_name: list(task_score_range(data_dir))}
                (self.save_dir / LABELS_FILE).write_text(json.dumps(labels) + "\n")
            sources = [data_dir, data_dir / "input0", Path(a.restore_file).parent]
            for name in ("dict.txt", "bpe-code"):
                src = next((d / name for d in sources if (d / name).is_file()), None)
                if src is not None and not (self.save_dir / name).exists():
                    shutil.copyfile(src, self.save_dir / name)
        self.task.check_data([] if a.disable_validation else [s for s in a.valid_subset.split(",") if s])
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle_signal)
        n_params = self.model.num_parameters()
        self.log.info(f"| task {self.task.name}, model {self.cfg.name} ({self.cfg.size_name}), {n_params:,} parameters, "
                      f"vocabulary {self.cfg.vocab_size}")
        self.log.info(f"| device {self.device}, {self.world} process(es), precision {self.precision}; effective "
                      f"batch = {self.world} x {a.max_sentences or '-'} sentences (max {a.max_tokens or '-'} tokens) "
                      f"x update-freq {a.update_freq}")
        self.log.info(f"| lr schedule: peak {self.schedule.lr:g}, warmup {self.schedule.warmup}, "
                      f"total {self.schedule.total} updates")
        while not self._done():
            self.train_epoch()
        if self.stop_requested:
            self.save(end_of_epoch=False)
            self.log.info(f"| stopped at update {self.num_updates} by {signal.Signals(self.stop_signal).name}: the "
                          f"run is NOT finished (exit code {128 + self.stop_signal}); rerun the same command to resume")
        self.log.info(f"| done training in {time.time() - self.log.start:.1f} seconds, {self.num_updates} updates")
        if self.master and self.best_record is not None:
            best = {"best_checkpoint_metric": a.best_checkpoint_metric, "best": self.best, **self.best_record}
            if self.log.jsonl is not None:
                self.log.jsonl.write(json.dumps({"type": "best", **best}) + "\n")
            print(json.dumps({"best": best}), flush=True)
        self.log.close()
        if self.world > 1:
            dist.barrier()   # rank 0 may still be saving: nobody tears the group down before it is done
        # Interrupted: the shell's convention (130 for SIGINT, 143 for SIGTERM), so that
        # `train.py ... && next-step` does not go on with an unfinished model.
        return 128 + self.stop_signal if self.stop_requested else 0

    def train_epoch(self) -> None:
        a = self.args
        dataset, batches, skipped = self._epoch_batches(self.epoch)
        if skipped and self.iterations_in_epoch == 0:
            self.log.info(f"| epoch {self.epoch:03d}: skipped {skipped} over-long samples (> {self.cfg.max_positions} tokens)")
        mine = shard(batches, self.rank, self.world)
        dummy = [b is None for b in mine]
        mine = [b if b is not None else batches[0] for b in mine]
        n = len(mine)
        updates_per_epoch = math.ceil(n / a.update_freq)
        k = a.validate_interval_updates
        valid_at = {round(i * updates_per_epoch / k) for i in range(1, k)} if k > 1 else set()
        start = self.iterations_in_epoch
        loader = self.log.progress(self._loader(dataset, mine[start:]), total=n - start, desc=f"epoch {self.epoch:03d}")
        window = {"loss_sum": 0.0, "sample_size": 0.0, "ntokens": 0.0, "nsentences": 0.0, "updates": 0,
                  "gnorm": 0.0, "t": time.time(), **{k: 0.0 for k in self.stat_keys}}
        group = []
        for i, batch in enumerate(loader, start):
            group.append((batch, dummy[i]))
            if len(group) < a.update_freq and i < n - 1:
                continue
            out = self.train_step(group)
            group = []
            self.iterations_in_epoch = i + 1
            if out is not None:
                for key in ("loss_sum", "sample_size", "ntokens", "nsentences", "gnorm", *self.stat_keys):
                    window[key] += out[key]
                window["updates"] += 1
                window["lr"] = out["lr"]
                if self.num_updates % a.log_interval == 0:
                    self._log_train(window)
                update_in_epoch = math.ceil((i + 1) / a.update_freq)
                if not a.disable_validation and update_in_epoch in valid_at and i < n - 1:
                    self.validate()
                    self.save(end_of_epoch=False, is_best=self._last_valid_is_best)
                elif a.save_interval_updates and self.num_updates % a.save_interval_updates == 0:
                    self.save(end_of_epoch=False)
            if self._done():
                break
        self.log.close_progress()
        if window["updates"]:
            self._log_train(window, end=not self.stop_requested)   # an interrupted epoch did not end
        if self.stop_requested or (a.max_update and self.num_updates >= a.max_update and self.iterations_in_epoch < n):
            # stopped inside the epoch: validate and save where we are
            if not self.stop_requested:
                best = self._validate_if_enabled()
                self.save(end_of_epoch=False, is_best=best)
            return
        best = self._validate_if_enabled() if self.epoch % a.validate_interval == 0 else False
        self.epoch += 1
        self.iterations_in_epoch = 0
        self.save(end_of_epoch=True, is_best=best)

    def _validate_if_enabled(self) -> bool:
        if self.args.disable_validation:
            return False
        self.validate()
        return self._last_valid_is_best

    def _log_train(self, w: dict, end: bool = False) -> None:
        if not w["updates"]:
            return
        elapsed = max(time.time() - w["t"], 1e-9)
        loss = w["loss_sum"] / max(w["sample_size"], 1) / LN2
        stats = {"epoch": self.epoch, "loss": loss, "ppl": 2 ** loss, "wps": w["ntokens"] / elapsed,
                 "ups": w["updates"] / elapsed, "wpb": w["ntokens"] / w["updates"],
                 "bsz": w["nsentences"] / w["updates"], "num_updates": self.num_updates, "lr": w["lr"],
                 "gnorm": w["gnorm"] / w["updates"]}
        if self.stat_keys:
            del stats["ppl"]                        # ELECTRA's objective is not a likelihood
            stats.update(self.task.derived_stats({k: w[k] for k in self.stat_keys}))
        if self.scaler is not None:
            stats["loss_scale"] = self.scaler.scale
        head = f"epoch {self.epoch:03d}" + (" | end of epoch" if end else "")
        self.log.log("train", stats, self.num_updates, head)
        for key in ("loss_sum", "sample_size", "ntokens", "nsentences", "gnorm", *self.stat_keys):
            w[key] = 0.0
        w["updates"], w["t"] = 0, time.time()


def main(argv=None) -> int:
    args = parse_args(argv)
    lock = None
    try:
        if int(os.environ.get("RANK", "0")) == 0 and not args.no_save:   # one training per --save-dir
            lock = SaveDirLock(Path(args.save_dir), log=lambda msg: print(msg, flush=True))
            lock.acquire()
        trainer = Trainer(args)
        return trainer.run()
    except (TrainingError, TaskError, CheckpointError, FloatingPointError, FileNotFoundError, SaveDirError,
            DictionaryError, IndexedDatasetError) as e:
        print(f"train.py: error: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        if lock is not None:
            lock.release()
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
