"""The one error type of checkpoint reading and writing, and the file names the formats share."""

from __future__ import annotations

import os
from typing import Union

PathLike = Union[str, os.PathLike]
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
DICT_FILE, BPE_FILE = "dict.txt", "bpe-code"
TEXT_FILE = "text.json"   # the text pipeline's settings beside dict.txt: {"cased": bool}
LABELS_FILE = "labels.json"   # what a finetuned model's heads were trained on (tupe.hub.read_labels)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read safely or does not fit the model."""
