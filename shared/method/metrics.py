"""Scores of a ranked submission: MAP@5, top-1, and how well unknowns are found."""
import numpy as np

from shared.method.ensemble import UNKNOWN


def top_columns(values, k=5):
    """Per row the columns of the k largest values, largest first, ties to the lower column:
    np.argsort(-values, axis=1, kind="stable")[:, :k] exactly, without sorting whole rows (the
    k-th largest value bounds the candidates; a row with a tie at that bound, or a NaN among
    them, is sorted whole)."""
    negative = -np.asarray(values)
    if negative.ndim != 2 or negative.shape[1] <= 4 * k:
        return np.argsort(negative, axis=1, kind="stable")[:, :k]
    part = np.argpartition(negative, k - 1, axis=1)[:, :k]
    found = np.take_along_axis(negative, part, axis=1)
    bound = found.max(axis=1)
    whole = np.isnan(bound) | ((negative <= bound[:, None]).sum(axis=1) > k)
    columns = np.take_along_axis(part, np.lexsort((part, found), axis=1), axis=1)
    if whole.any():
        columns[whole] = np.argsort(negative[whole], axis=1, kind="stable")[:, :k]
    return columns


def top_k(probs, k=5, class_ids=None):
    """Class ids by falling probability; ties go to the lower column (stable, reproducible).
    `class_ids` names each column's label (default: the column number)."""
    columns = top_columns(probs, k)
    return columns if class_ids is None else np.asarray(class_ids)[columns]


def reciprocal_ranks(truth, ranked):
    """Per row: 1/rank of the true label within the first five, 0 if absent."""
    truth = np.asarray(truth)
    try:
        table = np.asarray(ranked, dtype=np.int64)
    except ValueError:  # rows of different lengths
        table = None
    if table is None or table.ndim != 2 or len(table) != len(truth):
        return _reciprocal_ranks_rows(truth, ranked)
    hits = table[:, :5] == truth[:, None]
    return np.where(hits.any(axis=1), 1.0 / (hits.argmax(axis=1) + 1), 0.0)


def _reciprocal_ranks_rows(truth, ranked):
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
    first = ranked[:, 0] if isinstance(ranked, np.ndarray) and ranked.ndim == 2 else np.array([row[0] for row in ranked])
    predicted, actual = first == UNKNOWN, truth == UNKNOWN
    hits = np.sum(predicted & actual)
    return {"map5": map_at_5(truth, ranked), "top1": float(np.mean(first == truth)),
            "unknown_precision": float(hits / predicted.sum()) if predicted.any() else 0.0,
            "unknown_recall": float(hits / actual.sum()) if actual.any() else 0.0}
