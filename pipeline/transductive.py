"""`invoke identify --transductive`: the original's method on real photos. The faces found in the
photos are the test set of a whole `invoke all` run against the gallery (heads, pseudo-labels,
the unknown class, steps 6 and 7, the ensemble, the profile's final submission), in a workspace
of its own, <out>/.work/transductive/: its train set the gallery's aligned faces, its test set
the faces' crops, both already on the template (so the run derives the other crop sizes, as for
the LFW benchmark). Its final.csv, mapped back to the gallery's labels, ranks each face.
"""
import csv
import io
import os

from pipeline import context
from pipeline import people as people_mod
from pipeline.workflow import run_pipeline
from shared.method.ensemble import UNKNOWN
from shared.storage import write_json

CROP = "112x112"  # the size both sides are aligned at; the run derives the others


def build_dataset(gallery, faces_dir, crops, dataset):
    """dataset/ of the run: train/ the gallery's faces, test/ the photos' faces; returns the
    run's labels (0..K-1) in the gallery's label order."""
    photos = [p for p in people_mod.read_rows(os.path.join(gallery, "photos.csv")) if p["status"] == "face"]
    labels = sorted(set(int(p["label"]) for p in photos))
    if len(labels) >= UNKNOWN:
        raise people_mod.PeopleError("%s: %d people; the original's method takes at most %d (label %d is its "
                                     "unknown class): identify without --transductive" % (gallery, len(labels),
                                                                                          UNKNOWN, UNKNOWN))
    run_label = dict((label, index) for index, label in enumerate(labels))
    for photo in photos:
        people_mod.place_photo(os.path.join(gallery, "aligned", CROP, photo["batch"], photo["id"]),
                               os.path.join(dataset, "train", photo["id"]))
    people_mod.write_rows(os.path.join(dataset, "train.csv"), ["image", "label"],
                          [{"image": p["id"], "label": run_label[int(p["label"])]} for p in photos])
    for crop in crops:
        people_mod.place_photo(os.path.join(faces_dir, CROP, "faces", crop), os.path.join(dataset, "test", crop))
    write_json(os.path.join(dataset, "benchmark.json"), {"pre_aligned": CROP, "source": gallery})
    return labels


def transductive_ranking(ctx, gallery, faces_dir, crops, work, profile):
    """Ranked rows as the head service's `gallery identify` writes them (no scores: a
    submission ranks), from a whole run of `profile` on the gallery and the faces."""
    workspace = os.path.join(work, "transductive")
    labels = build_dataset(ctx.workspace, faces_dir, crops, os.path.join(workspace, "dataset"))
    run = context.RunContext(dict(ctx.config, workspace=workspace), ctx.runner_name, profile)
    run_pipeline(run, ",".join(gallery["models"]))
    with io.open(os.path.join(workspace, "submissions", "final.csv"), encoding="utf-8", newline="") as f:
        final = dict((row["image"], [int(v) for v in row["label"].split()]) for row in csv.DictReader(f))
    rows = []
    for crop in crops:
        ranked = [UNKNOWN if v == UNKNOWN else labels[v] for v in final[crop]]
        row = {"crop": crop, "decision": ranked[0]}
        row.update(("label%d" % k, v) for k, v in enumerate(ranked, 1))
        rows.append(row)
    return rows
