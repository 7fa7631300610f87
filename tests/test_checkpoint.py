"""Checkpoint restore/save: original layout, own format, conversion, safety, errors."""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tupe
from tests.conftest import FIXTURE, random_tokens, tiny_config
from tupe.checkpoint import CheckpointError, fairseq_state_dict, load_vocabulary, read_checkpoint, save_fairseq
from tupe.checkpoint.fairseq import skip_parameter_init
from tupe.cli import convert
from tupe.config import SCHEMES


@pytest.fixture
def ref_dir(tmp_path):
    d = tmp_path / "ref"
    shutil.copytree(FIXTURE, d)
    for f in d.iterdir():
        f.chmod(0o644)
    return d


def outputs(model, tokens):
    with torch.no_grad():
        return model(tokens), model.extract_features(tokens)


def test_fixture_carries_fairseq_meters_read_as_inert_data():
    state = read_checkpoint(FIXTURE / "checkpoint.pt")
    assert isinstance(state["args"], argparse.Namespace)
    meters = state["extra_state"]["train_meters"]
    assert type(meters["train_loss"]).__name__ == "AverageMeter"
    assert meters["train_loss"].count == 3 and meters["train_loss"].sum == 4.5
    assert state["optimizer_history"][0]["num_updates"] == 1000


def test_save_pretrained_round_trip(tmp_path):
    model = tupe.load_model(FIXTURE / "checkpoint.pt")
    model.register_classification_head("sentence_classification_head", 3)
    vocabulary = load_vocabulary(FIXTURE / "checkpoint.pt", model.cfg.vocab_size)
    tupe.save_pretrained(model, tmp_path / "own", vocabulary=vocabulary)
    assert sorted(p.name for p in (tmp_path / "own").iterdir()) == ["config.json", "dict.txt", "model.safetensors"]
    assert b"pickle" not in (tmp_path / "own" / "model.safetensors").read_bytes()[:200]
    again = tupe.load_model(tmp_path / "own")
    assert again.cfg == model.cfg and again.head_sizes == {"sentence_classification_head": 3}
    assert load_vocabulary(tmp_path / "own", again.cfg.vocab_size).dictionary == vocabulary.dictionary
    tokens = random_tokens(3, 15, vocab=128)
    for a, b in zip(outputs(model, tokens), outputs(again, tokens)):
        assert torch.equal(a, b)
    head = "sentence_classification_head"
    with torch.no_grad():
        assert torch.equal(model(tokens, classification_head_name=head),
                           again(tokens, classification_head_name=head))


def test_fp16_original_checkpoint_with_head_loads_as_float32(tmp_path):
    model = tupe.load_model(FIXTURE / "checkpoint.pt")
    model.register_classification_head("sentence_classification_head", 2)
    save_fairseq(model, tmp_path / "ft" / "checkpoint_best.pt", fp16=True)
    raw = torch.load(tmp_path / "ft" / "checkpoint_best.pt", weights_only=False)
    assert raw["model"]["decoder.sentence_encoder.pos.weight"].dtype == torch.float16
    assert "decoder.lm_head.weight" in raw["model"]
    assert "classification_heads.sentence_classification_head.out_proj.weight" in raw["model"]
    loaded = tupe.load_model(tmp_path / "ft")          # a training dir: picks checkpoint_best.pt
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert loaded.head_sizes == {"sentence_classification_head": 2}
    tokens = random_tokens(2, 12, vocab=128)
    a, b = outputs(model, tokens)[1], outputs(loaded, tokens)[1]
    assert 0 < (a - b).abs().max() < 5e-2              # fp16 rounding only


def test_training_directory_resolution(tmp_path, ref_dir):
    model = tupe.load_model(ref_dir / "checkpoint.pt")
    run = tmp_path / "run"
    save_fairseq(model, run / "checkpoint_3_100.pt")
    assert tupe.load_model(run).cfg == model.cfg       # the only checkpoint*.pt
    save_fairseq(model, run / "checkpoint_3_200.pt")
    with pytest.raises(CheckpointError, match="several checkpoints"):
        tupe.load_model(run)
    save_fairseq(model, run / "checkpoint_last.pt")
    tupe.load_model(run)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        tupe.load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        tupe.load_model(tmp_path / "empty")


