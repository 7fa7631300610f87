"""Unit checks of the training pieces: blocks, masking, batching, Adam, schedule, loss scaler."""

import copy
import math

import numpy as np
import pytest
import torch

from tupe.data.dictionary import Dictionary
from tupe.train.data import Masker, TaskError, batch_by_size, block_boundaries, ends_word_table, shard
from tupe.train.optim import DynamicLossScaler, FairseqAdam, PolynomialDecay

SIZES = np.array([3, 4, 1, 5, 2, 9, 1, 2])   # items of size 1 are empty lines (document breaks)


def test_blocks_none_fixed_size_across_sentences():
    b = block_boundaries(SIZES, 6, "none")
    assert b.tolist() == [[0, 6], [6, 12], [12, 18], [18, 24], [24, 27]]


def test_blocks_complete_packs_whole_sentences():
    b = block_boundaries(SIZES, 6, "complete")
    # 3 | 4+1 | 5 | 2 | 9 (over-long, alone) | 1+2
    assert b.tolist() == [[0, 3], [3, 8], [8, 13], [13, 15], [15, 24], [24, 27]]


def test_blocks_complete_doc_never_crosses_documents():
    b = block_boundaries(SIZES, 8, "complete_doc")
    # doc 1: 3+4 ; doc 2: 5+2 | 9 ; doc 3: 2  (separators dropped)
    assert b.tolist() == [[0, 7], [8, 15], [15, 24], [25, 27]]


def test_blocks_eos_one_sentence_each():
    assert block_boundaries(SIZES, 4, "eos").tolist() == [[0, 3], [3, 7], [7, 8], [8, 13], [13, 15],
                                                          [15, 24], [24, 25], [25, 27]]


def masker(**kw):
    return Masker(mask_idx=99, vocab_size=100, **kw)


def test_masking_counts_and_80_10_10():
    m = masker(mask_prob=0.15)
    tokens = np.arange(7, 87)                        # 80 distinct, non-special tokens
    n_masked, kept, random_, masked = 0, 0, 0, 0
    for i in range(400):
        inp, tgt = m(tokens, epoch=1, index=i)
        sel = tgt != 1
        assert sel.sum() in (int(0.15 * 80), int(0.15 * 80) + 1)      # int(p * n + U[0,1))
        assert (tgt[sel] == tokens[sel]).all() and (inp[~sel] == tokens[~sel]).all()
        n_masked += sel.sum()
        masked += (inp[sel] == 99).sum()
        kept += (inp[sel] == tokens[sel]).sum()
        random_ += ((inp[sel] != 99) & (inp[sel] != tokens[sel])).sum()
        assert inp.min() >= 7
    assert masked / n_masked == pytest.approx(0.8, abs=0.03)
    assert kept / n_masked == pytest.approx(0.1 + 0.1 / 80, abs=0.02)
    assert random_ / n_masked == pytest.approx(0.1 - 0.1 / 80, abs=0.02)


def test_masks_reproducible_per_seed_epoch_index():
    tokens = np.arange(7, 60)
    a = masker(seed=3)(tokens, 2, 5)
    assert all(np.array_equal(x, y) for x, y in zip(a, masker(seed=3)(tokens, 2, 5)))
    assert not np.array_equal(a[1], masker(seed=3)(tokens, 3, 5)[1])       # redrawn each epoch
    assert not np.array_equal(a[1], masker(seed=4)(tokens, 2, 5)[1])


def test_whole_word_masking():
    d = Dictionary()
    for w in ["un@@", "tied", "po@@", "si@@", "tion", "word"]:
        d.add_symbol(w)
    ids = {w: d.index(w) for w in ["un@@", "tied", "po@@", "si@@", "tion", "word"]}
    sent = np.array([0, ids["un@@"], ids["tied"], ids["po@@"], ids["si@@"], ids["tion"], ids["word"], 2])
    m = Masker(mask_idx=len(d), vocab_size=len(d) + 1, mask_prob=0.3, ends_word=ends_word_table(d))
    for i in range(50):
        _, tgt = m(sent, 1, i)
        sel = tgt != 1
        # words: <s> | un@@ tied | po@@ si@@ tion | word | </s>
        for span in ([1, 2], [3, 4, 5]):
            assert sel[span].all() or not sel[span].any()


