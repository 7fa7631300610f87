"""Attention kernels: a table of functions with one signature, selected by name.

    kernel(q, k, v, mask, scale, p, need_weights) -> (output (B, H, T, d), probabilities | None)

``q, k, v``: (B, H, T, d) (``q`` may be (B, H, 1, d): the first position's queries alone, see
``Encoder.encode(first_only=True)``; not for "flex"); ``mask``: the additive mask the encoder
built once for all layers (broadcastable to (B, H, T, T), or None for a full batch without
positional bias), or, for "flex", the factored terms (``flex.FlexPositions``); ``scale``: the
logits' factor (1/sqrt(2d) for TUPE, 1/sqrt(d) otherwise); ``p``: attention dropout (0 in eval
mode).

* ``eager``: softmax(q k^T * scale + mask) with dropout, @ v, written out; returns the
  probabilities that feed the value product (on the autograd path).
* ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention``; asked for probabilities it
  runs ``eager`` (SDPA does not return them, as in transformers).
* ``flex``: the positional terms read inside FlexAttention (flex.py; GPUs; no attention dropout).
* ``auto`` (the default): ``eager`` where SDPA cannot serve (probabilities asked for, graph
  export, CPU training with dropout, where the eager kernel with ``dropout.py``'s cheap mask is
  measurably faster), else ``sdpa``.

The encoder builds the mask in the form the kernel reads (``needs_factored``). transformers'
``attn_implementation`` maps onto this table one to one (``HF_KERNELS``).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .dropout import dropout

Result = tuple[torch.Tensor, Optional[torch.Tensor]]


class _ExpandMask(torch.autograd.Function):
    """``mask`` (broadcastable to (B, H, Tq, T)) -> a contiguous (B*H, Tq, T) copy in ``dtype``. Its
    backward sums the gradient over the broadcast batch rows with element-wise adds, accumulating in
    fp32: the same sum as autograd's ``sum_to`` (to float rounding), which on the CPU reduces a
    leading dimension of 2-8 rows slowly (bf16, 2 x 512: 5 ms a layer, 5% of TUPE-R's step)."""

    @staticmethod
    def forward(ctx, mask, B: int, H: int, Tq: int, dtype: torch.dtype):
        ctx.shape, ctx.dtype, ctx.B, ctx.H = mask.shape, mask.dtype, B, H
        T = mask.size(-1)
        out = torch.empty(B, H, Tq, T, dtype=dtype, device=mask.device).copy_(mask.expand(B, H, Tq, T))
        return out.view(B * H, Tq, T)

    @staticmethod
    def backward(ctx, grad):
        B, H, Tq, T = ctx.B, ctx.H, grad.size(-2), grad.size(-1)
        full = (1,) * (4 - len(ctx.shape)) + tuple(ctx.shape)                          # the mask's 4-d shape
        g = grad.view(B, H, Tq, T)
        if full[0] == 1 and B > 1:                                                     # summed over the batch
            low = g.dtype in (torch.float16, torch.bfloat16)
            acc = g[0].float().add_(g[1]) if low else torch.add(g[0], g[1])            # (H, Tq, T), fp32 or wider
            for row in g[2:]:
                acc.add_(row)
            g = acc.unsqueeze(0)                                                       # (1, H, Tq, T)
        dims = [i for i in (1, 2) if full[i] == 1 and g.size(i) > 1]
        if dims:
            g = g.sum(dims, keepdim=True)
        return g.to(ctx.dtype).reshape(ctx.shape), None, None, None, None


def expand_mask(mask: torch.Tensor, B: int, H: int, dtype: torch.dtype, queries: Optional[int] = None) -> torch.Tensor:
    """The additive mask as the (B*H, Tq, T) input of ``baddbmm`` (see :class:`_ExpandMask`);
    ``queries``: Tq, the queries' length (default T; 1 for ``first_only``)."""
    T = mask.size(-1)
    Tq = T if queries is None else queries
    if not (mask.requires_grad and torch.is_grad_enabled()):
        return mask.to(dtype).expand(B, H, Tq, T).reshape(B * H, Tq, T)
    return _ExpandMask.apply(mask, B, H, Tq, dtype)


def eager(q, k, v, mask, scale: float, p: float, need_weights: bool = False) -> Result:
    B, H, Tq, d = q.shape                                                              # Tq: T, or 1 (first_only)
    T = k.size(2)
    if mask is None:                                                                   # a full batch
        mask = q.new_zeros(1, 1, 1, T)
    # k^T copied once into its own contiguous (B*H, d, T) layout (it is copied anyway: k is a strided
    # slice of the fused projection); the product runs faster than on a transposed view, same values
    logits = torch.baddbmm(expand_mask(mask, B, H, q.dtype, Tq), q.reshape(B * H, Tq, d),
                           k.transpose(2, 3).reshape(B * H, d, T), alpha=scale)          # (B*H, Tq, T)
    probs = torch.softmax(logits, dim=-1).view(B, H, Tq, T)
    y = torch.matmul(dropout(probs, p).to(v.dtype), v)                                 # (B, H, Tq, d)
    return y, (probs if need_weights else None)


def sdpa(q, k, v, mask, scale: float, p: float, need_weights: bool = False) -> Result:
    if need_weights:
        return eager(q, k, v, mask, scale, p, need_weights)
    mask = mask.to(q.dtype) if mask is not None else None
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, dropout_p=p), None


def flex(q, k, v, mask, scale: float, p: float, need_weights: bool = False) -> Result:
    return mask.attend(q, k, v, scale, p, need_weights)


def auto(q, k, v, mask, scale: float, p: float, need_weights: bool = False) -> Result:
    if need_weights or torch.compiler.is_exporting() or (p > 0 and q.device.type == "cpu"):
        return eager(q, k, v, mask, scale, p, need_weights)
    return sdpa(q, k, v, mask, scale, p, need_weights)


KERNELS: dict[str, Callable[..., Result]] = {"auto": auto, "eager": eager, "sdpa": sdpa, "flex": flex}
ATTN_IMPLS = tuple(KERNELS)
# Earlier name of "auto" (the additive-bias form), still accepted.
ALIASES = {"bias": "auto"}
# transformers' attn_implementation -> this table.
HF_KERNELS = {"eager": "eager", "sdpa": "sdpa", "flex_attention": "flex"}


def kernel_name(impl: str) -> str:
    """A kernel's name from a user's choice (aliases resolved); an unknown one lists the choices."""
    name = ALIASES.get(impl, impl)
    if name not in KERNELS:
        raise ValueError(f"attn_impl={impl!r}; choose one of {ATTN_IMPLS}")
    return name


def needs_factored(impl: str) -> bool:
    """Whether the kernel reads the positional terms factored (FlexPositions), not as a mask."""
    return impl == "flex"
