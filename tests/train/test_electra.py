"""ELECTRA (--task electra): sampling, labels, gradients, sharing, weighting, generator sizes,
every positional scheme; the training CLI end to end (resume bitwise, 2 processes), and the
discriminator restored everywhere a model is read."""

import importlib.util
import json
import math

import pytest
import torch

import tupe
from tests.train.conftest import tiny_args
from tests.train.test_train_cli import (
    assert_same_tensors,
    kill_and_resume,
    model_tensors,
    one_and_two_processes,
    original_command,
    records,
    run_shell,
)
from tupe.checkpoint import load_electra, read_checkpoint
from tupe.config import PRESETS, TupeConfig
from tupe.model.electra import ElectraModel, generator_config, sample_tokens
from tupe.train.options import generator_config as generator_from_flags
from tupe.train.options import parse_args
from tupe.train.trainer import main

ELECTRA = ["--task", "electra", "--criterion", "electra"]
V, PAD = 40, 1


def tiny_electra(**cfg):
    torch.manual_seed(0)
    base = dict(vocab_size=V, encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                encoder_attention_heads=4, max_positions=16, dropout=0.0, attention_dropout=0.0)
    c = TupeConfig(**{**base, **cfg})
    return ElectraModel(c, generator_config(c, 2))


def masked_batch(B=3, T=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    original = torch.randint(5, V, (B, T), generator=g)
    original[:, 0] = 0
    original[2, 9:] = PAD                                              # a padded row
    masked = (torch.rand(B, T, generator=g) < 0.3) & original.ne(PAD)
    masked[:, 0] = False
    masked[0, 3] = True
    tokens = original.masked_fill(masked, 4)                           # <mask> = 4 here
    target = torch.where(masked, original, torch.full_like(original, PAD))
    return original, tokens, target, masked


# --------------------------------------------------------------------------- units
def test_sampling_replaces_only_masked_positions_and_labels_follow():
    original, tokens, target, masked = masked_batch()
    N = int(masked.sum())
    logits = torch.randn(N, V)
    logits[0] = -1e4
    logits[0, original[masked][0]] = 1e4                               # row 0 surely samples the original
    corrupted, replaced = ElectraModel.corrupt(original, masked, logits, seed=3, pad=PAD)
    assert torch.equal(corrupted[~masked], original[~masked])          # never replaces unmasked positions
    assert torch.equal(replaced, corrupted.ne(original))
    assert not replaced[~masked].any()
    first = masked.nonzero()[0]
    assert corrupted[tuple(first)] == original[tuple(first)] and not replaced[tuple(first)]   # label 0
    assert replaced.sum() > 0 and not corrupted.eq(PAD)[masked].any()  # padding is never drawn
    again, _ = ElectraModel.corrupt(original, masked, logits, seed=3, pad=PAD)
    other, _ = ElectraModel.corrupt(original, masked, logits, seed=4, pad=PAD)
    assert torch.equal(again, corrupted) and not torch.equal(other, corrupted)


def test_sampling_follows_the_generator_distribution():
    logits = torch.log(torch.tensor([[0.0, 0.0, 0.5, 0.3, 0.2]]).clamp_min(1e-30)).expand(20000, 5)
    draws = sample_tokens(logits, seed=7)
    freq = torch.bincount(draws, minlength=5).float() / len(draws)
    assert freq[:2].sum() == 0
    assert torch.allclose(freq[2:], torch.tensor([0.5, 0.3, 0.2]), atol=0.015)


def test_generator_gets_no_gradient_from_the_discriminator_loss():
    model = tiny_electra()
    _, tokens, target, _ = masked_batch()
    mlm, rtd, _ = model.losses(tokens, target, seed=1)
    rtd.backward()
    gen_grads = [p.grad for p in model.generator.parameters()]
    assert all(g is None or not g.any() for g in gen_grads)
    assert model.embedding.weight.grad is not None and model.embedding.weight.grad.any()   # shared: it learns
    assert all(p.grad is not None for p in model.rtd_head.parameters())
    model.zero_grad(set_to_none=True)
    mlm, rtd, _ = model.losses(tokens, target, seed=1)
    mlm.backward()
    assert all(p.grad is None for p in model.rtd_head.parameters())
    assert all(p.grad is None for n, p in model.discriminator.named_parameters() if "embed_tokens" not in n)
    assert model.generator.encoder.layers[0].fc1.weight.grad.any()


def test_token_embedding_is_one_shared_tensor():
    model = tiny_electra()
    big = [n for n, p in model.named_parameters() if p.shape[0] == V and p.dim() == 2]
    assert big == ["discriminator.encoder.embed_tokens.weight"]
    assert model.generator.encoder.embed_tokens is None
    assert model.generator.embed_proj.weight.shape == (16, 32)          # E=32 -> c=16
    assert model.generator.lm_head.dense.weight.shape == (32, 16)       # c -> E, output tied to E
    _, tokens, target, masked = masked_batch()
    with torch.no_grad():
        model.embedding.weight[7] += 1.0                                # a change is seen by both networks
        logits = model.generator(tokens, model.embedding, masked)
    assert logits.shape == (int(masked.sum()), V)
    same = tiny_electra()
    with torch.no_grad():
        assert not torch.equal(logits, same.generator(tokens, same.embedding, masked))


def test_loss_weighting():
    model = tiny_electra()
    _, tokens, target, masked = masked_batch()
    mlm, rtd, stats = (x.detach() if torch.is_tensor(x) else x for x in model.losses(tokens, target, seed=2))
    n_masked, n_tokens = int(masked.sum()), int(tokens.ne(PAD).sum())
    assert stats["masked"] == n_masked and stats["tokens"] == n_tokens
    for w in (0.0, 1.0, 50.0):
        model.disc_weight = w
        loss = model(tokens, target, seed=2)[0].detach()
        # the trainer divides by the masked count: ELECTRA's mlm_mean + w * rtd_mean
        assert float(loss) / n_masked == pytest.approx(float(mlm) / n_masked + w * float(rtd) / n_tokens, rel=1e-6)
    assert float(rtd) / n_tokens == pytest.approx(
        float(torch.nn.functional.binary_cross_entropy_with_logits(
            torch.zeros(1), torch.zeros(1))), rel=0.2)                  # untrained: about log 2 per token


def test_generator_size_flags_give_the_documented_shapes():
    base = TupeConfig.from_preset("bert_base", 1000)
    g = generator_config(base)                                          # default divisor 4
    assert (g.encoder_layers, g.encoder_embed_dim, g.encoder_ffn_embed_dim, g.encoder_attention_heads) == \
        (12, 192, 768, 3)
    g = generator_config(base, 3)                                       # ELECTRA-Base's generator
    assert (g.encoder_embed_dim, g.encoder_ffn_embed_dim, g.encoder_attention_heads) == (256, 1024, 4)
    args = parse_args(["d", "--max-sentences", "2", *ELECTRA, "--generator-layers", "3",
                       "--generator-embed-dim", "64", "--generator-ffn-embed-dim", "128",
                       "--generator-attention-heads", "2"])
    g = generator_from_flags(args, base)
    assert (g.encoder_layers, g.encoder_embed_dim, g.encoder_ffn_embed_dim, g.encoder_attention_heads) == \
        (3, 64, 128, 2)
    m = ElectraModel(TupeConfig.from_preset("bert_small", 100), generator_config(TupeConfig.from_preset("bert_small", 100)))
    assert m.generator.encoder.layers[0].fc1.weight.shape == (PRESETS["bert_small"]["encoder_ffn_embed_dim"] // 4, 64)
    assert m.rtd_head.out_proj.weight.shape == (1, 256)
    with pytest.raises(ValueError):
        generator_config(base, 0)


@pytest.mark.parametrize("scheme", [dict(), dict(rel_pos=True), dict(pos_encoding="absolute"),
                                    dict(pos_encoding="absolute", rel_pos=True), dict(untie_cls=False),
                                    dict(pos_encoding="rope"), dict(pos_encoding="alibi"),
                                    dict(pos_encoding="none")])
def test_every_positional_scheme_in_both_networks(scheme):
    model = tiny_electra(**scheme)
    assert model.generator.cfg.name == model.cfg.name                    # e.g. TUPE-R in both
    if model.cfg.pos_encoding == "tupe":                                # own tables, not shared
        assert model.generator.encoder.untied_pos.pos.weight.shape == (17, 16)
    _, tokens, target, _ = masked_batch()
    loss, stats = model(tokens, target, seed=0)
    loss.backward()
    assert math.isfinite(float(loss.detach())) and 0 < stats["replaced"] <= stats["masked"]
    assert all(p.grad is not None for p in model.parameters()), \
        [n for n, p in model.named_parameters() if p.grad is None]     # every parameter is used (DDP)


# --------------------------------------------------------------------------- training CLI
def electra_args(data, save, *extra):
    return tiny_args(data, save, *ELECTRA, *extra)


@pytest.mark.slow      # ~7 s: the ELECTRA task's training is covered by test_electra_learns
def test_original_pretraining_command_with_electra(data_dir, tmp_path):
    cmd = original_command(data_dir, tmp_path / "ck", max_update=4)
    cmd = cmd.replace("--task masked_lm --criterion masked_lm", "--task electra --criterion electra")
    proc = run_shell(cmd + f" --tensorboard-logdir {tmp_path / 'tb'}")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    train, valid = records(tmp_path / "ck"), records(tmp_path / "ck", "valid")
    assert len(train) == 4 and valid
    for r in (train[-1], valid[-1]):
        assert {"gen_loss", "disc_loss", "disc_acc", "replaced"} <= set(r)
        assert 0.05 < r["replaced"] < 0.2 and 0 <= r["disc_acc"] <= 1
    assert "gen_loss" in proc.stdout and "disc_acc" in proc.stdout
    assert list((tmp_path / "tb").rglob("events.out.tfevents*"))
    state = read_checkpoint(tmp_path / "ck" / "checkpoint_last.pt")
    assert state["optimizer_history"][-1]["criterion_name"] == "ElectraLoss"
    assert state["electra"]["generator"]["encoder_embed_dim"] == 8 and state["electra"]["disc_weight"] == 50


def test_electra_learns(data_dir, tmp_path):
    save = tmp_path / "e"
    assert main(electra_args(data_dir, save, "--max-update", "80", "--dropout", "0", "--attention-dropout", "0",
                             "--lr", "0.005")) == 0
    r = records(save)
    first, last = r[:10], r[-10:]
    mean = lambda rows, k: sum(x[k] for x in rows) / len(rows)   # noqa: E731
    assert mean(last, "gen_loss") < mean(first, "gen_loss") - 0.5
    assert mean(last, "disc_loss") < mean(first, "disc_loss") - 0.2
    assert mean(last, "disc_acc") > mean(first, "disc_acc")


@pytest.mark.slow      # ~15 s: the resume mechanism is the trainer's, tested bitwise by the masked-LM kill -9 test
def test_kill_and_resume_gives_identical_weights(data_dir, tmp_path):
    extra = ["--max-update", "30", "--save-interval-updates", "3", "--max-sentences", "16", "--lr", "0.002",
             "--total-num-update", "30"]
    kill_and_resume(electra_args(data_dir, tmp_path / "a", *extra), electra_args(data_dir, tmp_path / "b", *extra),
                    tmp_path / "b", kill_at=20, saved_at=18)
    assert any(k.startswith("generator.") for k in model_tensors(tmp_path / "a" / "checkpoint_last.pt"))
    assert_same_tensors(tmp_path / "a" / "checkpoint_last.pt", tmp_path / "b" / "checkpoint_last.pt")


@pytest.mark.slow      # ~10 s; DDP itself is covered by the masked-LM 2-process test
def test_two_process_gloo_equals_update_freq_two(data_dir, tmp_path):
    common = ["--max-update", "5", "--dropout", "0", "--attention-dropout", "0", "--max-sentences", "4",
              "--disable-validation"]
    one, two = one_and_two_processes(electra_args, data_dir, tmp_path, common)
    assert len(one) == len(two) == 5
    for a, b in zip(one, two):
        for k in ("loss", "gen_loss", "disc_loss"):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5), k
        assert a["replaced"] == b["replaced"] and a["disc_acc"] == b["disc_acc"]   # the same samples


@pytest.fixture(scope="module")
def electra_run(data_dir, tmp_path_factory):
    save = tmp_path_factory.mktemp("electra") / "run"
    assert main(electra_args(data_dir, save, "--max-update", "6")) == 0
    return save


def test_discriminator_is_what_loads_everywhere(electra_run, tmp_path, caplog):
    from tupe.cli.convert import main as convert

    full = load_electra(electra_run)
    with caplog.at_level("WARNING", logger="tupe"):
        disc = tupe.load_model(electra_run)                # the library logs the note (tupe.logs)
    assert "ELECTRA checkpoint: using its discriminator" in caplog.text
    assert disc.cfg == full.cfg and disc.lm_head is not None
    theirs = full.discriminator.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in disc.state_dict().items() if not k.startswith("lm_head."))
    tokens = torch.tensor([[0, 9, 10, 11, 2]])
    assert torch.equal(disc.extract_features(tokens), full.discriminator.extract_features(tokens))
    assert convert([str(electra_run), str(tmp_path / "own")]) == 0
    assert torch.equal(tupe.load_model(tmp_path / "own").encoder.embed_tokens.weight,
                       theirs["encoder.embed_tokens.weight"])
    assert convert([str(tmp_path / "own"), str(tmp_path / "orig.pt")]) == 0   # back to the original layout
    assert not any(k.startswith(("generator.", "rtd_head.")) for k in model_tensors(tmp_path / "orig.pt"))


