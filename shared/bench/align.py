"""The align benchmark (`invoke bench.align`): every detector on known answers (LFW crops pasted
onto canvases at a known scale, rotation and offset), the real no-face images and a group photo.
Figures: detection rate, template error, cosine of the re-aligned crop's embedding with the
original's, speed. Runs the align and embed services through a runner; prints, asserts nothing.
"""
import os

import numpy as np
import yaml

from shared.faces import known_faces as known
from shared.faces.images import CROP_JPEG_QUALITY, list_images, load_rgb, save_rgb
from shared.faces.template import align as warp
from shared.running.runner import ServiceError
from shared.running.settings import ROOT
from shared.schema import EXIT_WEIGHTS, output_files
from shared.storage import read_json, write_text


class AlignBench(object):
    def __init__(self, runner, root, weights_dir, entry, overrides=None):
        self.runner, self.root, self.weights_dir, self.entry = runner, root, weights_dir, entry
        self.overrides = overrides or {}

    def write_list(self, name, names):
        path = os.path.join(self.root, name)
        write_text(path, "".join(n + "\n" for n in names))
        return path

    def align(self, images, listing, out, split, detector):
        args = ["--images", images, "--list", listing, "--out", out, "--split", split, "--detectors", detector,
                "--crops", "112x112", "--weights-root", self.weights_dir]
        for name, folder in sorted(self.overrides.items()):
            args += ["--weights", "%s=%s" % (name, folder)]
        self.runner.run("align", "align", args)
        return read_json(os.path.join(out, split + "_meta.json"))

    def embed(self, images, listing, out):
        self.runner.run(self.entry["family"], "embed", [
            "--model", self.entry["name"], "--images", images, "--list", listing, "--out", out,
            "--split", "bench", "--weights-root", self.weights_dir])
        return np.load(output_files(out, "bench")["embeddings"])


def detector_chain():
    """The align service's `auto` chain, read from its detector registry (as data: the service's
    code runs only in its own environment)."""
    with open(os.path.join(ROOT, "services", "align", "detectors.yaml")) as f:
        return yaml.safe_load(f)["auto"]


def sample(lfw, count, seed):
    names = sorted(list_images(lfw))
    return [names[i] for i in sorted(np.random.RandomState(seed).choice(len(names), int(count), replace=False))]


def known_points_line(bench, canvases, names, truths, listing, original):
    """The canvases aligned with their true landmarks: the best any detector can do."""
    ideal_dir = os.path.join(bench.root, "known-points", "112x112", "canvases")
    for name in names:
        path = os.path.join(ideal_dir, name)
        if not os.path.isfile(path):
            save_rgb(path, warp(load_rgb(os.path.join(canvases, name)), truths[name]), quality=CROP_JPEG_QUALITY)
    ideal = bench.embed(ideal_dir, listing, os.path.join(bench.root, "embed-known-points"))
    cos = known.cosines(original, ideal)
    line = ("%-16s detected 100.0%%, template error 0.00 px, cosine>=0.9 %5.1f%% (mean %.3f): "
            "the canvases aligned with their true landmarks (upper bound)" % ("known-points", 100.0 * (cos >= 0.9).mean(),
                                                                              cos.mean()))
    return ideal, line


def detector_line(bench, detector, cases, extra):
    """One detector's figures; None when its weight files are absent (exit code 4)."""
    canvases, names, truths, listing, original, ideal = cases
    out = os.path.join(bench.root, detector)
    meta = bench.align(canvases, listing, out, "canvases", detector)
    faces = known.read_faces(os.path.join(out, "canvases_faces.csv"))
    hits = [n for n in names if faces[n][0] != "none"]
    errors = [known.template_error(faces[n][2], truths[n]) for n in hits]
    realigned = bench.embed(os.path.join(out, "112x112", "canvases"), listing, os.path.join(out, "embed"))
    cos, cos_known = known.cosines(original, realigned), known.cosines(ideal, realigned)
    noface = bench.align(extra["noface_dir"], extra["noface_list"], out, "no-face", detector)["counts"]
    bench.align(extra["photo_dir"], extra["photo_list"], out, "photos", detector)
    photo = known.read_faces(os.path.join(out, "photos_faces.csv"))
    mean_error = np.mean(errors) if errors else float("nan")
    median_error = np.median(errors) if errors else float("nan")
    return ("%-16s detected %5.1f%% (%d after blurring), template error %.2f px (median %.2f), "
            "cosine>=0.9 %5.1f%% (mean %.3f; with the known-points crop %5.1f%%), %.1f images/s; "
            "no-face images: %d of %d get a face; Solvay photo: %s faces"
            % (detector, 100.0 * len(hits) / len(names), meta["counts"]["blur"], mean_error, median_error,
               100.0 * (cos >= 0.9).mean(), cos.mean(), 100.0 * (cos_known >= 0.9).mean(),
               meta["timing"]["images_per_s"], noface["images"] - noface["no_face"], noface["images"],
               ", ".join(str(v[3]) for v in photo.values())))


def run(bench, data_dir, chain, count, seed):
    """Every detector of `chain`; one whose weight files are absent (exit code 4) is reported as skipped.
    Returns (the sampled crop names, the detectors measured)."""
    lfw = os.path.join(data_dir, "lfw-112x112-dev", "images")
    names = sample(lfw, count, seed)
    listing = bench.write_list("images-%d.txt" % len(names), names)
    canvases = os.path.join(bench.root, "canvases")
    matrices = known.write_cases(lfw, names, canvases, seed)
    truths = dict((n, known.transform(known.LFW_DEV_POINTS, m)) for n, m in matrices.items())
    original = bench.embed(lfw, listing, os.path.join(bench.root, "embed-original"))
    ideal, line = known_points_line(bench, canvases, names, truths, listing, original)
    lines, measured = [line], []
    extra = {"noface_dir": os.path.join(data_dir, "aivivn-2019", "no-face-test-images"),
             "photo_dir": os.path.join(data_dir, "photos")}
    extra["noface_list"] = bench.write_list("no-face.txt", list_images(extra["noface_dir"]))
    extra["photo_list"] = bench.write_list("photos.txt", list_images(extra["photo_dir"]))
    for detector in chain:
        try:
            lines.append(detector_line(bench, detector, (canvases, names, truths, listing, original, ideal), extra))
            measured.append(detector)
        except ServiceError as exc:
            if exc.code != EXIT_WEIGHTS:
                raise
            lines.append("%-16s skipped: its weight files are absent (see the service's message above)" % detector)
    chained = bench.align(extra["noface_dir"], extra["noface_list"], os.path.join(bench.root, "chain"), "no-face",
                          ",".join(measured))["counts"]
    print("align benchmark: %d LFW dev crops on %dx%d canvases, scale %.1f-%.1f, rotation +-%d deg, seed %d; "
          "cosine of %s embeddings with the original crop's" % (len(names), known.CANVAS, known.CANVAS, known.SCALES[0],
                                                                 known.SCALES[1], known.DEGREES, seed, bench.entry["name"]))
    for line in lines:
        print(line)
    print("chain %s on the %d no-face images: %d get a face (%d after blurring), %d listed in no_face"
          % (",".join(measured), chained["images"], chained["images"] - chained["no_face"], chained["blur"],
             chained["no_face"]))
    return names, measured
