"""The attention-kernel table (tupe/model/attention.py): one signature, selected by name; each
name runs its own code, and all compute the same function."""

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import random_tokens, tiny_config
from tests.model.test_invariance import SCHEMES, perturbed
from tupe.model import attention
from tupe.model.attention import ATTN_IMPLS, KERNELS, kernel_name


@pytest.mark.parametrize("mask_shape", [(2, 4, 7, 7), (2, 1, 1, 7), None], ids=["tupe-bias", "padding-only", "none"])
@pytest.mark.parametrize("name", ["eager", "sdpa", "auto"])
def test_kernels_compute_sdpas_function(name, mask_shape):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 7, 8, generator=g) for _ in range(3))
    mask = None
    if mask_shape is not None:
        mask = torch.randn(mask_shape, generator=g)
        mask[..., -1] = float("-inf")
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3)
    got, probs = KERNELS[name](q, k, v, mask, 0.3, 0.0, False)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert probs is None
    got, probs = KERNELS[name](q, k, v, mask, 0.3, 0.0, True)     # probabilities asked for: eager's
    logits = q @ k.transpose(-1, -2) * 0.3 + (0 if mask is None else mask)
    torch.testing.assert_close(probs, torch.softmax(logits, -1), atol=1e-6, rtol=1e-5)


def test_eager_dropout_changes_the_output():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 7, 8, generator=g) for _ in range(3))
    torch.manual_seed(1)
    dropped, _ = KERNELS["eager"](q, k, v, None, 0.3, 0.5)
    assert dropped.shape == q.shape and not torch.allclose(dropped, KERNELS["eager"](q, k, v, None, 0.3, 0.0)[0])


def test_returned_probabilities_are_on_the_autograd_path():
    """output_attentions gives the tensor that feeds the value product: its gradient exists."""
    model = perturbed(tiny_config(rel_pos=True))
    out = model.encoder.encode(random_tokens(2, 9), output_attentions=True)
    for a in out.attentions:
        a.retain_grad()
    out.last_hidden_state.sum().backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in out.attentions)


@pytest.mark.parametrize("name", ["eager", "sdpa"])
def test_each_name_runs_its_own_code(name, monkeypatch):
    """'eager' never calls SDPA; 'sdpa' never runs the written-out softmax (outside need_weights)."""
    calls = []
    real_sdpa, real_eager = F.scaled_dot_product_attention, attention.eager
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append("sdpa") or real_sdpa(*a, **k))
    monkeypatch.setattr(attention, "eager", lambda *a, **k: calls.append("eager") or real_eager(*a, **k))
    monkeypatch.setitem(attention.KERNELS, "eager", attention.eager)
    model = perturbed(tiny_config()).set_attn_impl(name)
    with torch.no_grad():
        model(random_tokens(2, 9))
    assert calls and set(calls) == {name}, calls


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_kernel_gives_the_same_model(scheme):
    model = perturbed(tiny_config(**SCHEMES[scheme]))
    tokens = random_tokens(3, 11, seed=2)
    outs = {}
    for name in ATTN_IMPLS:
        model.set_attn_impl(name)
        with torch.no_grad():
            outs[name] = model(tokens)
    for name in ATTN_IMPLS:
        torch.testing.assert_close(outs[name], outs["auto"], atol=2e-5, rtol=1e-5)


def test_names_and_alias():
    assert ATTN_IMPLS == ("auto", "eager", "sdpa", "flex")
    assert kernel_name("bias") == "auto"
    with pytest.raises(ValueError, match="choose one of"):
        kernel_name("fast")


