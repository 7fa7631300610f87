"""Evaluation at other block lengths and with the word order destroyed (train/evaluate.py)."""

import json

import pytest
import torch

from tests.model.test_invariance import perturbed
from tupe import TupeConfig
from tupe.config import SCHEMES
from tupe.data.dictionary import Dictionary, model_vocab_size
from tupe.train.evaluate import EvaluationError, evaluate, make_task, shuffle_unmasked


def model_for(data_dir, scheme, max_positions=32):
    vocab = model_vocab_size(Dictionary.load(data_dir / "dict.txt"))
    return perturbed(TupeConfig(vocab_size=vocab, encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                                encoder_attention_heads=4, max_positions=max_positions, embedding_normalize=True,
                                **SCHEMES[scheme]))


def test_shuffle_keeps_masks_and_moves_only_unpredicted_tokens():
    tokens = torch.tensor([[0, 10, 11, 3, 12, 13, 2, 1], [0, 14, 3, 15, 2, 1, 1, 1]])
    target = torch.tensor([[1, 1, 11, 20, 1, 1, 1, 1], [1, 1, 21, 1, 1, 1, 1, 1]])
    out = shuffle_unmasked({"tokens": tokens, "target": target}, pad=1, generator=torch.Generator().manual_seed(0))
    shuffled = out["tokens"]
    assert shuffled[:, 0].tolist() == [0, 0] and torch.equal(shuffled[tokens.eq(1)], tokens[tokens.eq(1)])
    predicted = target.ne(1)
    assert torch.equal(shuffled[predicted], tokens[predicted])
    for b in range(2):   # the same multiset of tokens in the movable positions, in another order
        movable = target[b].eq(1) & tokens[b].ne(1)
        movable[0] = False
        assert sorted(shuffled[b][movable].tolist()) == sorted(tokens[b][movable].tolist())
    assert not torch.equal(shuffled, tokens)


def test_word_order_probe_nope_is_the_control(data_dir):
    """NoPE cannot see order: the shuffled loss equals the intact one; TUPE-R's does not. (Untrained
    models predict near-uniformly whatever the input; a large output LayerNorm gain makes their
    predictions confident, so that a change of input shows in the loss.)"""
    diffs = {}
    for scheme in ("NoPE", "TUPE-R"):
        model = model_for(data_dir, scheme)
        with torch.no_grad():
            model.lm_head.layer_norm.weight.mul_(100)
        task = make_task(model, str(data_dir), 32)
        intact = evaluate(model, task, skip_invalid=True)
        shuffled = evaluate(model, task, shuffle_order=True, skip_invalid=True)
        assert intact["masked_tokens"] == shuffled["masked_tokens"] > 50
        diffs[scheme] = abs(shuffled["loss"] - intact["loss"])
    assert diffs["NoPE"] < 1e-4
    assert diffs["TUPE-R"] > 1e-2 > 100 * diffs["NoPE"]


def test_lengths_past_the_tables_are_refused_and_table_free_schemes_run(data_dir):
    with pytest.raises(EvaluationError, match="blocks of 64 tokens exceed max_positions=32: the positional tables of TUPE-R"):
        make_task(model_for(data_dir, "TUPE-R"), str(data_dir), 64)
    for scheme in ("RoPE", "ALiBi", "NoPE"):
        model = model_for(data_dir, scheme)
        stats = evaluate(model, make_task(model, str(data_dir), 64), skip_invalid=True)
        assert stats["samples"] > 0 and stats["skipped"] == 0 and stats["loss"] > 0


