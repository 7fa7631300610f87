"""GPU paths of the model (skipped without CUDA): parity on CUDA and autocast fp16/bf16."""

import numpy as np
import pytest
import torch

import tupe
from tests.conftest import FIXTURE, random_tokens, tiny_config

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_parity_on_cuda():
    model = tupe.load_model(FIXTURE / "checkpoint.pt").cuda()
    expected = np.load(FIXTURE / "expected.npz")
    for k in range(2):
        tokens = torch.from_numpy(expected[f"tokens_{k}"]).long().cuda()
        with torch.no_grad():
            logits = model(tokens).cpu()
        real = tokens.ne(1).cpu()
        torch.testing.assert_close(logits[real], torch.from_numpy(expected[f"logits_{k}"])[real],
                                   atol=1e-4, rtol=0)   # TF32/kernel differences allowed


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_forward_backward(dtype):
    model = tupe.TupeModel(tiny_config(rel_pos=True)).cuda().train()
    tokens = random_tokens(4, 20).cuda()
    mask = tokens.ne(1)
    with torch.autocast("cuda", dtype=dtype):
        logits = model(tokens, masked_tokens=mask)
        loss = torch.nn.functional.cross_entropy(logits.float(), tokens[mask])
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
        low = model.extract_features(tokens).float()
    with torch.no_grad():
        full = model.extract_features(tokens)
    assert (low - full)[mask].abs().max() < 0.1
