"""tupe-preprocess pretrain, end to end on a small generated corpus."""

import json
import shutil
import subprocess
import sys

import pytest

from tests.preprocess.corpus import make_corpus
from tupe.data.bpe import apply_line_reference, read_codes
from tupe.data.dictionary import Dictionary
from tupe.data.indexed_dataset import MMapIndexedDataset
from tupe.preprocess.cli import main

FAST = ["--bpe-merges", "300", "--valid-every", "10", "--no-progress"]
REUSE = FAST[2:]          # with --bpe-code, --bpe-merges does nothing (refused)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("run") / "bin"
    assert main(["pretrain", "--input", str(corpus), "--destdir", str(out), "--keep-text", *FAST]) == 0
    return out


def test_outputs_and_summary(prepared):
    names = {p.name for p in prepared.iterdir()}
    assert {"bpe-code", "dict.txt", "train.bin", "train.idx", "valid.bin", "valid.idx", "preprocess.json"} <= names
    summary = json.loads((prepared / "preprocess.json").read_text())
    st = summary["stats"]
    assert st["dropped_too_short"] > 0 and st["dropped_pipes"] > 0        # the junk lines
    assert st["paragraphs"] < st["lines_read"]                            # blank lines + joined wraps
    assert st["train_sentences"] > 0 and st["valid_sentences"] > 0
    assert 0 < summary["unk_rate"] < 0.5
    assert summary["options"]["bpe_merges"] == 300 and summary["options"]["filter"]["min_chars"] == 50
    assert set(summary["timings_s"]) == {"clean", "tokenize", "bpe_learn", "bpe_apply", "binarize"}
    d = Dictionary.load(prepared / "dict.txt")
    assert len(d) % 8 == 0 and len(d) == summary["dictionary_size"]


def test_binarized_tokens_decode_back_to_the_bpe_text(prepared):
    d = Dictionary.load(prepared / "dict.txt")
    for split in ("train", "valid"):
        ds = MMapIndexedDataset(prepared / split)
        lines = (prepared / f"{split}.bpe").read_text().splitlines()
        assert len(ds) == len(lines)
        for i, line in enumerate(lines):
            ids = ds[i]
            assert ids[-1].item() == d.eos()
            assert " ".join(d[j] for j in ids[:-1].tolist()) == line
        # documents are separated by empty lines -> items of size 1 (just </s>)
        assert (ds.sizes == 1).sum() == lines.count("") > 0


def test_bpe_text_is_the_tokenised_text_with_codes_applied(prepared):
    ranks = {(a, b): i for i, (a, b, _) in enumerate(read_codes(prepared / "bpe-code"))}
    tok = (prepared / "train.tok").read_text().splitlines()
    bpe = (prepared / "train.bpe").read_text().splitlines()
    assert [apply_line_reference(line, ranks) for line in tok] == bpe
    assert all(line == line.lower() for line in tok)                      # uncased by default
    assert any("<unk>" in line.split() for line in tok)                   # the 21% word cut
    assert all(len(line) >= 20 for line in tok if line)


def test_valid_gets_every_nth_paragraph(prepared):
    st = json.loads((prepared / "preprocess.json").read_text())["stats"]
    kept = st["paragraphs_kept"] - st.get("dropped_empty_document", 0)
    assert st["valid_documents"] == pytest.approx(kept / 10, abs=2)


def test_reuse_codes_and_dict_and_workers_give_identical_binaries(tmp_path, corpus, prepared):
    out = tmp_path / "again"
    args = ["pretrain", "--input", str(corpus), "--destdir", str(out), "--workers", "2",
            "--bpe-code", str(prepared / "bpe-code"), "--dict", str(prepared / "dict.txt"), *REUSE]
    assert main(args) == 0
    for name in ("train.bin", "train.idx", "valid.bin", "valid.idx", "dict.txt", "bpe-code"):
        assert (out / name).read_bytes() == (prepared / name).read_bytes(), name


