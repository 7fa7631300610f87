"""tupe-glue (sweep and aggregation), tupe-predict (submission files, raw text) and the hub API."""

import io
import json
import shutil
import signal
import sys

import pytest
import torch

import tupe
from tupe.cli import glue as sweep
from tupe.cli import predict
from tupe.train.trainer import main as train


def record(m, mm=None, metric="accuracy"):
    valid = {"valid": {metric: m}}
    if mm is not None:
        valid["valid1"] = {metric: mm}
    return {"best_checkpoint_metric": metric, "best": m, "valid": valid}


def test_aggregation_on_fabricated_runs():
    runs = {
        "RTE": {2e-5: {1: record(0.70), 2: record(0.60), 3: record(0.65)},
                3e-5: {1: record(0.72), 2: record(0.50), 3: record(0.69)}},
        "MNLI": {2e-5: {1: record(0.84, 0.83), 2: record(0.86, 0.80), 3: record(0.85, 0.86)}},
        "STS-B": {1e-5: {1: record(0.88, metric="pearson"), 2: record(0.90, metric="pearson")}},
    }
    s = sweep.aggregate(runs)
    assert s["RTE"]["lr"] == 3e-5 and s["RTE"]["median"] == pytest.approx(0.69)   # medians 0.65 vs 0.69
    assert s["RTE"]["representative_seed"] == 3 and (s["RTE"]["min"], s["RTE"]["max"]) == (0.50, 0.72)
    assert s["MNLI"]["columns"] == {"MNLI-m": pytest.approx(0.85), "MNLI-mm": pytest.approx(0.83)}
    assert s["STS-B"]["columns"]["STS"] == pytest.approx(0.89) and s["STS-B"]["representative_seed"] == 1
    header, rows = sweep.table(s, "TUPE-R", paper=True)
    assert header[0] == "model" and header[-1] == "Avg" and len(header) == 11
    assert rows[0][1:3] == [85.0, 83.0] and rows[0][-1] is None          # not all nine columns known
    assert rows[1][0] == "BERT-A (paper)" and rows[-1][0] == "TUPE-A-tie-cls (paper)"
    merged = {}
    for i, (c, t, _) in enumerate(sweep.COLUMNS):
        merged.setdefault(t, {"columns": {}})["columns"][c] = 0.5 + i / 100
    _, rows = sweep.table(merged, "x", paper=False)
    assert rows[0][-1] == pytest.approx(sum(50 + i for i in range(9)) / 9)


