"""Using TUPE from Python, like fairseq's hub interface.

    m = tupe.from_pretrained("checkpoints/tupe-r")       # original or own format, with dict.txt + bpe-code
    ids = m.encode("TUPE unties positions.", "Second sentence.")
    m.decode(ids); m.extract_features("some text"); m.fill_mask("the <mask> of words", topk=3)
    m.predict("sentence_classification_head", "a sentence", "its pair")
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from .checkpoint import (
    BPE_FILE,
    CONFIG_FILE,
    DICT_FILE,
    LABELS_FILE,
    TEXT_FILE,
    Vocabulary,
    is_hf_folder,
    load_model,
    load_vocabulary,
)
from .data.bpe import BPE
from .data.dictionary import MASK
from .logs import listed
from .model import TupeModel
from .model.compile import compile_layers
from .preprocess.glue import STSB_RANGE
from .preprocess.text import glue_clean

logger = logging.getLogger(__name__)

SCORE_RANGES = "score_ranges"      # labels.json: {head: [lo, hi]} of regression heads
INPUTS = "inputs"                  # labels.json: {head: 1 or 2}: one sentence or a pair per example
# What the hub and tupe-predict read beside a checkpoint: its vocabulary, whether the text keeps
# case, what its heads were finetuned on. A folder that keeps a run's checkpoint keeps these too.
BESIDE_FILES = (DICT_FILE, BPE_FILE, TEXT_FILE, LABELS_FILE)


def task_score_range(data_dir: Union[str, Path]) -> tuple[float, float]:
    """The original score range of a binarized regression task: ``task.json``'s
    (``tupe-preprocess task --regression LO HI``), else GLUE's STS-B range 0..5."""
    for name in ("task.json", "glue.json"):
        path = Path(data_dir) / name
        if path.is_file():
            lo_hi = json.loads(path.read_text()).get("score_range")
            if lo_hi:
                return float(lo_hi[0]), float(lo_hi[1])
    return STSB_RANGE


# What one forward costs beyond its token positions, counted in positions: a BERT-base forward of
# one short row on 2 CPU cores takes about as long as 50 positions of a batch of 32 (each forward
# reads all the weights). It only decides where batches are cut; no output depends on it.
FORWARD_COST = 50


