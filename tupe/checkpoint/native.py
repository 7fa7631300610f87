"""The project's own format: a directory with ``config.json`` + ``model.safetensors`` (no
pickle), plus ``dict.txt`` and ``bpe-code`` when known (docs/checkpoints.md)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file, save_file

from ..config import TupeConfig
from ..data.dictionary import Dictionary, model_vocab_size
from ..model import TupeModel
from .errors import BPE_FILE, CONFIG_FILE, DICT_FILE, LABELS_FILE, TEXT_FILE, WEIGHTS_FILE, CheckpointError, PathLike
from .fairseq import _QKV_ORIG, _QKV_OURS, LM_HEAD_TRAINED, build_and_load

logger = logging.getLogger(__name__)


@dataclass
class Vocabulary:
    """A model's text side, kept beside its weights: ``dict.txt``, the BPE codes and whether the
    text keeps its case (``tupe-preprocess ... --cased``; None: not recorded, read as uncased, the
    paper's setting). It belongs to the text-in / text-out layer (the hub, the converters), not to
    the ``nn.Module``."""
    dictionary: Dictionary
    bpe_codes: Optional[Path] = None
    cased: Optional[bool] = None

    def save(self, directory: Path) -> None:
        self.dictionary.save(directory / DICT_FILE)
        if self.bpe_codes is not None:
            shutil.copyfile(self.bpe_codes, directory / BPE_FILE)
        if self.cased is not None:
            write_casing(directory, self.cased)


# Where a folder records whether its text kept case: this project's text.json (model folders and
# run dirs), tupe-preprocess's records (pretrain: preprocess.json's options; glue, task: their
# JSON), a transformers folder's tokenizer_config.json.
_CASING_RECORDS = ((TEXT_FILE, ("cased",)), ("preprocess.json", ("options", "cased")), ("task.json", ("cased",)),
                   ("glue.json", ("cased",)), ("tokenizer_config.json", ("cased",)))


def casing_of(directory: PathLike) -> Optional[bool]:
    """Whether the text of a model folder, run dir or preprocessed data folder keeps its case, from
    the first record it has (``_CASING_RECORDS``); None where none says."""
    directory = Path(directory)
    for name, keys in _CASING_RECORDS:
        path = directory / name
        if not path.is_file():
            continue
        try:
            value = json.loads(path.read_text())
            for key in keys:
                value = value[key]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(value, bool):
            return value
    return None


def write_casing(directory: PathLike, cased: bool) -> None:
    (Path(directory) / TEXT_FILE).write_text(json.dumps({"cased": cased}) + "\n")


def read_vocabulary(directory: PathLike, vocab_size: int) -> Optional[Vocabulary]:
    """``dict.txt`` (checked against the model's V) and ``bpe-code`` in ``directory``; None
    without a dict.txt."""
    directory = Path(directory)
    dict_path = directory / DICT_FILE
    if not dict_path.is_file():
        return None
    d = Dictionary.load(dict_path)
    if model_vocab_size(d) != vocab_size:
        raise CheckpointError(
            f"{dict_path}: {len(d) - d.nspecial} entries + {d.nspecial} specials + <mask> = "
            f"{model_vocab_size(d)} symbols, but the model's vocabulary has "
            f"{vocab_size}: this is the wrong dictionary for this checkpoint")
    bpe_path = directory / BPE_FILE
    return Vocabulary(d, bpe_path if bpe_path.is_file() else None, casing_of(directory))


def check_data_dictionary(checkpoint: PathLike, dictionary: Dictionary, data: PathLike) -> None:
    """``dictionary`` (the one of ``data``) must be the ``dict.txt`` beside ``checkpoint`` (a file or
    a model directory), the vocabulary the model was trained with: the same symbols in the same
    order (nothing to compare with: no check). A CheckpointError names the first symbol that
    differs. Sizes are checked against the model's V elsewhere; this catches data binarized with
    another dictionary of the same size, which reads as other words without any other error. Data
    preprocessed with other casing than the model's text (``tupe-preprocess --cased``; both
    recorded) is logged as a warning."""
    path = Path(checkpoint)
    dict_path = (path if path.is_dir() else path.parent) / DICT_FILE
    if not dict_path.is_file():
        return
    ours = Dictionary.load(dict_path).symbols
    theirs = dictionary.symbols
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            line = i - dictionary.nspecial + 1                                          # dict.txt's line
            raise CheckpointError(
                f"{checkpoint} and {data}: symbol {i} (dict.txt line {line}) is {b!r} in the data but {a!r} in "
                f"{dict_path}: the data was binarized with another vocabulary; preprocess it with the model's "
                f"(tupe-preprocess pretrain --bpe-code {dict_path.parent / BPE_FILE} --dict {dict_path}; glue or "
                f"task: --bpe-dir {dict_path.parent})")
    data_dir = Path(str(data).split(":")[0])                                           # train.py: DIR1:DIR2:...
    ours_cased, theirs_cased = casing_of(dict_path.parent), casing_of(data_dir)
    if None not in (ours_cased, theirs_cased) and ours_cased != theirs_cased:
        kind = {True: "keeps case (--cased)", False: "is lower-cased"}
        logger.warning("the text of %s %s, but the model's (%s) %s: the model reads text unlike its "
                       "training text (preprocess the data %s --cased)", data_dir, kind[theirs_cased],
                       dict_path.parent, kind[ours_cased], "with" if ours_cased else "without")


# What a model folder written by this project holds (own format or transformers, with the
# vocabulary and what the hub reads beside a checkpoint). A folder holding nothing else is
# replaced whole by a new save; one holding anything else is not touched.
MODEL_FOLDER_FILES = frozenset({CONFIG_FILE, WEIGHTS_FILE, DICT_FILE, BPE_FILE, TEXT_FILE, LABELS_FILE,
                                "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                                "tokenizer.json", "generation_config.json"})


def check_replaceable(directory: PathLike) -> None:
    """Saving a model into ``directory`` replaces the folder whole: refused (CheckpointError) when
    it exists and holds anything a model folder does not (a training run's checkpoints, other
    files), so that a mistyped destination never deletes them."""
    directory = Path(directory)
    if not directory.exists():
        return
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: exists and is not a folder")
    foreign = sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir()
                     if p.name not in MODEL_FOLDER_FILES)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f", ... ({len(foreign)} in all)" if len(foreign) > 5 else "")
        raise CheckpointError(f"{directory} exists and holds more than a model folder ({shown}): a model is saved "
                              f"by replacing its folder whole, so nothing was written; choose a new folder")


def _atomic_dir(directory: Path):
    directory.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))


def save_pretrained(model: TupeModel, directory: PathLike, extra: Optional[dict] = None,
                    vocabulary: Optional[Vocabulary] = None) -> None:
    """Write ``config.json`` + ``model.safetensors`` (+ the vocabulary's dict.txt, bpe-code); no pickle.
    ``directory`` is replaced whole; one that holds more than a model folder is refused
    (:func:`check_replaceable`)."""

    directory = Path(directory)
    check_replaceable(directory)
    tmp = _atomic_dir(directory)
    try:
        config = {"format": "tupe", "version": 2, "model": model.cfg.to_dict(),
                  "classification_heads": model.head_sizes, **(extra or {})}
        if not getattr(model, "lm_head_trained", True):
            config[LM_HEAD_TRAINED] = False
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        if vocabulary is not None:
            vocabulary.save(tmp)
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
        other = config.get("model_type")
        raise CheckpointError(f"{path}: not a tupe config (no format='tupe' / 'model')" + (
            f": a transformers folder of another model ({other!r}), which tupe does not load (its own models "
            f"are 'tupe')" if isinstance(other, str) and other != "tupe" else ""))
    return config


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """safetensors.load_file; a damaged or lying file (header, shapes, offsets) is a CheckpointError.
    safetensors itself never runs code and checks the header against the file."""

    if not path.is_file():
        raise CheckpointError(f"{path}: not found")
    try:
        return load_file(str(path))
    except Exception as e:   # SafetensorError, or the header's JSON / sizes failing
        raise CheckpointError(f"{path}: not a valid safetensors file ({str(e).splitlines()[0][:200]})") from None


def pretrained_config(directory: PathLike, config: Optional[dict] = None) -> TupeConfig:
    """The model configuration of an own-format folder (from its config.json; nothing else read)."""
    config = config if config is not None else read_pretrained_config(directory)
    try:
        return TupeConfig.from_dict(config["model"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{Path(directory) / CONFIG_FILE}: {e}") from None


def load_pretrained(directory: PathLike) -> TupeModel:
    directory = Path(directory)
    config = read_pretrained_config(directory)
    cfg = pretrained_config(directory, config)
    # Version 1 stored the fused q/k/v as in_proj_weight/in_proj_bias (now a Linear, in_proj.*).
    state = {k.replace(_QKV_ORIG, _QKV_OURS): v for k, v in load_safetensors(directory / WEIGHTS_FILE).items()}
    model = build_and_load(cfg, state, directory / WEIGHTS_FILE)
    stated = config.get("classification_heads", {})
    if stated != model.head_sizes:
        raise CheckpointError(f"{directory}: config lists heads {stated} but weights hold {model.head_sizes}")
    model.lm_head_trained = config.get(LM_HEAD_TRAINED, True) is not False
    return model