def test_tupe_validate_past_max_positions_is_a_clear_error(data_dir, tmp_path, capsys):
    from tupe import save_pretrained
    from tupe.checkpoint import load_vocabulary
    from tupe.train.validate import main as validate

    for scheme, rc in (("TUPE-A", 1), ("ALiBi", 0)):
        folder = tmp_path / scheme
        model = model_for(data_dir, scheme)
        save_pretrained(model, folder, vocabulary=load_vocabulary(data_dir, model.cfg.vocab_size))
        capsys.readouterr()
        assert validate([str(data_dir), "--path", str(folder), "--tokens-per-sample", "64", "--cpu",
                         "--skip-invalid-size-inputs-valid-test"]) == rc
        out = capsys.readouterr()
        if rc:
            assert "exceed max_positions=32" in out.err and "Traceback" not in out.err
        else:
            assert json.loads(out.out.splitlines()[-1])["tokens_per_sample"] == 64
    # masking shares that cannot both hold (numpy's error before)
    assert validate([str(data_dir), "--path", str(tmp_path / "ALiBi"), "--cpu", "--leave-unmasked-prob", "0.7",
                     "--random-token-prob", "0.5"]) == 1
    assert "--leave-unmasked-prob 0.7 + --random-token-prob 0.5 must be <= 1" in capsys.readouterr().err


def test_tupe_validate_resizes_tables_to_run_past_the_trained_length(data_dir, tmp_path, capsys):
    """--max-positions: TUPE's tables resized (tupe/model/lengths.py) so that 64-token blocks run on
    a model trained with 32 positions; within 32 tokens the loss is the one without resizing;
    --position-init random is seeded (the same loss twice) and differs from copy."""
    from tupe import save_pretrained
    from tupe.checkpoint import load_vocabulary
    from tupe.train.validate import main as validate

    for scheme in ("TUPE-R", "RoPE"):
        model = model_for(data_dir, scheme)
        with torch.no_grad():   # confident predictions, so that a change of positions shows in the loss
            model.lm_head.layer_norm.weight.mul_(100)
        save_pretrained(model, tmp_path / scheme, vocabulary=load_vocabulary(data_dir, model.cfg.vocab_size))
    common = [str(data_dir), "--path", str(tmp_path / "TUPE-R"), "--cpu", "--skip-invalid-size-inputs-valid-test"]

    def loss(*flags):
        capsys.readouterr()
        assert validate([*common, *flags]) == 0
        out = capsys.readouterr()
        return json.loads(out.out.splitlines()[-1]), out.err

    assert validate([*common, "--tokens-per-sample", "64"]) == 1
    assert "or resize the tables first (tupe-validate --max-positions" in capsys.readouterr().err
    plain, _ = loss("--tokens-per-sample", "32")
    within, said = loss("--tokens-per-sample", "32", "--max-positions", "64")
    assert within["loss"] == plain["loss"] and (within["max_positions"], within["trained_max_positions"]) == (64, 32)
    shrunk, _ = loss("--max-positions", "16")                 # nothing past the trained length: no init said
    assert shrunk["tokens_per_sample"] == 16 and "position_init" not in shrunk
    assert "positional tables resized from 32 to 64 positions (rows past 32: copy)" in said
    copy, _ = loss("--max-positions", "64")                   # blocks of that length by default
    random1, _ = loss("--tokens-per-sample", "64", "--max-positions", "64", "--position-init", "random")
    random2, _ = loss("--tokens-per-sample", "64", "--max-positions", "64", "--position-init", "random")
    assert copy["tokens_per_sample"] == 64 and copy["position_init"] == "copy" and random1["position_init"] == "random"
    assert random1["loss"] == random2["loss"] and abs(random1["loss"] - copy["loss"]) > 1e-3
    with pytest.raises(SystemExit) as e:                    # an init without a resize does nothing
        validate([*common, "--position-init", "random"])
    assert e.value.code == 2 and "--position-init does nothing here" in capsys.readouterr().err
    assert validate([str(data_dir), "--path", str(tmp_path / "RoPE"), "--cpu", "--max-positions", "64"]) == 1
    assert "--max-positions: RoPE: a RoPE model's max_positions is its trained length" in capsys.readouterr().err


