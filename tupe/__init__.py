"""TUPE: Transformer with Untied Positional Encoding (Ke, He and Liu, ICLR 2021)."""

from .checkpoint import CheckpointError, load_model, save_pretrained
from .config import PRESETS, ConfigError, TupeConfig
from .data.dictionary import Dictionary
from .hub import TupeHub, from_pretrained
from .model import TupeModel

__version__ = "0.1.0"

__all__ = ["PRESETS", "CheckpointError", "ConfigError", "Dictionary", "TupeConfig", "TupeHub", "TupeModel", "from_pretrained",
           "load_model", "save_pretrained", "__version__"]
