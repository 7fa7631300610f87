"""A checkpoint carries its whole model: every architecture field of TupeConfig, today's and any
added later, survives finetuning through ``train.py --restore-file`` and through ``tupe-glue``
with no architecture flag, or the run is refused with the field named. The fields come from
``dataclasses.fields(TupeConfig)``: a new field is tested without editing this file."""

import dataclasses
import json

import pytest

from tupe import TupeConfig
from tupe.checkpoint import fairseq_args, load_model, save_fairseq
from tupe.cli.glue import main as glue
from tupe.data.dictionary import Dictionary, model_vocab_size
from tupe.model import TupeModel
from tupe.train.options import DICTIONARY_FIELDS
from tupe.train.trainer import main as train

FIELDS = [f for f in dataclasses.fields(TupeConfig) if f.name in TupeConfig.architecture_fields()]


def base_kwargs(vocab_size):
    """TUPE-R at tiny sizes; untie_cls left to the scheme's default."""
    return dict(vocab_size=vocab_size, encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                encoder_attention_heads=4, max_positions=64, rel_pos=True)


def other_value(kwargs, f):
    """A valid value of field ``f`` other than the base config's, found from the field's type
    (and its declared choices and the fields it needs): the first candidate that TupeConfig accepts."""
    kwargs = {**kwargs, **f.metadata.get("needs", {})}
    current = getattr(TupeConfig(**kwargs), f.name)
    if "choices" in f.metadata:
        candidates = [c for c in f.metadata["choices"] if c != current]
    elif isinstance(current, bool):
        candidates = [not current]
    elif isinstance(current, int):
        candidates = [current * 2, current + 2, current + 1, current - 1]
    elif isinstance(current, float):
        candidates = [current / 20, current * 2 + 1]
    else:
        raise AssertionError(f"field {f.name}: no rule for a {type(current).__name__} value; extend other_value")
    for value in candidates:
        try:
            return TupeConfig(**{**kwargs, f.name: value})
        except ValueError:
            continue
    raise AssertionError(f"field {f.name}: no valid value other than {current!r} among {candidates}")


@pytest.fixture(scope="module")
def vocab(order_task):
    d = Dictionary.load(order_task / "SST-2-bin" / "input0" / "dict.txt")
    return model_vocab_size(d)


def checkpoint_with(tmp_path, cfg):
    path = tmp_path / "pre" / "checkpoint_last.pt"
    save_fairseq(TupeModel(cfg), path, fairseq_args(cfg))
    return path


def finetune_argv(data, ckpt, save, *extra):
    """The finetuning command of the README with no architecture flag at all."""
    return [str(data), "--cpu", "--restore-file", str(ckpt), "--task", "sentence_prediction",
            "--criterion", "sentence_prediction", "--num-classes", "2", "--init-token", "0",
            "--separator-token", "2", "--reset-optimizer", "--reset-dataloader", "--reset-meters",
            "--max-sentences", "32", "--lr", "1e-3", "--max-update", "2", "--max-epoch", "1",
            "--save-dir", str(save), "--no-progress-bar", "--log-format", "simple", "--num-workers", "0",
            "--disable-validation", "--truncate-sequence", *extra]


def assert_carried_or_refused(field, stored, rc, saved_dir, log):
    if rc == 0:
        got = load_model(saved_dir).cfg
        assert getattr(got, field) == getattr(stored, field), (field, getattr(got, field), getattr(stored, field))
        assert got.architecture_fields() == stored.architecture_fields()
        for name in TupeConfig.architecture_fields():    # nothing else changed on the way either
            assert getattr(got, name) == getattr(stored, name), name
    else:
        assert field in log, log[-2000:]


@pytest.mark.parametrize("f", FIELDS, ids=lambda f: f.name)
def test_train_restore_carries_field(f, order_task, vocab, tmp_path, capsys):
    stored = other_value(base_kwargs(vocab), f)
    ckpt = checkpoint_with(tmp_path, stored)
    rc = train(finetune_argv(order_task / "SST-2-bin", ckpt, tmp_path / "ft"))
    out = capsys.readouterr()
    assert_carried_or_refused(f.name, stored, rc, tmp_path / "ft" / "checkpoint_last.pt", out.out + out.err)
    if f.name in ("vocab_size", "padding_idx"):    # the data's dictionary decides these: refused
        assert rc == 1


def run_glue(ckpt, order_task, out):
    return glue(["--checkpoint", str(ckpt), "--data-dir", str(order_task), "--out", str(out), "--tasks", "SST-2",
                 "--lrs", "1e-3", "--seeds", "1", "--epochs", "1", "--batch-size", "64",
                 "--extra", "--cpu --num-workers 0"])


