"""``torch.compile`` of the encoder layers (``train.py --compile``, ``from_pretrained(compile=True)``).

Each layer is compiled in place (``nn.Module.compile``): parameter names, ``state_dict`` and
checkpoints are unchanged, and the positional terms, computed once per forward outside the
layers, stay eager. All layers share one graph (their parameters are graph inputs), so
compiling costs one trace per distinct input shape, not one per layer: about 5 s (inference)
and 15-20 s (training, backward included) for bert_small on 2 CPU cores, once per process.

Where it cannot compile it falls back to eager with a warning, never an error:
* no C++ compiler for inductor's CPU code (``CXX``, else ``c++``/``g++``/``clang++`` on PATH);
* a Python or platform that torch.compile does not support;
* a layer whose graph fails to build later (dynamo's ``suppress_errors``: that frame runs eager
  and torch logs why).
"""

from __future__ import annotations

import os
import shutil
import warnings
from typing import Optional

import torch
from torch import nn

from .transformer import EncoderLayer


def compile_unavailable(device: Optional[torch.device] = None) -> Optional[str]:
    """Why torch.compile cannot run here (a sentence), or None when it can."""
    try:
        from torch._dynamo.eval_frame import is_dynamo_supported  # torch's compiler stack: imported only when compiling
        if not is_dynamo_supported():
            return "torch.compile does not support this Python/platform"
    except ImportError:
        return "this torch has no torch.compile"
    if (device is None or torch.device(device).type == "cpu") and not any(
            shutil.which(c) for c in filter(None, (os.environ.get("CXX"), "c++", "g++", "clang++"))):
        return "no C++ compiler on PATH (inductor's CPU backend needs one; set CXX or install g++)"
    return None


def compile_layers(model: nn.Module, device: Optional[torch.device] = None, warn: bool = True,
                   **options) -> bool:
    """Compile every encoder layer of ``model`` in place (an ELECTRA model's two encoders too).
    ``options`` go to ``torch.compile`` (e.g. ``mode="max-autotune"``). Returns whether it
    compiled; when it cannot, warns with the reason and leaves the model eager."""

    reason = compile_unavailable(device)
    if reason is not None:
        if warn:
            warnings.warn(f"compile: {reason}; running eager instead", stacklevel=2)
        return False
    import torch._dynamo  # torch's compiler stack: imported only when compiling
    torch._dynamo.config.suppress_errors = True        # a graph that fails to build runs eager
    layers = [m for m in model.modules() if isinstance(m, EncoderLayer)]
    # Shapes change with every length in finetuning: allow more recompiles than the default 8
    # before dynamo marks the length dynamic (it does after the second distinct length).
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    for layer in layers:
        layer.compile(**options)
    return True


def is_compiled(model: nn.Module) -> bool:
    return any(getattr(m, "_compiled_call_impl", None) is not None
               for m in model.modules() if isinstance(m, EncoderLayer))
