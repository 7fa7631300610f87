import pytest

from tupe.data.dictionary import Dictionary, DictionaryError, model_vocab_size


def test_specials_and_fixture_dictionary(fixture_dir):
    d = Dictionary.load(fixture_dir / "dict.txt")
    assert d.symbols[:7] == ["<s>", "<pad>", "</s>", "<unk>", "<file>", "<email>", "<url>"]
    assert (d.bos(), d.pad(), d.eos(), d.unk()) == (0, 1, 2, 3)
    assert len(d) == 127 and d[7] == "tok0@@" and d.index("tok1") == 8
    assert model_vocab_size(d) == 128
    assert d.index("never-seen") == 3


def test_finalize_orders_by_count_then_alphabet_and_pads(tmp_path):
    d = Dictionary()
    for word, n in [("b", 3), ("a", 3), ("c", 5), ("d", 1), ("e", 1)]:
        d.add_symbol(word, n)
    d.finalize(nwords=10, padding_factor=8)
    assert d.symbols[7:10] == ["c", "a", "b"]               # 10 symbols in total incl. 7 specials
    assert len(d) == 16 and d.symbols[10:] == [f"madeupword{i:04d}" for i in range(6)]
    d.save(tmp_path / "dict.txt")
    lines = (tmp_path / "dict.txt").read_text().splitlines()
    assert lines[:4] == ["c 5", "a 3", "b 3", "madeupword0000 0"]
    again = Dictionary.load(tmp_path / "dict.txt")
    assert again == d                                          # loading never pads again
    assert again.encode_line("a zzz c").tolist() == [8, 3, 7, 2]
    assert again.string([0, 8, 7, 2]) == "a c"


@pytest.mark.parametrize("content,message", [
    ("a 1\nb\n", r"dict.txt:2: expected '<token> <count>'"),
    ("a 1\nb x\n", r"dict.txt:2: count 'x' is not an integer"),
    ("a 1\na 2\n", r"dict.txt:2: duplicate word 'a'"),
    ("a 1\n\n", r"dict.txt:2: empty line"),
])
def test_bad_dictionary_lines_name_file_and_line(tmp_path, content, message):
    (tmp_path / "dict.txt").write_text(content)
    with pytest.raises(DictionaryError, match=message):
        Dictionary.load(tmp_path / "dict.txt")


def test_overwrite_flag(tmp_path):
    (tmp_path / "dict.txt").write_text("a 1\na 5 #fairseq:overwrite\n")
    d = Dictionary.load(tmp_path / "dict.txt")
    assert d.count[d.index("a")] == 5
