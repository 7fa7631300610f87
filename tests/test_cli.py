"""What the commands share (tupe/cli/__init__.py): the records they resume from."""

import json

import pytest

from tupe.cli import read_json, write_json


def test_resume_records_are_written_whole_and_read_with_a_clear_error(tmp_path):
    """write_json replaces a record only with a whole new one: a failure while writing leaves the
    earlier file and no temporary; read_json names the file and line of a damaged one."""
    path = tmp_path / "study.json"
    write_json(path, {"runs": {"a": 1}})
    plain = tmp_path.parent / f"{tmp_path.name}-plain"
    plain.write_text("x")
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777      # readable as any new file, not owner-only
    with pytest.raises(TypeError):
        write_json(path, {"runs": {"b": object()}})            # fails while writing
    assert json.loads(path.read_text()) == {"runs": {"a": 1}} and [p.name for p in tmp_path.iterdir()] == ["study.json"]
    path.write_text('{"runs": {"a": 1}')
    with pytest.raises(ValueError, match=f"{path}:1: not JSON"):
        read_json(path)


@pytest.mark.parametrize("command, argv, said", [
    ("predict", ["--checkpoint", "ck", "--out", "o"], "--out does nothing here (predictions on raw text go to stdout)"),
    ("predict", ["--checkpoint", "ck", "--data", "d"], "--data does nothing here (it is --glue-task's"),
    ("predict", ["--checkpoint", "ck", "--glue-task", "SST-2", "--data", "d", "--input", "x.txt"],
     "--input does nothing here (--glue-task predicts the test split of --data)"),
    ("convert", ["ck.pt", "out", "--fp16"], "--fp16 does nothing here (float16 storage is for --to fairseq; "
                                            "this conversion writes the tupe format)"),
    ("convert", ["ck.pt", "out", "--head", "h"], "--head does nothing here (it is for the transformers folder (--hf)"),
    ("convert", ["ck.pt", "out", "--cased"], "--cased does nothing here"),
    ("convert", ["ck.pt", "out.pt", "--to", "fairseq", "--label-dict", "l"], "--label-dict does nothing here"),
    ("validate", ["d", "--path", "ck", "--rope-scaling-factor", "2"], "--rope-scaling-factor does nothing here"),
    ("inspect", ["ck", "--out", "o", "--blocks", "4"], "--blocks does nothing here (it counts the blocks of --data)"),
    ("preprocess", ["pretrain", "--input", "c.txt", "--destdir", "o", "--bpe-code", "b", "--bpe-merges", "100"],
     "--bpe-merges does nothing here (--bpe-code gives the merges)"),
    ("preprocess", ["pretrain", "--input", "c.txt", "--destdir", "o", "--dict", "d.txt", "--nwords", "100"],
     "--nwords does nothing here (--dict gives the dictionary)"),
    ("study", ["--corpus", "c.txt", "--updates", "10", "--ft-seeds", "3"],
     "--ft-seeds does nothing here (it is for finetuning on --task)"),
    ("demo", ["--sample-lines", "100"], "--sample-lines does nothing here (it is --sample-data's)"),
    ("demo", ["--sample-data", "d", "--quick"], "--quick does nothing here (--sample-data only writes the sample data)"),
    ("preprocess", ["task", "--train", "t", "--valid", "v", "--text-columns", "1", "--label-column", "2", "--header",
                    "--no-header-check", "--bpe-dir", "b", "--destdir", "o"], "--no-header-check does nothing here"),
])
def test_an_option_that_would_do_nothing_is_refused(command, argv, said, capsys):
    """Given where it does nothing (a typo of intent: --out without --glue-task writes nothing
    there, --fp16 converting to the own format stores float32), an option is an error naming it,
    exit 2, before anything is read: the paths here do not exist."""
    import importlib

    module = {"predict": "tupe.cli.predict", "convert": "tupe.cli.convert", "validate": "tupe.train.validate",
              "inspect": "tupe.inspection", "preprocess": "tupe.preprocess.cli", "study": "tupe.study",
              "demo": "tupe.demo"}[command]
    with pytest.raises(SystemExit) as e:
        importlib.import_module(module).main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert said in err and err.rstrip().endswith("; leave it out")


def test_the_same_options_where_they_act_pass_the_check():
    import argparse

    from tupe.cli import given_dests, refuse_inert

    p = argparse.ArgumentParser()
    p.add_argument("--data")
    p.add_argument("--blocks", type=int, default=16)
    refuse_inert(p, ["--data", "d", "--blocks", "4"], [("blocks", True, "")])       # acts: no error
    refuse_inert(p, ["--data", "d"], [("blocks", False, "")])                        # not given: no error
    assert given_dests(p, ["--blocks=4", "--", "--data"]) == {"blocks"}             # --blocks=4 counts, after -- not