@pytest.fixture(scope="module")
def swept(order_task, pretrained, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "runs"
    args = ["--checkpoint", str(pretrained), "--data-dir", str(order_task), "--tasks", "SST-2",
            "--lrs", "5e-3,1e-4", "--seeds", "2", "--epochs", "3", "--out", str(out), "--paper",
            "--extra", "--cpu --arch bert_tiny"]
    assert sweep.main(args) == 0
    return out, args


def test_sweep_runs_aggregates_and_keeps_the_representative(swept):
    out, args = swept
    results = json.loads((out / "results.json").read_text())
    sst = results["tasks"]["SST-2"]
    medians = {float(k): v for k, v in sst["medians_by_lr"].items()}
    assert set(medians) == {5e-3, 1e-4} and sst["seeds"] == 2
    assert sst["median"] == max(medians.values()) and medians[sst["lr"]] == sst["median"]
    md = (out / "results.md").read_text()
    assert "| TUPE-R |" in md and "TUPE-R (paper)" in md and f"SST-2: accuracy, lr {sst['lr']:g}" in md
    assert (out / "results.csv").read_text().startswith("model,MNLI-m,MNLI-mm,QNLI,QQP,SST,CoLA,MRPC,RTE,STS,Avg")
    best = out / "SST-2" / "best"
    assert {"checkpoint_best.pt", "dict.txt", "bpe-code", "labels.json", "text.json"} <= {p.name for p in best.iterdir()}
    assert json.loads((best / "text.json").read_text()) == {"cased": False}        # as the data was preprocessed
    assert not list((out / "SST-2").glob("lr*_seed*/checkpoint*.pt"))         # the others deleted
    assert len(list((out / "SST-2").glob("lr*_seed*/result.json"))) == 4
    # resumable: a second call finds every result and runs nothing
    before = (out / "SST-2" / "lr0.005_seed1" / "train.log").stat().st_mtime
    assert sweep.main(args) == 0
    assert (out / "SST-2" / "lr0.005_seed1" / "train.log").stat().st_mtime == before
    assert json.loads((out / "results.json").read_text()) == results


def test_a_sweep_into_the_folders_of_another_is_refused(swept, pretrained, tmp_path, capsys):
    """Each run folder records what it finetunes (command.json); a second sweep into the same --out
    that would run another finetune (other epochs, another pretrained model) is refused before
    anything runs: its table would otherwise show the earlier runs' results under its own name.
    The same model under another path is the same finetune."""
    out, args = swept
    record = json.loads((out / "SST-2" / "lr0.005_seed1" / "command.json").read_text())
    assert "--max-epoch" in record["flags"] and len(record["model_sha256"]) == 64
    before = {p: p.stat().st_mtime for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    epochs = [a if a != "3" else "4" for a in args]                    # --epochs 3 -> 4
    assert sweep.main(epochs) == 1
    err = capsys.readouterr().err
    assert "4 run folder(s) in" in err and "--max-epoch 3 then, 4 now" in err and "command.json" in err
    other = tmp_path / "other.pt"                                       # another model (its first update)
    torch.save(torch.load(pretrained, weights_only=False), other)
    state = torch.load(other, weights_only=False)
    state["model"] = {k: v + 1e-3 if v.is_floating_point() else v for k, v in state["model"].items()}
    torch.save(state, other)
    moved = [str(other) if a == str(pretrained) else a for a in args]
    assert sweep.main(moved) == 1
    assert "another pretrained model (--checkpoint's content differs)" in capsys.readouterr().err
    assert {p: p.stat().st_mtime for p in out.rglob("*") if p.is_file()} == before      # nothing ran or changed
    same = tmp_path / "same" / "checkpoint_last.pt"                      # the same file elsewhere: the same runs
    same.parent.mkdir()
    shutil.copyfile(pretrained, same)
    for name in ("dict.txt", "bpe-code"):
        if (pretrained.parent / name).is_file():
            shutil.copyfile(pretrained.parent / name, same.parent / name)
    assert sweep.main([str(same) if a == str(pretrained) else a for a in args]) == 0
    # a damaged result (a sweep of an earlier version stopped while writing it): said before anything runs
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "SST-2" / "lr0.005_seed2" / "result.json").write_text('{"best": 0.')
    capsys.readouterr()
    assert sweep.main([str(copy) if a == str(out) else a for a in args]) == 1
    assert f"{copy / 'SST-2' / 'lr0.005_seed2' / 'result.json'}:1: not JSON" in capsys.readouterr().err


def test_a_representative_without_its_checkpoint_is_finetuned_again(swept, tmp_path, capsys):
    """best/ records which run it holds. When a later sweep into the folder (e.g. with more seeds)
    picks a representative whose checkpoint was deleted after the first, that run is finetuned
    again with its seed (the same result) and best/ then holds it; before, best/ kept the earlier
    representative's model while the tables named another run."""
    out, args = swept
    rep = json.loads((out / "SST-2" / "best" / "run.json").read_text())["run"]
    assert (out / "SST-2" / "best" / "checkpoint_best.pt").is_file() and not list(out.glob("SST-2/lr*/checkpoint*.pt"))
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    other = next(p.name for p in sorted(copy.glob("SST-2/lr*_seed*")) if p.name != rep)
    (copy / "SST-2" / "best" / "run.json").write_text(json.dumps({"run": other}))     # as if another was before
    before = json.loads((copy / "SST-2" / rep / "result.json").read_text())
    capsys.readouterr()
    assert sweep.main([str(copy) if a == str(out) else a for a in args]) == 0
    err = capsys.readouterr().err
    assert f"SST-2: the representative run {rep} has no checkpoint left" in err
    assert json.loads((copy / "SST-2" / rep / "result.json").read_text()) == before         # the same seed, the same run
    assert json.loads((copy / "SST-2" / "best" / "run.json").read_text()) == {"run": rep}
    assert json.loads((copy / "SST-2" / "best" / "result.json").read_text()) == before


def test_submission_files_layout(swept, order_task, tmp_path, capsys):
    out, _ = swept
    assert predict.main(["--checkpoint", str(out / "SST-2" / "best"), "--glue-task", "SST-2",
                         "--data", str(order_task / "SST-2-bin"), "--out", str(tmp_path), "--cpu"]) == 0
    lines = (tmp_path / "SST-2.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 21
    assert all(line.split("\t")[0] == str(i) and line.split("\t")[1] in ("0", "1") for i, line in enumerate(lines[1:]))
    # batches by padded positions (here a few rows each): the same predictions
    assert predict.main(["--checkpoint", str(out / "SST-2" / "best"), "--glue-task", "SST-2", "--max-tokens", "40",
                         "--data", str(order_task / "SST-2-bin"), "--out", str(tmp_path / "by-tokens"), "--cpu"]) == 0
    assert (tmp_path / "by-tokens" / "SST-2.tsv").read_text().splitlines() == lines
    # a test split binarized with another dictionary of the same size: refused, nothing written
    other = tmp_path / "SST-2-bin"
    shutil.copytree(order_task / "SST-2-bin", other)
    words = (other / "input0" / "dict.txt").read_text().splitlines()
    words[3], words[4] = words[4], words[3]
    (other / "input0" / "dict.txt").write_text("\n".join(words) + "\n")
    assert predict.main(["--checkpoint", str(out / "SST-2" / "best"), "--glue-task", "SST-2", "--data", str(other),
                         "--out", str(tmp_path / "other"), "--cpu"]) == 1
    assert "(dict.txt line 4)" in capsys.readouterr().err and not (tmp_path / "other").exists()



def test_a_submission_file_is_whole_or_absent(swept, order_task, tmp_path, monkeypatch, capsys):
    """A full disk half-way through writing a submission file: exit 1 with the reason, and the
    earlier file kept as it was (never a cut one that could be uploaded); no temporary left."""
    import errno

    import tupe.cli

    out, _ = swept
    argv = ["--checkpoint", str(out / "SST-2" / "best"), "--glue-task", "SST-2", "--data",
            str(order_task / "SST-2-bin"), "--out", str(tmp_path), "--cpu"]
    assert predict.main(argv) == 0
    before = (tmp_path / "SST-2.tsv").read_text()
    real_fdopen = tupe.cli.os.fdopen

    class HalfWritten:
        def __init__(self, f):
            self.f = f

        def write(self, text):
            self.f.write(text[: len(text) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, "No space left on device", self.f.name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(tupe.cli.os, "fdopen", lambda fd, mode: HalfWritten(real_fdopen(fd, mode)))
    capsys.readouterr()
    assert predict.main(argv) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert (tmp_path / "SST-2.tsv").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SST-2.tsv"]


def test_submission_refuses_test_data_the_head_was_not_finetuned_on(swept, order_task, tmp_path, capsys):
    """The run's labels.json says the SST-2 head reads one sentence with the labels ["0", "1"] in
    that order: pair data, or a label dictionary in another order (class 0 would be written as "1"),
    is refused before anything is written."""
    out, _ = swept
    best = out / "SST-2" / "best"
    assert json.loads((best / "labels.json").read_text())["inputs"] == {"sentence_classification_head": 1}
    pairs = tmp_path / "pairs-bin"                     # the same test rows, with a second input
    shutil.copytree(order_task / "SST-2-bin", pairs)
    shutil.copytree(pairs / "input0", pairs / "input1")
    assert predict.main(["--checkpoint", str(best), "--glue-task", "SST-2", "--data", str(pairs),
                         "--out", str(tmp_path / "a"), "--cpu"]) == 1
    err = capsys.readouterr().err
    assert "sentence pairs (input0 and input1), but head 'sentence_classification_head' was finetuned on one " \
           "sentence per row" in err and not (tmp_path / "a").exists()
    swapped = tmp_path / "swapped-bin"
    shutil.copytree(order_task / "SST-2-bin", swapped)
    label_dict = swapped / "label" / "dict.txt"
    lines = label_dict.read_text().splitlines()
    assert [line.split()[0] for line in lines[:2]] == ["0", "1"]        # then madeupword padding
    label_dict.write_text("\n".join([lines[1], lines[0]] + lines[2:]) + "\n")
    assert predict.main(["--checkpoint", str(best), "--glue-task", "SST-2", "--data", str(swapped),
                         "--out", str(tmp_path / "b"), "--cpu"]) == 1
    err = capsys.readouterr().err
    assert f"{label_dict}: labels ['1', '0'], but head 'sentence_classification_head' was finetuned with " \
           "['0', '1']" in err and not (tmp_path / "b").exists()
    # finetuning further from that checkpoint on the swapped labels: allowed (a transfer may mean it), but said
    assert train([str(swapped), "--restore-file", str(best / "checkpoint_best.pt"), "--task", "sentence_prediction",
                  "--num-classes", "2", "--init-token", "0", "--separator-token", "2", "--reset-optimizer",
                  "--reset-dataloader", "--reset-meters", "--max-sentences", "16", "--lr", "1e-4", "--max-update", "1",
                  "--save-dir", str(tmp_path / "further"), "--no-save", "--no-progress-bar", "--cpu"]) == 0
    log = capsys.readouterr().out
    assert "warning: classification head 'sentence_classification_head' of checkpoint_best.pt was finetuned with the " \
           "labels ['0', '1'] (class i is the i-th), this task's are ['1', '0']" in log and "another order" in log


def test_submission_reports_test_rows_cut_to_the_model_length(pretrained, order_task, tmp_path, caplog):
    """Test rows longer than max_positions are cut as --truncate-sequence cuts, and said so."""
    model = tupe.load_model(pretrained)
    model.register_classification_head("sentence_classification_head", 2)
    full, _ = predict.glue_test_rows(order_task / "SST-2-bin", "test", 1, 512)
    limit = sorted(len(r) for r in full)[len(full) // 2]       # the median row length: about half are longer
    rows, cut = predict.glue_test_rows(order_task / "SST-2-bin", "test", 1, limit)
    assert cut == [i for i, r in enumerate(full) if len(r) > limit] and 0 < len(cut) < len(full)
    assert all(torch.equal(r, f[:limit]) for r, f in zip(rows, full))
    model.cfg.max_positions = limit
    with caplog.at_level("WARNING", logger="tupe"):
        predict.write_submission(model, "sentence_classification_head", "SST-2", order_task / "SST-2-bin", tmp_path)
    assert f"{len(cut)} of {len(full)} row(s) longer than the model's {limit} positions" in caplog.text


def test_mnli_and_stsb_submissions(pretrained, order_task, tmp_path):
    model = tupe.load_model(pretrained)
    model.register_classification_head("sentence_classification_head", 3)
    paths = predict.write_submission(model, "sentence_classification_head", "MNLI", order_task / "MNLI-bin", tmp_path)
    assert [p.name for p in paths] == ["MNLI-m.tsv", "MNLI-mm.tsv"]
    words = {line.split("\t")[1] for line in paths[0].read_text().splitlines()[1:]}
    assert words <= {"entailment", "neutral", "contradiction"} and len(paths[1].read_text().splitlines()) == 6
    reg = tupe.load_model(pretrained)
    reg.register_classification_head("sentence_classification_head", 1)
    (path,) = predict.write_submission(reg, "sentence_classification_head", "STS-B", order_task / "STS-B-bin", tmp_path)
    values = [float(line.split("\t")[1]) for line in path.read_text().splitlines()[1:]]
    assert len(values) == 5 and all(0.0 <= v <= 5.0 for v in values)
    with pytest.raises(predict.HubError, match="no classification head 'nope'"):
        predict.write_submission(model, "nope", "MNLI", order_task / "MNLI-bin", tmp_path)
    # another GLUE task's folder: its predictions would be written under this task's file name
    with pytest.raises(predict.HubError, match="--glue-task RTE with .*MNLI-bin, the binarized MNLI: the submission "
                                               "file would hold MNLI's predictions under RTE's name"):
        predict.write_submission(model, "sentence_classification_head", "RTE", order_task / "MNLI-bin", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    shutil.copytree(order_task / "MNLI-bin", tmp_path / "broken")
    shutil.rmtree(tmp_path / "broken" / "input1")
    (tmp_path / "broken" / "input1").mkdir()
    with pytest.raises(predict.HubError, match="input1/test.bin/.idx not found"):
        predict.write_submission(model, "sentence_classification_head", "MNLI", tmp_path / "broken", tmp_path)


def test_a_closed_output_pipe_stops_it_quietly(swept, monkeypatch, capsys):
    """`tupe-predict ... | head -1`: the reader goes away; the command stops with SIGPIPE's code
    (141) and says nothing, as shell tools do (it printed an error before, a traceback earlier)."""
    import os

    out, _ = swept
    read, write = os.pipe()
    os.close(read)                                              # the reader has gone
    monkeypatch.setattr("sys.stdin", io.StringIO("the river city was\n" * 50))
    with os.fdopen(write, "w") as pipe:
        monkeypatch.setattr("sys.stdout", pipe)
        assert predict.main(["--checkpoint", str(out / "SST-2" / "best"), "--cpu"]) == 141
        monkeypatch.undo()
    assert capsys.readouterr().err == ""


def test_raw_text_prediction_and_hub(swept, monkeypatch, capsys, caplog):
    out, _ = swept
    monkeypatch.setattr("sys.stdin", io.StringIO("the river city was\nthe city river was\n"))
    assert predict.main(["--checkpoint", str(out / "SST-2" / "best"), "--cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.split("\t")[0] in ("0", "1") and 0.5 <= float(line.split("\t")[1]) <= 1
                                   for line in lines)
    hub = tupe.from_pretrained(out / "SST-2" / "best")
    ids = hub.encode("The river city.", "They were there!")
    assert ids[0].item() == 0 and (ids == 2).sum() == 3                    # <s> a </s> </s> b </s>
    assert (ids == 3).sum() == 0 and hub.decode(ids) == "the river city . they were there !"
    assert (hub.encode("zqxj") == 3).sum() >= 1                            # unknown pieces: <unk>
    assert hub.extract_features("the river city").shape == (1, len(hub.encode("the river city")), 32)
    filled = hub.fill_mask("the <mask> city was", topk=3)
    assert len(filled) == 3 and filled[0][1] >= filled[1][1] >= filled[2][1]
    assert all(f[0].startswith("the ") and "<mask>" not in f[0] for f in filled)
    logp = hub.predict("sentence_classification_head", "the river city")
    assert logp.shape == (1, 2) and torch.allclose(logp.exp().sum(), torch.tensor(1.0))
    label, prob = hub.predict_label("sentence_classification_head", "the river city")
    assert label in ("0", "1") and 0.5 <= prob <= 1.0
    with pytest.raises(tupe.hub.HubError, match="no classification head 'other'"):
        hub.predict("other", "x")
    with pytest.raises(tupe.hub.HubError, match="exactly one <mask>"):
        hub.fill_mask("no mask here")
    with pytest.raises(tupe.hub.HubError, match="the <mask> is beyond the model's 512 positions"):
        hub.fill_mask("the " * 600 + "<mask> city")
    with caplog.at_level("WARNING", logger="tupe.hub"):                  # features of a cut text: said
        assert hub.extract_features("the city " * 300).shape == (1, 512, 32)
    assert "the text is longer than the model's 512 positions: cut to them" in caplog.text


def test_prediction_without_a_head_is_a_clear_error(pretrained, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a sentence\n"))
    assert predict.main(["--checkpoint", str(pretrained), "--cpu"]) == 1
    err = capsys.readouterr().err
    assert "has no classifier: it is a pretraining (masked-LM) checkpoint" in err and "--task sentence_prediction" in err
    # a missing --input: said in words, before any model is loaded
    assert predict.main(["--checkpoint", str(pretrained), "--cpu", "--input", "missing.txt"]) == 1
    err = capsys.readouterr().err
    assert "--input missing.txt: no such file" in err and "Errno" not in err
    for flag in ("--batch-size", "--max-tokens"):
        with pytest.raises(SystemExit) as e:
            predict.main(["--checkpoint", str(pretrained), "--cpu", flag, "0"])
        assert e.value.code == 2 and f"argument {flag}: must be >= 1, got 0" in capsys.readouterr().err


def test_bad_finetuning_data(order_task, pretrained, tmp_path, capsys):
    data = tmp_path / "MNLI-bin"
    shutil.copytree(order_task / "MNLI-bin", data)
    base = [str(data), "--task", "sentence_prediction", "--num-classes", "3", "--restore-file", str(pretrained),
            "--arch", "bert_tiny", "--max-positions", "512", "--rel-pos", "--embedding-normalize", "--cpu",
            "--max-sentences", "8", "--max-epoch", "1", "--lr", "1e-4", "--reset-optimizer", "--reset-dataloader",
            "--reset-meters", "--save-dir", str(tmp_path / "ft"), "--no-progress-bar", "--init-token", "0",
            "--separator-token", "2"]
    # a label outside the classes: --num-classes 2 while the data has 3 label words
    assert train([*base[:4], "2", *base[5:]]) == 1
    assert "is not one of the 2 classes" in capsys.readouterr().err
    # a pair task without its second input
    for ext in ("bin", "idx"):
        (data / "input1" / f"valid.{ext}").unlink()
    assert train(base) == 1
    assert "input1/valid.bin/.idx not found" in capsys.readouterr().err
    # an empty split
    from tupe.data.indexed_dataset import IndexedDatasetBuilder
    for k in ("input0", "input1"):
        with IndexedDatasetBuilder(data / k / "valid"):
            pass
    assert train(base) == 1
    assert "input0/valid: empty split" in capsys.readouterr().err


def test_classify_sorts_by_length_and_answers_in_input_order():
    """tupe.hub.classify (tupe-predict's raw text and its submission files): rows of different
    lengths in length-sorted batches give each row's own logits, in input order."""
    from tests.conftest import tiny_config
    from tests.model.test_invariance import perturbed
    from tupe.hub import classify

    model = perturbed(tiny_config(rel_pos=True))
    model.register_classification_head("h", 3)
    g = torch.Generator().manual_seed(5)
    rows = [torch.cat([torch.tensor([0]), torch.randint(7, 50, (int(n),), generator=g), torch.tensor([2])])
            for n in torch.randint(1, 20, (23,), generator=g)]
    model.eval()
    with torch.no_grad():
        one = torch.cat([model(r.unsqueeze(0), classification_head_name="h") for r in rows])   # (23, 3)
    for batch_size, max_tokens in ((1, None), (4, None), (64, None), (None, 40), (8, 30)):
        got = classify(model, "h", rows, batch_size, max_tokens)
        torch.testing.assert_close(got, one, atol=1e-5, rtol=0)
    assert len({len(r) for r in rows}) > 5 and not torch.allclose(one[0], one[1])
    assert classify(model, "h", [], 4).shape == (0, 3)


def test_length_batches_cut_where_padding_wastes_least():
    """tupe.hub.length_batches: every row once, within the row and token limits, in length order;
    a long row no longer pads a whole batch of short ones; fewer positions (and no more cost) than
    fixed batches of the sorted rows."""
    import random

    from tupe.hub import FORWARD_COST, length_batches

    def positions(lengths, batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    # 62 rows of 10 tokens and one of 100: fixed batches of 32 pad 30 short rows to 100
    lengths = [10] * 31 + [100] + [10] * 31
    fixed = [sorted(range(63), key=lambda i: lengths[i])[k: k + 32] for k in (0, 32)]
    assert positions(lengths, fixed) == 32 * 10 + 31 * 100
    got = length_batches(lengths, 32)
    assert positions(lengths, got) == 62 * 10 + 100 and len(got) == 3 and got[-1] == [31]
    # a token limit: at most 64 positions a batch (6 rows of 10), a longer row alone
    got = length_batches([10] * 100, None, 64)
    assert len(got) == 17 and max(map(len, got)) == 6
    assert length_batches([200, 3], None, 64) == [[1], [0]]
    assert length_batches([], 32) == []
    rng = random.Random(0)
    for _ in range(30):
        lengths = [rng.choice([rng.randint(3, 30), rng.randint(3, 120)]) for _ in range(rng.randint(1, 300))]
        bs, mt = rng.choice([(1, None), (7, None), (32, None), (None, 256), (16, 200)])
        got = length_batches(lengths, bs, mt)
        assert sorted(i for b in got for i in b) == list(range(len(lengths)))
        assert all(len(b) <= (bs or len(lengths)) for b in got)
        if mt:
            assert all(len(b) == 1 or len(b) * max(lengths[i] for i in b) <= mt for b in got)
        flat = [lengths[i] for b in got for i in b]
        assert flat == sorted(lengths)                                     # contiguous in length order
        if mt is None:                                                     # fixed batches are one of the choices
            s = sorted(range(len(lengths)), key=lambda i: lengths[i])
            fixed = [s[k: k + bs] for k in range(0, len(s), bs)]
            assert (positions(lengths, got) + FORWARD_COST * len(got)
                    <= positions(lengths, fixed) + FORWARD_COST * len(fixed))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        length_batches([3], 0)
    with pytest.raises(ValueError, match="max_tokens must be >= 1"):
        length_batches([3], 4, 0)
    with pytest.raises(ValueError, match="batch_size or max_tokens is needed"):
        length_batches([3], None, None)


def test_stsb_submission_values_are_each_rows_own(pretrained, order_task, tmp_path):
    model = tupe.load_model(pretrained)
    model.register_classification_head("sentence_classification_head", 1)
    (path,) = predict.write_submission(model, "sentence_classification_head", "STS-B", order_task / "STS-B-bin",
                                       tmp_path)
    got = [float(line.split("\t")[1]) for line in path.read_text().splitlines()[1:]]
    rows, cut = predict.glue_test_rows(order_task / "STS-B-bin", "test", 2, model.cfg.max_positions)
    assert cut == []
    with torch.no_grad():
        raw = [model(r.unsqueeze(0), classification_head_name="sentence_classification_head").item() for r in rows]
    want = [min(max(5 * x, 0), 5) for x in raw]
    assert len(got) == 5 and got == pytest.approx(want, abs=1.5e-3)
    # a head finetuned on another score range (the run's labels.json) maps back to that range, not the data's
    (path,) = predict.write_submission(model, "sentence_classification_head", "STS-B", order_task / "STS-B-bin",
                                       tmp_path / "own", labels={"score_ranges": {"sentence_classification_head": [1, 3]}})
    got = [float(line.split("\t")[1]) for line in path.read_text().splitlines()[1:]]
    assert got == pytest.approx([min(max(1 + 2 * x, 1), 3) for x in raw], abs=1.5e-3)


@pytest.mark.parametrize("extra", ["--cpu", "--cpu --bf16"])
def test_extra_takes_one_flag_as_its_help_shows(extra, tmp_path, capsys):
    """`tupe-glue --extra '--cpu'` (the help's example): argparse alone stops at a value that
    starts with "-" ("expected one argument"); the command gets as far as the missing checkpoint."""
    from tupe.cli import attach_flag_values

    assert attach_flag_values(["--out", "o", "--extra", extra, "--jobs", "2"], ("--extra",)) == \
        ["--out", "o", f"--extra={extra}", "--jobs", "2"]
    assert attach_flag_values(["--extra"], ("--extra",)) == ["--extra"]      # argparse reports it
    args = ["--checkpoint", str(tmp_path / "none.pt"), "--data-dir", str(tmp_path), "--out", str(tmp_path / "o"),
            "--extra", extra]
    assert sweep.main(args) == 1
    err = capsys.readouterr().err
    assert "none.pt" in err and "expected one argument" not in err


def test_extra_bf16_replaces_the_originals_fp16(order_task, pretrained, tmp_path, capsys):
    """`--extra '--cpu --bf16'` (the help's example): the original command's --fp16 made train.py
    refuse every finetune (--fp16 and --bf16 are exclusive); --bf16 now replaces the fp16 flags."""
    out = tmp_path / "o"
    assert sweep.main(["--checkpoint", str(pretrained), "--data-dir", str(order_task), "--tasks", "SST-2", "--lrs", "1e-4",
                       "--seeds", "1", "--epochs", "1", "--out", str(out), "--extra", "--cpu --bf16"]) == 0
    record = json.loads((out / "SST-2" / "lr0.0001_seed1" / "command.json").read_text())
    flags = record["flags"]
    assert "--bf16" in flags and not any(f.startswith("--fp16") for f in flags)
    assert "precision" in (out / "SST-2" / "lr0.0001_seed1" / "train.log").read_text()


@pytest.mark.parametrize("extra, said", [
    ("--cpu --mask-prob 0.3", "--mask-prob 0.3 does nothing here (it acts with --task masked_lm or electra"),
    ("--cpu --no-such-flag", "unrecognized arguments: --no-such-flag"),
    ("--cpu --arch bert_base", "the checkpoint: the command line contradicts the checkpoint's model: encoder_layers"),
    ("--cpu --rope-theta 500000", "rope_theta: the checkpoint has 10000.0, --rope-theta asks for 500000.0"),
])
def test_extra_that_train_would_refuse_is_refused_before_the_sweep(extra, said, order_task, pretrained, tmp_path, capsys):
    """Every finetune of the sweep would fail the same way: said once, before any runs, exit 1."""
    out = tmp_path / "o"
    assert sweep.main(["--checkpoint", str(pretrained), "--data-dir", str(order_task), "--tasks", "SST-2", "--lrs", "1e-4",
                       "--seeds", "2", "--out", str(out), "--extra", extra]) == 1
    err = capsys.readouterr().err
    assert "tupe-glue: error: train.py would refuse every finetune of this sweep: " in err and said in err
    assert not (out / "SST-2").exists()


def test_a_signal_stops_the_sweep_and_its_running_finetune(order_task, pretrained, tmp_path, capsys, monkeypatch):
    """SIGTERM to the sweep (not to its group, as `kill PID` sends it) reaches the running
    finetune, no other starts, and the exit code is 143. The finetune here is a stand-in process
    that sends the signal itself and then waits to be stopped (train.py's own stop on SIGTERM is
    tested in tests/train)."""
    import subprocess

    child = ("import os, signal, sys, time\n"
             "signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))\n"
             "os.kill(os.getppid(), signal.SIGTERM)\n"
             "time.sleep(60)\n")
    started = []
    real_popen = subprocess.Popen

    def popen(cmd, **kwargs):
        started.append(cmd)
        proc = real_popen([sys.executable, "-c", child], **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(sweep.subprocess, "Popen", popen)
    args = ["--checkpoint", str(pretrained), "--data-dir", str(order_task), "--tasks", "SST-2", "--lrs", "1e-4",
            "--seeds", "3", "--epochs", "1", "--out", str(tmp_path / "runs")]
    assert sweep.main(args) == 143
    assert len(started) == 2 and started[1].returncode == 143       # one finetune started, and stopped by it
    assert "stopped by SIGTERM: 0 of 3 finetunes finished" in capsys.readouterr().err
    assert not list((tmp_path / "runs").rglob("result.json"))
    assert signal.getsignal(signal.SIGTERM) is not tupe.cli._raise_stopped    # the handler put back
