"""``TupeHfConfig``: the transformers configuration of a TUPE model (``model_type = "tupe"``).

Its fields are TupeConfig's own, derived from ``dataclasses.fields(TupeConfig)`` when the class
is made (one definition: a field added to TupeConfig appears here with its default), under the
same names (the original fairseq argument names), so ``to_tupe_config()`` / ``from_tupe_config()``
round-trip without loss. The standard transformers names (``hidden_size``,
``num_hidden_layers``, ``pad_token_id``, ...) are aliases of them.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Optional

from transformers import PreTrainedConfig

from ..config import TupeConfig

#: TupeConfig's field names: the part of this configuration that defines the encoder.
TUPE_FIELDS = tuple(f.name for f in dataclasses.fields(TupeConfig))
#: The one field without a default in TupeConfig: the released TUPE-R's vocabulary.
DEFAULT_VOCAB_SIZE = 32769


class _TupeHfConfigBody:
    """The class body of TupeHfConfig besides TupeConfig's fields (copied in by ``_make``)."""

    model_type = "tupe"
    attribute_map = {
        "hidden_size": "encoder_embed_dim",
        "num_hidden_layers": "encoder_layers",
        "num_attention_heads": "encoder_attention_heads",
        "intermediate_size": "encoder_ffn_embed_dim",
        "max_position_embeddings": "max_positions",
        "hidden_dropout_prob": "dropout",
        "attention_probs_dropout_prob": "attention_dropout",
        "pad_token_id": "padding_idx",
    }

    def __post_init__(self, **kwargs: Any) -> None:
        PreTrainedConfig.__post_init__(self, **kwargs)   # (the body is copied: no zero-argument super)
        if self.pos_encoding == "rope" and getattr(self, "rope_parameters", None) is None:
            self.rope_parameters = rope_parameters(self)
        self.untie_cls = self.to_tupe_config().untie_cls   # validates; resolves the scheme's default

    def to_tupe_config(self) -> TupeConfig:
        """The native configuration (validated: raises ``tupe.ConfigError`` when invalid). A RoPE
        model's ``rope_parameters`` (transformers' form of the RoPE fields) win over the fields."""
        values = {name: getattr(self, name) for name in TUPE_FIELDS}
        if values["pos_encoding"] == "rope" and getattr(self, "rope_parameters", None):
            values.update(rope_fields(self.rope_parameters, values["max_positions"]))
        return TupeConfig(**values)

    @classmethod
    def from_tupe_config(cls, cfg: TupeConfig, **kwargs: Any) -> "TupeHfConfig":
        return cls(**cfg.to_dict(), **kwargs)


def rope_parameters(cfg: Any) -> dict[str, Any]:
    """TupeConfig's RoPE fields as transformers' ``rope_parameters`` (only RoPE models have them,
    so transformers' RoPE tests and tools see RoPE exactly where it is)."""
    params: dict[str, Any] = {"rope_type": "default" if cfg.rope_scaling == "none" else cfg.rope_scaling,
                              "rope_theta": float(cfg.rope_theta)}
    if cfg.rope_scaling != "none":
        params["factor"] = float(cfg.rope_scaling_factor)
    if cfg.rope_scaling == "yarn" and cfg.rope_original_length:
        params["original_max_position_embeddings"] = cfg.rope_original_length
    return params


def rope_fields(params: dict[str, Any], max_positions: int) -> dict[str, Any]:
    """``rope_parameters`` -> TupeConfig's fields. transformers' semantics: "dynamic" scales past
    ``max_position_embeddings``; YaRN's original length is ``original_max_position_embeddings``.
    A rope type the native model does not compute is refused by TupeConfig's validation."""
    kind = params.get("rope_type", params.get("type", "default"))
    scaling = "none" if kind == "default" else kind
    original = int(params.get("original_max_position_embeddings") or 0) if scaling == "yarn" else 0
    return dict(rope_theta=params.get("rope_theta", TupeConfig.rope_theta), rope_scaling=scaling,
                rope_scaling_factor=float(params.get("factor") or 1.0) if scaling != "none" else 1.0,
                rope_original_length=0 if original == max_positions else original)   # 0: max_positions


# transformers-side settings, after TupeConfig's fields: (name, annotation, default)
_HF_FIELDS = (
    ("bos_token_id", "Optional[int]", 0),
    ("eos_token_id", "Optional[int]", 2),
    ("initializer_range", "float", 0.02),
    ("tie_word_embeddings", "bool", True),
    # dropout before the token-classification / question-answering output layer (None: ``dropout``)
    ("classifier_dropout", "Optional[float]", None),
)


def _make() -> type:
    def body(ns: dict) -> None:
        annotations: dict[str, Any] = {}
        for f in dataclasses.fields(TupeConfig):
            annotations[f.name] = f.type
            ns[f.name] = DEFAULT_VOCAB_SIZE if f.default is dataclasses.MISSING else f.default
        for name, annotation, default in _HF_FIELDS:
            annotations[name] = annotation
            ns[name] = default
        ns["__annotations__"] = annotations
        ns.update({k: v for k, v in vars(_TupeHfConfigBody).items()
                   if k not in ("__dict__", "__weakref__", "__annotations__")})
        ns["__module__"], ns["__qualname__"] = __name__, "TupeHfConfig"
        ns["__doc__"] = __doc__
    return types.new_class("TupeHfConfig", (PreTrainedConfig,), {}, body)


TupeHfConfig = _make()
__all__ = ["TupeHfConfig", "TUPE_FIELDS", "Optional"]
