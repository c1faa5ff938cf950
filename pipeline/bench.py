"""`bench` collection: accuracy and speed figures printed for people, not asserted in tests."""
import os

from invoke import task

from pipeline.common import load_config, progress, workspace_paths
from shared import registry as registry_mod
from shared import runner as runner_mod
from shared import settings as settings_mod


@task(help={"model": "registry name", "pairs": "pairs.txt (default: invoke.yaml bench.pairs)",
            "images": "folder of 112x112 template crops the pairs name (default: beside pairs.txt)",
            "flip": "sum the original and mirrored embeddings (--no-flip: the original alone)",
            "batch_size": "images per forward pass", "runner": "local, docker or auto (default: invoke.yaml)", "workspace": "workspace folder"})
def lfw_pairs(c, model, pairs=None, images=None, flip=True, batch_size=None, runner=None, workspace=None):
    """10-fold verification accuracy of MODEL on LFW-style pairs (original + flip embeddings)."""
    import numpy as np

    from shared.contract import output_files
    from shared.crops import derive_prealigned
    from shared.storage import read_json, write_text
    from shared.verification import cosine_scores, kfold_accuracy, read_pairs

    config = load_config(workspace)
    pairs_path = settings_mod.under(config["data_dir"], pairs or config["bench"]["pairs"])
    images = images or os.path.join(os.path.dirname(pairs_path), "images")
    pair_list = read_pairs(pairs_path)
    names = sorted(set(p[0] for p in pair_list) | set(p[1] for p in pair_list))
    entry = registry_mod.load().model(model)
    crop = entry["input"]["crop"]
    bench_dir = os.path.join(workspace_paths(config["workspace"])["bench"], "lfw-pairs",
                             os.path.basename(os.path.dirname(os.path.abspath(pairs_path))))
    crops_dir = os.path.join(bench_dir, "crops", crop)
    derive_prealigned(images, names, {crop: crops_dir}, progress=progress("crops " + crop))
    list_path = os.path.join(bench_dir, "images.txt")
    write_text(list_path, "".join(n + "\n" for n in names))
    out = os.path.join(bench_dir, model)
    split = "pairs" if flip else "pairs-noflip"
    runner_mod.get(runner or config["runner"], config).run(entry["family"], "embed", [
        "--model", model, "--images", crops_dir, "--list", list_path, "--out", out, "--split", split,
        "--weights-root", config["weights_dir"], "--workers", config["workers"].get(entry["family"], 1),
        "--batch-size", batch_size or config["bench"]["batch_size"]] + (["--flip"] if flip else []))
    files = output_files(out, split)
    embeddings = np.load(files["embeddings"]) + (np.load(files["flip"]) if flip else 0)
    scores = cosine_scores(embeddings, names, pair_list)
    mean, std = kfold_accuracy(scores, [p[2] for p in pair_list])
    timing = read_json(files["meta"])["timing"]
    print("%s: %d pairs, %d images, %.1f forward passes/s (%s, batch %d)"
          % (model, len(pair_list), len(names), timing["views_per_s"],
             "original + flip views" if flip else "original views", timing["batch_size"]))
    print("accuracy %.4f +- %.4f" % (mean, std))


@task(help={"count": "LFW dev crops to paste onto canvases (default 300)", "seed": "sample and placement seed",
            "detectors": "comma-separated detectors to measure (default: all; those without weights are skipped)",
            "weights": "NAME=DIR,...: folders of single detectors' files (e.g. face-alignment=~/fa)",
            "model": "embedding model for the cosine check", "runner": "local, docker or auto (default: invoke.yaml)", "workspace": "workspace folder"})
