import random
from collections import Counter

import pytest

from tupe.data.bpe import BPE, BPEError, apply_line_reference, apply_word_reference, learn_bpe, read_codes, write_codes


def random_words(seed, n=2000, alphabet="abcdefghijklmnop"):
    rng = random.Random(seed)
    counts = Counter()
    for _ in range(n):
        k = rng.randint(2, len(alphabet))
        word = "".join(rng.choice(alphabet[:k]) for _ in range(rng.randint(1, 10)))
        counts[word] += rng.randint(1, 30)
    return counts


def test_hand_checked_segmentation():
    merges = [("u", "n", 9), ("t", "i", 8), ("ti", "e", 7), ("tie", "d</w>", 6), ("e", "d</w>", 5)]
    ranks = {(a, b): i for i, (a, b, _) in enumerate(merges)}
    assert apply_word_reference("untied", ranks) == ["un", "tied</w>"]
    assert apply_line_reference("tupe is untied", ranks) == "t@@ u@@ p@@ e i@@ s un@@ tied"
    assert apply_word_reference("a", ranks) == ["a</w>"]
    bpe = BPE(merges)
    assert bpe.apply(["tupe is untied", "", "untied"]) == ["t@@ u@@ p@@ e i@@ s un@@ tied", "", "un@@ tied"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_apply_equals_greedy_by_rank_on_random_words(seed):
    merges = learn_bpe(random_words(seed), 400)
    bpe = BPE(merges)
    rng = random.Random(100 + seed)
    lines = [" ".join("".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(1, 14)))
                      for _ in range(rng.randint(0, 12))) for _ in range(500)]
    assert bpe.apply(lines) == [apply_line_reference(line, bpe.ranks) for line in lines]


def test_unknown_characters_and_placeholders_are_kept():
    bpe = BPE(learn_bpe(random_words(0), 200))
    lines = ["abc xyz ab", "ab <unk> cab <url>", "zé@ bad"]
    out = bpe.apply(lines)
    assert out == [apply_line_reference(line, bpe.ranks) for line in lines]
    assert "<unk>" in out[1].split() and "<url>" in out[1].split()
    for line, enc in zip(lines, out):     # nothing dropped: removing the markers gives the input back
        assert enc.replace("@@ ", "") == line


def test_learned_codes_file_format(tmp_path):
    merges = learn_bpe(random_words(3), 300)
    assert 0 < len(merges) <= 300
    counts = [c for _, _, c in merges]
    assert counts == sorted(counts, reverse=True)                # most frequent first
    write_codes(merges, tmp_path / "codes")
    lines = (tmp_path / "codes").read_text().splitlines()
    assert all(len(line.split(" ")) == 3 for line in lines)
    assert read_codes(tmp_path / "codes") == merges
    # the first merge really is the most frequent adjacent pair
    pairs = Counter()
    for word, c in random_words(3).items():
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        for p in zip(symbols, symbols[1:]):
            pairs[p] += c
    (a, b), top = max(pairs.items(), key=lambda kv: (kv[1], [-ord(ch) for ch in "".join(kv[0])]))
    assert merges[0][2] == top and pairs[(merges[0][0], merges[0][1])] == top


def test_bad_codes_file(tmp_path):
    (tmp_path / "codes").write_text("a b 3\nab c\n")
    with pytest.raises(BPEError, match=r"codes:2: expected 'left right count'"):
        read_codes(tmp_path / "codes")
    (tmp_path / "codes").write_text("")
    with pytest.raises(BPEError, match="empty BPE codes"):
        read_codes(tmp_path / "codes")
