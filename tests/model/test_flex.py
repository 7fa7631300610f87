"""attn_impl="flex": TUPE's positional terms in factored form (folded untied term, relative
table and ALiBi read in the score modification, padding as a block mask) must equal the bias
form, outputs and gradients, for every scheme; on the CPU through the math evaluation of the
same score_mod (FlexAttention has no CPU backward) and, without autograd, through FlexAttention
itself. Kernel choice and fp16/bf16 tolerances on CUDA: tests/model/test_cuda.py."""

import copy
import warnings

import numpy as np
import pytest
import torch

from tests.conftest import random_tokens, tiny_config
from tupe import TupeModel
from tupe.config import SCHEMES as REGISTRY
from tupe.model import set_attn_impl
from tupe.model.flex import FlexPositions, attend_math

# Every registered scheme, and two combinations the registry does not name.
SCHEMES = {**REGISTRY, "TUPE-R-tie-cls": dict(rel_pos=True, untie_cls=False),
           "ALiBi-R": dict(pos_encoding="alibi", rel_pos=True)}       # two additive terms at once


def pair(scheme: dict, dtype=torch.float64, seed: int = 0):
    """Two copies of one model with random positional parameters (so [CLS]'s entries and the
    relative table are not at their init), one per attention implementation, dropout off."""
    torch.manual_seed(seed)
    model = TupeModel(tiny_config(attention_dropout=0.0, dropout=0.0, **scheme)).to(dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "relative_attention_bias" in name or "encoder.untied_pos" in name:
                p.normal_(0, 0.5)
    flex = copy.deepcopy(model)
    set_attn_impl(flex, "flex")
    return model, flex


@pytest.mark.parametrize("name", SCHEMES)
def test_flex_equals_bias_form_with_gradients(name):
    bias, flex = pair(SCHEMES[name])
    tokens = random_tokens(4, 20, seed=3)                   # rows of different lengths, padded
    assert tokens.eq(1).any()
    real = tokens.ne(1)
    outs = []
    for model in (bias, flex):
        model.train()
        logits = model(tokens)
        (logits[real].square().mean()).backward()             # padded rows excluded, as a loss would
        outs.append((logits, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    (lb, gb), (lf, gf) = outs
    torch.testing.assert_close(lf[real], lb[real], atol=1e-10, rtol=1e-10)
    assert gb.keys() == gf.keys()
    positional = [n for n in gb if "untied_pos" in n or "relative_attention_bias" in n]
    assert bool(positional) == (name.startswith("TUPE") or "-R" in name)
    for n in gb:
        torch.testing.assert_close(gf[n], gb[n], atol=1e-10, rtol=1e-8, msg=n)
        assert gb[n].abs().sum() > 0 or n.startswith("classification"), n


def test_cls_row_and_column_reach_their_parameters():
    """TUPE-R's [CLS] scalars per head: the column's (theta_2 and its relative-table row) get the
    same gradient through the flex path (read detached in the kernel, their gradient from
    cls_column_gradient) as through the bias; the row's (theta_1 and its table row) add a
    constant to the whole [CLS] row, which softmax removes: zero gradient in the bias form (to
    rounding) and exactly zero in the flex path, which leaves them out."""
    bias, flex = pair(SCHEMES["TUPE-R"])
    tokens = random_tokens(3, 12, seed=5)
    grads = []
    for model in (bias, flex):
        model(tokens)[tokens.ne(1)].square().mean().backward()
        table = model.encoder.rel_pos_bias.relative_attention_bias.weight.grad
        pos = model.encoder.untied_pos.pos.weight.grad
        grads.append({"column": (table[32], pos[1]), "row": (table[16], pos[0])})
    (b_col, b_row), (f_col, f_row) = (g.values() for g in grads)
    for a, b in zip(b_col, f_col):
        assert a.abs().sum() > 1e-10          # real gradients (~1e-7 here); rounding is ~1e-17
        torch.testing.assert_close(b, a, atol=1e-10, rtol=1e-8)
    for a, b in zip(b_row, f_row):
        assert a.abs().max() < 1e-12 and b.abs().max() == 0


def test_kernel_reads_cls_column_detached():
    """The score modification holds no learned scalar with a gradient for [CLS] (FlexAttention's
    backward would serialise on its atomic adds onto H addresses); with a relative term its column
    is part of the spread (H, T, T) table, read with its gradient (adds over H T^2 addresses)."""
    T, H = 6, 2
    col0 = torch.randn(H, requires_grad=True)
    pos = FlexPositions(torch.zeros(1, T, dtype=torch.bool), row0=torch.randn(H, requires_grad=True), col0=col0)
    grid = pos.score_mod(torch.zeros(1, H, T, T), torch.zeros(1, 1, 1, 1, dtype=torch.long),
                         torch.arange(H).view(1, H, 1, 1), torch.arange(T).view(1, 1, T, 1),
                         torch.arange(T).view(1, 1, 1, T))
    assert not grid.requires_grad and pos.col0_needs_grad()
    torch.testing.assert_close(grid[0, :, 1:, 0], col0.detach().view(H, 1).expand(H, T - 1))
    table = torch.randn(H, 2 * T - 1, requires_grad=True)
    relative = FlexPositions(torch.zeros(1, T, dtype=torch.bool), row0=torch.randn(H), col0=col0, per_distance=table)
    assert relative.relative.shape == (H, T, T) and relative.relative.requires_grad and not relative.col0_needs_grad()


def test_fp32_tolerance_and_reference_checkpoint():
    """The original checkpoint (TUPE-R) through the flex path, fp32, within 1e-5 of its recorded
    outputs, the same tolerance as the bias form."""
    import tupe
    from tests.conftest import FIXTURE

    model = tupe.load_model(FIXTURE / "checkpoint.pt").set_attn_impl("flex")
    expected = np.load(FIXTURE / "expected.npz")
    for k in (0, 1):
        tokens = torch.from_numpy(expected[f"tokens_{k}"]).long()
        real = tokens.ne(1)
        with torch.no_grad():
            features = model.extract_features(tokens)
        torch.testing.assert_close(features[real], torch.from_numpy(expected[f"features_{k}"])[real],
                                   atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["TUPE-A", "TUPE-R", "ALiBi"])
def test_flexattention_kernel_on_cpu_matches_math(name):
    """Without autograd the CPU runs FlexAttention itself (its eager reference): the same
    score_mod/mask_mod give the same attention as their math evaluation and the bias form."""
    bias, flex = pair(SCHEMES[name], dtype=torch.float32)
    tokens = random_tokens(3, 16, seed=7)
    real = tokens.ne(1)
    with torch.no_grad():
        want = bias.eval().extract_features(tokens)
        got = flex.eval().extract_features(tokens)
    torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=1e-5)
    # and the kernel was the path taken: the math path is only used with autograd
    from torch.nn.attention.flex_attention import flex_attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 4, 16, 4, generator=g) for _ in range(3))
    with torch.no_grad():
        pos = flex.encoder.flex_positions(16, tokens.eq(1))
        qf, kf, scale = pos.fold(q, k, 0.25)
        kernel = flex_attention(qf, kf, v, score_mod=pos.score_mod, block_mask=pos.block_mask(), scale=scale)
        math, _ = attend_math(qf, kf, v, pos, scale)
    torch.testing.assert_close(kernel, math, atol=1e-5, rtol=1e-5)


