"""TUPE attention without a (B, H, T, T) bias: the positional terms inside the kernel.

The bias form (``attn_impl="bias"``, the default) adds one (B, H, T, T) mask to every layer's
logits. Its positional part is learnable, so on a GPU no fused kernel (flash) accepts it and
the backward pass writes a (B, H, T, T) gradient per layer. ``attn_impl="flex"`` computes the
same logits from tensors without the batch dimension instead (at most (H, T, T); exact up to
float rounding; tested against the bias form, gradients included):

* TUPE's untied term is low rank. With ``u_i = p_i U^Q / sqrt(2d)`` and ``w_j = p_j U^K``
  (per head, d dims each), ``[q_i / sqrt(2d), u_i] . [k_j, w_j]`` is the word term plus the
  positional term: attention on q/k of head dim 2d (v keeps d) with scale 1. [CLS] is untied by
  zeroing its u and w rows; the score modification adds theta_2 to its column. theta_1, added
  to the whole [CLS] row, is a constant that softmax removes (its gradient is zero in the bias
  form too), so the kernel leaves it out.
* TUPE-R's relative term: the (H, 2T-1) per-distance table spread once per forward to
  (H, T, T) (``toeplitz``; [CLS]'s column value in column 0, row 0 zero), read in the score
  modification as ``relative[h, q, kv]``; ALiBi's ``-slope_h |kv - q|`` likewise.
* Padding is a block mask (keys at padded positions are skipped), built from per-block key
  counts (``padding_block_mask``).

On CUDA this runs FlexAttention (``torch.nn.attention.flex_attention``, compiled). A tensor the
score modification reads with a gradient gets it in the kernel's backward, by one atomic add
per score element, so where those adds land decides the speed (one layer, 32 x 512, bf16, on an
H200; ``benchmarks/flex_bench.py``, docs/performance.md): onto H addresses ([CLS]'s scalars read
as ``col0[h]``, the earlier form) they serialise: 181 ms, 50x the bias form; gathered from the
(H, 2T-1) table, 4.6 ms; from the (H, T, T) spread, 2.7 ms (bias form: 3.6 ms). So the relative
term is read spread, and without one (TUPE-A) [CLS]'s column value is read detached and gets
its gradient from a term added to the output (``cls_column_gradient``): zero in value, with the
exact gradient ``sum_i p_i0 dO_i . (v_0 - O_i)`` from the kernel's logsumexp, at O(B H T d)
cost. FlexAttention has no backward on the CPU, so there the same ``score_mod``/``mask_mod``
functions are evaluated on index grids (``attend_math``): materialised, no faster than the bias
form, but the same arithmetic, which is what the CPU tests check on every machine (CPU inference
without autograd runs FlexAttention's own eager evaluation). FlexAttention cannot drop attention
probabilities: training with this path needs ``attention_dropout=0``.
"""

from __future__ import annotations

import warnings
from typing import Optional

import torch
import torch.nn.functional as F

from .positional import toeplitz

_compiled_flex = None


def flex_attention_kernel():
    """torch.compile(flex_attention), built once (the fused kernel; eager flex is a reference).
    Default dynamism: a second sequence length recompiles once with a symbolic length, so
    finetuning batches of varying length do not compile per length."""
    global _compiled_flex
    if _compiled_flex is None:
        from torch.nn.attention.flex_attention import flex_attention  # torch's compiler stack: only on the flex path
        _compiled_flex = torch.compile(flex_attention)
    return _compiled_flex


