"""Data faults: each is a clear error naming the file, before any training step."""

import shutil
import struct

import numpy as np
import pytest

from tests.conftest import swapped_dictionary_copy
from tests.train.conftest import tiny_args
from tupe.data.indexed_dataset import IndexedDatasetBuilder
from tupe.train.trainer import main


@pytest.fixture
def copy(data_dir, tmp_path):
    dest = tmp_path / "bin"
    shutil.copytree(data_dir, dest)
    return dest


def run(data, tmp_path, capsys, *extra):
    capsys.readouterr()
    rc = main(tiny_args(data, tmp_path / "ck", "--max-update", "3", *extra))
    out, err = capsys.readouterr()
    return rc, out, err


def assert_refused(rc, out, err, *words):
    assert rc == 1, err
    assert "num_updates" not in out                                    # before any training step
    assert "Traceback" not in err and err.startswith("train.py: error:")
    for w in words:
        assert w in err, (w, err)


def test_bin_and_idx_of_different_lengths(copy, tmp_path, capsys):
    data = (copy / "train.bin").read_bytes()
    (copy / "train.bin").write_bytes(data[:-2])
    assert_refused(*run(copy, tmp_path, capsys), f"{copy / 'train.bin'}", "index says")


def test_idx_with_a_wrong_header(copy, tmp_path, capsys):
    idx = bytearray((copy / "train.idx").read_bytes())
    idx[:9] = b"NOTANIDX\x00"
    (copy / "train.idx").write_bytes(bytes(idx))
    assert_refused(*run(copy, tmp_path, capsys), f"{copy / 'train.idx'}", "bad magic")


def test_idx_with_a_wrong_version(copy, tmp_path, capsys):
    idx = bytearray((copy / "train.idx").read_bytes())
    idx[9:17] = struct.pack("<Q", 7)
    (copy / "train.idx").write_bytes(bytes(idx))
    assert_refused(*run(copy, tmp_path, capsys), f"{copy / 'train.idx'}", "unsupported index version 7")


def test_truncated_idx(copy, tmp_path, capsys):
    idx = (copy / "valid.idx").read_bytes()
    (copy / "valid.idx").write_bytes(idx[:40])
    assert_refused(*run(copy, tmp_path, capsys), f"{copy / 'valid.idx'}", "truncated")


def test_token_ids_beyond_the_dictionary(copy, tmp_path, capsys):
    ids = np.fromfile(copy / "valid.bin", dtype=np.uint16)
    ids[5] = 60000
    ids.tofile(copy / "valid.bin")
    assert_refused(*run(copy, tmp_path, capsys), f"{copy / 'valid'}.bin", "token id 60000 is outside the dictionary")


def test_empty_split(copy, tmp_path, capsys):
    with IndexedDatasetBuilder(copy / "valid"):
        pass
    assert_refused(*run(copy, tmp_path, capsys), f"{copy / 'valid'}: empty split")


def test_missing_validation_split_is_found_before_training(copy, tmp_path, capsys):
    (copy / "valid.bin").unlink()
    assert_refused(*run(copy, tmp_path, capsys), f"{copy / 'valid'}.bin/.idx not found")


@pytest.mark.parametrize("line,words", [
    ("the 12\nthe 7\n", ":2: duplicate word 'the'"),
    ("the 12\nnocount\n", ":2: expected '<token> <count>'"),
    ("the 12\nword twelve\n", ":2: count 'twelve' is not an integer"),
    ("the 12\n\n", ":2: empty line in dictionary"),
], ids=["duplicate", "no-count", "bad-count", "empty-line"])
def test_malformed_dictionary(copy, tmp_path, capsys, line, words):
    (copy / "dict.txt").write_text(line, encoding="utf-8")
    assert_refused(*run(copy, tmp_path, capsys), f"{copy / 'dict.txt'}{words}")


def test_dictionary_with_invalid_utf8(copy, tmp_path, capsys):
    (copy / "dict.txt").write_bytes(b"the 12\nb\xffad 3\n")
    assert_refused(*run(copy, tmp_path, capsys), f"{copy / 'dict.txt'}:2: not valid UTF-8")


def test_dictionary_smaller_than_the_data(copy, tmp_path, capsys):
    lines = (copy / "dict.txt").read_text().splitlines()
    (copy / "dict.txt").write_text("\n".join(lines[:20]) + "\n")
    assert_refused(*run(copy, tmp_path, capsys), "is outside the dictionary", "binarized with another dict.txt")


def test_shard_list_with_a_missing_shard(copy, tmp_path, capsys):
    missing = tmp_path / "shard2"
    assert_refused(*run(f"{copy}:{missing}", tmp_path, capsys), f"{missing}: data directory not found")


def test_a_shard_binarized_with_another_dictionary_is_refused(copy, tmp_path, capsys):
    """Shards preprocessed one by one (each its own BPE codes and dict.txt) have ids in the same
    range meaning other words: every shard is read with the first's dictionary, so the second's
    epochs trained on scrambled text, silently. Refused now, naming the first differing line."""
    second = tmp_path / "shard2"
    lines = swapped_dictionary_copy(copy, second, 3, 4)
    word4 = lines[3].split()[0]
    assert_refused(*run(f"{copy}:{second}", tmp_path, capsys), f"{second / 'dict.txt'} line 4: {word4!r} where "
                   f"{copy / 'dict.txt'} has", "the shards were binarized with different dictionaries",
                   f"--bpe-code {copy / 'bpe-code'} --dict {copy / 'dict.txt'}")
    lines[3], lines[4] = lines[4], lines[3]
    (second / "dict.txt").write_text("\n".join(lines[:-1]) + "\n")          # the same, one symbol fewer
    assert_refused(*run(f"{copy}:{second}", tmp_path, capsys), f"line {len(lines)}: the end of the file where")
    shutil.copyfile(copy / "dict.txt", second / "dict.txt")                 # the first's vocabulary: trains
    rc, out, err = run(f"{copy}:{second}", tmp_path, capsys)
    assert rc == 0 and "num_updates 3" in out, err


def test_damaged_second_shard_is_found_before_the_first_epoch(copy, tmp_path, capsys):
    second = tmp_path / "shard2"
    shutil.copytree(copy, second)
    (second / "train.bin").write_bytes((second / "train.bin").read_bytes()[:-4])
    assert_refused(*run(f"{copy}:{second}", tmp_path, capsys), f"{second / 'train.bin'}")
