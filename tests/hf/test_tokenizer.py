"""TupeTokenizer = the project's text pipeline: byte-exact ids against tupe-preprocess glue and
TupeHub.encode on several hundred varied rows."""

import random

import pytest
import torch

from tests.preprocess.glue_data import write
from tupe.data.indexed_dataset import MMapIndexedDataset
from tupe.preprocess.cli import main as preprocess

hf = pytest.importorskip("tupe.hf")
from transformers import AutoTokenizer  # noqa: E402

PIECES = ["The cat sat on the mat.", "naïve café — déjà vu", "Über straße ŒUVRE", "Ελληνικά κείμενα",
          "русский текст", "中文字符 and 日本語", "emoji 🙂 here", "mail me: someone.x@example.co.uk",
          "see https://example.org/a?b=c&d=e, or www.test.com.", "report.pdf and data.tsv",
          "state-of-the-art co-operation", "\"quoted\" 'single' (paren) [bracket]", "1,000.50 $ 3/4 50%",
          "supercalifragilisticexpialidocious" * 3, "tabs\tand  double  spaces", "can't won't I'm",
          "Dr. Smith went to Washington D.C. ...", "a << b >> c ,, d ,.", "*starred word", "back\\slash",
          "UPPER lower MiXeD", "x" * 60, "½ ¾ ™ © ®", "«guillemets» „low quotes“", "ellipsis.... too many",
          "hyphen - spaced", "numbers 3.14159 2e10", "email@host", "—dash—", ""]


def varied_text(rng, allow_empty=False):
    n = rng.randint(0 if allow_empty else 1, 4)
    return " ".join(rng.choice(PIECES[:-1] if not allow_empty else PIECES) for _ in range(n)).replace("\t", " ")


@pytest.fixture(scope="module")
def varied_glue(data_dir, tmp_path_factory):
    """SST-2 (single sentences) and RTE (pairs, some with an empty second sentence)."""
    rng = random.Random(3)
    root = tmp_path_factory.mktemp("varied")
    singles = [varied_text(rng) for _ in range(250)]
    pairs = [(varied_text(rng), varied_text(rng, allow_empty=i % 7 == 0)) for i in range(200)]
    for split in ("train", "dev"):
        write(root / "raw" / "SST-2" / f"{split}.tsv", [("sentence", "label")] + [(t, i % 2) for i, t in enumerate(singles)])
        write(root / "raw" / "RTE" / f"{split}.tsv", [("index", "sentence1", "sentence2", "label")] +
              [(i, a, b, ("entailment", "not_entailment")[i % 2]) for i, (a, b) in enumerate(pairs)])
    write(root / "raw" / "SST-2" / "test.tsv", [("index", "sentence")] + [(0, "x")])
    write(root / "raw" / "RTE" / "test.tsv", [("index", "sentence1", "sentence2")] + [(0, "x", "y")])
    assert preprocess(["glue", "--glue-dir", str(root / "raw"), "--tasks", "SST-2,RTE", "--bpe-dir", str(data_dir),
                       "--destdir", str(root / "bin"), "--no-progress"]) == 0
    return singles, pairs, root / "bin"


@pytest.fixture(scope="module")
def tokenizer(data_dir):
    return hf.TupeTokenizer(str(data_dir / "dict.txt"), str(data_dir / "bpe-code"))


def rows(prefix):
    return [t.tolist() for t in MMapIndexedDataset(prefix)]


def test_ids_equal_the_glue_preprocessing(varied_glue, tokenizer):
    singles, pairs, out = varied_glue
    bos, sep = 0, 2
    want = [[bos] + r for r in rows(out / "SST-2-bin" / "input0" / "train")]
    assert len(want) == len(singles) == 250
    got = tokenizer(singles)["input_ids"]
    mismatches = [(t, g, w) for t, g, w in zip(singles, got, want) if g != w]
    assert not mismatches, mismatches[:3]
    in0, in1 = rows(out / "RTE-bin" / "input0" / "train"), rows(out / "RTE-bin" / "input1" / "train")
    want = [[bos] + a + [sep] + b for a, b in zip(in0, in1)]
    got = tokenizer([a for a, _ in pairs], [b for _, b in pairs])["input_ids"]
    assert len(got) == 200 and got == want
    assert any(b == "" for _, b in pairs) and any(r[-3:] == [2, 2, 2] for r in got)   # empty second sentence


def test_ids_equal_tupehub_encode(varied_glue, tokenizer, data_dir, pretrained, tmp_path):
    import shutil

    import tupe

    singles, pairs, _ = varied_glue
    for name in ("dict.txt", "bpe-code"):   # the pretraining run's vocabulary beside its checkpoint
        shutil.copyfile(data_dir / name, tmp_path / name)
    shutil.copyfile(pretrained, tmp_path / "checkpoint_last.pt")
    hub = tupe.from_pretrained(tmp_path)
    for a, b in pairs[:80]:
        assert tokenizer(a, b)["input_ids"] == hub.encode(a, b).tolist()
    for a in singles[:80]:
        assert tokenizer(a)["input_ids"] == hub.encode(a).tolist()
    # past max_positions the two cut differently (docs/huggingface.md): the hub (and finetuning's
    # --truncate-sequence, tupe-predict) cuts the row's end, </s> and any second sentence included;
    # transformers' truncation keeps the special tokens and cuts a pair longest first
    limit = hub.model.cfg.max_positions
    first, second = "the river " * limit, "a city " * 10
    cut = hub.encode(first, second).tolist()
    assert len(cut) == limit and cut[-1] != 2 and cut.count(2) == 0
    ours = tokenizer(first, second, truncation=True, max_length=limit)["input_ids"]
    assert len(ours) == limit and ours[-1] == 2 and ours.count(2) == 3


def test_mask_padding_truncation_and_tensors(tokenizer):
    mask_id = tokenizer.mask_token_id
    assert mask_id == len(tokenizer.dictionary) == tokenizer.vocab_size - 1
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (1, 0, 2)
    ids = tokenizer("the <mask> of words")["input_ids"]
    assert ids.count(mask_id) == 1 and ids[0] == 0 and ids[-1] == 2
    batch = tokenizer(["a short one", "a somewhat longer sentence than the first one"], padding=True,
                      return_tensors="pt")
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["input_ids"].dtype == torch.long
    n = int(batch["attention_mask"][0].sum())
    assert batch["input_ids"][0, n:].eq(1).all() and batch["attention_mask"][0, :n].eq(1).all()   # right padding
    long = tokenizer("word " * 300, truncation=True, max_length=16)["input_ids"]
    assert len(long) == 16 and long[0] == 0 and long[-1] == 2
    words = [w for w in tokenizer.dictionary.symbols[7:] if w.isalpha() and w.islower()][:6]
    text = " ".join(words)
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
    with pytest.raises(NotImplementedError):
        tokenizer("text", return_offsets_mapping=True)


def test_save_pretrained_writes_dict_and_codes(tokenizer, data_dir, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "dict.txt").read_bytes() == (data_dir / "dict.txt").read_bytes()
    assert (tmp_path / "bpe-code").read_bytes() == (data_dir / "bpe-code").read_bytes()
    hf.TupeHfConfig(vocab_size=tokenizer.vocab_size).save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert type(again) is hf.TupeTokenizer
    text = "Visit https://example.org, it's state-of-the-art!"
    assert again(text, "second")["input_ids"] == tokenizer(text, "second")["input_ids"]
