"""Attention kernels: a table of functions with one signature, selected by name.

    kernel(q, k, v, mask, scale, p, need_weights) -> (output (B, H, T, d), probabilities | None)

``q, k, v``: (B, H, T, d) (``q`` may be (B, H, 1, d): the first position's queries alone, see
``Encoder.encode(first_only=True)``; not for "flex"); ``mask``: the additive mask the encoder
built once for all layers (broadcastable to (B, H, T, T), or None for a full batch without
positional bias), or, for "flex", the factored terms (``flex.FlexPositions``); ``scale``: the
logits' factor (1/sqrt(2d) for TUPE, 1/sqrt(d) otherwise); ``p``: attention dropout (0 in eval
mode).

* ``eager``: softmax(q k^T * scale + mask) with dropout, @ v, written out as torch operations;
  returns the probabilities that feed the value product (on the autograd path). Differentiable
  to any order and composable with ``torch.func``: the reference the others are tested against.
* ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention``; asked for probabilities it
  runs ``eager`` (SDPA does not return them, as in transformers).
* ``flex``: the positional terms read inside FlexAttention (flex.py; GPUs; no attention dropout).
* ``auto`` (the default): ``eager`` where SDPA cannot serve (probabilities asked for, graph
  export), else ``sdpa``; but CPU training with dropout (where SDPA only has its unfused math
  kernel, its mask drawn with ``bernoulli_``, slow on AMD CPUs: see dropout.py) runs the eager computation as one
  autograd node with a written-out backward (``_TrainingAttention``: fewer passes over the
  T x T tensors, ``dropout.py``'s cheap mask; first derivatives only: ``eager`` for more).

The encoder builds the mask in the form the kernel reads (``needs_factored``). transformers'
``attn_implementation`` maps onto this table one to one (``HF_KERNELS``).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .dropout import dropout, keep_mask
from .padding import tracing

Result = tuple[torch.Tensor, Optional[torch.Tensor]]


class _ExpandMask(torch.autograd.Function):
    """``mask`` (broadcastable to (B, H, Tq, T)) -> a contiguous (B*H, Tq, T) copy in ``dtype``. Its
    backward sums the gradient over the broadcast batch rows with element-wise adds, accumulating in
    fp32: the same sum as autograd's ``sum_to`` (to float rounding), which on the CPU reduces a
    leading dimension of 2-8 rows slowly (bf16, 2 x 512: 5 ms a layer, 5% of TUPE-R's step)."""

    @staticmethod
    def forward(ctx, mask, B: int, H: int, Tq: int, dtype: torch.dtype):
        ctx.shape, ctx.dtype, ctx.B, ctx.H = mask.shape, mask.dtype, B, H
        return broadcast_copy(mask, B, H, Tq, dtype).view(B * H, Tq, -1)

    @staticmethod
    def backward(ctx, grad):
        return mask_grad(grad.view(ctx.B, ctx.H, grad.size(-2), grad.size(-1)), ctx.shape, ctx.dtype), None, None, None, None


def broadcast_copy(mask: torch.Tensor, B: int, H: int, Tq: int, dtype: torch.dtype) -> torch.Tensor:
    """``mask`` broadcast to (B, H, Tq, T), in its own contiguous memory, in ``dtype``."""
    T = mask.size(-1)
    return torch.empty(B, H, Tq, T, dtype=dtype, device=mask.device).copy_(mask.expand(B, H, Tq, T))


def mask_grad(g: torch.Tensor, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """The gradient (B, H, Tq, T) of the logits summed down to a broadcast mask's ``shape`` in its
    ``dtype``; the batch rows with element-wise adds, accumulating in fp32 (see _ExpandMask)."""
    B = g.size(0)
    full = (1,) * (4 - len(shape)) + tuple(shape)                                      # the mask's 4-d shape
    if full[0] == 1 and B > 1:                                                         # summed over the batch
        low = g.dtype in (torch.float16, torch.bfloat16)
        acc = g[0].float().add_(g[1]) if low else torch.add(g[0], g[1])                # (H, Tq, T), fp32 or wider
        for row in g[2:]:
            acc.add_(row)
        g = acc.unsqueeze(0)                                                           # (1, H, Tq, T)
    dims = [i for i in (1, 2) if full[i] == 1 and g.size(i) > 1]
    if dims:
        g = g.sum(dims, keepdim=True)
    return g.to(dtype).reshape(shape)


def expand_mask(mask: torch.Tensor, B: int, H: int, dtype: torch.dtype, queries: Optional[int] = None) -> torch.Tensor:
    """The additive mask as the (B*H, Tq, T) input of ``baddbmm`` (see :class:`_ExpandMask`);
    ``queries``: Tq, the queries' length (default T; 1 for ``first_only``)."""
    T = mask.size(-1)
    Tq = T if queries is None else queries
    if not (mask.requires_grad and torch.is_grad_enabled()):
        return mask.to(dtype).expand(B, H, Tq, T).reshape(B * H, Tq, T)
    return _ExpandMask.apply(mask, B, H, Tq, dtype)


class _TrainingAttention(torch.autograd.Function):
    """The "auto" kernel's training path on the CPU in one autograd node: softmax(q k^T * scale +
    mask), dropout, @ v; q, k, v: (B, H, Tq|T, d) in one dtype. The same products, softmax and
    dropout mask (``dropout.keep_mask``'s random draws) as the composed operations, with fewer
    passes over the (B*H, Tq, T) tensors and faster product shapes (measured at BERT-base size):

    * the mask is copied once, into the logits (``baddbmm_`` in place; the out-of-place form
      copies it a second time);
    * the dropout mask is 1/0 and its 1/(1-p) is applied to the (B*H, Tq, d) output and its
      gradient, not to the T x T mask; the backward masks the probabilities' gradient in place;
    * v's gradient is computed transposed, ``g^T @ kept`` (a 64 x T result), which runs ~1.7x
      faster in fp32 than ``kept^T @ g`` (T x 64).
    """

    @staticmethod
    def forward(ctx, q, k, v, mask, scale: float, p: float):
        B, H, Tq, d = q.shape
        T = k.size(2)
        q3, kT3, v3 = q.reshape(B * H, Tq, d), k.transpose(2, 3).reshape(B * H, d, T), v.reshape(B * H, T, d)
        logits = q.new_empty(B, H, Tq, T) if mask is None else broadcast_copy(mask, B, H, Tq, q.dtype)
        logits = logits.view(B * H, Tq, T).baddbmm_(q3, kT3, beta=0 if mask is None else 1, alpha=scale)
        probs = kept = torch.softmax(logits, dim=-1)                                   # (B*H, Tq, T)
        del logits
        keep = None
        if p > 0:
            keep = keep_mask(probs.shape, p, probs.dtype, scaled=False)                # 1.0 / 0.0
            kept = probs * keep
        y = torch.bmm(kept, v3)                                                        # (B*H, Tq, d)
        if p > 0:
            y.mul_(1.0 / (1.0 - p))
        ctx.save_for_backward(q3, kT3, v3, probs, kept, keep)
        ctx.scale, ctx.p, ctx.B = scale, p, B
        ctx.mask_shape, ctx.mask_dtype = (mask.shape, mask.dtype) if mask is not None else (None, None)
        return y.view(B, H, Tq, d)

    @staticmethod
    @once_differentiable                                                               # in-place steps: no double backward
    def backward(ctx, grad_y):
        q3, kT3, v3, probs, kept, keep = ctx.saved_tensors
        BH, Tq, d = q3.shape
        B, H, T = ctx.B, BH // ctx.B, v3.size(1)
        g = grad_y.reshape(BH, Tq, d)
        if ctx.p > 0:
            g = g * (1.0 / (1.0 - ctx.p))
        need_q, need_k, need_v, need_mask = ctx.needs_input_grad[:4]
        grad_v = torch.bmm(g.transpose(1, 2), kept).view(B, H, d, T).transpose(2, 3) if need_v else None
        grad_logits = None
        if need_q or need_k or need_mask:
            grad_kept = torch.bmm(g, v3.transpose(1, 2))                              # (B*H, Tq, T)
            if ctx.p > 0:
                grad_kept.mul_(keep)
            grad_logits = torch._softmax_backward_data(grad_kept, probs, -1, probs.dtype)
        grad_q = torch.bmm(grad_logits, kT3.transpose(1, 2)).mul_(ctx.scale).view(B, H, Tq, d) if need_q else None
        grad_k = (torch.bmm(q3.transpose(1, 2), grad_logits).mul_(ctx.scale)          # (B*H, d, T)
                  .view(B, H, d, T).transpose(2, 3) if need_k else None)
        grad_mask = mask_grad(grad_logits.view(B, H, Tq, T), ctx.mask_shape, ctx.mask_dtype) if need_mask else None
        return grad_q, grad_k, grad_v, grad_mask, None, None


def _fusable(q, k, v, mask) -> bool:
    """Whether :class:`_TrainingAttention` serves: CPU autograd in eager mode (not
    under torch.compile, export or tracing, which see the composed operations)."""
    return (q.device.type == "cpu" and torch.is_grad_enabled()
            and any(t is not None and t.requires_grad for t in (q, k, v, mask))
            and not tracing())


def fused_training(q, k, v, mask, scale: float, p: float) -> Optional[torch.Tensor]:
    """:class:`_TrainingAttention`'s output (B, H, Tq, d) where it serves (``_fusable``: CPU
    autograd in eager mode), cast as autocast would cast ``baddbmm``/``bmm``; else None."""
    if not _fusable(q, k, v, mask):
        return None
    if torch.is_autocast_enabled("cpu"):
        low = torch.get_autocast_dtype("cpu")
        q, k, v = q.to(low), k.to(low), v.to(low)
    if not q.dtype == k.dtype == v.dtype:
        return None
    with torch.autocast("cpu", enabled=False):
        return _TrainingAttention.apply(q, k, v, mask, scale, p)


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
        y = None if need_weights else fused_training(q, k, v, mask, scale, p)          # CPU training
        return (y, None) if y is not None else eager(q, k, v, mask, scale, p, need_weights)
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
