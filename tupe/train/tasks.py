"""The two tasks of the engine: ``masked_lm`` (pretraining) and ``sentence_prediction`` (GLUE).

A task knows its dictionary, builds a split's dataset, batches it for an epoch, computes the
loss of a batch and turns validation outputs into metrics. The trainer does the rest.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ConfigError
from ..data.dictionary import MASK, Dictionary
from ..data.indexed_dataset import MMapIndexedDataset
from ..data.indexed_dataset import exists as dataset_exists
from ..model import TupeModel
from ..model.electra import ElectraModel, batch_seed
from .data import (
    MaskedLMDataset,
    Masker,
    TaskError,
    TokenBlockDataset,
    batch_by_size,
    collate,
    ends_word_table,
    epoch_batches,
    filter_by_size,
)
from .metrics import classification_metrics, regression_metrics
from .options import generator_config

LN2 = math.log(2)
HEAD = TupeModel.DEFAULT_HEAD
# Each validation metric's direction, checked against --maximize-best-checkpoint-metric (None:
# a statistic with no better direction, ELECTRA's share of replaced tokens: either is accepted).
HIGHER_IS_BETTER = {"loss": False, "ppl": False, "gen_loss": False, "disc_loss": False, "replaced": None,
                    "accuracy": True, "f1": True, "mcc": True, "pearson": True, "spearman": True, "disc_acc": True}


def load_dictionary(path: Path) -> Dictionary:
    if not path.is_file():
        raise TaskError(f"{path}: dictionary not found (is {path.parent} a tupe-preprocess output?)")
    d = Dictionary.load(path)
    d.add_symbol(MASK)
    return d


def open_split(prefix: Path, vocab_size: Optional[int] = None) -> MMapIndexedDataset:
    """A binarized split, checked: present, not empty, and (with ``vocab_size``) every token id
    inside the dictionary (one pass over the .bin; data binarized with another dict.txt fails here,
    before any training step, not as an index error in the middle of an epoch)."""
    if not dataset_exists(prefix):
        raise TaskError(f"{prefix}.bin/.idx not found")
    data = MMapIndexedDataset(prefix)
    if len(data) == 0:
        raise TaskError(f"{prefix}: empty split")
    if vocab_size is not None and data.num_tokens:
        top = int(data._bin.max())
        if top >= vocab_size:
            raise TaskError(f"{prefix}.bin: token id {top} is outside the dictionary ({vocab_size} symbols): "
                            f"it was binarized with another dict.txt")
    return data


class Task:
    """What every task shares: the model it trains (a TupeModel unless a task says otherwise),
    a hook after the model is built, and the per-batch statistics it logs beside the loss
    (``loss`` returns them as its third value when there are any; none by default)."""

    stat_keys: tuple[str, ...] = ()

    def build_model(self, cfg):
        return TupeModel(cfg)

    def prepare_model(self, model) -> None:
        pass

    def length_limit(self, max_positions: int) -> int:
        """The longest sample the task keeps (longer ones are skipped): the model's max_positions."""
        return max_positions

    # why samples are over-long and what else helps, in the error below (masked LM / sentences)
    over_long_hint = ""

    def eval_batches(self, dataset, subset: str, max_positions: int, skip_invalid: bool):
        """An evaluation split's batches (the trainer's validation, tupe-validate) and its number of
        over-long samples, which are an error unless ``skip_invalid``
        (--skip-invalid-size-inputs-valid-test, as the original)."""
        batches, skipped = self.batches(dataset, 0, max_positions, train=False)
        if skipped and not skip_invalid:
            raise TaskError(f"{subset}: {skipped} samples are longer than {self.length_limit(max_positions)} "
                            f"tokens{self.over_long_hint}; pass --skip-invalid-size-inputs-valid-test")
        return batches, skipped

    def metric_names(self) -> list[str]:
        """The names validation reports (for --best-checkpoint-metric), from ``metrics`` itself
        on a stand-in of one batch's outputs (``probe_outputs``)."""
        return list(self.metrics(0.0, 1.0, self.probe_outputs()))

    def check_metric(self, name: str, maximize: bool) -> None:
        """``name`` (--best-checkpoint-metric) is one validation reports, and ``maximize``
        (--maximize-best-checkpoint-metric) its direction (``HIGHER_IS_BETTER``), or a TaskError:
        otherwise checkpoint_best.pt would silently keep the worst validation."""
        names = self.metric_names()
        if name not in names:
            raise TaskError(f"--best-checkpoint-metric {name!r} is not a validation metric of {self.name} "
                            f"(choose from {', '.join(names)})")
        higher = HIGHER_IS_BETTER.get(name)
        if higher is not None and higher != maximize:
            raise TaskError(f"--best-checkpoint-metric {name}: " + (
                f"higher is better; add --maximize-best-checkpoint-metric (without it the best checkpoint would be "
                f"the one of the lowest {name})" if higher else
                f"lower is better; leave out --maximize-best-checkpoint-metric (with it the best checkpoint would be "
                f"the one of the highest {name})"))

    def probe_outputs(self) -> list:
        return []


