"""tupe-inspect: positional terms, the logit decomposition and attention distances, on tiny models
of every scheme."""

import json

import pytest
import torch

from tests.conftest import swapped_dictionary_copy
from tests.model.test_invariance import perturbed
from tupe import TupeConfig, save_pretrained
from tupe.checkpoint import fairseq_args, load_vocabulary, save_fairseq
from tupe.config import SCHEMES
from tupe.data.dictionary import Dictionary, model_vocab_size
from tupe.inspection import attention_distances, inspect, logit_decomposition, main, positional_terms, validation_blocks
from tupe.model.positional import toeplitz


def tiny(data_dir, scheme, **kw):
    vocab = model_vocab_size(Dictionary.load(data_dir / "dict.txt"))
    return perturbed(TupeConfig(vocab_size=vocab, encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                                encoder_attention_heads=4, max_positions=32, embedding_normalize=True,
                                **SCHEMES[scheme], **kw))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_inspect_every_scheme(scheme, data_dir, tmp_path):
    model = tiny(data_dir, scheme)
    report = inspect(model, tmp_path / "out", positions=24, data=data_dir, blocks=4)
    numbers = json.loads((tmp_path / "out" / "inspect.json").read_text())
    text = report.read_text()
    assert numbers["scheme"] == scheme and numbers["blocks"] == {"count": 4, "length": 24}
    expected = {"attention_distance.png"}
    if model.cfg.pos_encoding == "tupe":
        expected.add("untied_correlation.png")
        assert len(numbers["untied"]["matrix"]) == 4 and len(numbers["untied"]["matrix"][0]) == 24
    if model.cfg.rel_pos:
        expected.add("relative_bias.png")
        assert len(numbers["relative"]["bias"][0]) == 2 * 24 - 1
    if model.cfg.pos_encoding == "absolute":
        expected.add("logit_decomposition.png")
        assert set(numbers["decomposition"]["mean_magnitude"]) >= {"word-word", "word-position", "position-word",
                                                                   "position-position"}
    for png in expected:
        assert (tmp_path / "out" / png).stat().st_size > 2000 and f"]({png})" in text, png
    dist = numbers["attention_distance"]
    assert len(dist["expected"]) == 2 and len(dist["expected"][0]) == 4
    for mass in dist["mass"]:                       # a distribution over signed distances
        assert sum(mass) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("scheme,extra", [("BERT-A", {}), ("BERT-R", {}), ("BERT-A", {"encoder_normalize_before": True})])
