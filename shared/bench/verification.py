"""LFW-style verification: parse pairs.txt and score 10-fold accuracy from embeddings."""
from __future__ import absolute_import, division, print_function

import io
import os

import numpy as np


def lfw_name(person, number):
    return os.path.join(person, "%s_%04d.jpg" % (person, int(number)))


def read_pairs(path):
    """[(image_a, image_b, same)] from the standard format ('Name i j' / 'A i B j'); a
    leading 'folds size' header line, if present, is skipped."""
    pairs = []
    with io.open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts or (number == 1 and len(parts) == 2):
                continue
            if len(parts) == 3:
                pairs.append((lfw_name(parts[0], parts[1]), lfw_name(parts[0], parts[2]), True))
            elif len(parts) == 4:
                pairs.append((lfw_name(parts[0], parts[1]), lfw_name(parts[2], parts[3]), False))
            else:
                raise ValueError("%s line %d: expected 3 or 4 fields, got %r" % (path, number, line))
    if not pairs:
        raise ValueError("%s holds no pairs" % path)
    return pairs


def _best_threshold(scores, same):
    candidates = np.unique(scores)
    mids = np.concatenate([[candidates[0] - 1e-6], (candidates[:-1] + candidates[1:]) / 2,
                           [candidates[-1] + 1e-6]])
    accuracy = [np.mean((scores > t) == same) for t in mids]
    return mids[int(np.argmax(accuracy))]


def kfold_accuracy(scores, same, folds=10):
    """Mean and std of accuracy over contiguous folds, each threshold tuned on the others."""
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    parts = np.array_split(np.arange(len(scores)), folds)
    accuracies = []
    for part in parts:
        train = np.setdiff1d(np.arange(len(scores)), part)
        threshold = _best_threshold(scores[train], same[train])
        accuracies.append(np.mean((scores[part] > threshold) == same[part]))
    return float(np.mean(accuracies)), float(np.std(accuracies))


def cosine_scores(embeddings, index, pairs):
    """Cosine similarity per pair; `embeddings` rows follow the names in `index`."""
    row = dict((name, i) for i, name in enumerate(index))
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    a = unit[[row[p[0]] for p in pairs]]
    b = unit[[row[p[1]] for p in pairs]]
    return np.sum(a * b, axis=1)
