"""`invoke identify PHOTOS...`: every face of each photo named against an enrolled gallery.

The photos (files, or folders searched for images) are placed under <out>/.work/photos/; the
align service's `faces` program finds every face and aligns it; each of the gallery's models
embeds the faces with the gallery's engine (one process per model for all the photos); the head
service's `gallery identify` ranks the gallery's people for each face with the gallery's fusion
and unknown score. Writes <out>/faces.csv (a row per face, and one per photo without a face)
and <out>/index.html (pipeline/identify_page.py).
"""
import os

from invoke import task

from pipeline import context
from pipeline import people as people_mod
from pipeline.enroll import GALLERY_FILE
from pipeline.embed import embed_args
from pipeline.weights import PRESENT, model_status
from shared.faces.images import IMAGE_EXTENSIONS, list_images
from shared.method.ensemble import UNKNOWN
from shared.storage import read_json, sha256_file

FACE_FIELDS = (["photo", "face", "left", "top", "right", "bottom", "detection_score"]
               + ["%s%d" % (kind, k) for k in range(1, 6) for kind in ("name", "score")] + ["decision"])
NO_FACE = "no face"


def read_gallery(folder, registry, weights_root):
    """gallery.json of an enrolled gallery whose models' weights are all present; ValueError otherwise."""
    path = os.path.join(folder, GALLERY_FILE)
    if not os.path.isfile(path):
        raise people_mod.PeopleError("%s is not a gallery (no %s): run `invoke enroll --people DIR --gallery %s` first"
                                     % (folder, GALLERY_FILE, folder))
    gallery = read_json(path)
    for name in gallery["models"]:
        status, where, detail = model_status(registry.model(name), weights_root)
        if status != PRESENT:
            raise people_mod.PeopleError("%s was enrolled with %s, whose weights are %s in %s (%s): restore them or "
                                         "enroll again with other --models" % (folder, name, status, where, detail))
    return gallery


def photo_paths(given):
    """The photos named on the command line, folders searched for images; each checked to exist."""
    found = []
    for path in given:
        if os.path.isdir(path):
            found += [os.path.join(path, name) for name in list_images(path)]
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise people_mod.PeopleError("%s: no such photo or folder" % path)
    if not found:
        raise people_mod.PeopleError("no photos (%s) in %s" % (" ".join(IMAGE_EXTENSIONS), ", ".join(given)))
    return found


def stage_photos(photos, folder):
    """Each photo placed as <folder>/<NNNNN><ext> (the order given); returns those names."""
    names = []
    for index, path in enumerate(photos):
        name = "%05d%s" % (index, people_mod.crop_extension(path))
        target = os.path.join(folder, name)
        if os.path.exists(target) and sha256_file(target) != sha256_file(path):
            os.remove(target)  # another photo held this place in an earlier call
        os.makedirs(folder, exist_ok=True)
        people_mod.place_photo(path, target)
        names.append(name)
    return names


def _name(names_of, label):
    return "unknown" if int(label) == UNKNOWN else names_of[int(label)]


def face_rows(photos, staged, faces, ranked, names_of):
    """faces.csv rows: the detector's faces with the ranked people and the decision."""
    by_crop = dict((row["crop"], row) for row in ranked)
    original = dict(zip(staged, photos))
    rows = []
    for face in faces:
        row = {"photo": original[face["photo"]], "face": face["face"]}
        if face["face"] == "0":
            rows.append(dict(row, decision=NO_FACE))
            continue
        row.update(left=face["left"], top=face["top"], right=face["right"], bottom=face["bottom"],
                   detection_score=face["score"])
        found = by_crop[face["crop"]]
        for k in range(1, 6):
            if found.get("label%d" % k) not in (None, ""):
                row["name%d" % k], row["score%d" % k] = _name(names_of, found["label%d" % k]), found.get("score%d" % k)
        row["decision"] = _name(names_of, found["decision"])
        rows.append(dict(row, crop=face["crop"], label1=found["label1"]))
    return rows


