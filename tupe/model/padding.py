"""Where each row's tokens start: left padding handled by rotating rows, once per forward.

Positions count from each row's first real token (the original model's layout is right
padding, so that is column 0). A left-padded row ``[pad pad a b c]`` must therefore be encoded
exactly as ``[a b c pad pad]``: the encoder rotates every row left by its number of leading
pads before anything position-dependent happens and rotates the outputs back, so every scheme
and every attention kernel (bias form and flex alike) sees right padding, and no positional
code needs a per-row offset. Real tokens must be one contiguous run per row: padding inside a
row (a "hole") has no meaning for positions and is refused.

Cost: for a right-padded or unpadded batch, one small (B, T) check per forward and nothing
else. Inside a traced, compiled or exported graph (where data cannot decide control flow) the
rotation always runs (an identity gather for right-padded rows) and the check is skipped.
"""

from __future__ import annotations

from typing import Optional

import torch


class PaddingError(ValueError):
    """A padding mask positions cannot be read from (padding between real tokens)."""


def tracing() -> bool:
    """Inside a traced, compiled or exported graph (jit trace, torch.compile, torch.export, ONNX
    export), where data cannot decide control flow and hand-written autograd nodes or caches are
    not wanted: the model's one test for it."""
    return (torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting()
            or torch.onnx.is_in_onnx_export())


def first_real(padding: torch.Tensor) -> torch.Tensor:
    """(B, T) bool, True at padding -> (B,) each row's first real token ([CLS]; 0 for a row of pads)."""
    return (~padding).int().argmax(dim=1)


def padding_layout(padding: torch.Tensor) -> tuple[Optional[torch.Tensor], Optional[bool]]:
    """(B, T) bool, True at padding -> ((B,) leading pads per row, or None when no row has any
    (the common case: nothing to do); whether any position is padded), read with one device
    sync. Inside a traced graph: (every row's shift, None), no sync, no data decides. Raises
    ``PaddingError`` for padding between real tokens."""
    real = ~padding                                                                    # (B, T)
    shift = first_real(padding)                                                        # (B,)
    if tracing():
        return shift, None
    T = padding.size(1)
    col = torch.arange(T, device=padding.device)
    n = real.sum(dim=1, keepdim=True)                                                  # (B, 1)
    contiguous = (col >= shift[:, None]) & (col < shift[:, None] + n)                  # (B, T)
    left, holes, padded = torch.stack([shift.any(), (contiguous != real).any(), padding.any()]).tolist()  # one sync
    if holes:
        rows = ((contiguous != real).any(dim=1)).nonzero().flatten().tolist()
        raise PaddingError(
            f"padding between real tokens in row(s) {rows[:8]} of the batch: positions count from each "
            f"row's first real token, so the real tokens of a row must be contiguous (pad on the left "
            f"or on the right, not in between)")
    return (shift if left else None), bool(padded)


def rotate(t: torch.Tensor, shift: torch.Tensor, dim: int = 1, inverse: bool = False) -> torch.Tensor:
    """Rotate each row b of ``t`` along ``dim`` left by ``shift[b]`` (right with ``inverse``):
    ``out[b, i] = t[b, (i + shift[b]) % T]``. ``t``: (B, ..., T, ...) with the batch first."""
    T = t.size(dim)
    col = torch.arange(T, device=t.device)
    index = col[None, :] + (-shift if inverse else shift)[:, None]                          # (B, T)
    index = torch.where(index < 0, index + T, torch.where(index >= T, index - T, index))   # mod T (0 <= shift < T)
    shape = [t.size(0)] + [1] * (t.dim() - 1)
    shape[dim] = T
    return t.gather(dim, index.view(shape).expand_as(t))


def unrotate_attention(probs: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """(B, H, T, T) probabilities computed on rotated rows -> the input's columns (queries and keys)."""
    return rotate(rotate(probs, shift, dim=2, inverse=True), shift, dim=3, inverse=True)
