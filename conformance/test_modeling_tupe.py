"""tupe.hf under transformers' own common model tests.

``conformance/hf_suite.py`` copies this file into the test tree of the installed transformers'
source release (as ``tests/models/tupe/test_modeling_tupe.py``) and runs it there: the test
battery (``ModelTesterMixin`` from ``tests/test_modeling_common.py``, ``ConfigTester`` from
``tests/test_configuration_common.py``) is transformers' own, fetched, not copied into this
repository. What is ours: a ``TupeModelTester`` (a tiny model, right-padded ``attention_mask``,
labels for every head class) and one test class per scheme. The registration an in-tree model
gets from transformers' auto tables is done here, at import.
"""

import unittest

import torch
from transformers.models.auto import configuration_auto, modeling_auto

from tupe.config import SCHEMES
from tupe.hf import (
    TupeForMaskedLM,
    TupeForQuestionAnswering,
    TupeForSequenceClassification,
    TupeForTokenClassification,
    TupeHfConfig,
    TupeHfModel,
)

from ...test_configuration_common import ConfigTester
from ...test_modeling_common import ModelTesterMixin, ids_tensor

# What an in-tree model would have in transformers' auto tables (the tests read the class names
# from them to decide which inputs and labels each class takes).
configuration_auto.CONFIG_MAPPING_NAMES.setdefault("tupe", "TupeHfConfig")
for table, cls in (("MODEL_MAPPING_NAMES", TupeHfModel), ("MODEL_FOR_MASKED_LM_MAPPING_NAMES", TupeForMaskedLM),
                   ("MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES", TupeForSequenceClassification),
                   ("MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES", TupeForTokenClassification),
                   ("MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES", TupeForQuestionAnswering)):
    getattr(modeling_auto, table).setdefault("tupe", cls.__name__)

PAD = 1


class TupeModelTester:
    """A tiny TUPE model of one scheme and a batch for it: <s>-first rows of random lengths,
    right-padded (pad id 1 where ``attention_mask`` is 0, never inside a row)."""

    def __init__(self, parent, scheme, batch_size=13, seq_length=7, is_training=True, vocab_size=99,
                 hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                 max_position_embeddings=64, num_labels=3, type_sequence_label_size=2):
        self.parent, self.scheme = parent, scheme
        self.batch_size, self.seq_length, self.is_training = batch_size, seq_length, is_training
        self.vocab_size, self.hidden_size, self.num_hidden_layers = vocab_size, hidden_size, num_hidden_layers
        self.num_attention_heads, self.intermediate_size = num_attention_heads, intermediate_size
        self.max_position_embeddings, self.num_labels = max_position_embeddings, num_labels
        self.type_sequence_label_size = type_sequence_label_size

    def get_config(self):
        return TupeHfConfig(vocab_size=self.vocab_size, encoder_embed_dim=self.hidden_size,
                            encoder_layers=self.num_hidden_layers, encoder_attention_heads=self.num_attention_heads,
                            encoder_ffn_embed_dim=self.intermediate_size, max_positions=self.max_position_embeddings,
                            embedding_normalize=True, num_labels=self.num_labels, **SCHEMES[self.scheme])

    def prepare_config_and_inputs(self):
        B, T = self.batch_size, self.seq_length
        input_ids = ids_tensor([B, T], self.vocab_size - 4) + 4           # no special id inside a row
        input_ids[:, 0] = 0                                                # <s>
        lengths = ids_tensor([B], T - 1) + 2                               # 2..T real tokens
        lengths[0] = T
        attention_mask = (torch.arange(T, device=input_ids.device)[None, :] < lengths[:, None]).long()
        input_ids = input_ids.masked_fill(attention_mask == 0, PAD)
        sequence_labels = ids_tensor([B], self.type_sequence_label_size)
        token_labels = ids_tensor([B, T], self.num_labels)
        return self.get_config(), input_ids, attention_mask, sequence_labels, token_labels

    def prepare_config_and_inputs_for_common(self):
        config, input_ids, attention_mask, _, _ = self.prepare_config_and_inputs()
        return config, {"input_ids": input_ids, "attention_mask": attention_mask}

    def check_heads(self):
        config, input_ids, mask, sequence_labels, token_labels = self.prepare_config_and_inputs()
        B, T, C = self.batch_size, self.seq_length, self.hidden_size
        out = TupeHfModel(config).eval()(input_ids, attention_mask=mask)
        self.parent.assertEqual(out.last_hidden_state.shape, (B, T, C))
        out = TupeForMaskedLM(config).eval()(input_ids, attention_mask=mask, labels=token_labels)
        self.parent.assertEqual(out.logits.shape, (B, T, self.vocab_size))
        out = TupeForSequenceClassification(config).eval()(input_ids, attention_mask=mask, labels=sequence_labels)
        self.parent.assertEqual(out.logits.shape, (B, self.num_labels))
        out = TupeForTokenClassification(config).eval()(input_ids, attention_mask=mask, labels=token_labels)
        self.parent.assertEqual(out.logits.shape, (B, T, self.num_labels))
        out = TupeForQuestionAnswering(config).eval()(input_ids, attention_mask=mask,
                                                      start_positions=sequence_labels, end_positions=sequence_labels)
        self.parent.assertEqual(out.start_logits.shape, (B, T))


class _TupeModelTest(ModelTesterMixin):
    scheme = None
    all_model_classes = (TupeHfModel, TupeForMaskedLM, TupeForSequenceClassification, TupeForTokenClassification,
                         TupeForQuestionAnswering)
    test_resize_embeddings = True
    # Our _init_weights initialises every weight and buffer: run the test (the switch is for models
    # added before 2023, which transformers tells from a copyright year our files do not carry).
    test_can_init_all_missing_weights_before_2023 = True

    def setUp(self):
        self.model_tester = TupeModelTester(self, self.scheme)
        self.config_tester = ConfigTester(self, config_class=TupeHfConfig, encoder_embed_dim=48)

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_heads(self):
        self.model_tester.check_heads()


class TupeRModelTest(_TupeModelTest, unittest.TestCase):
    scheme = "TUPE-R"
    test_resize_position_embeddings = True     # its untied positional table (RoPE and ALiBi have none)


class TupeAModelTest(_TupeModelTest, unittest.TestCase):
    scheme = "TUPE-A"
    test_resize_position_embeddings = True


class RoPEModelTest(_TupeModelTest, unittest.TestCase):
    scheme = "RoPE"


class ALiBiModelTest(_TupeModelTest, unittest.TestCase):
    scheme = "ALiBi"
