"""The training engine behind ``train.py`` / ``tupe-train`` (masked-LM pretraining).

One process or ``torchrun``-launched data parallel (NCCL on GPUs, gloo on CPU). A run killed
at any point and restarted with the same command resumes from ``checkpoint_last.pt`` and ends
with the same weights (bitwise on CPU in fp32): model, optimizer, loss scaler, RNG and the
position in the epoch's batch list are all in the checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist

from ..checkpoint import (
    CheckpointError,
    build_and_load,
    checkpoint_tensors,
    fairseq_state_dict,
    lm_head_trained,
    load_electra_state,
    progress_of,
)
from ..checkpoint.run import SavePolicy, apply_retention, describe_os_error, save_checkpoints
from ..data.dictionary import DictionaryError
from ..data.indexed_dataset import IndexedDatasetError
from ..logs import cli_logging
from .cpu import retain_freed_memory
from .data import shard
from .devices import apply_speed_options, autocast, choose_precision, init_distributed
from .logger import MetricsLogger
from .optim import DynamicLossScaler, FairseqAdam, PolynomialDecay
from .options import checkpoint_args, parse_args
from .restore import TrainingError, find_restore, load_weights, run_config, write_run_files
from .savedir import SaveDirError, SaveDirLock
from .tasks import TaskError, build_task

LN2 = math.log(2)


# --------------------------------------------------------------------------- trainer
class Trainer:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rank, self.world, self.device = init_distributed(args)
        self.master = self.rank == 0
        if self.device.type == "cpu":
            retain_freed_memory()                    # reuse pages step to step (see cpu.py)
        self.save_dir = Path(args.save_dir)
        self.save_policy = SavePolicy.from_args(args)
        self.log = MetricsLogger(args.log_format, self.save_dir if self.master else None,
                                 args.tensorboard_logdir, enabled=self.master)
        torch.manual_seed(args.seed)
        self.task = build_task(args)
        self.dictionary = self.task.dictionary
        # the checkpoint to start from, read once: the model's architecture comes from it
        self.restore_from = find_restore(args, self.save_dir, electra=self.task.name == "electra")
        self.cfg = run_config(args, self.dictionary, self.restore_from, self.log.info)
        self.model = self.task.build_model(self.cfg)  # TupeModel, or ElectraModel for --task electra
        self.stat_keys = self.task.stat_keys         # task statistics logged beside the loss (ELECTRA)
        self.task.prepare_model(self.model)          # classification heads: after the BERT init
        self.model.to(self.device)
        apply_speed_options(self.model, self.cfg, args, self.device, self.log.info)
        self.precision = choose_precision(args, self.device, self.log.info)
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
        self.log.start_update = self.num_updates      # metrics.jsonl continues from here (logger.continue_history)
        self.schedule = self._schedule()
        self.ddp = self.model
        if self.world > 1:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=args.find_unused_parameters)

    # ------------------------------------------------------------------ configuration
    def autocast(self):
        return autocast(self.precision, self.device)

    def _schedule(self) -> PolynomialDecay:
        a = self.args
        total, warmup = a.total_num_update, a.warmup_updates
        if a.warmup_ratio is not None:   # the original counts batches, not update-freq groups
            _, batches, _ = self._epoch_batches(1)
            total = math.ceil(len(batches) / self.world) * a.max_epoch
            warmup = int(total * a.warmup_ratio)
        try:
            return PolynomialDecay(a.lr[0], warmup, total, a.end_learning_rate, a.power)
        except ValueError as e:                    # --total-num-update below --warmup-updates
            raise TrainingError(f"--lr-scheduler polynomial_decay: {e}") from None

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
        for subset in self._valid_subsets():
            dataset, batches, skipped = self._valid_batches(subset)
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
            results[subset] = stats = {**stats, **({"skipped": skipped} if skipped else {})}
            self.log.log("valid", stats, self.num_updates, f"epoch {self.epoch:03d} | valid on '{subset}' subset")
        metric = next(iter(results.values()))[a.best_checkpoint_metric]   # a name check_validation checked
        better = self.best is None or (metric > self.best if a.maximize_best_checkpoint_metric else metric < self.best)
        if better and math.isfinite(metric):
            self.best = metric
            self.best_record = {"num_updates": self.num_updates, "epoch": self.epoch, "valid": results}
        self._last_valid_is_best = bool(better)
        return results

    def _valid_subsets(self) -> list[str]:
        return [s for s in self.args.valid_subset.split(",") if s]

    def _valid_batches(self, subset: str):
        """A validation subset's dataset (epoch 0: fixed masks, comparable across epochs), its
        batches and its number of skipped over-long samples (Task.eval_batches)."""
        dataset = self.task.dataset(subset, 0)
        return (dataset, *self.task.eval_batches(dataset, subset, self.cfg.max_positions,
                                                 self.args.skip_invalid_size_inputs_valid_test))

    def check_validation(self) -> None:
        """What validation would refuse, refused before the first update rather than after the
        first epoch's training (which would be lost: validation comes before the epoch's save)."""
        if self.args.disable_validation:
            return
        self.task.check_metric(self.args.best_checkpoint_metric, self.args.maximize_best_checkpoint_metric)
        for subset in self._valid_subsets():
            self._valid_batches(subset)

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        args = checkpoint_args(self.args, self.cfg)
        if not getattr(self.model, "lm_head_trained", True):    # restored with a new head this task leaves untrained
            args.lm_head_trained = False
        return {
            "args": args,
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
        """Write this run's checkpoints (names, manifest and retention: checkpoint/run.py)."""
        if not self.master or self.args.no_save:
            return
        epoch = self.epoch - 1 if end_of_epoch else self.epoch   # the epoch has been advanced already
        names = self.save_policy.names(end_of_epoch, epoch, self.num_updates, is_best)
        if names:
            try:
                save_checkpoints(self.save_dir, self.state(), names, self.num_updates)
            except CheckpointError as e:
                raise TrainingError(str(e)) from None
            apply_retention(self.save_dir, self.save_policy)

    def restore(self) -> None:
        r = self.restore_from
        if r is None:
            return
        if self.task.name == "electra":
            load_electra_state(self.model, r.state["model"], r.path, "this command's model (--generator-* flags)")
        else:
            loaded = r.loaded or build_and_load(r.cfg, checkpoint_tensors(r.state["model"], r.path), r.path)
            load_weights(self.model, loaded, r.path, self.log.info, getattr(self.task, "label_words", None),
                         self.args.position_init)
            if self.task.name != "masked_lm":      # a head this task does not train stays as it came
                self.model.lm_head_trained = loaded.lm_head_trained if r.loaded is not None else lm_head_trained(r.state)
        self.restore_from = None                         # the state is not needed any more
        self._restore_progress(r.state, r.path)

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
        """The training, with SIGTERM/SIGINT saving and stopping it; the previous handlers are put
        back at the end (a handler bound to the trainer would keep it, its DDP wrapper and the
        process group alive until interpreter shutdown, where gloo's threads may then abort)."""
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self) -> int:
        a = self.args
        if self.master and not a.no_save:
            write_run_files(a, self.task, self.save_dir)
        self.task.check_data([] if a.disable_validation else self._valid_subsets())
        self.check_validation()
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
        if self._done() and not self.stop_requested:       # a resumed run that is already finished
            limit = f"--max-update {a.max_update}" if a.max_update and self.num_updates >= a.max_update \
                else f"--max-epoch {a.max_epoch}"
            self.log.info(f"| nothing to train: the checkpoint is at update {self.num_updates} (epoch "
                          f"{self.epoch}), which reaches {limit}; raise it to train on")
        while not self._done():
            self.train_epoch()
        if self.stop_requested:
            self.save(end_of_epoch=False)
            self.log.info(f"| stopped at update {self.num_updates} by {signal.Signals(self.stop_signal).name}: the "
                          f"run is NOT finished (exit code {128 + self.stop_signal}); rerun the same command to resume")
        self.log.info(f"| done training in {time.time() - self.log.start:.1f} seconds, {self.num_updates} updates")
        if self.master and self.best_record is not None:
            best = {"best_checkpoint_metric": a.best_checkpoint_metric, "best": self.best, **self.best_record}
            self.log.write_record({"type": "best", **best})
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
            limit = self.task.length_limit(self.cfg.max_positions)
            self.log.info(f"| epoch {self.epoch:03d}: skipped {skipped} of {len(dataset)} samples "
                          f"({100 * skipped / len(dataset):.1f}%), longer than {limit} tokens")
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
    cli_logging()
    args = parse_args(argv)
    lock = trainer = None
    save_dir = Path(args.save_dir)
    created = not save_dir.exists()
    try:
        if int(os.environ.get("RANK", "0")) == 0 and not args.no_save:   # one training per --save-dir
            lock = SaveDirLock(save_dir, log=lambda msg: print(msg, flush=True))
            lock.acquire()
        trainer = Trainer(args)
        return trainer.run()
    except (TrainingError, TaskError, CheckpointError, FloatingPointError, FileNotFoundError, SaveDirError,
            DictionaryError, IndexedDatasetError) as e:
        print(f"train.py: error: {e}", file=sys.stderr, flush=True)
        return 1
    except OSError as e:                  # a write that failed outside a checkpoint save (metrics.jsonl, ...)
        print(f"train.py: error: could not write {e.filename or 'a file'}: {describe_os_error(e, save_dir)}. "
              f"The checkpoints written so far are intact: free space or fix the directory, then rerun the same "
              f"command to resume", file=sys.stderr, flush=True)
        return 1
    finally:
        if trainer is not None:
            trainer.log.close()               # also after an error: no open file left in SAVE_DIR
            trainer = None                    # the model and its DDP wrapper go before the process group
            gc.collect()
        if lock is not None:
            lock.release()
        if created and save_dir.is_dir() and not any(save_dir.iterdir()):
            save_dir.rmdir()                  # a failed start leaves no empty run folder behind
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
