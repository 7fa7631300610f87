"""The TUPE model: positional schemes and the encoder with its heads."""

from .attention import ATTN_IMPLS
from .lengths import resize_positions
from .positional import RelativePositionBias, UntiedPositionalCorrelation, relative_position_bucket
from .transformer import Encoder, TupeModel, init_bert_params, set_attn_impl

__all__ = ["ATTN_IMPLS", "Encoder", "RelativePositionBias", "TupeModel", "UntiedPositionalCorrelation",
           "init_bert_params", "relative_position_bucket", "resize_positions", "set_attn_impl"]
