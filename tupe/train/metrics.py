"""GLUE metrics, computed with scikit-learn and scipy."""

from __future__ import annotations

from typing import Optional

import numpy as np


def classification_metrics(pred: np.ndarray, target: np.ndarray, positive: Optional[int] = None) -> dict:
    """Accuracy for any task; for binary tasks also F1 of the ``positive`` class index (GLUE's
    label "1") and Matthews correlation."""
    from sklearn.metrics import f1_score, matthews_corrcoef  # heavy import (~1 s): only when a metric is computed

    out = {"accuracy": float((pred == target).mean()) if len(target) else float("nan")}
    if positive is not None:
        out["f1"] = float(f1_score(target, pred, pos_label=positive, average="binary", zero_division=0))
        out["mcc"] = float(matthews_corrcoef(target, pred))
    return out


def regression_metrics(pred: np.ndarray, target: np.ndarray) -> dict:
    from scipy.stats import pearsonr, spearmanr  # heavy import: only when a correlation is computed

    if len(target) < 2 or np.std(pred) == 0 or np.std(target) == 0:
        return {"pearson": float("nan"), "spearman": float("nan")}
    return {"pearson": float(pearsonr(pred, target)[0]), "spearman": float(spearmanr(pred, target)[0])}