def test_wikiextractor_input_and_invalid_utf8(tmp_path):
    src = make_corpus(tmp_path / "wiki.txt", wiki=True, seed=3)
    src.write_bytes(src.read_bytes().replace(b"river", b"riv\xff\xfeer"))
    out = tmp_path / "wiki"
    assert main(["pretrain", "--input", str(src), "--destdir", str(out), "--keep-text", *FAST]) == 0
    text = (out / "train.tok").read_text()
    assert "<doc" not in text and "</doc>" not in text
    st = json.loads((out / "preprocess.json").read_text())["stats"]
    assert st["invalid_utf8_bytes"] > 0 and st["invalid_utf8_bytes"] % 2 == 0


def test_bad_inputs(tmp_path, corpus, prepared, capsys):
    def fails(args, message):
        assert main(["pretrain", *args, "--destdir", str(tmp_path / "o"), *(REUSE if "--bpe-code" in args else FAST)]) == 1
        assert message in capsys.readouterr().err
        assert not (tmp_path / "o").exists()                               # nothing that looks complete
        assert not list(tmp_path.glob(".o.tmp-*"))

    fails(["--input", str(tmp_path / "missing.txt")], "missing.txt: input file not found")
    (tmp_path / "empty.txt").write_text("\n\nshort\n")
    fails(["--input", str(tmp_path / "empty.txt")], "empty corpus")
    (tmp_path / "bad-dict.txt").write_text("".join(f"zzqq{i} {100 - i}\n" for i in range(50)))
    fails(["--input", str(corpus), "--bpe-code", str(prepared / "bpe-code"), "--dict", str(tmp_path / "bad-dict.txt")],
          "does not match the BPE codes")
    (tmp_path / "codes").write_text("a b\n")
    fails(["--input", str(corpus), "--bpe-code", str(tmp_path / "codes")], "codes:1: expected 'left right count'")
    # an existing output directory is never overwritten by accident
    assert main(["pretrain", "--input", str(corpus), "--destdir", str(prepared), *FAST]) == 1
    assert "exists and is not empty" in capsys.readouterr().err


def test_module_entry_point(tmp_path, corpus):
    proc = subprocess.run([sys.executable, "-m", "tupe.preprocess", "pretrain", "--input", str(corpus),
                           "--destdir", str(tmp_path / "m"), *FAST], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "paragraphs kept" in proc.stderr and (tmp_path / "m" / "train.idx").is_file()


def test_chunk_edges_do_not_change_the_result(tmp_path, corpus, prepared):
    """Joining hard-wrapped lines across chunk edges: tiny chunks give the same paragraphs."""
    from tupe.preprocess.pretrain import PretrainOptions, run_pretrain

    opts = PretrainOptions(inputs=[corpus], destdir=tmp_path / "tiny", bpe_merges=300, valid_every=10,
                           show_progress=False, keep_text=True, chunk_lines=1, workers=2)
    run_pretrain(opts)
    assert (tmp_path / "tiny" / "paragraphs.txt").read_text() == (prepared / "paragraphs.txt").read_text()
    for name in ("train.bin", "train.idx", "valid.bin", "dict.txt"):
        assert (tmp_path / "tiny" / name).read_bytes() == (prepared / name).read_bytes(), name
    # the same as joining the whole corpus in one sequence
    from tupe.preprocess import pretrain as P
    from tupe.preprocess.text import LineFilter

    P._init_worker({"cased": False})
    lines = [P._normalize(line.encode())[0] if line.strip() else None for line in corpus.read_text().splitlines()]
    paragraphs = P._join_lines(lines)
    assert len(paragraphs) < sum(line is not None for line in lines)      # some lines were joined
    expected = list(dict.fromkeys(t for t, _ in (P._finish(p, LineFilter()) for p in paragraphs) if t))
    assert (prepared / "paragraphs.txt").read_text().splitlines() == expected


def _signal_dispositions(_):
    import signal
    return signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT"])
def test_a_signal_stops_it_cleanly(how, tmp_path, monkeypatch, capsys):
    """SIGTERM (a job scheduler's time limit) killed the process without cleanup, leaving its
    hidden temporary directory (the corpus's whole text) beside DESTDIR; Ctrl-C printed tracebacks
    from the process and every worker. Now either unwinds: the shell's exit code, one line, no
    output and no temporary directory; the workers leave signals to the main process."""
    import os
    import signal

    from tupe.preprocess import pretrain
    from tupe.preprocess.common import parallel_map

    corpus = make_corpus(tmp_path / "c.txt", paragraphs=50)
    real = pretrain.pass1

    def interrupted(*args, **kwargs):
        real(*args, **kwargs)                                 # the text is written to the temporary folder
        assert any(p.name.startswith(".out.tmp-") for p in tmp_path.iterdir())
        if how == "SIGTERM":
            # (without a handler of its own the default action would kill the test process)
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, before), "no SIGTERM handler"
            os.kill(os.getpid(), signal.SIGTERM)              # delivered to this (main) thread: raises here
        raise KeyboardInterrupt
    monkeypatch.setattr(pretrain, "pass1", interrupted)
    before = signal.getsignal(signal.SIGTERM)
    code = main(["pretrain", "--input", str(corpus), "--destdir", str(tmp_path / "out"), "--bpe-merges", "50",
                 "--valid-every", "10", "--no-progress"])
    assert code == 128 + signal.Signals[how]
    err = capsys.readouterr().err
    assert f"stopped by {how}: the output it was writing is not there" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]
    assert signal.getsignal(signal.SIGTERM) == before                   # the handler is put back
    assert set(parallel_map(_signal_dispositions, range(4), workers=2)) == {(signal.SIG_IGN, signal.SIG_DFL)}


