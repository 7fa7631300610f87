"""train.py flags that would do nothing in a run, and --best-checkpoint-metric's direction: refused
before training (or noted where the run computes the same either way)."""

import json

import pytest

from tests.train.conftest import tiny_args
from tupe import TupeConfig
from tupe.train.options import ACTING_WHEN, build_parser, inert_flags, model_config, parse_args
from tupe.train.trainer import main as train

BASE = ["data", "--max-sentences", "8"]


def check(*flags, cfg=None):
    args = parse_args([*BASE, *flags])
    return inert_flags(args, cfg or model_config(args, vocab_size=100))


def test_every_listed_flag_is_a_train_flag():
    """A misspelt destination would never be found given: the check would silently not happen."""
    dests = {a.dest for a in build_parser()._actions}
    listed = [d for dests_, *_ in ACTING_WHEN for d in dests_]
    assert set(listed) <= dests, set(listed) - dests


@pytest.mark.parametrize("flags, refused", [
    (["--task", "sentence_prediction", "--num-classes", "2", "--mask-prob", "0.3"], "--mask-prob 0.3"),
    (["--task", "sentence_prediction", "--num-classes", "2", "--mask-whole-words"], "--mask-whole-words"),
    (["--task", "sentence_prediction", "--num-classes", "2", "--sample-break-mode", "eos"], "--sample-break-mode eos"),
    (["--num-classes", "2"], "--num-classes 2"),                         # masked_lm (the default task)
    (["--truncate-sequence"], "--truncate-sequence"),
    (["--disc-weight", "10"], "--disc-weight 10.0"),
    (["--generator-layers", "2"], "--generator-layers 2"),
    (["--rope-theta", "500000"], "--rope-theta 500000.0"),              # forgot --pos-encoding rope
    (["--pos-encoding", "rope", "--rope-scaling-factor", "4"], "--rope-scaling-factor 4.0"),
    (["--pos-encoding", "rope", "--rope-scaling", "linear", "--rope-scaling-factor", "2", "--rope-original-length", "64"],
     "--rope-original-length 64"),
    (["--rel-pos-bins", "64"], "--rel-pos-bins 64"),                     # TUPE-A: no relative bias
    (["--pos-encoding", "absolute", "--tie-cls"], "--tie-cls"),
    (["--warmup-ratio", "0.06", "--max-epoch", "2", "--total-num-update", "99"], "--total-num-update 99"),
])
def test_flag_that_would_do_nothing_is_an_error(flags, refused):
    errors, notes = check(*flags)
    assert len(errors) == 1 and errors[0].startswith(refused + " does nothing here ("), errors
    assert notes == []


@pytest.mark.parametrize("flags", [
    ["--task", "electra", "--disc-weight", "10", "--generator-layers", "2", "--mask-prob", "0.2"],
    ["--pos-encoding", "rope", "--rope-theta", "500000"],
    ["--pos-encoding", "rope", "--rope-scaling", "yarn", "--rope-scaling-factor", "4", "--rope-original-length", "64"],
    ["--rel-pos", "--rel-pos-bins", "64", "--max-rel-pos", "256"],
    ["--tie-cls"],
    ["--task", "sentence_prediction", "--num-classes", "2", "--truncate-sequence", "--init-token", "0"],
    ["--warmup-ratio", "0.06", "--max-epoch", "2"],
    ["--fp16", "--fp16-init-scale", "4", "--threshold-loss-scale", "1", "--fp16-scale-window", "128"],
    ["--save-interval-updates", "100", "--keep-interval-updates", "3", "--keep-updates-list", "200"],
])
def test_flags_that_act_pass(flags):
    assert check(*flags) == ([], [])


def test_defaults_and_result_neutral_flags_are_notes():
    """The default's value, or loss scaling without --fp16 (the original finetuning command with
    only --fp16 removed): noted, not refused, since the run computes what was asked either way."""
    errors, notes = check("--rel-pos-bins", "32", "--fp16-init-scale", "4", "--keep-interval-updates", "3")
    assert errors == []
    assert [n.split(" does nothing")[0] for n in notes] == ["--rel-pos-bins 32", "--fp16-init-scale 4.0",
                                                            "--keep-interval-updates 3"]


def test_saving_and_validation_flags_with_nothing_to_save_or_validate_are_notes():
    errors, notes = check("--no-save", "--save-interval-updates", "100", "--keep-interval-updates", "3")
    assert errors == [] and [n.split(" does nothing")[0] for n in notes] == ["--save-interval-updates 100",
                                                                             "--keep-interval-updates 3"]
    assert "(--no-save writes no checkpoint)" in notes[1]
    errors, notes = check("--disable-validation", "--best-checkpoint-metric", "accuracy", "--validate-interval-updates", "2")
    assert errors == [] and len(notes) == 2 and all("(--disable-validation: nothing is validated)" in n for n in notes)


