"""Peer baselines on the same embeddings: what the heads and pseudo-labelling must beat."""
import numpy as np

from shared.method.ensemble import UNKNOWN, unit_rows
from shared.method.metrics import reciprocal_ranks, scores, top_columns
from shared.method.submission import fill_top5

# The fold column whose folds choose the baselines' thresholds (the prototypes pool more: their
# FOLD_COLUMNS).
FOLD_COLUMN = "rt0"
NN_THRESHOLDS = np.linspace(-0.2, 0.9, 111)  # cosine similarity: "unknown" below it
# An estimated unknown share under this (it shows as 0.000) while the folds hold unknowns: EM
# found no unknowns in the test, so the threshold was chosen as if there were none.
COLLAPSED_SHARE = 0.0005


def _class_similarity(gallery, labels, probes):
    """(P, K) best cosine of each probe to each class's gallery images, and the class ids."""
    classes, column = np.unique(labels, return_inverse=True)
    similarity = unit_rows(probes).dot(unit_rows(gallery).T)
    order = np.argsort(column, kind="stable")  # the gallery's columns grouped by class
    starts = np.searchsorted(column[order], np.arange(len(classes)))
    return np.maximum.reduceat(similarity[:, order], starts, axis=1).astype(np.float64), classes


def _candidates(best, classes):
    """The two rankings of each probe a threshold chooses between, made once for every threshold
    (the top five classes; "unknown" then the top four), and the probe's best similarity."""
    ranked = classes[top_columns(best)]
    return (np.array([fill_top5(r) for r in ranked]), np.array([fill_top5([UNKNOWN] + list(r[:4])) for r in ranked]),
            best.max(axis=1))


def _rank(candidates, threshold):
    """Classes ranked by their best similarity; "unknown" first where even the best is below `threshold`."""
    known, unknown_first, best = candidates
    return np.where((best < threshold)[:, None], unknown_first, known)


def validation_folds(train, labels, folds, score=None):
    """Per fold of `folds`: (scores, class ids, truth) of its rows against the other folds, where
    `score(gallery, gallery_labels, probes)` gives (P, K) scores and the K class ids (default:
    each class's best cosine). Rows whose identity is absent from the other folds play the
    unknowns in the truth."""
    for fold in np.unique(folds):
        gallery, probe = folds != fold, folds == fold
        scores_, classes = (score or _class_similarity)(train[gallery], labels[gallery], train[probe])
        yield scores_, classes, np.where(np.isin(labels[probe], classes), labels[probe], UNKNOWN)


def unknown_share(known_best, unknown_best, test_best, bins=np.linspace(-0.2, 1.0, 61)):
    """The test set's share of unknown faces, estimated without its labels: EM on the test's best
    similarities, a mixture of the validation's known and unknown best-similarity histograms."""
    known = np.histogram(known_best, bins)[0] + 0.5
    unknown = np.histogram(unknown_best, bins)[0] + 0.5
    known, unknown = known / known.sum(), unknown / unknown.sum()
    column = np.clip(np.digitize(test_best, bins) - 1, 0, len(bins) - 2)
    share = 0.1
    for _ in range(200):
        share = float(np.mean(share * unknown[column] / (share * unknown[column] + (1 - share) * known[column])))
    return share


def collapsed_note(settings):
    """What the table says after a nearest-neighbour row whose unknown-share estimate collapsed
    (empty otherwise): its threshold then ignores the unknowns, and its MAP@5 says nothing about
    the unknown decision. Seen on the template-crop dlib model, whose validation known and
    unknown best similarities overlap so far that EM puts every test face among the known."""
    if settings["estimated_unknown_share"] >= COLLAPSED_SHARE:
        return ""
    return "; NOT MEANINGFUL: the unknown-share estimate collapsed to 0, so the threshold ignores the unknowns"


def weighted_map5(reciprocal, unknown, share):
    """Validation MAP@5 as a test set with an unknown share of `share` would score it: the mean
    reciprocal rank of the known rows and of the unknown rows (`unknown` marks them), weighed
    (1 - share) : share; the plain mean when one kind is absent."""
    if not unknown.any() or unknown.all():
        return float(reciprocal.mean())
    return float((1 - share) * reciprocal[~unknown].mean() + share * reciprocal[unknown].mean())


