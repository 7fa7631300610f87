"""ELECTRA checkpoints (``--task electra``): the discriminator under the original names plus
``generator.*`` and ``rtd_head.*`` (see model/electra.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import TupeConfig
from ..model.electra import DEFAULT_DISC_WEIGHT, ElectraModel, generator_config, is_electra_state, split_electra_state
from .errors import CheckpointError, PathLike
from .fairseq import checkpoint_tensors, config_from_checkpoint, skip_parameter_init
from .safe import read_checkpoint, resolve_checkpoint


def load_electra_state(model, state: dict[str, torch.Tensor], path: PathLike, target: str) -> None:
    """An ELECTRA checkpoint's ``model`` entry into ``model`` (an ElectraModel): discriminator,
    generator and replaced-token head; one that does not fit is named, with ``target`` (what it
    was meant to fit)."""
    disc, gen, rtd = split_electra_state(state)
    for part, tensors, module in (("discriminator", checkpoint_tensors(disc, path), model.discriminator),
                                  ("generator", gen, model.generator), ("replaced-token head", rtd, model.rtd_head)):
        try:
            module.load_state_dict(tensors)
        except RuntimeError as e:
            raise CheckpointError(f"{path}: the {part} does not fit {target}: "
                                  f"{str(e).splitlines()[-1].strip()}") from None


def electra_from_state(state: dict, ckpt: Path):
    """The whole ELECTRA model of a read ``--task electra`` checkpoint, eval mode, float32."""
    cfg = config_from_checkpoint(state.get("args"), split_electra_state(state["model"])[0], ckpt)
    info = state.get("electra") or {}
    try:
        gen_cfg = TupeConfig.from_dict(info["generator"]) if "generator" in info else generator_config(cfg)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{ckpt}: generator configuration: {e}") from None
    with skip_parameter_init():     # every parameter is loaded next (strictly)
        model = ElectraModel(cfg, gen_cfg, info.get("disc_weight", DEFAULT_DISC_WEIGHT))
    load_electra_state(model, state["model"], ckpt, "its stored configuration")
    return model.eval()


def load_electra(path: PathLike):
    """The whole ELECTRA model (generator, discriminator, replaced-token head) of a ``--task
    electra`` checkpoint, eval mode, float32. ``load_model`` gives the discriminator alone."""
    ckpt = resolve_checkpoint(path)
    state = read_checkpoint(ckpt)
    if not is_electra_state(state["model"]):
        raise CheckpointError(f"{ckpt}: not an ELECTRA checkpoint (no generator.* tensors)")
    return electra_from_state(state, ckpt)
