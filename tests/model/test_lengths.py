"""Positional tables resized after training (tupe/model/lengths.py), for every registered scheme."""

import pytest
import torch

from tests.conftest import random_tokens, tiny_config
from tupe import ConfigError, TupeModel, load_model, save_pretrained
from tupe.config import SCHEMES, scheme_overrides
from tupe.model import resize_positions
from tupe.model.electra import ElectraModel, generator_config

TABLES = [name for name in SCHEMES if scheme_overrides(name).get("pos_encoding", "tupe") in ("tupe", "absolute")]
NO_TABLES = [name for name in SCHEMES if name not in TABLES]


def model_of(scheme: str, seed: int = 0) -> TupeModel:
    torch.manual_seed(seed)
    return TupeModel(tiny_config(max_positions=16, **scheme_overrides(scheme))).eval()


def features(model, tokens):
    with torch.no_grad():
        return model.encoder.encode(tokens).last_hidden_state


def table_of(model) -> torch.Tensor:
    enc = model.encoder
    return (enc.untied_pos.pos.weight if enc.untied_pos is not None else enc.embed_positions.weight).detach().clone()


def test_every_scheme_is_sorted():
    assert TABLES and NO_TABLES and {"TUPE-R", "TUPE-A", "BERT-A"} <= set(TABLES) and "RoPE" in NO_TABLES


@pytest.mark.parametrize("init", ["copy", "random"])
@pytest.mark.parametrize("scheme", TABLES)
def test_growing_keeps_short_inputs_and_admits_long_ones(scheme, init):
    model = model_of(scheme)
    short, long = random_tokens(3, 16, pad_to=16), random_tokens(2, 40, seed=1)
    before, table = features(model, short), table_of(model)
    with pytest.raises(ValueError, match="exceeds max_positions=16"):
        features(model, long)
    resize_positions(model, 40, init)
    assert model.cfg.max_positions == 40 and model.encoder.max_length == 40 and model.encoder.cfg.max_positions == 40
    assert torch.equal(features(model, short), before)          # the rows they use are kept, bit for bit
    assert features(model, long).shape == (2, 40, 16) and torch.isfinite(features(model, long)).all()
    grown = table_of(model)
    first = 1 if model.encoder.untied_pos is not None else 0       # TUPE's row 0 is [CLS]'s, not a position
    assert grown.shape[0] == first + 40 and torch.equal(grown[: first + 16], table)
    if init == "copy":   # position 16 + k takes position k's row (k mod 16)
        assert torch.equal(grown[first + 16: first + 32], table[first:])
        assert torch.equal(grown[first + 32:], table[first: first + 8])
    else:                # drawn as at initialisation: std 0.02, nothing copied
        new = grown[first + 16:]
        assert 0.01 < new.std().item() < 0.03 and not torch.equal(new[:16], table[first:])


@pytest.mark.parametrize("scheme", TABLES)
def test_shrinking_keeps_inputs_that_fit(scheme):
    model = model_of(scheme)
    tokens = random_tokens(3, 10, pad_to=10)
    before = features(model, tokens)
    resize_positions(model, 10)
    assert torch.equal(features(model, tokens), before)
    with pytest.raises(ValueError, match="exceeds max_positions=10"):
        features(model, random_tokens(1, 12))


@pytest.mark.parametrize("scheme", ["TUPE-R", "BERT-A"])
def test_resized_model_saves_and_loads_whole(scheme, tmp_path):
    model = model_of(scheme)
    resize_positions(model, 48, "random")
    save_pretrained(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m").eval()
    assert loaded.cfg.max_positions == 48
    tokens = random_tokens(2, 48, seed=3)
    assert torch.equal(features(loaded, tokens), features(model, tokens))


@pytest.mark.parametrize("scheme", NO_TABLES)
def test_schemes_without_tables_are_refused(scheme):
    model = model_of(scheme)
    expected = "trained length" if "RoPE" in scheme else "has no positional table"
    with pytest.raises(ValueError, match=expected):
        resize_positions(model, 40)
    assert model.cfg.max_positions == 16                       # nothing changed


def test_bad_init_and_length_change_nothing():
    model = model_of("TUPE-A")
    with pytest.raises(ValueError, match="init 'zeros': one of copy, random"):
        resize_positions(model, 40, "zeros")
    with pytest.raises(ConfigError, match="max_positions must be a positive integer, got 0"):
        resize_positions(model, 0)
    assert model.cfg.max_positions == 16 and table_of(model).shape[0] == 17


def test_frozen_table_stays_frozen():
    model = model_of("TUPE-R")
    model.encoder.untied_pos.pos.weight.requires_grad_(False)
    resize_positions(model, 32)
    assert not model.encoder.untied_pos.pos.weight.requires_grad
    assert all(p.requires_grad for n, p in model.named_parameters() if "untied_pos.pos." not in n)


def test_electra_resizes_both_encoders():
    cfg = tiny_config(max_positions=16, rel_pos=True)
    model = ElectraModel(cfg, generator_config(cfg, divisor=2)).eval()
    resize_positions(model, 32)
    assert model.cfg.max_positions == model.gen_cfg.max_positions == 32
    assert model.discriminator.encoder.max_length == model.generator.encoder.max_length == 32
    assert model.discriminator.encoder.cfg is model.cfg                # sharing of one config kept
    with torch.no_grad():
        assert model.generator.encoder.encode(embeds=torch.randn(1, 32, model.gen_cfg.encoder_embed_dim)) \
            .last_hidden_state.shape[1] == 32


def test_rope_scaling_reaches_every_config_of_an_electra_model():
    """with_rope_scaling (tupe-validate --rope-scaling) goes through the same replace_config: the
    generator's configurations said the model's old scaling before (only its encoder was changed)."""
    from tupe.train.evaluate import with_rope_scaling

    cfg = tiny_config(max_positions=16, pos_encoding="rope")
    model = ElectraModel(cfg, generator_config(cfg, divisor=2))
    with_rope_scaling(model, "dynamic", 4.0)
    configs = [model.cfg, model.gen_cfg, model.generator.cfg, model.generator.encoder.cfg,
               model.discriminator.cfg, model.discriminator.encoder.cfg]
    assert all((c.rope_scaling, c.rope_scaling_factor) == ("dynamic", 4.0) for c in configs)
    assert model.generator.encoder.rotary.scaling == model.discriminator.encoder.rotary.scaling == "dynamic"


def test_a_relative_table_alone_is_resized():
    """ALiBi with the relative bias (a combination the registry does not name: ALiBi-R) is limited
    by its bucket table; it was refused as "no table: any length", which was not true of it."""
    torch.manual_seed(0)
    model = TupeModel(tiny_config(max_positions=16, pos_encoding="alibi", rel_pos=True)).eval()
    short = random_tokens(2, 16, pad_to=16)
    before = features(model, short)
    with pytest.raises(ValueError, match="exceeds max_positions=16"):
        features(model, random_tokens(1, 24))
    resize_positions(model, 24)
    assert torch.equal(features(model, short), before) and features(model, random_tokens(1, 24)).shape[1] == 24