def identify_stage(ctx, photos, out, transductive=None):
    """faces.csv and index.html under `out` for `photos` against the gallery ctx.workspace;
    with `transductive` (a profile), ranked by a whole run of the original's method
    (pipeline/transductive.py) instead of the gallery's prototypes."""
    from pipeline.identify_page import write_page

    gallery = read_gallery(ctx.workspace, ctx.registry, ctx.weights_root)
    photos = photo_paths(photos)
    work = os.path.join(out, ".work")
    staged = stage_photos(photos, os.path.join(work, "photos"))
    people_mod.write_rows(os.path.join(work, "photos.txt"), ["image"], [{"image": n} for n in staged])
    crops = sorted(set(ctx.registry.model(m)["input"]["crop"] for m in gallery["models"]) | {"112x112"})
    faces_dir = os.path.join(work, "faces")
    ctx.runner.run("align", "faces", ["--images", os.path.join(work, "photos"), "--list",
                                      os.path.join(work, "photos.txt"), "--out", faces_dir, "--crops", ",".join(crops),
                                      "--weights-root", ctx.weights_root])
    faces = people_mod.read_rows(os.path.join(faces_dir, "faces.csv"))
    ranked, found = [], [f["crop"] for f in faces if f["face"] != "0"]
    if found and transductive:
        from pipeline.transductive import transductive_ranking

        ranked = transductive_ranking(ctx, gallery, faces_dir, found, work, transductive)
    elif found:
        ranked = _rank(ctx, gallery, work, faces_dir)
    names_of = dict((int(r["label"]), r["name"]) for r in people_mod.read_rows(os.path.join(ctx.workspace,
                                                                                             "people.csv")))
    rows = face_rows(photos, staged, faces, ranked, names_of)
    people_mod.write_rows(os.path.join(out, "faces.csv"), FACE_FIELDS, [dict((k, r.get(k, "")) for k in FACE_FIELDS)
                                                                        for r in rows])
    page = write_page(out, ctx.workspace, rows, dict(zip(photos, staged)), os.path.join(work, "photos"),
                      "112x112" if "112x112" in crops else crops[0])
    named = sum(1 for r in rows if r["decision"] not in ("unknown", NO_FACE))
    print("[identify] %d photos, %d faces: %d named, %d unknown; %d photos without a face -> %s"
          % (len(photos), sum(1 for r in rows if r["decision"] != NO_FACE), named,
             sum(1 for r in rows if r["decision"] == "unknown"), sum(1 for r in rows if r["decision"] == NO_FACE),
             os.path.join(out, "faces.csv")))
    print("[identify] page: %s" % page)
    return rows


def _rank(ctx, gallery, work, faces_dir):
    """Every gallery model embeds the faces; the head service ranks the people for them."""
    for name in gallery["models"]:
        entry = ctx.registry.model(name)
        args = embed_args(ctx, name, "faces")
        args[args.index("--images") + 1] = os.path.join(faces_dir, entry["input"]["crop"], "faces")
        args[args.index("--list") + 1] = os.path.join(faces_dir, "faces.txt")
        args[args.index("--out") + 1] = os.path.join(work, "embeddings", name)
        ctx.runner.run(entry["family"], "embed", args)
    ranked = os.path.join(work, "ranked.csv")
    ctx.runner.run("head", "gallery", ["identify", "--models", ",".join(gallery["models"]), "--embeddings",
                                       ctx.paths["embeddings"], "--photos", os.path.join(ctx.workspace, "photos.csv"),
                                       "--settings", os.path.join(ctx.workspace, "settings.json"),
                                       "--queries", os.path.join(work, "embeddings"), "--out", ranked])
    return people_mod.read_rows(ranked)


@task(iterable=["photos"], help={
    "photos": "a photo or a folder of photos (repeat --photos for more)",
    "gallery": "the gallery `invoke enroll` made (default: <workspace>/gallery)",
    "out": "where faces.csv and index.html go (default: <workspace>/identified)",
    "transductive": "rank the faces with a whole run of the original's method, the faces its test set",
    "profile": "with --transductive: the run's profile (default: the gallery's)",
    "runner": "local, docker or auto (default: invoke.yaml)"})
def identify(c, photos, gallery=None, out=None, transductive=False, profile=None, runner=None):
    """Find every face in the photos and name it against the gallery (or `unknown`)."""
    base = context.from_task(c, None, runner, lock=False)
    folder = os.path.abspath(gallery or os.path.join(base.workspace, "gallery"))
    path = os.path.join(folder, GALLERY_FILE)
    enrolled = read_json(path) if os.path.isfile(path) else {}
    ctx = context.from_task(c, folder, runner, enrolled.get("profile"), enrolled.get("engine"), lock=bool(enrolled))
    if not photos:
        raise people_mod.PeopleError("name the photos to identify: --photos FILE_OR_FOLDER (repeatable)")
    out = os.path.abspath(out or os.path.join(base.workspace, "identified"))
    ctx.config["also_writable"] = [out]  # a docker runner's containers write the faces and embeddings there
    identify_stage(ctx, photos, out, (profile or ctx.profile_name) if transductive else None)
