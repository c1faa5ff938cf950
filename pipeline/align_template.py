"""Where pre-aligned input really sits: a sample of train crops, each pasted in the middle of a
canvas, goes through the align service's detectors, and the landmarks found say how far the
crops are from the 112x112 template the models were trained on (the LFW dev crops sit 8 px to
the left of it: ../shared/README.md). Under the profile's `template_fix`, one similarity moves
every crop onto the template before the other sizes are derived (pipeline/align.py)."""
import os
import shutil

import numpy as np

from shared.faces import known_faces
from shared.faces.images import save_rgb
from shared.faces.template import correction
from shared.storage import read_json, stable_seed, write_json, write_text

SAMPLE = 64  # train crops measured: the median of 64 landmarks is steady to a fraction of a pixel
MIN_FOUND = 16  # fewer faces found than this: the crops are left as they are
MARGIN = 69  # each crop's place on the 250x250 canvas (its middle), as the align benchmark pastes them
RECORD = "template.json"


def _sample(ctx, names):
    rng = np.random.RandomState(stable_seed(ctx.config["seed"], "template"))
    return sorted(rng.choice(names, min(SAMPLE, len(names)), replace=False).tolist())


def detect_on_canvases(ctx, crops, work, split):
    """({name: read_faces' entry}, {name: detection score}) of the align service on each 112x112
    crop of `crops` ({name: RGB}), pasted in the middle of a canvas (crop pixels: subtract MARGIN)."""
    canvases = os.path.join(work, "canvases")
    place = np.array([[1.0, 0.0, MARGIN], [0.0, 1.0, MARGIN]])
    for name, crop in sorted(crops.items()):
        save_rgb(os.path.join(canvases, name), known_faces.paste(crop, place))
    listing = os.path.join(work, split + ".txt")
    write_text(listing, "".join(n + "\n" for n in sorted(crops)))
    ctx.runner.run("align", "align", ["--images", canvases, "--list", listing, "--out", work, "--split", split,
                                      "--crops", "112x112", "--weights-root", ctx.weights_root])
    faces = os.path.join(work, split + "_faces.csv")
    return known_faces.read_faces(faces), known_faces.read_scores(faces)


def _measure(ctx, sample, work):
    """The 5 landmarks (crop pixels) the align service finds on each sampled crop it finds a face in."""
    from shared.faces.crops import load_template_crop

    crops = dict((name, load_template_crop(os.path.join(ctx.paths["dataset"], "train", name))) for name in sample)
    faces, _ = detect_on_canvases(ctx, crops, work, "sample")
    return [faces[n][2] - MARGIN for n in sample if faces[n][2] is not None]


def template_stage(ctx, train, skip=()):
    """The 2x3 matrix that moves the pre-aligned crops onto the template, or None (fix off, the
    crops already on it, or too few faces found). Measured once on train crops (not those in
    `skip`: upside down) and kept in aligned/template.json; with the fix off that record goes."""
    record = os.path.join(ctx.paths["aligned"], RECORD)
    if not ctx.flag("template_fix"):
        if os.path.isfile(record):
            os.remove(record)
        return None
    skip = set(skip)
    sample = _sample(ctx, [n for n in train if n not in skip])
    stage = ctx.stage("align/template", [os.path.join(ctx.paths["dataset"], "train", n) for n in sample], [record],
                      {"sample": sample, "min_found": MIN_FOUND})
    if stage.needed():
        work = os.path.join(ctx.paths["aligned"], "template")
        shutil.rmtree(work, ignore_errors=True)
        points = _measure(ctx, sample, work)
        matrix = correction(points) if len(points) >= MIN_FOUND else None
        median = np.median(points, axis=0) if points else None
        write_json(record, {"sampled": len(sample), "found": len(points),
                            "median_landmarks": None if median is None else np.round(median, 2).tolist(),
                            "matrix": None if matrix is None else np.round(matrix, 4).tolist()})
        shutil.rmtree(work, ignore_errors=True)
        stage.done()
    info = read_json(record)
    print("template: %d of %d sampled train crops have a face; %s" % (
        info["found"], info["sampled"], "moved onto the template by %s" % info["matrix"] if info["matrix"]
        else "the crops are left as they are"))
    return None if info["matrix"] is None else np.array(info["matrix"])
