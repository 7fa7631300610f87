"""Positional tables resized after training: a trained model run past (or short of) its length.

A scheme with learned positional tables (TUPE-A/R's untied positions, BERT-A's absolute
embedding, the relative bias's distance table) covers ``max_positions`` positions; a longer input
is refused. ``resize_positions`` gives the tables rows for another number of positions, in place:

* shorter: rows past the new length are dropped (outputs on inputs that fit are unchanged);
* longer, ``init="copy"``: the new rows repeat the trained ones (position L + k takes the row of
  position k mod L: how Longformer extended RoBERTa's 512 positions), so the new positions start
  from trained values;
* longer, ``init="random"``: the new rows are drawn as at initialisation (normal, std 0.02):
  positions the model never saw, as in a model trained with a larger table (``tupe-study``'s
  lengths section).

Outputs on inputs of up to the old length are unchanged either way (the rows they use are kept;
the relative bias's buckets are those of the same distances). RoPE, ALiBi and NoPE have no table
(they take any length), and a RoPE model's ``max_positions`` is its trained length, which its
scaling reads (``rope_scaling``): they are refused. See docs/study.md (behaviour past the trained
length).
"""

from __future__ import annotations

import dataclasses

from torch import nn

from ..config import TupeConfig
from .positional import POSITION_INITS, has_tables
from .transformer import Encoder


def resize_refusal(cfg: TupeConfig):
    """Why the positional tables of a model with ``cfg`` cannot be resized, or None."""
    if cfg.pos_encoding == "rope":
        return (f"{cfg.name}: a RoPE model's max_positions is its trained length, which its scaling reads; "
                + ("its relative bias's table keeps it at that length" if cfg.rel_pos else
                   "run it past that length with rope_scaling (tupe-validate --rope-scaling)"))
    if not has_tables(cfg):
        return f"{cfg.name} has no positional table to resize: it takes inputs of any length"
    return None


def replace_config(model: nn.Module, **changes) -> None:
    """Every configuration a module of ``model`` holds (``cfg``; ELECTRA's ``gen_cfg``) replaced by
    one with ``changes`` (validated first: a ConfigError changes nothing); one config shared by
    several modules stays shared."""
    new: dict[int, TupeConfig] = {}                # old config (by identity) -> changed
    holders = [(module, attr, getattr(module, attr)) for module in model.modules() for attr in ("cfg", "gen_cfg")
               if isinstance(getattr(module, attr, None), TupeConfig)]
    for _, _, old in holders:
        if id(old) not in new:
            new[id(old)] = dataclasses.replace(old, **changes)
    for module, attr, old in holders:
        setattr(module, attr, new[id(old)])


def resize_positions(model: nn.Module, max_positions: int, init: str = "copy") -> nn.Module:
    """``model`` (any module holding TUPE encoders: TupeModel, ElectraModel, a tupe.hf model)
    with positional tables for ``max_positions`` positions, in place; its configurations say the
    new ``max_positions``. New parameters replace the tables: build an optimizer after this.
    Raises ValueError for a model without tables (RoPE, ALiBi, NoPE) or a bad ``init``."""
    if init not in POSITION_INITS:
        raise ValueError(f"init {init!r}: one of {', '.join(POSITION_INITS)}")
    encoders = [m for m in model.modules() if isinstance(m, Encoder)]
    if not encoders:
        raise ValueError("no TUPE encoder in this model")
    if why := resize_refusal(encoders[0].cfg):
        raise ValueError(why)
    replace_config(model, max_positions=max_positions)
    for encoder in encoders:
        for module in encoder.positional_modules():
            module.resize(max_positions, init)
        encoder.max_length = min((m.max_length for m in encoder.positional_modules() if m.max_length is not None),
                                 default=None)
        encoder._bias_cache = {}
    return model
