"""The evaluation's fused nearest-neighbour rows (issue 23): the baseline any accuracy claim of
the pipeline must beat. The run's models' unit embeddings concatenated with weights sqrt(w)
(prototypes.fuse: the fusion weights `best` chose, <submissions>/prototypes.json, else equal
weights over the models), classes ranked by their closest train image and "unknown" first when
the best cosine is under a threshold chosen on the validation folds exactly as the single-model
nearest-neighbour rows choose theirs (baselines.nearest_neighbour: the test truth is not read).
Beside it, marked as such, the upper bound no user could pick: the same rule at the threshold
the test truth picks (baselines.nearest_neighbour_upper_bound). The truth only scores."""
import os

from services.head import prototypes
from services.head.arrays import load_split
from services.head.baselines import (FOLD_COLUMN, collapsed_note, nearest_neighbour, nearest_neighbour_upper_bound,
                                     test_similarity)
from shared.method.metrics import scores
from shared.storage import read_json


def fusion_weights(submissions, models):
    """({model: weight} of the models with a weight above 0, where they came from): the weights
    the prototypes submission chose (`best`), else equal weights over `models`."""
    path = os.path.join(submissions, prototypes.SUBMISSION + ".json")
    chosen = read_json(path).get("weights") if os.path.isfile(path) else None
    if chosen:
        weights, source = dict((m, float(w)) for m, w in chosen.items() if w > 0), prototypes.SUBMISSION + ".json"
    else:
        weights, source = dict((m, 1.0 / len(models)) for m in models), "equal weights"
    missing = sorted(set(weights) - set(models))
    if missing:
        raise ValueError("%s weighs %s, a model this evaluation has no embeddings of" % (path, missing[0]))
    return weights, source


def label(entry):
    """The fusion in words, e.g. 'model1_x 0.7 + model4_y 0.3'."""
    return " + ".join("%s %.1f" % kv for kv in sorted(entry["weights"].items()))


def rows(embeddings, submissions, models, names, truth, folds):
    """{weights, weights_from, nearest_neighbour (validated threshold), upper_bound (the test
    truth's threshold)}: the fused nearest neighbour's scores on the test rows `names`."""
    images, labels, columns = folds
    weights, source = fusion_weights(submissions, models)
    train = dict((m, load_split(os.path.join(embeddings, m), "train", images)["embeddings"]) for m in weights)
    test = dict((m, load_split(os.path.join(embeddings, m), "test", names)["embeddings"]) for m in weights)
    fused_train, fused_test = prototypes.fuse(train, weights), prototypes.fuse(test, weights)
    similarity = test_similarity(fused_train, labels, fused_test)
    ranked, settings = nearest_neighbour(fused_train, labels, fused_test, columns[FOLD_COLUMN], similarity)
    return {"weights": weights, "weights_from": source, "nearest_neighbour": dict(scores(truth, ranked), **settings),
            "upper_bound": nearest_neighbour_upper_bound(similarity, truth)}


def systems(entry):
    """The table's two rows (name, scores): the validated fused nearest neighbour, then its upper bound."""
    nn, bound = entry["nearest_neighbour"], entry["upper_bound"]
    return [("nearest neighbour, fused (%s; threshold %.3f chosen on validation folds, unknown share %.3f%s)"
             % (label(entry), nn["threshold"], nn["estimated_unknown_share"], collapsed_note(nn)), nn),
            ("UPPER BOUND, not a method: the fused nearest neighbour at the threshold the test truth picks (%.3f)"
             % bound["threshold"], bound)]