@pytest.mark.parametrize("argv, said", [
    (["--max-sentences", "0"], "argument --max-sentences/--batch-size: must be >= 1, got 0"),
    (["--max-sentences", "8", "--max-tokens", "0"], "argument --max-tokens: must be >= 1, got 0"),
    (["--max-sentences", "8", "--tokens-per-sample", "0"], "argument --tokens-per-sample: must be >= 2, got 0"),
    (["--max-sentences", "8", "--log-interval", "0"], "argument --log-interval: must be >= 1, got 0"),
    (["--max-sentences", "8", "--required-batch-size-multiple", "0"], "must be >= 1, got 0"),
    (["--max-sentences", "8", "--num-workers", "-1"], "argument --num-workers: must be >= 0, got -1"),
    (["--max-sentences", "8", "--mask-prob", "1.5"], "argument --mask-prob: must be in [0, 1], got 1.5"),
    (["--max-sentences", "8", "--leave-unmasked-prob", "0.6", "--random-token-prob", "0.6"],
     "--leave-unmasked-prob 0.6 + --random-token-prob 0.6 must be <= 1"),
    (["--max-sentences", "8", "--clip-norm", "-1"], "argument --clip-norm: must be >= 0.0, got -1"),
    (["--max-sentences", "8", "--warmup-updates", "-3"], "argument --warmup-updates: must be >= 0, got -3"),
    (["--max-sentences", "8", "--max-epoch", "-1"], "argument --max-epoch: must be >= 0, got -1"),
    (["--max-sentences", "8", "--save-interval", "0"], "argument --save-interval: must be >= 1, got 0"),
    (["--max-sentences", "8", "--validate-interval-updates", "-1"], "must be >= 0, got -1"),
    (["--max-sentences", "8", "--lr=-1e-4"], "argument --lr: must be >= 0, got -1e-4"),
    (["--max-sentences", "8", "--warmup-ratio", "1.5"], "argument --warmup-ratio: must be in [0, 1], got 1.5"),
    (["--max-sentences", "x"], "argument --max-sentences/--batch-size: invalid int value: 'x'"),
    (["--max-sentences", "8", "--weight-decay=-0.01"], "argument --weight-decay/--wd: must be >= 0.0, got -0.01"),
])
def test_train_numbers_out_of_range_are_refused_by_the_parser(argv, said, capsys):
    """Out of range, these ran on: --log-interval 0 and --required-batch-size-multiple 0 as a
    ZeroDivisionError traceback, --mask-prob 1.5 as numpy's, --tokens-per-sample 0 as minutes of
    no training and a valid loss of 0.0 reported as the best, --max-sentences 0 or -4 and
    --max-tokens 0 as some other batch size; now argparse's error naming the option, exit 2."""
    from tupe.train.options import parse_args

    with pytest.raises(SystemExit) as e:
        parse_args(["data", *argv])
    assert e.value.code == 2
    assert said in capsys.readouterr().err


@pytest.mark.parametrize("module, argv, said", [
    ("tupe.preprocess.cli", ["pretrain", "--input", "c.txt", "--destdir", "o", "--nwords", "3"],
     "argument --nwords: must be >= 8, got 3"),                # the 7 specials and no word: all <unk>
    ("tupe.preprocess.cli", ["pretrain", "--input", "c.txt", "--destdir", "o", "--valid-every", "0"],
     "argument --valid-every: must be >= 2, got 0"),
    ("tupe.cli.glue", ["--checkpoint", "c", "--data-dir", "d", "--out", "o", "--seeds", "0"],
     "argument --seeds: must be >= 1, got 0"),
    ("tupe.study", ["--corpus", "c.txt", "--updates", "0"], "argument --updates: must be >= 1, got 0"),
    ("tupe.study", ["--corpus", "c.txt", "--updates", "5", "--lrs", "1e-3,x"],
     "argument --lrs: comma-separated numbers, got '1e-3,x'"),                  # a ValueError traceback before
    ("tupe.study", ["--corpus", "c.txt", "--updates", "5", "--ft-lrs", "1e-4,1e-4"], "'1e-4,1e-4' names one twice"),
    ("tupe.study", ["--corpus", "c.txt", "--updates", "5", "--schemes", "TUPE-R,RoPE,TUPE-R"],
     "argument --schemes: 'TUPE-R,RoPE,TUPE-R' names one twice"),
    ("tupe.study", ["--corpus", "c.txt", "--updates", "5", "--eval-lengths", "128,1"],
     "argument --eval-lengths: comma-separated whole numbers >= 2, got '128,1'"),
    ("tupe.study", ["--corpus", "c.txt", "--updates", "5", "--objectives", ","],
     "argument --objectives: comma-separated names, got ','"),
    ("tupe.train.validate", ["d", "--path", "c", "--tokens-per-sample", "1"],
     "argument --tokens-per-sample: must be >= 2, got 1"),
])
def test_other_commands_numbers_out_of_range(module, argv, said, capsys):
    import importlib

    with pytest.raises(SystemExit) as e:
        importlib.import_module(module).main(argv)
    assert e.value.code == 2 and said in capsys.readouterr().err


@pytest.mark.parametrize("argv, said", [
    (["--lrs", "1e-5,1e-5"], "argument --lrs: '1e-5,1e-5' names one twice"),
    (["--tasks", "RTE,SST-2,RTE"], "argument --tasks: 'RTE,SST-2,RTE' names one twice"),
    (["--lrs", "nan"], "argument --lrs: comma-separated numbers > 0, got 'nan'"),
    (["--lrs", "2e-5,x"], "argument --lrs: comma-separated numbers, got '2e-5,x'"),
])
def test_glue_sweep_lists_are_checked_first(argv, said, capsys):
    """A task or learning rate named twice ran the same finetunes twice into the same folders (with
    --jobs 2 at the same time: one failed on the other's lock); a bad --lrs was a ValueError traceback."""
    from tupe.cli.glue import main

    with pytest.raises(SystemExit) as e:
        main(["--checkpoint", "none.pt", "--data-dir", "d", "--out", "o", *argv])
    assert e.value.code == 2 and said in capsys.readouterr().err
