"""The original (fairseq) layout: parameter names both ways, the model configuration from a
checkpoint's ``args`` and tensor shapes, building a model from it, and writing the layout.

A file is ``torch.save`` of ``{args: Namespace, model: state dict, optimizer_history,
extra_state, last_optimizer_state}``; the names are listed in docs/checkpoints.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch
from torch.overrides import TorchFunctionMode

from ..config import TupeConfig
from ..model import TupeModel
from ..model.electra import ElectraModel, electra_state_dict, is_electra_state, split_electra_state
from .errors import CheckpointError, PathLike

ENC = "decoder.sentence_encoder."
LM = "decoder.lm_head."
# Names directly under decoder.sentence_encoder. that belong to our positional modules.
_UNTIED_POS = ("pos.", "pos_ln.", "pos_q_linear.", "pos_k_linear.")
_REL_POS = ("relative_attention_bias.",)
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- name mapping
_QKV_OURS, _QKV_ORIG = ".self_attn.in_proj.", ".self_attn.in_proj_"


def to_fairseq_name(name: str) -> str:
    """Our parameter name -> the original's."""
    name = name.replace(_QKV_OURS, _QKV_ORIG)   # our fused q/k/v is a Linear: in_proj.weight
    for ours in ("encoder.untied_pos.", "encoder.rel_pos_bias.", "encoder."):
        if name.startswith(ours):
            return ENC + name[len(ours):]
    if name.startswith("lm_head."):
        return LM + name[len("lm_head."):]
    return name


def from_fairseq_name(name: str) -> str:
    """The original's parameter name -> ours."""
    name = name.replace(_QKV_ORIG, _QKV_OURS)
    if name.startswith(ENC):
        rest = name[len(ENC):]
        if rest.startswith(_UNTIED_POS):
            return "encoder.untied_pos." + rest
        if rest.startswith(_REL_POS):
            return "encoder.rel_pos_bias." + rest
        return "encoder." + rest
    if name.startswith(LM):
        return "lm_head." + name[len(LM):]
    return name


def fairseq_state_dict(model: TupeModel) -> dict[str, torch.Tensor]:
    """The original layout; an ELECTRA model: its discriminator so, plus ``generator.*`` and
    ``rtd_head.*`` (see ``model/electra.py``)."""
    if isinstance(model, ElectraModel):
        return electra_state_dict(model, fairseq_state_dict(model.discriminator))
    state = {to_fairseq_name(k): v for k, v in model.state_dict().items()}
    if model.lm_head is not None:
        state[LM + "weight"] = state[ENC + "embed_tokens.weight"]   # tied, stored twice as fairseq does
    return state


# Saved (checkpoint args, config.json) where a model's masked-LM head was made new and not trained.
LM_HEAD_TRAINED = "lm_head_trained"


def lm_head_trained(state: dict) -> bool:
    """Whether a read training checkpoint's masked-LM head was trained: not an ELECTRA
    checkpoint's discriminator (its head is made new on loading), nor a model saved with
    ``lm_head_trained=False`` in its args (a finetuning run restored from one)."""
    return not is_electra_state(state["model"]) and getattr(state.get("args"), LM_HEAD_TRAINED, True) is not False


def fresh_lm_head(embed_dim: int, vocab_size: int) -> dict[str, torch.Tensor]:
    """A new masked-LM head (our names), BERT-initialised from a fixed seed (the global RNG is
    not touched): for a model stored without one (an ELECTRA discriminator, a transformers
    classifier)."""
    g = torch.Generator().manual_seed(0)
    return {"lm_head.dense.weight": torch.randn(embed_dim, embed_dim, generator=g) * 0.02,
            "lm_head.dense.bias": torch.zeros(embed_dim),
            "lm_head.layer_norm.weight": torch.ones(embed_dim), "lm_head.layer_norm.bias": torch.zeros(embed_dim),
            "lm_head.bias": torch.zeros(vocab_size)}