def test_a_discriminators_new_masked_lm_head_is_known_everywhere(electra_run, data_dir, tmp_path, capsys, caplog):
    """The discriminator's masked-LM head is made new on loading: fill_mask and tupe-validate refuse it
    (noise, not predictions), and that is kept by every format it is saved in (own, original,
    transformers), so a converted discriminator is not mistaken for a masked-LM model."""
    from tupe.checkpoint import Vocabulary
    from tupe.cli.convert import main as convert
    from tupe.data.dictionary import Dictionary
    from tupe.hub import HubError, TupeHub
    from tupe.train.validate import main as validate

    pre = tmp_path / "pre"                                      # a masked-LM model: trained head
    assert main(tiny_args(data_dir, pre, "--max-update", "1")) == 0
    assert tupe.load_model(pre).lm_head_trained is True
    paths = [electra_run, tmp_path / "own", tmp_path / "orig" / "model.pt"]
    assert convert([str(electra_run), str(paths[1])]) == 0
    assert convert([str(paths[1]), str(paths[2])]) == 0
    if importlib.util.find_spec("transformers") is not None:         # the hf extra
        from transformers import AutoModelForMaskedLM

        importlib.import_module("tupe.hf")                             # registers the Auto classes
        paths.append(tmp_path / "hf")
        assert convert([str(paths[2]), str(paths[3]), "--hf"]) == 0
        with caplog.at_level("WARNING", logger="tupe.hf"):
            AutoModelForMaskedLM.from_pretrained(paths[3])
        assert "masked-LM head was made new and never trained" in caplog.text
    vocabulary = Vocabulary(Dictionary.load(data_dir / "dict.txt"), data_dir / "bpe-code")
    for path in paths:
        model = tupe.load_model(path)
        assert model.lm_head_trained is False, path
        with pytest.raises(HubError, match="masked-LM head was never trained"):
            TupeHub(model, vocabulary).fill_mask("the <mask> city")
    capsys.readouterr()
    assert validate([str(data_dir), "--path", str(paths[1]), "--tokens-per-sample", "32"]) == 1
    assert "its masked-LM head was never trained" in capsys.readouterr().err