@pytest.mark.parametrize("shape,batch,dtype", [
    ((1, 4, 6, 6), 3, torch.float32),      # the positional bias of a full batch: summed over the batch
    ((1, 4, 6, 6), 8, torch.bfloat16),     # in bf16 (autocast), the sum accumulates in fp32
    ((3, 4, 6, 6), 3, torch.float32),      # bias + padding: one row per sequence, nothing summed
    ((1, 1, 6, 6), 2, torch.float32),      # broadcast over heads too
    ((4, 6, 6), 2, torch.float64),         # fewer dimensions
], ids=["batch-sum", "bf16", "per-row", "heads", "3d"])
def test_expanded_mask_and_its_gradient(shape, batch, dtype):
    """expand_mask: the values of the broadcast copy, and the gradient of autograd's own broadcast
    (exactly where nothing is summed; else to rounding, and at least as close to the exact sum)."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(shape, generator=g, dtype=torch.float64)
    grad = torch.randn(batch * 4, 6, 6, generator=g, dtype=torch.float64)
    mask = base.to(dtype if dtype == torch.float64 else torch.float32).requires_grad_()
    out = attention.expand_mask(mask, batch, 4, dtype)
    out.backward(grad.to(dtype))
    ours, mask.grad = mask.grad, None
    ref = mask.to(dtype).expand(batch, 4, 6, 6).reshape(batch * 4, 6, 6)
    ref.backward(grad.to(dtype))
    assert torch.equal(out, ref) and out.shape == (batch * 4, 6, 6) and out.is_contiguous()
    assert ours.shape == mask.shape and ours.dtype == mask.dtype
    exact = grad.to(dtype).double().view(batch, 4, 6, 6).sum_to_size((1,) * (4 - len(shape)) + shape).view(shape)
    if shape[0] == batch or dtype == torch.float64:
        torch.testing.assert_close(ours, mask.grad, rtol=1e-6, atol=1e-6)
    else:
        assert (ours.double() - exact).abs().max() <= (mask.grad.double() - exact).abs().max() + 1e-6
        torch.testing.assert_close(ours, mask.grad, rtol=0.02, atol=0.05)
    with torch.no_grad():                                       # no gradient wanted: a plain view/copy
        torch.testing.assert_close(attention.expand_mask(mask, batch, 4, dtype), ref.detach())


@pytest.mark.parametrize("shape", [(1, 4, 1, 6), (3, 1, 1, 6), (1, 1, 1, 6)], ids=["bias-row", "key-mask", "shared"])
def test_expanded_mask_for_one_query(shape):
    """expand_mask(queries=1) (first_only: the mask's first query row): values and gradient equal
    autograd's own broadcast."""
    g = torch.Generator().manual_seed(1)
    mask = torch.randn(shape, generator=g, dtype=torch.float64).requires_grad_()
    grad = torch.randn(3 * 4, 1, 6, generator=g, dtype=torch.float64)
    out = attention.expand_mask(mask, 3, 4, torch.float64, queries=1)
    out.backward(grad)
    ours, mask.grad = mask.grad, None
    ref = mask.expand(3, 4, 1, 6).reshape(3 * 4, 1, 6)
    ref.backward(grad)
    assert torch.equal(out, ref) and out.shape == (12, 1, 6)
    torch.testing.assert_close(ours, mask.grad, rtol=1e-12, atol=1e-12)


def _attend(q, k, v, mask, p, fused, seed=1):
    """The output and gradients of the fused training node (``attention.fused_training``) or of the
    eager kernel's composed operations, with the dropout generator seeded alike."""
    leaves = [t for t in (q, k, v, mask) if t is not None and t.requires_grad]
    torch.manual_seed(seed)
    y = attention.fused_training(q, k, v, mask, 0.3, p) if fused else attention.eager(q, k, v, mask, 0.3, p)[0]
    state = torch.get_rng_state()
    grads = torch.autograd.grad(y, leaves, torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y))
    return y, grads, state, y.grad_fn


