"""Positional schemes: one small interface, one table. Adding a scheme touches this module and
the scheme registry (``config.SCHEMES``) only.

Every positional module answers the same questions (``PositionalScheme``), each ONCE per
forward with the sequence length T (and the device, which only the parameter-free ones need):

* ``embed(x)``: what it adds to the input embedding (BERT-A's absolute positions);
* ``bias(T, device)``: its additive (H, T, T) term of the attention logits, or None;
* ``flex_terms(T, device)``: the same term factored, for ``attn_impl="flex"`` (flex.py);
* ``rotary(T, device)``: (cos, sin) tables that rotate q and k (RoPE), or None;
* ``logit_scale``: the attention's logits use 1/sqrt(logit_scale * d) (TUPE: 2);
* ``max_length``: the longest input its tables cover (None: any length; RoPE, ALiBi, NoPE);
* ``resize(L, init)``: its tables made to cover L positions (``lengths.resize_positions``).

``POSITIONAL`` lists the modules with the encoder attribute each lives under (which fixes its
checkpoint keys) and when a configuration has it. This is where the TUPE math lives:

    alpha_ij = (x_i W^Q)(x_j W^K)^T / sqrt(2d)          <- word term, in the attention layer
             + (p_i U^Q)(p_j U^K)^T / sqrt(2d)          <- UntiedPositionalCorrelation
             + b_{bucket(j - i)}                        <- RelativePositionBias (TUPE-R)

with the [CLS] token (position 0) untied: its row and column of the positional term are
replaced by two learned per-head scalars (theta_1, theta_2 in the paper).

Today's baselines live here too: ``ALiBiBias`` is another (H, T, T) bias; RoPE cannot be a
bias (it rotates q and k before their product), so ``RotaryEmbedding`` returns the (cos, sin)
tables once per forward and the attention applies ``apply_rotary`` to q and k: the one hook
the attention layer has for positions besides the additive mask.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..config import TupeConfig

POSITION_INITS = ("copy", "random")    # how ``resize`` fills rows past the trained length


def resized_rows(table: torch.Tensor, first: int, length: int, init: str) -> nn.Parameter:
    """(first + L, C) -> (first + length, C): the first ``first`` rows (not positions: TUPE's
    [CLS] row) kept, the L position rows cut or extended by ``init``; the same dtype, device
    and ``requires_grad``."""
    with torch.no_grad():
        head, rows = table[:first], table[first:]
        L = rows.size(0)
        if length <= L:
            new = rows[:length]
        elif init == "copy":
            new = rows.repeat(math.ceil(length / L), 1)[:length]
        else:
            new = torch.cat([rows, rows.new_empty(length - L, rows.size(1)).normal_(0.0, 0.02)])
        return nn.Parameter(torch.cat([head, new]).clone(), requires_grad=table.requires_grad)


class PositionalScheme:
    """The interface of every positional module (a mixin beside ``nn.Module`` or ``nn.Embedding``);
    the defaults are "contributes nothing there"."""

    logit_scale = 1            # the logits' scale is 1/sqrt(logit_scale * head_dim)
    has_bias = False           # ``bias`` returns a tensor: cached per length in inference
    max_length: Optional[int] = None   # longest sequence its tables cover (None: any length)

    def embed(self, x: torch.Tensor) -> torch.Tensor:                                  # (B, T, C)
        return x

    def bias(self, seq_len: int, device=None) -> Optional[torch.Tensor]:               # (H, T, T)
        return None

    def flex_terms(self, seq_len: int, device=None) -> dict:
        """Keyword arguments of ``flex.FlexPositions`` (row0/col0 of several modules add up)."""
        return {}

    def rotary(self, seq_len: int, device=None) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        return None

    def resize(self, max_positions: int, init: str) -> None:
        """Its tables made to cover ``max_positions`` positions (new rows by ``init``: "copy" or
        "random", ``resized_rows``); nothing to do without tables."""
        if self.max_length is not None:
            raise NotImplementedError(f"{type(self).__name__} has tables but no resize")


class AbsolutePositionEmbedding(PositionalScheme, nn.Embedding):
    """BERT-A / BERT-R: a learned table added to the input, row i for token i."""

    def __init__(self, cfg: TupeConfig):
        nn.Embedding.__init__(self, cfg.max_positions, cfg.encoder_embed_dim)
        self.max_length = cfg.max_positions

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight[: x.size(1)]

    def resize(self, max_positions: int, init: str) -> None:
        self.weight = resized_rows(self.weight, 0, max_positions, init)
        self.num_embeddings = self.max_length = max_positions


class UntiedPositionalCorrelation(PositionalScheme, nn.Module):
    """TUPE's positional term: ``(p_a U^Q)(p_b U^K)^T / sqrt(2d)``, shared by all layers.

    The table ``pos`` has ``max_positions + 1`` rows; token i uses row i + 1. Row 0 exists
    only for the [CLS] trick: with ``untie_cls``, ``P[0, 0]`` (row 0 with itself) fills the
    whole [CLS] row ("[CLS] attends to others") and ``P[1, 1]`` the whole [CLS] column
    ("others attend to [CLS]"); the row wins at (0, 0).
    """

    logit_scale = 2            # word and positional terms both scaled by 1/sqrt(2d)
    has_bias = True

    def __init__(self, cfg: TupeConfig):
        super().__init__()
        C, H = cfg.encoder_embed_dim, cfg.encoder_attention_heads
        self.num_heads = H
        self.untie_cls = cfg.untie_cls
        self.max_length = cfg.max_positions
        self.scaling = (cfg.head_dim * 2) ** -0.5
        self.pos = nn.Embedding(cfg.max_positions + 1, C)
        self.pos_ln = nn.LayerNorm(C, eps=1e-5)
        self.pos_q_linear = nn.Linear(C, C)
        self.pos_k_linear = nn.Linear(C, C)

    def resize(self, max_positions: int, init: str) -> None:
        self.pos.weight = resized_rows(self.pos.weight, 1, max_positions, init)      # row 0: [CLS]'s
        self.pos.num_embeddings, self.max_length = max_positions + 1, max_positions

    def projections(self, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows 0..T of the table through LayerNorm and U^Q (scaled), U^K: 2 x (H, T+1, d)."""
        H = self.num_heads
        p = self.pos_ln(self.pos.weight[: T + 1])                                      # (T+1, C)
        pos_q = self.pos_q_linear(p).view(T + 1, H, -1).transpose(0, 1) * self.scaling  # (H, T+1, d)
        pos_k = self.pos_k_linear(p).view(T + 1, H, -1).transpose(0, 1)                 # (H, T+1, d)
        return pos_q, pos_k

    def forward(self, seq_len: int, device=None) -> torch.Tensor:
        pos_q, pos_k = self.projections(seq_len)                                       # 2 x (H, T+1, d)
        corr = torch.bmm(pos_q, pos_k.transpose(1, 2))                                 # (H, T+1, T+1)
        bias = corr[:, 1:, 1:]                                                         # (H, T, T)
        if not self.untie_cls:
            return bias
        bias = bias.clone()
        bias[:, :, 0] = corr[:, 1, 1].unsqueeze(-1)   # others -> [CLS]   (theta_2)
        bias[:, 0, :] = corr[:, 0, 0].unsqueeze(-1)   # [CLS]  -> others  (theta_1)
        return bias

    bias = forward

    def flex_terms(self, seq_len: int, device=None) -> dict:
        pos_q, pos_k, row0, col0 = self.factors(seq_len)
        return dict(pos_q=pos_q, pos_k=pos_k, row0=row0, col0=col0)

    def factors(self, seq_len: int):
        """The same term in factored form for ``attn_impl="flex"`` (see flex.py): ``u`` (H, T, d),
        ``w`` (H, T, d) with ``bias[:, i, j] = u_i . w_j`` off [CLS]'s row and column, whose u, w
        rows are zero when untied, and theta_1, theta_2 (H,) (None when tied)."""
        pos_q, pos_k = self.projections(seq_len)                                       # 2 x (H, T+1, d)
        u, w = pos_q[:, 1:], pos_k[:, 1:]                                              # (H, T, d)
        if not self.untie_cls:
            return u, w, None, None
        theta1 = (pos_q[:, 0] * pos_k[:, 0]).sum(-1)                                   # (H,)
        theta2 = (pos_q[:, 1] * pos_k[:, 1]).sum(-1)                                   # (H,)
        keep = torch.ones(seq_len, 1, dtype=u.dtype, device=u.device)
        keep[0] = 0
        return u * keep, w * keep, theta1, theta2


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int = 32,
                             max_distance: int = 128) -> torch.Tensor:
    """T5's bidirectional buckets of ``relative_position = key - query``.

    Half of the buckets per sign (bucket + num_buckets/2 when the key is to the right);
    within a sign, distances below num_buckets/4 are exact, larger ones logarithmic up to
    ``max_distance`` and clipped to the last bucket.
    """
    n = -relative_position
    half = num_buckets // 2
    ret = (n < 0).long() * half
    n = n.abs()
    max_exact = half // 2
    is_small = n < max_exact
    # Float32 on purpose: the bucket edges must match the original implementation.
    large = max_exact + (torch.log(n.float() / max_exact) / math.log(max_distance / max_exact)
                         * (half - max_exact)).long()
    large = torch.clamp(large, max=half - 1)
    return ret + torch.where(is_small, n, large)