def test_decomposition_adds_up_to_the_layers_logits(scheme, extra, data_dir):
    """The four terms (+ BERT-R's relative bias), plus the padding mask, through the softmax give
    the first layer's own attention probabilities."""
    model = tiny(data_dir, scheme, **extra)
    tokens = validation_blocks(model, data_dir, 20, 3)
    with torch.no_grad():
        terms = logit_decomposition(model, tokens)
        want = model.encoder.encode(tokens, output_attentions=True).attentions[0]
    logits = sum(terms.values())
    assert set(terms) == {"word-word", "word-position", "position-word", "position-position"} | (
        {"relative"} if scheme == "BERT-R" else set())
    torch.testing.assert_close(torch.softmax(logits, -1), want, atol=1e-6, rtol=1e-5)
    # and the logits themselves, from the layer's own q, k
    enc = model.encoder
    x = enc.emb_layer_norm(enc.embed_positions.embed(enc.embed_tokens(tokens)))
    layer = enc.layers[0]
    h = layer.self_attn_layer_norm(x) if layer.normalize_before else x
    q, k, _ = layer.self_attn.in_proj(h).view(*h.shape[:2], 3, 4, -1).permute(2, 0, 3, 1, 4)
    own = q @ k.transpose(-1, -2) * layer.self_attn.scaling
    if scheme == "BERT-R":
        own = own + enc.positional_bias(20)
    torch.testing.assert_close(logits, own.detach(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("scheme", ["TUPE-A", "TUPE-R", "TUPE-A-tie-cls", "BERT-R"])
def test_drawn_positional_terms_are_the_models_own_bias(scheme, data_dir):
    model = tiny(data_dir, scheme)
    terms = positional_terms(model, 16)
    total = terms["untied"]["matrix"] if "untied" in terms else 0
    if "relative" in terms:
        rel = toeplitz(terms["relative"]["bias"], 16)
        if terms["relative"]["cls_to_others"] is not None:
            rel[:, :, 0] = terms["relative"]["others_to_cls"][:, None]
            rel[:, 0, :] = terms["relative"]["cls_to_others"][:, None]
        total = total + rel
    torch.testing.assert_close(total, model.encoder.positional_bias(16).detach(), atol=1e-6, rtol=0)
    if "untied" in terms and terms["untied"]["untie_cls"]:
        assert torch.allclose(terms["untied"]["matrix"][:, 0, 5], terms["untied"]["cls_to_others"])
        assert torch.allclose(terms["untied"]["matrix"][:, 5, 0], terms["untied"]["others_to_cls"])


def test_attention_distances_of_a_local_model():
    """A model whose attention is all on the diagonal has expected distance 0 and all mass at 0."""
    probs = torch.eye(6).expand(1, 2, 6, 6)

    class Fake:
        class encoder:
            @staticmethod
            def encode(tokens, output_attentions):
                return type("O", (), {"attentions": (probs,)})
    dist = attention_distances(Fake, torch.zeros(1, 6, dtype=torch.long))
    assert dist["expected"].tolist() == [[0.0, 0.0]]
    assert dist["mass"][0][dist["distances"].index(0)] == pytest.approx(1.0)
    assert dist["uniform_expected"] == pytest.approx(sum(abs(i - j) for i in range(6) for j in range(6)) / 36)


def test_cli_reads_checkpoint_files_and_folders(data_dir, tmp_path, capsys):
    model = tiny(data_dir, "TUPE-R")
    save_fairseq(model, tmp_path / "ckpt" / "checkpoint_last.pt", fairseq_args(model.cfg))
    save_pretrained(model, tmp_path / "own", vocabulary=load_vocabulary(data_dir, model.cfg.vocab_size))
    for path in (tmp_path / "ckpt" / "checkpoint_last.pt", tmp_path / "own"):
        out = tmp_path / ("out-" + path.name)
        assert main([str(path), "--out", str(out), "--positions", "16"]) == 0
        assert (out / "untied_correlation.png").is_file()
    # the smallest drawing: [CLS] and one position (below it, an IndexError in the untied bias before)
    assert main([str(tmp_path / "own"), "--out", str(tmp_path / "two"), "--positions", "2"]) == 0
    assert json.loads((tmp_path / "two" / "inspect.json").read_text())["positions"] == 2
    for flags, said in ((["--positions", "1"], "argument --positions: must be >= 2, got 1"),
                        (["--data", str(data_dir), "--blocks", "0"], "argument --blocks: must be >= 1, got 0")):
        with pytest.raises(SystemExit) as e:
            main([str(tmp_path / "own"), "--out", str(tmp_path / "none"), *flags])
        assert e.value.code == 2 and said in capsys.readouterr().err and not (tmp_path / "none").exists()
    assert main([str(tmp_path / "own"), "--out", str(tmp_path / "x"), "--data", str(data_dir), "--positions", "64"]) == 0
    assert json.loads((tmp_path / "x" / "inspect.json").read_text())["positions"] == 32   # capped at max_positions
    assert "64 positions asked; 32 drawn: the positional tables of TUPE-R cover 32" in (tmp_path / "x" / "report.md").read_text()
    assert main([str(tmp_path / "nothing"), "--out", str(tmp_path / "y")]) == 1
    assert "tupe-inspect: error" in capsys.readouterr().err
    # data binarized with another dictionary of the same size: refused, not analysed as other words
    other = tmp_path / "other-data"
    swapped_dictionary_copy(data_dir, other, 1, 2)
    assert main([str(tmp_path / "own"), "--out", str(tmp_path / "z"), "--data", str(other)]) == 1
    assert "(dict.txt line 2)" in capsys.readouterr().err and not (tmp_path / "z").exists()


def test_cli_reads_a_transformers_folder(data_dir, tmp_path):
    hf = pytest.importorskip("tupe.hf")
    model = tiny(data_dir, "BERT-R")
    folder = hf.export_hf(model, tmp_path / "hf")
    assert main([str(folder), "--out", str(tmp_path / "out"), "--positions", "16", "--data", str(data_dir),
                 "--blocks", "2"]) == 0
    numbers = json.loads((tmp_path / "out" / "inspect.json").read_text())
    assert numbers["scheme"] == "BERT-R" and "decomposition" in numbers and "relative" in numbers
