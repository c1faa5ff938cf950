"""The head service's `evaluate` program: MAP@5, top-1 and unknown precision/recall of every
model, step, ensemble and baseline against the test truth.

    evaluate --models A,B --heads H --embeddings E --folds folds.csv --step step7 --out reports/
             --rules JSON --truth test_truth.csv --submissions S [--no-face FILE] [--registry R]
Scores S/<step>.csv per step and S/prototypes.csv when present.
Writes evaluation.json and evaluation.md into --out, and diagnostics.json: what the report plots
(services/head/diagnostics.py); --out/.cache/ keeps each model's linear SVM ranking (most of the
work) for a re-evaluation on the same embeddings. The sweeps reuse one ranking per row for every
threshold, and the SVMs run in processes of their own beside the rest.
"""
import csv
import glob
import hashlib
import importlib.metadata
import inspect
import io
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import numpy as np  # noqa: E402

from services.head.arrays import load_split  # noqa: E402
from services.head import diagnostics, fused_baseline, prototypes  # noqa: E402
from services.head.baselines import (FOLD_COLUMN, collapsed_note, linear_svm, nearest_neighbour,  # noqa: E402
                                     nearest_neighbour_sweep, test_similarity)
from services.head.ensemble import log, parser, run, summary, test_names  # noqa: E402
from shared.method.ensemble import UNKNOWN  # noqa: E402
from shared.method.folds import read_folds  # noqa: E402
from shared.method.metrics import scores, top_k  # noqa: E402
from shared import hardware  # noqa: E402
from shared.contract.shards import die_with_parent  # noqa: E402
from shared.method.steps import STEPS  # noqa: E402
from shared.method.submission import read_submission  # noqa: E402
from shared.storage import save_npy, write_json, write_text  # noqa: E402

DIAGNOSTICS = "diagnostics.json"


def _truth(path, names):
    with io.open(path, encoding="utf-8") as f:
        truth = dict((r["image"], int(r["label"])) for r in csv.DictReader(f))
    missing = [n for n in names if n not in truth]
    if missing:
        raise ValueError("%s has no label for %d test images (e.g. %s)" % (path, len(missing), missing[0]))
    return np.array([truth[n] for n in names])


def _svm(embeddings, model, images, labels, names, unknown_score, cache):
    """One model's linear SVM ranking (a process of its own: liblinear is single-threaded), kept
    in `cache` under the digest of everything it depends on (the arrays, the rule, scikit-learn's
    version, linear_svm's source): a re-evaluation with the same embeddings reads it back. Only
    the latest ranking of each model is kept."""
    train = load_split(os.path.join(embeddings, model), "train", images)["embeddings"]
    test = load_split(os.path.join(embeddings, model), "test", names)["embeddings"]
    digest = hashlib.sha256(json.dumps([names, unknown_score, importlib.metadata.version("scikit-learn"),
                                        inspect.getsource(linear_svm)]).encode("utf-8"))
    for array in (train, np.asarray(labels, np.int64), test):
        digest.update(np.ascontiguousarray(array).tobytes())
    path = os.path.join(cache, "linear_svm-%s-%s.npy" % (model, digest.hexdigest()[:16]))
    if os.path.isfile(path):
        return np.load(path)
    ranked = linear_svm(train, labels, test, unknown_score)
    save_npy(path, ranked)
    for old in glob.glob(os.path.join(cache, "linear_svm-%s-*.npy" % model)):
        if old != path:
            os.remove(old)
    return ranked


def _model_rows(args, model, steps, names, truth, folds):
    """(per step: the model's heads' test scores, its nearest-neighbour baseline, its sweep)."""
    images, labels, columns = folds
    rows = {}
    for step in steps:
        head = summary(args, model, step)
        probs = np.load(os.path.join(args.heads, model, step, "test_probs.npy"))
        rows[step] = dict(scores(truth, top_k(probs, class_ids=head["class_ids"])), val_top1=head["val_top1"],
                          mean_head_seconds=head["mean_head_seconds"], val_sees_own_labels=bool(
                              head.get("pseudo_rows") and not head.get("pseudo_per_fold")))
    train = load_split(os.path.join(args.embeddings, model), "train", images)["embeddings"]
    test = load_split(os.path.join(args.embeddings, model), "test", names)["embeddings"]
    similarity = test_similarity(train, labels, test)  # the two nearest-neighbour uses share it
    nn_ranked, nn_settings = nearest_neighbour(train, labels, test, columns[FOLD_COLUMN], similarity)
    sweep = nearest_neighbour_sweep(train, labels, test, truth, nn_settings["threshold"], similarity)
    return rows, {"nearest_neighbour": dict(scores(truth, nn_ranked), **nn_settings)}, sweep


def _submissions(args, report, steps):
    """The scores of each step's submission and of the prototypes', where the workspace has them."""
    for step in steps:
        path = os.path.join(args.submissions, step + ".csv")
        if os.path.isfile(path):
            sub_names, ranked = read_submission(path)
            report["ensemble"][step] = scores(_truth(args.truth, sub_names), ranked)
    path = os.path.join(args.submissions, prototypes.SUBMISSION + ".csv")
    if os.path.isfile(path):  # the prototypes program's submission (ensemble.prototypes)
        sub_names, ranked = read_submission(path)
        report[prototypes.SUBMISSION] = scores(_truth(args.truth, sub_names), ranked)


