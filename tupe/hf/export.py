"""Native model -> transformers folder (what ``tupe-convert SRC OUT --hf`` writes)."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence, Union

from safetensors.torch import save_file

from ..checkpoint import WEIGHTS_FILE, Vocabulary, check_replaceable, hf_state_dict
from ..checkpoint.fairseq import LM_HEAD_TRAINED
from ..hub import INPUTS, SCORE_RANGES, write_labels
from ..model import TupeModel
from .configuration import TupeHfConfig
from .tokenization import TupeTokenizer


def export_hf(model: TupeModel, directory: Union[str, os.PathLike], head: Optional[str] = None,
              label_words: Optional[Sequence[str]] = None, cased: Optional[bool] = None,
              vocabulary: Optional[Vocabulary] = None, inputs: Optional[int] = None,
              score_range: Optional[Sequence[float]] = None) -> Path:
    """Write ``config.json``, ``model.safetensors`` and, given the model's ``vocabulary``
    (``tupe.checkpoint.load_vocabulary(path, model.cfg.vocab_size)``), the tokenizer
    (``dict.txt``, ``bpe-code``, ``tokenizer_config.json``). ``directory`` is replaced whole; one
    that holds more than a model folder is refused (``tupe.checkpoint.check_replaceable``).

    ``head``: the classification head that becomes ``TupeForSequenceClassification``'s
    classifier (default: ``sentence_classification_head`` if present, else the only head);
    ``label_words``: its class names (``id2label``). The masked-LM head is always kept, so one
    folder serves ``AutoModelForMaskedLM`` and ``AutoModelForSequenceClassification``.
    ``cased``: the tokenizer keeps case (default: as the vocabulary records, else lower-case).
    ``inputs``: 1 or 2 when the head was finetuned on single sentences or on pairs (the run's
    labels.json says which); kept as ``config.task_inputs`` and in the folder's labels.json, so
    that ``tupe-predict`` and ``tupe.from_pretrained`` on the folder refuse the other kind.
    ``score_range``: a regression head's (lo, hi): it was finetuned on scores scaled to [0, 1]
    (``tupe-preprocess task --regression LO HI``), so its output is mapped back by
    ``lo + value * (hi - lo)``; kept as ``config.task_score_range`` and in labels.json, which
    ``tupe-predict`` and the hub read.
    """
    directory = Path(directory)
    check_replaceable(directory)                          # replaced whole below: never a folder of other things
    sizes = model.head_sizes
    if head is None and sizes:
        head = model.DEFAULT_HEAD if model.DEFAULT_HEAD in sizes else (next(iter(sizes)) if len(sizes) == 1 else None)
        if head is None:
            raise ValueError(f"the model has several classification heads {sorted(sizes)}; choose one (--head)")
    if head is not None and head not in sizes:
        raise ValueError(f"no classification head {head!r}; the model has {sorted(sizes) or 'none'}")
    extra = {}
    if head is not None:
        k = sizes[head]
        if label_words is not None and len(label_words) != k:
            raise ValueError(f"{len(label_words)} label words for a head of {k} classes")
        words = list(label_words) if label_words is not None else [f"LABEL_{i}" for i in range(k)]
        extra = dict(num_labels=k, id2label=dict(enumerate(words)), label2id={w: i for i, w in enumerate(words)},
                     architectures=["TupeForSequenceClassification"])
        if k == 1:
            extra["problem_type"] = "regression"
        if score_range is not None:
            if k != 1 or len(score_range) != 2:
                raise ValueError(f"score_range={score_range!r}: (lo, hi) of a regression head (1 output)")
            extra["task_score_range"] = [float(score_range[0]), float(score_range[1])]
        if inputs is not None:
            if inputs not in (1, 2):
                raise ValueError(f"inputs={inputs!r}: 1 (single sentences) or 2 (sentence pairs)")
            extra["task_inputs"] = inputs
    else:
        extra = dict(architectures=["TupeForMaskedLM"])
    if not getattr(model, "lm_head_trained", True):
        extra[LM_HEAD_TRAINED] = False                    # its masked-LM head was made new, never trained
    config = TupeHfConfig.from_tupe_config(model.cfg, **extra)

    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        config.save_pretrained(tmp)
        state = {k: v.detach().contiguous() for k, v in hf_state_dict(model, head).items()}
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        if vocabulary is not None and vocabulary.bpe_codes is not None:
            cased = bool(vocabulary.cased) if cased is None else cased
            replace(vocabulary, cased=cased).save(tmp)
            dict_file = tmp / "dict.txt"
            TupeTokenizer(str(dict_file), str(tmp / "bpe-code"), cased=cased,
                          model_max_length=model.cfg.max_positions).save_pretrained(tmp)
        labels: dict = {}                                 # tupe-predict reads label words and inputs from here too
        if head is not None and label_words is not None:
            labels[model.DEFAULT_HEAD] = list(label_words)
        if head is not None and inputs is not None:
            labels[INPUTS] = {model.DEFAULT_HEAD: inputs}
        if head is not None and score_range is not None:
            labels[SCORE_RANGES] = {model.DEFAULT_HEAD: extra["task_score_range"]}
        if labels:
            write_labels(tmp, labels)
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory
