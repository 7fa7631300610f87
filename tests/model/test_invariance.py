"""Padding, batch order, dropout, and the baselines' forward/backward."""

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import random_tokens, tiny_config
from tupe import TupeModel
from tupe.config import SCHEMES as REGISTRY

# Every registered scheme (a scheme added to the registry is tested here without an edit), pre-LN,
# and the relative bias beside ALiBi and NoPE (built from the same fields; not named in the registry).
SCHEMES = {**REGISTRY, "TUPE-A pre-LN": dict(encoder_normalize_before=True),
           "ALiBi-R": dict(pos_encoding="alibi", rel_pos=True), "NoPE-R": dict(pos_encoding="none", rel_pos=True)}


def perturbed(cfg):
    torch.manual_seed(1)
    model = TupeModel(cfg)
    with torch.no_grad():   # move away from init so LayerNorm ones/zero biases hide nothing
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


@pytest.mark.parametrize("scheme", SCHEMES.values(), ids=list(SCHEMES))
def test_appending_padding_changes_nothing(scheme):
    model = perturbed(tiny_config(**scheme))
    tokens = random_tokens(4, 12)
    padded = F.pad(tokens, (0, 7), value=1)
    with torch.no_grad():
        a, b = model(tokens), model(padded)
    real = tokens.ne(1)
    torch.testing.assert_close(a[real], b[:, :12][real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("scheme", SCHEMES.values(), ids=list(SCHEMES))
def test_batch_order_does_not_matter(scheme):
    model = perturbed(tiny_config(**scheme))
    tokens = random_tokens(5, 10, seed=3)
    perm = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        a, b = model.extract_features(tokens), model.extract_features(tokens[perm])
    real = tokens.ne(1)
    torch.testing.assert_close(a[perm][real[perm]], b[real[perm]], atol=1e-5, rtol=1e-5)


def test_single_sequence_equals_batched():
    model = perturbed(tiny_config(rel_pos=True))
    tokens = random_tokens(3, 11, seed=5)
    with torch.no_grad():
        batched = model.extract_features(tokens)
        for b in range(3):
            n = int(tokens[b].ne(1).sum())
            alone = model.extract_features(tokens[b : b + 1, :n])
            torch.testing.assert_close(alone[0], batched[b, :n], atol=1e-5, rtol=1e-5)


def test_dropout_off_in_eval_on_in_train():
    model = perturbed(tiny_config(rel_pos=True, dropout=0.3, attention_dropout=0.3))
    tokens = random_tokens(2, 10)
    with torch.no_grad():
        assert torch.equal(model(tokens), model(tokens))
        model.train()
        assert not torch.allclose(model(tokens), model(tokens))


def test_positions_matter_and_word_order_matters():
    """A position-aware model must give different features to a permuted sentence."""
    model = perturbed(tiny_config(rel_pos=True))
    tokens = random_tokens(1, 10)
    swapped = tokens.clone()
    swapped[0, 2], swapped[0, 5] = tokens[0, 5], tokens[0, 2]
    with torch.no_grad():
        a, b = model.extract_features(tokens), model.extract_features(swapped)
    assert not torch.allclose(a[0, 2], b[0, 5], atol=1e-4)


@pytest.mark.parametrize("scheme", SCHEMES.values(), ids=list(SCHEMES))
def test_forward_backward_all_schemes(scheme):
    cfg = tiny_config(**scheme)
    model = TupeModel(cfg).train()
    tokens = random_tokens(3, 12)
    mask = tokens.ne(1) & (torch.rand(tokens.shape, generator=torch.Generator().manual_seed(0)) < 0.3)
    mask[0, 1] = True
    logits = model(tokens, masked_tokens=mask)
    assert logits.shape == (int(mask.sum()), cfg.vocab_size)
    F.cross_entropy(logits, tokens[mask]).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), \
        [n for n, g in grads.items() if g is None]
    if cfg.pos_encoding == "tupe":
        assert grads["encoder.untied_pos.pos_q_linear.weight"].abs().sum() > 0
    elif cfg.pos_encoding == "absolute":
        assert grads["encoder.embed_positions.weight"].abs().sum() > 0
    if cfg.rel_pos:
        assert grads["encoder.rel_pos_bias.relative_attention_bias.weight"].abs().sum() > 0


def test_bert_a_has_no_untied_parameters_and_standard_scaling():
    bert = TupeModel(tiny_config(pos_encoding="absolute"))
    tupe_model = TupeModel(tiny_config())
    names = set(dict(bert.named_parameters()))
    assert not any("untied_pos" in n or "rel_pos_bias" in n for n in names)
    assert "encoder.embed_positions.weight" in names
    assert bert.encoder.positional_bias(5) is None
    d = bert.cfg.head_dim
    assert bert.encoder.layers[0].self_attn.scaling == pytest.approx(d ** -0.5)
    assert tupe_model.encoder.layers[0].self_attn.scaling == pytest.approx((2 * d) ** -0.5)


def test_attention_matches_explicit_softmax():
    """SDPA with the folded mask equals the paper's formula written out."""
    model = perturbed(tiny_config(rel_pos=True, encoder_layers=1))
    enc, attn = model.encoder, model.encoder.layers[0].self_attn
    tokens = random_tokens(2, 8)
    x = enc.emb_layer_norm(enc.embed_tokens(tokens)) * tokens.ne(1).unsqueeze(-1)
    B, T, C = x.shape
    H, d = 4, C // 4
    q, k, v = (x @ attn.in_proj.weight.T + attn.in_proj.bias).split(C, dim=-1)
    q, k, v = (t.view(B, T, H, d).transpose(1, 2) for t in (q, k, v))
    logits = q @ k.transpose(-1, -2) / (2 * d) ** 0.5 + enc.positional_bias(T)
    logits = logits.masked_fill(tokens.eq(1)[:, None, None, :], float("-inf"))
    y = (logits.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
    want = enc.layers[0].self_attn_layer_norm(x + attn.out_proj(y))
    got_mask = torch.zeros(B, 1, 1, T).masked_fill(tokens.eq(1)[:, None, None, :], float("-inf"))
    got = enc.layers[0].self_attn_layer_norm(x + attn(x, got_mask + enc.positional_bias(T))[0])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_too_long_sequence_is_a_clear_error():
    model = TupeModel(tiny_config(max_positions=8))
    with pytest.raises(ValueError, match="exceeds max_positions=8"):
        model(random_tokens(1, 9))


def test_classification_heads():
    model = perturbed(tiny_config())
    head = model.register_classification_head("sentence_classification_head", 3)
    assert model.register_classification_head("sentence_classification_head", 3) is head
    model.register_classification_head("sts", 1)
    tokens = random_tokens(4, 9)
    assert model(tokens, classification_head_name="sentence_classification_head").shape == (4, 3)
    assert model(tokens, classification_head_name="sts").shape == (4, 1)
    with pytest.raises(KeyError, match="no classification head 'nope'"):
        model(tokens, classification_head_name="nope")
    with pytest.raises(ValueError, match="exists with 3 classes"):
        model.register_classification_head("sentence_classification_head", 2)
    # the head reads position 0 only (and a head added to an eval model is in eval mode)
    assert not model.classification_heads["sts"].training
    features = model.extract_features(tokens)
    out = model.classification_heads["sts"](features)
    features[:, 1:] = 0
    torch.testing.assert_close(model.classification_heads["sts"](features), out)


@pytest.mark.parametrize("scheme", [dict(), dict(rel_pos=True), dict(pos_encoding="alibi")])
def test_unpadded_batch_shortcut_is_exact(scheme, monkeypatch):
    """A batch without padding gets the (1, H, T, T) bias instead of the (B, H, T, T) sum with a
    zero key mask: the same outputs and gradients."""
    from tupe.model.padding import padding_layout
    from tupe.model.transformer import Encoder

    torch.manual_seed(0)
    model = TupeModel(tiny_config(dropout=0.0, attention_dropout=0.0, **scheme)).train()
    tokens = random_tokens(3, 12, seed=4)
    tokens[tokens.eq(1)] = 9                                   # no padding anywhere
    assert Encoder._no_padding(padding_layout(tokens.eq(1))[1])
    assert not Encoder._no_padding(padding_layout(random_tokens(3, 12, seed=4).eq(1))[1])
    results = []
    for shortcut in (True, False):
        if not shortcut:
            monkeypatch.setattr(Encoder, "_no_padding", staticmethod(lambda padded: False))
        model.zero_grad()
        out = model(tokens)
        out.square().mean().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    assert torch.equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("scheme", [dict(pos_encoding="absolute"), dict(pos_encoding="rope"), dict(pos_encoding="none")])
def test_full_batch_without_mask_in_inference(scheme, monkeypatch):
    """Schemes without a positional bias pass no mask at all for a full batch in inference (the
    key mask would be all zeros): the same features and attention probabilities."""
    from tupe.model.transformer import Encoder

    torch.manual_seed(0)
    model = TupeModel(tiny_config(**scheme)).eval()
    tokens = random_tokens(3, 12, seed=4)
    tokens[tokens.eq(1)] = 9
    seen = []
    layer = model.encoder.layers[0]
    real_forward = type(layer).forward
    monkeypatch.setattr(type(layer), "forward", lambda self, x, mask, *a: (seen.append(mask), real_forward(self, x, mask, *a))[1])
    results = []
    for shortcut in (True, False):
        if not shortcut:
            monkeypatch.setattr(Encoder, "_no_padding", staticmethod(lambda padding, padded=None: False))
        with torch.no_grad():
            out = model.encoder.encode(tokens, output_attentions=True)      # eager attention
            features = model.extract_features(tokens)                       # SDPA
        results.append((out.last_hidden_state, out.attentions, features))
    assert seen[0] is None and seen[-1] is not None
    assert torch.equal(results[0][0], results[1][0])
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1]))
    torch.testing.assert_close(results[0][2], results[1][2], atol=1e-6, rtol=1e-6)
