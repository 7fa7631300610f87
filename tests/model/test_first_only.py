"""Inference through a classification head computes the last layer for [CLS] alone
(``Encoder.encode(first_only=True)``): the same values as the full forward, every scheme."""

import pytest
import torch

from tests.conftest import random_tokens, tiny_config
from tests.model.test_invariance import SCHEMES, perturbed
from tests.model.test_padding import left_padded

HEAD = "h"


def full_head(model, tokens):
    """What the head computes from every position's features (the training path)."""
    features = model.encoder(tokens)                                                  # (B, T, C)
    return model.classification_heads[HEAD](features, tokens.eq(model.cfg.padding_idx))


@pytest.mark.parametrize("kernel", ["eager", "sdpa"])
@pytest.mark.parametrize("scheme", SCHEMES.values(), ids=list(SCHEMES))
def test_first_only_equals_the_full_forward(scheme, kernel):
    model = perturbed(tiny_config(**scheme)).set_attn_impl(kernel)
    model.register_classification_head(HEAD, 3)
    model.eval()
    right = random_tokens(5, 12, seed=4)
    for tokens in (right, left_padded(right), right[:1]):          # right padding, left padding, no padding
        with torch.no_grad():
            expected = full_head(model, tokens)                                       # (B, K)
            got = model(tokens, classification_head_name=HEAD)
            first = model.encoder.encode(tokens, first_only=True).last_hidden_state   # (B, 1, C)
            features = model.encoder(tokens)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        assert first.shape == (tokens.size(0), 1, model.cfg.encoder_embed_dim)
        start = tokens.ne(model.cfg.padding_idx).int().argmax(1)                      # each row's first real token
        torch.testing.assert_close(first[:, 0], features[torch.arange(tokens.size(0)), start],
                                   atol=1e-5, rtol=1e-5)


def test_only_inference_shortens_the_last_layer():
    """The last layer's feed-forward sees one position per row in eval mode, every position in
    training (where the random dropout draws stay as they were)."""
    model = perturbed(tiny_config(rel_pos=True))
    model.register_classification_head(HEAD, 2)
    seen = []
    model.encoder.layers[-1].fc1.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[:2])))
    model.encoder.layers[0].fc1.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[:2])))
    tokens = random_tokens(3, 9)
    model.eval()
    with torch.no_grad():
        model(tokens, classification_head_name=HEAD)
    assert seen == [(3, 9), (3, 1)]
    seen.clear()
    model.train()
    model(tokens, classification_head_name=HEAD)
    assert seen == [(3, 9), (3, 9)]


def test_first_only_refuses_hidden_states_and_attentions():
    model = perturbed(tiny_config())
    tokens = random_tokens(2, 6)
    for ask in (dict(output_hidden_states=True), dict(output_attentions=True)):
        with pytest.raises(ValueError, match="first position alone"):
            model.encoder.encode(tokens, first_only=True, **ask)


def test_first_only_gradients_reach_every_token():
    """In eval mode with autograd (saliency, adversarial inputs), the shortened last layer still
    sends gradients to every input position through its keys and values: the same gradients."""
    model = perturbed(tiny_config(rel_pos=True))
    model.register_classification_head(HEAD, 2)
    tokens = random_tokens(3, 10)
    grads = []
    for first in (False, True):
        embeds = model.encoder.embed_tokens(tokens).detach().requires_grad_()
        out = model.encoder.encode(tokens, embeds=embeds, first_only=first).last_hidden_state[:, 0]
        model.classification_heads[HEAD](out.unsqueeze(1)).sum().backward()
        grads.append(embeds.grad)
    assert grads[0][:, 1:].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=1e-4)


def test_flex_kernel_computes_every_position_and_reads_the_first():
    """The flex kernel takes no single-query path: the last layer runs in full and the first
    position is read (with autograd on, the CPU evaluates the same score modification in math)."""
    model = perturbed(tiny_config(rel_pos=True))
    model.register_classification_head(HEAD, 2)
    model.eval()
    right = random_tokens(4, 11, seed=2)
    seen = []
    model.encoder.layers[-1].fc1.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    for tokens in (right, left_padded(right)):
        with torch.no_grad():
            expected = full_head(model.set_attn_impl("eager"), tokens)
        model.set_attn_impl("flex")
        seen.clear()
        got = model(tokens, classification_head_name=HEAD)           # grad enabled: the math path
        torch.testing.assert_close(got.detach(), expected, atol=1e-5, rtol=1e-5)
        assert seen == [tokens.size(1)]
