"""train.py's speed options, end to end on tiny data: --attn-impl flex (same losses as the bias
form, clear error with attention dropout) and --compile (same losses as eager; resume exact)."""

import pytest
import torch

from tests.train.conftest import tiny_args
from tests.train.test_train_cli import assert_same_tensors, kill_and_resume, records
from tupe.checkpoint import read_checkpoint
from tupe.model.compile import compile_unavailable
from tupe.train.trainer import main

NO_ATTN_DROPOUT = ["--attention-dropout", "0", "--max-update", "8", "--total-num-update", "8"]


def test_flex_attention_trains_like_the_bias_form(data_dir, tmp_path):
    assert main(tiny_args(data_dir, tmp_path / "bias", *NO_ATTN_DROPOUT)) == 0
    assert main(tiny_args(data_dir, tmp_path / "flex", *NO_ATTN_DROPOUT, "--attn-impl", "flex")) == 0
    bias, flex = records(tmp_path / "bias"), records(tmp_path / "flex")
    assert len(bias) == len(flex) == 8
    # residual dropout on in both (same draws): only float rounding separates them
    assert [r["loss"] for r in flex] == pytest.approx([r["loss"] for r in bias], rel=1e-5)
    assert records(tmp_path / "flex", "valid")[-1]["loss"] == pytest.approx(
        records(tmp_path / "bias", "valid")[-1]["loss"], rel=1e-5)
    a = read_checkpoint(tmp_path / "bias" / "checkpoint_last.pt")["model"]
    b = read_checkpoint(tmp_path / "flex" / "checkpoint_last.pt")["model"]
    assert a.keys() == b.keys()                                   # the same model, the same file
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=1e-4, msg=k)


def test_flex_attention_refuses_attention_dropout(data_dir, tmp_path, capsys):
    assert main(tiny_args(data_dir, tmp_path / "ck", "--max-update", "2", "--attn-impl", "flex")) == 1
    err = capsys.readouterr().err
    assert "--attn-impl flex cannot drop attention probabilities" in err and "--attention-dropout 0" in err
    assert not (tmp_path / "ck" / "checkpoint_last.pt").exists()


needs_compile = pytest.mark.skipif(compile_unavailable() is not None, reason=f"{compile_unavailable()}")


@needs_compile
@pytest.mark.slow          # ~60 s of compiling on 2 cores; the numerics: tests/model/test_compile.py
def test_compile_trains_like_eager(data_dir, tmp_path, capsys):
    """Dropout on: the losses agree to float rounding, so the compiled layers draw the same
    dropout masks from torch's generator as eager ones."""
    extra = ["--max-update", "4", "--total-num-update", "4"]
    assert main(tiny_args(data_dir, tmp_path / "eager", *extra)) == 0
    capsys.readouterr()
    assert main(tiny_args(data_dir, tmp_path / "comp", *extra, "--compile")) == 0
    assert "--compile: encoder layers compiled" in capsys.readouterr().out
    assert [r["loss"] for r in records(tmp_path / "comp")] == pytest.approx(
        [r["loss"] for r in records(tmp_path / "eager")], rel=1e-5)


@needs_compile
@pytest.mark.slow
def test_compile_kill_and_resume_is_exact(data_dir, tmp_path):
    extra = ["--max-update", "20", "--save-interval-updates", "3", "--max-sentences", "16", "--lr", "0.002",
             "--total-num-update", "40", "--compile"]
    kill_and_resume(tiny_args(data_dir, tmp_path / "a", *extra), tiny_args(data_dir, tmp_path / "b", *extra),
                    tmp_path / "b", kill_at=14, saved_at=12)
    assert_same_tensors(tmp_path / "a" / "checkpoint_last.pt", tmp_path / "b" / "checkpoint_last.pt")
