"""The head service's `ensemble` program: a step's heads combined into pseudo-labels or a submission.

    ensemble pseudo --models A,B --heads H --embeddings E --folds F --step step4 --out pseudo/step6.csv
                    --rules JSON [--no-face no_face_test.txt] [--previous pseudo/step6.csv] [--registry R]
                    [--per-fold]
    ensemble submit --models A,B --heads H --embeddings E --folds F --step step7
                    --out submissions/step7.csv --rules JSON [--no-face FILE] [--registry R]

`--heads H` holds <model>/<step>/{val_probs,test_probs}.npy and summary.json (train.py). The
rules (thresholds) come from invoke.yaml `rules`, their one home; the tasks pass them as JSON.
"""
import argparse
import io
import json
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import numpy as np  # noqa: E402

from services.head import fold_pseudo  # noqa: E402
from services.head.arrays import load_split  # noqa: E402
from shared.method.ensemble import (UNKNOWN, combine, confident_labels, distance_weights,  # noqa: E402
                                    ensemble_weights, keep_unknowns, min_distance, pseudo_labels)
from shared.method.folds import read_folds  # noqa: E402
from shared.method.metrics import map_at_5, top_k  # noqa: E402
from shared.method.submission import fill_top5, write_submission  # noqa: E402
from shared.models import registry as registry_mod  # noqa: E402
from shared.schema import exit_with_code  # noqa: E402
from shared.storage import read_json, write_json  # noqa: E402

RULES = ("pseudo_distance", "pseudo_probability", "unknown_distance", "unknown_probability", "tune_unknown",
         "step7_probability", "svm_unknown_score")


def _test_probs(args, models, step):
    return dict((m, np.load(os.path.join(args.heads, m, step, "test_probs.npy"))) for m in models)


def summary(args, model, step):
    return read_json(os.path.join(args.heads, model, step, "summary.json"))


def test_names(args, registry, models, step):
    """The test images in the order of the step's heads: those of a model with ensemble weight
    (a model with weight 0 may have no heads: invoke.yaml skip_zero_weight_heads)."""
    return summary(args, sorted(ensemble_weights(registry, models, step)[0])[0], step)["test_images"]


def _no_face(path, names):
    mask = np.zeros(len(names), dtype=bool)
    if path and os.path.isfile(path):
        listed = set(line.strip() for line in io.open(path, encoding="utf-8") if line.strip())
        mask = np.array([n in listed for n in names])
    return mask


def log(message):
    print(message)
    sys.stdout.flush()


def _ensemble(args, registry, models, step):
    """(ensemble probabilities, the label id of each column) for `step`."""
    weights, notes = ensemble_weights(registry, models, step)
    for note in notes:
        log("ensemble " + note)
    log("ensemble %s weights: %s" % (step, ", ".join("%s %.4f" % (m, w) for m, w in sorted(weights.items()))))
    class_ids = [summary(args, m, step)["class_ids"] for m in sorted(weights)]
    if any(ids != class_ids[0] for ids in class_ids):
        raise ValueError("the %s heads of %s disagree on their classes" % (step, ", ".join(sorted(weights))))
    return combine(_test_probs(args, sorted(weights), step), weights), class_ids[0]


def _distance(args, registry, models, names, gallery=None):
    """Each test row's distance rule value: its fused distance to the nearest train row (of the
    `gallery` rows only, a boolean mask over folds.csv's, when given)."""
    weights = distance_weights(registry, models)
    images, _, _ = read_folds(args.folds)
    images = [n for n, keep in zip(images, gallery) if keep] if gallery is not None else images
    train = dict((m, load_split(os.path.join(args.embeddings, m), "train", images)["embeddings"]) for m in weights)
    test = dict((m, load_split(os.path.join(args.embeddings, m), "test", names)["embeddings"]) for m in weights)
    log("distance weights: %s" % ", ".join("%s %.4f" % (m, w) for m, w in sorted(weights.items())))
    return min_distance(test, train, weights)


