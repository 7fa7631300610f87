import os
from pathlib import Path

import pytest
import torch

FIXTURE = Path(__file__).parent / "data" / "tupe_r_small"

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def fixture_dir() -> Path:
    return FIXTURE


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A small corpus through tupe-preprocess pretrain (bpe-code, dict.txt, train/valid)."""
    from tests.preprocess.corpus import make_corpus
    from tupe.preprocess.cli import main as preprocess

    root = tmp_path_factory.mktemp("mlm")
    corpus = make_corpus(root / "c.txt", paragraphs=400)
    assert preprocess(["pretrain", "--input", str(corpus), "--destdir", str(root / "bin"), "--bpe-merges", "200",
                       "--valid-every", "20", "--keep-vocab-fraction", "1", "--no-progress"]) == 0
    return root / "bin"




def swapped_dictionary_copy(src: Path, dest: Path, i: int, j: int) -> list[str]:
    """A copy of the data folder ``src`` whose dict.txt has lines i and j (0-based) swapped: the
    same size, other words (data binarized with another vocabulary). Returns its lines."""
    import shutil

    shutil.copytree(src, dest)
    lines = (dest / "dict.txt").read_text().splitlines()
    lines[i], lines[j] = lines[j], lines[i]
    (dest / "dict.txt").write_text("\n".join(lines) + "\n")
    return lines


def tiny_config(**overrides):
    from tupe import TupeConfig

    values = dict(vocab_size=50, encoder_layers=2, encoder_embed_dim=16, encoder_ffn_embed_dim=32,
                  encoder_attention_heads=4, max_positions=24, embedding_normalize=True)
    values.update(overrides)
    return TupeConfig(**values)


def random_tokens(batch, length, vocab=50, seed=0, pad_to=None):
    """<s> first, </s> last, non-special ids in between; rows of different lengths padded."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, length + 1, (batch,), generator=g)
    lengths[0] = length
    T = pad_to or length
    tokens = torch.full((batch, T), 1, dtype=torch.long)
    for b, n in enumerate(lengths.tolist()):
        tokens[b, :n] = torch.randint(7, vocab, (n,), generator=g)
        tokens[b, 0], tokens[b, n - 1] = 0, 2
    return tokens


# A pretrained tiny model and GLUE-format tasks, shared by tests/finetune and tests/hf.
from tests.finetune.fixtures import order_task, pretrained  # noqa: E402,F401