def discriminator_of(state: dict[str, torch.Tensor], path: PathLike) -> dict[str, torch.Tensor]:
    """An ELECTRA checkpoint's discriminator in the original layout (generator and replaced-token
    head left out, a fresh masked-LM head added), with a one-line note on stderr."""
    disc, gen, rtd = split_electra_state(state)
    emb = disc.get(ENC + "embed_tokens.weight")
    if emb is not None and LM + "dense.weight" not in disc:
        disc.update({LM + k[len("lm_head."):]: v for k, v in fresh_lm_head(emb.shape[1], emb.shape[0]).items()})
        disc[LM + "weight"] = emb
    log.warning(f"{path}: ELECTRA checkpoint: using its discriminator (left out the generator, "
                f"{len(gen)} tensors, and the replaced-token head; the masked-LM head is new)")
    return disc


def checkpoint_tensors(state: dict[str, torch.Tensor], path: PathLike) -> dict[str, torch.Tensor]:
    """A checkpoint's ``model`` entry (original layout; an ELECTRA checkpoint: its discriminator)
    under the native parameter names, the tied LM weight checked and dropped."""
    if is_electra_state(state):
        state = discriminator_of(state, path)
    state = dict(state)
    lm_weight = state.pop(LM + "weight", None)
    emb = state.get(ENC + "embed_tokens.weight")
    if lm_weight is not None and emb is not None and not torch.equal(lm_weight, emb):
        raise CheckpointError(f"{path}: {LM}weight differs from the token embedding; this code "
                              f"supports only the tied LM head of the original model")
    return {from_fairseq_name(k): v for k, v in state.items()}


# --------------------------------------------------------------------------- config from shapes
def config_from_checkpoint(args: Any, state: dict[str, torch.Tensor], path: PathLike = "") -> TupeConfig:
    """Config from a checkpoint's ``args``, checked and completed by the tensor shapes."""
    def shape(name: str) -> Optional[tuple]:
        t = state.get(name)
        return None if t is None else tuple(t.shape)

    emb = shape(ENC + "embed_tokens.weight")
    if emb is None:
        raise CheckpointError(f"{path}: missing {ENC}embed_tokens.weight; not a TUPE model")
    layer_ids = {int(k[len(ENC + "layers."):].split(".")[0]) for k in state if k.startswith(ENC + "layers.")}
    derived: dict[str, Any] = dict(
        vocab_size=emb[0], encoder_embed_dim=emb[1], encoder_layers=len(layer_ids),
        embedding_normalize=ENC + "emb_layer_norm.weight" in state,
        encoder_normalize_before=ENC + "emb_out_layer_norm.weight" in state,
        rel_pos=ENC + "relative_attention_bias.weight" in state,
    )
    # The positional scheme: from its tables where it has some (BERT-A: embed_positions, TUPE:
    # pos), else as stated (RoPE, ALiBi and NoPE have no tensors; an original checkpoint states
    # nothing and has TUPE's tables).
    stated_scheme = getattr(args, "pos_encoding", None)
    if ENC + "embed_positions.weight" in state:
        derived["pos_encoding"] = "absolute"
    elif ENC + "pos.weight" in state or stated_scheme in (None, "tupe", "absolute"):
        derived["pos_encoding"] = "tupe"
    else:
        derived["pos_encoding"] = stated_scheme
    if layer_ids:
        derived["encoder_ffn_embed_dim"] = shape(ENC + "layers.0.fc1.weight")[0]
    if derived["pos_encoding"] == "tupe":
        rows = shape(ENC + "pos.weight")
        if rows is None:
            raise CheckpointError(f"{path}: missing {ENC}pos.weight (TUPE position table)")
        derived["max_positions"] = rows[0] - 1
    elif derived["pos_encoding"] == "absolute":
        derived["max_positions"] = shape(ENC + "embed_positions.weight")[0]
    if derived["rel_pos"]:
        bins, heads = shape(ENC + "relative_attention_bias.weight")
        derived["rel_pos_bins"] = bins - 1
        derived["encoder_attention_heads"] = heads

    values = vars(args) if args is not None else {}
    for key, value in derived.items():
        stated = values.get(key)
        # A flag that contradicts the weights means a broken or hand-edited checkpoint.
        if stated is not None and stated != value:
            raise CheckpointError(f"{path}: args.{key}={stated!r} but the weights say {value!r}")
    try:
        return TupeConfig.from_args(args or argparse.Namespace(), **derived)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None


