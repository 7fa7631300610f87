import pytest

from tupe.preprocess import text as T


def test_decode_drops_and_counts_invalid_bytes():
    assert T.decode_utf8("héllo".encode()) == ("héllo", 0)
    assert T.decode_utf8(b"ab\xffc\xfe\xfd") == ("abc", 3)


@pytest.mark.parametrize("raw,want", [
    ("a\t\tb   c", "a b c"), ("wait.... what", "wait... what"), ("<<quoted>>", "«quoted»"),
    ("a,, b,. c", "a, b. c"), ("*bold and 2*3", "bold and 2*3"),
])
def test_pre_cleanup(raw, want):
    assert T.pre_cleanup(raw) == want


def test_moses_normalisation_and_non_printing():
    assert T.normalize_punctuation("“Hello” world\x07!") == '"Hello" world !'
    assert T.normalize_punctuation(T.pre_cleanup("a\u00a0b\u200bc")) == "a b c"   # nbsp: whitespace; ZWSP: \\p{C}


def test_should_join():
    assert T.should_join("the end of a line,", "continued here")
    assert T.should_join("ends in a word", "next")
    assert not T.should_join("a full sentence.", "next")
    assert not T.should_join("ends in a word", "Next")


def test_line_filter_reasons():
    f = T.LineFilter()
    good = "this is a perfectly ordinary english paragraph with plenty of letters in it."
    assert f.reason(good) is None
    assert f.reason("too short") == "too_short"
    assert f.reason("1234567890 " * 10) == "few_letters"
    assert f.reason(good + "\\" * 10) == "backslashes"
    assert f.reason("|" + good) == "pipes"
    assert f.reason(good + " |" * 5) == "pipes"
    assert T.LineFilter(max_chars=60).reason(good) == "too_long"


def test_split_punctuation_and_placeholders():
    assert T.split_punctuation('he said "yes", (twice)... ok.') == 'he said " yes " , ( twice ) ... ok .'
    out = T.substitute_placeholders("see https://a.org/x?y=1 or www.b.com, mail a.b@c.co.uk, file img.jpg; "
                                    "state-of-the-art")
    assert out == "see <url> or <url> , mail <email> , file <file> ; state - of - the - art"


def test_moses_tokenize_protects_placeholders():
    assert T.moses_tokenize("don't <url> <unk>, ok") == "don 't <url> <unk> , ok"
    long = " ".join(["<unk>, word's"] * 1500)           # sacremoses alone refuses > 1000 protected matches
    out = T.moses_tokenize(long)
    assert out == " ".join(["<unk> , word 's"] * 1500)
    text = 'he said "yes" (twice), <unk> it\'s e-mail at 5.3% ... ok. ' * 30
    assert T.moses_tokenize(text, max_protected=7) == T.moses_tokenize(text)   # pieces change nothing


def test_merge_short_sentences():
    s = ["one two three four five six", "short one", "another fine sentence with words", "tiny"]
    out = T.merge_short_sentences(s, min_words=5, max_chars=250)
    # "short one" joins its shorter neighbour (the previous one); "tiny" has only a previous one
    assert out == ["one two three four five six short one", "another fine sentence with words tiny"]
    assert all(len(x.split()) >= 5 for x in out)
    assert " ".join(out) == " ".join(s)                                  # nothing lost or reordered
    assert T.merge_short_sentences(["a b", "c d"], max_chars=3) == ["a b", "c d"]   # too long to merge


def test_glue_clean():
    assert T.glue_clean('He said: "It\'s at https://x.org", OK\\ fine') == \
        'he said : " it \'s at <url> , " ok fine'   # Moses moves the comma inside
