"""Fold columns rt0..rtK: each a shuffled 5-fold split of the train rows with its own seed.

The original drew 30 unseeded KFold columns; here every column's random state derives from
one seed, so folds.csv is the same on every run. Stratified columns deal each identity's
images round-robin over the folds (identities with one image land in a single fold either way).
"""
import csv
import io

import numpy as np

from shared.storage import atomic_path, stable_seed


def fold_column(labels, seed, column, folds=5, stratified=False):
    """Fold id (0..folds-1) of every row for column number `column`."""
    rng = np.random.RandomState(stable_seed("folds", seed, column))
    labels = np.asarray(labels)
    order = rng.permutation(len(labels))
    if stratified:
        # group rows by label (classes in random order, rows shuffled inside), then deal out
        class_rank = dict((c, r) for r, c in enumerate(rng.permutation(np.unique(labels))))
        order = sorted(order, key=lambda i: class_rank[labels[i]])
    assignment = np.empty(len(labels), dtype=np.int64)
    assignment[np.asarray(order, dtype=np.int64)] = np.arange(len(labels)) % folds
    return assignment


def make_folds(images, labels, seed, columns=30, folds=5, stratified=False):
    return dict(("rt%d" % c, fold_column(labels, seed, c, folds, stratified)) for c in range(columns))


def write_folds(path, images, labels, columns):
    names = sorted(columns, key=lambda name: int(name[2:]))
    with atomic_path(path) as tmp:
        with io.open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["image", "label"] + names)
            for row, (image, label) in enumerate(zip(images, labels)):
                writer.writerow([image, label] + [int(columns[n][row]) for n in names])


def read_folds(path):
    """(images, labels, {column: fold ids})."""
    with io.open(path, encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    images = [r[0] for r in body]
    labels = np.array([int(r[1]) for r in body])
    columns = dict((name, np.array([int(r[i]) for r in body])) for i, name in enumerate(header) if i >= 2)
    return images, labels, columns