class FlexPositions:
    """The positional terms of one forward in factored form, built once by the encoder and
    handed to every layer in place of the additive mask.

    padding      (B, T) bool, True at padded positions
    pos_q, pos_k (H, T, d) folded untied term (TUPE), [CLS] rows zeroed when untied; pos_q scaled
    row0, col0   (H,) what [CLS]'s row / column get instead of the positional terms (untie_cls);
                 the row's value is a constant over the row, which softmax removes: not read
    per_distance (H, 2T-1) relative bias by distance kv - q (TUPE-R, BERT-R, ...); spread once to
                 ``relative`` (H, T, T) (with [CLS]'s column, row 0 zero when untied)
    slopes       (H,) ALiBi slopes
    """

    def __init__(self, padding: torch.Tensor, pos_q: Optional[torch.Tensor] = None,
                 pos_k: Optional[torch.Tensor] = None, row0: Optional[torch.Tensor] = None,
                 col0: Optional[torch.Tensor] = None, per_distance: Optional[torch.Tensor] = None,
                 slopes: Optional[torch.Tensor] = None):
        self.padding, self.pos_q, self.pos_k = padding, pos_q, pos_k
        self.row0, self.col0, self.per_distance, self.slopes = row0, col0, per_distance, slopes
        self.T = padding.size(1)
        self._block_mask = None

        # The two modifications FlexAttention takes, as plain functions (it tells a score_mod
        # from a mask_mod by its number of arguments, so no bound methods). Element-wise, so they
        # serve FlexAttention (scalars) and attend_math (broadcast index grids) alike.
        def score_mod(score, b, h, q, kv):
            """score + the positional terms of (head h, query q, key kv)."""
            bias = None
            if relative is not None:                     # [CLS]'s row and column already in it
                bias = relative[h, q, kv]
            if cls_column is not None:
                rest = bias if bias is not None else 0.0
                bias = torch.where(q == 0, 0.0, torch.where(kv == 0, cls_column[h], rest))
            if slopes is not None:                       # ALiBi's own term, [CLS] included (as in the bias form)
                alibi = -slopes[h] * (kv - q).abs().to(slopes.dtype)
                bias = alibi if bias is None else bias + alibi
            return score if bias is None else score + bias

        def mask_mod(b, h, q, kv):
            return ~padding[b, kv]                       # keys at padded positions are skipped

        T = self.T
        relative = None
        if per_distance is not None:
            relative = toeplitz(per_distance, T)                  # (H, T, T), with its gradient
            if col0 is not None:                                  # [CLS]'s column; its row: 0 (see above)
                relative = relative.clone()
                relative[:, :, 0] = col0.unsqueeze(-1)
                relative[:, 0, :] = 0.0
            relative = relative.contiguous()
        self.relative = relative
        # [CLS]'s column without a relative term: read detached, its gradient from cls_column_gradient
        cls_column = None if col0 is None or relative is not None else col0.detach()
        self.score_mod, self.mask_mod = score_mod, mask_mod

    def block_mask(self):
        if self._block_mask is None:
            self._block_mask = padding_block_mask(self.padding, self.mask_mod)
        return self._block_mask

    # ------------------------------------------------------------------------ attention
    def fold(self, q: torch.Tensor, k: torch.Tensor, scale: float):
        """(B, H, T, d) q, k -> the kernel's q, k and scale: [q * scale, u], [k, w], 1 (TUPE);
        q, k, scale unchanged otherwise."""
        if self.pos_q is None:
            return q, k, scale
        B = q.size(0)
        pq = self.pos_q.to(q.dtype).unsqueeze(0).expand(B, -1, -1, -1)                # (B, H, T, d)
        pk = self.pos_k.to(k.dtype).unsqueeze(0).expand(B, -1, -1, -1)
        return torch.cat([q * scale, pq], dim=-1), torch.cat([k, pk], dim=-1), 1.0    # (B, H, T, 2d)

    def attend(self, q, k, v, scale: float, p: float = 0.0, need_weights: bool = False):
        """(B, H, T, d) q, k, v -> (B, H, T, d) and, with ``need_weights``, the probabilities."""
        if p > 0:
            raise ValueError("attn_impl='flex' cannot drop attention probabilities (FlexAttention "
                             "has no attention dropout): train with attention_dropout=0 "
                             "(--attention-dropout 0) or use another attn_impl (auto, eager, sdpa)")
        q, k, scale = self.fold(q, k, scale)
        use_kernel = not need_weights and (q.device.type == "cuda" or not torch.is_grad_enabled() or
                                           not (q.requires_grad or k.requires_grad or v.requires_grad))
        if use_kernel:
            if q.device.type == "cuda":
                dv = v.size(-1)
                if min(q.size(-1), dv) < 16:          # the kernel's smallest head dim: zero-pad
                    q, k, v = (F.pad(t, (0, max(0, 16 - t.size(-1)))) for t in (q, k, v))
                if not self.col0_needs_grad():
                    y = flex_attention_kernel()(q, k, v, score_mod=self.score_mod, block_mask=self.block_mask(),
                                                scale=scale)
                    return y[..., :dv], None
                y, lse = flex_with_lse(q, k, v, self.score_mod, self.block_mask(), scale)
                return self.cls_column_gradient(q, k, v, y, lse, scale)[..., :dv], None
            from torch.nn.attention.flex_attention import flex_attention  # torch's compiler stack: only on the flex path
            with warnings.catch_warnings():          # CPU inference: FlexAttention's eager evaluation
                warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
                return flex_attention(q, k, v, score_mod=self.score_mod, block_mask=self.block_mask(),
                                      scale=scale), None
        return attend_math(q, k, v, self, scale)

    def col0_needs_grad(self) -> bool:
        return (self.col0 is not None and self.relative is None and self.col0.requires_grad and
                torch.is_grad_enabled())

    def cls_column_gradient(self, q, k, v, y, lse, scale: float) -> torch.Tensor:
        """``y`` plus a term that is zero in value and gives [CLS]'s column value (col0, which the
        kernel reads detached) its exact gradient: with ``p_i0 = exp(s_i0 - lse_i)`` the
        probability of query i on key 0 (``s_i0 = q_i . k_0 * scale + col0``, i >= 1),
        ``dL/dcol0[h] = sum_(b, i >= 1) p_i0 (dO_i . v_0 - dO_i . O_i)``. q, k: the kernel's
        (folded) inputs; y (B, H, T, dv) its output; lse (B, H, T) its natural logsumexp."""
        H = q.size(1)
        col0 = self.col0.detach().float().view(1, H, 1)
        s0 = torch.matmul(q.detach().float(), k[:, :, 0].detach().float().unsqueeze(-1)).squeeze(-1) * scale + col0
        p0 = torch.exp(s0 - lse.detach().float())                                          # (B, H, T)
        p0[:, :, 0] = 0.0                                  # [CLS]'s own row does not read col0
        direction = p0.unsqueeze(-1) * (v[:, :, :1].detach().float() - y.detach().float())  # (B, H, T, dv)
        zero = (self.col0 - self.col0.detach()).float().view(1, H, 1, 1)
        return y + (zero * direction).to(y.dtype)


