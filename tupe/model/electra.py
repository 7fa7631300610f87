"""ELECTRA (Clark et al., ICLR 2020) with any positional scheme of this project: a small
generator trained as a masked LM proposes tokens at the masked positions, and the
discriminator (the model that gets finetuned) learns which tokens were replaced.

    generator:      masked tokens -> MLM logits at the masked positions (N, V)   loss: mlm
    sampling:       one token per masked position from softmax(logits), temperature 1,
                    no gradient (Gumbel-max with a per-batch seed)
    discriminator:  corrupted tokens -> one logit per token (B, T)                loss: rtd
    total:          mlm + disc_weight * rtd          (ELECTRA's weight: 50)

Sharing (a decision of this implementation): the generator reads the discriminator's token
embedding (one tensor; through a learned projection when the widths differ, as ELECTRA) and
ties its output layer to it. Positions are NOT shared: ELECTRA shares position embeddings
because BERT adds them to the input, but TUPE's positional term lives inside attention, in
per-head projections whose shapes depend on the width and the number of heads; the generator
therefore has its own positional tables of the same scheme (TUPE-A, TUPE-R, BERT-A, ...).
Hence the discriminator is a complete TUPE encoder in the original parameter layout.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import TupeConfig
from .transformer import Encoder, MaskedLMHead, TupeModel, activation, init_bert_params

GENERATOR, RTD_HEAD = "generator.", "rtd_head."       # checkpoint prefixes beside the discriminator's
DEFAULT_DISC_WEIGHT = 50.0


def generator_config(cfg: TupeConfig, divisor: int = 4, layers: Optional[int] = None,
                     embed_dim: Optional[int] = None, ffn_embed_dim: Optional[int] = None,
                     attention_heads: Optional[int] = None) -> TupeConfig:
    """The generator: the discriminator's scheme and depth, width, FFN and heads divided by
    ``divisor`` (ELECTRA: 4 for Small and Large, 3 for Base) unless given explicitly."""
    if divisor < 1:
        raise ValueError(f"generator size divisor must be >= 1, got {divisor}")
    heads = attention_heads or max(1, cfg.encoder_attention_heads // divisor)
    return dataclasses.replace(
        cfg, encoder_layers=layers or cfg.encoder_layers,
        encoder_embed_dim=embed_dim or cfg.encoder_embed_dim // divisor,
        encoder_ffn_embed_dim=ffn_embed_dim or cfg.encoder_ffn_embed_dim // divisor,
        encoder_attention_heads=heads)


class Generator(nn.Module):
    """A TUPE masked LM of width c that reads a shared (V, E) token embedding."""

    def __init__(self, cfg: TupeConfig, embed_dim: int):
        super().__init__()
        self.cfg = cfg
        c = cfg.encoder_embed_dim
        self.embed_proj = nn.Linear(embed_dim, c) if embed_dim != c else None       # E -> c
        self.encoder = Encoder(cfg, embed_tokens=False)
        self.lm_head = MaskedLMHead(cfg, embed_dim)                                 # c -> E, tied output

    def forward(self, tokens: torch.Tensor, embedding: nn.Embedding,
                masked_tokens: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = embedding(tokens)                                                       # (B, T, E)
        if self.embed_proj is not None:
            x = self.embed_proj(x)                                                  # (B, T, c)
        h = self.encoder.encode(embeds=x, padding=tokens.eq(self.cfg.padding_idx)).last_hidden_state
        return self.lm_head(h, embedding.weight, masked_tokens)                     # (N, V)


class ReplacedTokenHead(nn.Module):
    """ELECTRA's discriminator head: dense -> activation -> dense to one logit per token."""

    def __init__(self, cfg: TupeConfig):
        super().__init__()
        C = cfg.encoder_embed_dim
        self.dense = nn.Linear(C, C)
        self.act = activation(cfg.activation_fn)
        self.out_proj = nn.Linear(C, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.act(self.dense(features))).squeeze(-1)            # (B, T)


def sample_tokens(logits: torch.Tensor, seed: int, disallow: Optional[int] = None) -> torch.Tensor:
    """One token per row of ``logits`` (N, V) from softmax(logits) (Gumbel-max), drawn from a
    generator seeded with ``seed`` on the logits' device: a pure function of the batch, so a
    resumed run, ``--update-freq`` and data-parallel ranks draw the same tokens. ``disallow``:
    a token id never drawn (the padding index)."""
    g = torch.Generator(device=logits.device)
    g.manual_seed(int(seed))
    u = torch.rand(logits.shape, generator=g, device=logits.device, dtype=torch.float32)
    scores = logits.detach().float() - torch.log(-torch.log(u.clamp_min(1e-20)))   # + Gumbel noise
    if disallow is not None:
        scores[:, disallow] = float("-inf")
    return scores.argmax(-1)                                                        # (N,)


def batch_seed(seed: int, epoch: int, ids) -> int:
    """The sampling seed of a batch: from the run's seed, the epoch and the sample ids."""
    return int(np.random.SeedSequence([int(seed), int(epoch), 5, *map(int, ids)]).generate_state(1)[0])


