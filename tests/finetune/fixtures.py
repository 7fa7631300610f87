"""Session fixtures shared by the finetuning and transformers tests (registered in tests/conftest.py):
a pretrained tiny model and a small GLUE-format task whose label depends on word order."""

import random

import pytest

from tests.preprocess.glue_data import write
from tests.train.conftest import tiny_args
from tupe.preprocess.cli import main as preprocess
from tupe.train.trainer import main as train

FILLER = ("the of and to in a is that for it as was with be by on not he this are or his from at which "
          "but have an they you were her she there been one all we their").split()


def order_sentence(rng):
    """Both marker words always occur, side by side: only their ORDER decides the label, which
    no bag of words can tell."""
    words = [rng.choice(FILLER) for _ in range(rng.randint(3, 6))]
    first = rng.random() < 0.5
    i = rng.randint(0, len(words))
    words[i:i] = ["river", "city"] if first else ["city", "river"]
    return " ".join(words), int(first)


@pytest.fixture(scope="session")
def pretrained(data_dir, tmp_path_factory):
    save = tmp_path_factory.mktemp("pre") / "ck"
    # 64-token blocks: nearly every block of this corpus fits (longer ones are skipped, as the original does)
    assert train(tiny_args(data_dir, save, "--max-update", "30", "--max-positions", "512", "--tokens-per-sample", "64",
                           "--no-epoch-checkpoints")) == 0
    return save / "checkpoint_last.pt"


@pytest.fixture(scope="session")
def order_task(data_dir, tmp_path_factory):
    """SST-2 layout (sentence, label) for the word-order task, plus STS-B and MNLI-style data."""
    root = tmp_path_factory.mktemp("glue")
    rng = random.Random(0)
    for split, n in (("train", 600), ("dev", 200)):
        rows = [order_sentence(rng) for _ in range(n)]
        write(root / "raw" / "SST-2" / f"{split}.tsv", [("sentence", "label")] + rows)
    write(root / "raw" / "SST-2" / "test.tsv", [("index", "sentence")] +
          [(i, order_sentence(rng)[0]) for i in range(20)])
    # STS-B (the regression path): score 5 when "river" is in the first sentence, 0 with "city"
    head = ("index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2")
    for split, n in (("train", 600), ("dev", 100)):
        rows = []
        for i in range(n):
            words = [rng.choice(FILLER) for _ in range(6)]
            y = rng.random() < 0.5
            words.insert(rng.randint(0, 6), "river" if y else "city")
            score = 5.0 * y if rng.random() < 0.9 else 2.5
            rows.append((i, "g", "f", "2012", i, "s", "s", " ".join(words), "the of and", f"{score:.3f}"))
        write(root / "raw" / "STS-B" / f"{split}.tsv", [head + ("score",)] + rows)
    write(root / "raw" / "STS-B" / "test.tsv", [head] + [(i, "g", "f", "2012", i, "s", "s", "a b", "c d") for i in range(5)])
    # MNLI-style: 3 classes from the order of the two sentences' markers
    base = ("index", "promptID", "pairID", "genre", "s1bp", "s2bp", "s1p", "s2p", "sentence1", "sentence2")
    labels = ("entailment", "neutral", "contradiction")

    def mnli_rows(n):
        out = []
        for i in range(n):
            a, ya = order_sentence(rng)
            b, yb = order_sentence(rng)
            out.append((i, 1, 2, "g", "(", "(", "(", "(", a, b, labels[ya + yb]))
        return out
    write(root / "raw" / "MNLI" / "train.tsv", [base + ("label1", "gold_label")] + [r + (r[-1],) for r in mnli_rows(300)])
    for name in ("dev_matched", "dev_mismatched"):
        write(root / "raw" / "MNLI" / f"{name}.tsv", [base + ("l1", "l2", "l3", "l4", "l5", "gold_label")] +
              [r[:10] + ("x",) * 5 + (r[10],) for r in mnli_rows(60)])
    for name in ("test_matched", "test_mismatched"):
        write(root / "raw" / "MNLI" / f"{name}.tsv", [base] + [r[:10] for r in mnli_rows(5)])
    assert preprocess(["glue", "--glue-dir", str(root / "raw"), "--tasks", "SST-2,STS-B,MNLI", "--bpe-dir",
                       str(data_dir), "--destdir", str(root / "bin"), "--no-progress"]) == 0
    return root / "bin"
