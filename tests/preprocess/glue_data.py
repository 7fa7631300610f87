"""Small GLUE folders in the official column layout, written by the tests."""

from pathlib import Path

SENTS = ["The cat sat on the mat.", 'He said "hello" to her, didn\'t he?', "A dog barked at 5 p.m. yesterday!",
         "Visit https://example.org for more.", "It's a state-of-the-art model (really).",
         "They went home; it was late.", "Nobody knows why the sky is blue.", "She reads books every day."]


def s(i):
    return SENTS[i % len(SENTS)]


def write(path: Path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows), encoding="utf-8")


def make_glue(root: Path, n=6):
    r = range(n)
    # CoLA: no header in train/dev: source, label, original label, sentence; test: index, sentence
    for split in ("train", "dev"):
        write(root / "CoLA" / f"{split}.tsv", [("gj04", i % 2, "", s(i)) for i in r])
    write(root / "CoLA" / "test.tsv", [("index", "sentence")] + [(i, s(i)) for i in r])
    # SST-2: sentence, label; test: index, sentence
    for split in ("train", "dev"):
        write(root / "SST-2" / f"{split}.tsv", [("sentence", "label")] + [(s(i), i % 2) for i in r])
    write(root / "SST-2" / "test.tsv", [("index", "sentence")] + [(i, s(i)) for i in r])
    # MRPC: Quality, #1 ID, #2 ID, #1 String, #2 String
    head = ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String")
    for split in ("train", "dev"):
        write(root / "MRPC" / f"{split}.tsv", [head] + [(i % 2, 10 + i, 20 + i, s(i), s(i + 1)) for i in r])
    write(root / "MRPC" / "test.tsv", [("index",) + head[1:]] + [(i, 10 + i, 20 + i, s(i), s(i + 2)) for i in r])
    # QQP: id qid1 qid2 question1 question2 is_duplicate; test: id question1 question2
    head = ("id", "qid1", "qid2", "question1", "question2", "is_duplicate")
    for split in ("train", "dev"):
        rows = [head] + [(i, 2 * i, 2 * i + 1, s(i), s(i + 3), i % 2) for i in r]
        rows.insert(3, (99, 1, "only three"))                   # malformed: dropped and counted
        write(root / "QQP" / f"{split}.tsv", rows)
    write(root / "QQP" / "test.tsv", [("id", "question1", "question2")] + [(i, s(i), s(i + 1)) for i in r])
    # STS-B: index genre filename year old_index source1 source2 sentence1 sentence2 score
    head = ("index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2")
    for split in ("train", "dev"):
        write(root / "STS-B" / f"{split}.tsv",
              [head + ("score",)] + [(i, "g", "f", "2012", i, "s", "s", s(i), s(i + 1), f"{i % 6}.000") for i in r])
    write(root / "STS-B" / "test.tsv", [head] + [(i, "g", "f", "2012", i, "s", "s", s(i), s(i + 1)) for i in r])
    # MNLI: 12 columns in train (label1 at 12), 16 in dev (gold_label at 16); test 10+
    labels = ("entailment", "neutral", "contradiction")
    base = ("index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
            "sentence1_parse", "sentence2_parse", "sentence1", "sentence2")
    write(root / "MNLI" / "train.tsv", [base + ("label1", "gold_label")] +
          [(i, 1, 2, "g", "(", "(", "(", "(", s(i), s(i + 1), labels[i % 3], labels[i % 3]) for i in r])
    for name in ("dev_matched", "dev_mismatched"):
        write(root / "MNLI" / f"{name}.tsv",
              [base + ("label1", "label2", "label3", "label4", "label5", "gold_label")] +
              [(i, 1, 2, "g", "(", "(", "(", "(", s(i), s(i + 2), "x", "x", "x", "x", "x", labels[(i + 1) % 3])
               for i in r])
    for name in ("test_matched", "test_mismatched"):
        write(root / "MNLI" / f"{name}.tsv", [base] + [(i, 1, 2, "g", "(", "(", "(", "(", s(i), s(i + 1)) for i in r])
    # QNLI / RTE / WNLI: index sentence1 sentence2 label; test without label
    for task, words in (("QNLI", ("entailment", "not_entailment")), ("RTE", ("entailment", "not_entailment")),
                        ("WNLI", ("0", "1"))):
        for split in ("train", "dev"):
            write(root / task / f"{split}.tsv", [("index", "sentence1", "sentence2", "label")] +
                  [(i, s(i), s(i + 1), words[i % 2]) for i in r])
        write(root / task / "test.tsv", [("index", "sentence1", "sentence2")] + [(i, s(i), s(i + 1)) for i in r])