# --------------------------------------------------------------------------- masked LM
def masked_lm_loss(model, batch: dict, device, pad: int, autocast) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy (nats) over the masked positions only, and their number (counted
    from the batch as collated, on the host: on a GPU, reading it from the device would make the
    host wait for the LM head before queuing the backward pass)."""
    count = int(batch["target"].ne(pad).sum())
    tokens = batch["tokens"].to(device, non_blocking=True)
    target = batch["target"].to(device, non_blocking=True)
    masked = target.ne(pad)
    with autocast:
        logits = model(tokens, masked_tokens=masked)                    # (N, V): masked positions only
    return F.cross_entropy(logits.float(), target[masked], reduction="sum"), count


def check_data_dir(path: Path) -> None:
    """A task's data directory exists; a text file gets the command that preprocesses it."""
    if path.is_file():
        raise TaskError(f"{path} is a file; train.py reads binarized data directories. Preprocess it "
                        f"first, e.g. tupe-preprocess pretrain --input {path} --destdir data-bin/NAME "
                        f"(a labelled TSV: tupe-preprocess task; see docs/data.md)")
    if not path.is_dir():
        raise TaskError(f"{path}: data directory not found")


def check_shard_dictionaries(dirs: list[Path], nspecial: int) -> None:
    """Every shard of ``DIR1:DIR2:...`` binarized with the first one's dictionary (the one the
    run reads every shard with): the same symbols in the same order, else a TaskError naming
    the first difference. Shards preprocessed one by one, each with its own BPE codes and
    dict.txt, have token ids of the same range that mean other words: without this check their
    epochs train on scrambled text, silently."""
    for d in dirs[1:]:
        if not (d / "dict.txt").is_file():
            continue                                    # nothing to compare with (ids are still range-checked)
        theirs, ours = (Dictionary.load(x / "dict.txt").symbols for x in (d, dirs[0]))   # as written (no <mask>)
        if theirs == ours:
            continue
        i = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b), min(len(theirs), len(ours)))
        here, there = (repr(x[i]) if i < len(x) else "the end of the file" for x in (theirs, ours))
        raise TaskError(f"{d / 'dict.txt'} line {i - nspecial + 1}: {here} where "
                        f"{dirs[0] / 'dict.txt'} has {there}: the shards were binarized with different "
                        f"dictionaries, and every shard is read with the first's. Preprocess each shard with the "
                        f"first's vocabulary: tupe-preprocess pretrain --input ... --bpe-code {dirs[0] / 'bpe-code'} "
                        f"--dict {dirs[0] / 'dict.txt'}")