def length_batches(lengths: Sequence[int], batch_size: Optional[int] = 32,
                   max_tokens: Optional[int] = None) -> list[list[int]]:
    """Indices into ``lengths`` grouped into batches that waste the least work on padding: sorted
    by length, then cut where the positions computed (each batch padded to its longest row) plus
    FORWARD_COST per batch are fewest (dynamic programming over the sorted order). A batch has at
    most ``batch_size`` rows and, with ``max_tokens``, at most that many padded positions (a longer
    row runs alone); ``batch_size=None``: no row limit (then ``max_tokens`` is needed). Every index
    appears once; the result depends on the lengths alone.

    With a fixed row count a batch that takes in one long row pads all of its rows to it: on 2000
    rows of 5-82 tokens, batches of 32 sorted rows computed 48,832 positions for 46,075 tokens,
    these cuts 46,712 (docs/performance.md)."""
    if batch_size is None and max_tokens is None:
        raise ValueError("batch_size or max_tokens is needed: without either a batch has no bound")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    s = [max(1, int(lengths[i])) for i in order]
    n = len(s)
    index = np.arange(n + 1, dtype=np.int64)
    best = np.zeros(n + 1, dtype=np.int64)     # best[j]: the least cost of the first j sorted rows
    cut = [0] * (n + 1)                        # where the last batch of that best split starts
    for j in range(1, n + 1):
        lj = s[j - 1]                          # the batch s[i:j] is padded to s[j - 1]
        rows = min(j, batch_size or j, max(1, max_tokens // lj) if max_tokens else j)
        lo = j - rows                          # first minimum: the largest batch among equals
        i = lo + int(np.argmin(best[lo:j] - index[lo:j] * lj))
        best[j], cut[j] = best[i] + (j - i) * lj + FORWARD_COST, i
    batches, j = [], n
    while j > 0:
        batches.append(order[cut[j]: j])
        j = cut[j]
    return batches[::-1]


@torch.no_grad()
def classify(model: TupeModel, head: str, rows: Sequence[torch.Tensor], batch_size: Optional[int] = 32,
             max_tokens: Optional[int] = None) -> torch.Tensor:
    """The (N, K) float32 logits of classification head ``head`` for encoded rows (1-D id tensors
    of any lengths), in input order. The rows run in the batches of :func:`length_batches`
    (length-sorted, at most ``batch_size`` rows and ``max_tokens`` padded positions each), each
    padded on the right only to its longest row, in eval mode (the last layer for [CLS] alone);
    the same values as one forward per row, to float rounding."""
    model.eval()
    device = next(model.parameters()).device
    pad = model.cfg.padding_idx
    out = torch.empty(len(rows), model.head_sizes[head])
    for chunk in length_batches([len(r) for r in rows], batch_size, max_tokens):
        batch = torch.full((len(chunk), max(len(rows[i]) for i in chunk)), pad, dtype=torch.long)   # (b, T)
        for b, i in enumerate(chunk):
            batch[b, : len(rows[i])] = rows[i]
        out[chunk] = model(batch.to(device), classification_head_name=head).float().cpu()      # (b, K)
    return out


class HubError(RuntimeError):
    """A model directory that lacks what a call needs."""


class TupeHub(torch.nn.Module):
    """A model with its vocabulary (dict.txt, BPE codes): text in, predictions out."""

    def __init__(self, model: TupeModel, vocabulary: Optional[Vocabulary],
                 labels: Optional[dict[str, list[str]]] = None, cased: Optional[bool] = None):
        super().__init__()
        if vocabulary is None:
            raise HubError("the model has no dictionary: put its dict.txt beside the checkpoint")
        if vocabulary.bpe_codes is None:
            raise HubError("the model has no BPE codes: put its bpe-code beside the checkpoint")
        self.model = model
        self.vocabulary = vocabulary
        self.dictionary = vocabulary.dictionary
        self.mask_idx = model.cfg.vocab_size - 1 if MASK not in self.dictionary else self.dictionary.index(MASK)
        self.bpe = BPE.from_file(vocabulary.bpe_codes)
        self.labels = dict(labels or {})
        for head, k in model.head_sizes.items():   # a labels.json of another model (a stale file): not trusted
            why = unfit_label_words(self.labels.get(head), head, k)
            if why:
                logger.warning("%s: not used (class numbers shown instead); is labels.json another model's?", why)
                del self.labels[head]
        # keep case or lower-case, as the training text was preprocessed (the vocabulary's record;
        # none: lower-case, the paper's setting)
        if cased is not None and vocabulary.cased is not None and cased != vocabulary.cased:
            logger.warning("cased=%s, but this model's text was preprocessed %s: its inputs will not look like "
                           "its training data", cased, "with case kept (--cased)" if vocabulary.cased else "lower-cased")
        self.cased = cased if cased is not None else bool(vocabulary.cased)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ text <-> ids
    def bpe_text(self, text: str) -> str:
        """The per-row cleaning of the GLUE pipeline (Moses normalisation and tokenisation,
        lower-casing) and the BPE codes."""
        return self.bpe.apply_line(glue_clean(text, lowercase=not self.cased))

    def _ids(self, text: str) -> list[int]:
        out = []
        for piece in self.bpe_text(text).split():
            out.append(self.mask_idx if piece == MASK else self.dictionary.index(piece))
        return out + [self.dictionary.eos()]

    def encode(self, text: str, text2: Optional[str] = None) -> torch.Tensor:
        """``<s> text </s> [</s> text2 </s>]`` as the finetuning data was built, cut to the model's
        ``max_positions`` as finetuning's ``--truncate-sequence`` cuts."""
        return self.encode_row(text, text2)[0]

    def encode_row(self, text: str, text2: Optional[str] = None) -> tuple[torch.Tensor, bool]:
        """``encode``'s row and whether it was cut (``predict``, ``predict_batch`` and
        ``tupe-predict`` report the rows they cut)."""
        ids = [self.dictionary.bos()] + self._ids(text)
        if text2 is not None:
            ids += [self.dictionary.eos()] + self._ids(text2)
        limit = self.model.cfg.max_positions
        return torch.tensor(ids[:limit], dtype=torch.long), len(ids) > limit

    def decode(self, ids: Union[torch.Tensor, list[int]]) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        words = [MASK if i == self.mask_idx else self.dictionary[i] for i in ids
                 if i not in (self.dictionary.bos(), self.dictionary.pad(), self.dictionary.eos())]
        return (" ".join(words) + " ").replace("@@ ", "").strip()

    # ------------------------------------------------------------------ model calls
    def _batch(self, tokens: Union[str, torch.Tensor], text2: Optional[str] = None) -> torch.Tensor:
        """(1, T) ids on the model's device: a text (and its pair) encoded, with a warning when it is
        cut to the model's length; or ids as given."""
        if isinstance(tokens, str):
            tokens, was_cut = self.encode_row(tokens, text2)
            if was_cut:
                logger.warning("the text is longer than the model's %d positions: cut to them (as finetuning's "
                               "--truncate-sequence does)", self.model.cfg.max_positions)
        return (tokens if tokens.dim() == 2 else tokens.unsqueeze(0)).to(self.device)

    @torch.no_grad()
    def extract_features(self, tokens: Union[str, torch.Tensor]) -> torch.Tensor:
        self.model.eval()
        return self.model.extract_features(self._batch(tokens))

    @torch.no_grad()
    def fill_mask(self, text: str, topk: int = 5) -> list[tuple[str, float, str]]:
        """``text`` with one ``<mask>``: the ``topk`` fillers as (filled text, probability, token)."""
        if text.count(MASK) != 1:
            raise HubError(f"fill_mask needs exactly one {MASK} in the text, got {text.count(MASK)}")
        if not self.model.lm_head_trained:
            raise HubError("this model's masked-LM head was never trained (it was made new when an ELECTRA "
                           "discriminator or a transformers classifier without one was loaded): fill_mask would "
                           "give noise; use a masked-LM pretrained model")
        tokens = self._batch(text)
        masked = tokens.eq(self.mask_idx)
        if not masked.any():
            raise HubError(f"the {MASK} is beyond the model's {self.model.cfg.max_positions} positions (the text "
                           f"is cut to them): put it earlier or shorten the text")
        self.model.eval()
        probs = self.model(tokens, masked_tokens=masked).softmax(-1)[0]
        values, indices = probs.topk(topk)
        out = []
        for p, i in zip(values.tolist(), indices.tolist()):
            filled = tokens[0].clone()
            filled[masked[0]] = i
            out.append((self.decode(filled), p, self.dictionary[i]))
        return out

    @torch.no_grad()
    def predict(self, head: str, text: str, text2: Optional[str] = None, return_logits: bool = False):
        """Class log-probabilities (or the regression value) of a classification head; with
        labels known (a finetuned directory), ``predict_label`` returns the label word."""
        self.check_head(head)
        self.check_inputs(head, text2 is not None)
        self.model.eval()
        logits = self.model(self._batch(text, text2), classification_head_name=head)
        if return_logits or logits.size(-1) == 1:
            return logits
        return logits.log_softmax(-1)

    def check_head(self, head: str) -> None:
        if head not in self.model.classification_heads:
            raise HubError(f"the model has no classification head {head!r} (it has "
                           f"{sorted(self.model.classification_heads) or 'none'})")

    def check_inputs(self, head: str, pair: bool, where: str = "") -> None:
        """A pair for a head finetuned on single sentences, or the reverse, is an error (the run's
        labels.json says which; a model without it is not checked)."""
        expected = self.labels.get(INPUTS, {}).get(head)
        if expected == 1 and pair:
            raise HubError(f"{where}a sentence pair (two tab-separated fields), but head {head!r} was finetuned on "
                           f"single sentences: give one sentence per line (a tab inside a sentence: replace it)")
        if expected == 2 and not pair:
            raise HubError(f"{where}one sentence, but head {head!r} was finetuned on sentence pairs: give "
                           f"sentence<TAB>pair")

    @torch.no_grad()
    def predict_batch(self, head: str, texts: Sequence[str], pairs: Optional[Sequence[str]] = None,
                      batch_size: Optional[int] = 32, max_tokens: Optional[int] = None) -> torch.Tensor:
        """``predict`` for many rows: (N, K) log-probabilities (regression: (N, 1) values) in input
        order. Rows are encoded, sorted by length and run in batches of at most ``batch_size`` rows
        (and ``max_tokens`` padded positions), cut where padding wastes least (:func:`length_batches`),
        each batch padded (on the right) only to its longest row; the same values as one
        ``predict`` per row (to float rounding)."""
        self.check_head(head)
        for name, given in (("texts", texts), ("pairs", pairs)):
            if isinstance(given, (str, bytes)):   # a string is a sequence too: each character would be a row
                raise HubError(f"predict_batch: {name} is one string; pass a list of strings (predict takes one row)")
        if pairs is not None and len(pairs) != len(texts):
            raise HubError(f"{len(texts)} texts but {len(pairs)} pairs")
        self.check_inputs(head, pairs is not None)
        rows, cut = [], []
        for i, t in enumerate(texts):
            row, was_cut = self.encode_row(t, pairs[i] if pairs is not None else None)
            rows.append(row)
            if was_cut:
                cut.append(i)
        if cut:
            logger.warning("%d of %d rows longer than the model's %d positions were cut to them (as finetuning's "
                           "--truncate-sequence does): rows %s", len(cut), len(rows), self.model.cfg.max_positions,
                           listed(cut))
        return self.predict_rows(head, rows, batch_size, max_tokens)

    def predict_rows(self, head: str, rows: Sequence[torch.Tensor], batch_size: Optional[int] = 32,
                     max_tokens: Optional[int] = None) -> torch.Tensor:
        """Encoded rows (1-D id tensors) through head ``head`` in the batches of
        :func:`length_batches`, input order: (N, K) log-probabilities (regression: (N, 1) values)."""
        self.check_head(head)
        logits = classify(self.model, head, rows, batch_size, max_tokens)
        return logits.log_softmax(-1) if logits.size(-1) > 1 else logits

    def labels_of(self, head: str, out: torch.Tensor) -> list[tuple[str, float]]:
        """(label word, probability) per row of ``predict``/``predict_batch`` output (regression:
        the value in the task's range, probability NaN)."""
        if out.size(-1) == 1:   # regression: back to the task's range (STS-B: 0..5)
            lo, hi = self.labels.get(SCORE_RANGES, {}).get(head, STSB_RANGE)
            return [(f"{lo + v * (hi - lo):.4f}", float("nan")) for v in out[:, 0].tolist()]
        probs, idx = out.exp().max(-1)
        words = self.labels.get(head)
        return [((words[i] if words and i < len(words) else str(i)), p) for p, i in zip(probs.tolist(), idx.tolist())]

    def predict_label(self, head: str, text: str, text2: Optional[str] = None) -> tuple[str, float]:
        return self.labels_of(head, self.predict(head, text, text2))[0]


def from_pretrained(path: Union[str, Path], cased: Optional[bool] = None, compile: bool = False,
                    attn_impl: str = "auto") -> TupeHub:
    """A model directory or checkpoint (original or own format) with its dict.txt and bpe-code.

    ``cased``: keep the input's case (True) or lower-case it (False); default: as the model's
    training text was preprocessed (``tupe-preprocess --cased``, recorded beside the checkpoint
    in text.json by training runs; lower-case where nothing is recorded, the paper's setting).
    ``compile=True``: torch.compile the encoder layers for inference (the first call per input
    shape compiles; eager with a warning where it cannot compile). ``attn_impl="flex"``: the
    positional terms read inside FlexAttention (GPUs; see tupe/model/flex.py)."""
    model = load_model(path)
    model.set_attn_impl(attn_impl)
    if compile:
        compile_layers(model)
    return TupeHub(model, load_vocabulary(path, model.cfg.vocab_size), read_labels(path, model) or None, cased)


def unfit_label_words(words, head: str, k: int) -> Optional[str]:
    """Why ``words`` (a head's class names from labels.json) cannot name head ``head`` of ``k``
    classes: another number of them (another model's file left beside it); None when they fit
    or there are none."""
    if isinstance(words, list) and words and len(words) != k:
        return f"the label words beside the model name {len(words)} classes for head {head!r}, which has {k}"
    return None


def write_labels(directory: Union[str, Path], labels: dict) -> None:
    """``directory``'s labels.json: what :func:`read_labels` reads back."""
    (Path(directory) / LABELS_FILE).write_text(json.dumps(labels) + "\n")


def read_labels(path: Union[str, Path], model: TupeModel) -> dict:
    """What is known of ``model``'s heads beside the checkpoint ``path`` (a file or folder): the
    run's labels.json (label words, ``INPUTS``, ``SCORE_RANGES``), completed for a transformers
    folder (e.g. saved by transformers.Trainer, which writes no labels.json) from its config: the
    class names from id2label, single sentences or pairs from task_inputs, a regression head's score
    range from task_score_range (tupe-convert --hf)."""
    directory = Path(path) if Path(path).is_dir() else Path(path).parent
    labels = json.loads((directory / LABELS_FILE).read_text()) if (directory / LABELS_FILE).is_file() else {}
    if is_hf_folder(directory) and model.classification_heads:
        config = json.loads((directory / CONFIG_FILE).read_text())
        id2label = config.get("id2label") or {}
        k = model.head_sizes.get(model.DEFAULT_HEAD, 0)
        if model.DEFAULT_HEAD not in labels and k > 1 and all(str(i) in id2label for i in range(k)):
            labels[model.DEFAULT_HEAD] = [id2label[str(i)] for i in range(k)]
        if config.get("task_inputs") in (1, 2):
            labels.setdefault(INPUTS, {}).setdefault(model.DEFAULT_HEAD, config["task_inputs"])
        if k == 1 and len(config.get("task_score_range") or ()) == 2:
            labels.setdefault(SCORE_RANGES, {}).setdefault(model.DEFAULT_HEAD, config["task_score_range"])
    return labels
