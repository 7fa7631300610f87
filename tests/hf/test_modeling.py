"""The transformers classes against the native model: same numbers, HF conventions honoured."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import FIXTURE, random_tokens, tiny_config
from tests.model.test_invariance import perturbed
from tupe import TupeConfig, load_model

hf = pytest.importorskip("tupe.hf")
from transformers import (  # noqa: E402
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from tupe.config import SCHEMES  # noqa: E402  (every registered scheme)


def native_and_folder(scheme, tmp_path, num_classes=3):
    model = perturbed(tiny_config(**SCHEMES[scheme]))
    model.register_classification_head(model.DEFAULT_HEAD, num_classes)
    with torch.no_grad():   # move the new head off its init too
        for p in model.classification_heads.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.eval()
    folder = hf.export_hf(model, tmp_path / "hf")
    return model, folder


def right_padded(pad_id):
    """Rows of different lengths; padding filled with ``pad_id`` (any id: the mask decides)."""
    tokens = random_tokens(4, 12, seed=7)
    mask = tokens.ne(1).long()
    return tokens.masked_fill(mask == 0, pad_id), mask, tokens


# ----------------------------------------------------------------------------- configuration
@pytest.mark.parametrize("scheme", SCHEMES)
def test_config_round_trip(scheme, tmp_path):
    cfg = tiny_config(**SCHEMES[scheme], activation_fn="gelu_accurate", dropout=0.2, max_rel_pos=64)
    hcfg = hf.TupeHfConfig.from_tupe_config(cfg)
    assert hcfg.to_tupe_config() == cfg
    assert (hcfg.hidden_size, hcfg.num_hidden_layers, hcfg.num_attention_heads, hcfg.pad_token_id) == (
        cfg.encoder_embed_dim, cfg.encoder_layers, cfg.encoder_attention_heads, cfg.padding_idx)
    hcfg.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "tupe" and {k: saved[k] for k in cfg.to_dict()} == cfg.to_dict()
    back = AutoConfig.from_pretrained(tmp_path)
    assert type(back) is hf.TupeHfConfig and back.to_tupe_config() == cfg


def test_config_is_validated():
    with pytest.raises(ValueError, match="not divisible"):
        hf.TupeHfConfig(encoder_embed_dim=30, encoder_attention_heads=4)
    with pytest.raises(ValueError, match="pos_encoding"):
        hf.TupeHfConfig(pos_encoding="sinusoid")


# ----------------------------------------------------------------------------- parity
@pytest.mark.parametrize("scheme", SCHEMES)
def test_parity_with_native_right_padding(scheme, tmp_path):
    model, folder = native_and_folder(scheme, tmp_path)
    tokens_pad5, mask, tokens = right_padded(pad_id=5)
    real = mask.bool()
    base = AutoModel.from_pretrained(folder).eval()
    mlm = AutoModelForMaskedLM.from_pretrained(folder).eval()
    cls = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert (type(base), type(mlm), type(cls)) == (hf.TupeHfModel, hf.TupeForMaskedLM, hf.TupeForSequenceClassification)
    with torch.no_grad():
        want_f = model.extract_features(tokens)
        want_l = model(tokens)
        want_c = model(tokens, classification_head_name=model.DEFAULT_HEAD)
        got_f = base(tokens_pad5, attention_mask=mask).last_hidden_state
        got_l = mlm(tokens_pad5, attention_mask=mask).logits
        got_c = cls(tokens_pad5, attention_mask=mask).logits
        # without attention_mask every token is attended (transformers' convention)
        got_nomask = base(tokens).last_hidden_state
        want_nomask = model.encoder.encode(tokens, padding=torch.zeros_like(real)).last_hidden_state
    torch.testing.assert_close(got_f[real], want_f[real], atol=1e-6, rtol=0)
    torch.testing.assert_close(got_l[real], want_l[real], atol=1e-6, rtol=0)
    torch.testing.assert_close(got_c, want_c, atol=1e-6, rtol=0)
    torch.testing.assert_close(got_nomask, want_nomask, atol=1e-6, rtol=0)
    assert not torch.allclose(got_nomask[real], want_f[real], atol=1e-4)   # the padding did count


def test_reference_fixture_through_transformers(tmp_path):
    """The original code's outputs, through an exported folder and AutoModelForMaskedLM."""
    native = load_model(FIXTURE / "checkpoint.pt")
    folder = hf.export_hf(native, tmp_path / "hf")
    model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    expected = np.load(FIXTURE / "expected.npz")
    for k in (0, 1):
        tokens = torch.from_numpy(expected[f"tokens_{k}"]).long()
        real = tokens.ne(1)
        with torch.no_grad():
            out = model(tokens, attention_mask=real.long(), output_hidden_states=True)
            native_logits = native(tokens)
        torch.testing.assert_close(out.logits[real], native_logits[real], atol=1e-6, rtol=0)
        torch.testing.assert_close(out.logits[real], torch.from_numpy(expected[f"logits_{k}"])[real], atol=1e-5, rtol=0)
        torch.testing.assert_close(out.hidden_states[-1][real], torch.from_numpy(expected[f"features_{k}"])[real],
                                   atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", ["eager", "sdpa", "flex_attention"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_left_padding_equals_right_padding(scheme, impl, tmp_path):
    """Positions come from attention_mask per row: every real token (and the classifier on each
    row's [CLS]) gets the same outputs left- or right-padded, whatever the pad id."""
    _, folder = native_and_folder(scheme, tmp_path)
    model = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation=impl).eval()
    _, mask, tokens = right_padded(pad_id=1)
    T = tokens.size(1)
    left_tokens, left_mask = torch.full_like(tokens, 5), torch.zeros_like(mask)   # pad id 5: the mask decides
    for i, n in enumerate(mask.sum(1).tolist()):
        left_tokens[i, T - n:], left_mask[i, T - n:] = tokens[i, :n], 1
    with torch.no_grad():
        a = model(tokens, attention_mask=mask, output_hidden_states=True)
        b = model(left_tokens, attention_mask=left_mask, output_hidden_states=True)
    torch.testing.assert_close(b.logits, a.logits, atol=1e-5, rtol=1e-5)
    for i, n in enumerate(mask.sum(1).tolist()):
        for ha, hb in zip(a.hidden_states, b.hidden_states):
            torch.testing.assert_close(hb[i, T - n:], ha[i, :n], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_sequence_classifier_inference_computes_cls_alone(scheme, impl, tmp_path):
    """In eval mode without hidden states asked for, the last layer runs for [CLS] alone: the
    same logits as the full forward (asking for hidden states), right- or left-padded."""
    _, folder = native_and_folder(scheme, tmp_path)
    model = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation=impl).eval()
    seen = []
    model.tupe.encoder.layers[-1].fc1.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    _, mask, tokens = right_padded(pad_id=1)
    T = tokens.size(1)
    left_tokens, left_mask = torch.full_like(tokens, 5), torch.zeros_like(mask)
    for i, n in enumerate(mask.sum(1).tolist()):
        left_tokens[i, T - n:], left_mask[i, T - n:] = tokens[i, :n], 1
    for ids, m in ((tokens, mask), (left_tokens, left_mask)):
        with torch.no_grad():
            short = model(ids, attention_mask=m).logits
            full = model(ids, attention_mask=m, output_hidden_states=True).logits
        torch.testing.assert_close(short, full, atol=1e-5, rtol=1e-5)
    assert seen == [1, T, 1, T]


