"""Masked-LM evaluation of a model on a binarized split at any block length, optionally with the
word order destroyed: the one evaluation loop of ``tupe-validate`` and of ``tupe-study``'s
length-generalisation and word-order sections.

* ``tokens_per_sample``: the validation text is cut into blocks of that length (the trainer's
  own blocks, masks and batching). A length past what the model's positional tables cover
  (``max_positions`` for TUPE, BERT-A and any scheme with the relative bias) is an
  ``EvaluationError`` naming both; RoPE, ALiBi and NoPE have no table and take any length.
* ``shuffle_order``: in every block the tokens that are *not* predicted (not among the masked
  positions) are permuted among their own positions (``<s>`` and padding stay), with the same
  masks and the same seeded permutation for every model: the loss then measures how much the
  model's predictions rely on word order. NoPE cannot see order at all, so its loss does not
  change (up to float summation order): the control.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Optional

import torch

from ..config import ConfigError
from ..model.electra import ElectraModel
from ..model.lengths import replace_config
from ..model.positional import RotaryEmbedding
from ..model.transformer import Encoder
from .tasks import ElectraTask, MaskedLMTask, TaskError


class EvaluationError(TaskError):
    """The evaluation asked cannot be done exactly (a length the model cannot represent)."""


def positional_limit(model: torch.nn.Module) -> Optional[int]:
    """The longest input the model's positional tables cover (None: any length)."""
    limits = [m.max_length for m in model.modules() if isinstance(m, Encoder) and m.max_length is not None]
    return min(limits, default=None)


def with_rope_scaling(model, scaling: str, factor: float):
    """``model`` with its RoPE frequencies scaled for evaluation (linear, dynamic NTK or YaRN,
    ``positional.RotaryEmbedding``); the weights are untouched. Only RoPE models have them."""
    encoders = [m for m in model.modules() if isinstance(m, Encoder)]
    if not all(e.rotary is not None for e in encoders):
        raise EvaluationError(f"RoPE scaling needs a RoPE model; this is {model.cfg.name}")
    try:
        replace_config(model, rope_scaling=scaling, rope_scaling_factor=float(factor))   # validated
    except ConfigError as e:
        raise EvaluationError(f"RoPE scaling: {e}") from None
    for encoder in encoders:
        encoder.rotary = RotaryEmbedding(encoder.cfg)
    return model


def make_task(model, data: str, tokens_per_sample: int, *, batch: int = 16, max_tokens: Optional[int] = None,
              seed: int = 1, mask_prob: float = 0.15, leave_unmasked_prob: float = 0.1,
              random_token_prob: float = 0.1, sample_break_mode: str = "complete", mask_whole_words: bool = False,
              required_batch_size_multiple: int = 1):
    """The trainer's own task for ``model`` on ``data`` (the same blocks, masks at epoch 0, batching)."""
    limit = positional_limit(model)
    if limit is not None and tokens_per_sample > limit:
        name = getattr(getattr(model, "cfg", None), "name", "this model")
        raise EvaluationError(f"blocks of {tokens_per_sample} tokens exceed max_positions={limit}: the positional "
                              f"tables of {name} cover {limit} positions (RoPE, ALiBi and NoPE have none and take "
                              f"any length); evaluate at {limit} tokens or fewer, or resize the tables first "
                              f"(tupe-validate --max-positions; tupe.model.lengths.resize_positions)")
    cls = ElectraTask if isinstance(model, ElectraModel) else MaskedLMTask
    task = cls(argparse.Namespace(
        data=str(data), tokens_per_sample=tokens_per_sample, sample_break_mode=sample_break_mode, mask_prob=mask_prob,
        leave_unmasked_prob=leave_unmasked_prob, random_token_prob=random_token_prob, seed=seed,
        mask_whole_words=mask_whole_words, max_tokens=max_tokens, max_sentences=batch, max_tokens_valid=None,
        max_sentences_valid=None, required_batch_size_multiple=required_batch_size_multiple))
    if len(task.dictionary) != model.cfg.vocab_size:
        raise TaskError(f"{data}/dict.txt gives {len(task.dictionary)} symbols with <mask>, the model has "
                        f"{model.cfg.vocab_size}: wrong data for this checkpoint")
    return task


def shuffle_unmasked(batch: dict, pad: int, generator: torch.Generator) -> dict:
    """The batch with each row's unpredicted tokens permuted among their positions (masks kept)."""
    tokens, target = batch["tokens"].clone(), batch["target"]
    movable = target.eq(pad) & tokens.ne(pad)                                          # (B, T)
    movable[:, 0] = False                                                              # <s> stays first
    for b in range(tokens.size(0)):
        where = movable[b].nonzero().flatten()
        tokens[b, where] = tokens[b, where[torch.randperm(len(where), generator=generator)]]
    return {**batch, "tokens": tokens}


def evaluate(model, task, subset: str = "valid", device=None, autocast=None, shuffle_order: bool = False,
             skip_invalid: bool = False, seed: int = 1) -> dict:
    """Loss (bits per masked token) and perplexity of ``model`` on ``subset`` (ELECTRA: its
    objective and statistics), with the numbers of masked tokens, samples and skipped samples."""
    device = device or next(model.parameters()).device
    autocast = autocast or contextlib.nullcontext()
    if shuffle_order and isinstance(task, ElectraTask):
        raise EvaluationError("the word-order probe measures the masked-LM loss; an ELECTRA model has its own objective")
    dataset = task.dataset(subset, 0)
    limit = positional_limit(model) or task.args.tokens_per_sample
    batches, skipped = task.eval_batches(dataset, subset, limit, skip_invalid)
    generator = torch.Generator().manual_seed(seed)
    loss_sum, count, outputs = 0.0, 0, []
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, collate_fn=task.collater())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in loader:
                if shuffle_order:
                    batch = shuffle_unmasked(batch, task.pad, generator)
                loss, n, out = task.loss(model, batch, device, autocast)
                loss_sum += loss.item()
                count += n
                if out is not None:
                    outputs.append(out)
    finally:
        model.train(was_training)
    return {**task.metrics(loss_sum, count, outputs), "masked_tokens": count, "samples": len(dataset) - skipped,
            "skipped": skipped}
