"""The positional bias modules on their own."""

import math

import pytest
import torch

from tests.conftest import random_tokens, tiny_config
from tupe import TupeModel
from tupe.model import RelativePositionBias, UntiedPositionalCorrelation, relative_position_bucket


def bucket_by_hand(i, j, num_buckets=32, max_distance=128):
    n = -(j - i)
    ret = 16 if n < 0 else 0
    n = abs(n)
    if n < 8:
        return ret + n
    return ret + min(15, 8 + int(math.log(n / 8) / math.log(max_distance / 8) * 8))


@pytest.mark.parametrize("i,j,want", [
    (5, 5, 0), (5, 4, 1), (5, 6, 17), (10, 3, 7), (3, 10, 23), (20, 12, 8), (12, 20, 24),
    (100, 84, 10),   # n=16: 8 + floor(log(2)/log(16)*8) = 8 + 2
    (0, 63, 29),     # n=-63: 16 + 8 + floor(log(63/8)/log(16)*8) = 16 + 13
    (300, 0, 15), (0, 300, 31),  # beyond max distance: clipped
])
def test_bucket_values(i, j, want):
    assert bucket_by_hand(i, j) == want
    assert relative_position_bucket(torch.tensor(j - i)).item() == want


def test_bucket_matches_formula_everywhere():
    pos = torch.arange(200)
    buckets = relative_position_bucket(pos[None, :] - pos[:, None])
    for i in range(0, 200, 7):
        for j in range(0, 200, 5):
            assert buckets[i, j].item() == bucket_by_hand(i, j)
    assert buckets.min() == 0 and buckets.max() == 31 and 16 not in buckets.unique().tolist()


def test_relative_bias_cls_rows():
    cfg = tiny_config(rel_pos=True, encoder_attention_heads=4)
    mod = RelativePositionBias(cfg)
    with torch.no_grad():
        mod.relative_attention_bias.weight.copy_(torch.arange(33 * 4, dtype=torch.float).view(33, 4))
    bias = mod(10)
    assert bias.shape == (4, 10, 10)
    table = mod.relative_attention_bias.weight
    assert torch.equal(bias[:, 0, :], table[16][:, None].expand(4, 10))      # [CLS] -> others (wins at 0,0)
    assert torch.equal(bias[:, 1:, 0], table[32][:, None].expand(4, 9))      # others -> [CLS]
    assert torch.equal(bias[:, 4, 6], table[bucket_by_hand(4, 6)])
    assert torch.equal(bias[:, 9, 2], table[bucket_by_hand(9, 2)])


def test_relative_bias_tie_cls_uses_plain_buckets():
    cfg = tiny_config(rel_pos=True, untie_cls=False)
    mod = RelativePositionBias(cfg)
    table = mod.relative_attention_bias.weight
    bias = mod(6)
    assert torch.equal(bias[:, 0, 0], table[0])
    assert torch.equal(bias[:, 0, 3], table[bucket_by_hand(0, 3)])
    assert torch.equal(bias[:, 3, 0], table[bucket_by_hand(3, 0)])


@pytest.mark.parametrize("untie_cls", [True, False])
def test_relative_bias_equals_direct_gather_with_log_buckets(untie_cls):
    """The Toeplitz (unfold) construction equals gathering bucket(i, j) for every pair."""
    cfg = tiny_config(rel_pos=True, max_positions=300, untie_cls=untie_cls)
    mod = RelativePositionBias(cfg)
    T = 300
    pos = torch.arange(T)
    bucket = relative_position_bucket(pos[None, :] - pos[:, None])
    if untie_cls:
        bucket[:, 0], bucket[0, :] = 32, 16
    want = mod.relative_attention_bias.weight[bucket].permute(2, 0, 1)
    assert torch.equal(mod(T), want)
    assert torch.equal(mod(17), want[:, :17, :17])
    # gradients reach exactly the rows that are used
    mod(T).sum().backward()
    grad = mod.relative_attention_bias.weight.grad
    counts = torch.bincount(bucket.flatten(), minlength=33).float()
    torch.testing.assert_close(grad, counts[:, None].expand_as(grad))


