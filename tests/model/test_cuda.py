"""GPU paths of the model (skipped without CUDA): parity on CUDA and autocast fp16/bf16."""

import numpy as np
import pytest
import torch

import tupe
from tests.conftest import FIXTURE, random_tokens, tiny_config

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_parity_on_cuda():
    model = tupe.load_model(FIXTURE / "checkpoint.pt").cuda()
    expected = np.load(FIXTURE / "expected.npz")
    for k in range(2):
        tokens = torch.from_numpy(expected[f"tokens_{k}"]).long().cuda()
        with torch.no_grad():
            logits = model(tokens).cpu()
        real = tokens.ne(1).cpu()
        torch.testing.assert_close(logits[real], torch.from_numpy(expected[f"logits_{k}"])[real],
                                   atol=1e-4, rtol=0)   # TF32/kernel differences allowed


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_forward_backward(dtype):
    model = tupe.TupeModel(tiny_config(rel_pos=True)).cuda().train()
    tokens = random_tokens(4, 20).cuda()
    mask = tokens.ne(1)
    with torch.autocast("cuda", dtype=dtype):
        logits = model(tokens, masked_tokens=mask)
        loss = torch.nn.functional.cross_entropy(logits.float(), tokens[mask])
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
        low = model.extract_features(tokens).float()
    with torch.no_grad():
        full = model.extract_features(tokens)
    assert (low - full)[mask].abs().max() < 0.1


# ------------------------------------------------------------------ attn_impl="flex" on CUDA
FLEX = dict(encoder_embed_dim=64, encoder_ffn_embed_dim=128, encoder_attention_heads=4, max_positions=128,
            attention_dropout=0.0, dropout=0.0)      # head dim 16 (32 folded): FlexAttention's minimum


def flex_pair(**scheme):
    import copy

    torch.manual_seed(0)
    bias = tupe.TupeModel(tiny_config(**FLEX, **scheme)).cuda().train()
    with torch.no_grad():
        for name, p in bias.named_parameters():
            if "relative_attention_bias" in name or "untied_pos" in name:
                p.normal_(0, 0.5)
    return bias, copy.deepcopy(bias).set_attn_impl("flex")


@pytest.mark.parametrize("scheme", [{}, {"rel_pos": True}, {"pos_encoding": "alibi"}])
def test_flex_kernel_matches_bias_form(scheme, monkeypatch):
    """fp32, gradients included; the fused kernel is the path taken (the math fallback would fail)."""
    import tupe.model.flex as flex_module

    monkeypatch.setattr(flex_module, "attend_math", lambda *a, **k: pytest.fail("math path used on CUDA"))
    bias, flex = flex_pair(**scheme)
    tokens = random_tokens(4, 100, vocab=50, pad_to=128).cuda()
    real = tokens.ne(1)
    outs = []
    for model in (bias, flex):
        logits = model(tokens)
        logits[real].square().mean().backward()
        outs.append((logits.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    torch.testing.assert_close(outs[1][0][real], outs[0][0][real], atol=1e-4, rtol=1e-4)
    for n, g in outs[0][1].items():
        torch.testing.assert_close(outs[1][1][n], g, atol=1e-4, rtol=1e-3, msg=n)
    assert flex_module._compiled_flex is not None


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_flex_autocast_tolerance(dtype):
    bias, flex = flex_pair(rel_pos=True)
    tokens = random_tokens(4, 128, vocab=50).cuda()
    real = tokens.ne(1)
    with torch.no_grad():
        want = bias.eval().extract_features(tokens)
    flex.train()
    with torch.autocast("cuda", dtype=dtype):
        low = flex.extract_features(tokens)
    low.float()[real].square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in flex.parameters() if p.grad is not None)
    assert (low.float() - want)[real].abs().max() < 0.1


def test_flex_backward_does_not_materialise_the_bias():
    """Training step at 8 x 512 with 12 heads: the flex path saves no (B, H, T, T) tensor for the
    backward pass (the bias form saves its mask), and its peak memory is lower by at least half
    of one such tensor (the folded q/k it saves instead are (B, H, T, 2d))."""
    B, H, T = 8, 12, 512
    cfg = dict(FLEX, encoder_embed_dim=192, encoder_ffn_embed_dim=384, encoder_attention_heads=H,
               encoder_layers=2, max_positions=T, vocab_size=1000)
    big = B * H * T * T
    peaks, largest = {}, {}
    for impl in ("bias", "flex"):
        torch.manual_seed(0)
        model = tupe.TupeModel(tupe.TupeConfig(**cfg, rel_pos=True)).cuda().train().set_attn_impl(impl)
        tokens = torch.randint(4, 1000, (B, T), device="cuda")
        sizes = []

        def pack(t, sizes=sizes):
            sizes.append(t.numel())
            return t
        for _ in range(2):                                  # the first step compiles
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                loss = model(tokens, masked_tokens=tokens.eq(5)).float().sum()
            loss.backward()
            torch.cuda.synchronize()
        peaks[impl], largest[impl] = torch.cuda.max_memory_allocated(), max(sizes)
        del model
    assert largest["bias"] >= big > largest["flex"], largest
    assert peaks["bias"] - peaks["flex"] > 0.5 * big * 4, peaks
