"""One entry point for every format: ``load_model`` (and ``read_config``) dispatch a path to
the reader of its format (training checkpoint file or run directory, own-format folder,
transformers folder, ELECTRA)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..config import TupeConfig
from ..model import TupeModel
from ..model.electra import is_electra_state, split_electra_state
from .electra import electra_from_state
from .errors import CONFIG_FILE, PathLike
from .fairseq import build_and_load, checkpoint_tensors, config_from_checkpoint, lm_head_trained, progress_of
from .hf import hf_config, is_hf_folder, load_hf_folder
from .native import Vocabulary, load_pretrained, pretrained_config, read_vocabulary
from .safe import read_checkpoint, resolve_checkpoint


def load_model(path: PathLike, whole_electra: bool = False) -> TupeModel:
    """A ready model (eval mode, float32) from an original/our training checkpoint file, a
    directory of training checkpoints, a ``save_pretrained`` directory or a transformers folder
    (``tupe-convert --hf``, or a ``TupeFor...`` model's ``save_pretrained``). An ELECTRA
    checkpoint gives its discriminator, or with ``whole_electra`` the whole ElectraModel."""
    return load_model_and_run_args(path, whole_electra)[0]


def load_model_and_run_args(path: PathLike, whole_electra: bool = False) -> tuple[TupeModel, dict]:
    """``load_model``'s model and, from the same read, the command-line values a training
    checkpoint was saved with (its ``args``: train.py's, or the original code's) as a dict;
    empty for own-format and transformers folders, which keep none."""
    path = Path(path)
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        return (load_hf_folder(path) if is_hf_folder(path) else load_pretrained(path)), {}
    ckpt = resolve_checkpoint(path)
    state = read_checkpoint(ckpt)
    args = state.get("args")
    run = dict(vars(args)) if args is not None and not isinstance(args, dict) else dict(args or {})
    if whole_electra and is_electra_state(state["model"]):
        return electra_from_state(state, ckpt), run
    cfg = config_from_checkpoint(args, state["model"], ckpt)
    model = build_and_load(cfg, checkpoint_tensors(state["model"], ckpt), ckpt)
    model.lm_head_trained = lm_head_trained(state)
    return model, run


def load_vocabulary(path: PathLike, vocab_size: int) -> Optional[Vocabulary]:
    """The vocabulary (dict.txt, bpe-code) beside a checkpoint file or in a model directory."""
    path = Path(path)
    return read_vocabulary(path if path.is_dir() else path.parent, vocab_size)


def read_config(path: PathLike) -> tuple[TupeConfig, dict]:
    """The model configuration a checkpoint carries (a training checkpoint file or run directory,
    ELECTRA included, an own-format or a transformers folder), and a training checkpoint's
    progress (``num_updates``, ``epoch``: the epoch it was saved in; empty for folders)."""
    path = Path(path)
    if path.is_dir() and (path / CONFIG_FILE).is_file():   # config.json alone, no weights read
        return (hf_config(path) if is_hf_folder(path) else pretrained_config(path)), {}
    ckpt = resolve_checkpoint(path)
    state = read_checkpoint(ckpt)
    tensors = state["model"]
    if is_electra_state(tensors):
        tensors = split_electra_state(tensors)[0]
    epoch, updates = progress_of(state)
    return config_from_checkpoint(state.get("args"), tensors, ckpt), {"num_updates": updates, "epoch": epoch}

