"""The align service's `faces` program: every face of each photo, not only the largest, each
warped onto the template (group photos; `invoke identify`).

    faces --images DIR --list FILE --out DIR [--detectors auto|NAME,NAME...] [--crops SIZE,...]
          [--weights-root DIR] [--weights NAME=DIR ...] [--chunk-size N] [--config YAML] [--no-verify]

For every listed photo the chain's first detector that finds a face gives all the faces it
finds, numbered left to right (a fallback detector is loaded when a photo first needs it). No blurred retries: a blurred copy finds the largest face of a
crowd, not the crowd. Writes, in the align program's style:
    <out>/<crop>/faces/<P>-<F>.jpg   the crop of face F (1, 2, ...) of the P-th listed photo
    <out>/faces.csv                  photo, face (0: none found), crop, detector, score, box
                                     (x1, y1, x2, y2) and the 5 landmarks, in the photo's pixels
    <out>/faces.txt                  the crops' names, one a line (the embed entrypoint's list)
    <out>/faces_meta.json            detectors + sha256, counts, timing; written last
Exit codes as the align program. Work is saved in chunks of photos: an interrupted run resumes.
"""
import argparse
import csv
import io
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
os.environ.setdefault("MXNET_MKLDNN_ENABLED", "0")  # as the align program (align.py says why)
os.environ.setdefault("MXNET_STORAGE_FALLBACK_LOG_VERBOSE", "0")

import numpy as np  # noqa: E402

from services.align import detectors as detectors_mod  # noqa: E402
from services.align import rules  # noqa: E402
from shared.contract import resumable, validate  # noqa: E402
from shared.faces.images import CROP_JPEG_QUALITY, load_rgb, save_rgb  # noqa: E402
from shared.faces.template import CROP_SIZES  # noqa: E402
from shared.schema import (EXIT_BACKEND, EXIT_USAGE, ContractError, exit_with_code, hash_names,  # noqa: E402
                           require_images)
from shared.storage import write_text  # noqa: E402

FACES_VERSION = 1
SPLIT = "faces"  # the crops' folder under each crop size, and the outputs' prefix
CSV_HEADER = "photo,face,crop,detector,score,left,top,right,bottom," + rules.POINT_COLUMNS


def build_parser():
    parser = argparse.ArgumentParser(prog="faces", description=__doc__.split("\n")[0])
    parser.add_argument("--images", required=True, help="folder the list's paths are relative to")
    parser.add_argument("--list", required=True, help="photo list (one path a line, or a CSV with an 'image' column)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--crops", default="112x112", help="comma-separated crop sizes")
    parser.add_argument("--chunk-size", type=int, default=8, help="photos per resumable chunk")
    detectors_mod.add_chain_options(parser)
    return parser


class Fallback(object):
    """A detector of the chain after the first, loaded when a photo first needs it: most photos
    of people show a face to the first, and each framework takes seconds to load."""

    def __init__(self, entry, folder):
        self.name, self.entry, self.folder, self.loaded = entry["name"], entry, folder, None

    def detect(self, image):
        if self.loaded is None:
            self.loaded, _ = resumable.timed_load(lambda: detectors_mod.load_detector(self.entry, self.folder),
                                                  "the detector %s" % self.name)
        return self.loaded.detect(image)


def every_face(image, detectors):
    """(detector name, its faces left to right) of the first detector that finds any; (None, [])."""
    for detector in detectors:
        faces = detector.detect(image)
        if faces:
            return detector.name, sorted(faces, key=lambda f: (f.box[0] + f.box[2], f.box[1] + f.box[3]))
    return None, []


