"""Hostile and malformed text through tupe-preprocess (pretrain, every GLUE task, your own task)
and tupe-predict: byte-order marks, CRLF, NUL bytes, invalid UTF-8, 10 MB lines, empty files,
missing or extra columns, unknown labels, header-only files. Each is repaired and counted, a
counted skip, or an error with file and line: never a traceback, a hang or rows silently lost."""

import shutil
from pathlib import Path

import pytest

import tupe
from tests.preprocess.glue_data import make_glue
from tupe.checkpoint import load_vocabulary
from tupe.cli import predict
from tupe.data.indexed_dataset import MMapIndexedDataset
from tupe.preprocess.cli import main as preprocess
from tupe.preprocess.glue import TASKS

TEXT = b"".join(b"The quick brown fox number %d jumps over the lazy dog and runs far into the woods.\n" % i
                for i in range(40))
TEN_MB_WORD = b"x" * 10_000_000
TEN_MB_OF_WORDS = b" ".join([b"word"] * 2_000_000)


def outputs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.suffix in (".bin", ".idx", ".label")}


def run_cli(argv, capsys):
    capsys.readouterr()
    rc = preprocess(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, err


# --------------------------------------------------------------------------- pretraining corpus
def pretrain(tmp_path, name, content, data_dir, capsys):
    path = tmp_path / name / "c.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    rc, err = run_cli(["pretrain", "--input", str(path), "--destdir", str(tmp_path / name / "bin"), "--bpe-code",
                       str(data_dir / "bpe-code"), "--dict", str(data_dir / "dict.txt"), "--no-progress",
                       "--valid-every", "2"], capsys)
    return rc, err, tmp_path / name / "bin"


def test_pretrain_bom_and_crlf_change_nothing(tmp_path, data_dir, capsys):
    rc, _, clean = pretrain(tmp_path, "clean", TEXT, data_dir, capsys)
    assert rc == 0
    for name, content in (("bom", b"\xef\xbb\xbf" + TEXT), ("crlf", TEXT.replace(b"\n", b"\r\n"))):
        rc, err, out = pretrain(tmp_path, name, content, data_dir, capsys)
        assert rc == 0 and outputs(out) == outputs(clean), name


@pytest.mark.parametrize("name,content,words", [
    ("nul", TEXT.replace(b"fox", b"f\x00ox"), "40 invalid UTF-8 or NUL bytes dropped"),
    ("badutf8", TEXT.replace(b"fox", b"f\xffox", 3), "3 invalid UTF-8 or NUL bytes dropped"),
    ("10mb-word", TEXT + TEN_MB_WORD + b"\n", "41 lines read, 40 paragraphs kept"),
    ("10mb-line", TEXT + TEN_MB_OF_WORDS + b"\n", "41 lines read, 40 paragraphs kept"),
])
def test_pretrain_damaged_text_is_repaired_or_skipped_and_counted(tmp_path, data_dir, capsys, name, content, words):
    rc, err, out = pretrain(tmp_path, name, content, data_dir, capsys)
    assert rc == 0 and words in err, err
    assert len(MMapIndexedDataset(out / "train")) > 0


@pytest.mark.parametrize("content", [b"", b"\n\n\n", b"\xef\xbb\xbf"], ids=["empty", "blank-lines", "bom-only"])
def test_pretrain_empty_corpus_is_an_error(tmp_path, data_dir, capsys, content):
    rc, err, out = pretrain(tmp_path, "e", content, data_dir, capsys)
    assert rc == 1 and "c.txt: empty corpus" in err and not out.exists()


# --------------------------------------------------------------------------- GLUE
def glue(tmp_path, root, data_dir, capsys, tasks="ALL", dest="out"):
    return run_cli(["glue", "--glue-dir", str(root), "--tasks", tasks, "--bpe-dir", str(data_dir),
                    "--destdir", str(tmp_path / dest), "--no-progress", "--force"], capsys)


def test_every_glue_task_reads_bom_and_crlf_files_unchanged(tmp_path, data_dir, capsys):
    make_glue(tmp_path / "clean")
    shutil.copytree(tmp_path / "clean", tmp_path / "dos")
    for path in (tmp_path / "dos").rglob("*.tsv"):
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    assert glue(tmp_path, tmp_path / "clean", data_dir, capsys, dest="a")[0] == 0
    rc, err = glue(tmp_path, tmp_path / "dos", data_dir, capsys, dest="b")
    assert rc == 0, err
    a, b = outputs(tmp_path / "a"), outputs(tmp_path / "b")
    assert len(a) > 60 and a == b                                     # all nine tasks, byte for byte