def test_dictionary_beside_checkpoint_is_checked(ref_dir):
    lines = (ref_dir / "dict.txt").read_text().splitlines()
    (ref_dir / "dict.txt").write_text("\n".join(lines[:-1]) + "\n")
    V = tupe.load_model(ref_dir / "checkpoint.pt").cfg.vocab_size   # the weights alone load
    with pytest.raises(CheckpointError, match=r"dict.txt: 119 entries .* wrong dictionary"):
        load_vocabulary(ref_dir / "checkpoint.pt", V)
    with pytest.raises(CheckpointError, match=r"wrong dictionary"):
        tupe.from_pretrained(ref_dir / "checkpoint.pt")                # text in needs the right one
    (ref_dir / "dict.txt").unlink()
    assert load_vocabulary(ref_dir / "checkpoint.pt", V) is None


def test_data_path_in_args_is_never_used(ref_dir):
    state = read_checkpoint(ref_dir / "checkpoint.pt")
    assert load_vocabulary(ref_dir / "checkpoint.pt", tupe.load_model(ref_dir / "checkpoint.pt").cfg.vocab_size)
    assert not hasattr(state["args"], "data") or not Path(str(state["args"].data), "dict.txt").exists()


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_pickled_callable_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    state = read_checkpoint(FIXTURE / "checkpoint.pt")
    state["extra_state"]["payload"] = _Evil(marker)
    torch.save(state, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused to load"):
        tupe.load_model(tmp_path / "evil.pt")
    assert not marker.exists()


def test_missing_unexpected_and_misshapen_tensors_are_named(tmp_path):
    state = read_checkpoint(FIXTURE / "checkpoint.pt")
    bad = dict(state)
    bad["model"] = dict(state["model"])
    del bad["model"]["decoder.sentence_encoder.layers.1.fc2.bias"]
    bad["model"]["decoder.sentence_encoder.bogus.weight"] = torch.zeros(3)
    bad["model"]["decoder.lm_head.dense.weight"] = torch.zeros(5, 5)
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as err:
        tupe.load_model(tmp_path / "bad.pt")
    msg = str(err.value)
    assert "missing: decoder.sentence_encoder.layers.1.fc2.bias" in msg
    assert "unexpected: decoder.sentence_encoder.bogus.weight" in msg
    assert "decoder.lm_head.dense.weight: checkpoint (5, 5) vs model (32, 32)" in msg


def test_args_contradicting_weights_is_an_error(tmp_path):
    state = read_checkpoint(FIXTURE / "checkpoint.pt")
    state["args"].encoder_layers = 4
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="args.encoder_layers=4 but the weights say 2"):
        tupe.load_model(tmp_path / "bad.pt")


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"hello")
    with pytest.raises(CheckpointError, match=r"x.pt: not a checkpoint \(a text file\)"):
        tupe.load_model(tmp_path / "x.pt")
    (tmp_path / "z.pt").write_bytes(bytes(range(256)))
    with pytest.raises(CheckpointError, match=r"not a checkpoint \(not a torch file\)"):
        tupe.load_model(tmp_path / "z.pt")
    (tmp_path / "t.pt").write_bytes(b"\x80\x02garbage")           # starts like a legacy torch file
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        tupe.load_model(tmp_path / "t.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "y.pt")
    with pytest.raises(CheckpointError, match="no 'model' entry"):
        tupe.load_model(tmp_path / "y.pt")


@pytest.mark.parametrize("scheme", [dict(), dict(pos_encoding="absolute", rel_pos=True),
                                    dict(untie_cls=False, encoder_normalize_before=True)])
def test_our_schemes_survive_the_original_layout(tmp_path, scheme):
    cfg = tiny_config(**scheme)
    model = tupe.TupeModel(cfg).eval()
    save_fairseq(model, tmp_path / "c.pt")
    names = set(fairseq_state_dict(model))
    assert all(n.startswith(("decoder.sentence_encoder.", "decoder.lm_head.")) for n in names)
    loaded = tupe.load_model(tmp_path / "c.pt")
    assert loaded.cfg == cfg
    tokens = random_tokens(2, 10)
    assert torch.equal(outputs(model, tokens)[0], outputs(loaded, tokens)[0])


def test_convert_on_a_text_file_says_so_and_never_suggests_unsafe_loading(tmp_path, capsys):
    (tmp_path / "corpus.txt").write_text("the river\nthe city\n")
    assert convert.main([str(tmp_path / "corpus.txt"), str(tmp_path / "out.pt")]) == 1
    err = capsys.readouterr().err
    assert "not a checkpoint (a text file)" in err and "tupe-preprocess" in err and "weights_only" not in err
    assert not (tmp_path / "out.pt").exists()


def test_convert_round_trip_cli(tmp_path, ref_dir):
    assert convert.main([str(ref_dir / "checkpoint.pt"), str(tmp_path / "own")]) == 0
    assert (tmp_path / "own" / "dict.txt").is_file()
    assert convert.main([str(tmp_path / "own"), str(tmp_path / "back" / "checkpoint.pt")]) == 0
    original, back = read_checkpoint(ref_dir / "checkpoint.pt"), read_checkpoint(tmp_path / "back" / "checkpoint.pt")
    assert set(original["model"]) == set(back["model"])
    assert all(torch.equal(original["model"][k], back["model"][k]) for k in original["model"])
    for key in ("arch", "encoder_layers", "encoder_embed_dim", "rel_pos", "embedding_normalize",
                "max_positions", "encoder_attention_heads"):
        assert getattr(back["args"], key) == getattr(original["args"], key)
    assert (tmp_path / "back" / "dict.txt").is_file()
    # the console script form, and a clear error
    proc = subprocess.run([sys.executable, "-m", "tupe.cli.convert", str(tmp_path / "nope"), str(tmp_path / "x")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "no such checkpoint" in proc.stderr


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_every_scheme_loads_back_exactly(tmp_path, scheme):
    """Loading builds the model without random initialisation (every parameter is then
    assigned): computed buffers (relative buckets, RoPE and ALiBi tables) must still be right."""
    cfg = tiny_config(**SCHEMES[scheme])
    torch.manual_seed(0)
    model = tupe.TupeModel(cfg).eval()
    model.register_classification_head("sentence_classification_head", 3)
    tupe.save_pretrained(model, tmp_path / "m")
    loaded = tupe.load_model(tmp_path / "m")
    tokens = random_tokens(2, 10)
    tokens[1, 7:] = cfg.padding_idx
    for a, b in zip(outputs(model, tokens), outputs(loaded, tokens)):
        assert torch.equal(a, b)
    assert {k: v for k, v in model.named_buffers()}.keys() == {k: v for k, v in loaded.named_buffers()}.keys()
    for (name, a), b in zip(model.named_buffers(), loaded.buffers()):
        assert torch.equal(a, b), name


def test_skip_parameter_init_leaves_parameters_and_only_parameters_alone():
    weight = torch.nn.Parameter(torch.full((3, 4), 7.0))
    plain = torch.full((3, 4), 7.0)
    with skip_parameter_init():
        for init in (torch.nn.init.normal_, torch.nn.init.xavier_uniform_, torch.nn.init.zeros_):
            init(weight)
            init(tensor=weight)
        torch.nn.init.kaiming_uniform_(weight, a=5 ** 0.5)
        torch.nn.init.constant_(weight, 0.0)
        weight.uniform_()
        assert weight.eq(7.0).all()
        weight.data.uniform_()          # .data is not a Parameter: it is written
        torch.nn.init.normal_(plain)    # nor is a plain tensor
        layer = torch.nn.Linear(4, 3)
    assert not weight.eq(7.0).any() and not plain.eq(7.0).any()
    assert layer.weight.shape == (3, 4)


def test_loading_does_not_import_the_compiler(tmp_path):
    """A model loads without importing torch._dynamo (seconds of a command's start), where
    importing torch alone does not."""
    tupe.save_pretrained(tupe.TupeModel(tiny_config(rel_pos=True)), tmp_path / "m")
    code = ("import sys, torch; before = 'torch._dynamo' in sys.modules; import tupe; "
            f"tupe.load_model({str(tmp_path / 'm')!r}); print(before, 'torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    if out[0] == "True":
        pytest.skip("this torch imports torch._dynamo on import")
    assert out == ["False", "False"]


def test_casing_travels_with_the_vocabulary_and_the_hub_follows_it(data_dir, tmp_path, caplog):
    """Whether the text keeps case (tupe-preprocess --cased) is recorded by the preprocessing,
    copied into a training run's text.json, kept by save_pretrained and tupe-convert --hf, and
    followed by the hub (and so tupe-predict): before, the hub lower-cased every input unless told
    otherwise, silently wrong for a --cased model."""
    import json
    from types import SimpleNamespace

    from tupe.checkpoint import Vocabulary, casing_of
    from tupe.data.dictionary import Dictionary, model_vocab_size
    from tupe.train.restore import write_run_files

    assert casing_of(data_dir) is False                          # tupe-preprocess pretrain's preprocess.json
    d = Dictionary.load(data_dir / "dict.txt")
    model = tupe.TupeModel(tiny_config(vocab_size=model_vocab_size(d)))
    for cased in (True, False):
        out = tmp_path / f"cased-{cased}"
        tupe.save_pretrained(model, out, vocabulary=Vocabulary(d, data_dir / "bpe-code", cased))
        hub = tupe.from_pretrained(out)
        assert hub.cased is cased and (hub.bpe_text("RIVER City") != hub.bpe_text("river city")) is cased
        assert convert.main([str(out), str(tmp_path / f"hf-{cased}"), "--hf"]) == 0
        tokenizer = json.loads((tmp_path / f"hf-{cased}" / "tokenizer_config.json").read_text())
        assert tokenizer["cased"] is cased and casing_of(tmp_path / f"hf-{cased}") is cased
        assert tupe.from_pretrained(tmp_path / f"hf-{cased}").cased is cased
    with caplog.at_level("WARNING", logger="tupe.hub"):
        assert tupe.from_pretrained(tmp_path / "cased-True", cased=False).cased is False    # asked: obeyed, with a word
    assert "preprocessed with case kept (--cased)" in caplog.text
    # data preprocessed lower-cased for the --cased model (train.py --restore-file, tupe-validate, ...): said
    from tupe.checkpoint import check_data_dictionary
    caplog.clear()
    with caplog.at_level("WARNING", logger="tupe.checkpoint"):
        check_data_dictionary(tmp_path / "cased-False", d, data_dir)
        assert caplog.text == ""                                              # the same casing: silent
        check_data_dictionary(tmp_path / "cased-True", d, data_dir)
    assert f"the text of {data_dir} is lower-cased, but the model's ({tmp_path / 'cased-True'}) keeps case" in caplog.text
    # a training run on --cased task data (task.json says so) records it beside its checkpoints
    data = tmp_path / "topics-bin"
    shutil.copytree(data_dir, data)
    (data / "preprocess.json").unlink()
    (data / "task.json").write_text(json.dumps({"task": "topics", "cased": True}))
    run = tmp_path / "run"
    write_run_files(argparse.Namespace(data=str(data), restore_file="checkpoint_last.pt"),
                    SimpleNamespace(), run)
    assert json.loads((run / "text.json").read_text()) == {"cased": True}


def test_conversions_keep_what_the_hub_reads_beside_the_checkpoint(data_dir, tmp_path, capsys):
    """tupe-convert to the own format or the original layout keeps the run's labels.json (label
    words, one sentence or pairs, a regression head's score range) and the casing: before, a
    converted regression model's values were mapped back to STS-B's 0..5 instead of its own range,
    and a --cased model was read lower-cased. A differing file already beside the target is kept and
    named."""
    import json

    from tupe.checkpoint import Vocabulary
    from tupe.data.dictionary import Dictionary, model_vocab_size

    d = Dictionary.load(data_dir / "dict.txt")
    model = tupe.TupeModel(tiny_config(vocab_size=model_vocab_size(d)))
    model.register_classification_head("sentence_classification_head", 1)
    run = tmp_path / "run"
    tupe.save_pretrained(model, run, vocabulary=Vocabulary(d, data_dir / "bpe-code", True))
    labels = {"sentence_classification_head": [], "inputs": {"sentence_classification_head": 2},
              "score_ranges": {"sentence_classification_head": [1.0, 3.0]}}
    (run / "labels.json").write_text(json.dumps(labels))
    value = tupe.from_pretrained(run).predict("sentence_classification_head", "a river", "a city")
    want = f"{1 + 2 * value.item():.4f}"
    assert convert.main([str(run), str(tmp_path / "orig" / "model.pt")]) == 0
    assert convert.main([str(tmp_path / "orig" / "model.pt"), str(tmp_path / "own")]) == 0
    for path in (tmp_path / "orig" / "model.pt", tmp_path / "own"):
        hub = tupe.from_pretrained(path)
        assert hub.cased is True and hub.labels == labels
        out = hub.predict("sentence_classification_head", "a river", "a city")
        (label, prob), = hub.labels_of("sentence_classification_head", out)
        assert label == want and prob != prob                       # the value in [1, 3]; no probability
        with pytest.raises(tupe.hub.HubError, match="finetuned on sentence pairs"):
            hub.predict("sentence_classification_head", "one sentence")
    # tupe-predict says which range it maps a regression head's values to when none is recorded
    from tupe.cli.predict import main as predict
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("a river\ta city\n")
    bare = tmp_path / "bare"
    shutil.copytree(tmp_path / "own", bare)
    (bare / "labels.json").unlink()
    capsys.readouterr()
    for path, noted in ((tmp_path / "own", False), (bare, True)):
        assert predict(["--checkpoint", str(path), "--input", str(pairs), "--cpu"]) == 0
        out, err = capsys.readouterr()
        assert ("no score range is recorded for regression head" in err) is noted
        assert out.strip() == (f"{5 * value.item():.4f}" if noted else want)
    # a folder that already holds another model's labels.json: kept, and said
    other = tmp_path / "other"
    other.mkdir()
    (other / "labels.json").write_text('{"sentence_classification_head": ["a", "b"]}\n')
    capsys.readouterr()
    assert convert.main([str(run), str(other / "model.pt")]) == 0
    assert f"{other / 'labels.json'} exists and differs from {run}'s; kept" in capsys.readouterr().err
    assert json.loads((other / "labels.json").read_text()) == {"sentence_classification_head": ["a", "b"]}


def test_saving_a_model_never_replaces_a_folder_of_other_things(tmp_path, ref_dir, capsys):
    """A model folder is written by replacing the folder whole: a destination holding anything a model
    folder does not (here a training run: its checkpoint and notes) is refused, nothing touched;
    an earlier model folder is replaced."""
    run = tmp_path / "run"
    shutil.copytree(ref_dir, run)
    (run / "notes.txt").write_text("kept\n")
    before = sorted(p.name for p in run.iterdir())
    assert convert.main([str(run / "checkpoint.pt"), str(run)]) == 1
    assert f"{run} exists and holds more than a model folder (checkpoint.pt, " in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == before
    with pytest.raises(CheckpointError, match="holds more than a model folder"):
        tupe.save_pretrained(tupe.load_model(run / "checkpoint.pt"), run)
    assert convert.main([str(run / "checkpoint.pt"), str(tmp_path / "own")]) == 0
    assert convert.main([str(run / "checkpoint.pt"), str(tmp_path / "own")]) == 0          # a model folder: replaced


def test_original_format_into_a_directory_is_refused(tmp_path, capsys):
    """`tupe-convert own/ somedir/` (an existing folder as the .pt file): an IsADirectoryError
    traceback from the rename before; now one line, exit 1, nothing written."""
    model = tupe.TupeModel(tiny_config())
    tupe.save_pretrained(model, tmp_path / "own")
    (tmp_path / "outdir").mkdir()
    with pytest.raises(CheckpointError, match="outdir is a directory: the original format is one file"):
        save_fairseq(model, tmp_path / "outdir")
    assert convert.main([str(tmp_path / "own"), str(tmp_path / "outdir")]) == 1
    err = capsys.readouterr().err
    assert f"give its path, e.g. {tmp_path / 'outdir' / 'checkpoint.pt'}" in err and "Traceback" not in err
    assert list((tmp_path / "outdir").iterdir()) == [] and not list(tmp_path.glob(".outdir*"))


def test_another_models_transformers_folder_is_named(tmp_path):
    """A BERT folder given as a model: said to be another model (its model_type), not a damaged one."""
    import json

    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32}))
    (tmp_path / "bert" / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"a transformers folder of another model \('bert'\), which tupe does "
                                              r"not load"):
        tupe.load_model(tmp_path / "bert")


def test_label_words_of_another_size_than_the_head_are_not_used(data_dir, caplog):
    """A labels.json naming 3 classes beside a 2-class head (another model's, left in the folder):
    its first two words were shown as this model's classes; now class numbers, with a warning."""
    import torch

    from tupe.checkpoint import load_vocabulary
    from tupe.data.dictionary import Dictionary, model_vocab_size
    from tupe.hub import TupeHub

    d = Dictionary.load(data_dir / "dict.txt")
    model = tupe.TupeModel(tiny_config(vocab_size=model_vocab_size(d)))
    model.register_classification_head("sentence_classification_head", 2)
    vocabulary = load_vocabulary(data_dir, model.cfg.vocab_size)
    out = torch.tensor([[0.0, -5.0], [-5.0, 0.0]])
    with caplog.at_level("WARNING", logger="tupe.hub"):
        hub = TupeHub(model, vocabulary, {"sentence_classification_head": ["a", "b", "c"]})
    assert "name 3 classes for head 'sentence_classification_head', which has 2: not used" in caplog.text
    assert [w for w, _ in hub.labels_of("sentence_classification_head", out)] == ["0", "1"]
    hub = TupeHub(model, vocabulary, {"sentence_classification_head": ["no", "yes"]})
    assert [w for w, _ in hub.labels_of("sentence_classification_head", out)] == ["no", "yes"]


def test_convert_says_when_label_words_do_not_fit_the_head(capsys):
    from tupe.cli.convert import label_words_for

    assert label_words_for({"h": ["a", "b", "c"]}, "h", None, 2) is None
    assert "name 3 classes for head 'h', which has 2: not used" in capsys.readouterr().err
    assert label_words_for({"h": ["a", "b"]}, "h", None, 2) == ["a", "b"] and capsys.readouterr().err == ""


def test_convert_replaces_only_an_earlier_conversion(tmp_path, capsys):
    """The original format into an existing file: a weights-only checkpoint (an earlier conversion)
    is replaced, as a model folder is; a training checkpoint (optimizer state, progress) or any
    other file was overwritten before; now refused, nothing touched."""
    model = tupe.TupeModel(tiny_config())
    tupe.save_pretrained(model, tmp_path / "own")
    assert convert.main([str(tmp_path / "own"), str(tmp_path / "conv.pt")]) == 0
    assert convert.main([str(tmp_path / "own"), str(tmp_path / "conv.pt")]) == 0           # replaced
    save_fairseq(model, tmp_path / "train.pt", optimizer_history=[{"num_updates": 5}],
                 last_optimizer_state={"state": {}, "param_groups": []})
    (tmp_path / "notes.txt").write_text("mine\n")
    for name, what in (("train.pt", "a training checkpoint (its optimizer state and progress would be lost)"),
                       ("notes.txt", "not a checkpoint")):
        before = (tmp_path / name).read_bytes()
        assert convert.main([str(tmp_path / "own"), str(tmp_path / name)]) == 1
        assert f"{tmp_path / name} exists and is {what}: not replaced" in capsys.readouterr().err
        assert (tmp_path / name).read_bytes() == before
