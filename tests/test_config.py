import argparse

import pytest
import torch

from tupe import PRESETS, ConfigError, TupeConfig, TupeModel


def test_presets():
    base = TupeConfig.from_preset("bert_base", vocab_size=32769)
    assert (base.encoder_layers, base.encoder_embed_dim, base.encoder_attention_heads,
            base.encoder_ffn_embed_dim) == (12, 768, 12, 3072)
    large = TupeConfig.from_preset("bert_large", vocab_size=100, rel_pos=True)
    assert (large.encoder_layers, large.encoder_embed_dim, large.encoder_attention_heads,
            large.encoder_ffn_embed_dim, large.rel_pos) == (24, 1024, 16, 4096, True)
    assert {"bert_small", "bert_tiny"} <= set(PRESETS)
    with pytest.raises(ConfigError, match="unknown architecture 'bert_huge'"):
        TupeConfig.from_preset("bert_huge", vocab_size=10)


@pytest.mark.parametrize("overrides,message", [
    (dict(encoder_embed_dim=30), "not divisible by encoder_attention_heads"),
    (dict(encoder_layers=0), "encoder_layers must be a positive integer"),
    (dict(dropout=1.5), "dropout must be in"),
    (dict(pos_encoding="sinusoid"), "pos_encoding='sinusoid'"),
    (dict(pos_encoding="absolute", untie_cls=True), "untie_cls=True needs pos_encoding='tupe'"),
    (dict(activation_fn="swish"), "activation_fn='swish'"),
    (dict(rel_pos_bins=31), "rel_pos_bins must be an even number"),
    (dict(padding_idx=100), "padding_idx=100 is outside the vocabulary"),
])
def test_invalid_configs_are_rejected(overrides, message):
    values = dict(vocab_size=50, encoder_embed_dim=32, encoder_attention_heads=4)
    values.update(overrides)
    with pytest.raises(ConfigError, match=message):
        TupeConfig(**values)


def test_scheme_names_and_defaults():
    assert TupeConfig(vocab_size=10).name == "TUPE-A"
    assert TupeConfig(vocab_size=10).untie_cls is True
    assert TupeConfig(vocab_size=10, rel_pos=True).name == "TUPE-R"
    assert TupeConfig(vocab_size=10, untie_cls=False).name == "TUPE-A-tie-cls"
    bert = TupeConfig(vocab_size=10, pos_encoding="absolute")
    assert bert.name == "BERT-A" and bert.untie_cls is False
    assert TupeConfig(vocab_size=10, pos_encoding="absolute", rel_pos=True).name == "BERT-R"


def test_dict_round_trip_and_args():
    cfg = TupeConfig(vocab_size=99, rel_pos=True, encoder_layers=3)
    assert TupeConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown configuration fields: bogus"):
        TupeConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    # an original checkpoint's args: no pos_encoding/untie_cls -> TUPE with untied [CLS]
    args = argparse.Namespace(arch="bert_base", vocab_size=99, rel_pos=True, max_positions=128,
                              data="/somewhere/else", lr=[1e-4])
    cfg = TupeConfig.from_args(args)
    assert cfg.pos_encoding == "tupe" and cfg.untie_cls is True and cfg.encoder_layers == 12
    assert cfg.max_positions == 128


def n_params(**kw):
    with torch.device("meta"):          # shapes only: no memory, no initialisation
        return TupeModel(TupeConfig.from_preset("bert_base", vocab_size=32769, **kw)).num_parameters()


def test_parameter_count_differences_bert_base():
    C, H, L = 768, 12, 512
    tupe_a, tupe_r = n_params(max_positions=L), n_params(max_positions=L, rel_pos=True)
    bert_a = n_params(max_positions=L, pos_encoding="absolute")
    bert_r = n_params(max_positions=L, pos_encoding="absolute", rel_pos=True)
    # position table: L+1 rows vs L; pos_ln: 2C; two C x C projections with biases
    untied = C + 2 * C + 2 * (C * C + C)
    assert tupe_a - bert_a == untied == 1_183_488                  # "about 1.18M" in the paper
    assert tupe_r - tupe_a == 33 * H == bert_r - bert_a
    assert n_params(max_positions=L, untie_cls=False) == tupe_a    # tie-cls: same parameters