class MaskedLMTask(Task):
    name = "masked_lm"
    over_long_hint = " (a sentence longer than the block is a block of its own)"

    def __init__(self, args):
        self.args = args
        self.data_dirs = [Path(p) for p in args.data.split(":") if p]
        for d in self.data_dirs:
            check_data_dir(d)
        self.dictionary = load_dictionary(self.data_dirs[0] / "dict.txt")
        check_shard_dictionaries(self.data_dirs, self.dictionary.nspecial)
        self.pad = self.dictionary.pad()
        self.masker = Masker(self.dictionary.index(MASK), len(self.dictionary), self.pad,
                             self.dictionary.nspecial, args.mask_prob, args.leave_unmasked_prob,
                             args.random_token_prob, args.seed,
                             ends_word_table(self.dictionary) if args.mask_whole_words else None)
        self._blocks: dict = {}

    def dataset(self, split: str, epoch: int):
        directory = self.data_dirs[(epoch - 1) % len(self.data_dirs)] if split == "train" else self.data_dirs[0]
        prefix = directory / split
        if str(prefix) not in self._blocks:
            self._blocks[str(prefix)] = TokenBlockDataset(open_split(prefix, len(self.dictionary)), self.args.tokens_per_sample,
                                                          self.args.sample_break_mode, self.dictionary.bos())
        return MaskedLMDataset(self._blocks[str(prefix)], self.masker, epoch)

    def check_data(self, valid_subsets: list[str]) -> None:
        """Open every shard's train split and the validation splits now: a missing, damaged or
        foreign-dictionary file is an error before the first training step, not in epoch N."""
        for epoch in range(1, len(self.data_dirs) + 1):
            self.dataset("train", epoch)
        for subset in valid_subsets:
            self.dataset(subset, 0)

    def length_limit(self, max_positions: int) -> int:
        """Blocks longer than --tokens-per-sample (a sentence longer than the block size is a block
        of its own) are skipped, as the original does, also when the model's tables are longer."""
        return min(max_positions, self.args.tokens_per_sample)

    def batches(self, dataset, epoch: int, max_positions: int, train: bool):
        a = self.args
        return epoch_batches(dataset, a.seed, epoch, a.max_tokens if train else (a.max_tokens_valid or a.max_tokens),
                             a.max_sentences if train else (a.max_sentences_valid or a.max_sentences),
                             a.required_batch_size_multiple, self.length_limit(max_positions), shuffle=train)

    def collater(self):
        return partial(collate, pad_idx=self.pad)

    def loss(self, model, batch: dict, device, autocast):
        loss, n = masked_lm_loss(model, batch, device, self.pad, autocast)
        return loss, n, None

    def metrics(self, loss_sum: float, sample_size: float, outputs) -> dict:
        bits = loss_sum / max(sample_size, 1) / LN2
        return {"loss": bits, "ppl": 2 ** bits}


# --------------------------------------------------------------------------- ELECTRA
class ElectraDataset(MaskedLMDataset):
    """MaskedLMDataset whose samples also carry the epoch (for the batch's sampling seed)."""

    def __getitem__(self, i: int):
        return (*super().__getitem__(i), self.epoch)


def collate_electra(samples, pad_idx: int) -> dict:
    return {**collate([s[:3] for s in samples], pad_idx), "epoch": samples[0][3]}


class ElectraTask(MaskedLMTask):
    """Replaced-token detection (``--task electra``): the masked-LM data and masks, a generator
    and a discriminator (``model/electra.py``). The loss handed to the trainer is summed like
    masked_lm's (per masked token); the statistics below are logged beside it."""

    name = "electra"
    # summed per batch, all-reduced, turned into the logged metrics by ``derived_stats``
    stat_keys = ("mlm_loss", "masked", "rtd_loss", "tokens", "rtd_correct", "replaced")

    def build_model(self, cfg):

        try:
            gen_cfg = generator_config(self.args, cfg)
        except (ConfigError, ValueError) as e:
            raise TaskError(f"ELECTRA generator: {e} (see --generator-size-divisor / --generator-*)") from None
        return ElectraModel(cfg, gen_cfg, self.args.disc_weight)

    def dataset(self, split: str, epoch: int):
        base = super().dataset(split, epoch)
        return ElectraDataset(base.blocks, base.masker, epoch)

    def collater(self):
        return partial(collate_electra, pad_idx=self.pad)

    def loss(self, model, batch: dict, device, autocast):

        tokens = batch["tokens"].to(device, non_blocking=True)
        target = batch["target"].to(device, non_blocking=True)
        seed = batch_seed(self.args.seed, batch["epoch"], batch["id"].tolist())
        loss, stats = model(tokens, target, seed, autocast)
        return loss, int(stats["masked"]), {k: float(stats[k]) for k in self.stat_keys}

    @staticmethod
    def derived_stats(s: dict) -> dict:
        """gen_loss: generator MLM (bits per masked token); disc_loss: replaced-token BCE (bits per
        token); disc_acc: discriminator accuracy over tokens; replaced: fraction of tokens replaced."""
        tokens, masked = max(s["tokens"], 1), max(s["masked"], 1)
        return {"gen_loss": s["mlm_loss"] / masked / LN2, "disc_loss": s["rtd_loss"] / tokens / LN2,
                "disc_acc": s["rtd_correct"] / tokens, "replaced": s["replaced"] / tokens}

    def probe_outputs(self) -> list:
        return [{k: 0.0 for k in self.stat_keys}]

    def metrics(self, loss_sum: float, sample_size: float, outputs) -> dict:
        out = {"loss": loss_sum / max(sample_size, 1) / LN2}   # ELECTRA's objective, per masked token
        if outputs:
            out.update(self.derived_stats({k: sum(o[k] for o in outputs) for k in self.stat_keys}))
        return out