@pytest.mark.parametrize("task", list(TASKS))
def test_every_glue_task_with_an_empty_train_file(tmp_path, data_dir, capsys, task):
    make_glue(tmp_path / "g")
    (tmp_path / "g" / task / "train.tsv").write_bytes(b"")
    rc, err = glue(tmp_path, tmp_path / "g", data_dir, capsys, tasks=task)
    assert rc == 1 and f"{tmp_path / 'g' / task / 'train.tsv'}: no data rows" in err
    assert not (tmp_path / "out" / f"{task}-bin").exists()            # no partial output


GOOD = b"sentence\tlabel\n" + b"".join(b"the cat sat on the mat number %d\t%d\n" % (i, i % 2) for i in range(6))


@pytest.mark.parametrize("split,content,outcome,rc", [
    ("train.tsv", GOOD.replace(b"cat", b"c\x00at", 1), "train: 1 NUL bytes removed", 0),
    ("train.tsv", GOOD.replace(b"cat", b"c\xff\xfeat", 1), "train: 2 invalid UTF-8 bytes dropped", 0),
    ("train.tsv", GOOD + TEN_MB_WORD + b"\t1\n", "train 7", 0),                   # the row is kept
    pytest.param("train.tsv", GOOD + TEN_MB_OF_WORDS + b"\t0\n", "train 7", 0,
                 marks=pytest.mark.slow),   # ~13 s; the 10 MB word case above runs by default
    ("train.tsv", b"sentence\tlabel\n", "train.tsv: no data rows", 1),             # header only
    ("train.tsv", GOOD + b"a sentence without its label\n", "train.tsv:8: expected 2 tab-separated fields, found 1", 1),
    ("train.tsv", GOOD + b"a stray\ttab\t1\n", "train.tsv:8: expected 2 tab-separated fields, found 3", 1),
    ("dev.tsv", GOOD + b"an unknown label\t7\n", "dev.tsv:8: label '7' is not one of 0, 1 for SST-2", 1),
    ("test.tsv", b"index\tsentence\n0\tok\n1\n", "test.tsv:3: expected 2 tab-separated fields, found 1", 1),
], ids=["nul", "bad-utf8", "10mb-word", "10mb-line", "header-only", "missing-column", "extra-column",
        "unknown-label", "test-missing-column"])
def test_glue_rows(tmp_path, data_dir, capsys, split, content, outcome, rc):
    make_glue(tmp_path / "g")
    (tmp_path / "g" / "SST-2" / split).write_bytes(content)
    got, err = glue(tmp_path, tmp_path / "g", data_dir, capsys, tasks="SST-2")
    assert got == rc and outcome in err, err
    if "train 7" in outcome:
        assert "words of >= 1000 characters replaced by <unk>" in err or b"word word" in content
        assert len(MMapIndexedDataset(tmp_path / "out" / "SST-2-bin" / "input0" / "train")) == 7


def test_glue_malformed_rows_are_a_counted_skip_where_the_original_skips(tmp_path, data_dir, capsys):
    make_glue(tmp_path / "g")                                          # QQP's train/dev hold one 3-field row
    rc, err = glue(tmp_path, tmp_path / "g", data_dir, capsys, tasks="QQP")
    assert rc == 0 and "QQP: train 6, valid 6, test 6 (2 malformed rows skipped)" in err


# --------------------------------------------------------------------------- your own task
def own_task(tmp_path, data_dir, capsys, train: bytes, suffix=".csv", header=True):
    for split in ("train", "valid"):
        (tmp_path / f"{split}{suffix}").write_bytes(train)
    argv = ["task", "--train", str(tmp_path / f"train{suffix}"), "--valid", str(tmp_path / f"valid{suffix}"),
            "--text-columns", "text", "--label-column", "label", "--bpe-dir", str(data_dir),
            "--destdir", str(tmp_path / "t-bin"), "--no-progress", "--force"] + (["--header"] if header else [])
    return run_cli(argv, capsys)


CSV = b"text,label\n" + b"".join(b'"the cat, number %d",%s\n' % (i, [b"pos", b"neg"][i % 2]) for i in range(6))


def test_own_task_csv_with_bom_crlf_and_bad_bytes(tmp_path, data_dir, capsys):
    bad = b"\xef\xbb\xbf" + CSV.replace(b"\n", b"\r\n").replace(b"cat", b"c\xffat", 1)
    rc, err = own_task(tmp_path, data_dir, capsys, bad)
    assert rc == 0, err                                                # the BOM does not hide the 'text' column
    assert "rows: train 6, valid 6" in err and "train: 1 invalid UTF-8 bytes dropped" in err


