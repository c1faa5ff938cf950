"""Train one model's Keras heads for one step (4, 6 or 7) on its embeddings.

    train --model NAME --embeddings DIR --folds folds.csv --columns rt0,rt1 --out DIR
          [--pseudo pseudo.csv | --pseudo-folds pseudo.folds.csv] [--unknown-class] [--fold-probs]
          [--epochs E] [--patience P] [--seed S] [--no-merge] [--one-at-a-time]

Each fold column gives 5 heads (train on 4 folds, validate on the fifth). A head is the
original's Dense(width, uniform init) - ReLU - Dropout - Dense(C) - softmax, trained with
Adam and an exp_range cyclical learning rate, one randomly drawn augmented embedding per
sample per batch, early stopping on clean validation accuracy with the best weights kept.
Pseudo-labelled test rows (steps 6/7) join every head's training part, never validation: one
set for every head (the original's), or with --pseudo-folds each head its own set, labelled by
models that did not see its validation fold (fold_pseudo.py).
A column's 5 heads train together as one batched graph (batched.py: the same math, each head
its own data order, dropout, learning rate and early stopping); --one-at-a-time trains them
one after another (model.py), the reference bench.heads compares with.
Outputs in --out: val_probs.npy (out-of-fold train probabilities, mean over columns),
test_probs.npy (mean over heads x {original, flip}; --fold-probs: each head's too), summary.json
(last: completion; per head its epochs). .partial/ keeps finished columns: a rerun resumes.
"""
import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from services.head.arrays import load_split, training_views, view_scheme  # noqa: E402
from services.head import fold_pseudo  # noqa: E402
from services.head.batched import Heads  # noqa: E402
from services.head.model import Head  # noqa: E402
from shared import hardware  # noqa: E402
from shared.method.ensemble import UNKNOWN  # noqa: E402
from shared.method.folds import read_folds  # noqa: E402
from shared.models import registry as registry_mod  # noqa: E402
from shared.progress import bar  # noqa: E402
from shared.quiet import TENSORFLOW, chatter_filtered  # noqa: E402
from shared.schema import exit_with_code  # noqa: E402
from shared.storage import read_json, save_npy, save_npz, stable_seed, write_json  # noqa: E402

FOLDS = 5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--embeddings", required=True, help="the model's embed-contract outputs")
    parser.add_argument("--folds", required=True, help="folds.csv (image,label,rt0..)")
    parser.add_argument("--columns", required=True, help="fold columns, e.g. rt0,rt1,rt2,rt3")
    parser.add_argument("--unknown-class", action="store_true",
                        help="add the 'unknown' class (label 1000) after the known ones (steps 6 and 7)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--pseudo", help="CSV image,label of test rows to add to training")
    parser.add_argument("--pseudo-folds", help="CSV image,column,fold,label: each head's own pseudo-labels, "
                        "instead of --pseudo's (fold_pseudo.py)")
    parser.add_argument("--fold-probs", action="store_true",
                        help="also write each head's test probabilities, for the next step's per-fold pseudo-labels")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--registry")
    parser.add_argument("--no-merge", action="store_true", help="only train the columns into .partial/ (a cluster task)")
    parser.add_argument("--one-at-a-time", action="store_true",
                        help="train each head on its own instead of a column's 5 as one batched graph (bench.heads)")
    parser.add_argument("--matmul", default="auto", choices=hardware.MATMUL_CHOICES,
                        help="the batched heads' training matmul dtype (invoke.yaml train_matmul); auto: bfloat16 "
                             "where this CPU and TensorFlow's oneDNN have bf16 kernels, else float32")
    return parser.parse_args(argv)


def _fold_heads(args, column, folds, data):
    """The 5 heads of one fold column: seed, validation rows and fit data of each (model.Head.fit's)."""
    train, test, labels = data["train"], data["test"], data["labels"]
    top = max([labels.max()] + [p.max() for _, p in data["pseudo"].values() if len(p)])
    if top >= args.classes:
        raise ValueError("labels go up to %d but the heads have %d classes" % (top, args.classes))
    scheme = view_scheme(train)
    if scheme != "plain" and scheme not in test:
        raise ValueError("the train split has '%s' embeddings but the test split has none: embed "
                         "both splits with the same settings" % scheme)
    train_pool, test_pool = training_views(train, scheme), training_views(test, scheme)
    heads = []
    for fold in range(FOLDS):
        fit_rows, val_rows = np.where(folds != fold)[0], np.where(folds == fold)[0]
        pseudo_rows, pseudo_labels = data["pseudo"][(column, fold)]
        heads.append({"seed": stable_seed("head", args.seed, args.model, args.classes, column, fold), "val_rows": val_rows,
                      "pools": np.concatenate([train_pool[fit_rows], test_pool[pseudo_rows]]),
                      "labels": np.concatenate([labels[fit_rows], pseudo_labels]),
                      "x_val": train["embeddings"][val_rows], "y_val": labels[val_rows], "pseudo_rows": len(pseudo_rows)})
    return heads


