"""Left padding: positions come from the padding mask, per row, for every scheme and kernel;
padding between real tokens is refused; the cost for right-padded batches is nothing."""

import pytest
import torch

from tests.conftest import random_tokens, tiny_config
from tests.model.test_invariance import SCHEMES, perturbed
from tupe.model.padding import PaddingError, padding_layout, rotate


def left_padded(tokens, pad=1):
    """The same rows with their padding moved to the front."""
    out = torch.full_like(tokens, pad)
    for b, row in enumerate(tokens):
        real = row[row.ne(pad)]
        out[b, tokens.size(1) - len(real):] = real
    return out


@pytest.mark.parametrize("kernel", ["eager", "sdpa", "flex"])
@pytest.mark.parametrize("scheme", SCHEMES.values(), ids=list(SCHEMES))
def test_left_padding_equals_right_padding(scheme, kernel):
    model = perturbed(tiny_config(**scheme)).set_attn_impl(kernel)
    model.register_classification_head("h", 3)
    right = random_tokens(4, 12, seed=11)
    left = left_padded(right)
    assert left[:, 0].eq(1).any() and not left.equal(right)
    with torch.no_grad():
        a = model.encoder.encode(right, output_hidden_states=True, output_attentions=kernel == "eager")
        b = model.encoder.encode(left, output_hidden_states=True, output_attentions=kernel == "eager")
        head_right, head_left = model(right, classification_head_name="h"), model(left, classification_head_name="h")
    T = right.size(1)
    for i, n in enumerate(right.ne(1).sum(1).tolist()):
        r, l_ = slice(0, n), slice(T - n, T)
        torch.testing.assert_close(b.last_hidden_state[i, l_], a.last_hidden_state[i, r], atol=1e-5, rtol=1e-5)
        for ha, hb in zip(a.hidden_states, b.hidden_states):
            torch.testing.assert_close(hb[i, l_], ha[i, r], atol=1e-5, rtol=1e-5)
        if kernel == "eager":
            for pa, pb in zip(a.attentions, b.attentions):
                torch.testing.assert_close(pb[i][:, l_, l_], pa[i][:, r, r], atol=1e-6, rtol=1e-5)
                assert n == T or float(pb[i][:, l_, : T - n].abs().max()) == 0.0   # nothing on the leading pads
    torch.testing.assert_close(head_left, head_right, atol=1e-5, rtol=1e-5)   # [CLS] read at each row's start


def test_left_padding_gradients_match_right_padding():
    model = perturbed(tiny_config(rel_pos=True)).train()
    right = random_tokens(3, 10, seed=2)
    left = left_padded(right)
    grads = []
    for tokens in (right, left):
        model.zero_grad()
        real = tokens.ne(1)
        torch.manual_seed(0)
        model.eval()   # no dropout: the two layouts must give the same numbers
        model.extract_features(tokens)[real].pow(2).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], atol=1e-5, rtol=1e-4, msg=n)


def test_padding_between_real_tokens_is_refused():
    model = perturbed(tiny_config())
    tokens = random_tokens(2, 8)
    tokens[1, 3] = 1                                          # a pad inside row 1
    with pytest.raises(PaddingError, match=r"row\(s\) \[1\].*contiguous"):
        model(tokens)


def test_row_shifts_and_rotation():
    padding = torch.tensor([[False, False, True], [True, False, False], [True, True, True]])
    assert padding_layout(padding[:1])[0] is None             # right padding: nothing to do
    shift = padding_layout(padding)[0]
    assert shift.tolist() == [0, 1, 0]
    x = torch.arange(9).view(3, 3)
    assert rotate(x, shift).tolist() == [[0, 1, 2], [4, 5, 3], [6, 7, 8]]
    assert rotate(rotate(x, shift), shift, inverse=True).equal(x)


def test_padding_layout_tells_whether_anything_is_padded(monkeypatch):
    """One sync answers both questions of a forward: the rows' shifts and whether any position
    is padded; the encoder hands the latter to the mask (an unpadded batch gets the (1, H, T, T)
    bias on every device, not only where the check is free, as before on the CPU)."""
    from tupe.model.transformer import Encoder

    padding = torch.tensor([[False, False, True], [True, False, False]])
    assert padding_layout(padding[:1])[1] is True and padding_layout(padding[:1])[0] is None
    shift, padded = padding_layout(padding)
    assert shift.tolist() == [0, 1] and padded is True
    assert padding_layout(torch.zeros(2, 3, dtype=torch.bool)) == (None, False)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)    # as in a traced graph
    shift, padded = padding_layout(padding[:1])
    assert shift.tolist() == [0] and padded is None
    monkeypatch.undo()

    model = perturbed(tiny_config(rel_pos=True))
    told = []
    real = Encoder._no_padding
    monkeypatch.setattr(Encoder, "_no_padding", staticmethod(lambda padded: (told.append(padded), real(padded))[1]))
    full = random_tokens(2, 8)
    full[full.eq(1)] = 9
    with torch.no_grad():
        mask = model.encoder.additive_mask(full.eq(1), torch.float32, False)
        model(full)
        model(random_tokens(2, 8))
    assert mask.shape == (1, 4, 8, 8)
    assert told == [False, False, True]
    assert real(False) and not real(True) and not real(None)     # None: not known (a traced graph)


def test_right_padded_batches_skip_the_rotation(monkeypatch):
    """The default layout costs one check, no gather (benchmarks/padding_bench.py measures it)."""
    import tupe.model.transformer as transformer

    calls = []
    monkeypatch.setattr(transformer, "rotate", lambda *a, **k: calls.append(1))
    model = perturbed(tiny_config(rel_pos=True))
    with torch.no_grad():
        model(random_tokens(4, 12))
    assert calls == []


@pytest.mark.parametrize("scheme", ["RoPE", "ALiBi", "NoPE"])
def test_schemes_without_tables_run_past_max_positions(scheme):
    from tupe.config import SCHEMES as REGISTRY

    model = perturbed(tiny_config(**REGISTRY[scheme], max_positions=8))
    assert model.encoder.max_length is None
    with torch.no_grad():
        out = model(random_tokens(2, 20))
    assert out.shape[1] == 20 and torch.isfinite(out).all()


@pytest.mark.parametrize("scheme", ["TUPE-A", "TUPE-R", "BERT-A", "RoPE-R"])
def test_schemes_with_tables_refuse_past_their_length(scheme):
    from tupe.config import SCHEMES as REGISTRY

    model = perturbed(tiny_config(**REGISTRY[scheme], max_positions=8))
    with pytest.raises(ValueError, match=f"exceeds max_positions=8 .*{scheme}"):
        model(random_tokens(1, 9))