def test_padding_between_real_tokens_is_refused(tmp_path):
    _, folder = native_and_folder("TUPE-R", tmp_path)
    model = AutoModel.from_pretrained(folder).eval()
    tokens = random_tokens(2, 6)
    mask = torch.tensor([[1, 1, 0, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    with pytest.raises(hf.PaddingError, match="contiguous"):
        model(tokens, attention_mask=mask)


def test_hidden_states_of_chosen_layers(tmp_path):
    """output_hidden_states as transformers 5.x reads it: a flag, or indices (negative from the end)."""
    _, folder = native_and_folder("TUPE-R", tmp_path)
    model = AutoModel.from_pretrained(folder).eval()
    tokens = random_tokens(2, 8)
    with torch.no_grad():
        every = model(tokens, output_hidden_states=True).hidden_states
        chosen = model(tokens, output_hidden_states=[0, -1]).hidden_states
        one = model(tokens, output_hidden_states=1).hidden_states
        first = model(tokens, output_hidden_states=0).hidden_states     # index 0 is an index, not False
    assert len(every) == len(chosen) == len(one) == model.config.num_hidden_layers + 1
    assert [h is None for h in chosen] == [False] + [True] * (len(every) - 2) + [False]
    assert torch.equal(chosen[0], every[0]) and torch.equal(chosen[-1], every[-1])
    assert [h is not None for h in one] == [i == 1 for i in range(len(every))] and torch.equal(one[1], every[1])
    assert [h is not None for h in first] == [i == 0 for i in range(len(every))] and torch.equal(first[0], every[0])
    assert set(hf.TupeHfModel._can_record_outputs) == {"hidden_states", "attentions"}


def test_save_and_reload_is_bitwise(tmp_path):
    _, folder = native_and_folder("TUPE-R", tmp_path)
    for auto in (AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification):
        a = auto.from_pretrained(folder)
        a.save_pretrained(tmp_path / auto.__name__)
        b = auto.from_pretrained(tmp_path / auto.__name__)
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), auto.__name__
    # the MLM decoder is the token embedding itself, before and after a reload
    mlm = AutoModelForMaskedLM.from_pretrained(tmp_path / "AutoModelForMaskedLM")
    assert not any(k.startswith("lm_head.weight") for k in mlm.state_dict())


# ----------------------------------------------------------------------------- HF conventions
def test_hidden_states_attentions_and_tuples(tmp_path):
    model, folder = native_and_folder("TUPE-R", tmp_path)
    base = AutoModel.from_pretrained(folder).eval()
    _, mask, tokens = right_padded(pad_id=1)
    with torch.no_grad():
        out = base(tokens, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        as_tuple = base(tokens, attention_mask=mask, return_dict=False)
    L, H, T = model.cfg.encoder_layers, model.cfg.encoder_attention_heads, tokens.size(1)
    assert len(out.hidden_states) == L + 1 and len(out.attentions) == L
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 1
    torch.testing.assert_close(as_tuple[0], out.last_hidden_state, atol=1e-6, rtol=0)   # SDPA vs eager path
    probs = out.attentions[0]
    assert probs.shape == (4, H, T, T)
    torch.testing.assert_close(probs.sum(-1), torch.ones(4, H, T))
    assert probs.masked_select(~mask.bool()[:, None, None, :].expand_as(probs)).abs().max() == 0
    # the probabilities are the paper's: softmax(word logits / sqrt(2d) + positional bias), layer 0
    enc = model.encoder
    x = out.hidden_states[0]
    attn = enc.layers[0].self_attn
    q, k, _ = attn.in_proj(x).chunk(3, dim=-1)
    d = q.size(-1) // H
    q, k = (t.view(4, T, H, d).transpose(1, 2) for t in (q, k))
    logits = q @ k.transpose(-1, -2) / (2 * d) ** 0.5 + enc.positional_bias(T)
    want = logits.masked_fill(~mask.bool()[:, None, None, :], float("-inf")).softmax(-1)
    torch.testing.assert_close(probs, want, atol=1e-6, rtol=1e-5)


def test_inputs_embeds_equal_input_ids(tmp_path):
    _, folder = native_and_folder("TUPE-A", tmp_path)
    base = AutoModel.from_pretrained(folder).eval()
    _, mask, tokens = right_padded(pad_id=1)
    with torch.no_grad():
        a = base(tokens, attention_mask=mask).last_hidden_state
        b = base(inputs_embeds=base.get_input_embeddings()(tokens), attention_mask=mask).last_hidden_state
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    with pytest.raises(ValueError, match="exactly one"):
        base(tokens, inputs_embeds=base.get_input_embeddings()(tokens))
    with pytest.raises(ValueError, match="no segment"):
        base(tokens, token_type_ids=torch.ones_like(tokens))


@pytest.mark.parametrize("options", [dict(), dict(activation_checkpointing_kwargs={"use_reentrant": True}),
                                     dict(activation_checkpointing_kwargs={"use_reentrant": False}),
                                     dict(every_n_layers=2)], ids=["default", "reentrant", "non-reentrant", "every-2nd"])
def test_gradient_checkpointing_options(options, tmp_path):
    """transformers' own mechanism (GradientCheckpointingLayer): its options are honoured (every
    n-th layer: that many checkpointed calls) and the gradients are those without checkpointing."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    native = perturbed(tiny_config(**SCHEMES["TUPE-R"], encoder_layers=4))
    native.register_classification_head(native.DEFAULT_HEAD, 3)   # saved: both models start from the same head
    folder = hf.export_hf(native, tmp_path / "hf")
    _, mask, tokens = right_padded(pad_id=1)
    labels = torch.tensor([0, 2, 1, 1])
    grads, calls = [], []
    for checkpointing in (False, True):
        model = AutoModelForSequenceClassification.from_pretrained(folder, dropout=0.0,
                                                                   attention_dropout=0.0, pooler_dropout=0.0).train()
        layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
        assert len(layers) == 4
        if checkpointing:
            model.activation_checkpointing_enable(**options)
            assert model.is_activation_checkpointing
            for layer in layers:
                run = layer._gradient_checkpointing_func
                layer._gradient_checkpointing_func = lambda *a, run=run, **k: calls.append(1) or run(*a, **k)
        model(tokens, attention_mask=mask, labels=labels).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert len(calls) == 4 // options.get("every_n_layers", 1)
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], atol=1e-6, rtol=1e-5, msg=n)
    model.activation_checkpointing_disable()
    assert not model.is_activation_checkpointing


def test_returned_attentions_carry_gradients(tmp_path):
    _, folder = native_and_folder("TUPE-R", tmp_path)
    model = AutoModel.from_pretrained(folder, attn_implementation="eager")
    out = model(random_tokens(2, 8), output_attentions=True, output_hidden_states=True)
    out.attentions[0].retain_grad()
    out.hidden_states[0].retain_grad()
    out.last_hidden_state.flatten()[0].backward()
    assert out.attentions[0].grad is not None and out.attentions[0].grad.abs().sum() > 0
    assert out.hidden_states[0].grad is not None


@pytest.mark.parametrize("kind", ["linear", "dynamic", "yarn"])
def test_rope_scaling_matches_transformers(kind, tmp_path):
    """rope_parameters map onto the native RoPE fields, and the native frequencies (and YaRN's
    temperature) equal transformers' own rope functions of the same name, below and past the length."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from tupe.model.positional import RotaryEmbedding

    cfg = tiny_config(**SCHEMES["RoPE"], rope_scaling=kind, rope_scaling_factor=4.0, max_positions=16)
    hcfg = hf.TupeHfConfig.from_tupe_config(cfg)
    assert hcfg.rope_parameters["rope_type"] == kind and hcfg.rope_parameters["factor"] == 4.0
    assert hcfg.to_tupe_config() == cfg
    hcfg.head_dim = cfg.head_dim
    rope = RotaryEmbedding(cfg)
    for T in (8, 40):
        want, temperature = ROPE_INIT_FUNCTIONS[kind](hcfg, "cpu", *([T] if kind == "dynamic" else []))
        torch.testing.assert_close(rope.inverse_frequencies(T), want.float(), atol=1e-6, rtol=1e-6)
        cos, _ = rope(T)
        assert abs(float(cos[0, 0]) - temperature) < 1e-6            # cos(0) * temperature
    hcfg.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).to_tupe_config() == cfg
    assert not hasattr(hf.TupeHfConfig.from_tupe_config(tiny_config()), "rope_parameters")   # RoPE models only


def test_unsupported_rope_type_is_refused():
    hcfg = hf.TupeHfConfig.from_tupe_config(tiny_config(**SCHEMES["RoPE"]))
    hcfg.rope_parameters = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0}
    with pytest.raises(ValueError, match="rope_scaling='llama3'; choose one of"):
        hcfg.to_tupe_config()


def test_resize_token_embeddings_keeps_the_tie(tmp_path):
    _, folder = native_and_folder("TUPE-R", tmp_path)
    model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    tokens = random_tokens(2, 8)
    with torch.no_grad():
        before = model(tokens).logits
    V = model.config.vocab_size
    model.resize_token_embeddings(V + 6)
    with torch.no_grad():
        after = model(tokens).logits
    assert after.shape[-1] == V + 6 == model.config.vocab_size == model.lm_head.bias.numel()
    torch.testing.assert_close(after[..., :V], before, atol=1e-6, rtol=0)
    with torch.no_grad():   # the decoder follows the (new) embedding: tied
        model.get_input_embeddings().weight[V + 2] += 1.0
        moved = model(tokens).logits
    assert not torch.allclose(moved[..., V + 2], after[..., V + 2])
    model.save_pretrained(tmp_path / "resized")
    again = AutoModelForMaskedLM.from_pretrained(tmp_path / "resized")
    assert again.config.vocab_size == V + 6


@pytest.mark.parametrize("scheme", ["TUPE-R", "BERT-A"])
def test_resize_position_embeddings_runs_past_the_trained_length(scheme, tmp_path):
    """transformers' resize_position_embeddings: the native tables resized (tupe/model/lengths.py);
    inputs within the old length unchanged; saved and loaded at the new length."""
    native, folder = native_and_folder(scheme, tmp_path)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    L = model.config.max_position_embeddings
    short, long = random_tokens(2, L), random_tokens(2, L + 8, seed=2)
    with torch.no_grad():
        before = model(short).logits
        with pytest.raises(ValueError, match=f"exceeds max_positions={L}"):
            model(long)
    table = model.get_position_embeddings().weight.detach().clone()
    model.resize_position_embeddings(L + 8)
    assert model.config.max_position_embeddings == L + 8 == model.tupe.encoder.cfg.max_positions
    assert model.get_position_embeddings().weight.shape[0] == table.shape[0] + 8
    with torch.no_grad():
        assert torch.equal(model(short).logits, before)
        longer = model(long).logits
    model.save_pretrained(tmp_path / "longer")
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "longer").eval()
    with torch.no_grad():
        assert again.config.max_position_embeddings == L + 8 and torch.equal(again(long).logits, longer)