def align(c, count=300, seed=2019, detectors=None, weights=None, model="model4_insightface", runner=None,
          workspace=None):
    """Detectors on known answers (LFW crops pasted at a known scale, rotation and offset), the
    24 real no-face images and the Solvay group photo: detection rate, template error, cosine."""
    import numpy as np

    from services.align import detectors as detectors_mod
    from services.align import known
    from shared.contract import output_files
    from shared.images import list_images, load_rgb, save_rgb
    from shared.storage import read_json, write_text
    from shared.template import align as warp

    config = load_config(workspace)
    service_runner = runner_mod.get(runner or config["runner"], config)
    lfw = os.path.join(config["data_dir"], "lfw-112x112-dev", "images")
    root = os.path.join(workspace_paths(config["workspace"])["bench"], "align", "seed-%d" % seed)
    names = sorted(list_images(lfw))
    names = [names[i] for i in sorted(np.random.RandomState(seed).choice(len(names), int(count), replace=False))]
    list_path = os.path.join(root, "images-%d.txt" % len(names))
    write_text(list_path, "".join(n + "\n" for n in names))
    canvases = os.path.join(root, "canvases")
    matrices = known.write_cases(lfw, names, canvases, seed)
    truths = dict((n, known.transform(known.LFW_DEV_POINTS, m)) for n, m in matrices.items())
    overrides = dict(pair.split("=", 1) for pair in weights.split(",")) if weights else {}
    # Default: every detector of the service's chain; one without its weight files answers with
    # exit code 4 and is reported as skipped.
    chain = detectors.split(",") if detectors else detectors_mod.load_config()["auto"]
    entry = registry_mod.load().model(model)

    def run_align(images, listing, out, split, detector, crops):
        args = ["--images", images, "--list", listing, "--out", out, "--split", split, "--detectors", detector,
                "--crops", crops, "--weights-root", config["weights_dir"]]
        for name, folder in overrides.items():
            args += ["--weights", "%s=%s" % (name, folder)]
        service_runner.run("align", "align", args)
        return read_json(os.path.join(out, split + "_meta.json"))

    def embed(images, out):
        service_runner.run(entry["family"], "embed", [
            "--model", model, "--images", images, "--list", list_path, "--out", out, "--split", "bench",
            "--weights-root", config["weights_dir"]])
        return np.load(output_files(out, "bench")["embeddings"])

    original = embed(lfw, os.path.join(root, "embed-original"))
    ideal_dir = os.path.join(root, "known-points", "112x112", "canvases")
    for name in names:  # the canvas aligned with its true landmarks: the best any detector can do
        path = os.path.join(ideal_dir, name)
        if not os.path.isfile(path):
            save_rgb(path, warp(load_rgb(os.path.join(canvases, name)), truths[name]), quality=98)
    ideal_embeddings = embed(ideal_dir, os.path.join(root, "embed-known-points"))
    ideal = known.cosines(original, ideal_embeddings)
    lines = ["%-16s detected 100.0%%, template error 0.00 px, cosine>=0.9 %5.1f%% (mean %.3f): "
             "the canvases aligned with their true landmarks (upper bound)"
             % ("known-points", 100.0 * (ideal >= 0.9).mean(), ideal.mean())]
    noface_dir = os.path.join(config["data_dir"], "aivivn-2019", "no-face-test-images")
    noface_list = os.path.join(root, "no-face.txt")
    write_text(noface_list, "".join(n + "\n" for n in list_images(noface_dir)))
    photo_dir = os.path.join(config["data_dir"], "photos")
    photo_list = os.path.join(root, "photos.txt")
    write_text(photo_list, "".join(n + "\n" for n in list_images(photo_dir)))
    measured = []
    for detector in chain:
        out = os.path.join(root, detector)
        try:
            meta = run_align(canvases, list_path, out, "canvases", detector, "112x112")
        except runner_mod.ServiceError as exc:
            if exc.code != 4:
                raise
            lines.append("%-16s skipped: its weight files are absent (see the service's message above)" % detector)
            continue
        measured.append(detector)
        faces = known.read_faces(os.path.join(out, "canvases_faces.csv"))
        hits = [n for n in names if faces[n][0] != "none"]
        errors = [known.template_error(faces[n][2], truths[n]) for n in hits]
        realigned = embed(os.path.join(out, "112x112", "canvases"), os.path.join(out, "embed"))
        cos, cos_known = known.cosines(original, realigned), known.cosines(ideal_embeddings, realigned)
        noface = run_align(noface_dir, noface_list, out, "no-face", detector, "112x112")["counts"]
        run_align(photo_dir, photo_list, out, "photos", detector, "112x112")
        photo = known.read_faces(os.path.join(out, "photos_faces.csv"))
        lines.append("%-16s detected %5.1f%% (%d after blurring), template error %.2f px (median %.2f), "
                     "cosine>=0.9 %5.1f%% (mean %.3f; with the known-points crop %5.1f%%), %.1f images/s; "
                     "no-face images: %d of %d get a face; Solvay photo: %s faces"
                     % (detector, 100.0 * len(hits) / len(names), meta["counts"]["blur"],
                        np.mean(errors) if errors else float("nan"), np.median(errors) if errors else float("nan"),
                        100.0 * (cos >= 0.9).mean(), cos.mean(), 100.0 * (cos_known >= 0.9).mean(),
                        meta["timing"]["images_per_s"],
                        noface["images"] - noface["no_face"], noface["images"],
                        ", ".join(str(v[3]) for v in photo.values())))
    chained = run_align(noface_dir, noface_list, os.path.join(root, "chain"), "no-face", ",".join(measured), "112x112")
    print("align benchmark: %d LFW dev crops on %dx%d canvases, scale %.1f-%.1f, rotation +-%d deg, seed %d; "
          "cosine of %s embeddings with the original crop's" % (len(names), known.CANVAS, known.CANVAS,
                                                                 known.SCALES[0], known.SCALES[1], known.DEGREES,
                                                                 seed, model))
    for line in lines:
        print(line)
    print("chain %s on the %d no-face images: %d get a face (%d after blurring), %d listed in no_face"
          % (",".join(measured), chained["counts"]["images"], chained["counts"]["images"] - chained["counts"]["no_face"],
             chained["counts"]["blur"], chained["counts"]["no_face"]))
