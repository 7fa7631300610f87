"""Checkpoints: the original (fairseq) layout, read safely, and the project's own format.

* Original layout: ``torch.save`` of ``{args: Namespace, model: state dict, ...}`` with the
  parameter names of NOTES.md section 2. Read with ``torch.load(weights_only=True)``: only
  ``argparse.Namespace`` and fairseq's three meter classes (mapped to inert stand-ins) are
  allowed; any other pickled object is refused before it can run.
* Own format: a directory with ``config.json`` + ``model.safetensors`` (no pickle), plus
  ``dict.txt`` and ``bpe-code`` when known.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Optional, Union

import torch

from .config import TupeConfig
from .data.dictionary import Dictionary, model_vocab_size
from .model import TupeModel

PathLike = Union[str, os.PathLike]
ENC = "decoder.sentence_encoder."
LM = "decoder.lm_head."
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
DICT_FILE, BPE_FILE = "dict.txt", "bpe-code"
# Names directly under decoder.sentence_encoder. that belong to our positional modules.
_UNTIED_POS = ("pos.", "pos_ln.", "pos_q_linear.", "pos_k_linear.")
_REL_POS = ("relative_attention_bias.",)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read safely or does not fit the model."""


# --------------------------------------------------------------------------- safe unpickling
class _InertMeter:
    """Stand-in for fairseq's meter classes: a plain attribute bag, no behaviour."""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__dict__})"


class AverageMeter(_InertMeter):
    pass


class TimeMeter(_InertMeter):
    pass


class StopwatchMeter(_InertMeter):
    pass


SAFE_GLOBALS = [
    argparse.Namespace,
    (AverageMeter, "fairseq.meters.AverageMeter"),
    (TimeMeter, "fairseq.meters.TimeMeter"),
    (StopwatchMeter, "fairseq.meters.StopwatchMeter"),
    # A loaded original checkpoint saved again pickles the stand-ins under their own names.
    AverageMeter, TimeMeter, StopwatchMeter,
]


# --------------------------------------------------------------------------- integrity
# A training run records the SHA-256 of every checkpoint it writes in SAVE_DIR/checkpoints.sha256
# (``sha256sum`` format, so ``sha256sum -c checkpoints.sha256`` checks them by hand too);
# ``read_checkpoint`` verifies a file listed there before unpickling anything.
MANIFEST = "checkpoints.sha256"
_ZIP_MEMBER = re.compile(r"(data\.pkl|\.format_version|\.storage_alignment|byteorder|version|"
                         r"\.data/serialization_id|\.data/version|data/\d+)")


