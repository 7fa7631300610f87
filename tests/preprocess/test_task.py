"""tupe-preprocess task: your own TSV/CSV classification, regression and pair tasks."""

import csv
import json
import random

import pytest

from tests.finetune.fixtures import FILLER
from tupe.data.bpe import BPE
from tupe.data.dictionary import Dictionary
from tupe.data.indexed_dataset import MMapIndexedDataset
from tupe.preprocess.cli import main as preprocess
from tupe.preprocess.text import glue_clean

TOPICS = ["animals", "sports", "music", "food", "travel", "science", "history", "weather"]
WORDS = {t: w for t, w in zip(TOPICS, ["river", "city", "water", "land", "world", "time", "people", "war"])}


def topic_rows(rng, n):
    """An 8-class topic task: the topic's marker word among filler words, unbalanced classes."""
    rows = []
    for _ in range(n):
        topic = rng.choices(TOPICS, weights=range(8, 0, -1))[0]
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 7))]
        words.insert(rng.randint(0, len(words)), WORDS[topic])
        rows.append((" ".join(words), topic))
    return rows


def write_tsv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in ([header] if header else []) + rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def topic_files(tmp_path_factory):
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("topics")
    train = topic_rows(rng, 400)
    valid = topic_rows(rng, 120)
    test = [(i, t) for i, (t, _) in enumerate(topic_rows(rng, 30))]
    return (write_tsv(root / "train.tsv", ("text", "topic"), train), write_tsv(root / "dev.tsv", ("text", "topic"), valid),
            write_tsv(root / "test.tsv", ("id", "text"), test), train, valid)


@pytest.fixture(scope="module")
def topics_bin(topic_files, data_dir, tmp_path_factory):
    train, valid, test, *_ = topic_files
    out = tmp_path_factory.mktemp("topics_bin") / "topics-bin"
    assert preprocess(["task", "--train", str(train), "--valid", str(valid), "--test", str(test), "--header",
                       "--text-columns", "text", "--label-column", "topic", "--bpe-dir", str(data_dir),
                       "--destdir", str(out), "--no-progress"]) == 0
    return out


def test_eight_class_topic_task(topics_bin, topic_files, data_dir):
    _, _, _, train, valid = topic_files
    info = json.loads((topics_bin / "task.json").read_text())
    assert info["num_classes"] == 8 and not info["regression"] and info["inputs"] == 1 and info["cased"] is False
    counts = {t: sum(1 for _, y in train if y == t) for t in TOPICS}
    assert info["label_words"] == sorted(TOPICS, key=lambda t: (-counts[t], t))     # most frequent first
    assert {k: v["rows"] for k, v in info["splits"].items()} == {"train": 400, "valid": 120, "test": 30}
    assert not (topics_bin / "input1").exists() and (topics_bin / "label" / "dict.txt").is_file()
    # texts: the GLUE pipeline's ids; labels: label dictionary ids, in row order
    bpe, d = BPE.from_file(data_dir / "bpe-code"), Dictionary.load(data_dir / "dict.txt")
    rows = [t.tolist() for t in MMapIndexedDataset(topics_bin / "input0" / "valid")]
    want = [d.encode_line(bpe.apply_line(glue_clean(text))).tolist() for text, _ in valid]
    assert rows == want
    label_dict = Dictionary.load(topics_bin / "label" / "dict.txt")
    labels = [label_dict[t.tolist()[0]] for t in MMapIndexedDataset(topics_bin / "label" / "valid")]
    assert labels == [y for _, y in valid]
    assert not (topics_bin / "label" / "test.bin").exists()                            # unlabeled test


