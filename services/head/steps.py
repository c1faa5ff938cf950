"""Pipeline steps after the heads: pseudo-labels, unknowns, submissions, evaluation.

    steps pseudo   --models A,B --heads H --embeddings E --step step4 --out pseudo/step6.csv [...]
    steps submit   --models A,B --heads H --embeddings E --step step7 --out submissions/step7.csv
    steps evaluate --models A,B --heads H --embeddings E --folds folds.csv --truth test_truth.csv
                   --submissions S --out reports/
`--heads H` holds <model>/<step>/{val_probs,test_probs}.npy and summary.json (train.py).
"""
import argparse
import csv
import io
import json
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import numpy as np  # noqa: E402

from services.head.arrays import load_split  # noqa: E402
from services.head.baselines import nearest_neighbour, linear_svm  # noqa: E402
from shared import registry as registry_mod  # noqa: E402
from shared.ensemble import (UNKNOWN, combine, confident_labels, distance_weights, ensemble_weights,  # noqa: E402
                             keep_unknowns, min_distance, pseudo_labels)
from shared.folds import read_folds  # noqa: E402
from shared.metrics import map_at_5, scores, top_k  # noqa: E402
from shared.storage import read_json, write_json, write_text  # noqa: E402
from shared.submission import read_submission, write_submission  # noqa: E402


def _test_probs(args, models, step):
    return dict((m, np.load(os.path.join(args.heads, m, step, "test_probs.npy"))) for m in models)


def _summary(args, model, step):
    return read_json(os.path.join(args.heads, model, step, "summary.json"))


def _test_names(args, model, step):
    return _summary(args, model, step)["test_images"]


def _no_face(path, names):
    mask = np.zeros(len(names), dtype=bool)
    if path and os.path.isfile(path):
        listed = set(line.strip() for line in io.open(path, encoding="utf-8") if line.strip())
        mask = np.array([n in listed for n in names])
    return mask


def _log(message):
    print(message)
    sys.stdout.flush()


def _ensemble(args, registry, models, step):
    """(ensemble probabilities, the label id of each column) for `step`."""
    weights, notes = ensemble_weights(registry, models, step)
    for note in notes:
        _log("ensemble " + note)
    _log("ensemble %s weights: %s" % (step, ", ".join("%s %.4f" % (m, w) for m, w in sorted(weights.items()))))
    class_ids = [_summary(args, m, step)["class_ids"] for m in sorted(weights)]
    if any(ids != class_ids[0] for ids in class_ids):
        raise ValueError("the %s heads of %s disagree on their classes" % (step, ", ".join(sorted(weights))))
    return combine(_test_probs(args, sorted(weights), step), weights), class_ids[0]


def _distance(args, registry, models, names):
    weights = distance_weights(registry, models)
    images, _, _ = read_folds(args.folds)
    train = dict((m, load_split(os.path.join(args.embeddings, m), "train", images)["embeddings"]) for m in weights)
    test = dict((m, load_split(os.path.join(args.embeddings, m), "test", names)["embeddings"]) for m in weights)
    _log("distance weights: %s" % ", ".join("%s %.4f" % (m, w) for m, w in sorted(weights.items())))
    return min_distance(test, train, weights)


def _read_labels(path, names):
    """Labels per test row from a pseudo-label CSV (-1 for rows it does not list)."""
    with io.open(path, encoding="utf-8") as f:
        listed = dict((r["image"], int(r["label"])) for r in csv.DictReader(f))
    return np.array([listed.get(n, -1) for n in names], dtype=np.int64)


def _write_labels(path, names, labels):
    lines = ["image,label"] + ["%s,%d" % (n, l) for n, l in zip(names, labels) if l >= 0]
    write_text(path, "\n".join(lines) + "\n")


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
    _log("unknown rule tuned on the validation folds (%d of %d rows play unknowns): distance > %.3f and "
         "probability < %.2f, validation MAP@5 %.4f" % (np.sum(truth == UNKNOWN), len(truth), found[0], found[1], score))
    return dict(rules, unknown_distance=found[0], unknown_probability=found[1])


