"""The tied embedding's one gradient (tupe/model/tied.py) equals plain autograd's two."""

import pytest
import torch
import torch.nn.functional as F

from tupe import TupeConfig, TupeModel
from tupe.model.tied import tied_lookup


def _loss(embedding, tokens, fused, bias):
    embeds, weight = tied_lookup(embedding, tokens) if fused else (embedding(tokens), embedding.weight)
    h = torch.tanh(embeds)[:, :5].reshape(-1, embeds.size(-1))
    return F.linear(h, weight, bias).logsumexp(-1).sum() + (embeds ** 2).sum()


@pytest.fixture
def case():
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(50, 8, padding_idx=1)
    tokens = torch.randint(0, 50, (3, 7))
    tokens[0, -3:] = 1                 # padding: no gradient from the lookup
    tokens[1, :4] = 5                  # a repeated token: its rows are summed
    return embedding, tokens, torch.randn(50) * 0.1


def _grad(embedding, tokens, bias, fused):
    embedding.weight.grad = None
    _loss(embedding, tokens, fused, bias).backward()
    return embedding.weight.grad.clone()


def test_same_gradient_as_plain_autograd(case):
    embedding, tokens, bias = case
    plain, fused = _grad(embedding, tokens, bias, False), _grad(embedding, tokens, bias, True)
    torch.testing.assert_close(fused, plain, rtol=1e-6, atol=1e-6)
    assert plain[1].abs().max() > 0          # the padding row: the projection's gradient only (below)
    assert plain[5].abs().max() > 0


def test_accumulates_and_answers_autograd_grad(case):
    embedding, tokens, bias = case
    once = _grad(embedding, tokens, bias, False)
    embedding.weight.grad = None
    _loss(embedding, tokens, True, bias).backward()
    _loss(embedding, tokens, True, bias).backward()                       # gradient accumulation
    torch.testing.assert_close(embedding.weight.grad, 2 * once, rtol=1e-6, atol=2e-6)
    (grad,) = torch.autograd.grad(_loss(embedding, tokens, True, bias), embedding.weight)
    torch.testing.assert_close(grad, once, rtol=1e-6, atol=1e-6)


def test_projection_unused_and_plain_paths(case):
    embedding, tokens, _ = case
    embeds, weight = tied_lookup(embedding, tokens)
    embeds.sum().backward()                                               # the alias gets no gradient
    want = torch.zeros(50, 8).index_add_(0, tokens.reshape(-1), torch.ones(21, 8))
    want[1] = 0
    torch.testing.assert_close(embedding.weight.grad, want)
    with torch.no_grad():                                                 # no autograd: the weight itself
        assert tied_lookup(embedding, tokens)[1] is embedding.weight
    embedding.weight.requires_grad_(False)                                # frozen (adapters): plain lookup
    assert tied_lookup(embedding, tokens)[1] is embedding.weight


def test_masked_lm_training_step_matches_the_plain_model():
    """A whole TupeModel: the masked-LM loss and every parameter's gradient as with two gradients."""
    cfg = TupeConfig.from_preset("bert_tiny", vocab_size=40, max_positions=16)
    torch.manual_seed(0)
    model = TupeModel(cfg).train()
    tokens = torch.randint(4, 40, (3, 12))
    tokens[:, 0] = 0
    tokens[2, 9:] = cfg.padding_idx
    masked = torch.zeros_like(tokens, dtype=torch.bool)
    masked[:, 3:6] = True

    def grads(fused):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)                                              # same dropout masks
        if fused:
            logits = model(tokens, masked_tokens=masked)
        else:
            features = model.encoder(tokens)
            logits = model.lm_head(features, model.encoder.embed_tokens.weight, masked)
        loss = F.cross_entropy(logits, tokens[masked])
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    (loss_a, a), (loss_b, b) = grads(False), grads(True)
    assert torch.equal(loss_a, loss_b)
    assert a.keys() == b.keys() and "encoder.embed_tokens.weight" in a
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6, msg=name)


def test_an_expanded_projection_gradient_is_not_written_in_place(case):
    """weight.sum() hands the node a stride-0 gradient: it gets its own memory before the rows go in."""
    embedding, tokens, _ = case
    embeds, weight = tied_lookup(embedding, tokens)
    (embeds.sum() + weight.sum()).backward()
    fused, embedding.weight.grad = embedding.weight.grad, None
    (embedding(tokens).sum() + embedding.weight.sum()).backward()
    assert torch.equal(fused, embedding.weight.grad)