class ElectraModel(nn.Module):
    """Generator + discriminator (a ``TupeModel`` without an MLM head) + replaced-token head."""

    def __init__(self, cfg: TupeConfig, gen_cfg: TupeConfig, disc_weight: float = DEFAULT_DISC_WEIGHT):
        super().__init__()
        if gen_cfg.vocab_size != cfg.vocab_size or gen_cfg.padding_idx != cfg.padding_idx:
            raise ValueError("generator and discriminator must share the vocabulary")
        self.cfg, self.gen_cfg, self.disc_weight = cfg, gen_cfg, float(disc_weight)
        self.discriminator = TupeModel(cfg)
        self.discriminator.lm_head = None                      # ELECTRA's discriminator has no MLM head
        self.rtd_head = ReplacedTokenHead(cfg)
        self.generator = Generator(gen_cfg, cfg.encoder_embed_dim)
        self.rtd_head.apply(init_bert_params)
        self.generator.apply(init_bert_params)

    @property
    def embedding(self) -> nn.Embedding:
        return self.discriminator.encoder.embed_tokens          # the one shared token embedding

    @property
    def head_sizes(self) -> dict[str, int]:
        return self.discriminator.head_sizes

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @staticmethod
    def corrupt(original: torch.Tensor, masked: torch.Tensor, gen_logits: torch.Tensor, seed: int,
                pad: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The discriminator's input: ``original`` (B, T) with a sample from ``gen_logits`` (N, V)
        at each of the N ``masked`` positions; and the labels (B, T): True where the token now
        differs from the original (a sample equal to the original counts as original)."""
        with torch.no_grad():
            corrupted = original.clone()
            corrupted[masked] = sample_tokens(gen_logits, seed, pad)
            return corrupted, corrupted.ne(original)

    def losses(self, tokens: torch.Tensor, target: torch.Tensor, seed: int, autocast=None):
        """(mlm_sum, rtd_sum, stats): the generator's summed MLM cross-entropy over the masked
        positions, the discriminator's summed BCE over the non-pad tokens (nats), and counts."""

        autocast = autocast or contextlib.nullcontext()
        pad = self.cfg.padding_idx
        masked = target.ne(pad)                                                     # (B, T)
        real = tokens.ne(pad)                                                       # (B, T) non-pad
        original = torch.where(masked, target, tokens)                              # (B, T)
        with autocast:
            gen_logits = self.generator(tokens, self.embedding, masked)             # (N, V)
        gen_logits = gen_logits.float()
        mlm_sum = F.cross_entropy(gen_logits, target[masked], reduction="sum")
        corrupted, replaced = self.corrupt(original, masked, gen_logits, seed, pad)  # (B, T) x 2
        with autocast:
            features = self.discriminator.encoder.encode(corrupted, ~real).last_hidden_state
            disc_logits = self.rtd_head(features)                                   # (B, T)
        disc_logits = disc_logits.float()[real]                                     # (M,)
        labels = replaced[real].float()
        rtd_sum = F.binary_cross_entropy_with_logits(disc_logits, labels, reduction="sum")
        stats = {"mlm_loss": mlm_sum.detach(), "masked": masked.sum(), "rtd_loss": rtd_sum.detach(),
                 "tokens": real.sum(), "rtd_correct": ((disc_logits > 0) == labels.bool()).sum(),
                 "replaced": replaced.sum()}
        return mlm_sum, rtd_sum, stats

    def forward(self, tokens: torch.Tensor, target: torch.Tensor, seed: int,
                autocast=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``tokens`` (B, T) as masked by BERT's masker, ``target`` (B, T) the original token at
        masked positions and padding elsewhere. Returns the batch's loss in the trainer's
        convention, a sum that divided by the number of masked tokens is ELECTRA's
        ``mlm_mean + disc_weight * rtd_mean``, and the summed statistics."""
        mlm_sum, rtd_sum, stats = self.losses(tokens, target, seed, autocast)
        n_masked, n_tokens = stats["masked"], stats["tokens"].clamp_min(1)
        return mlm_sum + self.disc_weight * rtd_sum * (n_masked / n_tokens), stats


def electra_state_dict(model: ElectraModel, discriminator_state: dict) -> dict[str, torch.Tensor]:
    """The checkpoint's ``model`` entry: the discriminator under the original names (given),
    then the generator and the replaced-token head under their prefixes."""
    state = dict(discriminator_state)
    state.update({GENERATOR + k: v for k, v in model.generator.state_dict().items()})
    state.update({RTD_HEAD + k: v for k, v in model.rtd_head.state_dict().items()})
    return state


def is_electra_state(state: dict) -> bool:
    return any(k.startswith((GENERATOR, RTD_HEAD)) for k in state)


def split_electra_state(state: dict) -> tuple[dict, dict, dict]:
    """(discriminator part, generator tensors, replaced-token head tensors), prefixes removed."""
    disc, gen, rtd = {}, {}, {}
    for k, v in state.items():
        if k.startswith(GENERATOR):
            gen[k[len(GENERATOR):]] = v
        elif k.startswith(RTD_HEAD):
            rtd[k[len(RTD_HEAD):]] = v
        else:
            disc[k] = v
    return disc, gen, rtd
