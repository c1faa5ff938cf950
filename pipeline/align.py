"""`align` collection: face crops at every size the models read."""
import csv
import io
import os
import shutil
import time

from invoke import task

from pipeline import arguments, context
from pipeline.common import progress
from shared.storage import atomic_path, read_json, write_json, write_text


def dataset_lists(dataset):
    """Image names per split: train.csv order, and sample_submission.csv order (or the sorted
    test folder when the dataset has no sample submission)."""
    from shared.contract.validate import read_list
    from shared.faces.images import list_images

    lists = {"train": read_list(os.path.join(dataset, "train.csv"))}
    submission = os.path.join(dataset, "sample_submission.csv")
    lists["test"] = read_list(submission) if os.path.isfile(submission) else list_images(os.path.join(dataset, "test"))
    return lists


def crops_for(ctx, models=None):
    """The crop sizes the models read (default: every model of the registry)."""
    names = models or ctx.registry.names()
    return sorted(set(ctx.registry.model(name)["input"]["crop"] for name in names))


def orientation_stage(ctx, lists):
    """{split: names to turn upright}: the crops shared/faces/orientation.py finds upside down, fitted on
    the train crops without labels, and the align service's detector does not find upright as they
    are (detector_vetoes), when the profile's orientation_fix is on, else none. The scores go to
    aligned/orientation.csv; with the fix off a stale one is removed."""
    from shared.faces import orientation

    table = os.path.join(ctx.paths["aligned"], "orientation.csv")
    if not ctx.flag("orientation_fix"):
        if os.path.isfile(table):
            os.remove(table)
        return {}
    started, rows, scores = time.time(), {}, {}
    for split, names in sorted(lists.items()):
        rows[split] = orientation.features([os.path.join(ctx.paths["dataset"], split, n) for n in names])
    weights = orientation.fit(rows["train"])
    for split, names in sorted(lists.items()):
        scores[split] = orientation.upside_down(weights, rows[split])
    vetoed = detector_vetoes(ctx, dict((split, [n for n, q in zip(lists[split], scores[split])
                                                 if q > orientation.THRESHOLD]) for split in lists))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["split", "image", "p_upside_down", "detector_veto", "rotated"])
    flagged = {}
    for split, names in sorted(lists.items()):
        asked = [q > orientation.THRESHOLD for q in scores[split]]
        veto = [(split, name) in vetoed for name in names]
        flagged[split] = [name for name, a, v in zip(names, asked, veto) if a and not v]
        writer.writerows([split, name, "%.6f" % q, int(v), int(a and not v)]
                         for name, q, a, v in zip(names, scores[split], asked, veto))
    write_text(table, out.getvalue())
    print("orientation: %s turned upright, %d turn(s) withdrawn where the face detector finds the crop upright "
          "(%.1f s)" % (", ".join("%s %d of %d" % (split, len(flagged[split]), len(lists[split])) for split in
                                  sorted(lists)), len(vetoed), time.time() - started))
    return flagged


def detector_vetoes(ctx, asked):
    """{(split, name)} of the turns `asked` ({split: names}) that the align service's face detector
    speaks against (orientation.detector_vetoes): each crop pasted on a canvas as it is and turned.
    Kept in aligned/orientation_check.json, redone only when the asked crops change."""
    from pipeline.align_template import detect_on_canvases
    from shared.faces import orientation
    from shared.faces.crops import load_template_crop

    record = os.path.join(ctx.paths["aligned"], "orientation_check.json")
    pairs = [(split, name) for split in sorted(asked) for name in asked[split]]
    stage = ctx.stage("align/orientation-check", [os.path.join(ctx.paths["dataset"], s, n) for s, n in pairs],
                      [record], {"asked": pairs})
    if stage.needed():
        crops, work = {}, os.path.join(ctx.paths["aligned"], "orientation-check")
        shutil.rmtree(work, ignore_errors=True)  # an interrupted check's canvases
        for index, (split, name) in enumerate(pairs):
            crop = load_template_crop(os.path.join(ctx.paths["dataset"], split, name))
            crops["%06d-found.png" % index], crops["%06d-turned.png" % index] = crop, crop[::-1, ::-1].copy()
        faces, scores = detect_on_canvases(ctx, crops, work, "check") if crops else ({}, {})
        checked = []
        for index, (split, name) in enumerate(pairs):
            sides = ["%06d-found.png" % index, "%06d-turned.png" % index]
            checked.append({"split": split, "image": name, "scores (as found, turned)": [scores[k] for k in sides],
                            "veto": bool(orientation.detector_vetoes(*[(faces[k][2], scores[k]) for k in sides]))})
        write_json(record, checked)
        shutil.rmtree(work, ignore_errors=True)
        stage.done()
    return set((r["split"], r["image"]) for r in read_json(record) if r["veto"])