def _rows(args, index, name, crops, detectors):
    """The faces.csv rows of one photo; writes its faces' crops."""
    image = load_rgb(os.path.join(args.images, name))
    try:
        detector, faces = every_face(image, detectors)
    except Exception as exc:
        raise ContractError(EXIT_BACKEND, "a detector failed on '%s': %s: %s"
                            % (os.path.join(args.images, name), type(exc).__name__, exc))
    if not faces:
        return [[name, 0, "", "", ""] + [""] * 14]
    rows = []
    for number, face in enumerate(faces, 1):
        crop_name = "%05d-%02d.jpg" % (index, number)
        for crop, pixels in rules.crops_for(image, face.points, crops).items():
            save_rgb(os.path.join(args.out, crop, SPLIT, crop_name), pixels, quality=CROP_JPEG_QUALITY)
        numbers = [round(float(v), 2) for v in np.asarray(face.box).reshape(-1)[:4]]
        numbers += [round(float(v), 2) for v in np.asarray(face.points).reshape(-1)]
        rows.append([name, number, crop_name, detector, round(float(face.score), 5)] + numbers)
    return rows


def _chunk(args, names, lo, crops, detectors, progress):
    rows = []
    for offset, name in enumerate(names):
        rows.extend(_rows(args, lo + offset, name, crops, detectors))
        progress.update(1)
    return rows


def _run(args):
    names = validate.read_list(args.list)
    validate.check_out(args.out)
    crops = args.crops.split(",")
    unknown = [c for c in crops if c not in CROP_SIZES]
    if unknown or args.chunk_size < 1:
        raise ContractError(EXIT_USAGE, "unknown crop size(s) %s (known: %s)" % (", ".join(unknown), ", ".join(
            sorted(CROP_SIZES))) if unknown else "--chunk-size must be >= 1")
    require_images(args.images, names)
    chain, notes = detectors_mod.chain_for(args)
    lock = validate.hold_lock(args.out, SPLIT)
    try:
        _faces(args, names, crops, chain, notes)
    finally:
        validate.release_lock(lock)


def _faces(args, names, crops, chain, notes):
    content = validate.content_digests(args.images, names)
    bounds = resumable.chunk_bounds(len(names), args.chunk_size)
    fingerprint = {"faces": FACES_VERSION, "images": os.path.abspath(args.images), "list_hash": hash_names(names),
                   "content": validate.chunk_tags(content, [(0, len(names))])[0], "crops": crops,
                   "detectors": [[found["name"], digests] for found, _, digests in chain], "chunk_size": args.chunk_size}
    meta_path = os.path.join(args.out, SPLIT + "_meta.json")
    if resumable.up_to_date(meta_path, fingerprint):
        print("faces: %s is up to date (%d photos)" % (meta_path, len(names)))
        return
    if os.path.isfile(meta_path):
        os.remove(meta_path)
    partial = resumable.resume_folder(args.out, SPLIT, dict(fingerprint, content=None))
    first, load_seconds = resumable.timed_load(lambda: detectors_mod.load_detector(chain[0][0], chain[0][1]),
                                               "the detector %s" % chain[0][0]["name"])
    objects = [first] + [Fallback(found, folder) for found, folder, _ in chain[1:]]
    chunks, computed, seconds = resumable.run_chunks(
        partial, bounds, resumable.JSON, "faces",
        lambda lo, hi, progress: _chunk(args, names[lo:hi], lo, crops, objects, progress),
        tags=validate.chunk_tags(content, bounds))
    rows = [row for chunk in chunks for row in chunk]
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(CSV_HEADER.split(","))
    writer.writerows(rows)
    write_text(os.path.join(args.out, SPLIT + ".csv"), table.getvalue())
    write_text(os.path.join(args.out, SPLIT + ".txt"), "".join(row[2] + "\n" for row in rows if row[1]))
    found = sum(1 for row in rows if row[1])
    meta = {"faces": FACES_VERSION, "fingerprint": fingerprint, "crops": crops, "left_out": notes,
            "detectors": [{"name": f["name"], "files": digests} for f, _, digests in chain],
            "counts": {"photos": len(names), "faces": found, "photos_without_face": sum(1 for r in rows if not r[1])},
            "timing": {"load_s": round(load_seconds, 3), "faces_s": round(seconds, 3), "photos_computed": computed}}
    resumable.finish(meta_path, meta, partial)
    print("faces: %d photos, %d faces, %d photos without a face -> %s"
          % (len(names), found, meta["counts"]["photos_without_face"], args.out))


def main(argv=None):
    args = build_parser().parse_args(argv)
    exit_with_code("faces", lambda: _run(args), debug=args.debug)


if __name__ == "__main__":
    main()
