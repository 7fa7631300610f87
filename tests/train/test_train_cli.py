"""train.py end to end on tiny data: the original command, learning, resume, retention, DDP."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tupe
from tests.conftest import swapped_dictionary_copy
from tests.train.conftest import tiny_args
from tupe.checkpoint import load_model, load_vocabulary, read_checkpoint
from tupe.train.trainer import main

ROOT = Path(__file__).resolve().parents[2]


def records(save_dir, kind="train"):
    lines = (Path(save_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def original_command(data, save, arch="bert_tiny", max_update=3):
    """The pretraining command of the original README, variables substituted."""
    cmd = (f"{data} --fp16 --num-workers 16 --ddp-backend=c10d "
           f"--task masked_lm --criterion masked_lm --arch {arch} "
           f"--sample-break-mode complete --tokens-per-sample 32 "
           f"--optimizer adam --adam-betas '(0.9, 0.999)' --adam-eps 1e-6 --clip-norm 1.0 "
           f"--lr-scheduler polynomial_decay --lr 0.0005 --warmup-updates 2 --total-num-update {max_update} "
           f"--dropout 0.1 --attention-dropout 0.1 --weight-decay 0.01 "
           f"--max-sentences 4 --update-freq 2 --seed 1 "
           f"--mask-prob 0.15 --embedding-normalize "
           f"--max-update {max_update} --log-format simple --log-interval 1 "
           f"--keep-updates-list 100000 300000 600000 1000000 "
           f"--save-interval-updates 25000 --keep-interval-updates 3 --no-epoch-checkpoints "
           f"--skip-invalid-size-inputs-valid-test --save-dir {save} --rel-pos")
    return cmd


def run_shell(cmd, cwd=ROOT):
    return subprocess.run(["bash", "-c", f"{sys.executable} train.py {cmd}"], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_original_pretraining_command_runs(data_dir, tmp_path):
    proc = run_shell(original_command(data_dir, tmp_path / "ck"))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    if torch.cuda.is_available():
        assert "precision fp16" in proc.stdout
    else:
        assert (proc.stdout + proc.stderr).count("--fp16 needs CUDA") == 1   # one clear warning on a laptop
    assert "num_updates 3" in proc.stdout and "valid on 'valid' subset" in proc.stdout
    files = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert files == ["bpe-code", "checkpoint_best.pt", "checkpoint_last.pt", "checkpoints.sha256", "dict.txt",
                     "metrics.jsonl", "text.json"]                       # text.json: whether the text keeps case
    model = tupe.load_model(tmp_path / "ck")                         # the safe loader reads it
    assert model.cfg.name == "TUPE-R" and model.cfg.embedding_normalize
    assert load_vocabulary(tmp_path / "ck", model.cfg.vocab_size).bpe_codes is not None   # a self-contained run dir
    state = read_checkpoint(tmp_path / "ck" / "checkpoint_last.pt")
    assert state["optimizer_history"][-1]["num_updates"] == 3
    assert state["args"].adam_betas == "(0.9, 0.999)" and state["args"].rel_pos is True


@pytest.mark.slow
def test_original_pretraining_command_bert_base(data_dir, tmp_path):
    proc = run_shell(original_command(data_dir, tmp_path / "ck", arch="bert_base", max_update=2))
    assert proc.returncode == 0, proc.stderr
    assert tupe.load_model(tmp_path / "ck").num_parameters() > 80_000_000


def test_loss_decreases_and_checkpoint_loads(data_dir, tmp_path):
    save = tmp_path / "ck"
    assert main(tiny_args(data_dir, save, "--max-update", "60", "--dropout", "0", "--attention-dropout", "0")) == 0
    losses = [r["loss"] for r in records(save)]
    assert len(losses) == 60
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.5, losses
    valid = records(save, "valid")
    assert valid and valid[-1]["loss"] < losses[0]
    model = tupe.load_model(save)
    state = read_checkpoint(save / "checkpoint_last.pt")
    emb = state["model"]["decoder.sentence_encoder.embed_tokens.weight"]
    assert torch.equal(model.encoder.embed_tokens.weight, emb)


def test_data_of_another_dictionary_of_the_same_size_is_refused(data_dir, pretrained, tmp_path, capsys):
    """Data binarized with another dict.txt of the same size (tupe-preprocess pretrain makes
    --nwords symbols on any corpus) reads as other words with no other error: train.py
    --restore-file and tupe-validate compare it with the dict.txt beside the checkpoint."""

    from tupe.train.validate import main as validate

    data = tmp_path / "data"
    swapped = swapped_dictionary_copy(data_dir, data, 10, 20)[10].split()[0]
    capsys.readouterr()
    assert main(tiny_args(data, tmp_path / "ft", "--restore-file", str(pretrained), "--reset-optimizer",
                          "--max-update", "2", "--tokens-per-sample", "64", "--max-positions", "512")) == 1
    err = capsys.readouterr().err
    assert f"(dict.txt line 11) is {swapped!r} in the data" in err and "another vocabulary" in err, err
    assert not (tmp_path / "ft").exists()                                       # nothing created
    assert validate([str(data), "--path", str(pretrained), "--cpu", "--tokens-per-sample", "64"]) == 1
    assert f"(dict.txt line 11) is {swapped!r} in the data" in capsys.readouterr().err
    assert validate([str(data_dir), "--path", str(pretrained), "--cpu", "--tokens-per-sample", "64"]) == 0


def test_rerunning_a_finished_run_says_there_is_nothing_to_train(data_dir, tmp_path, capfd):
    save = tmp_path / "ck"
    assert main(tiny_args(data_dir, save, "--max-update", "6")) == 0
    before = (save / "checkpoint_last.pt").read_bytes()
    capfd.readouterr()
    assert main(tiny_args(data_dir, save, "--max-update", "4")) == 0           # finished: exit 0, no update
    out, err = capfd.readouterr()
    assert "nothing to train: the checkpoint is at update 6 (epoch 1), which reaches --max-update 4" in out + err
    assert (save / "checkpoint_last.pt").read_bytes() == before
    assert len(records(save)) == 6


def test_total_updates_below_the_warmup_is_a_clear_error(data_dir, tmp_path, capsys):
    """Exit 1 with the flags' values on one line (not a traceback), no run folder left behind."""
    save = tmp_path / "ck"
    assert main(tiny_args(data_dir, save, "--max-update", "10", "--total-num-update", "10",
                          "--warmup-updates", "30")) == 1
    err = capsys.readouterr().err
    assert "train.py: error: --lr-scheduler polynomial_decay: total updates (10) must not be below the warmup " \
           "updates (30)" in err and "Traceback" not in err
    assert not save.exists()