def cmd_pseudo(args, registry, models, rules):
    names = _test_names(args, models[0], args.step)
    probs, class_ids = _ensemble(args, registry, models, args.step)
    no_face = _no_face(args.no_face, names)
    if args.step == "step4":
        rules = tuned_rules(args, registry, models, rules)
        labels = pseudo_labels(probs, _distance(args, registry, models, names), rules, class_ids)
    else:
        labels = confident_labels(probs, rules["step7_probability"], class_ids)
        if args.previous:
            labels = keep_unknowns(labels, _read_labels(args.previous, names))
    labels[no_face] = UNKNOWN
    _write_labels(args.out, names, labels)
    stats = {"step": args.step, "test_images": len(names), "pseudo_known": int(np.sum((labels >= 0) & (labels != UNKNOWN))),
             "unknown": int(np.sum(labels == UNKNOWN)), "no_face": int(no_face.sum()), "rules": rules}
    write_json(os.path.splitext(args.out)[0] + ".json", stats)
    _log("pseudo-labels from %s: %d known, %d unknown (%d without a face) of %d test images -> %s"
         % (args.step, stats["pseudo_known"], stats["unknown"], stats["no_face"], len(names), args.out))


def cmd_submit(args, registry, models, rules):
    names = _test_names(args, models[0], args.step)
    probs, class_ids = _ensemble(args, registry, models, args.step)
    ranked = top_k(probs, class_ids=class_ids)
    if UNKNOWN not in class_ids:  # step 4 has no unknown class: the unknown rule ranks it first
        rules = tuned_rules(args, registry, models, rules)
        flagged = pseudo_labels(probs, _distance(args, registry, models, names), rules, class_ids) == UNKNOWN
        flagged |= _no_face(args.no_face, names)
        ranked = np.array([[UNKNOWN] + list(row[:4]) if flag else list(row) for row, flag in zip(ranked, flagged)])
    write_submission(args.out, names, ranked)
    _log("submission %s: %d rows -> %s" % (args.step, len(names), args.out))


def _truth(path, names):
    with io.open(path, encoding="utf-8") as f:
        truth = dict((r["image"], int(r["label"])) for r in csv.DictReader(f))
    missing = [n for n in names if n not in truth]
    if missing:
        raise ValueError("%s has no label for %d test images (e.g. %s)" % (path, len(missing), missing[0]))
    return np.array([truth[n] for n in names])


def cmd_evaluate(args, registry, models, rules):
    steps = [s for s in ("step4", "step6", "step7") if os.path.isfile(os.path.join(args.heads, models[0], s, "summary.json"))]
    names = _test_names(args, models[0], steps[0])
    truth = _truth(args.truth, names)
    images, labels, columns = read_folds(args.folds)
    report = {"models": {}, "ensemble": {}, "baselines": {}, "test_images": len(names),
              "test_unknown": int(np.sum(truth == UNKNOWN))}
    for model in models:
        entry = report["models"][model] = {}
        for step in steps:
            summary = _summary(args, model, step)
            probs = np.load(os.path.join(args.heads, model, step, "test_probs.npy"))
            entry[step] = dict(scores(truth, top_k(probs, class_ids=summary["class_ids"])), val_top1=summary["val_top1"],
                               mean_head_seconds=summary["mean_head_seconds"])
        train = load_split(os.path.join(args.embeddings, model), "train", images)["embeddings"]
        test = load_split(os.path.join(args.embeddings, model), "test", names)["embeddings"]
        nn_ranked, threshold = nearest_neighbour(train, labels, test, columns["rt0"])
        svm_ranked = linear_svm(train, labels, test, rules["svm_unknown_score"])
        report["baselines"][model] = {"nearest_neighbour": dict(scores(truth, nn_ranked), threshold=threshold),
                                      "linear_svm": scores(truth, svm_ranked)}
    for step in steps:
        path = os.path.join(args.submissions, step + ".csv")
        if os.path.isfile(path):
            sub_names, ranked = read_submission(path)
            report["ensemble"][step] = scores(_truth(args.truth, sub_names), ranked)
    write_json(os.path.join(args.out, "evaluation.json"), report)
    table = render(report, steps)
    write_text(os.path.join(args.out, "evaluation.md"), table)
    _log(table)


