"""The demo in --quick mode, end to end, and tupe-report on its output."""

import json

import pytest

from tupe.demo import DATA, MODELS
from tupe.demo import main as demo
from tupe.report import main as report_main


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    assert demo(["--quick", "--out", str(out)]) == 0
    return out


def test_shipped_data_and_licence():
    assert (DATA / "LICENSE.wordnet").read_text().startswith("WordNet Release 3.0")
    header, *rows = (DATA / "task" / "train.tsv").read_text().splitlines()
    assert header == "sentence\tlabel" and len(rows) == 4000
    labels = [r.rsplit("\t", 1)[1] for r in rows]
    assert set(labels) == {"0", "1"} and 0.4 < labels.count("1") / len(labels) < 0.6


@pytest.mark.slow      # ~60 s: the demo is a preset of tupe-study, whose --quick run is tested end to end in test_study.py
def test_quick_demo_report(quick_demo, capsys):
    out = quick_demo
    report = out / "report.md"
    assert report.is_file()
    text = report.read_text()
    for png in ("study_valid_loss.png", "study_lr_grid.png", "finetune_curves.png"):
        assert (out / png).stat().st_size > 1000 and f"]({png})" in text
    for section in ("### Pretraining", "updates to reach BERT-A's final loss", "### Finetuning on SST-2"):
        assert section in text, section
    final = text.split("## Final numbers")[1]
    table = [line for line in final.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert sorted(row.split(" | ")[0].strip("| ") for row in table[:3]) == sorted(MODELS)   # a row per model
    for name in MODELS:                       # every model's validation loss went down
        recs = [json.loads(x) for x in (out / "pretrain" / name / "lr0.001" / "metrics.jsonl").read_text().splitlines()]
        valid = [r["loss"] for r in recs if r["type"] == "valid"]
        assert len(valid) >= 2 and valid[-1] < valid[0], (name, valid)
        assert json.loads((out / "finetune" / name / "results.json").read_text())["tasks"]["SST-2"]["median"] > 0
    assert report_main([str(out)]) == 0       # tupe-report alone re-makes it and prints the table
    printed = capsys.readouterr().out
    assert "| model | updates |" in printed and "report:" in printed


def test_report_errors(tmp_path, capsys):
    assert report_main([str(tmp_path / "nope")]) == 1
    assert "run directory not found" in capsys.readouterr().err
    assert report_main([str(tmp_path)]) == 1
    assert "no metrics.jsonl" in capsys.readouterr().err


def test_report_reads_a_log_whose_last_record_was_cut_short(tmp_path, caplog):
    """A run stopped while writing a record leaves its last line cut short: left out with a warning
    (the rest is read); a bad line before the last is an error naming file and line."""
    from tupe.report import read_jsonl

    path = tmp_path / "metrics.jsonl"
    whole = '{"type": "train", "loss": 9.1, "num_updates": 10}\n{"type": "valid", "loss": 8.5, "num_updates": 10}\n'
    path.write_text(whole + '{"type": "tr')
    with caplog.at_level("WARNING", logger="tupe.report"):
        assert [r["num_updates"] for r in read_jsonl(path)] == [10, 10]
    assert f"{path}:3: a record cut short at the end of the file" in caplog.text
    path.write_text('{"type": "tr\n' + whole)
    with pytest.raises(ValueError, match=f"{path}:1: not JSON"):
        read_jsonl(path)


def test_demo_budget_scales_with_machine_speed():
    from tupe.demo import DEFAULT_TRAIN_ROWS, DEFAULT_UPDATES, REFERENCE_SECONDS_PER_UPDATE, scaled_budget

    assert scaled_budget(REFERENCE_SECONDS_PER_UPDATE) == (DEFAULT_UPDATES, None)
    assert scaled_budget(REFERENCE_SECONDS_PER_UPDATE / 3) == (DEFAULT_UPDATES, None)    # never grows
    assert scaled_budget(REFERENCE_SECONDS_PER_UPDATE * 1.2) == (DEFAULT_UPDATES, None)  # noise: no change
    updates, rows = scaled_budget(REFERENCE_SECONDS_PER_UPDATE * 2.5)                    # an AVX2-only CPU
    assert updates == int(DEFAULT_UPDATES / 2.5 * 0.8) and rows["train"] == int(DEFAULT_TRAIN_ROWS / 2.5 * 0.8)


def test_demo_never_replaces_a_folder_that_is_not_a_demo(tmp_path, capsys):
    """--out is replaced whole: a folder that is not an earlier demo's (no .tupe-demo marker, no
    study.json) is refused before anything is touched."""
    out = tmp_path / "research"
    out.mkdir()
    (out / "notes.txt").write_text("weeks of work\n")
    assert demo(["--quick", "--out", str(out)]) == 1
    assert "exists and is not a demo folder" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    # a study of the user's (its own task) is not a demo folder; one the demo made before the marker is
    from tupe.demo import is_demo_folder
    (out / "study.json").write_text(json.dumps({"plan": {"task": "data-bin/mine/topics-bin"}}))
    assert not is_demo_folder(out)
    (out / "study.json").write_text(json.dumps({"plan": {"task": str(out / "data" / "glue-bin" / "SST-2-bin")}}))
    assert is_demo_folder(out)


def test_sample_data_never_overwrites_other_files(tmp_path, capsys):
    """`tupe-demo --sample-data DIR` wrote corpus.txt, train.tsv, dev.tsv and test.txt over files
    of those names in DIR (a user's own data). A rerun (the same content) is fine; other content is
    refused, nothing written."""
    from tupe.demo import main

    out = tmp_path / "my_data"
    assert main(["--sample-data", str(out), "--sample-lines", "50"]) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == ["corpus.txt", "dev.tsv", "test.txt", "train.tsv"] and first["corpus.txt"].count(b"\n") == 50
    assert main(["--sample-data", str(out), "--sample-lines", "50"]) == 0           # a rerun
    (out / "train.tsv").write_text("my own\tdata\n")
    capsys.readouterr()
    assert main(["--sample-data", str(out), "--sample-lines", "60"]) == 1
    err = capsys.readouterr().err
    assert f"{out / 'corpus.txt'}, {out / 'train.tsv'} exist(s) with other content" in err
    assert (out / "train.tsv").read_text() == "my own\tdata\n" and (out / "corpus.txt").read_bytes() == first["corpus.txt"]
    assert sorted(p.name for p in out.iterdir()) == sorted(first)                  # no staging folder left
