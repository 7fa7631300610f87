"""GPU-only training paths (skipped without CUDA): fp16 with dynamic loss scaling, bf16."""

import json

import pytest
import torch

import tupe
from tests.train.conftest import tiny_args
from tupe.train.trainer import main

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def train_records(save):
    return [json.loads(x) for x in (save / "metrics.jsonl").read_text().splitlines()
            if json.loads(x)["type"] == "train"]


def test_fp16_trains_with_loss_scale(data_dir, tmp_path, capsys):
    save = tmp_path / "fp16"
    assert main(tiny_args(data_dir, save, "--fp16", "--max-update", "30", "--fp16-init-scale", "128", cpu=False)) == 0
    recs = train_records(save)
    assert len(recs) == 30 and all("loss_scale" in r for r in recs)
    assert recs[-1]["loss"] < recs[0]["loss"]
    assert "precision fp16" in capsys.readouterr().out
    assert next(tupe.load_model(save).parameters()).dtype == torch.float32


def test_fp16_overflow_skips_updates_and_lowers_the_scale(data_dir, tmp_path, capsys):
    save = tmp_path / "overflow"
    assert main(tiny_args(data_dir, save, "--fp16", "--max-update", "5", "--fp16-init-scale", str(2.0 ** 60), cpu=False)) == 0
    out = capsys.readouterr().out
    assert "overflow detected, skipping update" in out
    recs = train_records(save)
    assert len(recs) == 5 and recs[-1]["loss_scale"] < 2.0 ** 60


def test_bf16_on_cuda(data_dir, tmp_path):
    save = tmp_path / "bf16"
    assert main(tiny_args(data_dir, save, "--bf16", "--max-update", "10", cpu=False)) == 0
    assert len(train_records(save)) == 10


def test_electra_fp16_on_cuda(data_dir, tmp_path):
    save = tmp_path / "electra"
    assert main(tiny_args(data_dir, save, "--task", "electra", "--criterion", "electra", "--fp16",
                          "--max-update", "20", cpu=False)) == 0
    recs = train_records(save)
    assert len(recs) == 20 and all("loss_scale" in r and "disc_acc" in r for r in recs)
    assert recs[-1]["gen_loss"] < recs[0]["gen_loss"]


@pytest.mark.parametrize("flags", [["--attn-impl", "flex", "--attention-dropout", "0", "--bf16"],
                                   ["--compile", "--bf16"]])
def test_speed_options_on_cuda(data_dir, tmp_path, flags):
    save = tmp_path / "ck"
    assert main(tiny_args(data_dir, save, "--max-update", "20", *flags, cpu=False)) == 0
    recs = train_records(save)
    assert len(recs) == 20 and recs[-1]["loss"] < recs[0]["loss"]
    assert tupe.load_model(save).num_parameters() > 0
