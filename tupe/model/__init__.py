"""The TUPE model: positional schemes and the encoder with its heads."""

from .positional import RelativePositionBias, UntiedPositionalCorrelation, relative_position_bucket
from .transformer import Encoder, TupeModel, init_bert_params

__all__ = ["Encoder", "RelativePositionBias", "TupeModel", "UntiedPositionalCorrelation",
           "init_bert_params", "relative_position_bucket"]
