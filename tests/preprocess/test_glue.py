"""tupe-preprocess glue on small TSVs in the official column layout."""

import json
import shutil

import pytest

from tests.preprocess.corpus import make_corpus
from tests.preprocess.glue_data import SENTS, make_glue, s, write
from tupe.data.bpe import BPE, read_codes
from tupe.data.dictionary import Dictionary
from tupe.data.indexed_dataset import MMapIndexedDataset
from tupe.preprocess.cli import main
from tupe.preprocess.glue import TASKS
from tupe.preprocess.text import glue_clean

N = 6


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pre")
    corpus = make_corpus(root / "c.txt")
    with open(corpus, "a") as f:   # make sure the GLUE sentences' words are known
        f.write(" ".join(SENTS * 3) + "\n")
    assert main(["pretrain", "--input", str(corpus), "--destdir", str(root / "bin"), "--bpe-merges", "400",
                 "--valid-every", "10", "--keep-vocab-fraction", "1", "--no-progress"]) == 0
    return root / "bin"


@pytest.fixture(scope="module")
def glue_out(tmp_path_factory, bpe_dir):
    root = tmp_path_factory.mktemp("glue")
    make_glue(root / "raw", N)
    assert main(["glue", "--glue-dir", str(root / "raw"), "--tasks", "ALL", "--bpe-dir", str(bpe_dir),
                 "--destdir", str(root / "out"), "--no-progress", "--workers", "2"]) == 0
    return root


def read_split(prefix):
    return [t.tolist() for t in MMapIndexedDataset(prefix)]


def test_every_task_layout(glue_out):
    out = glue_out / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}-bin" for t in TASKS)
    for name, task in TASKS.items():
        d = out / f"{name}-bin"
        inputs = sorted(p.name for p in d.iterdir() if p.name.startswith("input"))
        assert inputs == [f"input{k}" for k in range(len(task.inputs))], name
        splits = list(task.files)
        for inp in inputs:
            for split in splits:
                assert len(MMapIndexedDataset(d / inp / split)) == N, (name, inp, split)
            assert (d / inp / "dict.txt").is_file()
        label_files = sorted(p.name for p in (d / "label").iterdir())
        valid_splits = [x for x in splits if not x.startswith("test")]
        if task.labels is None:
            assert label_files == sorted(f"{x}.label" for x in valid_splits)
        else:
            assert label_files == sorted(["dict.txt"] + [f"{x}.{e}" for x in valid_splits for e in ("bin", "idx")])
        info = json.loads((d / "glue.json").read_text())
        assert info["num_classes"] == task.num_classes and info["cased"] is False       # read by training runs


def test_cola_has_no_header_and_rows_map_one_to_one(glue_out, bpe_dir):
    d = Dictionary.load(bpe_dir / "dict.txt")
    bpe = BPE(read_codes(bpe_dir / "bpe-code"))
    rows = read_split(glue_out / "out" / "CoLA-bin" / "input0" / "train")
    assert len(rows) == N                                          # first line is data, not a header
    for i, ids in enumerate(rows):
        assert d.string(ids) == bpe.apply_line(glue_clean(s(i)))
    assert d.string(rows[3]).replace("@@ ", "") == "visit <url> for more ."


def test_mnli_splits_and_labels(glue_out):
    d = glue_out / "out" / "MNLI-bin"
    labels = Dictionary.load(d / "label" / "dict.txt")
    assert labels.symbols[7:10] == ["contradiction", "entailment", "neutral"]   # count ties: alphabetical
    words = ("entailment", "neutral", "contradiction")
    train = [labels[ids[0]] for ids in read_split(d / "label" / "train")]
    assert train == [words[i % 3] for i in range(N)]                # column 12
    dev = [labels[ids[0]] for ids in read_split(d / "label" / "valid1")]
    assert dev == [words[(i + 1) % 3] for i in range(N)]            # gold_label, column 16
    info = json.loads((d / "glue.json").read_text())
    assert info["label_words"] == ["contradiction", "entailment", "neutral"]
    assert info["splits"]["valid1"]["file"].endswith("dev_mismatched.tsv")
    assert info["splits"]["test1"]["file"].endswith("test_mismatched.tsv")


def test_qqp_malformed_rows_are_skipped_and_counted(glue_out):
    info = json.loads((glue_out / "out" / "QQP-bin" / "glue.json").read_text())
    assert info["splits"]["train"]["skipped_malformed"] == 1
    assert info["splits"]["valid"]["skipped_malformed"] == 1
    assert info["splits"]["train"]["rows"] == N


def test_stsb_scores_divided_by_five(glue_out):
    values = (glue_out / "out" / "STS-B-bin" / "label" / "train.label").read_text().split()
    assert [float(v) for v in values] == [(i % 6) / 5 for i in range(N)]


def test_mrpc_test_columns(glue_out, bpe_dir):
    d = Dictionary.load(bpe_dir / "dict.txt")
    rows = read_split(glue_out / "out" / "MRPC-bin" / "input1" / "test")
    assert d.string(rows[0], bpe_symbol="@@ ") == glue_clean(s(2))   # test: columns 4, 5; second input = s(i + 2)


@pytest.mark.parametrize("task,edit,message", [
    ("RTE", lambda root: (root / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n1\ta\tb\tmaybe\n"),
     "RTE/train.tsv:2: label 'maybe' is not one of entailment, not_entailment"),
    ("SST-2", lambda root: (root / "SST-2" / "dev.tsv").write_text("sentence\tlabel\nfine\t1\nbroken row\n"),
     "SST-2/dev.tsv:3: expected 2 tab-separated fields, found 1"),
    ("STS-B", lambda root: write(root / "STS-B" / "train.tsv", [tuple("abcdefghij"), (1, 2, 3, 4, 5, 6, 7, "x", "y", "high")]),
     "STS-B/train.tsv:2: STS-B score 'high' is not a number"),
    ("WNLI", lambda root: shutil.rmtree(root / "WNLI"), "WNLI: GLUE task folder not found"),
    ("MNLI", lambda root: (root / "MNLI" / "dev_mismatched.tsv").unlink(), "dev_mismatched.tsv: GLUE file not found"),
    ("CoLA", lambda root: (root / "CoLA" / "train.tsv").write_text(""), "CoLA/train.tsv: no data rows"),
    ("Nope", lambda root: None, "unknown GLUE task 'Nope'"),
])
def test_bad_inputs_name_file_and_line(tmp_path, bpe_dir, capsys, task, edit, message):
    make_glue(tmp_path / "raw", 3)
    edit(tmp_path / "raw")
    assert main(["glue", "--glue-dir", str(tmp_path / "raw"), "--tasks", task, "--bpe-dir", str(bpe_dir),
                 "--destdir", str(tmp_path / "out"), "--no-progress"]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / f"{task}-bin").exists()


def test_missing_bpe_dir_files(tmp_path, capsys):
    make_glue(tmp_path / "raw", 2)
    assert main(["glue", "--glue-dir", str(tmp_path / "raw"), "--bpe-dir", str(tmp_path),
                 "--destdir", str(tmp_path / "out"), "--no-progress"]) == 1
    assert "bpe-code: not found" in capsys.readouterr().err