def test_one_message_per_flag():
    errors, _ = check("--rope-scaling-factor", "2")       # neither RoPE nor a scaling: said once
    assert len(errors) == 1 and "RoPE model" in errors[0]


def test_the_runs_model_decides_not_the_flags():
    """Finetuning a RoPE checkpoint: the model (its config) is RoPE although the flags never say
    --pos-encoding rope, so --rope-theta acts; on a TUPE-R checkpoint --rel-pos-bins acts."""
    rope = TupeConfig(vocab_size=100, pos_encoding="rope", untie_cls=False)
    assert check("--rope-theta", "10000", cfg=rope) == ([], [])
    tupe_r = TupeConfig(vocab_size=100, rel_pos=True)
    assert check("--rel-pos-bins", "64", cfg=tupe_r) == ([], [])


def test_several_learning_rates_are_refused(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args([*BASE, "--lr", "1e-3,2e-3"])
    assert e.value.code == 2
    assert "--lr 0.001,0.002: one learning rate" in capsys.readouterr().err


def test_the_cli_refuses_before_training(data_dir, tmp_path, capsys):
    assert train(tiny_args(data_dir, tmp_path / "a", "--max-update", "2", "--rope-theta", "500000")) == 1
    out, err = capsys.readouterr()
    assert "--rope-theta 500000.0 does nothing here (it acts on a RoPE model (--pos-encoding rope); this one's " \
           "pos_encoding is 'tupe'); leave it out" in err
    assert "num_updates" not in out and not (tmp_path / "a" / "metrics.jsonl").exists()
    # the default's value: a note, and the run trains
    assert train(tiny_args(data_dir, tmp_path / "b", "--max-update", "2", "--num-classes", "-1")) == 0
    out, _ = capsys.readouterr()
    assert "| note: --num-classes -1 does nothing here (it acts with --task sentence_prediction; this run is " \
           "--task masked_lm); ignored" in out


def finetune(pretrained, order_task, save, *extra):
    return train([str(order_task / "SST-2-bin"), "--restore-file", str(pretrained), "--task", "sentence_prediction",
                  "--num-classes", "2", "--init-token", "0", "--separator-token", "2", "--reset-optimizer",
                  "--reset-dataloader", "--reset-meters", "--max-sentences", "8", "--lr", "1e-4", "--max-update", "2",
                  "--save-dir", str(save), "--no-progress-bar", "--cpu", "--num-workers", "0", *extra])


def test_finetuning_with_a_masking_flag_is_refused(pretrained, order_task, tmp_path, capsys):
    assert finetune(pretrained, order_task, tmp_path / "ft", "--mask-prob", "0.3") == 1
    out, err = capsys.readouterr()
    assert "--mask-prob 0.3 does nothing here (it acts with --task masked_lm or electra; this run is " \
           "--task sentence_prediction)" in err
    assert "num_updates" not in out


def test_metric_direction_must_agree(pretrained, order_task, data_dir, tmp_path, capsys):
    """Without --maximize-best-checkpoint-metric an accuracy was minimised: checkpoint_best.pt was
    the run's worst validation, silently (fairseq does the same). Refused now, both ways."""
    assert finetune(pretrained, order_task, tmp_path / "a", "--best-checkpoint-metric", "accuracy") == 1
    out, err = capsys.readouterr()
    assert "--best-checkpoint-metric accuracy: higher is better; add --maximize-best-checkpoint-metric" in err
    assert "num_updates" not in out
    assert train(tiny_args(data_dir, tmp_path / "b", "--max-update", "2", "--maximize-best-checkpoint-metric")) == 1
    assert "--best-checkpoint-metric loss: lower is better; leave out --maximize-best-checkpoint-metric" \
        in capsys.readouterr().err
    # agreeing: the best is the highest accuracy of the validations
    assert finetune(pretrained, order_task, tmp_path / "c", "--best-checkpoint-metric", "accuracy",
                    "--maximize-best-checkpoint-metric", "--max-update", "0", "--max-epoch", "1",
                    "--validate-interval-updates", "3", "--lr", "1e-3") == 0
    out = capsys.readouterr().out
    best = json.loads(next(line for line in out.splitlines() if line.startswith('{"best"')))["best"]
    valid = [json.loads(line) for line in (tmp_path / "c" / "metrics.jsonl").read_text().splitlines()]
    accuracies = [r["accuracy"] for r in valid if r["type"] == "valid"]
    assert len(set(accuracies)) >= 2 and best["best"] == max(accuracies), accuracies


def test_resuming_with_other_flags_says_which(data_dir, tmp_path, capsys):
    """A run resumed (not --reset-*) with flags other than those it was saved with is another
    training than the interrupted one: the flags are named. Extending --max-update is how runs
    are continued: not named."""
    save = tmp_path / "ck"
    assert train(tiny_args(data_dir, save, "--max-update", "2")) == 0
    capsys.readouterr()
    assert train(tiny_args(data_dir, save, "--max-update", "3")) == 0
    assert "| note: resuming" not in capsys.readouterr().out
    assert train(tiny_args(data_dir, save, "--max-update", "4", "--lr", "0.001", "--mask-prob", "0.2")) == 0
    out = capsys.readouterr().out
    assert "| note: resuming with flags other than the run that saved checkpoint_last.pt: --lr 0.001 (was 0.003), " \
           "--mask-prob 0.2 (was 0.15); from here on this command's apply" in out


def test_changed_flags_compares_what_the_checkpoint_stores():
    from argparse import Namespace

    from tupe.train.options import checkpoint_args
    from tupe.train.restore import changed_flags

    args = parse_args([*BASE, "--lr", "0.001", "--adam-betas", "(0.9, 0.98)", "--dropout", "0.2"])
    cfg = model_config(args, vocab_size=100)
    stored = checkpoint_args(args, cfg)                    # as the checkpoint keeps them (betas as a string)
    assert changed_flags(stored, checkpoint_args(args, cfg)) == []
    other = parse_args([*BASE, "--lr", "0.001", "--adam-betas", "(0.9, 0.999)", "--dropout", "0.1", "--seed", "2"])
    assert changed_flags(stored, checkpoint_args(other, model_config(other, vocab_size=100))) == [
        "--adam-betas (0.9, 0.999) (was (0.9, 0.98))", "--dropout 0.1 (was 0.2)", "--seed 2 (was 1)"]
    assert changed_flags(None, stored) == [] and changed_flags(Namespace(lr=[1.0]), stored) == ["--lr 0.001 (was 1.0)"]


def test_model_flags_that_make_no_model_are_one_line(data_dir, tmp_path, capsys):
    """A ConfigError traceback before; now train.py's error line, exit 1, no run folder."""
    assert train(tiny_args(data_dir, tmp_path / "a", "--encoder-embed-dim", "100", "--encoder-attention-heads", "3")) == 1
    err = capsys.readouterr().err
    assert "train.py: error: the model's flags: encoder_embed_dim=100 is not divisible by encoder_attention_heads=3" in err
    assert "Traceback" not in err and not (tmp_path / "a").exists()


def test_a_sample_longer_than_max_tokens_is_refused(data_dir, tmp_path, capsys):
    """--max-tokens 16 with 32-token blocks ran batches of one 32-token sample, over the cap the
    flag promises (fairseq refuses); now an error before the first update."""
    args = [a for a in tiny_args(data_dir, tmp_path / "a", "--max-update", "2", "--max-tokens", "16")]
    i = args.index("--max-sentences")
    del args[i:i + 2]
    assert train(args) == 1
    out, err = capsys.readouterr()
    assert "a sample of 32 tokens exceeds the batch cap of 16 tokens (--max-tokens" in err and "num_updates" not in out


def test_resuming_another_model_than_the_flags_make_says_so(data_dir, tmp_path, capsys):
    """The README's way to TUPE-A is dropping --rel-pos; into a --save-dir that holds a TUPE-R run,
    that command resumes the TUPE-R run (the model comes from its checkpoint): said, with what to
    do for a new run."""
    save = tmp_path / "ck"
    assert train(tiny_args(data_dir, save, "--max-update", "2")) == 0                 # TUPE-R
    capsys.readouterr()
    assert train([a for a in tiny_args(data_dir, save, "--max-update", "3") if a != "--rel-pos"]) == 0
    assert f"rel_pos=True; this resumes the run in {save} (another model than these flags alone make: for a new " \
           f"run, choose another --save-dir)" in capsys.readouterr().out


def test_finetuning_from_another_tasks_checkpoint_needs_the_resets(pretrained, order_task, tmp_path, capsys):
    """Without --reset-dataloader the pretraining run's epoch and batch position were applied to the
    finetuning data (a later epoch than --max-epoch: nothing trained, exit 0); without
    --reset-meters its best masked-LM loss stayed the best, which no accuracy beats (no
    checkpoint_best.pt). Refused now, naming the flags; the original command passes them all."""
    args = [str(order_task / "SST-2-bin"), "--restore-file", str(pretrained), "--task", "sentence_prediction",
            "--num-classes", "2", "--max-sentences", "8", "--lr", "1e-4", "--max-update", "2", "--reset-optimizer",
            "--save-dir", str(tmp_path / "ft"), "--no-progress-bar", "--cpu", "--num-workers", "0"]
    assert train(args) == 1
    out, err = capsys.readouterr()
    assert f"{pretrained} was saved by a --task masked_lm run; this is --task sentence_prediction" in err
    assert "add --reset-dataloader --reset-meters (as the original finetuning command does)" in err
    assert "num_updates" not in out
    assert train(args + ["--reset-dataloader", "--reset-meters"]) == 0