def _head_sizes(state: dict[str, torch.Tensor]) -> dict[str, int]:
    heads = {}
    for k, v in state.items():
        if k.startswith("classification_heads.") and k.endswith(".out_proj.weight"):
            heads[k[len("classification_heads."):-len(".out_proj.weight")]] = v.shape[0]
    return heads


class skip_parameter_init(TorchFunctionMode):
    """Within it, torch.nn.init's functions and the in-place fills they use leave parameters as
    allocated (uninitialised): for a model whose every parameter is about to be replaced by
    loaded tensors. Random initialisation of a BERT-base model takes ~2 s; building on the meta
    device instead would import torch._dynamo (another ~2 s: meta tensors run Python
    decompositions). Everything else (computed buffers, non-parameter tensors) runs as usual."""

    INIT = frozenset({torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.zero_, torch.Tensor.fill_,
                      *(getattr(torch.nn.init, name) for name in (
                          "normal_", "uniform_", "trunc_normal_", "constant_", "zeros_", "ones_",
                          "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"))})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.INIT:
            target = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
            if isinstance(target, torch.nn.Parameter):
                return target
        return func(*args, **kwargs)


def build_and_load(cfg: TupeConfig, state: dict[str, torch.Tensor], path: PathLike = "") -> TupeModel:
    """Model from config + our-named state dict; any missing, extra or misshapen tensor is an error.

    The model is built without initialising its parameters (``skip_parameter_init``), then the
    loaded tensors are assigned to it."""
    with skip_parameter_init():
        model = TupeModel(cfg)
        for name, k in _head_sizes(state).items():
            model.register_classification_head(name, k)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(f"{to_fairseq_name(k)}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                   for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append("missing: " + ", ".join(to_fairseq_name(k) for k in missing))
        if unexpected:
            parts.append("unexpected: " + ", ".join(to_fairseq_name(k) for k in unexpected))
        if wrong:
            parts.append("shape mismatch: " + "; ".join(wrong))
        raise CheckpointError(f"{path}: checkpoint does not fit a {cfg.name} model ({'; '.join(parts)})")
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in state.items()},
                          assign=True)
    return model.eval()


def progress_of(state: dict) -> tuple[Optional[int], Optional[int]]:
    """(epoch, num_updates) at which a training checkpoint was saved (None where it does not say).
    At the end of an epoch the saved iterator already points at the next one: that epoch is reported."""
    history = (state.get("optimizer_history") or [{}])[-1]
    progress = (state.get("extra_state") or {}).get("train_iterator") or {}
    epoch = progress.get("epoch")
    if epoch is not None and progress.get("iterations_in_epoch", 0) == 0 and epoch > 1:
        epoch -= 1
    return epoch, history.get("num_updates")


def fairseq_args(cfg: TupeConfig, base: Optional[dict] = None, **extra: Any) -> argparse.Namespace:
    """A Namespace the original code can build the model from (base values kept)."""
    values = dict(base or {})
    values.setdefault("arch", "bert_base")
    values.setdefault("task", "masked_lm")
    values.setdefault("criterion", "masked_lm")
    values.update(cfg.to_dict())
    values.setdefault("tokens_per_sample", cfg.max_positions)
    values.update(extra)
    return argparse.Namespace(**values)


def save_fairseq(model: TupeModel, path: PathLike, args: Optional[argparse.Namespace] = None,
                 fp16: bool = False, **entries: Any) -> None:
    """Write the original checkpoint layout atomically (tmp file + rename). ``path`` is a file;
    an existing directory there is a CheckpointError (the rename would fail on it)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory: the original format is one file; give its path, e.g. "
                              f"{path / 'checkpoint.pt'}")
    state = fairseq_state_dict(model)
    args = args if args is not None else fairseq_args(model.cfg)
    if not getattr(model, "lm_head_trained", True):
        args = argparse.Namespace(**{**vars(args), LM_HEAD_TRAINED: False})
    if fp16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    ckpt = {
        "args": args,
        "model": state,
        "optimizer_history": entries.pop("optimizer_history", []),
        "extra_state": entries.pop("extra_state", {}),
        "last_optimizer_state": entries.pop("last_optimizer_state", None),
        **entries,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
