"""TUPE as transformers models. Every class wraps the one native implementation
(:class:`tupe.model.transformer.Encoder` and its heads): there is no second copy of the
attention or of the positional terms here, only input/output plumbing.

State-dict layout (what ``save_pretrained`` writes)::

    tupe.encoder.*            the native encoder (native names, prefixed with ``tupe.``)
    lm_head.*                 the native masked-LM head (decoder tied to the token embedding)
    classifier.*              sequence classification: the native classification head
                              (dense -> tanh -> dropout -> out_proj on <s>);
                              token classification: Linear(C, num_labels)
    qa_outputs.*              question answering: Linear(C, 2)

An exported folder may hold ``lm_head.*`` and ``classifier.*`` together (``tupe-convert --hf``
keeps everything the checkpoint had); each class takes what it uses and ignores the rest.

Padding: positions count from each row's first real token (as the original), read from
``attention_mask`` per row: right- and left-padded rows give the same outputs for their real
tokens (the encoder rotates left-padded rows, ``tupe/model/padding.py``); padding between real
tokens is refused (``PaddingError``). Without ``attention_mask`` every token is real, as in every
transformers model (BERT's rule; the native API instead treats the pad id as padding).

transformers' conventions the classes follow: layers are ``GradientCheckpointingLayer``s
(``activation_checkpointing_enable`` / ``gradient_checkpointing_enable`` with their kwargs and
``every_n_layers``); ``output_hidden_states`` may be a flag or the indices of the hidden states to
keep (``_can_record_outputs``); ``attn_implementation`` picks the native kernel of that name;
``resize_position_embeddings`` resizes the positional tables (TUPE, BERT-A).
"""

from __future__ import annotations

import logging
from typing import Optional

import torch
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    MaskedLMOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

from ..model.attention import HF_KERNELS
from ..model.dropout import Dropout
from ..model.lengths import resize_positions
from ..model.positional import RelativePositionBias
from ..model.transformer import ClassificationHead, Encoder, EncoderLayer, MaskedLMHead, SelfAttention
from .configuration import TupeHfConfig

logger = logging.getLogger(__name__)


class TupeLayer(EncoderLayer, GradientCheckpointingLayer):
    """The native encoder layer (same parameters and names), checkpointed by transformers'
    mechanism when ``activation_checkpointing_enable`` asks for it (the encoder passes every
    input positionally, as ``use_reentrant=True`` needs)."""


def padding_of(input_ids, inputs_embeds, attention_mask) -> torch.Tensor:
    """(B, T) True at padding: where ``attention_mask`` is 0; without one, nowhere (transformers'
    convention: no mask, every token is attended)."""
    if attention_mask is not None:
        return ~attention_mask.bool()
    shape, device = (input_ids.shape, input_ids.device) if input_ids is not None else \
        (inputs_embeds.shape[:2], inputs_embeds.device)
    return torch.zeros(shape, dtype=torch.bool, device=device)


def selected_hidden_states(flag, count: int) -> Optional[set[int]]:
    """``output_hidden_states`` as transformers 5.x reads it: a flag (None: keep all) or an index
    or indices of the ``count`` hidden states (negative ones count from the end)."""
    if flag is None or isinstance(flag, bool):
        return None
    chosen = [flag] if isinstance(flag, int) else list(flag)
    return {i % count for i in chosen if -count <= i < count}