def fit_one_at_a_time(args, settings, heads, views, progress):
    """Each head on its own (model.Head): per head (val probs, test probs, fit result, seconds)."""
    found = []
    for head in heads:
        started = time.time()
        model = Head(head["pools"].shape[2], args.classes, settings, head["seed"])
        fitted = model.fit(head["pools"], head["labels"], head["x_val"], head["y_val"], args.epochs, args.patience,
                           np.random.RandomState(head["seed"]), lambda: progress.update(1))
        progress.update(args.epochs - fitted[2])  # the epochs early stopping saved
        test = sum(model.predict(v).astype(np.float64) for v in views) / len(views)
        found.append((model.predict(head["x_val"]), test, fitted, time.time() - started))
    return found


def fit_together(args, settings, heads, views, progress):
    """The heads as one batched graph (batched.Heads); each head is charged an equal share of the time."""
    started = time.time()
    model = Heads(heads[0]["pools"].shape[2], args.classes, settings, [h["seed"] for h in heads])
    fitted = model.fit(heads, args.epochs, args.patience, progress.update)
    progress.update(sum(args.epochs - f[2] for f in fitted))  # the epochs early stopping saved
    found = [(model.probabilities(i, h["x_val"]),
              sum(model.probabilities(i, v).astype(np.float64) for v in views) / len(views)) for i, h in enumerate(heads)]
    seconds = (time.time() - started) / len(heads)
    return [(val, test, fit, seconds) for (val, test), fit in zip(found, fitted)]


def train_column(args, settings, column, folds, data, log):
    """The 5 heads of one fold column: (val probs of every train row, summed test probs, records)."""
    heads = _fold_heads(args, column, folds, data)
    test = data["test"]
    views = [test["embeddings"]] + ([test["flip"]] if "flip" in test else [])
    val_probs = np.zeros((len(data["labels"]), args.classes), np.float32)
    test_sum = np.zeros((len(test["embeddings"]), args.classes), np.float64)
    progress = bar(FOLDS * args.epochs, "heads %s %s" % (args.model, column), unit="epoch")
    fit = fit_one_at_a_time if args.one_at_a_time else fit_together
    records, fold_probs = [], {}
    for fold, (head, (val, test_probs, fitted, seconds)) in enumerate(zip(heads, fit(args, settings, heads, views,
                                                                                      progress))):
        best, best_epoch, epochs, history = fitted
        val_probs[head["val_rows"]] = val
        test_sum += test_probs
        fold_probs["fold%d" % fold] = test_probs.astype(np.float16)
        record = {"column": column, "fold": fold, "val_top1": best, "best_epoch": best_epoch, "epochs": epochs,
                  "train_rows": int(len(head["labels"])),
                  "pseudo_rows": head["pseudo_rows"], "seconds": round(seconds, 2), "history": history}
        records.append(record)
        log("%s %s fold %d: val top-1 %.4f (best epoch %d of %d, %.1f s)"
            % (args.model, column, fold, best, best_epoch + 1, epochs, record["seconds"]))
    progress.close()
    return val_probs, test_sum, records, fold_probs


def _inputs(args, images, labels, known, columns):
    """The embeddings and each head's pseudo-labelled test rows, {(column, fold): (rows, labels)}:
    --pseudo's one set for every head, or --pseudo-folds' own set per head; the unknown label
    becomes column `known`."""
    train = load_split(args.embeddings, "train", images)
    test = load_split(args.embeddings, "test")
    pseudo = fold_pseudo.head_sets(args.pseudo, args.pseudo_folds, test["names"], columns, range(FOLDS))
    source = args.pseudo_folds or args.pseudo
    if any(np.any(p == UNKNOWN) for _, p in pseudo.values()) and not args.unknown_class:
        raise ValueError("%s labels rows 'unknown' (%d): pass --unknown-class" % (source, UNKNOWN))
    pseudo = dict((k, (r, np.where(p == UNKNOWN, known, p))) for k, (r, p) in pseudo.items())
    return {"train": train, "test": test, "labels": labels, "pseudo": pseudo}


