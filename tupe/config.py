"""One typed model configuration, validated once, saved in every checkpoint.

Field names are the original fairseq argument names (``encoder_layers``,
``encoder_embed_dim``, ...) so that a checkpoint's ``args`` maps onto the config
one to one, and the training flags (``--encoder-layers``) map onto it in one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Optional

POS_ENCODINGS = ("tupe", "absolute", "rope", "alibi", "none")
# The paper's names (and today's baselines), by pos_encoding; "-A"/"-R" added where the paper does.
SCHEME_NAMES = {"tupe": "TUPE", "absolute": "BERT", "rope": "RoPE", "alibi": "ALiBi", "none": "NoPE"}
ACTIVATIONS = ("gelu", "gelu_accurate", "relu", "tanh")
# RoPE's frequency scaling for inputs longer than the trained length (transformers' rope_type names).
ROPE_SCALINGS = ("none", "linear", "dynamic", "yarn")

# The scheme registry: each model of the paper and each of today's baselines, by name, as the
# configuration fields that make it (every other field keeps its value). Everything that names a
# scheme (study, demo, benchmarks, the HF layer, tests) takes the names from here, and
# ``TupeConfig.name`` is the inverse. Adding a scheme: an entry here (and its module in
# ``model/positional.py`` if it computes something new).
SCHEMES: dict[str, dict[str, Any]] = {
    "TUPE-A": dict(pos_encoding="tupe"),
    "TUPE-R": dict(pos_encoding="tupe", rel_pos=True),
    "TUPE-A-tie-cls": dict(pos_encoding="tupe", untie_cls=False),
    "BERT-A": dict(pos_encoding="absolute"),
    "BERT-R": dict(pos_encoding="absolute", rel_pos=True),
    "RoPE": dict(pos_encoding="rope"),
    "RoPE-R": dict(pos_encoding="rope", rel_pos=True),
    "ALiBi": dict(pos_encoding="alibi"),
    "NoPE": dict(pos_encoding="none"),
}
# The fields a scheme sets (an entry above leaves the others of these at their defaults).
SCHEME_FIELDS = ("pos_encoding", "rel_pos", "untie_cls")

# Named architectures (``--arch``). Dims only; every other field keeps its default.
PRESETS: dict[str, dict[str, int]] = {
    "bert_base": dict(encoder_layers=12, encoder_embed_dim=768, encoder_ffn_embed_dim=3072,
                      encoder_attention_heads=12),
    "bert_large": dict(encoder_layers=24, encoder_embed_dim=1024, encoder_ffn_embed_dim=4096,
                       encoder_attention_heads=16),
    # Small models for the demo and for tests.
    "bert_small": dict(encoder_layers=4, encoder_embed_dim=256, encoder_ffn_embed_dim=1024,
                       encoder_attention_heads=4),
    "bert_tiny": dict(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                      encoder_attention_heads=4),
}


class ConfigError(ValueError):
    """An invalid model configuration."""


@dataclass
class TupeConfig:
    """Everything that defines the encoder's shape and its positional scheme.

    Positional schemes (the paper's names):
      * TUPE-A: ``pos_encoding="tupe"``                  (default, the original model)
      * TUPE-R: ``pos_encoding="tupe", rel_pos=True``
      * TUPE-A-tie-cls: ``pos_encoding="tupe", untie_cls=False``
      * BERT-A: ``pos_encoding="absolute"``               (positions added to the input)
      * BERT-R: ``pos_encoding="absolute", rel_pos=True``
    Today's baselines (``rel_pos=True`` adds the T5 bias to any of them, e.g. RoPE-R):
      * RoPE:  ``pos_encoding="rope"``   rotary q/k in every layer (RoFormer), base ``rope_theta``
      * ALiBi: ``pos_encoding="alibi"``  symmetric bias -slope_h * |j - i|, slopes 2^(-8h/H)
      * NoPE:  ``pos_encoding="none"``   no positional information at all (a control)
    """

    vocab_size: int
    padding_idx: int = 1
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    max_positions: int = 512
    # The dropout rates are the run's training hyperparameters (flags at every run, as in fairseq),
    # not the model's definition: a restored checkpoint does not impose them (see TRAINING_FIELDS).
    dropout: float = field(default=0.1, metadata={"training": True})
    attention_dropout: float = field(default=0.1, metadata={"training": True})
    activation_dropout: float = field(default=0.0, metadata={"training": True})
    pooler_dropout: float = field(default=0.1, metadata={"training": True})
    activation_fn: str = field(default="gelu", metadata={"choices": ACTIVATIONS})
    pooler_activation_fn: str = field(default="tanh", metadata={"choices": ACTIVATIONS})
    encoder_normalize_before: bool = False
    embedding_normalize: bool = False
    pos_encoding: str = field(default="tupe", metadata={"choices": POS_ENCODINGS})
    rel_pos: bool = False
    rel_pos_bins: int = 32
    max_rel_pos: int = 128
    # None = the scheme's default: untied for "tupe", not applicable to "absolute".
    untie_cls: Optional[bool] = field(default=None)
    rope_theta: float = 10000.0
    # (metadata: "training" = a run's hyperparameter, not carried by checkpoints; "choices" = the
    # allowed values; "needs" = the values of other fields a non-default value requires.)
    # RoPE scaling (positional.RotaryEmbedding): "linear" divides positions by rope_scaling_factor;
    # "dynamic" (NTK) raises the base once the input is longer than max_positions; "yarn" mixes
    # both per frequency, around rope_original_length (0: max_positions).
    rope_scaling: str = field(default="none", metadata={"choices": ROPE_SCALINGS, "needs": {"pos_encoding": "rope"}})
    rope_scaling_factor: float = 1.0
    rope_original_length: int = 0

    def __post_init__(self) -> None:
        if self.untie_cls is None:
            self.untie_cls = self.pos_encoding == "tupe"
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        def positive(name: str) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")

        for name in ("vocab_size", "encoder_layers", "encoder_embed_dim",
                     "encoder_ffn_embed_dim", "encoder_attention_heads", "max_positions",
                     "rel_pos_bins", "max_rel_pos"):
            positive(name)
        if not 0 <= self.padding_idx < self.vocab_size:
            raise ConfigError(f"padding_idx={self.padding_idx} is outside the vocabulary "
                              f"(vocab_size={self.vocab_size})")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            raise ConfigError(f"encoder_embed_dim={self.encoder_embed_dim} is not divisible by "
                              f"encoder_attention_heads={self.encoder_attention_heads}")
        for name in ("dropout", "attention_dropout", "activation_dropout", "pooler_dropout"):
            value = getattr(self, name)
            if not 0.0 <= float(value) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
        if self.activation_fn not in ACTIVATIONS:
            raise ConfigError(f"activation_fn={self.activation_fn!r}; choose one of {ACTIVATIONS}")
        if self.pooler_activation_fn not in ACTIVATIONS:
            raise ConfigError(f"pooler_activation_fn={self.pooler_activation_fn!r}; "
                              f"choose one of {ACTIVATIONS}")
        if self.pos_encoding not in POS_ENCODINGS:
            raise ConfigError(f"pos_encoding={self.pos_encoding!r}; choose one of {POS_ENCODINGS}")
        if self.pos_encoding != "tupe" and self.untie_cls:
            raise ConfigError(f"untie_cls=True needs pos_encoding='tupe' (got {self.pos_encoding!r}): only "
                              f"TUPE's positional term has a [CLS] row and column to untie")
        if self.pos_encoding == "rope" and self.head_dim % 2:
            raise ConfigError(f"pos_encoding='rope' needs an even head dimension, got {self.head_dim}")
        if isinstance(self.rope_theta, bool) or not float(self.rope_theta) > 1.0:
            raise ConfigError(f"rope_theta must be a number > 1, got {self.rope_theta!r}")
        if self.rope_scaling not in ROPE_SCALINGS:
            raise ConfigError(f"rope_scaling={self.rope_scaling!r}; choose one of {ROPE_SCALINGS}")
        if self.rope_scaling != "none" and self.pos_encoding != "rope":
            raise ConfigError(f"rope_scaling={self.rope_scaling!r} needs pos_encoding='rope' (got {self.pos_encoding!r})")
        if isinstance(self.rope_scaling_factor, bool) or not float(self.rope_scaling_factor) >= 1.0:
            raise ConfigError(f"rope_scaling_factor must be a number >= 1, got {self.rope_scaling_factor!r}")
        if isinstance(self.rope_original_length, bool) or not isinstance(self.rope_original_length, int) \
                or self.rope_original_length < 0:
            raise ConfigError(f"rope_original_length must be an integer >= 0 (0: max_positions), "
                              f"got {self.rope_original_length!r}")
        if self.rel_pos_bins % 2 or self.rel_pos_bins < 4:
            raise ConfigError(f"rel_pos_bins must be an even number >= 4, got {self.rel_pos_bins}")
        if self.max_rel_pos <= self.rel_pos_bins // 4:
            raise ConfigError(f"max_rel_pos={self.max_rel_pos} must exceed rel_pos_bins/4 "
                              f"(the exact-bucket range)")

    # ------------------------------------------------------------------ views
    @property
    def head_dim(self) -> int:
        return self.encoder_embed_dim // self.encoder_attention_heads

    @property
    def size_name(self) -> str:
        """The preset whose sizes this model has (bert_base, bert_tiny, ...), else the sizes."""
        for arch, dims in PRESETS.items():
            if all(getattr(self, k) == v for k, v in dims.items()):
                return arch
        return (f"{self.encoder_layers} layers, width {self.encoder_embed_dim}, FFN {self.encoder_ffn_embed_dim}, "
                f"{self.encoder_attention_heads} heads")

    @property
    def scheme(self) -> tuple:
        """The values of SCHEME_FIELDS: what identifies the positional scheme."""
        return tuple(getattr(self, f) for f in SCHEME_FIELDS)

    @property
    def name(self) -> str:
        """The scheme's name in the registry (TUPE-A, TUPE-R, BERT-A, RoPE, NoPE, ...): its inverse.
        A combination the registry does not list is named by the same rule (ALiBi-R, TUPE-R-tie-cls)."""
        registered = _registry_inverse().get(self.scheme)
        if registered is not None:
            return registered
        base = SCHEME_NAMES[self.pos_encoding]
        if self.pos_encoding in ("tupe", "absolute"):
            name = f"{base}-{'R' if self.rel_pos else 'A'}"
        else:
            name = f"{base}-R" if self.rel_pos else base
        if self.pos_encoding == "tupe" and not self.untie_cls:
            name += "-tie-cls"
        return name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def architecture_fields(cls) -> tuple[str, ...]:
        """Every field that defines what the network computes: all but the training
        hyperparameters (TRAINING_FIELDS). A checkpoint carries these; a restored run takes them."""
        return tuple(f.name for f in fields(cls) if not f.metadata.get("training"))

    @classmethod
    def from_scheme(cls, name: str, vocab_size: int, arch: Optional[str] = None, **overrides: Any) -> "TupeConfig":
        """A registered scheme (``SCHEMES``) at ``arch``'s size (default: the field defaults)."""
        return cls(vocab_size=vocab_size, **{**(PRESETS[arch] if arch else {}), **scheme_overrides(name),
                                             **overrides})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TupeConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown configuration fields: {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def from_preset(cls, arch: str, vocab_size: int, **overrides: Any) -> "TupeConfig":
        if arch not in PRESETS:
            raise ConfigError(f"unknown architecture {arch!r}; choose one of {sorted(PRESETS)}")
        return cls(vocab_size=vocab_size, **{**PRESETS[arch], **overrides})

    @classmethod
    def from_args(cls, args: Any, **overrides: Any) -> "TupeConfig":
        """Build from an argparse Namespace (training flags or a checkpoint's ``args``).

        Fields missing from ``args`` come from ``--arch``'s preset, then the defaults. An
        original TUPE checkpoint has no ``pos_encoding``/``untie_cls``: that means TUPE with
        an untied [CLS].
        """
        values: dict[str, Any] = dict(PRESETS.get(getattr(args, "arch", ""), {}))
        for f in fields(cls):
            if getattr(args, f.name, None) is not None:
                values[f.name] = getattr(args, f.name)
        values.update(overrides)
        return cls(**values)


TRAINING_FIELDS = tuple(f.name for f in fields(TupeConfig) if f.metadata.get("training"))


def scheme_overrides(name: str) -> dict[str, Any]:
    """The configuration fields of a registered scheme; an unknown name lists the known ones."""
    try:
        return dict(SCHEMES[name])
    except KeyError:
        raise ConfigError(f"unknown scheme {name!r}; choose from {', '.join(SCHEMES)}") from None


_INVERSE: dict[tuple, str] = {}


def _registry_inverse() -> dict[tuple, str]:
    if not _INVERSE:
        for name, overrides in SCHEMES.items():
            scheme = TupeConfig(vocab_size=8, **overrides).scheme
            if scheme in _INVERSE:
                raise ConfigError(f"schemes {_INVERSE[scheme]} and {name} are the same configuration")
            _INVERSE[scheme] = name
    return _INVERSE
