"""Pseudo-label files, shared by every head (the original's) or one set per head (issue 23).

The original labels the test rows once, with heads or prototypes that saw every train row, and
every step-6/7 head learns from that one set. A head validates on one fold of the train rows, so
its validation figures then see their own labels: the test rows it learned from were labelled by
models that had those rows' labels. With per-fold sets, the head of fold column C, fold k learns
from test rows labelled only by models that did not see fold k of C (the prototypes of the other
folds; for step 7, the step-6 heads of the same column and fold), so its validation is honest.
The test submissions still average every head; only which labels each head learns from changes.

    <pseudo>/<step>.csv        image,label          one set for every head
    <pseudo>/<step>.folds.csv  image,column,fold,label  one set per head (column, fold)
    <heads>/<model>/<step>/test_fold_probs.npz   each head's test probabilities, key "<column>.<fold>"
"""
import csv
import io

import numpy as np

from shared.method.steps import FOLD_PROBS, folds_path  # noqa: F401 (the services' names for them)
from shared.storage import write_text


def key(column, fold):
    return "%s.%d" % (column, fold)


def _test_row(path, position, image):
    if image not in position:
        raise ValueError("%s: '%s' is not a test image of these embeddings" % (path, image))
    return position[image]


def read_rows(path, test_names):
    """(test rows, labels) of a shared pseudo-label CSV (image,label)."""
    position = dict((name, i) for i, name in enumerate(test_names))
    with io.open(path, encoding="utf-8") as f:
        records = list(csv.DictReader(f))
    return (np.array([_test_row(path, position, r["image"]) for r in records], dtype=np.int64),
            np.array([int(r["label"]) for r in records], dtype=np.int64))


def read_folds(path, test_names):
    """{(column, fold): (test rows, labels)} of a per-fold pseudo-label CSV (image,column,fold,label)."""
    position = dict((name, i) for i, name in enumerate(test_names))
    found = {}
    with io.open(path, encoding="utf-8") as f:
        for record in csv.DictReader(f):
            rows, labels = found.setdefault((record["column"], int(record["fold"])), ([], []))
            rows.append(_test_row(path, position, record["image"]))
            labels.append(int(record["label"]))
    return dict((k, (np.array(r, dtype=np.int64), np.array(l, dtype=np.int64))) for k, (r, l) in found.items())


def write_folds(path, names, sets):
    """The per-fold CSV of `sets`, {(column, fold): a label per test row, -1 where it has none}."""
    lines = ["image,column,fold,label"]
    for (column, fold), labels in sorted(sets.items()):
        lines += ["%s,%s,%d,%d" % (n, column, fold, l) for n, l in zip(names, labels) if l >= 0]
    write_text(path, "\n".join(lines) + "\n")


def head_sets(shared, per_fold, test_names, columns, folds):
    """{(column, fold): (test rows, labels)} for every head of `columns` (fold ids `folds`): the
    per-fold CSV's own set of each head (one it lists no row for learns from no test row), else
    the shared CSV's one set for all, else none. Names the per-fold file when it has no set for
    a fold column at all."""
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if not per_fold:
        one = read_rows(shared, test_names) if shared else empty
        return dict(((c, f), one) for c in columns for f in folds)
    found = read_folds(per_fold, test_names)
    for column in columns:
        if not any(c == column for c, _ in found):
            raise ValueError("%s has no pseudo-labels for fold column %s" % (per_fold, column))
    return dict(((c, f), found.get((c, f), empty)) for c in columns for f in folds)