class TupePreTrainedModel(PreTrainedModel):
    config_class = TupeHfConfig
    config: TupeHfConfig
    base_model_prefix = "tupe"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TupeLayer"]
    # What ``output_hidden_states`` / ``output_attentions`` return: each layer's output (the
    # embedding output first) and each attention's probabilities (its output 1).
    _can_record_outputs = {"hidden_states": TupeLayer, "attentions": SelfAttention}
    # attn_implementation: "eager", "sdpa" and "flex_attention" select the native kernels of those
    # names (tupe/model/attention.py; flex: GPUs, attention_dropout 0 for training).
    _supports_sdpa = True
    _supports_flex_attn = True

    def _init_weights(self, module: nn.Module) -> None:
        """BERT init (normal(0, initializer_range), zero biases, unit LayerNorms, zero padding
        row), as the native ``init_bert_params``; the LM head's own bias starts at zero."""
        super()._init_weights(module)
        if isinstance(module, MaskedLMHead):
            init.zeros_(module.bias)
        elif isinstance(module, RelativePositionBias):   # a computed (non-persistent) buffer
            init.copy_(module.bucket, module.bucket_table())

    def get_position_embeddings(self) -> nn.Embedding:
        """The learned positional table: TUPE's untied positions (row 0 is [CLS]'s, then one row per
        position) or BERT-A's absolute embedding. RoPE, ALiBi and NoPE have none (NotImplementedError)."""
        encoder = next(m for m in self.modules() if isinstance(m, Encoder))
        table = encoder.untied_pos.pos if encoder.untied_pos is not None else encoder.embed_positions
        if table is None:
            raise NotImplementedError(f"{encoder.cfg.name} has no position embedding table")
        return table

    def resize_position_embeddings(self, new_num_position_embeddings: int, init: str = "copy") -> None:
        """Positional tables for ``new_num_position_embeddings`` positions (``max_position_embeddings``),
        in place: cut, or extended with rows repeating the trained ones ("copy", Longformer's way)
        or drawn as at initialisation ("random"); inputs of up to the old length give the same
        outputs (``tupe.model.lengths.resize_positions``; refused for RoPE, ALiBi and NoPE)."""
        resize_positions(self, new_num_position_embeddings, init)
        self.config.max_position_embeddings = new_num_position_embeddings

    def _outputs_flags(self, output_hidden_states, output_attentions, return_dict):
        cfg = self.config
        return (cfg.output_hidden_states if output_hidden_states is None else output_hidden_states,
                bool(getattr(cfg, "output_attentions", False)) if output_attentions is None else output_attentions,
                cfg.return_dict if return_dict is None else return_dict)


class TupeHfModel(TupePreTrainedModel):
    """The bare encoder: ``last_hidden_state`` (B, T, C), optionally every layer's hidden state
    (embedding output first) and attention probabilities. TUPE has no pooler: the
    classification head holds its own dense + tanh."""

    _keys_to_ignore_on_load_unexpected = [r"^lm_head\.", r"^classifier\.", r"^qa_outputs\."]

    def __init__(self, config: TupeHfConfig):
        super().__init__(config)
        self.encoder = Encoder(config.to_tupe_config(), layer=TupeLayer)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.encoder.embed_tokens = value
        self.encoder.cfg.vocab_size = value.num_embeddings

    def forward(self, input_ids: Optional[torch.Tensor] = None, attention_mask: Optional[torch.Tensor] = None,
                token_type_ids: Optional[torch.Tensor] = None, position_ids: Optional[torch.Tensor] = None,
                inputs_embeds: Optional[torch.Tensor] = None, output_hidden_states: Optional[bool] = None,
                output_attentions: Optional[bool] = None, return_dict: Optional[bool] = None,
                first_only: bool = False, **kwargs):
        """``first_only``: ``last_hidden_state`` is each row's first real token alone (B, 1, C),
        the last layer computed for it only (``Encoder.encode``); what a sequence classifier reads."""
        hidden_flag, attn_flag, return_dict = self._outputs_flags(output_hidden_states, output_attentions, return_dict)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        if position_ids is not None:
            raise ValueError("TUPE takes no position_ids: positions are 0..T-1 from each row's first "
                             "token (right padding), as in the original model")
        if token_type_ids is not None and bool(token_type_ids.ne(0).any()):
            raise ValueError("TUPE has no segment (token type) embeddings; pairs are marked by "
                             "'</s> </s>' between the sentences, as the TupeTokenizer builds them")
        padding = padding_of(input_ids, inputs_embeds, attention_mask)                # (B, T)
        # transformers' attn_implementation -> the native kernel of the same name (attention.py)
        self.encoder.attn_impl = HF_KERNELS.get(getattr(self.config, "_attn_implementation", None), "auto")
        out = self.encoder.encode(input_ids, padding=padding, embeds=inputs_embeds,
                                  output_hidden_states=hidden_flag is not None and hidden_flag is not False,   # index 0 counts
                                  output_attentions=bool(attn_flag), first_only=first_only)
        hidden = out.hidden_states
        keep = selected_hidden_states(hidden_flag, self.config.num_hidden_layers + 1)
        if hidden is not None and keep is not None:
            hidden = tuple(h if i in keep else None for i, h in enumerate(hidden))
        result = BaseModelOutput(last_hidden_state=out.last_hidden_state, hidden_states=hidden,
                                 attentions=out.attentions)
        return result if return_dict else result.to_tuple()


