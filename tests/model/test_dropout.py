"""The CPU dropout mask: rate, scale, independence, gradient, reproducibility."""

import warnings

import pytest
import torch
import torch.nn.functional as F

from tupe.model.dropout import Dropout, dropout, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_drop_rate_and_scale(p):
    torch.manual_seed(0)
    x = torch.ones(1_000_003)                           # not a multiple of the 4 lanes of a draw
    y = dropout(x, p)
    dropped = y.eq(0).double().mean().item()
    assert abs(dropped - p) < 5 * (p * (1 - p) / x.numel()) ** 0.5     # 5 sigma
    torch.testing.assert_close(y[y.ne(0)], torch.full_like(y[y.ne(0)], 1 / (1 - p)))
    assert abs(y.double().mean().item() - 1.0) < 0.01                  # expectation kept


def test_the_four_16_bit_lanes_of_a_draw_are_independent():
    torch.manual_seed(0)
    drop = keep_mask((400_000, 4), 0.25, torch.float32).eq(0).double()  # column = lane of a draw
    rates = drop.mean(0)
    assert torch.all((rates - 0.25).abs() < 0.005), rates
    both = (drop[:, 0] * drop[:, 1]).mean().item()                      # P(both dropped) = p^2
    assert abs(both - 0.0625) < 0.003


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_gradient_is_the_mask_and_dtype_is_kept(dtype):
    torch.manual_seed(0)
    x = torch.randn(3, 5, 7).to(dtype).requires_grad_()
    y = dropout(x, 0.4)
    assert y.dtype == dtype
    y.sum().backward()
    scale = torch.tensor(1 / 0.6, dtype=dtype)
    want = torch.where(y.detach().ne(0), scale, torch.zeros((), dtype=dtype))
    # an x exactly 0 is kept or dropped invisibly: compare where x != 0
    nz = x.detach().ne(0)
    torch.testing.assert_close(x.grad[nz], want[nz])


def test_reproducible_from_the_seed_and_fresh_each_call():
    torch.manual_seed(7)
    a, b = dropout(torch.ones(1000), 0.5), dropout(torch.ones(1000), 0.5)
    torch.manual_seed(7)
    assert torch.equal(dropout(torch.ones(1000), 0.5), a)
    assert not torch.equal(a, b)


def test_restored_from_a_saved_rng_state_as_in_a_resumed_run():
    """The trainer saves ``torch.get_rng_state()`` in each checkpoint; the masks after a restore
    are the ones an uninterrupted run draws (the SFC64 bits are seeded from the torch generator)."""
    torch.manual_seed(3)
    dropout(torch.ones(999), 0.1)
    state = torch.get_rng_state()
    after = [keep_mask((7, 513), 0.1, torch.float32) for _ in range(3)]
    dropout(torch.ones(50), 0.5)                                        # the run goes on, then is resumed
    torch.set_rng_state(state)
    again = [keep_mask((7, 513), 0.1, torch.float32) for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(after, again))
    assert not torch.equal(after[0], after[1])


def test_a_traced_graph_draws_a_fresh_mask_each_call():
    """numpy's bits would be recorded into a jit trace as a constant: one mask for every call."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                                 # jit.trace is deprecated in newer torch
        traced = torch.jit.trace(Dropout(0.5).train(), torch.ones(64), check_trace=False)
    a, b = traced(torch.ones(64)), traced(torch.ones(64))
    assert not torch.equal(a, b)
    assert set(a.tolist()) <= {0.0, 2.0} and 10 < int(a.eq(0).sum()) < 54     # still dropout at p = 0.5


def test_identity_in_eval_and_at_zero_and_all_dropped_at_one():
    x = torch.randn(10, 10)
    m = Dropout(0.3).eval()
    assert m(x) is x and dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.5)


def test_matches_torch_dropout_in_distribution():
    """Same first two moments as F.dropout on a random input."""
    torch.manual_seed(0)
    x = torch.randn(500_000)
    ours, theirs = dropout(x, 0.1), F.dropout(x, 0.1)
    assert abs(ours.mean() - theirs.mean()) < 0.01
    assert abs(ours.var() - theirs.var()) < 0.01
