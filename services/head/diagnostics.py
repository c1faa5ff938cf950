"""What the report plots, computed where the arrays are (the head service's `evaluate` writes it
to diagnostics.json): the step-4 unknown rule's trade-off as its distance threshold varies, the
nearest-neighbour baseline's as its similarity threshold varies, the prototypes submission's as
its unknown score varies, and the final step's worst errors. Data only: the plots are drawn by
the tasks (pipeline/plots.py)."""
import os

import numpy as np

from services.head import prototypes
from services.head.arrays import load_models
from services.head.ensemble import _distance, _ensemble, _no_face, tuned_rules
from shared.method.ensemble import UNKNOWN
from shared.method.folds import read_folds
from shared.method.metrics import scores, top_k
from shared.storage import read_json

DISTANCE_THRESHOLDS = np.round(np.arange(0.5, 2.0001, 0.025), 3)  # the unknown rule's distance sweep
WORST = 24  # errors shown in the report's gallery


def _first_unknown(ranked, flagged):
    """`ranked` with "unknown" first (then its first four) in the `flagged` rows."""
    ranked = np.asarray(ranked)
    if ranked.ndim == 2 and ranked.shape[1] == 5:
        shifted = np.concatenate([np.full((len(ranked), 1), UNKNOWN, ranked.dtype), ranked[:, :4]], axis=1)
        return np.where(np.asarray(flagged)[:, None], shifted, ranked)
    return np.array([[UNKNOWN] + list(r[:4]) if f else list(r) for r, f in zip(ranked, flagged)])


def unknown_sweep(truth, probs, class_ids, distance, rules, no_face):
    """Step-4 ensemble scores at each distance threshold of the unknown rule (distance above it
    and probability below rules.unknown_probability, or no face: unknown first)."""
    ranked, best = top_k(probs, class_ids=class_ids), probs.max(axis=1)
    found = [scores(truth, _first_unknown(ranked, ((distance > t) & (best < rules["unknown_probability"])) | no_face))
             for t in DISTANCE_THRESHOLDS]
    sweep = dict((key, [round(s[key], 5) for s in found]) for key in ("map5", "unknown_precision", "unknown_recall"))
    return dict(sweep, thresholds=[float(t) for t in DISTANCE_THRESHOLDS], chosen=rules["unknown_distance"],
                probability=rules["unknown_probability"], axis="minimum squared L2 distance to a train face "
                                                                  "(unknown above)")


def prototypes_sweep(args, truth, names, distance, train_faces):
    """The prototypes submission's scores at each unknown score of its grid, the fusion it chose
    kept, and its worst errors (None when the workspace has no prototypes submission). How far
    the threshold chosen on the validation folds lies from the test's best shows what choosing
    it cost."""
    path = os.path.join(args.submissions, prototypes.SUBMISSION + ".json")
    if not os.path.isfile(path):
        return None
    chosen = read_json(path)
    weights = dict((m, w) for m, w in chosen["weights"].items() if w > 0)
    images, labels, _ = read_folds(args.folds)
    train, test, order = load_models(args.embeddings, sorted(weights), images)
    similarity, classes, _ = prototypes.final_scores(train, labels, test, weights)
    position = dict((n, i) for i, n in enumerate(order))
    similarity, no_face = similarity[[position[n] for n in names]], _no_face(args.no_face, names)
    top = prototypes.best_five(similarity, classes)

    def ranked(threshold):
        return prototypes.unknown_first_without_face(prototypes.rank(*top, threshold=threshold), no_face)

    found = [scores(truth, ranked(t)) for t in prototypes.THRESHOLDS]
    sweep = dict((key, [round(s[key], 5) for s in found]) for key in ("map5", "unknown_precision", "unknown_recall"))
    final = ranked(chosen["threshold"])
    # how sure each first guess was: a class's cosine above the unknown score, or the best cosine below it
    confidence = np.abs(top[1][:, 0] - chosen["threshold"])
    return dict(sweep, thresholds=[float(t) for t in prototypes.THRESHOLDS], chosen=chosen["threshold"],
                weights=weights, axis="unknown score: ranked above the classes whose fused cosine is below it",
                best_score={"images": names, "values": [round(float(v), 5) for v in top[1][:, 0]]},
                worst_errors=worst_errors(truth, names, final, confidence, (similarity, classes), distance, train_faces))


def worst_errors(truth, names, ranked, confidence, class_scores, distance, train_faces):
    """The WORST most confident wrong first guesses of `ranked` (`confidence` per row): test
    image, truth, guess, their scores in `class_scores` ((N, K) scores, K class ids; None for a
    label without a column) and one train image of each identity (None for the unknown label)."""
    values, class_ids = class_scores
    column = dict((int(c), i) for i, c in enumerate(class_ids))

    def score(row, label):
        return round(float(values[row, column[label]]), 4) if label in column else None

    wrong = np.where(ranked[:, 0] != truth)[0]
    rows = []
    for row in sorted(wrong, key=lambda r: -confidence[r])[:WORST]:
        true, guess = int(truth[row]), int(ranked[row, 0])
        rows.append({"image": names[row], "truth": true, "guess": guess, "guess_score": score(row, guess),
                     "truth_score": score(row, true),
                     "truth_rank": int(list(ranked[row]).index(true)) + 1 if true in ranked[row] else None,
                     "min_distance": round(float(distance[row]), 4),
                     "guess_face": train_faces.get(guess), "truth_face": train_faces.get(true)})
    return rows


def collect(args, registry, models, rules, truth, names, steps, nn_sweeps):
    """diagnostics.json: the sweeps (step-4 ensemble; nearest neighbour per model, `nn_sweeps`;
    the prototypes submission) and the worst errors of the last step's ensemble and of the
    prototypes submission (the report shows the final submission's)."""
    distance = _distance(args, registry, models, names)
    images, labels, _ = read_folds(args.folds)
    train_faces = {}
    for image, label in zip(images, labels):
        train_faces.setdefault(int(label), image)
    probs, class_ids = _ensemble(args, registry, models, "step4")
    found = {"unknown_rule": unknown_sweep(truth, probs, class_ids, distance, tuned_rules(args, registry, models, rules),
                                           _no_face(args.no_face, names)),
             "nearest_neighbour": nn_sweeps, "errors_step": steps[-1],
             "prototypes": prototypes_sweep(args, truth, names, distance, train_faces)}
    probs, class_ids = _ensemble(args, registry, models, steps[-1])
    found["worst_errors"] = worst_errors(truth, names, top_k(probs, class_ids=class_ids), probs.max(axis=1),
                                         (probs, class_ids), distance, train_faces)
    return found