class _WithEncoder(TupePreTrainedModel):
    """A task model: ``self.tupe`` (the bare encoder) + a head."""

    def __init__(self, config: TupeHfConfig):
        super().__init__(config)
        self.tupe = TupeHfModel(config)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.tupe.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.tupe.set_input_embeddings(value)

    def _result(self, result, return_dict: Optional[bool]):
        return result if (self.config.return_dict if return_dict is None else return_dict) else result.to_tuple()

    def _encode(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                output_hidden_states, output_attentions, first_only: bool = False) -> BaseModelOutput:
        return self.tupe(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                         position_ids=position_ids, inputs_embeds=inputs_embeds,
                         output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                         return_dict=True, first_only=first_only)


class TupeForMaskedLM(_WithEncoder):
    """Masked-LM logits over the whole vocabulary (B, T, V); the output projection is the token
    embedding itself (one tensor, tied by construction) plus the head's own bias. ``labels``:
    (B, T) token ids, -100 where no loss is wanted."""

    _keys_to_ignore_on_load_unexpected = [r"^classifier\.", r"^qa_outputs\."]

    def __init__(self, config: TupeHfConfig):
        super().__init__(config)
        self.lm_head = MaskedLMHead(self.tupe.encoder.cfg)
        self.post_init()
        if getattr(config, "lm_head_trained", True) is False:      # tupe-convert --hf of an ELECTRA discriminator, ...
            logger.warning("this model's masked-LM head was made new and never trained (lm_head_trained: false in "
                           "its config): its masked-LM predictions are noise until it is trained")

    def get_output_embeddings(self) -> None:
        """None: the decoder is the input embedding itself (nothing separate to tie or resize)."""
        return None

    def resize_token_embeddings(self, new_num_tokens=None, pad_to_multiple_of=None, mean_resizing=True):
        embeddings = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        n, old = embeddings.num_embeddings, self.lm_head.bias
        if old.numel() != n:   # the head's bias follows the vocabulary (new entries start at 0)
            bias = torch.zeros(n, dtype=old.dtype, device=old.device)
            bias[: min(n, old.numel())] = old.data[: min(n, old.numel())]
            self.lm_head.bias = nn.Parameter(bias)
        return embeddings

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels: Optional[torch.Tensor] = None, output_hidden_states=None,
                output_attentions=None, return_dict=None, **kwargs):
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                           output_hidden_states, output_attentions)
        logits = self.lm_head(out.last_hidden_state, self.tupe.encoder.embed_tokens.weight)   # (B, T, V)
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(logits.view(-1, logits.size(-1)), labels.view(-1).to(logits.device))
        result = MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)
        return self._result(result, return_dict)