def render(report, steps):
    def pct(value):
        return "%.4f" % value

    lines = ["# Evaluation (%d test images, %d unknown)" % (report["test_images"], report["test_unknown"]), "",
             "Validation top-1 per model (out-of-fold, like the original's table) and test MAP@5:", "",
             "| model | " + " | ".join("val top-1 %s" % s for s in steps) + " | " +
             " | ".join("test MAP@5 %s" % s for s in steps) + " | mean head s |",
             "|---|" + "---|" * (2 * len(steps) + 1)]
    for model, entry in sorted(report["models"].items()):
        lines.append("| %s | %s | %s | %s |" % (model, " | ".join(pct(entry[s]["val_top1"]) for s in steps),
                                                 " | ".join(pct(entry[s]["map5"]) for s in steps),
                                                 "%.1f" % entry[steps[-1]]["mean_head_seconds"]))
    lines += ["", "Test set, ensemble per step and peer baselines on the same embeddings:", "",
              "| system | MAP@5 | top-1 | unknown precision | unknown recall |", "|---|---|---|---|---|"]
    rows = [("ensemble %s" % s, report["ensemble"][s]) for s in steps if s in report["ensemble"]]
    for model, base in sorted(report["baselines"].items()):
        rows.append(("nearest neighbour (%s, threshold %.3f)" % (model, base["nearest_neighbour"]["threshold"]),
                     base["nearest_neighbour"]))
        rows.append(("linear SVM (%s)" % model, base["linear_svm"]))
    for name, s in rows:
        lines.append("| %s | %s | %s | %s | %s |" % (name, pct(s["map5"]), pct(s["top1"]),
                                                     pct(s["unknown_precision"]), pct(s["unknown_recall"])))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="steps", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["pseudo", "submit", "evaluate"])
    parser.add_argument("--models", required=True)
    parser.add_argument("--heads", required=True)
    parser.add_argument("--embeddings", required=True)
    parser.add_argument("--folds", required=True)
    parser.add_argument("--step", default="step4")
    parser.add_argument("--out", required=True)
    parser.add_argument("--no-face", help="no_face_test.txt of the alignment step")
    parser.add_argument("--previous", help="the previous pseudo-label CSV, whose unknowns the next set keeps")
    parser.add_argument("--truth", help="test_truth.csv (evaluate)")
    parser.add_argument("--submissions", help="folder of <step>.csv (evaluate)")
    parser.add_argument("--rules", default="{}", help="JSON thresholds overriding the original's")
    parser.add_argument("--registry")
    args = parser.parse_args(argv)
    rules = {"pseudo_distance": 0.9, "pseudo_probability": 0.65, "unknown_distance": 1.35,
             "unknown_probability": 0.1, "step7_probability": 0.65, "svm_unknown_score": -0.55,
             "tune_unknown": False}
    rules.update(json.loads(args.rules))
    try:
        commands = {"pseudo": cmd_pseudo, "submit": cmd_submit, "evaluate": cmd_evaluate}
        commands[args.command](args, registry_mod.load(args.registry), args.models.split(","), rules)
    except (ValueError, IOError, OSError, KeyError) as exc:
        sys.stderr.write("steps %s: error: %s\n" % (args.command, exc))
        sys.exit(2)


if __name__ == "__main__":
    main()