def test_lr_values_and_retention(data_dir, tmp_path):
    save = tmp_path / "ck"
    args = tiny_args(data_dir, save, "--max-update", "10", "--total-num-update", "10", "--warmup-updates", "4",
                     "--lr", "0.001", "--save-interval-updates", "2", "--keep-interval-updates", "2",
                     "--keep-updates-list", "4", "--no-epoch-checkpoints")
    assert main(args) == 0
    lrs = [r["lr"] for r in records(save)]
    want = [0.00025, 0.00025, 0.0005, 0.00075, 0.001, 5 / 6 * 1e-3, 4 / 6 * 1e-3, 3 / 6 * 1e-3, 2 / 6 * 1e-3, 1 / 6 * 1e-3]
    assert lrs == pytest.approx(want)
    names = sorted(p.name for p in save.glob("checkpoint*.pt"))
    assert names == ["checkpoint_1_10.pt", "checkpoint_1_4.pt", "checkpoint_1_8.pt", "checkpoint_best.pt",
                     "checkpoint_last.pt"]


def model_tensors(path):
    return read_checkpoint(path)["model"]


def kill_and_resume(args_a, args_b, save_b, kill_at, saved_at):
    """Run ``args_a`` to the end; run ``args_b`` as a subprocess, SIGKILL it when it logs update
    ``kill_at`` (its last checkpoint must be at ``saved_at``) and rerun it: its resumed output."""
    assert main(args_a) == 0
    cmd = [sys.executable, "train.py", *args_b]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}   # same reduction order as run a
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for line in proc.stdout:
        if f"num_updates {kill_at} " in line:
            proc.kill()                                                  # SIGKILL: no chance to save
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert read_checkpoint(save_b / "checkpoint_last.pt")["optimizer_history"][-1]["num_updates"] == saved_at
    resumed = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert resumed.returncode == 0, resumed.stderr
    return resumed