def cmd_evaluate(args, registry, models, rules):
    def trained(model, step):  # a model with ensemble weight 0 may have no heads (skip_zero_weight_heads)
        return os.path.isfile(os.path.join(args.heads, model, step, "summary.json"))

    steps = [s for s in STEPS if any(trained(m, s) for m in models)]
    names = test_names(args, registry, models, steps[0])
    truth = _truth(args.truth, names)
    folds = read_folds(args.folds)
    report = {"models": {}, "ensemble": {}, "baselines": {}, "test_images": len(names),
              "test_unknown": int(np.sum(truth == UNKNOWN))}
    nn_sweeps = {}
    # the SVMs (most of the time) in processes of their own while this one does the rest
    workers = max(1, min(len(models), hardware.available_cpus()))
    with ProcessPoolExecutor(workers, initializer=die_with_parent()) as pool:  # they die with this process
        cache = os.path.join(args.out, ".cache")
        os.makedirs(cache, exist_ok=True)
        svms = dict((m, pool.submit(_svm, args.embeddings, m, folds[0], folds[1], names, rules["svm_unknown_score"],
                                    cache)) for m in models)
        for model in models:
            rows, report["baselines"][model], nn_sweeps[model] = _model_rows(
                args, model, [s for s in steps if trained(model, s)], names, truth, folds)
            if rows:
                report["models"][model] = rows
        _submissions(args, report, steps)
        report["fused_baseline"] = fused_baseline.rows(args.embeddings, args.submissions, models, names, truth, folds)
        found = diagnostics.collect(args, registry, models, rules, truth, names, steps, nn_sweeps)
        for model in models:
            report["baselines"][model]["linear_svm"] = scores(truth, svms[model].result())
    report["systems"] = systems(report, steps)
    write_json(os.path.join(args.out, "evaluation.json"), report)
    write_json(os.path.join(args.out, DIAGNOSTICS), found)
    table = render(report, steps)
    write_text(os.path.join(args.out, "evaluation.md"), table)
    log(table)


def render(report, steps):
    def pct(value):
        return "%.4f" % value

    def val(entry):  # fold_pseudo.py: a head whose test rows were labelled by models that saw its fold
        return pct(entry["val_top1"]) + ("*" if entry.get("val_sees_own_labels") else "")

    lines = ["# Evaluation (%d test images, %d unknown)" % (report["test_images"], report["test_unknown"]), "",
             "Validation top-1 per model (out-of-fold, like the original's table) and test MAP@5:", "",
             "| model | " + " | ".join("val top-1 %s" % s for s in steps) + " | " +
             " | ".join("test MAP@5 %s" % s for s in steps) + " | mean head s |",
             "|---|" + "---|" * (2 * len(steps) + 1)]
    for model, entry in sorted(report["models"].items()):
        lines.append("| %s | %s | %s | %s |" % (model, " | ".join(val(entry[s]) for s in steps),
                                                 " | ".join(pct(entry[s]["map5"]) for s in steps),
                                                 "%.1f" % entry[steps[-1]]["mean_head_seconds"]))
    if any(e[s].get("val_sees_own_labels") for e in report["models"].values() for s in steps):
        lines += ["", "\\* not honest: these heads learned from test rows labelled by models that saw their "
                  "validation rows' labels (one pseudo-label set for every head, the original's; a profile's "
                  "`fold_pseudo_labels: true` gives each head its own)."]
    lines += ["", "Test set, ensemble per step and peer baselines on the same embeddings:", "",
              "| system | MAP@5 | top-1 | unknown precision | unknown recall |", "|---|---|---|---|---|"]
    for s in report["systems"]:
        lines.append("| %s | %s | %s | %s | %s |" % (s["system"], pct(s["map5"]), pct(s["top1"]),
                                                     pct(s["unknown_precision"]), pct(s["unknown_recall"])))
    return "\n".join(lines) + "\n"


def systems(report, steps):
    """The test-set rows of the table (and the report's bar chart): ensemble per step, the
    prototypes submission when there is one, the fused nearest neighbour (validated; its upper
    bound), then each model's baselines."""
    rows = [("ensemble %s" % s, report["ensemble"][s]) for s in steps if s in report["ensemble"]]
    rows += [("class prototypes", report[prototypes.SUBMISSION])] if prototypes.SUBMISSION in report else []
    rows += fused_baseline.systems(report["fused_baseline"]) if "fused_baseline" in report else []
    for model, base in sorted(report["baselines"].items()):
        nn = base["nearest_neighbour"]
        rows.append(("nearest neighbour (%s, threshold %.3f, unknown share %.3f%s)"
                     % (model, nn["threshold"], nn["estimated_unknown_share"], collapsed_note(nn)), nn))
        rows.append(("linear SVM (%s)" % model, base["linear_svm"]))
    return [dict(scores, system=name) for name, scores in rows]


def main(argv=None):
    found = parser("evaluate", __doc__.split("\n\n")[0])
    found.add_argument("--truth", required=True, help="test_truth.csv")
    found.add_argument("--submissions", required=True, help="folder of <step>.csv")
    run("evaluate", found.parse_args(argv), {"evaluate": cmd_evaluate})


if __name__ == "__main__":
    main()
