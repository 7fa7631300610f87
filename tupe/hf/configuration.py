"""``TupeHfConfig``: the transformers configuration of a TUPE model (``model_type = "tupe"``).

It carries every field of the native :class:`tupe.TupeConfig` under the same name (the
original fairseq argument names), so ``to_tupe_config()`` / ``from_tupe_config()`` round-trip
without loss, and exposes the standard transformers names (``hidden_size``,
``num_hidden_layers``, ``pad_token_id``, ...) as aliases of them.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from transformers import PreTrainedConfig

from ..config import TupeConfig

#: TupeConfig's field names: the part of this configuration that defines the encoder.
TUPE_FIELDS = tuple(f.name for f in fields(TupeConfig))


class TupeHfConfig(PreTrainedConfig):
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

    # --- TupeConfig's fields, same names and defaults (vocab_size: the released TUPE-R's) ---
    vocab_size: int = 32769
    padding_idx: int = 1
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    max_positions: int = 512
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    pooler_dropout: float = 0.1
    activation_fn: str = "gelu"
    pooler_activation_fn: str = "tanh"
    encoder_normalize_before: bool = False
    embedding_normalize: bool = False
    pos_encoding: str = "tupe"
    rel_pos: bool = False
    rel_pos_bins: int = 32
    max_rel_pos: int = 128
    untie_cls: bool | None = None
    rope_theta: float = 10000.0
    # --- transformers-side settings ---
    bos_token_id: int | None = 0
    eos_token_id: int | None = 2
    initializer_range: float = 0.02
    tie_word_embeddings: bool = True
    #: dropout before the token-classification / question-answering output layer (None: ``dropout``)
    classifier_dropout: float | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        self.untie_cls = self.to_tupe_config().untie_cls   # validates; resolves the scheme's default

    def to_tupe_config(self) -> TupeConfig:
        """The native configuration (validated: raises ``tupe.ConfigError`` when invalid)."""
        return TupeConfig(**{name: getattr(self, name) for name in TUPE_FIELDS})

    @classmethod
    def from_tupe_config(cls, cfg: TupeConfig, **kwargs: Any) -> "TupeHfConfig":
        return cls(**cfg.to_dict(), **kwargs)