def tuned_rules(args, registry, models, rules):
    """The rules with the unknown thresholds tuned on the validation folds (rule.tune_unknown):
    train rows of fold column rt0 whose identity is absent from the other folds play the
    unknowns; their out-of-fold step-4 probabilities and distances to the other folds pick the
    (distance, probability) pair with the best MAP@5. The test truth is never read."""
    if not rules.get("tune_unknown"):
        return rules
    images, labels, columns = read_folds(args.folds)
    folds = columns["rt0"]
    weights = distance_weights(registry, models)
    train = dict((m, load_split(os.path.join(args.embeddings, m), "train", images)["embeddings"]) for m in weights)
    distance, truth = np.empty(len(labels)), labels.copy()
    for fold in np.unique(folds):
        probe, gallery = folds == fold, folds != fold
        distance[probe] = min_distance(dict((m, e[probe]) for m, e in train.items()),
                                       dict((m, e[gallery]) for m, e in train.items()), weights)
        truth[probe & ~np.isin(labels, labels[gallery])] = UNKNOWN
    ensemble, _ = ensemble_weights(registry, models, "step4")
    probs = combine(dict((m, np.load(os.path.join(args.heads, m, "step4", "val_probs.npy"))) for m in ensemble),
                    ensemble)
    ranked, best = top_k(probs), probs.max(axis=1)
    found, score = None, -1.0
    for distance_threshold in np.arange(0.5, 2.0, 0.025):
        for probability in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.01):
            flagged = (distance > distance_threshold) & (best < probability)
            value = map_at_5(truth, [[UNKNOWN] + list(r[:4]) if f else r for r, f in zip(ranked, flagged)])
            if value > score:
                found, score = (round(float(distance_threshold), 3), probability), value
    log("unknown rule tuned on the validation folds (%d of %d rows play unknowns): distance > %.3f and "
         "probability < %.2f, validation MAP@5 %.4f" % (np.sum(truth == UNKNOWN), len(truth), found[0], found[1], score))
    return dict(rules, unknown_distance=found[0], unknown_probability=found[1])


def fold_sets(args, registry, models, rules, names, no_face):
    """{(column, fold): labels} of the next step's per-fold pseudo-labels (fold_pseudo.py): each
    head's own test probabilities (its step's test_fold_probs.npz), ensembled over the models as
    the step's are, under the same rules; step 4's distance rule measured to the train rows
    outside that fold, step 6's unknowns kept from the per-fold set before."""
    weights, _ = ensemble_weights(registry, models, args.step)
    probs = dict((m, np.load(os.path.join(args.heads, m, args.step, fold_pseudo.FOLD_PROBS))) for m in weights)
    class_ids = summary(args, sorted(weights)[0], args.step)["class_ids"]
    previous = fold_pseudo.read_folds(fold_pseudo.folds_path(args.previous), names) if args.previous else {}
    columns = read_folds(args.folds)[2]
    sets = {}
    for key in sorted(probs[sorted(weights)[0]].files):
        column, fold = key.rsplit(".", 1)
        fold_probs = combine(dict((m, probs[m][key].astype(np.float32)) for m in weights), weights)
        if args.step == "step4":
            distance = _distance(args, registry, models, names, gallery=columns[column] != int(fold))
            labels = pseudo_labels(fold_probs, distance, rules, class_ids)
        else:
            labels = confident_labels(fold_probs, rules["step7_probability"], class_ids)
            if args.previous:  # the head's own step-6 set (a head it lists no row for: none)
                labels = keep_unknowns(labels, previous.get((column, int(fold)), np.full(len(names), -1, np.int64)))
        labels[no_face] = UNKNOWN
        sets[(column, int(fold))] = labels
    return sets