def test_csv_pairs_by_number_and_regression(data_dir, tmp_path):
    rows = [["a, quoted \"text\"", "second one", "2.5"], ["plain", "", "10"], ["x", "y", "0"]]
    with open(tmp_path / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    out = tmp_path / "sim-bin"
    assert preprocess(["task", "--train", str(tmp_path / "train.csv"), "--valid", str(tmp_path / "train.csv"),
                       "--text-columns", "1", "2", "--label-column", "3", "--regression", "0", "10",
                       "--bpe-dir", str(data_dir), "--destdir", str(out), "--no-progress"]) == 0
    info = json.loads((out / "task.json").read_text())
    assert info["regression"] and info["num_classes"] == 1 and info["score_range"] == [0.0, 10.0]
    assert [float(x) for x in (out / "label" / "train.label").read_text().split()] == [0.25, 1.0, 0.0]
    assert len(MMapIndexedDataset(out / "input1" / "train")) == 3
    first = MMapIndexedDataset(out / "input0" / "train")[0].tolist()
    d, bpe = Dictionary.load(data_dir / "dict.txt"), BPE.from_file(data_dir / "bpe-code")
    assert first == d.encode_line(bpe.apply_line(glue_clean('a, quoted "text"'))).tolist()   # CSV quoting honoured


@pytest.mark.parametrize("case, message", [
    ("unknown_label", "dev.tsv:3: label 'weird' never occurs in the training file"),
    ("empty", "train.tsv: no data rows"),
    ("header_only", "train.tsv: no data rows (only a header line)"),
    ("missing_column", "no column 'txt' in the header (columns: text, topic)"),
    ("field_count", "train.tsv:4: expected 2 fields (as the first line), found 3"),
    ("names_without_header", "column 'text' is a name: add --header"),
    ("score_range", "train.tsv:2: score 7.0 is outside [0, 5]"),
    ("bad_score", "train.tsv:3: score 'high' is not a number"),
    ("same_text_column_twice", "train.tsv: --text-columns text 1 names column 1 twice"),
    ("label_as_text", "train.tsv: the label column 'topic' is also a text column (--text-columns topic)"),
])
def test_bad_input_names_file_and_line(case, message, data_dir, tmp_path, capsys):
    good = [("river water", "a"), ("city land", "b"), ("water city", "a")]
    train, valid = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    write_tsv(train, ("text", "topic"), good)
    write_tsv(valid, ("text", "topic"), good)
    args = ["--text-columns", "text", "--label-column", "topic", "--header"]
    if case == "unknown_label":
        write_tsv(valid, ("text", "topic"), [good[0], ("odd", "weird")])
    elif case == "empty":
        train.write_text("")
    elif case == "header_only":
        write_tsv(train, ("text", "topic"), [])
    elif case == "missing_column":
        args[1] = "txt"
    elif case == "field_count":
        write_tsv(train, ("text", "topic"), good[:2] + [("a", "b", "c")])
    elif case == "names_without_header":
        args = args[:-1]
    elif case == "same_text_column_twice":                  # each sentence paired with itself
        args[1:2] = ["text", "1"]
    elif case == "label_as_text":                            # the model would read its answer
        args[1] = "topic"
    elif case in ("score_range", "bad_score"):
        write_tsv(train, ("text", "score"), [("a", "7.0")] if case == "score_range" else [("a", "1"), ("b", "high")])
        args = ["--text-columns", "text", "--label-column", "score", "--header", "--regression", "0", "5"]
    out = tmp_path / "out-bin"
    assert preprocess(["task", "--train", str(train), "--valid", str(valid), *args, "--bpe-dir", str(data_dir),
                       "--destdir", str(out), "--no-progress"]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()                                            # nothing half-written


@pytest.mark.parametrize("kind", ["unique-label", "column-name", "regression"])
def test_header_row_without_header_flag_is_refused(kind, data_dir, tmp_path, capsys):
    """Numeric columns, no --header, a file with a header: the header row must not become a data
    row (and its label word a class); --header reads it as names, --no-header-check keeps it."""
    rng = random.Random(1)
    rows = [(i, text, topic) for i, (text, topic) in enumerate(topic_rows(rng, 40))]
    header = {"unique-label": ("id", "text", "subject"), "column-name": ("id", "text", "label"),
              "regression": ("id", "text", "similarity")}[kind]
    extra = []
    if kind == "regression":
        rows = [(i, text, f"{rng.uniform(0, 5):.2f}") for i, text, _ in rows]
        extra = ["--regression", "0", "5"]
    train = write_tsv(tmp_path / "train.tsv", header, rows)
    args = ["task", "--train", str(train), "--valid", str(train), "--text-columns", "2", "--label-column", "3",
            "--bpe-dir", str(data_dir), "--no-progress", *extra]
    assert preprocess(args + ["--destdir", str(tmp_path / "a-bin")]) == 1
    err = capsys.readouterr().err
    assert f"{train}:1: the first row looks like a header" in err and "add --header" in err, err
    assert not (tmp_path / "a-bin").exists()
    assert preprocess(args + ["--header", "--destdir", str(tmp_path / "b-bin")]) == 0
    info = json.loads((tmp_path / "b-bin" / "task.json").read_text())
    assert info["splits"]["train"]["rows"] == 40
    if kind != "regression":
        assert header[2] not in info["label_words"]
        # the override keeps the row as data: one more row, its label a class of its own
        assert preprocess(args + ["--no-header-check", "--destdir", str(tmp_path / "c-bin")]) == 0
        kept = json.loads((tmp_path / "c-bin" / "task.json").read_text())
        assert kept["splits"]["train"]["rows"] == 41 and header[2] in kept["label_words"]