def test_batch_by_size_and_shard():
    sizes = np.array([5, 5, 5, 5, 5, 5, 5, 5, 5, 10])
    batches = batch_by_size(np.arange(10), sizes, max_tokens=40, max_sentences=None, required_multiple=1)
    assert [len(b) for b in batches] == [8, 2]                 # 9 x 5 > 40; then [5, 10]: 2 x 10 <= 40
    assert all(len(b) * sizes[b].max() <= 40 for b in batches)
    batches = batch_by_size(np.arange(10), sizes, max_tokens=None, max_sentences=3, required_multiple=2)
    assert [len(b) for b in batches] == [2, 2, 2, 2, 2]
    assert shard([1, 2, 3, 4, 5], 0, 2) == [1, 3, 5] and shard([1, 2, 3, 4, 5], 1, 2) == [2, 4, None]
    # a sample longer than the cap: an error (as fairseq's), not a batch over the cap of one sample
    assert [len(b) for b in batch_by_size(np.arange(10), sizes, max_tokens=10, max_sentences=None)] == [2] * 4 + [1, 1]
    with pytest.raises(TaskError, match="a sample of 10 tokens exceeds the batch cap of 9 tokens"):
        batch_by_size(np.arange(10), sizes, max_tokens=9, max_sentences=None)
    assert batch_by_size(np.arange(9), sizes, max_tokens=9, max_sentences=None)[0].tolist() == [0]   # the 10 not among them


def test_polynomial_decay_values():
    s = PolynomialDecay(lr=1e-3, warmup=4, total=12, end_lr=1e-5, power=1.0)
    assert s.for_update(1) == pytest.approx(1e-3 / 4)          # first update: lr / warmup
    assert s.for_update(2) == pytest.approx(1e-3 / 4)          # update u+1 uses lr * u / warmup
    assert s.for_update(3) == pytest.approx(2e-3 / 4)
    assert s.for_update(5) == pytest.approx(1e-3)
    assert s.for_update(9) == pytest.approx((1e-3 - 1e-5) * 0.5 + 1e-5)
    assert s.for_update(13) == pytest.approx(1e-5) and s.for_update(100) == pytest.approx(1e-5)
    sq = PolynomialDecay(lr=1.0, warmup=0, total=10, power=2.0)
    assert sq.for_update(1) == pytest.approx(1.0) and sq.for_update(6) == pytest.approx(0.25)


def test_polynomial_decay_warmup_as_long_as_the_run():
    """total == warmup (as in the original command with --max-update 2 --warmup-updates 2): warmup,
    then end_lr, as fairseq; a total below the warmup is refused."""
    s = PolynomialDecay(lr=1e-3, warmup=2, total=2, end_lr=1e-5)
    assert [s.for_update(u) for u in (1, 2, 3, 4)] == pytest.approx([5e-4, 5e-4, 1e-3, 1e-5])
    with pytest.raises(ValueError, match=r"total updates \(1\) must not be below the warmup updates \(2\)"):
        PolynomialDecay(lr=1e-3, warmup=2, total=1)


def test_fairseq_adam_formula():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(5))
    ref = p.detach().clone().double()
    m = torch.zeros(5, dtype=torch.float64)
    v = torch.zeros(5, dtype=torch.float64)
    plain = torch.nn.Parameter(p.detach().clone())
    opt = FairseqAdam([p], lr=0.1, betas=(0.9, 0.98), eps=0.1, weight_decay=0.01)   # big eps: placement matters
    other = torch.optim.AdamW([plain], lr=0.1, betas=(0.9, 0.98), eps=0.1, weight_decay=0.01)
    for t in range(1, 4):
        g = torch.randn(5)
        p.grad, plain.grad = g.clone(), g.clone()
        opt.step()
        other.step()
        g = g.double()
        m = 0.9 * m + 0.1 * g
        v = 0.98 * v + 0.02 * g * g
        step = 0.1 * math.sqrt(1 - 0.98 ** t) / (1 - 0.9 ** t)
        ref = ref - 0.01 * 0.1 * ref                     # decoupled decay first
        ref = ref - step * m / (v.sqrt() + 0.1)
    torch.testing.assert_close(p.detach().double(), ref, atol=1e-6, rtol=0)
    assert not torch.allclose(plain.detach().double(), ref, atol=1e-4)    # torch's AdamW is not this