def test_it_runs_from_another_thread(tmp_path):
    """Signal handlers can only be set in the main thread: run from another one (a library user's
    worker thread), tupe-preprocess leaves SIGTERM alone and works (it raised ValueError when
    its SIGTERM handling set one unconditionally)."""
    import threading

    corpus = make_corpus(tmp_path / "c.txt", paragraphs=50)
    codes = []
    worker = threading.Thread(target=lambda: codes.append(main(
        ["pretrain", "--input", str(corpus), "--destdir", str(tmp_path / "out"), "--bpe-merges", "50",
         "--valid-every", "10", "--no-progress"])))
    worker.start()
    worker.join()
    assert codes == [0] and (tmp_path / "out" / "train.bin").is_file()


def test_an_input_inside_the_output_directory_is_refused(tmp_path, corpus, prepared, capsys):
    """The output directory is replaced whole: with --force, an input inside it was deleted (the
    corpus, or a task's --bpe-dir: the whole pretraining folder). Refused, nothing touched."""
    from tupe.preprocess.cli import main as preprocess

    (tmp_path / "d").mkdir()
    inside = tmp_path / "d" / "corpus.txt"
    shutil.copyfile(corpus, inside)
    assert preprocess(["pretrain", "--input", str(inside), "--destdir", str(tmp_path / "d"), "--force", *FAST]) == 1
    assert f"{inside} is inside the output directory {tmp_path / 'd'}, which is replaced whole" in capsys.readouterr().err
    assert inside.read_bytes() == corpus.read_bytes() and [p.name for p in (tmp_path / "d").iterdir()] == ["corpus.txt"]
    copy = tmp_path / "bin"
    shutil.copytree(prepared, copy)
    before = sorted(p.name for p in copy.iterdir())
    (tmp_path / "t.tsv").write_text("a river\t1\nthe city\t0\n")
    assert preprocess(["task", "--train", str(tmp_path / "t.tsv"), "--valid", str(tmp_path / "t.tsv"), "--text-columns",
                       "1", "--label-column", "2", "--bpe-dir", str(copy), "--destdir", str(copy), "--force",
                       "--no-progress"]) == 1
    assert f"{copy / 'bpe-code'} is inside the output directory {copy}" in capsys.readouterr().err
    assert sorted(p.name for p in copy.iterdir()) == before