def cmd_pseudo(args, registry, models, rules):
    names = test_names(args, registry, models, args.step)
    probs, class_ids = _ensemble(args, registry, models, args.step)
    no_face = _no_face(args.no_face, names)
    distance = None
    if args.step == "step4":
        rules = tuned_rules(args, registry, models, rules)
        distance = _distance(args, registry, models, names)
        labels = pseudo_labels(probs, distance, rules, class_ids)
    else:
        labels = confident_labels(probs, rules["step7_probability"], class_ids)
        if args.previous:
            labels = keep_unknowns(labels, fold_pseudo.read_labels(args.previous, names))
    labels[no_face] = UNKNOWN
    fold_pseudo.write_labels(args.out, names, labels)
    if args.per_fold:
        fold_pseudo.write_folds(fold_pseudo.folds_path(args.out), names, fold_sets(args, registry, models, rules, names,
                                                                                    no_face))
    stats = {"step": args.step, "test_images": len(names), "pseudo_known": int(np.sum((labels >= 0) & (labels != UNKNOWN))),
             "unknown": int(np.sum(labels == UNKNOWN)), "no_face": int(no_face.sum()), "rules": rules}
    if distance is not None:  # the report's histogram of the rules' distance
        stats["min_distance"] = {"images": names, "values": [round(float(d), 5) for d in distance]}
    write_json(os.path.splitext(args.out)[0] + ".json", stats)
    log("pseudo-labels from %s: %d known, %d unknown (%d without a face) of %d test images -> %s"
         % (args.step, stats["pseudo_known"], stats["unknown"], stats["no_face"], len(names), args.out))


def cmd_submit(args, registry, models, rules):
    names = test_names(args, registry, models, args.step)
    probs, class_ids = _ensemble(args, registry, models, args.step)
    ranked = top_k(probs, class_ids=class_ids)
    if UNKNOWN not in class_ids:  # step 4 has no unknown class: the unknown rule ranks it first
        rules = tuned_rules(args, registry, models, rules)
        flagged = pseudo_labels(probs, _distance(args, registry, models, names), rules, class_ids) == UNKNOWN
        flagged |= _no_face(args.no_face, names)
        ranked = np.array([[UNKNOWN] + list(row[:4]) if flag else list(row) for row, flag in zip(ranked, flagged)])
    write_submission(args.out, names, [fill_top5(row) for row in ranked])
    log("submission %s: %d rows -> %s" % (args.step, len(names), args.out))


def parser(prog, description, commands=None):
    """The arguments `ensemble` and `evaluate` share (`commands`: the subcommand's choices)."""
    found = argparse.ArgumentParser(prog=prog, description=description)
    if commands:
        found.add_argument("command", choices=commands)
    for name in ("--models", "--heads", "--embeddings", "--folds", "--out"):
        found.add_argument(name, required=True)
    found.add_argument("--step", default="step4")
    found.add_argument("--no-face", help="no_face_test.txt of the alignment step")
    found.add_argument("--rules", required=True, help="JSON thresholds (invoke.yaml rules): " + ", ".join(RULES))
    found.add_argument("--registry")
    return found


def run(prog, args, commands):
    """Run args.command with the rules checked first; a bad input ends as one line and exit 2."""
    def action():
        rules = json.loads(args.rules)
        missing = [key for key in RULES if key not in rules]
        if missing:
            raise ValueError("--rules lacks %s (invoke.yaml `rules` has them all)" % ", ".join(missing))
        command = commands[getattr(args, "command", prog)]
        command(args, registry_mod.load(args.registry), args.models.split(","), rules)
    exit_with_code(" ".join([prog] + ([args.command] if len(commands) > 1 else [])), action,
                   usage_errors=(ValueError, IOError, OSError, KeyError))


def main(argv=None):
    found = parser("ensemble", __doc__.split("\n\n")[0], ["pseudo", "submit"])
    found.add_argument("--previous", help="the previous pseudo-label CSV, whose unknowns the next set keeps")
    found.add_argument("--per-fold", action="store_true", help="also one set per head, from each head's own test "
                       "probabilities (<out>.folds.csv; with --previous, its .folds.csv; fold_pseudo.py)")
    run("ensemble", found.parse_args(argv), {"pseudo": cmd_pseudo, "submit": cmd_submit})


if __name__ == "__main__":
    main()