def test_resize_position_embeddings_refused_without_a_table(tmp_path):
    _, folder = native_and_folder("ALiBi", tmp_path)
    model = AutoModel.from_pretrained(folder)
    with pytest.raises(NotImplementedError, match="ALiBi has no position embedding table"):
        model.get_position_embeddings()
    with pytest.raises(ValueError, match="it takes inputs of any length"):
        model.resize_position_embeddings(64)
    assert model.config.max_position_embeddings == 24


@pytest.mark.parametrize("problem", ["single_label_classification", "multi_label_classification", "regression"])
def test_sequence_classification_losses(problem, tmp_path):
    _, folder = native_and_folder("TUPE-R", tmp_path, num_classes=1 if problem == "regression" else 3)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    _, mask, tokens = right_padded(pad_id=1)
    g = torch.Generator().manual_seed(0)
    if problem == "single_label_classification":
        labels = torch.tensor([0, 2, 1, 2])
    elif problem == "multi_label_classification":
        labels = (torch.rand(4, 3, generator=g) > 0.5).float()
    else:
        labels = torch.rand(4, generator=g)
    with torch.no_grad():
        out = model(tokens, attention_mask=mask, labels=labels)
    assert model.config.problem_type == problem
    want = {"single_label_classification": lambda: F.cross_entropy(out.logits, labels),
            "multi_label_classification": lambda: F.binary_cross_entropy_with_logits(out.logits, labels),
            "regression": lambda: F.mse_loss(out.logits.squeeze(-1), labels)}[problem]()
    torch.testing.assert_close(out.loss, want)


