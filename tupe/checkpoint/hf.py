"""Transformers folders (``tupe.hf``): the same tensors as the native model under other names.
Reading one needs no transformers install: config.json holds every TupeConfig field."""

from __future__ import annotations

import json
import logging
from dataclasses import fields as dc_fields
from pathlib import Path
from typing import Optional

import torch

from ..config import TupeConfig
from ..model import TupeModel
from .errors import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, PathLike
from .fairseq import LM_HEAD_TRAINED, build_and_load, fresh_lm_head
from .native import load_safetensors

log = logging.getLogger(__name__)


# A transformers folder (tupe.hf) stores the same tensors as the native model under other names:
#   tupe.encoder.*  <-> encoder.*        lm_head.*  <-> lm_head.*
#   classifier.{dense,out_proj}.*  <-> classification_heads.<head>.{dense,out_proj}.*
# Reading one needs no transformers install: config.json holds every TupeConfig field.
HF_ENCODER, HF_CLASSIFIER = "tupe.", "classifier."


def is_hf_folder(directory: PathLike) -> bool:
    try:
        return json.loads((Path(directory) / CONFIG_FILE).read_text()).get("model_type") == "tupe"
    except (OSError, json.JSONDecodeError):
        return False


def hf_state_dict(model: TupeModel, head: Optional[str] = None) -> dict[str, torch.Tensor]:
    """The native model's tensors under the transformers names (``head``: the classification
    head that becomes ``classifier``)."""
    out = {}
    for k, v in model.state_dict().items():
        if k.startswith("classification_heads."):
            name, rest = k[len("classification_heads."):].split(".", 1)
            if name == head:
                out[HF_CLASSIFIER + rest] = v
        elif k.startswith("encoder."):
            out[HF_ENCODER + k] = v
        else:
            out[k] = v
    return out


def hf_config(directory: PathLike, config: Optional[dict] = None) -> TupeConfig:
    """The model configuration of a transformers folder: TupeConfig's fields of its config.json."""
    path = Path(directory) / CONFIG_FILE
    config = config if config is not None else json.loads(path.read_text())
    names = {f.name for f in dc_fields(TupeConfig)}
    try:
        return TupeConfig(**{k: v for k, v in config.items() if k in names})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: {e}") from None


def load_hf_folder(directory: PathLike, head: str = TupeModel.DEFAULT_HEAD) -> TupeModel:
    """A native model from a transformers folder. The sequence classifier becomes the
    classification head ``head``; a missing masked-LM head (a classifier saved by transformers)
    is initialised afresh, and heads the native model has no place for (token classification,
    question answering) are left out; both are reported on stderr."""
    directory = Path(directory)
    config = json.loads((directory / CONFIG_FILE).read_text())
    cfg = hf_config(directory, config)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{directory}: no {WEIGHTS_FILE} (sharded or .bin weights are not read here)")
    hf = load_safetensors(weights)
    arch = (config.get("architectures") or [""])[0]
    state, dropped = {}, []
    for k, v in hf.items():
        if k.startswith(HF_ENCODER):
            state[k[len(HF_ENCODER):]] = v
        elif k.startswith("lm_head."):
            state[k] = v
        elif k.startswith(HF_CLASSIFIER) and k[len(HF_CLASSIFIER):].startswith(("dense.", "out_proj.")) \
                and arch != "TupeForTokenClassification":
            state[f"classification_heads.{head}.{k[len(HF_CLASSIFIER):]}"] = v
        else:
            dropped.append(k)
    fresh = not any(k.startswith("lm_head.") for k in state)
    if fresh:
        state.update(fresh_lm_head(cfg.encoder_embed_dim, cfg.vocab_size))
        log.warning(f"{directory} has no masked-LM head; initialised a new one (fine for finetuning "
                    f"and classification, not for fill-mask)")
    if dropped:
        log.warning(f"{directory}: left out {len(dropped)} tensors of a {arch or 'transformers'} head the "
                    f"native model does not have ({', '.join(sorted(dropped)[:4])})")
    model = build_and_load(cfg, state, weights)
    model.lm_head_trained = not fresh and config.get(LM_HEAD_TRAINED, True) is not False
    return model