def nearest_neighbour(train, labels, test, folds, test_scores=None):
    """Classes ranked by their nearest train image; "unknown" first when even the nearest is
    less similar than a threshold, tuned on the validation folds of `folds`, never on the test
    truth. The folds hold far more unknowns (identities with one image) than a test set does,
    so each threshold's MAP@5 weighs known and unknown rows by the test's unknown share,
    estimated from the test's similarities alone (unknown_share). Returns the ranking and its
    settings: the threshold, that share and the validation MAP@5 they give. `test_scores`:
    test_similarity's, when already computed."""
    parts = list(validation_folds(train, labels, folds))
    truth = np.concatenate([t for _, _, t in parts])
    unknown = truth == UNKNOWN
    best, classes = test_scores or _class_similarity(train, labels, test)
    validation_best = np.concatenate([b.max(axis=1) for b, _, _ in parts])
    share = unknown_share(validation_best[~unknown], validation_best[unknown], best.max(axis=1))
    # each validation row's reciprocal rank as known (top five) and as "unknown" first: a
    # threshold only picks one of the two per row
    candidates = [_candidates(b, c) for b, c, _ in parts]
    as_known = np.concatenate([reciprocal_ranks(tr, k) for (k, _, _), (_, _, tr) in zip(candidates, parts)])
    as_unknown = np.concatenate([reciprocal_ranks(tr, u) for (_, u, _), (_, _, tr) in zip(candidates, parts)])
    gains = [weighted_map5(np.where(validation_best < t, as_unknown, as_known), unknown, share) for t in NN_THRESHOLDS]
    chosen = int(np.argmax(gains))
    threshold = round(float(NN_THRESHOLDS[chosen]), 4)
    return _rank(_candidates(best, classes), threshold), {"threshold": threshold,
                                                          "estimated_unknown_share": round(share, 4),
                                                          "validation_map5": round(gains[chosen], 6)}


def test_similarity(train, labels, test):
    """(the test's (N, K) best cosine per class, the class ids): what nearest_neighbour and
    nearest_neighbour_sweep share."""
    return _class_similarity(train, labels, test)


def _threshold_scores(test_scores, truth):
    """The test scores of the nearest-neighbour rule at each threshold of NN_THRESHOLDS."""
    candidates = _candidates(*test_scores)
    return [scores(truth, _rank(candidates, t)) for t in NN_THRESHOLDS]


def nearest_neighbour_upper_bound(test_scores, truth):
    """An upper bound, not a method: the nearest-neighbour rule at the threshold of NN_THRESHOLDS
    the test truth picks (the best test MAP@5, the lowest of equals), with its scores. No user
    could choose it: it only shows how far a validated threshold lies from the best any
    threshold rule could do. `test_scores`: test_similarity's."""
    found = _threshold_scores(test_scores, truth)
    best = max(range(len(found)), key=lambda i: found[i]["map5"])
    return dict(found[best], threshold=round(float(NN_THRESHOLDS[best]), 4))


def nearest_neighbour_sweep(train, labels, test, truth, chosen, test_scores=None):
    """The nearest-neighbour baseline's test scores at each candidate threshold (the report's
    trade-off curve); `chosen` is the threshold tuned on the validation folds."""
    found = _threshold_scores(test_scores or _class_similarity(train, labels, test), truth)
    sweep = dict((key, [round(s[key], 5) for s in found]) for key in ("map5", "unknown_precision", "unknown_recall"))
    return dict(sweep, thresholds=[round(float(t), 4) for t in NN_THRESHOLDS], chosen=chosen,
                axis="nearest train face's cosine similarity (unknown below)")


def linear_svm(train, labels, test, unknown_score, seed=0):
    """One-vs-rest linear SVM on the embeddings; "unknown" first when the best decision score
    is <= unknown_score (-0.55, the peer solution's setting)."""
    from sklearn.svm import LinearSVC

    if len(np.unique(labels)) < 2:  # one identity: nothing to separate, it ranks first
        return np.array([fill_top5(np.unique(labels)) for _ in test])
    svm = LinearSVC(C=1.0, random_state=seed).fit(unit_rows(train), labels)
    decision = svm.decision_function(unit_rows(test))
    if decision.ndim == 1:  # two identities: sklearn gives the second one's score alone
        decision = np.stack([-decision, decision], axis=1)
    order = np.argsort(-decision, axis=1, kind="stable")[:, :5]
    ranked = svm.classes_[order]
    unknown = decision.max(axis=1) <= unknown_score
    return np.array([fill_top5([UNKNOWN] + list(r[:4]) if u else r) for r, u in zip(ranked, unknown)])