@pytest.mark.parametrize("p", [0.0, 0.3])
@pytest.mark.parametrize("mask_kind", ["none", "bias", "bias+padding", "padding"])
@pytest.mark.parametrize("queries", [7, 1], ids=["all", "first-only"])
def test_fused_training_attention_equals_the_composed_operations(mask_kind, p, queries):
    """CPU training runs softmax, dropout and the products in one autograd node
    (attention._TrainingAttention): the same values and gradients (q, k, v and a learnable mask) as
    the composed operations, in float64 to 1e-12, with the same dropped positions (the same random
    draws: the generator ends in the same state)."""
    g = torch.Generator().manual_seed(0)
    B, H, T, d = 3, 4, 7, 5
    q = torch.randn(B, H, queries, d, generator=g, dtype=torch.float64, requires_grad=True)
    k, v = (torch.randn(B, H, T, d, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))
    padding = torch.zeros(B, 1, 1, T, dtype=torch.float64)
    padding[1, ..., -2:] = float("-inf")
    bias = torch.randn(1, H, queries, T, generator=g, dtype=torch.float64, requires_grad=True)
    mask = {"none": None, "bias": bias, "padding": padding, "bias+padding": bias + padding}[mask_kind]
    y, grads, state, node = _attend(q, k, v, mask, p, True)
    y0, grads0, state0, node0 = _attend(q, k, v, mask, p, False)
    assert type(node).__name__ == "_TrainingAttentionBackward" and type(node0).__name__ != type(node).__name__
    assert len(grads) == (4 if mask_kind.startswith("bias") else 3)
    torch.testing.assert_close(y, y0, atol=1e-12, rtol=1e-12)
    for a, b in zip(grads, grads0):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    assert torch.equal(state, state0)
    if p > 0:   # dropout did act: the output differs from the undropped one
        assert not torch.allclose(y, _attend(q, k, v, mask, 0.0, True)[0])


def test_fused_training_attention_under_bf16_autocast():
    """Under CPU autocast the fused node computes in bf16, as baddbmm/bmm would (inputs cast, the
    fp32 mask's gradient summed in fp32 and returned in fp32), within bf16 rounding of fp32."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 16, 8, generator=g, requires_grad=True) for _ in range(3))
    bias = torch.randn(1, 4, 16, 16, generator=g, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, grads, _, node = _attend(q, k, v, bias, 0.1, True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y0, grads0, _, _ = _attend(q, k, v, bias, 0.1, False)
    y32, grads32, _, _ = _attend(q, k, v, bias, 0.1, True)
    assert type(node).__name__ == "_TrainingAttentionBackward" and y.dtype == torch.bfloat16
    assert [t.dtype for t in grads] == [torch.float32] * 4
    torch.testing.assert_close(y.float(), y0.float(), atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(y.float(), y32, atol=5e-2, rtol=5e-2)
    for a, b in zip(grads, grads32):
        torch.testing.assert_close(a, b, atol=5e-2, rtol=5e-2)


def test_the_fused_node_serves_cpu_training_only():
    """A TUPE-R model in training mode with the default kernel ("auto") takes the fused node; with
    "eager", in eval mode, or with probabilities asked for, the composed operations run."""
    model = perturbed(tiny_config(rel_pos=True)).set_attn_impl("auto")
    tokens = random_tokens(2, 9)

    def fused(out):
        stack, found = [out.grad_fn], set()
        while stack:
            fn = stack.pop()
            if fn is None or fn in found:
                continue
            found.add(fn)
            stack.extend(f for f, _ in fn.next_functions)
        return "_TrainingAttentionBackward" in {type(f).__name__ for f in found}

    model.train()
    seen = [fused(model(tokens)), fused(model.encoder.encode(tokens, output_attentions=True).last_hidden_state)]
    model.set_attn_impl("eager")
    seen.append(fused(model(tokens)))
    model.set_attn_impl("auto").eval()
    seen.append(fused(model(tokens)))
    assert seen == [True, False, False, False]


def test_the_fused_node_refuses_a_second_derivative_and_eager_gives_it():
    """The fused node's backward works in place (``once_differentiable``): differentiating it again
    is an error, not a wrong number; the eager kernel's operations give second derivatives
    (gradgradcheck, float64, dropout off so that the function is deterministic)."""
    q, k, v = (torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    y = attention.fused_training(q, k, v, None, 0.5, 0.1)
    (gq,) = torch.autograd.grad(y.sum(), q, create_graph=True)
    with pytest.raises(RuntimeError, match="does not require grad|once_differentiable"):
        torch.autograd.grad(gq.sum(), k)
    mask = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda q, k, v, m: attention.eager(q, k, v, m, 0.5, 0.0)[0], (q, k, v, mask))
