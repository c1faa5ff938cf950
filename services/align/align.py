"""The align service: detect, take 5 landmarks, warp onto the ArcFace template at every size.

    align --images DIR --list FILE --out DIR [--split NAME] [--detectors auto|NAME,NAME...]
          [--crops SIZE,SIZE...] [--weights-root DIR] [--weights NAME=DIR ...]
          [--no-blur-retry] [--chunk-size N] [--config YAML] [--no-verify]

Writes, for split S (in the embed entrypoint's style, shared/schema.py):
    <out>/<crop>/S/<image>   one aligned crop per listed image and crop size (every size of
                             shared/faces/template.py CROP_SIZES by default)
    <out>/no_face_S.txt      images no detector found a face in, even blurred; their crops are
                             the whole image resized (bicubic), as the original did
    <out>/S_faces.csv        image, status (face|blur|none), detector, blur sigma, score, faces
                             found, and the 5 landmarks (x, y) in the source image
    <out>/S_meta.json        detectors + weight sha256, crops, counts, timing, versions;
                             written last, so its presence means the split is complete.
Exit codes as the embed entrypoint: 0 done or up to date, 2 bad arguments or list, 3 unreadable
or missing image, 4 missing or mismatched weights, 5 the framework failed. Work is recorded in
chunks under <out>/.S.partial/ (shared/contract/resumable.py): an interrupted run resumes where it stopped.
"""
import argparse
import os
import platform
import sys
import warnings

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

# MXNet 1.9.1's MKLDNN graph fusion pass can leave outputs in a layout asnumpy() rejects (see
# services/insightface/embed.py; the MKLDNN kernels themselves are correct). MTCNN is small, so
# this service turns MKLDNN off altogether, which also avoids the fusion pass, and keeps its
# landmarks those of the plain CPU kernels.
os.environ.setdefault("MXNET_MKLDNN_ENABLED", "0")
os.environ.setdefault("MXNET_STORAGE_FALLBACK_LOG_VERBOSE", "0")
# face_recognition_models (dlib's files) imports pkg_resources, which warns on every start.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

import numpy as np  # noqa: E402

from services.align import detectors as detectors_mod  # noqa: E402
from services.align import rules  # noqa: E402
from shared.contract import resumable, validate  # noqa: E402
from shared.faces.images import CROP_JPEG_QUALITY, WRITABLE_EXTENSIONS, load_rgb, save_rgb  # noqa: E402
from shared.faces.template import CROP_SIZES  # noqa: E402
from shared.schema import (EXIT_BACKEND, EXIT_USAGE, ContractError, exit_with_code, hash_names,  # noqa: E402
                           require_images)
from shared.storage import write_text  # noqa: E402

ALIGN_VERSION = 1
CSV_HEADER = "image,status,detector,sigma,score,faces," + rules.POINT_COLUMNS


def build_parser():
    parser = argparse.ArgumentParser(prog="align", description=__doc__.split("\n")[0])
    parser.add_argument("--images", required=True, help="folder the list's paths are relative to")
    parser.add_argument("--list", required=True, help="image list (one path a line, or a CSV with an 'image' column)")
    parser.add_argument("--out", required=True, help="output folder (crops go to <out>/<crop>/<split>/)")
    parser.add_argument("--split", default="images", help="split name (e.g. train, test)")
    parser.add_argument("--crops", default=",".join(sorted(CROP_SIZES)), help="comma-separated crop sizes")
    parser.add_argument("--no-blur-retry", action="store_true",
                        help="only the image itself, no retries on blurred copies")
    parser.add_argument("--chunk-size", type=int, default=64, help="images per resumable chunk")
    detectors_mod.add_chain_options(parser)
    return parser


def _check_args(args, names):
    validate.check_split(args.split)
    validate.check_out(args.out)
    crops = args.crops.split(",")
    unknown = [c for c in crops if c not in CROP_SIZES]
    if unknown:
        raise ContractError(EXIT_USAGE, "unknown crop size(s) %s (known: %s)"
                            % (", ".join(unknown), ", ".join(sorted(CROP_SIZES))))
    if args.chunk_size < 1:
        raise ContractError(EXIT_USAGE, "--chunk-size must be >= 1")
    unwritable = [n for n in names if os.path.splitext(n)[1].lower() not in WRITABLE_EXTENSIONS]
    if unwritable:
        raise ContractError(EXIT_USAGE, "cannot write crops named like '%s' (%d listed images): "
                            "crops keep the image's name and are written as %s"
                            % (unwritable[0], len(unwritable), "/".join(WRITABLE_EXTENSIONS)))
    require_images(args.images, names)
    return crops


def _record(name, found):
    """One faces.csv row (as a list) for an image and the chain's result (None: no face)."""
    if found is None:
        return [name, "none", "", "", "", 0] + [""] * 10
    status = "face" if found.sigma == 0 else "blur"
    points = [round(float(v), 3) for v in np.asarray(found.face.points).reshape(-1)]
    return [name, status, found.detector, round(found.sigma, 3), round(found.face.score, 5),
            found.count] + points


