"""`invoke enroll`: a folder of named people -> a gallery that `invoke identify` names faces with.

The gallery is a workspace of its own: photos/ (the enrolled photos under opaque ids), aligned/
and embeddings/ (a split per batch of photos enrolled together), people.csv and photos.csv
(pipeline/people.py), settings.json (the fusion weights and unknown score chosen on the
gallery's validation folds: the head service's `gallery choose`) and gallery.json, written
last: what makes the folder a gallery. A photo with several faces gives its largest (as the
align service does for every photo); one without a face is left out and listed in people.csv.
"""
import hashlib
import os

from invoke import task

from pipeline import arguments, context
from pipeline import people as people_mod
from pipeline.align import crops_for
from pipeline.embed import embed_args
from pipeline.plan import present_models
from shared.storage import read_json, sha256_file, write_json

GALLERY_FILE = "gallery.json"
GALLERY_VERSION = 1


def check_gallery_folder(folder):
    """A gallery, or an empty or new folder to become one; PeopleError for anything else."""
    if os.path.isfile(folder):
        raise people_mod.PeopleError("%s is a file, not a gallery folder" % folder)
    if os.path.isdir(folder) and not os.path.isfile(os.path.join(folder, GALLERY_FILE)):
        inside = [n for n in os.listdir(folder) if n not in ("photos", "aligned", "embeddings", "engines")
                  and not n.startswith(".")]  # .enroll, the lock
        if inside:
            raise people_mod.PeopleError("%s is not a gallery (no %s; it holds %s): enroll into a new or empty folder"
                                         % (folder, GALLERY_FILE, ", ".join(sorted(inside)[:3])))


def book_photos(root, found, labels, previous, photos_dir):
    """photos.csv rows for every photo of the people folder: unchanged ones as booked before,
    the others placed under photos/ for a new batch (its name: a hash of their ids)."""
    booked = dict(((row["source"], row["sha256"]), row) for row in previous)
    rows, new = [], []
    for name in sorted(found):
        for source in found[name]:
            digest = sha256_file(os.path.join(root, source))
            row = booked.get((source, digest))
            if row is None or int(row["label"]) != labels[name]:
                row = {"id": people_mod.photo_id(labels[name], source, digest), "label": labels[name],
                       "source": source, "sha256": digest, "batch": None, "status": "", "faces": ""}
                new.append(row)
            rows.append(row)
    batch = "b" + hashlib.sha256("".join(r["id"] for r in new).encode("utf-8")).hexdigest()[:10]
    os.makedirs(photos_dir, exist_ok=True)
    for row in new:
        people_mod.place_photo(os.path.join(root, row["source"]), os.path.join(photos_dir, row["id"]))
        row["batch"] = batch
    return rows, new, batch


def align_batch(ctx, rows, batch, crops):
    """The align service on a new batch (the largest face of each photo); each row's status
    (face or none) and how many faces its photo holds."""
    aligned = ctx.paths["aligned"]
    list_path = os.path.join(aligned, batch + ".txt")
    people_mod.write_rows(list_path, ["image"], [{"image": r["id"]} for r in rows])
    ctx.runner.run("align", "align", ["--images", os.path.join(ctx.workspace, "photos"), "--list", list_path,
                                      "--out", aligned, "--split", batch, "--crops", ",".join(crops),
                                      "--weights-root", ctx.weights_root])
    found = dict((r["image"], r) for r in people_mod.read_rows(os.path.join(aligned, batch + "_faces.csv")))
    for row in rows:
        row["status"] = "none" if found[row["id"]]["status"] == "none" else "face"
        row["faces"] = found[row["id"]]["faces"]


def people_rows(root, found, labels, previous_people, photos):
    """people.csv: every person ever enrolled; PeopleError for a person of the folder whose
    photos show no face at all."""
    rows = []
    for name, label in sorted(labels.items(), key=lambda kv: kv[1]):
        mine = [p for p in photos if int(p["label"]) == label]
        used = [p for p in mine if p["status"] == "face"]
        if name in found and not used:
            raise people_mod.PeopleError("%s: no face found in any of the %d photos of this person"
                                         % (os.path.join(root, name), len(mine)))
        why = ["no face: " + os.path.basename(p["source"]) for p in mine if p["status"] != "face"]
        why += ["largest of %s faces used: %s" % (p["faces"], os.path.basename(p["source"]))
                for p in used if int(p["faces"] or 0) > 1]
        if name not in found:
            why.append("folder gone: not identified any more, label kept")
        rows.append({"label": label, "name": name, "images": len(used) if name in found else 0,
                     "left_out": len(mine) - len(used), "why": "; ".join(why)})
    return rows