CUDA = pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(),
                                                                           reason="needs a CUDA device")])


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("T", [16, 128, 200, 256, 300])
def test_padding_block_mask_matches_create_block_mask(T, device):
    """The block mask from per-block key counts lists the same blocks (counts, and indices up
    to each count) as FlexAttention's create_block_mask evaluating mask_mod everywhere, for
    right padding, rows without padding, rows shorter than a block, and padding inside a row;
    and the kernel gives the same attention with either."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    from tupe.model.flex import padding_block_mask

    g = torch.Generator().manual_seed(T)
    lengths = [T, max(1, T - 77), min(T, 5), max(1, T // 2)]
    padding = torch.arange(T).unsqueeze(0) >= torch.tensor(lengths).unsqueeze(1)    # (4, T)
    padding[3, torch.randint(1, T, (T // 4,), generator=g)] = True                  # holes inside a row
    padding = padding.to(device)

    def mask_mod(b, h, q, kv):
        return ~padding[b, kv]

    want = create_block_mask(mask_mod, 4, None, T, T, device=device)
    got = padding_block_mask(padding, mask_mod)
    assert got.seq_lengths == want.seq_lengths == (T, T)
    for counts, indices in [("kv_num_blocks", "kv_indices"), ("full_kv_num_blocks", "full_kv_indices"),
                            ("q_num_blocks", "q_indices"), ("full_q_num_blocks", "full_q_indices")]:
        n_want, n_got = getattr(want, counts), getattr(got, counts)
        assert torch.equal(n_got, n_want), counts
        i_want, i_got = getattr(want, indices), getattr(got, indices)
        assert i_got.shape == i_want.shape
        for b in range(4):
            for row in range(n_want.size(-1)):
                k = int(n_want[b, 0, row])
                # the listed blocks, in the kernel's order for kv lists; as a set for q lists
                a, c = i_want[b, 0, row, :k], i_got[b, 0, row, :k]
                assert torch.equal(c.sort().values, a.sort().values) and (indices.startswith("q") or torch.equal(c, a))
    assert int(got.kv_num_blocks.sum()) > 0 and (int(got.full_kv_num_blocks.sum()) > 0) == (T >= 128)
    q, k, v = (torch.randn(4, 2, T, 16, generator=g).to(device) for _ in range(3))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out_want = flex_attention(q, k, v, block_mask=want)
        out_got = flex_attention(q, k, v, block_mask=got)
    torch.testing.assert_close(out_got, out_want, atol=1e-5, rtol=1e-5)


def test_output_attentions_through_flex():
    bias, flex = pair(SCHEMES["TUPE-R"])
    tokens = random_tokens(2, 10, seed=1)
    with torch.no_grad():
        a = bias.eval().encoder.encode(tokens, output_attentions=True).attentions
        b = flex.eval().encoder.encode(tokens, output_attentions=True).attentions
    for x, y in zip(a, b):
        torch.testing.assert_close(y.to(x.dtype), x, atol=1e-10, rtol=1e-8)


def test_flex_refuses_attention_dropout_in_training():
    torch.manual_seed(0)
    model = TupeModel(tiny_config(attention_dropout=0.1)).set_attn_impl("flex").train()
    with pytest.raises(ValueError, match="attention_dropout=0"):
        model(random_tokens(2, 8))
    model.eval()(random_tokens(2, 8))                          # eval: no dropout, fine


def test_set_attn_impl_validation_and_electra():
    from tupe.model.electra import ElectraModel, generator_config

    with pytest.raises(ValueError, match="choose one of"):
        TupeModel(tiny_config()).set_attn_impl("flash")
    cfg = tiny_config(attention_dropout=0.0)
    model = ElectraModel(cfg, generator_config(cfg, divisor=2))
    set_attn_impl(model, "flex")
    assert model.discriminator.encoder.attn_impl == model.generator.encoder.attn_impl == "flex"


def test_score_mod_is_elementwise():
    """score_mod must work on scalars (FlexAttention) as on grids: one (h, q, kv) at a time
    equals the grid evaluation."""
    g = torch.Generator().manual_seed(0)
    T, H = 6, 2
    pos = FlexPositions(torch.zeros(1, T, dtype=torch.bool), row0=torch.randn(H, generator=g),
                        col0=torch.randn(H, generator=g), per_distance=torch.randn(H, 2 * T - 1, generator=g))
    grid = pos.score_mod(torch.zeros(1, H, T, T), torch.zeros(1, 1, 1, 1, dtype=torch.long),
                         torch.arange(H).view(1, H, 1, 1), torch.arange(T).view(1, 1, T, 1),
                         torch.arange(T).view(1, 1, 1, T))
    for h in range(H):
        for i in range(T):
            for j in range(T):
                one = pos.score_mod(torch.tensor(0.0), torch.tensor(0), torch.tensor(h), torch.tensor(i),
                                    torch.tensor(j))
                want = 0.0 if i == 0 else pos.col0[h] if j == 0 else pos.per_distance[h, j - i + T - 1]
                assert one == grid[0, h, i, j] == want


@pytest.mark.slow          # compiles FlexAttention's CPU kernel (~20-40 s)
@pytest.mark.parametrize("name", ["TUPE-R", "ALiBi"])
def test_compiled_flexattention_traces_the_score_mod(name):
    """The compiled kernel (what CUDA runs) traces these score_mod/mask_mod closures: on the CPU
    its forward equals the grid evaluation. (Its backward needs a GPU: tests/model/test_cuda.py.)"""
    from tupe.model.flex import flex_attention_kernel

    _, flex = pair(SCHEMES[name], dtype=torch.float32)
    tokens = random_tokens(3, 16, seed=7)
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 4, 16, 4, generator=g) for _ in range(3))
    with torch.no_grad():
        pos = flex.encoder.flex_positions(16, tokens.eq(1))
        qf, kf, scale = pos.fold(q, k, 0.25)
        kernel = flex_attention_kernel()(qf, kf, v, score_mod=pos.score_mod, block_mask=pos.block_mask(), scale=scale)
        math, _ = attend_math(qf, kf, v, pos, scale)
    torch.testing.assert_close(kernel, math, atol=1e-5, rtol=1e-5)


@pytest.mark.slow          # compiles FlexAttention's CPU kernel (~30 s)
def test_compiled_kernel_skips_blocks_as_listed():
    """Over several 128-blocks (300 tokens: full, partial and skipped key blocks, a last query
    block reaching past T), the compiled kernel, which skips the mask on full blocks and
    whole skipped blocks, equals the grid evaluation on every real query."""
    from torch.nn.attention.flex_attention import flex_attention

    _, flex = pair({**SCHEMES["TUPE-R"], "max_positions": 512}, dtype=torch.float32)
    T = 300
    tokens = random_tokens(4, T, seed=T)
    padding = tokens.eq(1)
    padding[0] = False                                        # a row without padding: full blocks
    padding[1, 60:] = True                                    # a short row: skipped blocks
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(4, 4, T, 4, generator=g) for _ in range(3))
    with torch.no_grad():
        pos = flex.encoder.flex_positions(T, padding)
        mask = pos.block_mask()
        assert int(mask.full_kv_num_blocks.sum()) > 0 and int((mask.kv_num_blocks + mask.full_kv_num_blocks).min()) < 3
        qf, kf, scale = pos.fold(q, k, 0.25)
        kernel = torch.compile(flex_attention, dynamic=False)(qf, kf, v, score_mod=pos.score_mod, block_mask=mask,
                                                               scale=scale)
        math, _ = attend_math(qf, kf, v, pos, scale)
    real = (~padding)[:, None, :, None].expand_as(math)
    torch.testing.assert_close(kernel[real], math[real], atol=1e-5, rtol=1e-5)
