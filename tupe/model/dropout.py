"""Dropout with a cheap random mask on the CPU.

``F.dropout`` on the CPU draws its mask with ``bernoulli_``, which outside Intel's MKL path
(AMD CPUs, for one) makes one serial Mersenne-Twister draw and conversion per element: at
BERT-base size it was a fifth of a bf16 training step (the attention probabilities alone are
B x H x T x T per layer). Here each element gets 16 random bits, compared with a threshold.
The bits come from numpy's SFC64 generator, seeded for each mask by one 64-bit draw of the
default torch generator, so a mask is just as reproducible from ``torch.manual_seed`` and
from a saved ``torch.get_rng_state()`` (resume included), and the same on every machine
(numpy's raw bit streams are stable across versions and do not depend on the CPU). SFC64
makes 64 bits about 2.2 times faster than torch's Mersenne Twister (``random_``), which made
them before (BERT-base attention probabilities at 2 x 512: 6-7 ms instead of 12-16 a layer;
the draws were the largest cost of a training step after the matrix products: see
docs/performance.md).

An element is dropped with probability ``round(p * 2^16) / 2^16`` (for p = 0.1: 0.100006)
and the kept ones are scaled by ``1 / (1 - p)``, as in ``F.dropout``. On other devices
(CUDA's fused Philox kernel is fast) this is ``F.dropout``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .padding import tracing


def random_int16(numel: int) -> torch.Tensor:
    """``numel`` uniform random int16 on the CPU: the 64-bit outputs of an SFC64 generator seeded
    by one draw of torch's default generator, each cut into four 16-bit integers. Under
    torch.compile (``--compile``) they are made outside the graph, as in eager mode: the same bits.
    In a traced or exported graph (jit trace, torch.export, ONNX), where numpy's bits would be
    recorded as a constant (one mask for every call), they come from an in-graph ``randint`` of
    torch's generator instead: fresh each call, other bits than eager mode's."""
    if tracing():
        if torch.compiler.is_compiling() and not torch.compiler.is_exporting():
            # decorated here, not at import: torch.compiler.disable imports the compiler (~2 s),
            # which loading a model must not pay (tests/test_checkpoint.py)
            return torch.compiler.disable(_sfc64_int16)(numel)
        return torch.randint(-2 ** 15, 2 ** 15, (numel,), dtype=torch.int16)
    return _sfc64_int16(numel)


def _sfc64_int16(numel: int) -> torch.Tensor:
    seed = torch.empty((), dtype=torch.int64).random_(-2 ** 63, None).item() & (2 ** 64 - 1)
    draws = np.random.SFC64(seed).random_raw((numel + 3) // 4)                        # uint64, 64 random bits each
    return torch.from_numpy(draws.view(np.int16)[:numel])


def keep_mask(shape: torch.Size, p: float, dtype: torch.dtype, scaled: bool = True) -> torch.Tensor:
    """A CPU tensor of ``shape``: 0 where dropped, ``1 / (1 - p)`` where kept (1 with ``scaled=False``:
    the fused attention of ``attention.py`` scales its smaller output instead)."""
    numel = math.prod(shape)
    uniform16 = random_int16(numel).view(shape)                                      # in [-2^15, 2^15)
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