def enroll_stage(ctx, root, models=None):
    """Enroll the people folder `root` into the gallery ctx.workspace; returns gallery.json's content."""
    gallery = ctx.workspace
    check_gallery_folder(gallery)
    found = people_mod.scan(root)
    chosen = present_models(ctx, models)
    previous_people = people_mod.read_rows(os.path.join(gallery, "people.csv"))
    labels = people_mod.labels_for(previous_people, found)
    photos, new, batch = book_photos(root, found, labels, people_mod.read_rows(os.path.join(gallery, "photos.csv")),
                                     os.path.join(gallery, "photos"))
    crops = crops_for(ctx, chosen)
    if new:
        align_batch(ctx, new, batch, crops)
    people = people_rows(root, found, labels, previous_people, photos)
    for name in sorted(set(r["batch"] for r in photos)):
        for model in chosen:
            ctx.runner.run(ctx.registry.model(model)["family"], "embed", embed_args(ctx, model, name))
    pending = os.path.join(gallery, ".enroll")
    people_mod.write_rows(os.path.join(pending, "photos.csv"), people_mod.PHOTO_FIELDS, photos)
    ctx.runner.run("head", "gallery", ["choose", "--models", ",".join(chosen), "--embeddings", ctx.paths["embeddings"],
                                       "--photos", os.path.join(pending, "photos.csv"), "--seed", ctx.seed,
                                       "--out", os.path.join(pending, "settings.json")])
    people_mod.write_rows(os.path.join(gallery, "people.csv"), people_mod.PEOPLE_FIELDS, people)
    for name in ("photos.csv", "settings.json"):
        os.replace(os.path.join(pending, name), os.path.join(gallery, name))
    os.rmdir(pending)
    settings = read_json(os.path.join(gallery, "settings.json"))
    summary = {"gallery": GALLERY_VERSION, "profile": ctx.profile_name, "models": chosen, "engine": ctx.engine,
               "crops": crops, "people": sum(1 for p in people if p["images"]),
               "photos": len(photos), "faces": sum(1 for p in photos if p["status"] == "face"),
               "weights": settings["weights"], "unknown_score": settings["threshold"],
               "validation_map5": settings["validation_map5"]}
    write_json(os.path.join(gallery, GALLERY_FILE), summary)
    several = sum(1 for p in new if int(p["faces"] or 0) > 1)
    print("[enroll] %d people, %d photos (%d new: %d without a face, left out; %d with several faces, the largest "
          "used) -> %s" % (summary["people"], len(photos), len(new), sum(1 for p in new if p["status"] != "face"),
                           several, gallery))
    print("[enroll] unknown score %.2f, fusion %s (%s)" % (
        settings["threshold"], settings["weights"], "validation MAP@5 %.4f on the gallery's folds"
        % settings["validation_map5"] if settings["validation_map5"] is not None else "the default: no stranger "
        "in the gallery's folds to choose it with"))
    return summary


@task(help={"people": "folder with one folder of photos per person, named after them",
            "gallery": "the gallery folder (default: <workspace>/gallery)",
            "profile": "settings profile whose models and engine the gallery uses (default: best)",
            "models": "comma-separated registry names (default: the profile's)",
            "runner": "local, docker or auto (default: invoke.yaml)"})
def enroll(c, people, gallery=None, profile="best", models=None, runner=None):
    """Enroll a folder of named people into a gallery; a rerun processes only what changed."""
    models = models and ",".join(arguments.models(models))
    base = context.from_task(c, None, runner, profile, lock=False)
    ctx = context.from_task(c, gallery or os.path.join(base.workspace, "gallery"), runner, profile)
    enroll_stage(ctx, os.path.abspath(people), models)
