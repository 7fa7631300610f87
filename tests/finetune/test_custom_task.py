"""Your own task end to end: tupe-preprocess task -> tupe-glue --tasks NAME -> tupe-predict."""

import io
import json
import random
from contextlib import redirect_stdout

import pytest

from tests.preprocess.test_task import TOPICS, topic_files, topic_rows, topics_bin  # noqa: F401 (fixtures)
from tupe.cli import glue as sweep
from tupe.cli.predict import main as predict


@pytest.mark.slow      # ~29 s: your own task through preprocess, finetune and predict runs in the README walkthrough test
def test_own_eight_class_task_through_the_glue_tools(topics_bin, pretrained, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "runs"
    assert sweep.main(["--checkpoint", str(pretrained), "--data-dir", str(topics_bin.parent), "--tasks", "topics",
                       "--lrs", "5e-3", "--seeds", "1", "--epochs", "6", "--out", str(out),
                       "--extra", "--cpu --arch bert_tiny"]) == 0
    results = json.loads((out / "results.json").read_text())["tasks"]["topics"]
    table = (out / "results.md").read_text().splitlines()           # a table of the task run, not GLUE's
    assert table[0] == "| model | topics (accuracy) |" and "MNLI" not in table[0], table[:3]
    assert table[2].startswith("| TUPE-R | ") and " - " not in table[2]
    assert results["metric"] == "accuracy"
    assert results["median"] >= 0.6, results          # 8 classes, majority ~0.22
    best = out / "topics" / "best"
    labels = json.loads((best / "labels.json").read_text())["sentence_classification_head"]
    assert sorted(labels) == sorted(TOPICS)
    # raw text in, label words out
    rows = topic_rows(random.Random(7), 60)
    src = tmp_path / "in.txt"
    src.write_text("".join(f"{text}\n" for text, _ in rows))
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert predict(["--checkpoint", str(best), "--input", str(src), "--cpu"]) == 0
    predicted = [line.split("\t")[0] for line in buf.getvalue().splitlines()]
    assert len(predicted) == 60 and set(predicted) <= set(TOPICS)
    # the run recorded that its head takes one sentence: a pair row is refused with file:line
    assert json.loads((best / "labels.json").read_text())["inputs"] == {"sentence_classification_head": 1}
    src2 = tmp_path / "pairs.txt"
    src2.write_text("a sentence\nfirst\tsecond\n")
    capsys.readouterr()
    with redirect_stdout(io.StringIO()):
        assert predict(["--checkpoint", str(best), "--input", str(src2), "--cpu"]) == 1
    assert f"{src2}:2: a sentence pair" in capsys.readouterr().err
    hits = sum(p == t for p, (_, t) in zip(predicted, rows))
    assert hits / 60 >= results["median"] - 0.2, (hits, results["median"])   # as on the validation split
    # the test split's predictions, as label words
    assert predict(["--checkpoint", str(best), "--glue-task", "topics", "--data", str(topics_bin),
                    "--out", str(tmp_path / "sub"), "--cpu"]) == 0
    lines = (tmp_path / "sub" / "topics.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 31
    assert all(line.split("\t")[1] in TOPICS for line in lines[1:])
