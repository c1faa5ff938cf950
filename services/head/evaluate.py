"""The head service's `evaluate` program: MAP@5, top-1 and unknown precision/recall of every
model, step, ensemble and baseline against the test truth.

    evaluate --models A,B --heads H --embeddings E --folds folds.csv --step step7 --out reports/
             --rules JSON --truth test_truth.csv --submissions S [--no-face FILE] [--registry R]
Scores S/<step>.csv per step and S/prototypes.csv when present.
Writes evaluation.json and evaluation.md into --out, and diagnostics.json: what the report plots
(services/head/diagnostics.py).
"""
import csv
import io
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import numpy as np  # noqa: E402

from services.head.arrays import load_split  # noqa: E402
from services.head import diagnostics, prototypes  # noqa: E402
from services.head.baselines import linear_svm, nearest_neighbour, nearest_neighbour_sweep  # noqa: E402
from services.head.ensemble import log, parser, run, summary, test_names  # noqa: E402
from shared.method.ensemble import UNKNOWN  # noqa: E402
from shared.method.folds import read_folds  # noqa: E402
from shared.method.metrics import scores, top_k  # noqa: E402
from shared.method.steps import STEPS  # noqa: E402
from shared.method.submission import read_submission  # noqa: E402
from shared.storage import write_json, write_text  # noqa: E402

DIAGNOSTICS = "diagnostics.json"


def _truth(path, names):
    with io.open(path, encoding="utf-8") as f:
        truth = dict((r["image"], int(r["label"])) for r in csv.DictReader(f))
    missing = [n for n in names if n not in truth]
    if missing:
        raise ValueError("%s has no label for %d test images (e.g. %s)" % (path, len(missing), missing[0]))
    return np.array([truth[n] for n in names])


def cmd_evaluate(args, registry, models, rules):
    def trained(model, step):  # a model with ensemble weight 0 may have no heads (skip_zero_weight_heads)
        return os.path.isfile(os.path.join(args.heads, model, step, "summary.json"))

    steps = [s for s in STEPS if any(trained(m, s) for m in models)]
    names = test_names(args, registry, models, steps[0])
    truth = _truth(args.truth, names)
    images, labels, columns = read_folds(args.folds)
    report = {"models": {}, "ensemble": {}, "baselines": {}, "test_images": len(names),
              "test_unknown": int(np.sum(truth == UNKNOWN))}
    nn_sweeps = {}
    for model in models:
        for step in [s for s in steps if trained(model, s)]:
            entry = report["models"].setdefault(model, {})
            head = summary(args, model, step)
            probs = np.load(os.path.join(args.heads, model, step, "test_probs.npy"))
            entry[step] = dict(scores(truth, top_k(probs, class_ids=head["class_ids"])), val_top1=head["val_top1"],
                               mean_head_seconds=head["mean_head_seconds"])
        train = load_split(os.path.join(args.embeddings, model), "train", images)["embeddings"]
        test = load_split(os.path.join(args.embeddings, model), "test", names)["embeddings"]
        nn_ranked, nn_settings = nearest_neighbour(train, labels, test, columns["rt0"])
        nn_sweeps[model] = nearest_neighbour_sweep(train, labels, test, truth, nn_settings["threshold"])
        svm_ranked = linear_svm(train, labels, test, rules["svm_unknown_score"])
        report["baselines"][model] = {"nearest_neighbour": dict(scores(truth, nn_ranked), **nn_settings),
                                      "linear_svm": scores(truth, svm_ranked)}
    for step in steps:
        path = os.path.join(args.submissions, step + ".csv")
        if os.path.isfile(path):
            sub_names, ranked = read_submission(path)
            report["ensemble"][step] = scores(_truth(args.truth, sub_names), ranked)
    path = os.path.join(args.submissions, prototypes.SUBMISSION + ".csv")
    if os.path.isfile(path):  # the prototypes program's submission (ensemble.prototypes)
        sub_names, ranked = read_submission(path)
        report[prototypes.SUBMISSION] = scores(_truth(args.truth, sub_names), ranked)
    report["systems"] = systems(report, steps)
    write_json(os.path.join(args.out, "evaluation.json"), report)
    write_json(os.path.join(args.out, DIAGNOSTICS),
               diagnostics.collect(args, registry, models, rules, truth, names, steps, nn_sweeps))
    table = render(report, steps)
    write_text(os.path.join(args.out, "evaluation.md"), table)
    log(table)


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
    for s in report["systems"]:
        lines.append("| %s | %s | %s | %s | %s |" % (s["system"], pct(s["map5"]), pct(s["top1"]),
                                                     pct(s["unknown_precision"]), pct(s["unknown_recall"])))
    return "\n".join(lines) + "\n"


def systems(report, steps):
    """The test-set rows of the table (and the report's bar chart): ensemble per step, the
    prototypes submission when there is one, then each model's baselines."""
    rows = [("ensemble %s" % s, report["ensemble"][s]) for s in steps if s in report["ensemble"]]
    rows += [("class prototypes", report[prototypes.SUBMISSION])] if prototypes.SUBMISSION in report else []
    for model, base in sorted(report["baselines"].items()):
        nn = base["nearest_neighbour"]
        rows.append(("nearest neighbour (%s, threshold %.3f, unknown share %.3f)"
                     % (model, nn["threshold"], nn["estimated_unknown_share"]), nn))
        rows.append(("linear SVM (%s)" % model, base["linear_svm"]))
    return [dict(scores, system=name) for name, scores in rows]


def main(argv=None):
    found = parser("evaluate", __doc__.split("\n\n")[0])
    found.add_argument("--truth", required=True, help="test_truth.csv")
    found.add_argument("--submissions", required=True, help="folder of <step>.csv")
    run("evaluate", found.parse_args(argv), {"evaluate": cmd_evaluate})


if __name__ == "__main__":
    main()