def toeplitz(w: torch.Tensor, T: int) -> torch.Tensor:
    """(H, 2T-1) values per distance -> (H, T, T) with ``out[h, i, j] = w[h, j - i + T - 1]``.

    Rows of w, each padded to 2T, laid end to end: element T-1 + i(2T-1) + j of that flat
    buffer is w[j - i + T - 1]. Dense ops only (the backward is a sum over rows)."""
    H = w.size(0)
    flat = F.pad(w.unsqueeze(1).expand(H, T, 2 * T - 1), (0, 1)).reshape(H, -1)       # (H, 2T^2)
    return flat[:, T - 1: T - 1 + T * (2 * T - 1)].view(H, T, 2 * T - 1)[:, :, :T]


class RelativePositionBias(PositionalScheme, nn.Module):
    """TUPE-R / BERT-R: a learned per-head scalar for each relative-distance bucket.

    The embedding has ``rel_pos_bins + 1`` rows. With ``untie_cls``, [CLS]'s column
    ("others -> [CLS]") uses the extra last row and its row ("[CLS] -> others") uses row
    ``rel_pos_bins // 2``, which the bucketing never produces; the row wins at (0, 0).

    The bias depends on j - i only (a Toeplitz matrix), so the embedding is looked up for the
    2T - 1 distances and spread over (T, T) by the "skewing" reshape of ``toeplitz``: a
    (T x T) gather would make the backward pass a slow scatter of T^2 values into 33 rows. The
    reshape keeps T symbolic, so the bias is computed inside an exported (ONNX) graph for any length.
    """

    has_bias = True

    def __init__(self, cfg: TupeConfig):
        super().__init__()
        self.num_buckets = cfg.rel_pos_bins
        self.untie_cls = cfg.untie_cls
        self.relative_attention_bias = nn.Embedding(cfg.rel_pos_bins + 1, cfg.encoder_attention_heads)
        self.max_positions, self.max_distance = cfg.max_positions, cfg.max_rel_pos
        self.max_length = cfg.max_positions      # the bucket table's distances
        self.register_buffer("bucket", self.bucket_table(), persistent=False)            # (2L - 1,)

    def bucket_table(self) -> torch.Tensor:
        """The bucket of every distance j - i = -(L-1) .. L-1 (a computed buffer)."""
        distance = torch.arange(-(self.max_positions - 1), self.max_positions)
        return relative_position_bucket(distance, self.num_buckets, self.max_distance)

    def resize(self, max_positions: int, init: str) -> None:
        """The same buckets for the distances both lengths have (no parameter changes)."""
        self.max_positions = self.max_length = max_positions
        self.bucket = self.bucket_table().to(self.bucket.device)

    def forward(self, seq_len: int, device=None) -> torch.Tensor:
        per_distance, cls_row, cls_col = self.factors(seq_len)
        bias = toeplitz(per_distance, seq_len)                 # (H, T, T): bias[h, i, j] = w[h, j - i + T - 1]
        if self.untie_cls:
            bias[:, :, 0] = cls_col.unsqueeze(-1)      # others -> [CLS]
            bias[:, 0, :] = cls_row.unsqueeze(-1)      # [CLS] -> others (wins at 0, 0)
        return bias

    bias = forward

    def flex_terms(self, seq_len: int, device=None) -> dict:
        per_distance, row0, col0 = self.factors(seq_len)
        return dict(per_distance=per_distance, row0=row0, col0=col0)

    def factors(self, seq_len: int):
        """The per-distance table (H, 2T-1) (entry j - i + T - 1) and, when untied, [CLS]'s row
        and column values (H,) (else None, None): what ``forward`` spreads over (H, T, T), and
        what ``attn_impl="flex"`` reads inside the kernel (flex.py)."""
        T, L = seq_len, self.max_positions
        table = self.relative_attention_bias.weight
        buckets = self.bucket[L - T: L + T - 1]                                          # j - i = -(T-1) .. T-1
        per_distance = F.embedding(buckets, table).t()                                   # (H, 2T-1)
        if not self.untie_cls:
            return per_distance, None, None
        return per_distance, table[self.num_buckets // 2], table[self.num_buckets]


class ALiBiBias(PositionalScheme, nn.Module):
    """Symmetric (bidirectional) ALiBi: ``bias[h, i, j] = -slope_h * |j - i|`` with
    ``slope_h = 2^(-8h/H)`` for heads h = 1..H. No parameters."""

    has_bias = True

    def __init__(self, cfg: TupeConfig):
        super().__init__()
        self.num_heads = cfg.encoder_attention_heads

    def slopes(self, device=None) -> torch.Tensor:
        H = self.num_heads
        return torch.pow(2.0, -8.0 * torch.arange(1, H + 1, device=device, dtype=torch.float32) / H)   # (H,)

    def forward(self, seq_len: int, device=None) -> torch.Tensor:
        pos = torch.arange(seq_len, device=device)
        distance = (pos[None, :] - pos[:, None]).abs().float()                          # (T, T)
        return -self.slopes(device)[:, None, None] * distance                           # (H, T, T)

    bias = forward

    def flex_terms(self, seq_len: int, device=None) -> dict:
        return dict(slopes=self.slopes(device))


class RotaryEmbedding(PositionalScheme, nn.Module):
    """RoPE (RoFormer): channel pairs (c, c + d/2) of q and k rotated by angle
    ``t * theta^(-2c/d)`` at position t, so that q_i . k_j depends on j - i only. No parameters;
    the (cos, sin) tables (T, d) are computed once per forward.

    Scaling for inputs longer than the trained length (``rope_scaling``, factor s, trained length
    L = max_positions, or rope_original_length for YaRN), as transformers' rope types of the same
    names compute them:

    * linear: positions divided by s (every frequency / s);
    * dynamic (NTK-aware): for T > L the base becomes ``theta * (s T / L - (s - 1))^(d / (d - 2))``;
      inputs up to L are unchanged;
    * yarn: frequencies that turn fewer than 1 time over L are divided by s, those turning more
      than 32 times are kept, a linear ramp between; cos and sin are multiplied by
      ``0.1 ln(s) + 1`` (the attention temperature).
    """

    YARN_BETA_FAST, YARN_BETA_SLOW = 32, 1

    def __init__(self, cfg: TupeConfig):
        super().__init__()
        self.head_dim = cfg.head_dim
        self.theta = float(cfg.rope_theta)
        self.scaling, self.factor = cfg.rope_scaling, float(cfg.rope_scaling_factor)
        self.trained_length = cfg.max_positions
        self.original_length = cfg.rope_original_length or cfg.max_positions

    def inverse_frequencies(self, seq_len: int, device=None) -> torch.Tensor:
        d, base, s = self.head_dim, self.theta, self.factor
        if self.scaling == "dynamic" and seq_len > self.trained_length:
            base = base * (s * seq_len / self.trained_length - (s - 1)) ** (d / (d - 2))
        inv_freq = base ** (-torch.arange(0, d, 2, device=device, dtype=torch.float32) / d)       # (d/2,)
        if self.scaling == "linear":
            return inv_freq / s
        if self.scaling == "yarn":
            def dim_at(rotations: float) -> float:    # the channel whose frequency turns `rotations` times over L
                return d * math.log(self.original_length / (rotations * 2 * math.pi)) / (2 * math.log(base))
            low = max(math.floor(dim_at(self.YARN_BETA_FAST)), 0)
            high = min(math.ceil(dim_at(self.YARN_BETA_SLOW)), d - 1)
            ramp = ((torch.arange(d // 2, device=device, dtype=torch.float32) - low)
                    / max(high - low, 1e-3)).clamp(0, 1)                                       # 0: keep, 1: interpolate
            return inv_freq / s * ramp + inv_freq * (1 - ramp)
        return inv_freq

    def forward(self, seq_len: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq = self.inverse_frequencies(seq_len, device)                                       # (d/2,)
        angles = torch.arange(seq_len, device=device, dtype=torch.float32)[:, None] * inv_freq     # (T, d/2)
        angles = torch.cat([angles, angles], dim=-1)                                               # (T, d)
        temperature = 0.1 * math.log(self.factor) + 1.0 if self.scaling == "yarn" and self.factor > 1 else 1.0
        return angles.cos() * temperature, angles.sin() * temperature

    rotary = forward


# The positional modules: encoder attribute (its checkpoint keys: encoder.<name>.*), class, and
# when a configuration has it. Registration order = this order (it fixes the random init's order).
POSITIONAL: tuple[tuple[str, type, Callable[[TupeConfig], bool]], ...] = (
    ("embed_positions", AbsolutePositionEmbedding, lambda cfg: cfg.pos_encoding == "absolute"),
    ("untied_pos", UntiedPositionalCorrelation, lambda cfg: cfg.pos_encoding == "tupe"),
    ("alibi", ALiBiBias, lambda cfg: cfg.pos_encoding == "alibi"),
    ("rel_pos_bias", RelativePositionBias, lambda cfg: cfg.rel_pos),
    ("rotary", RotaryEmbedding, lambda cfg: cfg.pos_encoding == "rope"),
)
POSITIONAL_NAMES = tuple(name for name, _, _ in POSITIONAL)


def positional_modules(cfg: TupeConfig) -> dict[str, nn.Module]:
    """The positional modules of ``cfg``, by encoder attribute name."""
    return {name: cls(cfg) for name, cls, when in POSITIONAL if when(cfg)}


def has_tables(cfg: TupeConfig) -> bool:
    """Whether a positional module of ``cfg`` has tables that cover a limited length (``max_length``:
    TUPE's untied positions, BERT's absolute ones, the relative bias's distances)."""
    return any(m.max_length is not None for m in positional_modules(cfg).values())


def logit_scale(cfg: TupeConfig) -> int:
    """The attention's logits use 1/sqrt(logit_scale * d): 2 for TUPE, else 1."""
    return max((cls.logit_scale for _, cls, when in POSITIONAL if when(cfg)), default=1)


def apply_rotary(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """Rotate (B, H, T, d) queries and keys by the (T, d) tables (in q's dtype)."""
    cos, sin = cos.to(q.dtype), sin.to(q.dtype)

    def rotate(x):
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat([-x2, x1], dim=-1) * sin
    return rotate(q), rotate(k)