def test_fairseq_adam_counts_updates_on_the_host():
    """The bias-corrected eps uses the update number t; it is counted on the host (reading the
    fused optimizer's device-side step would wait for the GPU every update), read from the
    state only at the first step and after load_state_dict."""
    def eps_at(t):
        return 0.1 / math.sqrt(1 - 0.98 ** t)

    p, q = torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(2))
    opt = FairseqAdam([{"params": [p]}, {"params": [q]}], lr=0.1, betas=(0.9, 0.98), eps=0.1)
    for t in (1, 2):
        p.grad, q.grad = torch.randn(3), torch.randn(2)
        opt.step()
        assert opt.param_groups[0]["eps"] == pytest.approx(eps_at(t))
    p.grad, q.grad = torch.randn(3), None                    # the second group has nothing to update
    opt.step()
    assert float(opt.state[p]["step"]) == 3 and float(opt.state[q]["step"]) == 2
    opt.state[p]["step"].fill_(100.0)                         # not read again ...
    p.grad = torch.randn(3)
    opt.step()
    assert opt.param_groups[0]["eps"] == pytest.approx(eps_at(4))
    q.grad = torch.randn(2)
    opt.step()
    assert opt.param_groups[1]["eps"] == pytest.approx(eps_at(3))
    saved = copy.deepcopy(opt.state_dict())                   # ... but after loading: p's step is 102 now
    again = FairseqAdam([{"params": [p]}, {"params": [q]}], lr=0.1, betas=(0.9, 0.98), eps=0.1)
    again.load_state_dict(copy.deepcopy(saved))               # (loading may keep the tensors it is given)
    p.grad, q.grad = torch.randn(3), torch.randn(2)
    again.step()
    assert again.param_groups[0]["eps"] == pytest.approx(eps_at(103))
    assert again.param_groups[1]["eps"] == pytest.approx(eps_at(4))
    opt.load_state_dict(saved)                                # the same optimizer, reloaded
    opt.step()
    assert opt.param_groups[0]["eps"] == pytest.approx(eps_at(103))


def test_dynamic_loss_scaler():
    s = DynamicLossScaler(init_scale=4, scale_window=3, threshold=1)
    s.update(True)
    assert s.scale == 2
    s.update(True)
    s.update(True)
    assert s.scale == 1                                  # --threshold-loss-scale: never below
    for _ in range(3):
        s.update(False)
    assert s.scale == 2
    state = s.state_dict()
    t = DynamicLossScaler()
    t.load_state_dict(state)
    assert t.scale == 2 and t.clean_updates == 3
    u = DynamicLossScaler(init_scale=2e-4, scale_window=10)
    with pytest.raises(FloatingPointError, match="minimum loss scale"):
        u.update(True)


def test_continue_history_keeps_what_the_resumed_run_does_not_log_again(tmp_path):
    """logger.continue_history on a file of its own: resuming at update 2 drops the records past 2
    (and a last record cut short), keeps records without an update count; nothing to do on an
    empty file; from update 0 the whole file is moved aside, under the next free name."""
    import json

    from tupe.train.logger import continue_history

    path, said = tmp_path / "metrics.jsonl", []
    records = [{"type": "train", "num_updates": 1}, {"type": "valid", "num_updates": 2}, {"type": "note"},
               {"type": "train", "num_updates": 3}, {"type": "best", "num_updates": 2}]
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"type": "tra')
    continue_history(path, 2, said.append)
    assert [json.loads(line) for line in path.read_text().splitlines()] == [records[i] for i in (0, 1, 2, 4)]
    assert "dropped 1 record(s) past update 2" in said[-1] and "cut short" in said[-2]
    empty = tmp_path / "empty" / "metrics.jsonl"
    empty.parent.mkdir()
    empty.write_text("")
    continue_history(empty, 0, said.append)
    assert empty.is_file() and len(said) == 2
    (tmp_path / "metrics.earlier-1.jsonl").write_text("x\n")
    kept = path.read_text()
    continue_history(path, 0, said.append)
    assert not path.exists() and (tmp_path / "metrics.earlier-2.jsonl").read_text() == kept
    assert "4 records of an earlier run" in said[-1]
