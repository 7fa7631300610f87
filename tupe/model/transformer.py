"""The TUPE encoder, its heads, and the model users call. Batch-first throughout.

Read top to bottom: attention -> layer -> encoder -> heads -> TupeModel. The positional
terms (the part that makes it TUPE) are in ``positional.py``; the encoder computes them
once per forward and every layer receives them as one additive ``attn_mask``.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.checkpoint import checkpoint

from ..config import TupeConfig
from .attention import KERNELS, kernel_name, needs_factored
from .dropout import Dropout
from .flex import FlexPositions
from .padding import first_real, padding_layout, rotate, tracing, unrotate_attention
from .positional import POSITIONAL_NAMES, apply_rotary, logit_scale, positional_modules
from .tied import tied_lookup

# Optimizer steps taken in this process. Fused optimizers (torch's fused AdamW, which
# FairseqAdam uses) update parameters without bumping their version counters, so the eval-mode
# positional-bias cache also keys on this count (see Encoder.positional_bias).
_optimizer_steps = [0]
register_optimizer_step_post_hook(
    lambda optimizer, args, kwargs: _optimizer_steps.__setitem__(0, _optimizer_steps[0] + 1))


def activation(name: str):
    return {
        "gelu": F.gelu,                                            # exact (erf) gelu
        "gelu_accurate": lambda x: F.gelu(x, approximate="tanh"),
        "relu": F.relu,
        "tanh": torch.tanh,
    }[name]


class QKVProjection(nn.Linear):
    """The fused q, k, v in-projection (one ``3C x C`` weight, q/k/v stacked), a Linear of its own
    so that adapters (LoRA) can target it by name (``in_proj``). Initialised as the original:
    Xavier-uniform weight, zero bias (then BERT init for the whole model)."""

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight)
        nn.init.zeros_(self.bias)


class SelfAttention(nn.Module):
    """Multi-head self-attention; positions arrive through ``attn_mask`` (every additive scheme,
    or the factored terms of the flex kernel) and, for RoPE only, through ``rotary``: the (cos,
    sin) tables that rotate q and k. The kernel is chosen by name (attention.py).

    TUPE scales the word logits by 1/sqrt(2d) (the positional term carries the same
    factor); every other scheme keeps the usual 1/sqrt(d) (``positional.logit_scale``).
    """

    def __init__(self, cfg: TupeConfig):
        super().__init__()
        C = cfg.encoder_embed_dim
        self.num_heads = cfg.encoder_attention_heads
        self.dropout = cfg.attention_dropout
        self.scaling = (cfg.head_dim * logit_scale(cfg)) ** -0.5
        self.in_proj = QKVProjection(C, 3 * C)        # q, k, v stacked (original: in_proj_weight/bias)
        self.out_proj = nn.Linear(C, C)

    def forward(self, x: torch.Tensor, attn_mask, need_weights: bool = False,
                rotary: Optional[tuple[torch.Tensor, torch.Tensor]] = None, kernel: str = "auto",
                first_only: bool = False) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(B, T, C) -> (B, T, C) and, with ``need_weights``, the probabilities (B, H, T, T).
        ``attn_mask``: additive, broadcastable to (B, H, T, T); None: no mask (a full batch);
        or the factored terms (FlexPositions) for the flex kernel. ``first_only``: position 0's
        output alone, (B, 1, C) (it attends to every key as usual)."""
        B, T, C = x.shape
        qkv = self.in_proj(x)                                                          # (B, T, 3C)
        # unbind then transpose (not one permute): the backward then stacks the three gradients
        # straight into qkv's (B, T, 3, H, d) layout, one pass instead of a stack and a copy
        q, k, v = (t.transpose(1, 2) for t in qkv.view(B, T, 3, self.num_heads, -1).unbind(2))  # 3 x (B, H, T, d)
        if rotary is not None:                                                         # RoPE
            q, k = apply_rotary(q, k, *rotary)
        if first_only:
            q = q[:, :, :1]                                                            # (B, H, 1, d)
            if attn_mask is not None and attn_mask.size(-2) > 1:
                attn_mask = attn_mask[..., :1, :]                                      # (B|1, H|1, 1, T)
        p = self.dropout if self.training else 0.0
        y, probs = KERNELS[kernel](q, k, v, attn_mask, self.scaling, p, need_weights)  # (B, H, T|1, d)
        return self.out_proj(y.transpose(1, 2).reshape(B, q.size(2), C)), probs