# --------------------------------------------------------------------------- sentence prediction
class SentencePredictionDataset(torch.utils.data.Dataset):
    """init_token + input0 + separator_token + input1 (each input ends in ``</s>``), truncated
    to ``max_positions`` with ``truncate``; label index (class) or float (regression)."""

    def __init__(self, inputs: list[MMapIndexedDataset], labels, init_token: Optional[int],
                 separator_token: Optional[int], max_positions: int, truncate: bool):
        self.inputs, self.labels = inputs, labels
        self.init, self.sep, self.max_positions, self.truncate = init_token, separator_token, max_positions, truncate
        extra = (init_token is not None) + (separator_token is not None and len(inputs) > 1)
        raw = sum(d.sizes.astype(np.int64) for d in inputs) + extra
        self.sizes = np.minimum(raw, max_positions) if truncate else raw

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, i: int):
        parts = []
        if self.init is not None:
            parts.append(np.array([self.init]))
        parts.append(self.inputs[0][i].numpy())
        if len(self.inputs) > 1:
            if self.sep is not None:
                parts.append(np.array([self.sep]))
            parts.append(self.inputs[1][i].numpy())
        tokens = np.concatenate(parts)
        if self.truncate:
            tokens = tokens[: self.max_positions]
        return i, tokens, self.labels[i] if self.labels is not None else 0


def collate_sentences(samples, pad_idx: int, regression: bool) -> dict:
    T = max(len(s[1]) for s in samples)
    tokens = torch.full((len(samples), T), pad_idx, dtype=torch.long)
    for b, (_, x, _) in enumerate(samples):
        tokens[b, : len(x)] = torch.from_numpy(x)
    target = torch.tensor([s[2] for s in samples], dtype=torch.float32 if regression else torch.long)
    return {"id": torch.tensor([s[0] for s in samples]), "tokens": tokens, "target": target,
            "nsentences": len(samples), "ntokens": int(tokens.ne(pad_idx).sum())}


