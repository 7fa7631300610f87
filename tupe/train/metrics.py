"""GLUE metrics: accuracy, F1 and Matthews correlation from the confusion counts (numpy), Pearson
and Spearman correlations (scipy). F1 and MCC are written out here rather than imported from
scikit-learn, whose import takes ~1.8 s in every finetuning process (``tupe-glue`` starts one per
run); ``tests/finetune/test_finetune.py`` checks them against scikit-learn's."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np


def classification_metrics(pred: np.ndarray, target: np.ndarray, positive: Optional[int] = None) -> dict:
    """Accuracy for any task; for binary tasks also F1 of the ``positive`` class index (GLUE's
    label "1") and Matthews correlation (both 0 where undefined, as scikit-learn's with
    ``zero_division=0``)."""
    out = {"accuracy": float((pred == target).mean()) if len(target) else float("nan")}
    if positive is not None:
        predicted, actual = pred == positive, target == positive
        tp = int(np.sum(predicted & actual))
        fp = int(np.sum(predicted & ~actual))
        fn = int(np.sum(~predicted & actual))
        tn = len(target) - tp - fp - fn
        out["f1"] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        out["mcc"] = (tp * tn - fp * fn) / denominator if denominator else 0.0
    return out


def regression_metrics(pred: np.ndarray, target: np.ndarray) -> dict:
    from scipy.stats import pearsonr, spearmanr  # heavy import: only when a correlation is computed

    if len(target) < 2 or np.std(pred) == 0 or np.std(target) == 0:
        return {"pearson": float("nan"), "spearman": float("nan")}
    return {"pearson": float(pearsonr(pred, target)[0]), "spearman": float(spearmanr(pred, target)[0])}