def padding_block_mask(padding: torch.Tensor, mask_mod, block: int = 128):
    """FlexAttention's BlockMask for a key-padding mask, from per-block key counts: the same
    block lists as ``create_block_mask(mask_mod, B, None, T, T)`` (tested), without evaluating
    ``mask_mod`` on all B x T x T positions (eager ``create_block_mask`` costs 50 ms of host
    time at 32 x 512 on 2 CPU cores; this: about 2 ms, a handful of small tensor ops).

    padding (B, T) bool, True at padded keys. Per (row, key block): no real key -> skipped,
    all real -> full (mask_mod not evaluated), else partial. The mask does not depend on the
    query, so every query block gets the same lists, except that when T is not a multiple of
    ``block`` the last query block (which reaches past T) lists its blocks as partial, as
    ``create_block_mask`` does."""
    from torch.nn.attention.flex_attention import BlockMask  # torch's compiler stack: only on the flex path
    B, T = padding.shape
    n = -(-T // block)                                                     # key blocks = query blocks
    real = F.pad(~padding, (0, n * block - T), value=False).view(B, n, block).sum(-1)   # (B, n)
    full = (real == block).unsqueeze(1).expand(B, n, n).clone()            # (B, query block, key block)
    if T % block:
        full[:, -1] = False
    partial = (real > 0).unsqueeze(1) & ~full

    def lists(sel):                          # (B, n, n) bool -> counts (B, 1, n), indices (B, 1, n, n)
        order = torch.argsort(sel.to(torch.int8), dim=-1, descending=True, stable=True)  # selected first
        return sel.sum(-1, dtype=torch.int32).unsqueeze(1), order.to(torch.int32).unsqueeze(1)

    return BlockMask.from_kv_blocks(*lists(partial), *lists(full), BLOCK_SIZE=block, mask_mod=mask_mod,
                                    seq_lengths=(T, T))


def flex_with_lse(q, k, v, score_mod, block_mask, scale: float):
    """The compiled kernel's output and natural logsumexp (B, H, T) (``return_aux`` in newer
    torch, ``return_lse`` before it)."""
    try:
        from torch.nn.attention.flex_attention import AuxRequest  # torch's compiler stack: only on the flex path
    except ImportError:                                                       # torch < 2.9
        return flex_attention_kernel()(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale,
                                       return_lse=True)
    y, aux = flex_attention_kernel()(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale,
                                     return_aux=AuxRequest(lse=True))
    return y, aux.lse


def attend_math(q, k, v, pos: FlexPositions, scale: float):
    """The same score_mod / mask_mod on materialised (B, H, T, T) index grids, with autograd
    (FlexAttention has no CPU backward). Returns (output (B, H, T, d), probabilities)."""
    B, H, T, _ = q.shape
    dev = q.device
    b = torch.arange(B, device=dev).view(B, 1, 1, 1)
    h = torch.arange(H, device=dev).view(1, H, 1, 1)
    qi = torch.arange(T, device=dev).view(1, 1, T, 1)
    kv = torch.arange(T, device=dev).view(1, 1, 1, T)
    scores = pos.score_mod(torch.matmul(q, k.transpose(-1, -2)) * scale, b, h, qi, kv)  # (B, H, T, T)
    scores = scores.masked_fill(~pos.mask_mod(b, h, qi, kv), float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32))
    y = torch.matmul(probs.to(v.dtype), v)
    if pos.col0_needs_grad():             # the kernel's way to col0's gradient, on the same inputs
        y = pos.cls_column_gradient(q, k, v, y, torch.logsumexp(scores.detach(), dim=-1), scale)
    return y, probs
