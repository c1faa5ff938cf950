"""Steps 4-7 arithmetic: registry-driven ensemble weights, the minimum-distance rule, and the
pseudo-label / unknown rules of the original solution. Pure NumPy, so it is tested directly."""
import numpy as np

from shared.schema import UNKNOWN_LABEL as UNKNOWN


def ensemble_weights(registry, models, step):
    """{model: weight} for `step` (step4, step6, step7) over the models actually present.

    Within each group the registry's weights are renormalised over the present members; the
    group weights are renormalised over the groups present with a non-zero weight. Returns
    (weights, notes) where notes say what was renormalised, for the log."""
    groups = {}
    for name in models:
        groups.setdefault(registry.model(name)["ensemble"]["group"], []).append(name)
    live = dict((g, members) for g, members in groups.items() if registry.groups[g][step] > 0)
    if not live:
        raise ValueError("no model with a non-zero %s ensemble weight among %s" % (step, ", ".join(models)))
    group_total = sum(registry.groups[g][step] for g in live)
    weights, notes = {}, []
    for group, members in sorted(live.items()):
        within = dict((m, registry.model(m)["ensemble"]["within"]) for m in members)
        if not sum(within.values()):  # only members the registry weighs 0 within: they share alike
            within = dict((m, 1.0) for m in members)
        within_total = sum(within.values())
        for m in members:
            weights[m] = registry.groups[group][step] / group_total * within[m] / within_total
    missing_groups = sorted(g for g in registry.groups if registry.groups[g][step] > 0 and g not in live)
    if missing_groups or abs(group_total - 1) > 1e-9:
        notes.append("%s: groups %s absent; group weights renormalised over %s"
                     % (step, ", ".join(missing_groups) or "-", ", ".join(sorted(live))))
    for group, members in sorted(live.items()):
        expected = registry.names_in_group(group)
        if sorted(members) != sorted(expected):
            notes.append("%s: group %s has %d of %d models; within-group weights renormalised"
                         % (step, group, len(members), len(expected)))
    excluded = sorted(m for m in models if m not in weights)
    if excluded:
        notes.append("%s: weight 0 (left out as in the original): %s" % (step, ", ".join(excluded)))
    return weights, notes


def distance_weights(registry, models):
    """{model: weight} of the minimum-distance rule, renormalised over the present models."""
    raw = dict((m, registry.model(m)["ensemble"]["distance"]) for m in models)
    raw = dict((m, w) for m, w in raw.items() if w > 0)
    if not raw:
        raise ValueError("no model with a distance weight among %s" % ", ".join(models))
    total = sum(raw.values())
    return dict((m, w / total) for m, w in raw.items())


def unit_rows(x):
    """Each row scaled to unit L2 norm."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def min_distance(test, train, weights, block=2048):
    """Per test row: min over train rows of sum_m w_m * ||t_m - r_m||^2 (unit vectors)."""
    names = sorted(weights)
    test = dict((m, unit_rows(test[m].astype(np.float64))) for m in names)
    train = dict((m, unit_rows(train[m].astype(np.float64))) for m in names)
    count = len(test[names[0]])
    out = np.empty(count)
    for lo in range(0, count, block):
        hi = min(count, lo + block)
        # ||a - b||^2 = 2 - 2 a.b for unit vectors
        total = sum(weights[m] * (2.0 - 2.0 * test[m][lo:hi].dot(train[m].T)) for m in names)
        out[lo:hi] = total.min(axis=1)
    return np.maximum(out, 0.0)


def combine(probabilities, weights):
    """Weighted sum of each model's (N, C) probabilities; models may differ in C only if
    none carries weight."""
    return sum(weights[m] * probabilities[m] for m in sorted(weights))


def _ids(probs, class_ids):
    """Label id of each probability column (default: the column number)."""
    return np.arange(probs.shape[1]) if class_ids is None else np.asarray(class_ids)


def pseudo_labels(probs, distance, rules, class_ids=None):
    """Step-4 rules. Returns labels per test row: the argmax class where dist < pseudo_dist and
    p > pseudo_prob; UNKNOWN where dist > unknown_dist and p < unknown_prob; -1 elsewhere."""
    best = probs.max(axis=1)
    labels = np.full(len(probs), -1, dtype=np.int64)
    confident = (distance < rules["pseudo_distance"]) & (best > rules["pseudo_probability"])
    labels[confident] = _ids(probs, class_ids)[probs.argmax(axis=1)[confident]]
    unknown = (distance > rules["unknown_distance"]) & (best < rules["unknown_probability"])
    labels[unknown] = UNKNOWN
    return labels


def confident_labels(probs, threshold, class_ids=None):
    """Step-6 rule: the argmax class where its probability exceeds `threshold`, else -1."""
    labels = _ids(probs, class_ids)[probs.argmax(axis=1)].astype(np.int64)
    labels[probs.max(axis=1) <= threshold] = -1
    return labels


def keep_unknowns(labels, previous):
    """The step-7 set keeps the unknowns the step-4 rules found, unless step 6 now names a
    known identity for them with confidence. Without them class 1000 has (almost) no
    training rows at step 7: a 1001-class head cannot learn a class it never sees, and the
    step-7 submission would lose the unknowns step 6 had found."""
    labels = labels.copy()
    keep = (previous == UNKNOWN) & ((labels < 0) | (labels == UNKNOWN))
    labels[keep] = UNKNOWN
    return labels
