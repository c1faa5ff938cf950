"""Scores of a ranked submission: MAP@5, top-1, and how well unknowns are found."""
import numpy as np

from shared.method.ensemble import UNKNOWN


def top_k(probs, k=5, class_ids=None):
    """Class ids by falling probability; ties go to the lower column (stable, reproducible).
    `class_ids` names each column's label (default: the column number)."""
    columns = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return columns if class_ids is None else np.asarray(class_ids)[columns]


def reciprocal_ranks(truth, ranked):
    """Per row: 1/rank of the true label within the first five, 0 if absent."""
    out = np.zeros(len(truth))
    for i, (label, row) in enumerate(zip(truth, ranked)):
        hits = [k for k, guess in enumerate(list(row)[:5]) if guess == label]
        out[i] = 1.0 / (hits[0] + 1) if hits else 0.0
    return out


def map_at_5(truth, ranked):
    """Mean over rows of 1/rank of the true label within the first five, 0 if absent."""
    return float(reciprocal_ranks(truth, ranked).sum() / max(len(truth), 1))


def scores(truth, ranked):
    """MAP@5, top-1 and unknown precision/recall (unknown predicted = ranked first)."""
    truth = np.asarray(truth)
    first = np.array([row[0] for row in ranked])
    predicted, actual = first == UNKNOWN, truth == UNKNOWN
    hits = np.sum(predicted & actual)
    return {"map5": map_at_5(truth, ranked), "top1": float(np.mean(first == truth)),
            "unknown_precision": float(hits / predicted.sum()) if predicted.any() else 0.0,
            "unknown_recall": float(hits / actual.sum()) if actual.any() else 0.0}
