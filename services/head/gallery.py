"""The head service's `gallery` program: the prototypes method (prototypes.py) on a gallery of
enrolled people and on the faces of new photos (`invoke enroll`, `invoke identify`).

    gallery choose   --models A,B --embeddings DIR --photos photos.csv --out settings.json [--seed S]
    gallery identify --models A,B --embeddings DIR --photos photos.csv --settings settings.json
                     --queries DIR --out ranked.csv

photos.csv (written by the tasks): id, label, batch, status, ... a row per enrolled photo; the
rows with status `face` are the gallery, their embeddings in <embeddings>/<model>/<batch>.npy.

`choose` picks the fusion weights and the unknown score on the gallery's own validation folds:
a seeded 5-fold split of the photos, and one of the people, so that in each fold one group of
people plays the strangers (open_set_parts). No photo to identify is known then, so known and
unknown rows weigh alike (unknown share 0.5).
`identify` ranks the people for every face of <queries>/<model>/faces.npy: the fused cosine to
each person's prototype (one transductive round over the faces, as prototypes.py), the five best
people with their scores, and the decision, the best person where their score beats the unknown
score, else unknown (label 1000). The figures go to ranked.csv: crop, decision, then label and
score of the five best.
"""
import argparse
import csv
import io
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import numpy as np  # noqa: E402

from services.head import prototypes as method  # noqa: E402
from services.head.arrays import load_split  # noqa: E402
from services.head.ensemble import log  # noqa: E402
from shared.method.ensemble import UNKNOWN, unit_rows  # noqa: E402
from shared.method.folds import fold_column  # noqa: E402
from shared.schema import exit_with_code  # noqa: E402
from shared.storage import read_json, write_json, write_text  # noqa: E402

# No photo to identify is known when the gallery is enrolled: known and unknown validation rows
# weigh alike.
UNKNOWN_SHARE = 0.5
# The unknown score where the gallery's folds hold no stranger to choose it with (a gallery of
# one person): the middle of what the benchmarks' folds chose (prototypes.THRESHOLDS' note).
DEFAULT_THRESHOLD = 0.45


def read_photos(path):
    """[(id, label, batch)] of the gallery's photos with a face, in the file's order."""
    with io.open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    found = [(r["id"], int(r["label"]), r["batch"]) for r in rows if r["status"] == "face"]
    if not found:
        raise ValueError("%s: no enrolled photo has a face" % path)
    return found


def load_gallery(embeddings, models, photos):
    """({model: (N, D) rows}, (N,) labels) of the photos with a face, batch by batch."""
    batches = sorted(set(batch for _, _, batch in photos))
    train = {}
    for model in models:
        parts = [load_split(os.path.join(embeddings, model), batch, [i for i, _, b in photos if b == batch])
                 for batch in batches]
        train[model] = np.concatenate([p["embeddings"] for p in parts]).astype(np.float64)
    labels = np.array([label for batch in batches for _, label, b in photos if b == batch], dtype=np.int64)
    return train, labels


def open_set_parts(train, labels, folds, groups):
    """Per fold: (best_five, truth) of its probes against the prototypes of the rest. The probes
    are the fold's rows and every row of the identities of the same-numbered group, which play
    the strangers: so each fold has unknowns, however many photos each person has."""
    parts = []
    for fold in np.unique(folds):
        probe = (folds == fold) | (groups == fold)
        if probe.all():
            continue
        classes, found, _ = method.prototypes(train[~probe], labels[~probe], train[probe])
        truth = np.where(np.isin(labels[probe], classes), labels[probe], UNKNOWN)
        parts.append(method.best_five(unit_rows(train[probe]).dot(found.T), classes) + (truth,))
    return parts


