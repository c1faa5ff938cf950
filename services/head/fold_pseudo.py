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


def _records(path, test_names):
    """(each record of a pseudo-label CSV, the test row its image is); names the file and an
    image that is not one of `test_names`."""
    position = dict((name, i) for i, name in enumerate(test_names))
    with io.open(path, encoding="utf-8") as f:
        for record in csv.DictReader(f):
            if record["image"] not in position:
                raise ValueError("%s: '%s' is not a test image of these embeddings" % (path, record["image"]))
            yield record, position[record["image"]]


def read_labels(path, test_names):
    """A label per test row from a shared pseudo-label CSV (image,label); -1 where it has none."""
    labels = np.full(len(test_names), -1, np.int64)
    for record, row in _records(path, test_names):
        labels[row] = int(record["label"])
    return labels


def write_labels(path, names, labels):
    """A shared pseudo-label CSV: image,label of every row with a label (>= 0)."""
    lines = ["image,label"] + ["%s,%d" % (n, l) for n, l in zip(names, labels) if l >= 0]
    write_text(path, "\n".join(lines) + "\n")


def read_folds(path, test_names):
    """{(column, fold): a label per test row, -1 where it has none} of a per-fold pseudo-label
    CSV (image,column,fold,label)."""
    found = {}
    for record, row in _records(path, test_names):
        labels = found.setdefault((record["column"], int(record["fold"])), np.full(len(test_names), -1, np.int64))
        labels[row] = int(record["label"])
    return found


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
    none = np.full(len(test_names), -1, np.int64)
    if not per_fold:
        one = read_labels(shared, test_names) if shared else none
        found = dict(((c, f), one) for c in columns for f in folds)
    else:
        found = read_folds(per_fold, test_names)
        for column in columns:
            if not any(c == column for c, _ in found):
                raise ValueError("%s has no pseudo-labels for fold column %s" % (per_fold, column))
    labelled = [(head, found.get(head, none)) for head in ((c, f) for c in columns for f in folds)]
    return dict((head, (np.flatnonzero(labels >= 0), labels[labels >= 0])) for head, labels in labelled)