def assert_same_tensors(path_a, path_b):
    a, b = model_tensors(path_a), model_tensors(path_b)
    assert set(a) == set(b)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]


def test_kill_and_resume_gives_identical_weights(data_dir, tmp_path):
    extra = ["--max-update", "40", "--save-interval-updates", "3", "--max-sentences", "16", "--lr", "0.002",
             "--total-num-update", "40"]
    # the uninterrupted run (dropout on: the RNG state must be restored too); crosses an epoch
    resumed = kill_and_resume(tiny_args(data_dir, tmp_path / "a", *extra), tiny_args(data_dir, tmp_path / "b", *extra),
                              tmp_path / "b", kill_at=26, saved_at=24)
    assert records(tmp_path / "a")[-1]["epoch"] >= 2
    assert "loaded checkpoint" in resumed.stdout
    assert_same_tensors(tmp_path / "a" / "checkpoint_last.pt", tmp_path / "b" / "checkpoint_last.pt")
    # metrics.jsonl is one history: updates 25-26, logged before the kill and again after the resume
    # from update 24, appear once (they appeared twice before), with the uninterrupted run's losses
    assert "dropped 2 record(s) past update 24" in resumed.stdout
    for kind in ("train", "valid"):
        a, b = ([(r["num_updates"], r["epoch"], r["loss"]) for r in records(tmp_path / x, kind)] for x in "ab")
        assert a == b and len(a) == len({u for u, *_ in a})


def test_a_new_run_into_a_used_save_dir_keeps_the_earlier_history_apart(data_dir, tmp_path, capsys):
    """A run from update 0 into a --save-dir whose metrics.jsonl holds an earlier run's records (no
    checkpoint to resume: a finetuning command run again, a run killed before its first save):
    before, its records were appended to the earlier ones and read as one curve by the reports."""
    args = tiny_args(data_dir, tmp_path / "s", "--max-update", "3", "--no-last-checkpoints", "--no-epoch-checkpoints")
    assert main(args) == 0
    first = (tmp_path / "s" / "metrics.jsonl").read_text()
    assert main(args) == 0
    assert "records of an earlier run in this --save-dir (this run starts at update 0) moved to metrics.earlier-1.jsonl" \
        in capsys.readouterr().out
    assert (tmp_path / "s" / "metrics.earlier-1.jsonl").read_text() == first
    assert [r["num_updates"] for r in records(tmp_path / "s")] == [1, 2, 3]
    assert main(args) == 0 and (tmp_path / "s" / "metrics.earlier-2.jsonl").is_file()