def test_finetuning_restores_the_discriminator(electra_run, order_task, tmp_path, capsys):
    args = [str(order_task / "SST-2-bin"), "--cpu", "--task", "sentence_prediction", "--criterion", "sentence_prediction",
            "--arch", "bert_tiny", "--max-positions", "32", "--tokens-per-sample", "32", "--rel-pos",
            "--embedding-normalize", "--num-classes", "2", "--init-token", "0", "--separator-token", "2",
            "--max-sentences", "8", "--max-epoch", "1", "--lr", "1e-4", "--log-format", "simple",
            "--num-workers", "0", "--save-dir", str(tmp_path / "ft"),
            "--restore-file", str(electra_run / "checkpoint_last.pt")]
    assert main(args) == 1                                             # another task's progress and optimizer
    assert "was saved by a --task electra run; this is --task sentence_prediction" in capsys.readouterr().err
    assert main(args + ["--reset-dataloader", "--reset-meters"]) == 1   # the optimizer of another model
    assert "Start from its weights only: add --reset-optimizer (as" in capsys.readouterr().err
    assert main(args + ["--reset-optimizer", "--reset-dataloader", "--reset-meters"]) == 0
    ft = read_checkpoint(tmp_path / "ft" / "checkpoint_last.pt")["model"]
    assert not any(k.startswith(("generator.", "rtd_head.")) for k in ft)
    assert "classification_heads.sentence_classification_head.out_proj.weight" in ft
    assert "ELECTRA checkpoint: using its discriminator" in capsys.readouterr().err
    # finetuning trains no masked-LM head: the run's checkpoints say the head is still the new one
    assert tupe.load_model(tmp_path / "ft").lm_head_trained is False


