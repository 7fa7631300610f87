"""torch.compile of the encoder layers: same numbers as eager (float tolerance), unchanged
parameter names, the inference option of the hub, and the eager fallback where it cannot
compile. train.py --compile end to end (resume included): tests/train/test_speed_options.py."""

import copy
import shutil
import warnings

import numpy as np
import pytest
import torch

import tupe
from tests.conftest import FIXTURE, random_tokens, tiny_config
from tupe import TupeModel
from tupe.model.compile import compile_layers, compile_unavailable, is_compiled

needs_compile = pytest.mark.skipif(compile_unavailable() is not None, reason=f"{compile_unavailable()}")


@needs_compile
def test_compiled_training_step_matches_eager():
    """With dropout on: the compiled layers draw the same masks as eager ones from the same seed
    (dropout.random_int16 runs outside the graph). One compile, to keep the default suite short."""
    torch.manual_seed(0)
    eager = TupeModel(tiny_config(rel_pos=True, dropout=0.1, attention_dropout=0.1)).train()
    compiled = copy.deepcopy(eager)
    assert compile_layers(compiled) and is_compiled(compiled) and not is_compiled(eager)
    assert list(compiled.state_dict()) == list(eager.state_dict())        # checkpoints unchanged
    tokens = random_tokens(4, 16, seed=2)
    mask = tokens.ne(1) & (torch.arange(16) % 3 == 1)
    outs = []
    for model in (eager, compiled):
        torch.manual_seed(1)
        logits = model(tokens, masked_tokens=mask)
        loss = torch.nn.functional.cross_entropy(logits, tokens[mask])
        loss.backward()
        outs.append((loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    torch.testing.assert_close(outs[1][0], outs[0][0], atol=1e-5, rtol=1e-5)
    for n, g in outs[0][1].items():
        torch.testing.assert_close(outs[1][1][n], g, atol=1e-5, rtol=1e-4, msg=n)


@needs_compile
def test_hub_compile_for_inference_matches_reference_outputs(tmp_path):
    for name in ("checkpoint.pt", "dict.txt"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    (tmp_path / "bpe-code").write_text("t h 10\nth e 5\n")     # the hub needs codes; unused here
    hub = tupe.from_pretrained(tmp_path / "checkpoint.pt", compile=True)
    assert is_compiled(hub.model)
    expected = np.load(FIXTURE / "expected.npz")
    for k in (0, 1):                              # two shapes: the second recompiles
        tokens = torch.from_numpy(expected[f"tokens_{k}"]).long()
        real = tokens.ne(1)
        with torch.no_grad():
            features = hub.model.extract_features(tokens)
        torch.testing.assert_close(features[real], torch.from_numpy(expected[f"features_{k}"])[real],
                                   atol=1e-5, rtol=0)


def test_fallback_to_eager_without_a_compiler(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))               # no c++, g++, clang++
    monkeypatch.delenv("CXX", raising=False)
    reason = compile_unavailable()
    assert reason is not None and "C++ compiler" in reason
    model = TupeModel(tiny_config())
    with pytest.warns(UserWarning, match="running eager instead"):
        assert compile_layers(model) is False
    assert not is_compiled(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.eval()(random_tokens(2, 8))                     # and it runs
    # a CUDA model needs no host C++ compiler for its kernels (triton)
    assert compile_unavailable(torch.device("cuda")) is None