def test_masked_lm_loss_ignores_minus_100(tmp_path):
    _, folder = native_and_folder("TUPE-R", tmp_path)
    model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    _, mask, tokens = right_padded(pad_id=1)
    labels = torch.full_like(tokens, -100)
    labels[0, 3], labels[2, 1] = 11, 20
    with torch.no_grad():
        out = model(tokens, attention_mask=mask, labels=labels)
    want = F.cross_entropy(torch.stack([out.logits[0, 3], out.logits[2, 1]]), torch.tensor([11, 20]))
    torch.testing.assert_close(out.loss, want)


def test_token_classification_and_question_answering(tmp_path):
    model, folder = native_and_folder("TUPE-R", tmp_path)
    _, mask, tokens = right_padded(pad_id=1)
    tok = AutoModelForTokenClassification.from_pretrained(folder, num_labels=5).eval()
    qa = AutoModelForQuestionAnswering.from_pretrained(folder).eval()
    assert (type(tok), type(qa)) == (hf.TupeForTokenClassification, hf.TupeForQuestionAnswering)
    labels = torch.randint(0, 5, tokens.shape).masked_fill(mask == 0, -100)
    with torch.no_grad():
        want = model.extract_features(tokens)
        t_out = tok(tokens, attention_mask=mask, labels=labels)
        q_out = qa(tokens, attention_mask=mask, start_positions=torch.tensor([1, 2, 0, 3]),
                   end_positions=torch.tensor([4, 2, 1, 50]))
    assert t_out.logits.shape == (4, 12, 5)
    torch.testing.assert_close(t_out.logits, tok.classifier(want), atol=1e-6, rtol=0)
    torch.testing.assert_close(t_out.loss, F.cross_entropy(t_out.logits.reshape(-1, 5), labels.view(-1)))
    start, end = qa.qa_outputs(want).unbind(-1)
    torch.testing.assert_close(q_out.start_logits, start, atol=1e-6, rtol=0)
    # end position 50 is outside the input: ignored, as transformers does
    want_loss = (F.cross_entropy(start, torch.tensor([1, 2, 0, 3]))
                 + F.cross_entropy(end[:3], torch.tensor([4, 2, 1]))) / 2
    torch.testing.assert_close(q_out.loss, want_loss)