def test_tupe_validate_reports_electra_losses(electra_run, data_dir, capsys):
    from tupe.train.validate import main as validate

    capsys.readouterr()
    # no flags: the run's own validation setup (block length, masks, and its batches, on which
    # the replacement sampling's seed depends), so the run's own figures
    assert validate([str(data_dir), "--path", str(electra_run), "--skip-invalid-size-inputs-valid-test"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    want = records(electra_run, "valid")[-1]
    for k in ("loss", "gen_loss", "disc_loss", "disc_acc", "replaced"):
        assert out[k] == pytest.approx(want[k], abs=6e-5), k
    # other batches draw other replacements: the figures move
    assert validate([str(data_dir), "--path", str(electra_run), "--skip-invalid-size-inputs-valid-test",
                     "--max-sentences", "3"]) == 0
    other = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert other["masked_tokens"] == out["masked_tokens"] and other["replaced"] != out["replaced"]


def test_electra_refuses_to_resume_a_masked_lm_checkpoint(data_dir, tmp_path, capsys):
    assert main(tiny_args(data_dir, tmp_path / "m", "--max-update", "1")) == 0
    assert main(electra_args(data_dir, tmp_path / "m", "--max-update", "2")) == 1
    assert "is not an ELECTRA checkpoint" in capsys.readouterr().err


def test_discriminator_learns_detectable_replacements():
    """The whole RTD path learns when replacements are detectable: a generator that only proposes
    tokens 31..39 (never in the data, 5..30) is caught far above the base rate."""
    torch.manual_seed(0)
    c = TupeConfig(vocab_size=40, encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                   encoder_attention_heads=4, max_positions=16, dropout=0.0, attention_dropout=0.0)
    model = ElectraModel(c, generator_config(c, 2))
    with torch.no_grad():
        model.generator.lm_head.bias[:31] = -1e4
    params = [p for n, p in model.named_parameters() if not n.startswith("generator.")]
    opt = torch.optim.Adam(params, lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for step in range(150):
        original = torch.randint(5, 31, (16, 12), generator=g)
        original[:, 0] = 0
        masked = torch.rand(16, 12, generator=g) < 0.15
        masked[:, 0] = False
        tokens = original.masked_fill(masked, 4)
        target = torch.where(masked, original, torch.full_like(original, PAD))
        _, rtd, stats = model.losses(tokens, target, seed=step)
        opt.zero_grad()
        (rtd / stats["tokens"]).backward()
        opt.step()
    acc, base = float(stats["rtd_correct"] / stats["tokens"]), 1 - float(stats["replaced"] / stats["tokens"])
    assert stats["replaced"] > 0 and acc > 0.97 and acc > base + 0.05, (acc, base)