def prealigned_stage(ctx, crops):
    """Every crop size derived from input already aligned to a 112x112 template, upside-down
    crops turned upright (orientation_stage) and all moved onto the models' template
    (pipeline/align_template.py) where the profile says so."""
    from shared.faces.crops import derive_prealigned

    from pipeline.align_template import template_stage

    paths = ctx.paths
    lists = dataset_lists(paths["dataset"])
    flagged = orientation_stage(ctx, lists)
    warp = template_stage(ctx, lists["train"], skip=flagged.get("train", ()))
    for split, names in sorted(lists.items()):
        out_dirs = dict((crop, os.path.join(paths["aligned"], crop, split)) for crop in crops)
        written = derive_prealigned(os.path.join(paths["dataset"], split), names, out_dirs,
                                    progress=progress("align " + split),
                                    manifest=os.path.join(paths["aligned"], split + "_sources.json"),
                                    rotate=flagged.get(split, ()), warp=warp)
        write_text(os.path.join(paths["aligned"], split + ".txt"), "".join(n + "\n" for n in names))
        print("aligned %s: %d images, %d new crop files (%s)" % (split, len(names), written, ", ".join(crops)))


def detect_stage(ctx, crops, detectors="auto", blur_retry=True, weights=()):
    """The align service on every train/test image: detect, 5 landmarks, warp onto the template;
    then, where the profile's orientation_fix is on, a second pass on the photos turned a half
    turn for the crops that look upside down or found no face (turn_detected)."""
    paths = ctx.paths
    options = ["--detectors", detectors, "--crops", ",".join(crops), "--weights-root", ctx.weights_root]
    for pair in weights:
        options += ["--weights", pair]
    if not blur_retry:
        options.append("--no-blur-retry")
    lists, fix = dataset_lists(paths["dataset"]), ctx.flag("orientation_fix")
    if not fix:
        _forget_turned(paths["aligned"], lists)
    for split, names in sorted(lists.items()):
        list_path = os.path.join(paths["aligned"], split + ".txt")
        write_text(list_path, "".join(n + "\n" for n in names))
        ctx.runner.run("align", "align", ["--images", os.path.join(paths["dataset"], split), "--list", list_path,
                                          "--out", paths["aligned"], "--split", split] + options)
    if fix:
        turn_detected(ctx, lists, crops, options)


def _forget_turned(aligned, lists):
    """With the fix off: where an earlier run turned crops (its aligned/orientation.csv), the
    service's split metadata goes too, so that the service aligns every photo again as detected."""
    table = os.path.join(aligned, "orientation.csv")
    if os.path.isfile(table):
        for path in [os.path.join(aligned, split + "_meta.json") for split in sorted(lists)] + [table]:
            if os.path.isfile(path):
                os.remove(path)
        shutil.rmtree(os.path.join(aligned, "turned"), ignore_errors=True)
        print("orientation: the fix is off; the photos an earlier run turned are aligned again as detected")


def turn_detected(ctx, lists, crops, options):
    """Photos a detector aligned upside down, or found no face in, detected again turned a half
    turn (aligned/turned/): the turned result replaces the crops where it finds a face whose
    crop the orientation detector (fitted on the train crops) calls upright. Stamped on the
    align service's outputs; aligned/orientation.csv lists each image's scores."""
    from shared.faces import orientation

    aligned = ctx.paths["aligned"]
    table = os.path.join(aligned, "orientation.csv")
    metas = [os.path.join(aligned, split + "_meta.json") for split in sorted(lists)]
    stage = ctx.stage("align/turned", metas, [table], {"crops": crops, "options": options})
    if not stage.needed():
        return
    weights = orientation.fit(orientation.features(_crop_paths(aligned, "train", lists["train"])))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["split", "image", "p_upside_down", "no_face", "p_turned", "rotated"])
    write_text(table, out.getvalue())  # before any crop is replaced: _forget_turned undoes even a run stopped midway
    for split in sorted(lists):
        writer.writerows(_turn_split(ctx, split, lists[split], crops, options, weights))
    write_text(table, out.getvalue())
    stage.done()