def test_every_class_wraps_the_native_encoder(tmp_path):
    """One implementation: the transformers classes hold the native Encoder, not a copy."""
    from tupe.model.transformer import Encoder, SelfAttention

    _, folder = native_and_folder("TUPE-R", tmp_path)
    for auto in (AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification,
                 AutoModelForTokenClassification, AutoModelForQuestionAnswering):
        model = auto.from_pretrained(folder)
        encoders = [m for m in model.modules() if isinstance(m, Encoder)]
        attentions = [m for m in model.modules() if isinstance(m, SelfAttention)]
        assert len(encoders) == 1 and len(attentions) == TupeConfig(**model.config.to_tupe_config().to_dict()).encoder_layers


def test_hf_config_declares_every_native_field_with_its_default():
    from dataclasses import MISSING, fields

    hcfg = hf.TupeHfConfig()
    for f in fields(TupeConfig):
        assert hasattr(hf.TupeHfConfig, f.name) or f.name in hcfg.__dict__, f.name
        if f.default is not MISSING and f.name != "untie_cls":
            assert getattr(hcfg, f.name) == f.default, f.name


def test_attn_implementation_flex_attention_runs_the_native_flex_path(tmp_path):
    """attn_implementation="flex_attention" selects the native FlexAttention path (the default,
    "sdpa", the native SDPA kernel): same logits as the bias form on the reference checkpoint, with gradients."""
    native = load_model(FIXTURE / "checkpoint.pt")
    folder = hf.export_hf(native, tmp_path / "hf")
    default = AutoModelForMaskedLM.from_pretrained(folder)
    flex = AutoModelForMaskedLM.from_pretrained(folder, attn_implementation="flex_attention")
    assert flex.config._attn_implementation == "flex_attention"
    assert default.config._attn_implementation != "flex_attention"
    tokens = torch.from_numpy(np.load(FIXTURE / "expected.npz")["tokens_0"]).long()
    real = tokens.ne(1)
    outs = []
    for model in (default, flex):
        model.train()                       # gradients in train mode, every dropout off (flex has none)
        for m in model.modules():
            if isinstance(getattr(m, "dropout", None), float):            # attention probabilities
                m.dropout = 0.0
            if type(m).__name__ == "Dropout":
                m.p = 0.0
        logits = model(tokens, attention_mask=real.long()).logits
        logits[real].square().mean().backward()
        outs.append((logits.detach(), model.tupe.encoder.attn_impl,
                     model.tupe.encoder.rel_pos_bias.relative_attention_bias.weight.grad))
    assert [o[1] for o in outs] == ["sdpa", "flex"]          # transformers' default: sdpa
    torch.testing.assert_close(outs[1][0][real], outs[0][0][real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outs[1][2], outs[0][2], atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_attn_implementation_selects_the_native_kernel_of_that_name(impl, tmp_path):
    _, folder = native_and_folder("TUPE-R", tmp_path)
    model = AutoModel.from_pretrained(folder, attn_implementation=impl)
    with torch.no_grad():
        model(torch.tensor([[0, 9, 10, 2]]))
    assert model.encoder.attn_impl == impl


@pytest.mark.parametrize("trained_on", [1, 2])
def test_sequence_classifier_says_when_given_the_other_input_kind(trained_on, tmp_path, caplog):
    """A folder that records what its head was finetuned on (config.task_inputs) warns, once, when
    a pipeline or a user gives it the other kind: pairs to a single-sentence head or the reverse.
    Right- or left-padded rows; nothing in training mode; the logits are unchanged."""
    import logging

    model, _ = native_and_folder("TUPE-R", tmp_path)
    folder = hf.export_hf(model, tmp_path / "kind", inputs=trained_on)
    clf = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    single = [[0, 9, 10, 11, 2], [0, 12, 13, 2, 1]]
    pair = [[0, 9, 10, 2, 2, 12, 2], [0, 9, 2, 2, 13, 2, 1]]
    fitting, other = (single, pair) if trained_on == 1 else (pair, single)

    def run(rows, left=False):
        ids = torch.tensor(rows)
        mask = ids.ne(1).long()
        if left:   # the same rows, padding moved to the front
            ids = torch.stack([torch.cat([r[m.bool()].new_full((int((m == 0).sum()),), 1), r[m.bool()]])
                               for r, m in zip(ids, mask)])
            mask = ids.ne(1).long()
        with torch.no_grad():
            return clf(input_ids=ids, attention_mask=mask).logits

    with caplog.at_level(logging.WARNING, logger="tupe.hf.modeling"):
        run(fitting)
        run(fitting, left=True)
        assert not caplog.records
        want = run(other, left=True)
        given = "sentence pairs" if trained_on == 1 else "single sentences"
        assert len(caplog.records) == 1 and f"2 of 2 row(s) (first: 0) are {given}" in caplog.records[0].getMessage()
        assert f"config.task_inputs = {trained_on}" in caplog.records[0].getMessage()
        torch.testing.assert_close(run(other), want, atol=1e-6, rtol=0)   # once per model; outputs as before
        assert len(caplog.records) == 1
        fresh = AutoModelForSequenceClassification.from_pretrained(folder).train()
        fresh(input_ids=torch.tensor(other), attention_mask=torch.tensor(other).ne(1).long())
        assert len(caplog.records) == 1                                   # training: either kind is fine
        untagged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
        untagged(input_ids=torch.tensor(pair))                            # no task_inputs: nothing to check
        assert len(caplog.records) == 1
