"""Parity with the original implementation's outputs on its own checkpoint."""

import json

import numpy as np
import pytest
import torch

import tupe
from tests.conftest import FIXTURE
from tupe.checkpoint import load_vocabulary


@pytest.fixture(scope="module")
def reference(request):
    from tests.conftest import FIXTURE

    return tupe.load_model(FIXTURE / "checkpoint.pt"), np.load(FIXTURE / "expected.npz"), \
        json.loads((FIXTURE / "meta.json").read_text())


def test_fixture_config_matches_meta(reference):
    model, _, meta = reference
    cfg = model.cfg
    assert (cfg.vocab_size, cfg.encoder_layers, cfg.encoder_embed_dim, cfg.encoder_ffn_embed_dim,
            cfg.encoder_attention_heads, cfg.max_positions) == (
        meta["vocab_size"], meta["layers"], meta["dim"], meta["ffn"], meta["heads"], meta["max_positions"])
    assert cfg.rel_pos is True and cfg.embedding_normalize is True and cfg.pos_encoding == "tupe"
    assert cfg.untie_cls is True and cfg.name == "TUPE-R"
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert len(load_vocabulary(FIXTURE / "checkpoint.pt", cfg.vocab_size).dictionary) + 1 == meta["vocab_size"]


@pytest.mark.parametrize("k", [0, 1])
def test_features_and_logits_match_original(reference, k):
    model, expected, meta = reference
    tokens = torch.from_numpy(expected[f"tokens_{k}"]).long()
    assert list(tokens.shape) == [meta["batches"][k]["batch"], meta["batches"][k]["length"]]
    real = tokens.ne(1)
    with torch.no_grad():
        features = model.extract_features(tokens)
        logits = model(tokens)
    want_f = torch.from_numpy(expected[f"features_{k}"])
    want_l = torch.from_numpy(expected[f"logits_{k}"])
    assert features.shape == want_f.shape and logits.shape == want_l.shape
    torch.testing.assert_close(features[real], want_f[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits[real], want_l[real], atol=1e-5, rtol=0)


def test_masked_positions_only(reference):
    model, expected, _ = reference
    tokens = torch.from_numpy(expected["tokens_0"]).long()
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[0, 3], mask[2, 5], mask[1, 1] = True, True, True
    with torch.no_grad():
        out = model(tokens, masked_tokens=mask)
    assert out.shape == (3, model.cfg.vocab_size)
    want = torch.from_numpy(expected["logits_0"])[mask]
    torch.testing.assert_close(out, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("init", ["copy", "random"])
def test_resized_original_checkpoint_still_matches_the_original(init):
    """The original code's checkpoint with its tables grown 4x (tupe/model/lengths.py): on the
    inputs the original computed, the same outputs; inputs past its length now run."""
    from tupe.model import resize_positions

    model = tupe.load_model(FIXTURE / "checkpoint.pt")
    expected = np.load(FIXTURE / "expected.npz")
    length = model.cfg.max_positions
    resize_positions(model, 4 * length, init)
    for k in (0, 1):
        tokens = torch.from_numpy(expected[f"tokens_{k}"]).long()
        real = tokens.ne(1)
        with torch.no_grad():
            logits = model(tokens)
        torch.testing.assert_close(logits[real], torch.from_numpy(expected[f"logits_{k}"])[real], atol=1e-5, rtol=0)
    long = torch.from_numpy(expected["tokens_0"]).long()[:1].repeat(1, 4)      # 68 tokens, the original's 40
    assert length < long.size(1) <= 4 * length
    with torch.no_grad():
        assert torch.isfinite(model(long)).all()
