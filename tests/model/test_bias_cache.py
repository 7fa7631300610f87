"""The eval-mode positional-bias cache: reused while nothing changed, never stale."""

import pytest
import torch

from tests.conftest import random_tokens, tiny_config
from tests.model.test_invariance import perturbed
from tupe.train.optim import FairseqAdam


def fresh_bias(enc, T):
    """The bias computed from scratch (the modules themselves, no cache)."""
    terms = [m(T) for m in (enc.untied_pos, enc.rel_pos_bias) if m is not None]
    return sum(terms[1:], terms[0])


@pytest.fixture
def model():
    return perturbed(tiny_config(rel_pos=True))


def test_reused_in_eval_and_outputs_bitwise_equal(model):
    enc, tokens = model.encoder, random_tokens(3, 11)
    with torch.no_grad():
        first = enc.positional_bias(11)
        assert enc.positional_bias(11) is first                       # cached
        assert torch.equal(first, fresh_bias(enc, 11))
        assert enc.positional_bias(7) is not first and enc.positional_bias(7).shape[-1] == 7
        cached = model(tokens)
        enc.clear_positional_cache()
        assert torch.equal(model(tokens), cached)                      # same outputs, bitwise
    with torch.inference_mode():
        assert torch.equal(model(tokens), cached)


def test_optimizer_step_invalidates(model):
    enc = model.encoder
    with torch.no_grad():
        before = enc.positional_bias(9)
    opt = FairseqAdam(model.parameters(), lr=1e-2)   # torch's fused AdamW: no version-counter bump
    model(random_tokens(2, 9)).sum().backward()      # eval mode, grad enabled: not cached
    opt.step()
    with torch.no_grad():
        after = enc.positional_bias(9)
        assert after is not before and not torch.equal(after, before)
        assert torch.equal(after, fresh_bias(enc, 9))


def test_load_state_dict_and_in_place_edits_invalidate(model):
    enc = model.encoder
    other = perturbed(tiny_config(rel_pos=True, dropout=0.2))
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1.5)
        before = enc.positional_bias(9)
        model.load_state_dict(other.state_dict())
        after = enc.positional_bias(9)
        assert not torch.equal(after, before) and torch.equal(after, fresh_bias(enc, 9))
        enc.rel_pos_bias.relative_attention_bias.weight[3] += 1.0
        edited = enc.positional_bias(9)
        assert not torch.equal(edited, after) and torch.equal(edited, fresh_bias(enc, 9))


def test_not_cached_in_training_or_with_autograd(model):
    enc = model.encoder
    with torch.no_grad():
        cached = enc.positional_bias(8)
    model.train()
    with torch.no_grad():
        assert enc.positional_bias(8) is not enc.positional_bias(8)
    model.eval()
    a, b = enc.positional_bias(8), enc.positional_bias(8)        # grad enabled: fresh graphs
    assert a is not b and a.requires_grad and a is not cached
    (a.sum() + b.sum()).backward()                                 # each has its own graph
    assert enc.untied_pos.pos.weight.grad is not None


def test_dtype_and_device_changes_invalidate(model):
    enc = model.encoder
    with torch.no_grad():
        fp32 = enc.positional_bias(6)
        model.double()
        fp64 = enc.positional_bias(6)
    assert fp64.dtype == torch.float64 and fp32.dtype == torch.float32