def test_untied_correlation_by_hand():
    cfg = tiny_config()
    torch.manual_seed(0)
    mod = UntiedPositionalCorrelation(cfg)
    for p in mod.parameters():
        torch.nn.init.normal_(p)
    T, H, d = 7, cfg.encoder_attention_heads, cfg.head_dim
    bias = mod(T)
    assert bias.shape == (H, T, T)
    p = torch.nn.functional.layer_norm(mod.pos.weight[: T + 1], (cfg.encoder_embed_dim,),
                                       mod.pos_ln.weight, mod.pos_ln.bias)
    q = (p @ mod.pos_q_linear.weight.T + mod.pos_q_linear.bias).view(T + 1, H, d)
    k = (p @ mod.pos_k_linear.weight.T + mod.pos_k_linear.bias).view(T + 1, H, d)
    P = torch.einsum("ahd,bhd->hab", q, k) / math.sqrt(2 * d)
    torch.testing.assert_close(bias[:, 2, 5], P[:, 3, 6])              # token i uses row i+1
    torch.testing.assert_close(bias[:, 0, 4], P[:, 0, 0])              # theta_1: [CLS] -> others
    torch.testing.assert_close(bias[:, 0, 0], P[:, 0, 0])              # row wins at (0, 0)
    torch.testing.assert_close(bias[:, 5, 0], P[:, 1, 1])              # theta_2: others -> [CLS]
    tied = UntiedPositionalCorrelation(tiny_config(untie_cls=False))
    tied.load_state_dict(mod.state_dict())
    torch.testing.assert_close(tied(T)[:, 0, 0], P[:, 1, 1])
    torch.testing.assert_close(tied(T)[:, 0, 4], P[:, 1, 5])


@pytest.mark.parametrize("rel_pos", [False, True])
def test_bias_computed_once_per_forward_and_shared(rel_pos):
    model = TupeModel(tiny_config(rel_pos=rel_pos)).eval()
    calls, seen = [], []
    for m in model.encoder.positional_modules():          # the PositionalScheme interface's bias()
        def counted(*args, _bias=m.bias, **kwargs):
            out = _bias(*args, **kwargs)
            calls.append(out.shape)
            return out
        m.bias = counted
    for layer in model.encoder.layers:
        layer.register_forward_pre_hook(lambda mod, args: seen.append(args[1]))
    model(random_tokens(3, 9))
    assert len(calls) == (2 if rel_pos else 1)
    assert all(shape == (4, 9, 9) for shape in calls)
    assert len(seen) == 2 and seen[0] is seen[1]                       # the very same tensor in every layer
    assert seen[0].shape == (3, 4, 9, 9)


def test_rope_scaling_native():
    """linear: position t*s gets the angles of t unscaled; dynamic: nothing changes up to
    max_positions, the base grows past it; yarn: the fastest channels are kept, the slowest
    interpolated by the factor (the transformers cross-check is in tests/hf)."""
    from tupe import TupeConfig
    from tupe.model.positional import RotaryEmbedding

    def rope(**kw):
        return RotaryEmbedding(TupeConfig(vocab_size=10, pos_encoding="rope", encoder_embed_dim=64,
                                          encoder_attention_heads=2, max_positions=16, **kw))

    plain = rope()
    linear = rope(rope_scaling="linear", rope_scaling_factor=4.0)
    cos_plain, _ = plain(40)
    cos_linear, _ = linear(40)
    torch.testing.assert_close(cos_linear[[0, 4, 8, 36]], cos_plain[[0, 1, 2, 9]], atol=1e-5, rtol=0)
    dynamic = rope(rope_scaling="dynamic", rope_scaling_factor=4.0)
    assert torch.equal(dynamic.inverse_frequencies(16), plain.inverse_frequencies(16))
    assert (dynamic.inverse_frequencies(40)[1:] < plain.inverse_frequencies(40)[1:]).all()
    yarn = rope(rope_scaling="yarn", rope_scaling_factor=4.0).inverse_frequencies(40)
    assert yarn[0] == plain.inverse_frequencies(40)[0]
    torch.testing.assert_close(yarn[-1], plain.inverse_frequencies(40)[-1] / 4)
    with pytest.raises(ValueError, match="needs pos_encoding='rope'"):
        TupeConfig(vocab_size=10, rope_scaling="linear", rope_scaling_factor=2.0)