def sha256_file(path: PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(directory: PathLike) -> dict[str, list[str]]:
    """name -> its recorded SHA-256 digests (two only while a save is replacing the file)."""
    path = Path(directory) / MANIFEST
    out: dict[str, list[str]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            digest, _, name = line.partition("  ")
            if len(digest) == 64 and name:
                out.setdefault(name, []).append(digest)
    return out


def write_manifest(directory: PathLike, entries: dict[str, list[str]]) -> None:
    """Atomically rewrite the manifest (entries whose file is gone are dropped)."""
    directory = Path(directory)
    text = "".join(f"{d}  {n}\n" for n, ds in sorted(entries.items()) if (directory / n).is_file() for d in ds)
    tmp = directory / f".{MANIFEST}.{os.getpid()}.part"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, directory / MANIFEST)


def verify_checksum(path: Path) -> None:
    recorded = read_manifest(path.parent).get(path.name)
    if recorded and sha256_file(path) not in recorded:
        raise CheckpointError(f"{path}: damaged: its SHA-256 differs from the one recorded when it was written "
                              f"({path.parent / MANIFEST}). If you replaced the file on purpose, delete its line "
                              f"there")


def check_archive(path: Path) -> None:
    """A zip checkpoint may hold only what torch.save writes (one folder: data.pkl, data/N, version...)."""
    if not zipfile.is_zipfile(path):
        return
    try:
        names = zipfile.ZipFile(path).namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{path}: damaged zip archive ({e})") from None
    prefixes = {n.split("/", 1)[0] for n in names}
    odd = [n for n in names if "/" not in n or not _ZIP_MEMBER.fullmatch(n.split("/", 1)[1])]
    if len(prefixes) != 1 or odd:
        raise CheckpointError(f"{path}: refused to load: the archive holds members torch.save does not write "
                              f"({', '.join((odd or sorted(prefixes))[:3])})")


def read_checkpoint(path: PathLike) -> dict:
    """``torch.load`` with weights_only=True and only the allow-listed globals, after checking the
    file's recorded checksum (if any) and the archive's members."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes): not a checkpoint")
    verify_checksum(path)
    check_archive(path)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused to load: the file contains a pickled object that is not a tensor, "
            f"a plain value, argparse.Namespace or a fairseq meter. Loading it could run code. "
            f"Details: {str(e).splitlines()[0]}") from None
    except Exception as e:  # a truncated, foreign or corrupt file: torch raises many types
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({e})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a TUPE/fairseq checkpoint (no 'model' entry)")
    return state


# --------------------------------------------------------------------------- name mapping
_QKV_OURS, _QKV_ORIG = ".self_attn.in_proj.", ".self_attn.in_proj_"


def to_fairseq_name(name: str) -> str:
    """Our parameter name -> the original's."""
    name = name.replace(_QKV_OURS, _QKV_ORIG)   # our fused q/k/v is a Linear: in_proj.weight
    for ours in ("encoder.untied_pos.", "encoder.rel_pos_bias.", "encoder."):
        if name.startswith(ours):
            return ENC + name[len(ours):]
    if name.startswith("lm_head."):
        return LM + name[len("lm_head."):]
    return name


def from_fairseq_name(name: str) -> str:
    """The original's parameter name -> ours."""
    name = name.replace(_QKV_ORIG, _QKV_OURS)
    if name.startswith(ENC):
        rest = name[len(ENC):]
        if rest.startswith(_UNTIED_POS):
            return "encoder.untied_pos." + rest
        if rest.startswith(_REL_POS):
            return "encoder.rel_pos_bias." + rest
        return "encoder." + rest
    if name.startswith(LM):
        return "lm_head." + name[len(LM):]
    return name


def fairseq_state_dict(model: TupeModel) -> dict[str, torch.Tensor]:
    """The original layout; an ELECTRA model: its discriminator so, plus ``generator.*`` and
    ``rtd_head.*`` (see ``model/electra.py``)."""
    from .model.electra import ElectraModel, electra_state_dict

    if isinstance(model, ElectraModel):
        return electra_state_dict(model, fairseq_state_dict(model.discriminator))
    state = {to_fairseq_name(k): v for k, v in model.state_dict().items()}
    if model.lm_head is not None:
        state[LM + "weight"] = state[ENC + "embed_tokens.weight"]   # tied, stored twice as fairseq does
    return state


def fresh_lm_head(embed_dim: int, vocab_size: int) -> dict[str, torch.Tensor]:
    """A new masked-LM head (our names), BERT-initialised from a fixed seed (the global RNG is
    not touched): for a model stored without one (an ELECTRA discriminator, a transformers
    classifier)."""
    g = torch.Generator().manual_seed(0)
    return {"lm_head.dense.weight": torch.randn(embed_dim, embed_dim, generator=g) * 0.02,
            "lm_head.dense.bias": torch.zeros(embed_dim),
            "lm_head.layer_norm.weight": torch.ones(embed_dim), "lm_head.layer_norm.bias": torch.zeros(embed_dim),
            "lm_head.bias": torch.zeros(vocab_size)}


def discriminator_of(state: dict[str, torch.Tensor], path: PathLike) -> dict[str, torch.Tensor]:
    """An ELECTRA checkpoint's discriminator in the original layout (generator and replaced-token
    head left out, a fresh masked-LM head added), with a one-line note on stderr."""
    import sys

    from .model.electra import split_electra_state

    disc, gen, rtd = split_electra_state(state)
    emb = disc.get(ENC + "embed_tokens.weight")
    if emb is not None and LM + "dense.weight" not in disc:
        disc.update({LM + k[len("lm_head."):]: v for k, v in fresh_lm_head(emb.shape[1], emb.shape[0]).items()})
        disc[LM + "weight"] = emb
    print(f"tupe: {path}: ELECTRA checkpoint: using its discriminator (left out the generator, "
          f"{len(gen)} tensors, and the replaced-token head; the masked-LM head is new)", file=sys.stderr)
    return disc


def checkpoint_tensors(state: dict[str, torch.Tensor], path: PathLike) -> dict[str, torch.Tensor]:
    """A checkpoint's ``model`` entry (original layout; an ELECTRA checkpoint: its discriminator)
    under the native parameter names, the tied LM weight checked and dropped."""
    from .model.electra import is_electra_state

    if is_electra_state(state):
        state = discriminator_of(state, path)
    state = dict(state)
    lm_weight = state.pop(LM + "weight", None)
    emb = state.get(ENC + "embed_tokens.weight")
    if lm_weight is not None and emb is not None and not torch.equal(lm_weight, emb):
        raise CheckpointError(f"{path}: {LM}weight differs from the token embedding; this code "
                              f"supports only the tied LM head of the original model")
    return {from_fairseq_name(k): v for k, v in state.items()}


# --------------------------------------------------------------------------- config from shapes
def config_from_checkpoint(args: Any, state: dict[str, torch.Tensor], path: PathLike = "") -> TupeConfig:
    """Config from a checkpoint's ``args``, checked and completed by the tensor shapes."""
    def shape(name: str) -> Optional[tuple]:
        t = state.get(name)
        return None if t is None else tuple(t.shape)

    emb = shape(ENC + "embed_tokens.weight")
    if emb is None:
        raise CheckpointError(f"{path}: missing {ENC}embed_tokens.weight; not a TUPE model")
    layer_ids = {int(k[len(ENC + "layers."):].split(".")[0]) for k in state if k.startswith(ENC + "layers.")}
    derived: dict[str, Any] = dict(
        vocab_size=emb[0], encoder_embed_dim=emb[1], encoder_layers=len(layer_ids),
        embedding_normalize=ENC + "emb_layer_norm.weight" in state,
        encoder_normalize_before=ENC + "emb_out_layer_norm.weight" in state,
        rel_pos=ENC + "relative_attention_bias.weight" in state,
    )
    # The positional scheme: from its tables where it has some (BERT-A: embed_positions, TUPE:
    # pos), else as stated (RoPE, ALiBi and NoPE have no tensors; an original checkpoint states
    # nothing and has TUPE's tables).
    stated_scheme = getattr(args, "pos_encoding", None)
    if ENC + "embed_positions.weight" in state:
        derived["pos_encoding"] = "absolute"
    elif ENC + "pos.weight" in state or stated_scheme in (None, "tupe", "absolute"):
        derived["pos_encoding"] = "tupe"
    else:
        derived["pos_encoding"] = stated_scheme
    if layer_ids:
        derived["encoder_ffn_embed_dim"] = shape(ENC + "layers.0.fc1.weight")[0]
    if derived["pos_encoding"] == "tupe":
        rows = shape(ENC + "pos.weight")
        if rows is None:
            raise CheckpointError(f"{path}: missing {ENC}pos.weight (TUPE position table)")
        derived["max_positions"] = rows[0] - 1
    elif derived["pos_encoding"] == "absolute":
        derived["max_positions"] = shape(ENC + "embed_positions.weight")[0]
    if derived["rel_pos"]:
        bins, heads = shape(ENC + "relative_attention_bias.weight")
        derived["rel_pos_bins"] = bins - 1
        derived["encoder_attention_heads"] = heads

    values = vars(args) if args is not None else {}
    for key, value in derived.items():
        stated = values.get(key)
        # A flag that contradicts the weights means a broken or hand-edited checkpoint.
        if stated is not None and stated != value:
            raise CheckpointError(f"{path}: args.{key}={stated!r} but the weights say {value!r}")
    try:
        return TupeConfig.from_args(args or argparse.Namespace(), **derived)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None


def _head_sizes(state: dict[str, torch.Tensor]) -> dict[str, int]:
    heads = {}
    for k, v in state.items():
        if k.startswith("classification_heads.") and k.endswith(".out_proj.weight"):
            heads[k[len("classification_heads."):-len(".out_proj.weight")]] = v.shape[0]
    return heads


def build_and_load(cfg: TupeConfig, state: dict[str, torch.Tensor], path: PathLike = "") -> TupeModel:
    """Model from config + our-named state dict; any missing, extra or misshapen tensor is an error."""
    model = TupeModel(cfg)
    for name, k in _head_sizes(state).items():
        model.register_classification_head(name, k)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(f"{to_fairseq_name(k)}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                   for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append("missing: " + ", ".join(to_fairseq_name(k) for k in missing))
        if unexpected:
            parts.append("unexpected: " + ", ".join(to_fairseq_name(k) for k in unexpected))
        if wrong:
            parts.append("shape mismatch: " + "; ".join(wrong))
        raise CheckpointError(f"{path}: checkpoint does not fit a {cfg.name} model ({'; '.join(parts)})")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()


# --------------------------------------------------------------------------- dictionary
def attach_vocabulary(model: TupeModel, directory: Path) -> None:
    """Attach ``dict.txt`` (checked against V) and ``bpe-code`` found in ``directory``."""
    dict_path = directory / DICT_FILE
    if dict_path.is_file():
        d = Dictionary.load(dict_path)
        if model_vocab_size(d) != model.cfg.vocab_size:
            raise CheckpointError(
                f"{dict_path}: {len(d) - d.nspecial} entries + {d.nspecial} specials + <mask> = "
                f"{model_vocab_size(d)} symbols, but the model's vocabulary has "
                f"{model.cfg.vocab_size}: this is the wrong dictionary for this checkpoint")
        model.dictionary = d
    bpe_path = directory / BPE_FILE
    model.bpe_codes = str(bpe_path) if bpe_path.is_file() else None


# --------------------------------------------------------------------------- public API
def resolve_checkpoint(path: PathLike) -> Path:
    """A file as is; in a training directory: checkpoint_best, else _last, else the only one."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise FileNotFoundError(f"no such checkpoint file or directory: {path}")
    for name in ("checkpoint_best.pt", "checkpoint_last.pt"):
        if (path / name).is_file():
            return path / name
    found = sorted(path.glob("checkpoint*.pt"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise FileNotFoundError(f"{path}: no {CONFIG_FILE}/{WEIGHTS_FILE} and no checkpoint*.pt")
    raise CheckpointError(f"{path}: several checkpoints and no checkpoint_best.pt or "
                          f"checkpoint_last.pt; name one: {', '.join(p.name for p in found)}")


def load_model(path: PathLike, whole_electra: bool = False) -> TupeModel:
    """A ready model (eval mode, float32) from an original/our training checkpoint file, a
    directory of training checkpoints, a ``save_pretrained`` directory or a transformers folder
    (``tupe-convert --hf``, or a ``TupeFor...`` model's ``save_pretrained``). An ELECTRA
    checkpoint gives its discriminator, or with ``whole_electra`` the whole ElectraModel."""
    from .model.electra import is_electra_state

    path = Path(path)
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        return load_hf_folder(path) if is_hf_folder(path) else load_pretrained(path)
    ckpt = resolve_checkpoint(path)
    state = read_checkpoint(ckpt)
    if whole_electra and is_electra_state(state["model"]):
        return _electra_from_state(state, ckpt)
    cfg = config_from_checkpoint(state.get("args"), state["model"], ckpt)
    model = build_and_load(cfg, checkpoint_tensors(state["model"], ckpt), ckpt)
    attach_vocabulary(model, ckpt.parent)
    return model


def read_config(path: PathLike) -> tuple[TupeConfig, dict]:
    """The model configuration a checkpoint carries (a training checkpoint file or run directory,
    ELECTRA included, an own-format or a transformers folder), and a training checkpoint's
    progress (``num_updates``, ``epoch``: the epoch it was saved in; empty for folders)."""
    from .model.electra import is_electra_state, split_electra_state

    path = Path(path)
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        return load_model(path).cfg, {}
    ckpt = resolve_checkpoint(path)
    state = read_checkpoint(ckpt)
    tensors = state["model"]
    if is_electra_state(tensors):
        tensors = split_electra_state(tensors)[0]
    epoch, updates = progress_of(state)
    return config_from_checkpoint(state.get("args"), tensors, ckpt), {"num_updates": updates, "epoch": epoch}


def progress_of(state: dict) -> tuple[Optional[int], Optional[int]]:
    """(epoch, num_updates) at which a training checkpoint was saved (None where it does not say).
    At the end of an epoch the saved iterator already points at the next one: that epoch is reported."""
    history = (state.get("optimizer_history") or [{}])[-1]
    progress = (state.get("extra_state") or {}).get("train_iterator") or {}
    epoch = progress.get("epoch")
    if epoch is not None and progress.get("iterations_in_epoch", 0) == 0 and epoch > 1:
        epoch -= 1
    return epoch, history.get("num_updates")


def load_electra_state(model, state: dict[str, torch.Tensor], path: PathLike, target: str) -> None:
    """An ELECTRA checkpoint's ``model`` entry into ``model`` (an ElectraModel): discriminator,
    generator and replaced-token head; one that does not fit is named, with ``target`` (what it
    was meant to fit)."""
    from .model.electra import split_electra_state

    disc, gen, rtd = split_electra_state(state)
    for part, tensors, module in (("discriminator", checkpoint_tensors(disc, path), model.discriminator),
                                  ("generator", gen, model.generator), ("replaced-token head", rtd, model.rtd_head)):
        try:
            module.load_state_dict(tensors)
        except RuntimeError as e:
            raise CheckpointError(f"{path}: the {part} does not fit {target}: "
                                  f"{str(e).splitlines()[-1].strip()}") from None


def _electra_from_state(state: dict, ckpt: Path):
    """The whole ELECTRA model of a read ``--task electra`` checkpoint, eval mode, float32."""
    from .model.electra import DEFAULT_DISC_WEIGHT, ElectraModel, generator_config, split_electra_state

    cfg = config_from_checkpoint(state.get("args"), split_electra_state(state["model"])[0], ckpt)
    info = state.get("electra") or {}
    try:
        gen_cfg = TupeConfig.from_dict(info["generator"]) if "generator" in info else generator_config(cfg)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{ckpt}: generator configuration: {e}") from None
    model = ElectraModel(cfg, gen_cfg, info.get("disc_weight", DEFAULT_DISC_WEIGHT))
    load_electra_state(model, state["model"], ckpt, "its stored configuration")
    attach_vocabulary(model.discriminator, ckpt.parent)
    return model.eval()


def load_electra(path: PathLike):
    """The whole ELECTRA model (generator, discriminator, replaced-token head) of a ``--task
    electra`` checkpoint, eval mode, float32. ``load_model`` gives the discriminator alone."""
    from .model.electra import is_electra_state

    ckpt = resolve_checkpoint(path)
    state = read_checkpoint(ckpt)
    if not is_electra_state(state["model"]):
        raise CheckpointError(f"{ckpt}: not an ELECTRA checkpoint (no generator.* tensors)")
    return _electra_from_state(state, ckpt)


def _atomic_dir(directory: Path):
    directory.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))


def save_pretrained(model: TupeModel, directory: PathLike, extra: Optional[dict] = None) -> None:
    """Write ``config.json`` + ``model.safetensors`` (+ dict.txt, bpe-code); no pickle."""
    from safetensors.torch import save_file

    directory = Path(directory)
    tmp = _atomic_dir(directory)
    try:
        config = {"format": "tupe", "version": 2, "model": model.cfg.to_dict(),
                  "classification_heads": model.head_sizes, **(extra or {})}
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        if model.dictionary is not None:
            model.dictionary.save(tmp / DICT_FILE)
        if model.bpe_codes:
            shutil.copyfile(model.bpe_codes, tmp / BPE_FILE)
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_pretrained_config(directory: PathLike) -> dict:
    path = Path(directory) / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if config.get("format") != "tupe" or "model" not in config:
        raise CheckpointError(f"{path}: not a tupe config (no format='tupe' / 'model')")
    return config


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """safetensors.load_file; a damaged or lying file (header, shapes, offsets) is a CheckpointError.
    safetensors itself never runs code and checks the header against the file."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"{path}: not found")
    try:
        return load_file(str(path))
    except Exception as e:   # SafetensorError, or the header's JSON / sizes failing
        raise CheckpointError(f"{path}: not a valid safetensors file ({str(e).splitlines()[0][:200]})") from None


def load_pretrained(directory: PathLike) -> TupeModel:
    directory = Path(directory)
    config = read_pretrained_config(directory)
    try:
        cfg = TupeConfig.from_dict(config["model"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{directory / CONFIG_FILE}: {e}") from None
    # Version 1 stored the fused q/k/v as in_proj_weight/in_proj_bias (now a Linear, in_proj.*).
    state = {k.replace(_QKV_ORIG, _QKV_OURS): v for k, v in load_safetensors(directory / WEIGHTS_FILE).items()}
    model = build_and_load(cfg, state, directory / WEIGHTS_FILE)
    stated = config.get("classification_heads", {})
    if stated != model.head_sizes:
        raise CheckpointError(f"{directory}: config lists heads {stated} but weights hold {model.head_sizes}")
    attach_vocabulary(model, directory)
    return model


# --------------------------------------------------------------------------- transformers folders
# A transformers folder (tupe.hf) stores the same tensors as the native model under other names:
#   tupe.encoder.*  <-> encoder.*        lm_head.*  <-> lm_head.*
#   classifier.{dense,out_proj}.*  <-> classification_heads.<head>.{dense,out_proj}.*
# Reading one needs no transformers install: config.json holds every TupeConfig field.
HF_ENCODER, HF_CLASSIFIER = "tupe.", "classifier."


def is_hf_folder(directory: PathLike) -> bool:
    try:
        return json.loads((Path(directory) / CONFIG_FILE).read_text()).get("model_type") == "tupe"
    except (OSError, json.JSONDecodeError):
        return False


def hf_state_dict(model: TupeModel, head: Optional[str] = None) -> dict[str, torch.Tensor]:
    """The native model's tensors under the transformers names (``head``: the classification
    head that becomes ``classifier``)."""
    out = {}
    for k, v in model.state_dict().items():
        if k.startswith("classification_heads."):
            name, rest = k[len("classification_heads."):].split(".", 1)
            if name == head:
                out[HF_CLASSIFIER + rest] = v
        elif k.startswith("encoder."):
            out[HF_ENCODER + k] = v
        else:
            out[k] = v
    return out


def load_hf_folder(directory: PathLike, head: str = TupeModel.DEFAULT_HEAD) -> TupeModel:
    """A native model from a transformers folder. The sequence classifier becomes the
    classification head ``head``; a missing masked-LM head (a classifier saved by transformers)
    is initialised afresh, and heads the native model has no place for (token classification,
    question answering) are left out; both are reported on stderr."""
    import sys
    from dataclasses import fields as dc_fields

    directory = Path(directory)
    config = json.loads((directory / CONFIG_FILE).read_text())
    names = {f.name for f in dc_fields(TupeConfig)}
    try:
        cfg = TupeConfig(**{k: v for k, v in config.items() if k in names})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{directory / CONFIG_FILE}: {e}") from None
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{directory}: no {WEIGHTS_FILE} (sharded or .bin weights are not read here)")
    hf = load_safetensors(weights)
    arch = (config.get("architectures") or [""])[0]
    state, dropped = {}, []
    for k, v in hf.items():
        if k.startswith(HF_ENCODER):
            state[k[len(HF_ENCODER):]] = v
        elif k.startswith("lm_head."):
            state[k] = v
        elif k.startswith(HF_CLASSIFIER) and k[len(HF_CLASSIFIER):].startswith(("dense.", "out_proj.")) \
                and arch != "TupeForTokenClassification":
            state[f"classification_heads.{head}.{k[len(HF_CLASSIFIER):]}"] = v
        else:
            dropped.append(k)
    if not any(k.startswith("lm_head.") for k in state):
        state.update(fresh_lm_head(cfg.encoder_embed_dim, cfg.vocab_size))
        print(f"tupe: {directory} has no masked-LM head; initialised a new one (fine for finetuning "
              f"and classification, not for fill-mask)", file=sys.stderr)
    if dropped:
        print(f"tupe: {directory}: left out {len(dropped)} tensors of a {arch or 'transformers'} head the "
              f"native model does not have ({', '.join(sorted(dropped)[:4])})", file=sys.stderr)
    model = build_and_load(cfg, state, weights)
    attach_vocabulary(model, directory)
    return model


def fairseq_args(cfg: TupeConfig, base: Optional[dict] = None, **extra: Any) -> argparse.Namespace:
    """A Namespace the original code can build the model from (base values kept)."""
    values = dict(base or {})
    values.setdefault("arch", "bert_base")
    values.setdefault("task", "masked_lm")
    values.setdefault("criterion", "masked_lm")
    values.update(cfg.to_dict())
    values.setdefault("tokens_per_sample", cfg.max_positions)
    values.update(extra)
    return argparse.Namespace(**values)


def save_fairseq(model: TupeModel, path: PathLike, args: Optional[argparse.Namespace] = None,
                 fp16: bool = False, **entries: Any) -> None:
    """Write the original checkpoint layout atomically (tmp file + rename)."""
    path = Path(path)
    state = fairseq_state_dict(model)
    if fp16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    ckpt = {
        "args": args if args is not None else fairseq_args(model.cfg),
        "model": state,
        "optimizer_history": entries.pop("optimizer_history", []),
        "extra_state": entries.pop("extra_state", {}),
        "last_optimizer_state": entries.pop("last_optimizer_state", None),
        **entries,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