def choose_threshold(parts):
    """The unknown score with the best validation MAP@5: the middle of the first run of equal
    best scores (where known and unknown faces separate cleanly, the middle of the gap leaves
    both sides room), or DEFAULT_THRESHOLD where the folds hold no stranger. Where they hold no
    known face (every person enrolled from one photo), the run's top is the end of THRESHOLDS,
    not a measurement, so its lowest score is taken: just above every stranger's best score."""
    if not parts or not any((truth == UNKNOWN).any() for _, _, truth in parts):
        return {"threshold": DEFAULT_THRESHOLD, "validation_map5": None, "default": True}
    figures = method.threshold_figures(parts, UNKNOWN_SHARE)
    values = [f["validation_map5"] for f in figures]
    best = [i for i, v in enumerate(values) if v == max(values)]
    plateau = [i for i in best if i - best[0] == best.index(i)]  # the first run of equal best scores
    known_seen = any((truth != UNKNOWN).any() for _, _, truth in parts)
    return figures[plateau[len(plateau) // 2] if known_seen else plateau[0]]


def cmd_choose(args):
    models = args.models.split(",")
    train, labels = load_gallery(args.embeddings, models, read_photos(args.photos))
    folds = fold_column(labels, args.seed, 0)
    identities = np.unique(labels)
    groups = fold_column(identities, args.seed, 1)[np.searchsorted(identities, labels)]
    candidates = []
    for weights in method.fusions(sorted(train)):
        figures = dict(choose_threshold(open_set_parts(method.fuse(train, weights), labels, folds, groups)),
                       weights=weights)
        candidates.append(figures)
        log("gallery: weights %s -> unknown score %.2f, validation MAP@5 %s"
            % (", ".join("%s %.1f" % kv for kv in sorted(weights.items())), figures["threshold"],
               figures["validation_map5"]))
    chosen = max(candidates, key=lambda c: c["validation_map5"] or 0.0)
    write_json(args.out, dict(chosen, unknown_share=UNKNOWN_SHARE, tau=method.TAU, alpha=method.ALPHA, seed=args.seed,
                              people=int(len(np.unique(labels))), images=int(len(labels)), candidates=candidates))
    log("gallery: %d people, %d images -> %s (weights %s, unknown score %.2f)"
        % (len(np.unique(labels)), len(labels), args.out, chosen["weights"], chosen["threshold"]))


def load_queries(folder, models):
    """({model: (Q, D) rows}, crop names) of the faces to identify; every model's rows in one order."""
    first = load_split(os.path.join(folder, models[0]), "faces")
    queries = {models[0]: first["embeddings"].astype(np.float64)}
    for model in models[1:]:
        queries[model] = load_split(os.path.join(folder, model), "faces", first["names"])["embeddings"].astype(
            np.float64)
    return queries, first["names"]


def cmd_identify(args):
    models = args.models.split(",")
    settings = read_json(args.settings)
    train, labels = load_gallery(args.embeddings, models, read_photos(args.photos))
    queries, names = load_queries(args.queries, models)
    scores, classes, joined = method.final_scores(train, labels, queries, settings["weights"])
    top, top_scores = method.best_five(scores, classes)
    decision = np.where(top_scores[:, 0] > settings["threshold"], top[:, 0], UNKNOWN)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["crop", "decision"] + ["%s%d" % (kind, k) for k in range(1, 6) for kind in ("label", "score")])
    for row, name in enumerate(names):
        cells = [v for k in range(top.shape[1]) for v in (int(top[row, k]), "%.4f" % top_scores[row, k])]
        writer.writerow([name, int(decision[row])] + cells + [""] * (10 - len(cells)))
    write_text(args.out, table.getvalue())
    log("gallery: %d faces, %d named, %d unknown (%d joined a prototype) -> %s"
        % (len(names), int(np.sum(decision != UNKNOWN)), int(np.sum(decision == UNKNOWN)), joined, args.out))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="gallery", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command")
    commands.required = True
    choose = commands.add_parser("choose")
    identify = commands.add_parser("identify")
    for command in (choose, identify):
        for name in ("--models", "--embeddings", "--photos", "--out"):
            command.add_argument(name, required=True)
    choose.add_argument("--seed", type=int, default=2019)
    identify.add_argument("--settings", required=True)
    identify.add_argument("--queries", required=True, help="folder of <model>/faces.npy embed outputs")
    args = parser.parse_args(argv)
    action = cmd_choose if args.command == "choose" else cmd_identify
    exit_with_code("gallery", lambda: action(args), usage_errors=(ValueError, IOError, OSError, KeyError))


if __name__ == "__main__":
    main()