def test_tupe_validate_with_rope_scaling(data_dir, tmp_path, capsys):
    from tupe import save_pretrained
    from tupe.checkpoint import load_vocabulary
    from tupe.train.validate import main as validate

    losses = {}
    for scheme in ("RoPE", "TUPE-A"):
        model = model_for(data_dir, scheme)
        with torch.no_grad():   # confident predictions, so that a change of positions shows in the loss
            model.lm_head.layer_norm.weight.mul_(100)
        save_pretrained(model, tmp_path / scheme, vocabulary=load_vocabulary(data_dir, model.cfg.vocab_size))
    for scaling in ("none", "dynamic", "linear"):
        capsys.readouterr()
        assert validate([str(data_dir), "--path", str(tmp_path / "RoPE"), "--tokens-per-sample", "64", "--cpu",
                         "--skip-invalid-size-inputs-valid-test", "--rope-scaling", scaling]) == 0
        out = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert out["rope_scaling"] == scaling and out["rope_scaling_factor"] == 2.0   # 64 / max_positions 32
        losses[scaling] = out["loss"]
    assert len(set(losses.values())) == 3
    assert validate([str(data_dir), "--path", str(tmp_path / "TUPE-A"), "--cpu", "--rope-scaling", "linear"]) == 1
    assert "RoPE scaling needs a RoPE model; this is TUPE-A" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:                             # a bad factor: named by the parser
        validate([str(data_dir), "--path", str(tmp_path / "RoPE"), "--cpu", "--rope-scaling", "linear",
                  "--rope-scaling-factor", "0.5"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --rope-scaling-factor: must be >= 1.0, got 0.5" in err


def test_over_long_samples_are_an_error_unless_skipped(data_dir):
    """tupe-validate's evaluation and the trainer's validation share one check (Task.eval_batches):
    over-long blocks are an error naming the count and the flag, or skipped and counted with it."""
    from tupe.train.tasks import TaskError

    model = model_for(data_dir, "TUPE-R")
    task = make_task(model, str(data_dir), 32)
    skipped = evaluate(model, task, skip_invalid=True)["skipped"]
    assert skipped > 0
    with pytest.raises(TaskError, match=rf"^valid: {skipped} samples are longer than 32 tokens \(a sentence longer "
                                        r"than the block is a block of its own\); pass --skip-invalid-size-inputs-valid-test$"):
        evaluate(model, task)


def test_evaluation_settings_come_from_pretraining_runs_only():
    """tupe-validate takes a masked-LM or ELECTRA run's validation setup (its validation batch
    sizes first); a finetuning run validated otherwise, so its values (a default
    --tokens-per-sample 512 past a small model's tables) are not taken; flags win."""
    from argparse import Namespace

    from tupe.train.validate import RUN_DEFAULTS, evaluation_settings

    none = Namespace(**{k: None for k in RUN_DEFAULTS})
    run = {"task": "masked_lm", "tokens_per_sample": 128, "seed": 4, "max_sentences": 32, "max_sentences_valid": 8,
           "max_tokens": 4000, "mask_whole_words": True, "required_batch_size_multiple": 8}
    settings, taken = evaluation_settings(none, run)
    assert settings == {**RUN_DEFAULTS, "tokens_per_sample": 128, "seed": 4, "max_sentences": 8, "max_tokens": 4000,
                        "mask_whole_words": True, "required_batch_size_multiple": 8}
    assert set(taken) == {"tokens_per_sample", "seed", "max_sentences", "max_tokens", "mask_whole_words",
                          "required_batch_size_multiple"}
    assert evaluation_settings(none, {**run, "task": "sentence_prediction"}) == (RUN_DEFAULTS, [])
    given = Namespace(**{**vars(none), "seed": 9, "mask_whole_words": False})
    settings, taken = evaluation_settings(given, {**run, "task": "electra"})
    assert settings["seed"] == 9 and settings["mask_whole_words"] is False and "seed" not in taken
