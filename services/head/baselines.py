"""Peer baselines on the same embeddings: what the heads and pseudo-labelling must beat."""
import numpy as np

from shared.ensemble import UNKNOWN, unit_rows
from shared.metrics import map_at_5


def _class_similarity(gallery, labels, probes):
    """(P, K) best cosine of each probe to each class's gallery images, and the class ids."""
    classes = np.unique(labels)
    similarity = unit_rows(probes).dot(unit_rows(gallery).T)
    best = np.full((len(probes), len(classes)), -np.inf)
    for k, c in enumerate(classes):
        best[:, k] = similarity[:, labels == c].max(axis=1)
    return best, classes


def _rank(best, classes, threshold):
    order = np.argsort(-best, axis=1, kind="stable")[:, :5]
    ranked = classes[order]
    unknown = best.max(axis=1) < threshold
    return np.array([[UNKNOWN] + list(r[:4]) if u else list(r) for r, u in zip(ranked, unknown)])


def nearest_neighbour(train, labels, test, folds):
    """Classes ranked by their nearest train image; "unknown" first when even the nearest is
    farther than a threshold. The threshold is tuned on the validation folds of `folds`
    (train rows whose identity is absent from the other folds play the unknowns), never on
    the test truth."""
    candidates = np.linspace(-0.2, 0.9, 111)
    gains = np.zeros(len(candidates))
    for fold in np.unique(folds):
        gallery, probe = folds != fold, folds == fold
        best, classes = _class_similarity(train[gallery], labels[gallery], train[probe])
        truth = np.where(np.isin(labels[probe], classes), labels[probe], UNKNOWN)
        gains += [map_at_5(truth, _rank(best, classes, t)) * probe.sum() for t in candidates]
    threshold = float(candidates[int(np.argmax(gains))])
    best, classes = _class_similarity(train, labels, test)
    return _rank(best, classes, threshold), threshold


def linear_svm(train, labels, test, unknown_score, seed=0):
    """One-vs-rest linear SVM on the embeddings; "unknown" first when the best decision score
    is <= unknown_score (-0.55, the peer solution's setting)."""
    from sklearn.svm import LinearSVC

    svm = LinearSVC(C=1.0, random_state=seed).fit(unit_rows(train), labels)
    decision = svm.decision_function(unit_rows(test))
    order = np.argsort(-decision, axis=1, kind="stable")[:, :5]
    ranked = svm.classes_[order]
    unknown = decision.max(axis=1) <= unknown_score
    return np.array([[UNKNOWN] + list(r[:4]) if u else list(r) for r, u in zip(ranked, unknown)])
