"""Dropout with a cheap random mask on the CPU.

``F.dropout`` on the CPU draws its mask with ``bernoulli_``, which outside Intel's MKL path
(AMD CPUs, for one) makes one serial Mersenne-Twister draw and conversion per element: at
BERT-base size it was a fifth of a bf16 training step (the attention probabilities alone are
B x H x T x T per layer). Here the mask comes from 64-bit draws of the same default torch
generator, each split into four 16-bit uniform integers, compared with a threshold: 2.5 times
faster (5 times with the trainer's allocator settings, ``tupe/train/cpu.py``; BERT-base
attention probabilities at 2 x 512 in bf16: 8 ms instead of 41), and just as reproducible
from ``torch.manual_seed`` (resume included).

An element is dropped with probability ``round(p * 2^16) / 2^16`` (for p = 0.1: 0.100006)
and the kept ones are scaled by ``1 / (1 - p)``, as in ``F.dropout``. On other devices
(CUDA's fused Philox kernel is fast) this is ``F.dropout``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def keep_mask(shape: torch.Size, p: float, dtype: torch.dtype, scaled: bool = True) -> torch.Tensor:
    """A CPU tensor of ``shape``: 0 where dropped, ``1 / (1 - p)`` where kept (1 with ``scaled=False``:
    the fused attention of ``attention.py`` scales its smaller output instead)."""
    numel = math.prod(shape)
    draws = torch.empty((numel + 3) // 4, dtype=torch.int64).random_(-2 ** 63, None)   # 64 random bits each
    uniform16 = draws.view(torch.int16)[:numel].view(shape)                          # in [-2^15, 2^15)
    threshold = -2 ** 15 + round(p * 2 ** 16)
    keep = torch.ge(uniform16, threshold, out=torch.empty(shape, dtype=dtype))        # 1.0 / 0.0 (no bool tensor)
    return keep.mul_(1.0 / (1.0 - p)) if scaled else keep


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training=True)
    return x * keep_mask(x.shape, p, x.dtype)


class Dropout(nn.Module):
    """``nn.Dropout`` with the cheap CPU mask of :func:`dropout`."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
