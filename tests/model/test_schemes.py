"""Today's baselines beside TUPE: RoPE, ALiBi and NoPE, each checked against an independent
formula, plus training, padding, save/load and conversion round trips."""

import math

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import random_tokens, tiny_config
from tests.model.test_invariance import perturbed
from tupe import TupeConfig, TupeModel, load_model, save_pretrained
from tupe.checkpoint import save_fairseq
from tupe.config import SCHEMES as REGISTRY
from tupe.model.positional import ALiBiBias, RotaryEmbedding, apply_rotary
from tupe.train.options import model_config, parse_args, scheme_flags

NEW = {"RoPE": dict(pos_encoding="rope"), "RoPE-R": dict(pos_encoding="rope", rel_pos=True),
       "ALiBi": dict(pos_encoding="alibi"), "NoPE": dict(pos_encoding="none")}


@pytest.mark.parametrize("name", REGISTRY)
def test_registry_name_is_the_inverse(name):
    assert tiny_config(**REGISTRY[name]).name == name
    assert TupeConfig.from_scheme(name, vocab_size=10, arch="bert_tiny").name == name
    # the flags train.py gets for the scheme build the same configuration
    args = parse_args(["data", "--max-sentences", "1", *scheme_flags(name)])
    assert model_config(args, 10).scheme == tiny_config(**REGISTRY[name]).scheme


def test_unregistered_names():
    assert tiny_config(pos_encoding="alibi", rel_pos=True).name == "ALiBi-R"
    assert tiny_config(rel_pos=True, untie_cls=False).name == "TUPE-R-tie-cls"
    with pytest.raises(ValueError, match="unknown scheme 'XYZ'; choose from TUPE-A, TUPE-R"):
        TupeConfig.from_scheme("XYZ", vocab_size=10)


def test_names_and_validation():
    for name, scheme in NEW.items():
        assert tiny_config(**scheme).name == name
        assert tiny_config(**scheme).untie_cls is False
    with pytest.raises(ValueError, match="untie_cls=True needs pos_encoding='tupe'"):
        tiny_config(pos_encoding="rope", untie_cls=True)
    with pytest.raises(ValueError, match="even head dimension"):
        TupeConfig(vocab_size=10, encoder_embed_dim=12, encoder_attention_heads=4, pos_encoding="rope")


def test_rope_equals_complex_rotation():
    """Channel pairs (c, c + d/2) as complex numbers, multiplied by exp(i t theta^(-2c/d))."""
    cfg = tiny_config(pos_encoding="rope", rope_theta=500.0)
    d, T = cfg.head_dim, 9
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 3, T, d, generator=g), torch.randn(2, 3, T, d, generator=g)
    cos, sin = RotaryEmbedding(cfg)(T)
    rq, rk = apply_rotary(q, k, cos, sin)
    for x, rx in ((q, rq), (k, rk)):
        z = torch.complex(x[..., : d // 2].double(), x[..., d // 2:].double())
        freq = torch.tensor([500.0 ** (-2 * c / d) for c in range(d // 2)], dtype=torch.float64)
        angle = torch.arange(T, dtype=torch.float64)[:, None] * freq
        want = z * torch.polar(torch.ones_like(angle), angle)
        torch.testing.assert_close(rx[..., : d // 2].double(), want.real, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(rx[..., d // 2:].double(), want.imag, atol=1e-5, rtol=1e-5)


def test_rope_scores_depend_only_on_distance():
    """q_i . k_j after rotation is unchanged when both move by the same shift."""
    cfg = tiny_config(pos_encoding="rope")
    d, T, shift = cfg.head_dim, 6, 11
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(1, 1, T, d, generator=g), torch.randn(1, 1, T, d, generator=g)
    cos, sin = RotaryEmbedding(cfg)(T + shift)
    base = apply_rotary(q, k, cos[:T], sin[:T])
    moved = apply_rotary(q, k, cos[shift:], sin[shift:])
    scores = base[0] @ base[1].transpose(-1, -2)
    torch.testing.assert_close(moved[0] @ moved[1].transpose(-1, -2), scores, atol=1e-5, rtol=1e-5)
    # and it does depend on the distance: moving only the keys by one position changes the scores
    keys_moved = apply_rotary(q, k, cos[1: T + 1], sin[1: T + 1])[1]
    assert not torch.allclose(base[0] @ keys_moved.transpose(-1, -2), scores, atol=1e-3)


def test_alibi_values():
    cfg = tiny_config(pos_encoding="alibi", encoder_attention_heads=4)
    bias = ALiBiBias(cfg)(5)
    assert bias.shape == (4, 5, 5)
    for h in range(4):
        slope = 2 ** (-8 * (h + 1) / 4)            # 0.25, 0.0625, 0.015625, 0.00390625
        for i in range(5):
            for j in range(5):
                assert bias[h, i, j].item() == pytest.approx(-slope * abs(j - i))
    assert ALiBiBias(cfg).slopes().tolist() == [0.25, 0.0625, 0.015625, 0.00390625]


def test_nope_is_permutation_equivariant():
    """Without positions, permuting the tokens permutes the features: no order information."""
    model = perturbed(tiny_config(pos_encoding="none"))
    tokens = random_tokens(1, 10)
    perm = torch.tensor([0, 5, 2, 8, 1, 3, 9, 4, 7, 6])
    with torch.no_grad():
        a, b = model.extract_features(tokens), model.extract_features(tokens[:, perm])
    torch.testing.assert_close(b, a[:, perm], atol=1e-5, rtol=1e-5)
    for scheme in ("RoPE", "ALiBi"):
        model = perturbed(tiny_config(**NEW[scheme]))
        with torch.no_grad():
            a, b = model.extract_features(tokens), model.extract_features(tokens[:, perm])
        assert not torch.allclose(b, a[:, perm], atol=1e-3), scheme


@pytest.mark.parametrize("scheme", REGISTRY)
def test_scheme_trains(scheme):
    torch.manual_seed(0)
    model = TupeModel(tiny_config(**REGISTRY[scheme], dropout=0.0, attention_dropout=0.0)).train()
    tokens = random_tokens(8, 12, seed=4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(tokens).view(-1, 50), tokens.view(-1), ignore_index=1)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses[::6]


@pytest.mark.parametrize("scheme", REGISTRY)
def test_save_load_and_fairseq_round_trip(scheme, tmp_path):
    model = perturbed(tiny_config(**REGISTRY[scheme], rope_theta=1234.0, max_rel_pos=64, activation_fn="relu"))
    model.register_classification_head(model.DEFAULT_HEAD, 3)
    model.eval()
    tokens = random_tokens(3, 10)
    with torch.no_grad():
        want = model(tokens)
    save_pretrained(model, tmp_path / "own")
    save_fairseq(model, tmp_path / "ck" / "checkpoint.pt")
    for path in (tmp_path / "own", tmp_path / "ck" / "checkpoint.pt"):
        again = load_model(path)
        assert again.cfg == model.cfg, path
        with torch.no_grad():
            assert torch.equal(again(tokens), want), path


def test_parameter_counts():
    """RoPE, ALiBi and NoPE have no positional parameters: BERT-A minus its position table."""
    C, L = 16, 24                                   # tiny_config's dim and max_positions
    bert_a = TupeModel(tiny_config(pos_encoding="absolute")).num_parameters()
    for scheme in ("RoPE", "ALiBi", "NoPE"):
        assert TupeModel(tiny_config(**NEW[scheme])).num_parameters() == bert_a - L * C
    assert math.isclose(RotaryEmbedding(tiny_config(pos_encoding="rope")).theta, 10000.0)