def _crop_paths(folder, split, names):
    return [os.path.join(folder, "112x112", split, n) for n in names]


def _lines(path):
    return [line.strip() for line in io.open(path, encoding="utf-8") if line.strip()] if os.path.isfile(path) else []


def _turn_split(ctx, split, names, crops, options, weights):
    """One split of turn_detected: its table rows; the crops turning fixed replaced, and those
    images taken off no_face_<split>.txt."""
    from shared.faces import orientation
    from shared.faces.images import load_rgb, save_rgb

    aligned = ctx.paths["aligned"]
    turned, listed = os.path.join(aligned, "turned"), os.path.join(aligned, "no_face_%s.txt" % split)
    no_face = set(_lines(listed))
    p = orientation.upside_down(weights, orientation.features(_crop_paths(aligned, split, names)))
    doubtful = [n for n, q in zip(names, p) if q > orientation.THRESHOLD or n in no_face]
    upright = {}
    if doubtful:
        photos, list_path = os.path.join(turned, "photos", split), os.path.join(turned, split + ".txt")
        for name in doubtful:  # a half turn of the photo as the service reads it (EXIF applied)
            save_rgb(os.path.join(photos, name), load_rgb(os.path.join(ctx.paths["dataset"], split, name))[::-1, ::-1])
        write_text(list_path, "".join(n + "\n" for n in doubtful))
        ctx.runner.run("align", "align", ["--images", photos, "--list", list_path, "--out", turned, "--split", split]
                       + options)
        found = [n for n in doubtful if n not in set(_lines(os.path.join(turned, "no_face_%s.txt" % split)))]
        if found:
            upright = dict(zip(found, orientation.upside_down(weights, orientation.features(
                _crop_paths(turned, split, found)))))
    kept = [n for n in doubtful if n in upright and upright[n] <= orientation.THRESHOLD]
    for name in kept:
        for crop in crops:
            with atomic_path(os.path.join(aligned, crop, split, name)) as tmp:
                shutil.copyfile(os.path.join(turned, crop, split, name), tmp)
    if set(kept) & no_face:
        write_text(listed, "".join(n + "\n" for n in _lines(listed) if n not in kept))
    print("orientation %s: %d of %d crops upside down or without a face, %d of them turned upright by detecting the "
          "turned photo" % (split, len(doubtful), len(names), len(kept)))
    return [[split, n, "%.6f" % q, int(n in no_face), "%.6f" % upright[n] if n in upright else "", int(n in kept)]
            for n, q in zip(names, p)]


@task(help={"crops": "comma-separated crop sizes (default: every size the registry uses)",
            "profile": "settings profile from invoke.yaml (its orientation_fix and template_fix)",
            "workspace": "workspace folder"})
def prealigned(c, crops=None, profile=None, workspace=None):
    """Derive every crop size from input already aligned to the 112x112 template."""
    crops = arguments.crops(crops)
    ctx = context.from_task(c, workspace, profile=profile)
    prealigned_stage(ctx, crops or crops_for(ctx))


@task(help={"detectors": "comma-separated chain of fallbacks (face-alignment, mtcnn, dlib), or auto: "
                         "the original's order without the detectors whose weights are absent",
            "crops": "comma-separated crop sizes (default: every size the registry uses)",
            "blur_retry": "retry on blurred copies when no face is found (the original's rule)",
            "weights": "NAME=DIR,...: folders of single detectors' files (e.g. face-alignment=~/fa)",
            "runner": "local, docker or auto (default: invoke.yaml)", "workspace": "workspace folder"})
def run(c, detectors="auto", crops=None, blur_retry=True, weights=None, runner=None, workspace=None):
    """Detect, take 5 landmarks and warp every train/test image onto the template (the align service)."""
    crops = arguments.crops(crops)
    ctx = context.from_task(c, workspace, runner)
    detect_stage(ctx, crops or crops_for(ctx), detectors, blur_retry,
                 weights.split(",") if weights else ())
