"""The token embedding and the masked-LM projection that share it, with one gradient.

The masked-LM head projects onto the token embedding's weight ``W`` (V x C), so ``W`` gets two
gradients: a dense V x C one from the projection and, from the lookup, one row per input token.
Plain autograd builds the second as a zero-filled V x C tensor (``embedding_dense_backward``)
and then adds the two into a third: three passes over V x C floats (at BERT-base size, 100 MB
each) for about a thousand rows of real gradient, 2-3% of a CPU training step.

:func:`tied_lookup` returns the looked-up embeddings *and* an alias of ``W`` for the projection,
both outputs of one autograd node; its backward receives both gradients at once and adds the
token rows into the projection's gradient in place (``index_add_``). Same gradient (to float
rounding: rows of a repeated token are summed in another order), one node, so ``W``'s hooks,
``torch.autograd.grad`` and gradient accumulation see the whole gradient as before. Used on the
masked-LM training path of ``TupeModel`` when ``W`` requires a gradient; everywhere else
(inference, export, compiled graphs, a frozen embedding) it is the plain lookup.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .padding import tracing


class _TiedLookup(torch.autograd.Function):

    @staticmethod
    def forward(ctx, weight: torch.Tensor, tokens: torch.Tensor, padding_idx: int):
        ctx.save_for_backward(tokens)
        ctx.padding_idx, ctx.weight_shape = padding_idx, weight.shape
        return F.embedding(tokens, weight, padding_idx), weight.view_as(weight)      # (B, T, C), (V, C)

    @staticmethod
    def backward(ctx, grad_embeds, grad_weight):
        (tokens,) = ctx.saved_tensors
        if grad_embeds is None:
            return grad_weight, None, None
        C = grad_embeds.size(-1)
        index = tokens.reshape(-1)                                                     # (B*T,)
        rows = grad_embeds.reshape(-1, C)                                              # (B*T, C)
        if ctx.padding_idx is not None:                                                # as F.embedding: no gradient
            rows = rows.masked_fill(index.eq(ctx.padding_idx).unsqueeze(-1), 0.0)      # into the padding row
        if grad_weight is None:                                                        # the projection unused
            grad_weight = rows.new_zeros(ctx.weight_shape)
        elif not grad_weight.is_contiguous():                                          # e.g. expanded (stride 0,
            grad_weight = grad_weight.contiguous()                                     # from weight.sum()): own memory
        # the projection's gradient reaches this node alone (the alias is not handed out), so it
        # can take the token rows in place
        return grad_weight.index_add_(0, index, rows.to(grad_weight.dtype)), None, None


def tied_lookup(embedding: nn.Embedding, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(embedding(tokens), embedding.weight)``: (B, T, C) and (V, C), the second to be used for
    the tied projection. While training the weight, both are outputs of one autograd node (see
    the module docstring); otherwise the plain lookup and the weight itself."""
    weight = embedding.weight
    plain = not (torch.is_grad_enabled() and weight.requires_grad) or tracing()
    if plain or embedding.max_norm is not None or embedding.scale_grad_by_freq or embedding.sparse:
        return embedding(tokens), weight
    return _TiedLookup.apply(weight, tokens, embedding.padding_idx)