class EncoderLayer(nn.Module):
    """Post-LN (BERT) by default; pre-LN with ``encoder_normalize_before``."""

    def __init__(self, cfg: TupeConfig):
        super().__init__()
        C = cfg.encoder_embed_dim
        self.normalize_before = cfg.encoder_normalize_before
        self.self_attn = SelfAttention(cfg)
        self.self_attn_layer_norm = nn.LayerNorm(C, eps=1e-5)
        self.fc1 = nn.Linear(C, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, C)
        self.final_layer_norm = nn.LayerNorm(C, eps=1e-5)
        self.act = activation(cfg.activation_fn)
        self.dropout = Dropout(cfg.dropout)
        self.activation_dropout = Dropout(cfg.activation_dropout)

    def _sublayer(self, x, norm, fn):
        y = fn(norm(x) if self.normalize_before else x)
        x = x[:, : y.size(1)] + self.dropout(y)                                       # (B, T|1, C)
        return x if self.normalize_before else norm(x)

    def forward(self, x: torch.Tensor, attn_mask, need_weights: bool = False,
                rotary: Optional[tuple[torch.Tensor, torch.Tensor]] = None, kernel: str = "auto",
                first_only: bool = False) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(B, T, C) -> (B, T, C), or (B, 1, C) with ``first_only`` (position 0 alone)."""
        probs = None

        def attend(h):
            nonlocal probs
            y, probs = self.self_attn(h, attn_mask, need_weights, rotary, kernel, first_only)
            return y

        x = self._sublayer(x, self.self_attn_layer_norm, attend)
        x = self._sublayer(x, self.final_layer_norm,
                           lambda h: self.fc2(self.activation_dropout(self.act(self.fc1(h)))))
        return x, probs


class EncoderOutput(NamedTuple):
    last_hidden_state: torch.Tensor                        # (B, T, C)
    hidden_states: Optional[tuple[torch.Tensor, ...]]      # embeddings + each layer: L+1 x (B, T, C)
    attentions: Optional[tuple[torch.Tensor, ...]]         # L x (B, H, T, T)


class Encoder(nn.Module):
    """Word embedding -> (positional biases, computed once) -> layers -> features.

    ``attn_impl`` chooses the attention kernel (attention.py; same model, same parameters, not
    saved): "auto" (default), "eager" or "sdpa" receive the positional terms as one additive
    (B, H, T, T) mask, "flex" in factored form read inside FlexAttention (flex.py; GPUs, no
    attention dropout). The positional modules (positional.py) are attributes named by
    ``positional.POSITIONAL`` (their checkpoint keys); the encoder loops over them.
    """

    BIAS_CACHE_LENGTHS = 8   # lengths whose eval-mode positional bias is kept

    def __init__(self, cfg: TupeConfig, embed_tokens: bool = True, layer: type = EncoderLayer):
        super().__init__()
        C = cfg.encoder_embed_dim
        self.cfg = cfg
        self.padding_idx = cfg.padding_idx
        # embed_tokens=False: an encoder fed ``embeds`` only (ELECTRA's generator reads the
        # discriminator's token embedding through a projection).
        self.embed_tokens = nn.Embedding(cfg.vocab_size, C, padding_idx=cfg.padding_idx) if embed_tokens else None
        # The scheme's positional modules (TUPE: untied_pos; BERT-A: embed_positions; rel_pos:
        # rel_pos_bias; ALiBi: alibi; RoPE: rotary), the others None.
        modules = positional_modules(cfg)
        for name in POSITIONAL_NAMES:
            setattr(self, name, modules.get(name))
        self.positional = [name for name in POSITIONAL_NAMES if name in modules]
        self.emb_layer_norm = nn.LayerNorm(C, eps=1e-5) if cfg.embedding_normalize else None
        self.dropout = Dropout(cfg.dropout)
        self.layers = nn.ModuleList(layer(cfg) for _ in range(cfg.encoder_layers))
        self.emb_out_layer_norm = nn.LayerNorm(C, eps=1e-5) if cfg.encoder_normalize_before else None
        # Activation checkpointing of every layer in training (set it to trade compute for memory); tupe.hf
        # uses transformers' own per-layer mechanism instead (its layers checkpoint themselves).
        self.checkpoint_layers = False
        # The longest input the positional tables cover (None: schemes without tables, any length).
        self.max_length = min((m.max_length for m in self.positional_modules() if m.max_length is not None),
                              default=None)
        self._bias_cache: dict = {}     # eval-mode positional bias per length (positional_bias)
        self.attn_impl = "auto"

    def positional_modules(self) -> list[nn.Module]:
        return [getattr(self, name) for name in self.positional]

    def positional_bias(self, seq_len: int) -> Optional[torch.Tensor]:
        """The (H, T, T) bias added to every layer's logits, or None (BERT-A, RoPE, NoPE).

        It depends on the length and the positional parameters only, so in eval mode without
        autograd it is computed once per length and reused (inference), keyed by the parameters'
        identity, dtype, device and version counters and on the count of optimizer steps: an
        optimizer step, ``load_state_dict``, ``.to()`` or any in-place change makes a new one
        (writes through ``p.data`` bypass the counters: call ``clear_positional_cache()`` after
        those). Never under training, autograd or export.
        """
        modules = [m for m in self.positional_modules() if m.has_bias]
        if not modules:
            return None
        device = self.layers[0].fc1.weight.device
        cacheable = not (self.training or torch.is_grad_enabled() or tracing())
        if cacheable:
            state = (_optimizer_steps[0], *((p.data_ptr(), p._version, p.dtype, p.device)
                                            for m in modules for p in m.parameters()))
            key = (seq_len, torch.is_inference_mode_enabled(), device)
            if self._bias_cache.get("state") != state:
                self._bias_cache = {"state": state}
            if key in self._bias_cache:
                return self._bias_cache[key]
        terms = [m.bias(seq_len, device) for m in modules]
        bias = sum(terms[1:], terms[0])                                                # (H, T, T)
        if cacheable:
            if len(self._bias_cache) > self.BIAS_CACHE_LENGTHS:
                self._bias_cache = {"state": state}
            self._bias_cache[key] = bias
        return bias

    def flex_positions(self, seq_len: int, padding: torch.Tensor) -> FlexPositions:
        """The positional terms in factored form, for the flex kernel (see flex.py). A term two
        modules give (TUPE-R: [CLS]'s row and column values, row0/col0) is their sum."""
        terms: dict = {}
        for module in self.positional_modules():
            for key, value in module.flex_terms(seq_len, padding.device).items():
                if value is not None:
                    terms[key] = value if terms.get(key) is None else terms[key] + value
        return FlexPositions(padding, **terms)

    def additive_mask(self, padding: torch.Tensor, dtype: torch.dtype,
                      padded: Optional[bool]) -> Optional[torch.Tensor]:
        """Positional bias + -inf on padded keys. A full batch gets the bias alone (1, H, T, T)
        (the same values without a (B, H, T, T) copy to write and read, nor its gradient to
        accumulate over the layers) and, in inference with no positional bias, no mask at all
        (as HF's SDPA path). ``padded``: whether any position is padded, as ``padding_layout``
        tells (None inside a traced graph: not known)."""
        B, T = padding.shape
        bias = self.positional_bias(T)                                                 # (H, T, T) | None
        if self._no_padding(padded):
            if bias is not None:
                return bias.to(dtype).unsqueeze(0)                                     # (1, H, T, T)
            if not self.training:
                return None
        key_mask = torch.zeros(B, 1, 1, T, dtype=dtype, device=padding.device)
        key_mask = key_mask.masked_fill(padding[:, None, None, :], float("-inf"))      # (B, 1, 1, T)
        return key_mask if bias is None else key_mask + bias.to(dtype).unsqueeze(0)    # (B, H|1, T|1, T)

    @staticmethod
    def _no_padding(padded: Optional[bool]) -> bool:
        """True when no position is padded, as the forward's one padding sync (``padding_layout``)
        told; never inside a traced, compiled or exported graph (there ``padded`` is None)."""
        return padded is False and not tracing()

    def clear_positional_cache(self) -> None:
        self._bias_cache = {}

    def train(self, mode: bool = True) -> "Encoder":
        self.clear_positional_cache()
        return super().train(mode)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.encode(tokens).last_hidden_state                                   # (B, T, C)

    def encode(self, tokens: Optional[torch.Tensor] = None, padding: Optional[torch.Tensor] = None,
               embeds: Optional[torch.Tensor] = None, output_hidden_states: bool = False,
               output_attentions: bool = False, first_only: bool = False) -> EncoderOutput:
        """The full forward. ``tokens`` (B, T), or ``embeds`` (B, T, C) in place of the token
        embedding lookup; ``padding`` (B, T) True at padded positions (default: tokens equal to
        the padding index). Positions count from each row's first real token: right- and
        left-padded rows give the same outputs for their real tokens (padding.py).

        ``first_only``: the features of each row's first real token alone, (B, 1, C), all a
        classification head reads: the last layer then computes that position's output only
        (its keys and values still cover every token), skipping ~80% of the layer's products;
        the same values as the full forward's (to float rounding). Not with hidden states or
        attentions asked for."""
        if first_only and (output_hidden_states or output_attentions):
            raise ValueError("first_only gives the first position alone: no hidden states or attentions")
        x = self.embed_tokens(tokens) if embeds is None else embeds                    # (B, T, C)
        B, T, _ = x.shape
        if self.max_length is not None and T > self.max_length:
            raise ValueError(f"sequence length {T} exceeds max_positions={self.max_length} (the positional "
                             f"tables of {self.cfg.name} cover {self.max_length} positions); truncate the input "
                             f"(e.g. --truncate-sequence) or use shorter blocks")
        if padding is None:
            padding = tokens.eq(self.padding_idx) if tokens is not None else \
                torch.zeros(B, T, dtype=torch.bool, device=x.device)                     # (B, T)
        shift, padded = padding_layout(padding)                                        # (B,) | None, bool | None
        if shift is not None:                                                          # left padding:
            x, padding = rotate(x, shift), rotate(padding, shift)                      # rows start at column 0
        for module in self.positional_modules():
            x = module.embed(x)                                                        # BERT-A: + positions
        if self.emb_layer_norm is not None:
            x = self.emb_layer_norm(x)
        x = self.dropout(x)
        x = x * (~padding).unsqueeze(-1).to(x.dtype)                                   # zero padding rows

        # The positional terms and the padding, built once for all layers: one additive mask in
        # the dtype attention will run in (under autocast: the autocast dtype), or for the flex
        # kernel the same terms in factored form.
        kernel = self.attn_impl
        if needs_factored(kernel):
            attn_mask = self.flex_positions(T, padding)
        else:
            dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
            attn_mask = self.additive_mask(padding, dtype, padded)                     # (B|1, H|1, T|1, T) | None
        rotary = next((r for m in self.positional_modules() if (r := m.rotary(T, x.device)) is not None),
                      None)                                                            # 2 x (T, d) | None

        hidden, attentions = [x] if output_hidden_states else None, [] if output_attentions else None
        for i, layer in enumerate(self.layers):
            # the last layer on position 0 alone (rows start there, after any rotation; flex: all)
            first = first_only and i == len(self.layers) - 1 and not needs_factored(kernel)
            if self.checkpoint_layers and self.training:
                x, probs = checkpoint(layer, x, attn_mask, output_attentions, rotary, kernel, first,
                                      use_reentrant=False)
            else:
                x, probs = layer(x, attn_mask, output_attentions, rotary, kernel, first)
            if output_attentions:
                attentions.append(probs)
            if output_hidden_states:
                hidden.append(x)
        if first_only:
            x = x[:, :1]                                                               # (B, 1, C)
        if self.emb_out_layer_norm is not None:
            x = self.emb_out_layer_norm(x)
            if output_hidden_states:
                hidden[-1] = x
        if shift is not None and not first_only:                                       # back to the input's columns
            x = rotate(x, shift, inverse=True)
            hidden = [rotate(h, shift, inverse=True) for h in hidden] if hidden is not None else None
            attentions = [unrotate_attention(a, shift) for a in attentions] if attentions is not None else None
        return EncoderOutput(x, tuple(hidden) if hidden is not None else None,
                             tuple(attentions) if attentions is not None else None)


class MaskedLMHead(nn.Module):
    """dense -> gelu -> LayerNorm -> projection tied to the token embedding (+ own bias).
    ``embed_dim``: the tied embedding's width when it differs from the encoder's (ELECTRA's
    generator: dense maps C -> E)."""

    def __init__(self, cfg: TupeConfig, embed_dim: Optional[int] = None):
        super().__init__()
        C, E = cfg.encoder_embed_dim, embed_dim or cfg.encoder_embed_dim
        self.dense = nn.Linear(C, E)
        self.layer_norm = nn.LayerNorm(E, eps=1e-5)
        self.act = activation(cfg.activation_fn)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def forward(self, features: torch.Tensor, embedding: torch.Tensor,
                masked_tokens: Optional[torch.Tensor] = None) -> torch.Tensor:
        if masked_tokens is not None:
            features = features[masked_tokens]                                         # (N, C)
        x = self.layer_norm(self.act(self.dense(features)))
        return F.linear(x, embedding) + self.bias                                      # (..., V)


class ClassificationHead(nn.Module):
    """[CLS] features -> dense -> tanh -> dropout -> out_proj. [CLS] is each row's first real
    token: column 0, or after the leading pads of a left-padded row (``padding`` given)."""

    def __init__(self, cfg: TupeConfig, num_classes: int):
        super().__init__()
        C = cfg.encoder_embed_dim
        self.dense = nn.Linear(C, C)
        self.act = activation(cfg.pooler_activation_fn)
        self.dropout = Dropout(cfg.pooler_dropout)
        self.out_proj = nn.Linear(C, num_classes)

    def forward(self, features: torch.Tensor, padding: Optional[torch.Tensor] = None) -> torch.Tensor:
        cls = features[:, 0] if padding is None else features[torch.arange(features.size(0)), first_real(padding)]
        return self.out_proj(self.dropout(self.act(self.dense(cls))))                    # (B, K)


def init_bert_params(module: nn.Module) -> None:
    """BERT init: N(0, 0.02) weights, zero biases, zeroed padding row."""
    if isinstance(module, nn.Linear) and not isinstance(module, QKVProjection):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
        if module.padding_idx is not None:
            module.weight.data[module.padding_idx].zero_()
    elif isinstance(module, SelfAttention):   # after its children, as the original's order
        nn.init.normal_(module.in_proj.weight, std=0.02)
        nn.init.zeros_(module.in_proj.bias)


class TupeModel(nn.Module):
    """Encoder + masked-LM head + named classification heads.

    * ``model(tokens)`` -> MLM logits (B, T, V)
    * ``model(tokens, masked_tokens=mask)`` -> logits of the masked positions only (N, V)
    * ``model(tokens, classification_head_name=name)`` -> (B, K)
    * ``model.extract_features(tokens)`` -> last-layer features (B, T, C)

    ``tokens`` is a LongTensor (B, T) with ``<s>`` (0) first and padding index 1.
    """

    DEFAULT_HEAD = "sentence_classification_head"

    def __init__(self, cfg: TupeConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.lm_head = MaskedLMHead(cfg)
        self.apply(init_bert_params)
        self.classification_heads = nn.ModuleDict()   # created later: default PyTorch init
        # False where the masked-LM head was made new on loading (an ELECTRA discriminator, a
        # transformers classifier) and never trained since: it fills masks with noise. Saved with
        # the model (tupe/checkpoint) and checked by fill_mask and tupe-validate.
        self.lm_head_trained = True

    def extract_features(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.encoder(tokens)

    def forward(self, tokens: torch.Tensor, masked_tokens: Optional[torch.Tensor] = None,
                classification_head_name: Optional[str] = None) -> torch.Tensor:
        if classification_head_name is not None:
            if classification_head_name not in self.classification_heads:
                raise KeyError(f"no classification head {classification_head_name!r}; this model "
                               f"has {sorted(self.classification_heads) or 'none'}")
            head = self.classification_heads[classification_head_name]
            if not self.training:   # inference: the head reads [CLS] alone (training: all, as before)
                return head(self.encoder.encode(tokens, first_only=True).last_hidden_state)   # (B, 1, C) -> (B, K)
            features = self.encoder(tokens)                                            # (B, T, C)
            return head(features, tokens.eq(self.cfg.padding_idx))
        if self.lm_head is None:
            raise RuntimeError("this model has no masked-LM head (an ELECTRA discriminator): "
                               "use extract_features or a classification head")
        # the lookup and the tied projection share one gradient (tied.py)
        embeds, weight = tied_lookup(self.encoder.embed_tokens, tokens)                # (B, T, C), (V, C)
        features = self.encoder.encode(tokens, embeds=embeds).last_hidden_state        # (B, T, C)
        return self.lm_head(features, weight, masked_tokens)                           # (B, T, V) | (N, V)

    def register_classification_head(self, name: str = DEFAULT_HEAD, num_classes: int = 2) -> nn.Module:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if name in self.classification_heads:
            old = self.classification_heads[name].out_proj.out_features
            if old != num_classes:
                raise ValueError(f"classification head {name!r} exists with {old} classes, "
                                 f"asked for {num_classes}")
            return self.classification_heads[name]
        device = self.encoder.embed_tokens.weight.device
        self.classification_heads[name] = ClassificationHead(self.cfg, num_classes).to(device).train(self.training)
        return self.classification_heads[name]

    @property
    def head_sizes(self) -> dict[str, int]:
        return {name: head.out_proj.out_features for name, head in self.classification_heads.items()}

    def set_attn_impl(self, impl: str) -> "TupeModel":
        set_attn_impl(self, impl)
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())



def set_attn_impl(model: nn.Module, impl: str) -> None:
    """Set the attention kernel (``attention.ATTN_IMPLS``: auto, eager, sdpa, flex; "bias" is an
    alias of auto) on every encoder in ``model`` (an ELECTRA model has two). Same parameters and
    outputs (to float rounding); nothing saved changes."""
    impl = kernel_name(impl)
    encoders = [m for m in model.modules() if isinstance(m, Encoder)]
    if not encoders:
        raise ValueError(f"{type(model).__name__} has no TUPE encoder")
    for encoder in encoders:
        encoder.attn_impl = impl
