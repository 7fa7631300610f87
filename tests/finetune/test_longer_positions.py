"""Starting a run from a checkpoint with longer (or shorter) positional tables: train.py
--max-positions N --position-init copy|random (tupe/model/lengths.py via restore.load_weights)."""

import torch

from tests.train.conftest import tiny_args
from tupe import load_model
from tupe.train.trainer import main as train

RESET = ("--reset-optimizer", "--reset-dataloader", "--reset-meters")


def test_continued_pretraining_with_a_grown_table(data_dir, pretrained, tmp_path, capsys):
    """The fixture was pretrained with 512 positions; continued at 1024 with copied rows. Rows past
    the 65 that 64-token blocks use get no gradient, so after training rows 512 + k still equal
    rows k (both decayed alike), and row 0 ([CLS]'s) came from the checkpoint."""
    start = load_model(pretrained).encoder.untied_pos.pos.weight.detach()
    assert train(tiny_args(data_dir, tmp_path / "long", "--restore-file", str(pretrained), "--max-positions", "1024",
                           "--position-init", "copy", *RESET, "--tokens-per-sample", "64", "--max-update", "2",
                           "--no-epoch-checkpoints")) == 0
    assert "| positional tables of checkpoint_last.pt resized from 512 to 1024 positions (rows past 512: copy)" \
        in capsys.readouterr().out
    model = load_model(tmp_path / "long" / "checkpoint_last.pt")
    table = model.encoder.untied_pos.pos.weight.detach()
    assert model.cfg.max_positions == 1024 and table.shape[0] == 1025
    assert torch.equal(table[1 + 512 + 100: 1 + 1024], table[1 + 100: 1 + 512])
    assert not torch.equal(table[1:60], start[1:60])                     # it did train


def test_finetuning_with_a_shorter_table(order_task, pretrained, tmp_path):
    ft = tmp_path / "ft"
    assert train([str(order_task / "SST-2-bin"), "--cpu", "--restore-file", str(pretrained), "--task",
                  "sentence_prediction", "--num-classes", "2", "--max-positions", "64", "--position-init", "copy",
                  *RESET, "--max-sentences", "16", "--lr", "1e-4", "--max-update", "2", "--truncate-sequence",
                  "--save-dir", str(ft), "--no-epoch-checkpoints", "--num-workers", "0"]) == 0
    model = load_model(ft / "checkpoint_last.pt")
    assert model.cfg.max_positions == 64 and model.encoder.untied_pos.pos.weight.shape[0] == 65


def test_position_init_is_refused_where_it_cannot_act(data_dir, pretrained, tmp_path, capsys):
    def error(*flags):
        capsys.readouterr()
        assert train(tiny_args(data_dir, tmp_path / "x", "--max-update", "1", *flags)) == 1
        return capsys.readouterr().err

    assert "--position-init does nothing here" in error("--position-init", "copy")                 # nothing to resize
    assert "checkpoint_last.pt has 512 already" in error("--restore-file", str(pretrained), *RESET,
                                                         "--max-positions", "512", "--position-init", "copy")
    assert "optimizer state is for tables of 512 positions; add --reset-optimizer" in error(
        "--restore-file", str(pretrained), "--max-positions", "1024", "--position-init", "copy")
    said = error("--restore-file", str(pretrained), *RESET, "--max-positions", "1024")      # no --position-init
    assert "max_positions: the checkpoint has 512, --max-positions asks for 1024" in said and "--position-init" in said
    assert not (tmp_path / "x" / "checkpoint_last.pt").exists()


def test_position_init_on_a_model_without_tables(data_dir, tmp_path, capsys):
    from tests.train.test_evaluate import model_for
    from tupe import save_pretrained
    from tupe.checkpoint import load_vocabulary

    rope = model_for(data_dir, "RoPE")
    save_pretrained(rope, tmp_path / "rope", vocabulary=load_vocabulary(data_dir, rope.cfg.vocab_size))
    capsys.readouterr()
    assert train([str(data_dir), "--cpu", "--restore-file", str(tmp_path / "rope"), "--max-positions", "64",
                  "--position-init", "copy", "--tokens-per-sample", "32", "--max-sentences", "8", "--max-update", "1",
                  "--save-dir", str(tmp_path / "x")]) == 1
    assert "--position-init: RoPE: a RoPE model's max_positions is its trained length" in capsys.readouterr().err