class SentencePredictionTask(Task):
    name = "sentence_prediction"
    over_long_hint = " (--truncate-sequence cuts them to fit)"

    def __init__(self, args):
        self.args = args
        self.data_dir = Path(args.data)
        check_data_dir(self.data_dir)
        self.dictionary = load_dictionary(self.data_dir / "input0" / "dict.txt")
        self.pad = self.dictionary.pad()
        self.regression = args.regression_target
        self.n_inputs = 2 if (self.data_dir / "input1").is_dir() else 1
        self.label_dict = None
        self.positive = None
        if not self.regression:
            self.label_dict = Dictionary.load(self.data_dir / "label" / "dict.txt") \
                if (self.data_dir / "label" / "dict.txt").is_file() else None
            if self.label_dict is None:
                raise TaskError(f"{self.data_dir / 'label' / 'dict.txt'}: label dictionary not found")
            words = self.label_words
            if len(words) < args.num_classes:
                raise TaskError(f"{self.data_dir / 'label' / 'dict.txt'} has {len(words)} labels, "
                                f"--num-classes is {args.num_classes}")
            if args.num_classes == 2 and "1" in words:
                self.positive = words.index("1")      # GLUE's F1 is for the label word "1"
        self._cache: dict = {}

    @property
    def label_words(self) -> list[str]:
        return self.label_dict.words()

    def prepare_model(self, model) -> None:
        model.register_classification_head(self.args.classification_head_name, self.args.num_classes)

    def _labels(self, split: str, n: int):
        if self.regression:
            path = self.data_dir / "label" / f"{split}.label"
            if not path.is_file():
                if split.startswith("test"):
                    return None
                raise TaskError(f"{path}: regression labels not found")
            values = []
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                try:
                    values.append(float(line))
                except ValueError:
                    raise TaskError(f"{path}:{lineno}: {line!r} is not a number") from None
            if len(values) != n:
                raise TaskError(f"{path}: {len(values)} labels for {n} inputs")
            return values
        prefix = self.data_dir / "label" / split
        if not dataset_exists(prefix):
            if split.startswith("test"):
                return None
            raise TaskError(f"{prefix}.bin/.idx not found")
        data = MMapIndexedDataset(prefix)
        if len(data) != n:
            raise TaskError(f"{prefix}: {len(data)} labels for {n} inputs")
        out = []
        for i in range(n):
            idx = int(data[i][0]) - self.label_dict.nspecial
            if not 0 <= idx < self.args.num_classes:
                word = self.label_dict[int(data[i][0])] if int(data[i][0]) < len(self.label_dict) else "?"
                raise TaskError(f"{prefix}: row {i + 1}: label {word!r} is not one of the "
                                f"{self.args.num_classes} classes {self.label_words[:self.args.num_classes]}")
            out.append(idx)
        return out

    def dataset(self, split: str, epoch: int):
        if split not in self._cache:
            inputs = []
            for k in range(self.n_inputs):
                inputs.append(open_split(self.data_dir / f"input{k}" / split, len(self.dictionary)))
            if self.n_inputs == 2 and len(inputs[0]) != len(inputs[1]):
                raise TaskError(f"{self.data_dir}: input0/{split} has {len(inputs[0])} rows, "
                                f"input1/{split} has {len(inputs[1])}")
            a = self.args
            self._cache[split] = SentencePredictionDataset(
                inputs, self._labels(split, len(inputs[0])), a.init_token, a.separator_token,
                a.max_positions, a.truncate_sequence)
        return self._cache[split]

    def batches(self, dataset, epoch: int, max_positions: int, train: bool):
        """Shuffled order (not length-sorted), as the original; then shuffled batches."""
        a = self.args
        order = np.random.default_rng([a.seed, epoch, 2]).permutation(len(dataset)) if train \
            else np.arange(len(dataset))
        order, skipped = filter_by_size(order, dataset.sizes, max_positions)
        batches = batch_by_size(order, dataset.sizes, a.max_tokens if train else (a.max_tokens_valid or a.max_tokens),
                                a.max_sentences if train else (a.max_sentences_valid or a.max_sentences),
                                a.required_batch_size_multiple)
        if train:
            perm = np.random.default_rng([a.seed, epoch, 3]).permutation(len(batches))
            batches = [batches[i] for i in perm]
        return batches, skipped

    def check_data(self, valid_subsets: list[str]) -> None:
        for split in ["train", *valid_subsets]:
            self.dataset(split, 0)

    def collater(self):
        return partial(collate_sentences, pad_idx=self.pad, regression=self.regression)

    def loss(self, model, batch: dict, device, autocast):
        tokens = batch["tokens"].to(device, non_blocking=True)
        target = batch["target"].to(device, non_blocking=True)
        with autocast:
            logits = model(tokens, classification_head_name=self.args.classification_head_name)
        logits = logits.float()
        if self.regression:
            pred = logits.view(-1)
            loss = F.mse_loss(pred, target, reduction="sum")
        else:
            loss = F.cross_entropy(logits, target, reduction="sum")
            pred = logits.argmax(-1)
        return loss, len(target), (pred.detach().cpu(), target.detach().cpu())

    def probe_outputs(self) -> list:
        return [(torch.zeros(2), torch.zeros(2))]   # (predictions, targets) of a batch of two

    def metrics(self, loss_sum: float, sample_size: float, outputs) -> dict:
        out = {"loss": loss_sum / max(sample_size, 1) / LN2}
        if outputs:
            pred = torch.cat([p for p, _ in outputs]).numpy()
            target = torch.cat([t for _, t in outputs]).numpy()
            if self.regression:
                out.update(regression_metrics(pred, target))
            else:
                out.update(classification_metrics(pred, target, self.positive))
        return out


def build_task(args):
    return {"sentence_prediction": SentencePredictionTask, "electra": ElectraTask}.get(args.task, MaskedLMTask)(args)