@pytest.mark.slow      # ~10 s: the carrying is tested per field through train.py; tupe-glue passes no architecture flag
def test_glue_carries_every_field_at_once(order_task, vocab, tmp_path):
    """One tupe-glue run (a subprocess per finetune) on a checkpoint where every architecture field
    that the data does not decide has a non-default value; the per-field runs are marked slow."""
    kwargs, changed = base_kwargs(vocab), []
    for f in FIELDS:
        if f.name in DICTIONARY_FIELDS:
            continue
        try:
            kwargs = {**kwargs, **f.metadata.get("needs", {}), f.name: getattr(other_value(kwargs, f), f.name)}
            changed.append(f.name)
        except AssertionError:     # no other value fits the fields changed before (untie_cls after pos_encoding)
            pass
    assert len(changed) >= len(FIELDS) - len(DICTIONARY_FIELDS) - 1, changed
    stored = TupeConfig(**kwargs)
    out = tmp_path / "glue"
    assert run_glue(checkpoint_with(tmp_path, stored), order_task, out) == 0
    got = load_model(out / "SST-2" / "best" / "checkpoint_best.pt").cfg
    for name in TupeConfig.architecture_fields():
        assert getattr(got, name) == getattr(stored, name), name
    log = (out / "SST-2" / "lr0.001_seed1" / "train.log").read_text()
    assert f"model {stored.name} ({stored.size_name})" in log


@pytest.mark.slow
@pytest.mark.parametrize("f", FIELDS, ids=lambda f: f.name)
def test_glue_carries_field(f, order_task, vocab, tmp_path):
    stored = other_value(base_kwargs(vocab), f)
    ckpt = checkpoint_with(tmp_path, stored)
    out = tmp_path / "glue"
    rc = run_glue(ckpt, order_task, out)
    run = out / "SST-2" / "lr0.001_seed1"
    log = (run / "train.log").read_text()
    assert_carried_or_refused(f.name, stored, 0 if rc == 0 else 1, out / "SST-2" / "best" / "checkpoint_best.pt", log)
    if rc == 0:
        assert json.loads((out / "results.json").read_text())["label"] == stored.name


def test_given_flag_that_contradicts_is_refused_with_field_and_flag(order_task, vocab, tmp_path, capsys):
    stored = TupeConfig(**{**base_kwargs(vocab), "pos_encoding": "rope", "rope_theta": 500.0, "max_rel_pos": 64})
    ckpt = checkpoint_with(tmp_path, stored)
    rc = train(finetune_argv(order_task / "SST-2-bin", ckpt, tmp_path / "ft", "--rope-theta", "10000"))
    err = capsys.readouterr().err
    assert rc == 1 and "rope_theta: the checkpoint has 500.0, --rope-theta asks for 10000.0" in err
    # the same value given explicitly is fine; a flag left out takes the checkpoint's value, said in one line
    rc = train(finetune_argv(order_task / "SST-2-bin", ckpt, tmp_path / "ft2", "--rope-theta", "500"))
    out = capsys.readouterr().out
    assert rc == 0
    line = [x for x in out.splitlines() if "flags not given take its values" in x]
    assert len(line) == 1 and "max_rel_pos=64" in line[0] and "pos_encoding='rope'" in line[0]
    assert "rope_theta" not in line[0]                # given, and equal: nothing taken
    cfg = load_model(tmp_path / "ft2" / "checkpoint_last.pt").cfg
    assert (cfg.rope_theta, cfg.max_rel_pos, cfg.pos_encoding) == (500.0, 64, "rope")


def test_arch_flag_counts_as_giving_its_sizes(order_task, vocab, tmp_path, capsys):
    ckpt = checkpoint_with(tmp_path, TupeConfig(**base_kwargs(vocab)))
    rc = train(finetune_argv(order_task / "SST-2-bin", ckpt, tmp_path / "ft", "--arch", "bert_small"))
    err = capsys.readouterr().err
    assert rc == 1 and "encoder_layers: the checkpoint has 2, --arch bert_small asks for 4" in err
    # a size flag given beside --arch is its own: the same value as the checkpoint passes that field
    rc = train(finetune_argv(order_task / "SST-2-bin", ckpt, tmp_path / "ft2", "--arch", "bert_small",
                             "--encoder-layers", "2"))
    err = capsys.readouterr().err
    assert rc == 1 and "encoder_layers" not in err and "encoder_embed_dim: the checkpoint has 32" in err


def test_dropout_is_the_runs_flag(order_task, vocab, tmp_path, capsys):
    stored = TupeConfig(**{**base_kwargs(vocab), "dropout": 0.3})
    ckpt = checkpoint_with(tmp_path, stored)
    assert train(finetune_argv(order_task / "SST-2-bin", ckpt, tmp_path / "ft", "--dropout", "0.05")) == 0
    capsys.readouterr()
    state = __import__("torch").load(tmp_path / "ft" / "checkpoint_last.pt", weights_only=False)
    assert state["args"].dropout == 0.05