def test_a_run_from_another_checkpoint_says_it_does_not_resume_the_save_dirs(data_dir, pretrained, tmp_path, capsys):
    """As in fairseq, --restore-file OTHER starts from OTHER even where --save-dir holds an earlier
    (e.g. interrupted finetuning) run's checkpoint_last.pt; that is said, with how to resume it."""
    assert main(tiny_args(data_dir, tmp_path / "s", "--max-update", "2", "--tokens-per-sample", "64",
                          "--max-positions", "512")) == 0
    capsys.readouterr()
    assert main(tiny_args(data_dir, tmp_path / "s", "--max-update", "2", "--tokens-per-sample", "64",
                          "--restore-file", str(pretrained), "--reset-optimizer", "--reset-dataloader",
                          "--reset-meters")) == 0
    out = capsys.readouterr().out
    assert f"| note: {tmp_path / 's' / 'checkpoint_last.pt'} (an earlier run's) is not resumed: this run starts " \
           f"from {pretrained}" in out and "give --restore-file checkpoint_last.pt without the --reset-* flags" in out
    assert "moved to metrics.earlier-1.jsonl" in out


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_signal_saves_and_exits_with_the_signal_code(data_dir, tmp_path, sig, code):
    """Ctrl-C / SIGTERM: checkpoint_last.pt saved, the run is not reported as finished (no
    'end of epoch' line for the interrupted epoch) and the exit code says so (128 + signal)."""
    cmd = [sys.executable, "train.py", *tiny_args(data_dir, tmp_path / "c", "--max-update", "100000",
                                                  "--log-interval", "1000")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if "lr schedule" in line:
            break
    proc.send_signal(sig)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == code, out[-2000:]
    assert "rerun the same command to resume" in out and "the run is NOT finished" in out
    assert "end of epoch" not in out.split("received")[-1], out[-2000:]
    n = read_checkpoint(tmp_path / "c" / "checkpoint_last.pt")["optimizer_history"][-1]["num_updates"]
    assert f"stopped at update {n} by {sig.name}" in out
    assert tupe.load_model(tmp_path / "c").cfg.rel_pos


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_and_two_processes(args_fn, data_dir, tmp_path, common):
    """The same run as 1 process with --update-freq 2 and as 2 gloo processes: their train records."""
    assert main(args_fn(data_dir, tmp_path / "one", "--update-freq", "2", *common)) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    save = tmp_path / "two"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "train.py",
                           *args_fn(data_dir, save, *common)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout
    return records(tmp_path / "one"), records(save)


def test_two_process_gloo_equals_update_freq_two(data_dir, tmp_path):
    common = ["--max-update", "6", "--dropout", "0", "--attention-dropout", "0", "--max-sentences", "4",
              "--disable-validation"]
    one, two = one_and_two_processes(tiny_args, data_dir, tmp_path, common)
    assert len(one) == len(two) == 6
    for a, b in zip(one, two):
        assert a["bsz"] == b["bsz"] and a["lr"] == b["lr"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5)


def test_divergence_stops_with_a_clear_message(data_dir, tmp_path, capsys):
    args = tiny_args(data_dir, tmp_path / "d", "--max-update", "200", "--lr", "1e30", "--clip-norm", "0",
                     "--warmup-updates", "0", "--save-interval-updates", "1")
    assert main(args) == 1
    assert "training diverged" in capsys.readouterr().err
    last = read_checkpoint(tmp_path / "d" / "checkpoint_last.pt")["model"]
    assert all(torch.isfinite(t).all() for t in last.values())


def test_bad_command_lines(data_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(tiny_args(data_dir, tmp_path / "x", "--no-such-flag"))
    assert e.value.code == 2 and "unrecognized arguments: --no-such-flag" in capsys.readouterr().err
    assert main(tiny_args(tmp_path / "nope", tmp_path / "x")) == 1
    assert "nope: data directory not found" in capsys.readouterr().err


def test_restore_file_architecture_mismatch_is_named(data_dir, tmp_path, capsys):
    assert main(tiny_args(data_dir, tmp_path / "r", "--max-update", "2")) == 0
    args = tiny_args(data_dir, tmp_path / "s", "--max-update", "4",
                     "--restore-file", str(tmp_path / "r" / "checkpoint_last.pt"))
    args.remove("--rel-pos")                        # not given: the checkpoint's value, said in one line
    assert main(args) == 0
    assert "flags not given take its values): rel_pos=True" in capsys.readouterr().out
    assert load_model(tmp_path / "s" / "checkpoint_last.pt").cfg.rel_pos is True
    args = tiny_args(data_dir, tmp_path / "t", "--max-update", "2", "--pos-encoding", "absolute",
                     "--restore-file", str(tmp_path / "r" / "checkpoint_last.pt"))
    assert main(args) == 1                          # given and contradicting: refused, field and flag named
    err = capsys.readouterr().err
    assert "pos_encoding: the checkpoint has 'tupe', --pos-encoding asks for 'absolute'" in err


def test_tupe_validate_matches_the_training_validation(data_dir, tmp_path, capsys):
    from tupe.train.validate import main as validate

    save = tmp_path / "v"
    assert main(tiny_args(data_dir, save, "--max-update", "8")) == 0
    last_valid = records(save, "valid")[-1]
    capsys.readouterr()
    assert validate([str(data_dir), "--path", str(save), "--tokens-per-sample", "32",
                     "--skip-invalid-size-inputs-valid-test", "--cpu"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["subset"] == "valid" and out["loss"] == pytest.approx(last_valid["loss"], abs=1e-3)
    assert out["ppl"] == pytest.approx(2 ** out["loss"], rel=1e-3)
    assert validate([str(data_dir), "--path", str(save), "--tokens-per-sample", "32", "--cpu"]) == 1
    assert "pass --skip-invalid-size-inputs-valid-test" in capsys.readouterr().err


def test_tupe_validate_sets_up_the_evaluation_as_the_run(data_dir, tmp_path, capsys):
    """As fairseq's validate.py: without flags, tupe-validate evaluates as the run validated (block
    length, masking and seed from the checkpoint's arguments), so it reproduces the run's figure
    even where the run's flags differ from the defaults (here seed, mask-prob, and tables longer
    than its blocks); a flag given overrides the run's value, and the values taken are said."""
    from tupe.train.validate import main as validate

    save = tmp_path / "v"
    assert main(tiny_args(data_dir, save, "--max-update", "4", "--seed", "3", "--mask-prob", "0.3",
                          "--max-positions", "64")) == 0
    trained = records(save, "valid")[-1]
    capsys.readouterr()
    assert validate([str(data_dir), "--path", str(save), "--skip-invalid-size-inputs-valid-test", "--cpu"]) == 0
    out = capsys.readouterr()
    got = json.loads(out.out.strip().splitlines()[-1])
    assert got["tokens_per_sample"] == 32 and got["loss"] == pytest.approx(trained["loss"], abs=6e-5)
    assert "tokens_per_sample 32" in out.err and "seed 3" in out.err and "mask_prob 0.3" in out.err
    assert validate([str(data_dir), "--path", str(save), "--skip-invalid-size-inputs-valid-test", "--cpu",
                     "--seed", "1", "--mask-prob", "0.15"]) == 0
    other = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert other["masked_tokens"] < got["masked_tokens"] and abs(other["loss"] - got["loss"]) > 1e-3
    # the own format keeps no run arguments: the defaults, and it says so
    from tupe.cli.convert import main as convert
    assert convert([str(save), str(tmp_path / "own")]) == 0
    capsys.readouterr()
    assert validate([str(data_dir), "--path", str(tmp_path / "own"), "--skip-invalid-size-inputs-valid-test",
                     "--cpu"]) == 0
    out = capsys.readouterr()
    assert "keeps no training arguments: the defaults (blocks of 64 tokens, seed 1, batches of 16)" in out.err
    assert json.loads(out.out.strip().splitlines()[-1])["tokens_per_sample"] == 64


def test_a_failed_start_creates_nothing(tmp_path, capsys):
    """A text file as DATA gets the preprocessing command; a start that fails leaves no run folder
    and no empty metrics.jsonl."""
    (tmp_path / "corpus.txt").write_text("the river\n")
    save = tmp_path / "run"
    assert main([str(tmp_path / "corpus.txt"), "--max-sentences", "2", "--save-dir", str(save)]) == 1
    err = capsys.readouterr().err
    assert "is a file; train.py reads binarized data directories" in err and "tupe-preprocess pretrain" in err
    assert not save.exists()


def test_the_trainer_is_released_when_main_returns(data_dir, tmp_path, monkeypatch):
    """Nothing keeps the trainer (and with it a DDP wrapper and the process group) alive after
    main(): a SIGTERM/SIGINT handler bound to it did, so in 2-process runs gloo's process group was
    torn down at interpreter exit, where its threads could abort ("terminate called without an
    active exception"). The signal handlers are restored too."""
    import gc
    import weakref

    from tupe.train import trainer as trainer_module

    refs = []
    real_init = trainer_module.Trainer.__init__

    def init(self, *args, **kwargs):
        refs.append(weakref.ref(self))
        real_init(self, *args, **kwargs)
    monkeypatch.setattr(trainer_module.Trainer, "__init__", init)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    assert main(tiny_args(data_dir, tmp_path / "r", "--max-update", "2")) == 0
    gc.collect()
    assert len(refs) == 1 and refs[0]() is None, gc.get_referrers(refs[0]())
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_masked_lm_skips_blocks_longer_than_the_block_size(data_dir, tmp_path, capsys):
    """As the original: a sentence longer than --tokens-per-sample (its own over-long block) is
    skipped, also when --max-positions is larger (tables sized for evaluating longer blocks)."""
    from tupe.train.data import TokenBlockDataset
    from tupe.train.tasks import open_split

    blocks = TokenBlockDataset(open_split(data_dir / "train", None), 32, "complete", 0)
    longer = int((blocks.sizes > 32).sum())
    assert longer > 0
    assert main(tiny_args(data_dir, tmp_path / "s", "--max-update", "1", "--max-positions", "64")) == 0
    share = f"{100 * longer / len(blocks):.1f}%"
    assert f"skipped {longer} of {len(blocks)} samples ({share}), longer than 32 tokens" in capsys.readouterr().out


def test_what_validation_would_refuse_is_refused_before_training(data_dir, tmp_path, capsys):
    """Over-long validation samples without --skip-invalid-size-inputs-valid-test, and a
    --best-checkpoint-metric validation does not report, were errors only at the first validation:
    after an epoch of training, which was then lost (validation comes before the epoch's save).
    Both are refused before the first update now, with exit code 1."""
    from tupe.train.data import TokenBlockDataset
    from tupe.train.tasks import open_split

    longer = int((TokenBlockDataset(open_split(data_dir / "valid", None), 32, "complete", 0).sizes > 32).sum())
    assert longer > 0
    strict = [a for a in tiny_args(data_dir, tmp_path / "a", "--max-update", "2")
              if a != "--skip-invalid-size-inputs-valid-test"]
    assert main(strict) == 1
    out, err = capsys.readouterr()
    assert f"valid: {longer} samples are longer than 32 tokens" in err
    assert "num_updates" not in out
    assert not list((tmp_path / "a").glob("checkpoint*.pt")) and not (tmp_path / "a" / "metrics.jsonl").exists()

    assert main(tiny_args(data_dir, tmp_path / "b", "--max-update", "2", "--best-checkpoint-metric", "accuracy")) == 1
    out, err = capsys.readouterr()
    assert "--best-checkpoint-metric 'accuracy' is not a validation metric of masked_lm (choose from loss, ppl)" in err
    assert "num_updates" not in out and not (tmp_path / "b" / "metrics.jsonl").exists()
    # validation off: neither is checked (nothing validates), and the run trains
    assert main(strict + ["--save-dir", str(tmp_path / "c"), "--disable-validation",
                          "--best-checkpoint-metric", "accuracy"]) == 0
    assert records(tmp_path / "c")[-1]["num_updates"] == 2


@pytest.mark.parametrize("task", ["masked_lm", "electra", "classification", "regression"])
def test_metric_names_are_what_validation_reports(task, tmp_path):
    """``metric_names`` (checked against --best-checkpoint-metric before training) are the keys
    ``metrics`` returns for real outputs, for every task."""
    from types import SimpleNamespace

    from tupe.train.tasks import HIGHER_IS_BETTER, ElectraTask, MaskedLMTask, SentencePredictionTask

    if task in ("masked_lm", "electra"):
        t = (MaskedLMTask if task == "masked_lm" else ElectraTask).__new__(
            MaskedLMTask if task == "masked_lm" else ElectraTask)
        outputs = [] if task == "masked_lm" else [{k: 3.0 for k in t.stat_keys}]
        expected = ["loss", "ppl"] if task == "masked_lm" else ["loss", "gen_loss", "disc_loss", "disc_acc", "replaced"]
    else:
        t = SentencePredictionTask.__new__(SentencePredictionTask)
        t.regression = task == "regression"
        t.positive = None if t.regression else 1
        pred, target = (torch.tensor([0.1, 0.5, 0.9]), torch.tensor([0.0, 0.6, 1.0])) if t.regression \
            else (torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
        outputs = [(pred, target)]
        expected = ["loss", "pearson", "spearman"] if t.regression else ["loss", "accuracy", "f1", "mcc"]
    t.args = SimpleNamespace()
    assert t.metric_names() == expected == list(t.metrics(5.0, 3.0, outputs))
    assert set(expected) <= set(HIGHER_IS_BETTER)      # each metric's direction is known (--maximize-... checked)