def matmul_choice(args, tf):
    """The training matmul dtype (`--matmul` resolved on this CPU and this TensorFlow) and its record
    for summary.json; model.Head (--one-at-a-time) always trains in float32."""
    from tensorflow.python.util import _pywrap_util_port  # TensorFlow's own "built with oneDNN" check

    onednn = hardware.tensorflow_onednn()
    if not _pywrap_util_port.IsMklEnabled():  # a TensorFlow built without oneDNN, or it switched off
        onednn = (False, "this TensorFlow's oneDNN is off (%s)" % onednn[1])
    used, why = hardware.matmul_dtype(args.matmul, onednn=onednn)
    if args.one_at_a_time:
        used, why = "float32", "one at a time: model.Head trains in float32"
    return used, {"requested": args.matmul, "used": used, "why": why, "cpu": hardware.cpu_info()[0],
                  "onednn_max_cpu_isa": hardware.onednn_cap(), "tensorflow": tf.__version__}


def run(args):
    with chatter_filtered(TENSORFLOW):
        import tensorflow as tf
    tf.config.experimental.enable_op_determinism()  # same seed, same heads, same submission
    registry = registry_mod.load(args.registry)
    settings = dict(registry.model(args.model)["head"])
    settings["train_matmul"], matmul = matmul_choice(args, tf)
    print("%s: training matmuls in %s (%s)" % (args.model, matmul["used"], matmul["why"]), flush=True)
    images, labels, columns = read_folds(args.folds)
    known = int(labels.max()) + 1
    # Softmax columns: the known labels 0..K-1, then (steps 6/7) "unknown", label 1000. With
    # the competition's 1000 identities that is the original's 1001 classes; with fewer, no
    # column is wasted on labels that never occur.
    class_ids = list(range(known)) + ([UNKNOWN] if args.unknown_class else [])
    args.classes = len(class_ids)
    wanted = args.columns.split(",")
    unknown = [c for c in wanted if c not in columns]
    if unknown:
        raise ValueError("%s has no column(s) %s" % (args.folds, ", ".join(unknown)))
    data = _inputs(args, images, labels, known, wanted)
    test = data["test"]
    partial = os.path.join(args.out, ".partial")
    os.makedirs(partial, exist_ok=True)  # column tasks may start side by side

    def log(message):
        print(message, flush=True)

    records, val_sum, test_sum, fold_probs = [], 0, 0, {}
    for column in wanted:
        done = os.path.join(partial, column + ".npz")
        if not os.path.isfile(done):
            val_probs, column_test, column_records, heads_test = train_column(args, settings, column, columns[column],
                                                                              data, log)
            save_npz(done, dict(heads_test, val=val_probs, test=column_test))
            write_json(os.path.join(partial, column + ".json"), column_records)
        saved = np.load(done)
        val_sum = val_sum + saved["val"].astype(np.float64)
        test_sum = test_sum + saved["test"]
        fold_probs.update((fold_pseudo.key(column, f), saved["fold%d" % f]) for f in range(FOLDS))
        records += read_json(os.path.join(partial, column + ".json"))
    if args.no_merge:
        return
    val_probs = (val_sum / len(wanted)).astype(np.float32)
    test_probs = (test_sum / (FOLDS * len(wanted))).astype(np.float32)
    save_npy(os.path.join(args.out, "val_probs.npy"), val_probs)
    save_npy(os.path.join(args.out, "test_probs.npy"), test_probs)
    if args.fold_probs:
        save_npz(os.path.join(args.out, fold_pseudo.FOLD_PROBS), fold_probs)
    summary = {"model": args.model, "class_ids": class_ids, "columns": wanted, "heads": records,
               "val_top1": float(np.mean(val_probs.argmax(axis=1) == labels)),
               "mean_head_seconds": round(float(np.mean([r["seconds"] for r in records])), 2),
               "pseudo_rows": len(set(np.concatenate([r for r, _ in data["pseudo"].values()]).tolist())),
               "pseudo_per_fold": bool(args.pseudo_folds), "settings": settings, "train_matmul": matmul,
               "heads_trained": "one at a time" if args.one_at_a_time else "together",
               "epochs": args.epochs, "patience": args.patience, "seed": args.seed,
               "train_images": images, "test_images": test["names"]}
    write_json(os.path.join(args.out, "summary.json"), summary)
    shutil.rmtree(partial)
    log("%s: out-of-fold val top-1 %.4f over %d heads -> %s" % (args.model, summary["val_top1"], len(records), args.out))


def main(argv=None):
    args = parse_args(argv)
    exit_with_code("train", lambda: run(args), usage_errors=(ValueError, IOError, OSError))


if __name__ == "__main__":
    main()