@pytest.mark.parametrize("content,message", [
    (b"", "train.csv: no data rows"),
    (b"text,label\n", "train.csv: no data rows (only a header line)"),
    (CSV + b'"an unclosed quote,pos\n', "train.csv"),
    (CSV + b"too,many,fields\n", "train.csv:8: expected 2 fields (as the first line), found 3"),
    (b"words,label\nx,1\n", "train.csv: no column 'text'"),
], ids=["empty", "header-only", "unclosed-quote", "extra-field", "missing-column"])
def test_own_task_bad_files(tmp_path, data_dir, capsys, content, message):
    rc, err = own_task(tmp_path, data_dir, capsys, content)
    assert rc == 1 and message in err, err


# --------------------------------------------------------------------------- tupe-predict
@pytest.fixture(scope="module")
def classifier(pretrained, tmp_path_factory):
    model = tupe.load_model(pretrained)
    model.register_classification_head("sentence_classification_head", 2)
    out = tmp_path_factory.mktemp("clf") / "model"
    tupe.save_pretrained(model, out, vocabulary=load_vocabulary(pretrained, model.cfg.vocab_size))
    return out


def predict_bytes(classifier, tmp_path, content: bytes, capsys):
    path = tmp_path / "in.tsv"
    path.write_bytes(content)
    capsys.readouterr()
    rc = predict.main(["--checkpoint", str(classifier), "--cpu", "--input", str(path)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out.splitlines(), err


def test_predict_repairs_and_counts(classifier, tmp_path, capsys):
    content = (b"\xef\xbb\xbfthe river\r\n\r\nthe c\xffity\tand a pair\r\nnul\x00here\n" + TEN_MB_WORD + b"\n\n")
    rc, lines, err = predict_bytes(classifier, tmp_path, content, capsys)
    assert rc == 0 and len(lines) == 4, err                            # 4 non-blank lines, 4 predictions
    assert "skipped 2 blank line(s) (2, 6)" in err
    assert "1 invalid UTF-8 bytes dropped, 1 NUL bytes removed, 1 words of >= 1000 characters" in err
    clean = predict_bytes(classifier, tmp_path, b"the river\n", capsys)[1]
    assert lines[0] == clean[0]                                        # BOM and CRLF change nothing


def test_predict_reports_rows_cut_to_the_model_length(classifier, tmp_path, capsys, caplog):
    """A row longer than max_positions is cut to it (as finetuning's --truncate-sequence cuts),
    counted and reported with its line numbers, not cut silently; its prediction is the cut row's."""
    hub = tupe.from_pretrained(classifier)
    limit = hub.model.cfg.max_positions
    long_text = " ".join(["the river city"] * limit)
    assert hub.encode_row(long_text)[1] and len(hub.encode_row(long_text)[0]) == limit     # longer: cut
    rc, lines, err = predict_bytes(classifier, tmp_path, f"the river\n{long_text}\ncity\t{long_text}\n".encode(),
                                   capsys)
    assert rc == 0 and len(lines) == 3, err
    assert f"2 line(s) longer than the model's {limit} positions, cut to them as finetuning's " \
           f"--truncate-sequence cuts (2, 3)" in err
    want = hub.labels_of("sentence_classification_head", hub.predict_rows(
        "sentence_classification_head", [hub.encode(long_text)[:limit], hub.encode("city", long_text)[:limit]]))
    assert lines[1:] == [f"{label}\t{p:.4f}" for label, p in want]
    assert "longer than" not in predict_bytes(classifier, tmp_path, b"the river\n", capsys)[2]
    with caplog.at_level("WARNING", logger="tupe.hub"):
        hub.predict_batch("sentence_classification_head", ["the river", long_text])
    assert "1 of 2 rows longer than the model's" in caplog.text and "rows 1" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="tupe.hub"):                  # one row (and a pair): the same word
        hub.predict("sentence_classification_head", "city", long_text)
    assert f"the text is longer than the model's {limit} positions: cut to them" in caplog.text
    # one string where a list is expected: each character was a row (15 predictions for 15 characters)
    for texts, pairs, name in (("the river city", None, "texts"), (["the river"], "city", "pairs")):
        with pytest.raises(tupe.hub.HubError, match=f"predict_batch: {name} is one string; pass a list of strings"):
            hub.predict_batch("sentence_classification_head", texts, pairs)


@pytest.mark.parametrize("content,message", [
    (b"", "no sentences to predict"),
    (b"\n\r\n", "no sentences to predict"),
    (b"one\ntwo\tthree\tfour\n", "in.tsv:2: expected a sentence or a tab-separated pair, got 3 fields"),
], ids=["empty", "blank-only", "three-fields"])
def test_predict_bad_input(classifier, tmp_path, capsys, content, message):
    rc, _, err = predict_bytes(classifier, tmp_path, content, capsys)
    assert rc == 1 and message in err, err


@pytest.mark.parametrize("inputs,content,message", [
    (1, b"one\ntwo\nthree\tfour\n", "in.tsv:3: a sentence pair (two tab-separated fields), but head "
                                     "'sentence_classification_head' was finetuned on single sentences"),
    (2, b"one\ttwo\nthree\n", "in.tsv:2: one sentence, but head 'sentence_classification_head' was finetuned "
                               "on sentence pairs"),
    (2, b"one\ttwo\nthree\t \n", "in.tsv:2: a sentence pair with an empty second sentence"),
    (2, b"\tfour\n", "in.tsv:1: a sentence pair with an empty first sentence"),
], ids=["pair-for-single", "single-for-pair", "empty-second", "empty-first"])
def test_predict_refuses_the_wrong_number_of_inputs(classifier, tmp_path, capsys, inputs, content, message):
    """The run's labels.json says how many inputs its head was finetuned on; other rows are refused
    with file:line, nothing half-written is reported as success."""
    import json
    import shutil

    model = tmp_path / "model"
    shutil.copytree(classifier, model)
    (model / "labels.json").write_text(json.dumps({"inputs": {"sentence_classification_head": inputs}}))
    rc, _, err = predict_bytes(model, tmp_path, content, capsys)
    assert rc == 1 and message in err, err
    ok = b"one\n" if inputs == 1 else b"one\ttwo\n"
    assert predict_bytes(model, tmp_path, ok, capsys)[0] == 0


def test_batched_prediction_equals_one_forward_per_line(classifier, tmp_path, capsys, monkeypatch):
    """Length-sorted batches give the per-line results (probabilities within 1e-5) in input order,
    with pairs, blank lines and repaired lines among the rows, across several chunks."""
    import random

    import torch

    monkeypatch.setattr(predict, "FIRST_CHUNK_LINES", 40)   # chunks of 40, 100, 100 and the rest
    monkeypatch.setattr(predict, "CHUNK_LINES", 100)
    hub = tupe.from_pretrained(classifier)
    rng = random.Random(0)
    words = "the river city of water land people time world was were a an".split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 40))) for _ in range(306)]
    pairs = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 9))) for _ in texts]
    head = "sentence_classification_head"
    one = torch.cat([hub.predict(head, t, p) for t, p in zip(texts, pairs)])
    batched = hub.predict_batch(head, texts, pairs, batch_size=32)
    assert batched.shape == one.shape
    torch.testing.assert_close(batched, one, atol=1e-5, rtol=0)
    by_tokens = hub.predict_batch(head, texts, pairs, batch_size=None, max_tokens=256)
    torch.testing.assert_close(by_tokens, one, atol=1e-5, rtol=0)
    # the command: the same lines per line and batched (blank lines and a repaired one among them)
    lines = [f"{t}\t{p}" if i % 3 == 0 else t for i, (t, p) in enumerate(zip(texts, pairs))]
    lines[5] = ""
    lines[9] = lines[9] + "\x00"
    content = ("\n".join(lines) + "\n").encode()
    outs, chunks = [], []
    real = tupe.hub.TupeHub.predict_rows
    monkeypatch.setattr(tupe.hub.TupeHub, "predict_rows",
                        lambda self, head, rows, bs=32, mt=None: chunks.append(len(rows)) or real(self, head, rows, bs, mt))
    for batching in (["--batch-size", "1"], ["--batch-size", "32"], ["--max-tokens", "256"]):
        path = tmp_path / "in.tsv"
        path.write_bytes(content)
        capsys.readouterr()
        assert predict.main(["--checkpoint", str(classifier), "--cpu", "--input", str(path), *batching]) == 0
        out, err = capsys.readouterr()
        assert "skipped 1 blank line(s) (6)" in err and "1 NUL bytes removed" in err
        outs.append([line.split("\t") for line in out.splitlines()])
    assert len(outs[0]) == len(lines) - 1
    assert chunks == [40, 100, 100, 65] * 3                    # 305 non-blank lines, each way
    for other in outs[1:]:
        assert [label for label, _ in outs[0]] == [label for label, _ in other]
        assert max(abs(float(a) - float(b)) for (_, a), (_, b) in zip(outs[0], other)) <= 1e-4