def _align_chunk(args, names, crops, chain, progress):
    records = []
    for name in names:
        image = load_rgb(os.path.join(args.images, name))
        sigmas = (0.0,) if args.no_blur_retry else rules.BLUR_SIGMAS
        try:
            found = rules.find_face(image, chain, sigmas)
        except Exception as exc:
            raise ContractError(EXIT_BACKEND, "a detector failed on '%s': %s: %s"
                                % (os.path.join(args.images, name), type(exc).__name__, exc))
        if found is None:
            outputs = rules.plain_resizes(image, crops)
        else:
            outputs = rules.crops_for(image, found.face.points, crops)
        for crop, pixels in outputs.items():
            save_rgb(os.path.join(args.out, crop, args.split, name), pixels, quality=CROP_JPEG_QUALITY)
        records.append(_record(name, found))
        progress.update(1)
    return records


def _versions(chain_objects):
    import cv2

    found = {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__}
    for detector in chain_objects:
        if detector.name == "mtcnn":
            import mxnet

            found["mxnet"] = mxnet.__version__
        elif detector.name == "dlib":
            import dlib

            found["dlib"] = dlib.__version__
        else:
            found.update(detector.versions)
    return found


def _write_outputs(args, records):
    """no_face_S.txt and S_faces.csv; returns the names of the images without a face."""
    no_face = [row[0] for row in records if row[1] == "none"]
    write_text(os.path.join(args.out, "no_face_%s.txt" % args.split), "".join(n + "\n" for n in no_face))
    write_text(os.path.join(args.out, args.split + "_faces.csv"), CSV_HEADER + "\n" + "".join(
        ",".join(str(v) for v in row) + "\n" for row in records))
    return no_face


def _meta(args, chain, notes, records, no_face):
    by_detector = {}
    for row in records:
        if row[1] != "none":
            by_detector[row[2]] = by_detector.get(row[2], 0) + 1
    return {
        "align": ALIGN_VERSION, "split": args.split,
        "detectors": [{"name": found["name"], "what": found["what"], "dir": os.path.abspath(folder),
                       "files": digests, "verified": not args.no_verify}
                      for found, folder, digests in chain],
        "left_out": notes, "blur_sigmas": [] if args.no_blur_retry else [round(s, 3) for s in rules.BLUR_SIGMAS],
        "counts": {"images": len(records), "face": sum(r[1] == "face" for r in records),
                   "blur": sum(r[1] == "blur" for r in records), "no_face": len(no_face),
                   "by_detector": by_detector},
        "files": {"faces": args.split + "_faces.csv", "no_face": "no_face_%s.txt" % args.split},
    }


def _run(args):
    names = validate.read_list(args.list)
    crops = _check_args(args, names)
    chain, notes = detectors_mod.chain_for(args)
    lock = validate.hold_lock(args.out, args.split)
    try:
        _align(args, names, crops, chain, notes)
    finally:
        validate.release_lock(lock)


def _align(args, names, crops, chain, notes):
    content = validate.content_digests(args.images, names)
    bounds = resumable.chunk_bounds(len(names), args.chunk_size)
    fingerprint = {
        "align": ALIGN_VERSION, "images": os.path.abspath(args.images), "list_hash": hash_names(names),
        "content": validate.chunk_tags(content, [(0, len(names))])[0], "names": len(names), "crops": crops, "blur_retry": not args.no_blur_retry,
        "detectors": [[found["name"], digests] for found, _, digests in chain],
        "chunk_size": args.chunk_size}
    meta_path = os.path.join(args.out, args.split + "_meta.json")
    if resumable.up_to_date(meta_path, fingerprint):
        print("align: %s is up to date (%d images)" % (meta_path, len(names)))
        return
    if os.path.isfile(meta_path):  # from a run on other inputs: the split is unfinished until this one ends
        os.remove(meta_path)
    partial = resumable.resume_folder(args.out, args.split, dict(fingerprint, content=None))  # chunks: their own
    objects, load_seconds = resumable.timed_load(
        lambda: [detectors_mod.load_detector(found, folder) for found, folder, _ in chain],
        "the detectors %s" % ", ".join(f["name"] for f, _, _ in chain))
    chunks, computed, seconds = resumable.run_chunks(
        partial, bounds, resumable.JSON, "align " + args.split,
        lambda lo, hi, progress: _align_chunk(args, names[lo:hi], crops, objects, progress),
        tags=validate.chunk_tags(content, bounds))
    records = [row for chunk in chunks for row in chunk]
    no_face = _write_outputs(args, records)
    meta = dict(_meta(args, chain, notes, records, no_face), crops=crops, fingerprint=fingerprint,
                versions=_versions(objects),
                timing={"load_s": round(load_seconds, 3), "align_s": round(seconds, 3), "images_computed": computed,
                        "images_per_s": round(computed / max(seconds, 1e-9), 2)})
    resumable.finish(meta_path, meta, partial)
    print("align %s: %d images, %d with a face (%d after blurring), %d listed in no_face_%s.txt -> %s"
          % (args.split, len(names), len(names) - len(no_face), meta["counts"]["blur"], len(no_face),
             args.split, args.out))


def main(argv=None):
    args = build_parser().parse_args(argv)
    exit_with_code("align", lambda: _run(args), debug=args.debug)


if __name__ == "__main__":
    main()