def sequence_classification_loss(config: TupeHfConfig, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """transformers' convention: ``problem_type`` (inferred once when unset) picks MSE,
    cross-entropy or per-label binary cross-entropy."""
    num_labels = logits.size(-1)
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "regression":
        return MSELoss()(logits.squeeze(-1), labels.squeeze(-1).to(logits.dtype)) if num_labels == 1 \
            else MSELoss()(logits, labels.to(logits.dtype))
    if config.problem_type == "single_label_classification":
        return CrossEntropyLoss()(logits.view(-1, num_labels), labels.view(-1))
    return BCEWithLogitsLoss()(logits, labels.to(logits.dtype))


def input_kind_mismatch(input_ids: torch.Tensor, padding: torch.Tensor, eos: int, inputs: int) -> Optional[str]:
    """What is wrong when rows of ``input_ids`` are sentence pairs (``<s> A </s> </s> B </s>``:
    more than one ``</s>`` among the real tokens) for a head finetuned on single sentences
    (``inputs`` 1), or single sentences for one finetuned on pairs (2); None when all fit."""
    ends = (input_ids.eq(eos) & ~padding).sum(-1)                                       # (B,)
    wrong = ends.gt(1) if inputs == 1 else ends.le(1)
    if not bool(wrong.any()):
        return None
    rows = wrong.nonzero().flatten().tolist()
    given, trained = ("sentence pairs", "single sentences") if inputs == 1 else ("single sentences", "sentence pairs")
    return (f"{len(rows)} of {len(ends)} row(s) (first: {rows[0]}) are {given}, but this classifier was finetuned on "
            f"{trained} (config.task_inputs = {inputs}): its predictions for them are not what it learned. Give it "
            f"{trained}")


class TupeForSequenceClassification(_WithEncoder):
    """The original classification head on ``<s>`` (dense -> tanh -> dropout -> out_proj);
    ``num_labels`` classes, or 1 for regression. Losses follow ``config.problem_type``.

    In eval mode, a folder that records what the head was finetuned on (``config.task_inputs``:
    1 single sentences, 2 pairs; ``tupe-convert --hf`` writes it) logs a warning, once per model,
    when given the other kind (a pipeline passes pairs as ``{"text": ..., "text_pair": ...}``);
    training on either kind is left alone."""

    _keys_to_ignore_on_load_unexpected = [r"^lm_head\.", r"^qa_outputs\."]

    def __init__(self, config: TupeHfConfig):
        super().__init__(config)
        self.classifier = ClassificationHead(self.tupe.encoder.cfg, config.num_labels)
        self.post_init()
        self._warned_input_kind = False

    def _check_input_kind(self, input_ids, attention_mask) -> None:
        inputs = getattr(self.config, "task_inputs", None)
        if self.training or self._warned_input_kind or input_ids is None or inputs not in (1, 2) \
                or torch.compiler.is_compiling() or torch.compiler.is_exporting():
            return
        problem = input_kind_mismatch(input_ids, padding_of(input_ids, None, attention_mask),
                                      self.config.eos_token_id, inputs)
        if problem is not None:
            self._warned_input_kind = True
            logger.warning(problem)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels: Optional[torch.Tensor] = None, output_hidden_states=None,
                output_attentions=None, return_dict=None, **kwargs):
        self._check_input_kind(input_ids, attention_mask)
        hidden_flag, attn_flag, _ = self._outputs_flags(output_hidden_states, output_attentions, return_dict)
        # inference without hidden states or attentions asked for: the last layer for [CLS] alone
        first_only = not self.training and (hidden_flag is None or hidden_flag is False) and not attn_flag
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                           output_hidden_states, output_attentions, first_only)
        padding = None if first_only else padding_of(input_ids, inputs_embeds, attention_mask)
        logits = self.classifier(out.last_hidden_state, padding)                                # (B, K)
        loss = None if labels is None else sequence_classification_loss(self.config, logits, labels.to(logits.device))
        result = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                          attentions=out.attentions)
        return self._result(result, return_dict)


class TupeForTokenClassification(_WithEncoder):
    """Per-token logits (B, T, num_labels): dropout + Linear on the last layer."""

    _keys_to_ignore_on_load_unexpected = [r"^lm_head\.", r"^qa_outputs\."]

    def __init__(self, config: TupeHfConfig):
        super().__init__(config)
        p = config.classifier_dropout if config.classifier_dropout is not None else config.dropout
        self.dropout = Dropout(p)
        self.classifier = nn.Linear(config.encoder_embed_dim, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels: Optional[torch.Tensor] = None, output_hidden_states=None,
                output_attentions=None, return_dict=None, **kwargs):
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                           output_hidden_states, output_attentions)
        logits = self.classifier(self.dropout(out.last_hidden_state))                     # (B, T, K)
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(logits.view(-1, logits.size(-1)), labels.view(-1).to(logits.device))
        result = TokenClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                       attentions=out.attentions)
        return self._result(result, return_dict)


class TupeForQuestionAnswering(_WithEncoder):
    """Extractive QA: start and end logits (B, T) from Linear(C, 2) on the last layer."""

    _keys_to_ignore_on_load_unexpected = [r"^lm_head\.", r"^classifier\."]

    def __init__(self, config: TupeHfConfig):
        super().__init__(config)
        self.qa_outputs = nn.Linear(config.encoder_embed_dim, 2)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, start_positions: Optional[torch.Tensor] = None,
                end_positions: Optional[torch.Tensor] = None, output_hidden_states=None,
                output_attentions=None, return_dict=None, **kwargs):
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                           output_hidden_states, output_attentions)
        start_logits, end_logits = self.qa_outputs(out.last_hidden_state).unbind(-1)     # 2 x (B, T)
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.size(1)   # positions outside the input are ignored, as in transformers
            loss_fct = CrossEntropyLoss(ignore_index=ignored)
            loss = (loss_fct(start_logits, start_positions.view(-1).clamp(0, ignored).to(start_logits.device))
                    + loss_fct(end_logits, end_positions.view(-1).clamp(0, ignored).to(end_logits.device))) / 2
        result = QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits.contiguous(),
                                              end_logits=end_logits.contiguous(),
                                              hidden_states=out.hidden_states, attentions=out.attentions)
        return self._result(result, return_dict)
