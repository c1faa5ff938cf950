"""The embed contract: the one entrypoint every backbone service exposes.

    embed --model NAME --images DIR --list FILE --out DIR [--split NAME] [--weights DIR]
          [--flip] [--augment N --seed S] [--batch-size B] [--shard I/N]

Writes into --out, for split S (or S.shard-I-of-N when sharded):
    S.npy        float32 N x D, row i = line i of the list
    S_flip.npy   float32 N x D, embeddings of the mirrored images      (--flip)
    S_aug.npy    float32 N x A x D, A augmented copies per image        (--augment A)
    S_index.csv  row,image
    S_meta.json  model, family, weights + sha256, dim, input, preprocessing, counts, versions;
                 written last, so its presence means the split is complete.
Exit codes: 0 done (or already up to date), 2 bad arguments or list, 3 unreadable or missing
image, 4 missing or mismatched weights, 5 the framework failed. Work is saved in chunks under
a hidden .S.partial/ folder: an interrupted run resumes where it stopped, and no output file
is ever half-written. This module must stay Python-2.7 compatible (the Caffe service).
"""
from __future__ import absolute_import, division, print_function

import argparse
import io
import os
import platform
import shutil
import sys
import time

import numpy as np

from shared import registry as registry_mod
from shared.augment import augment
from shared.images import ImageError, load_rgb
from shared.storage import atomic_path, read_json, save_npy, write_json, write_text
from shared.template import crop_size

EXIT_OK, EXIT_USAGE, EXIT_BAD_IMAGE, EXIT_WEIGHTS, EXIT_BACKEND = 0, 2, 3, 4, 5
CONTRACT_VERSION = 1


class ContractError(Exception):
    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code


class Backbone(object):
    """What a service implements: load once in __init__, then embed batches of crops."""

    family = None
    default_batch_size = 32

    def __init__(self, entry, weights_dir, batch_size):
        self.entry = entry
        self.weights_dir = weights_dir
        self.batch_size = batch_size

    def embed(self, images):
        """A list of HxWx3 uint8 RGB crops at the model's input size -> float32 (B, D)."""
        raise NotImplementedError

    def versions(self):
        return {}


def to_batch(images, entry, layout="NCHW"):
    """Stack crops and apply the registry's preprocessing: colour order, scale/mean/std or
    per-image prewhitening. Returns float32 in `layout` (NCHW or NHWC)."""
    spec = entry["input"]
    batch = np.stack(images).astype(np.float32)
    if spec["color"] == "BGR":
        batch = batch[..., ::-1]
    if spec.get("whiten"):
        flat = batch.reshape(len(batch), -1)
        mean = flat.mean(axis=1)
        std = np.maximum(flat.std(axis=1), 1.0 / np.sqrt(flat.shape[1]))
        batch = (batch - mean[:, None, None, None]) / std[:, None, None, None]
    else:
        mean = np.asarray(spec["mean"], dtype=np.float32)
        std = np.asarray(spec["std"], dtype=np.float32)
        batch = (batch * np.float32(spec["scale"]) - mean) / std
    if layout == "NCHW":
        batch = batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32)


def read_list(path):
    """Image paths, one a line (blank lines and '#' comments skipped); a CSV whose header
    starts with 'image' (e.g. train.csv) gives its first column."""
    if not os.path.isfile(path):
        raise ContractError(EXIT_USAGE, "list file '%s' does not exist" % path)
    with io.open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    lines = [line for line in lines if line and not line.startswith("#")]
    if lines and lines[0].split(",")[0] == "image":
        lines = [line.split(",")[0] for line in lines[1:]]
    if not lines:
        raise ContractError(EXIT_USAGE, "list file '%s' names no images" % path)
    seen = set()
    for number, line in enumerate(lines):
        if line in seen:
            raise ContractError(EXIT_USAGE, "list file '%s': '%s' is listed twice (entry %d)"
                                % (path, line, number + 1))
        seen.add(line)
    return lines


def parse_shard(text):
    """'I/N' (I counted from 0) -> (I, N); None -> None."""
    if text is None:
        return None
    try:
        index, count = [int(part) for part in text.split("/")]
    except ValueError:
        raise ContractError(EXIT_USAGE, "--shard must be I/N with integers, got '%s'" % text)
    if count < 1 or not 0 <= index < count:
        raise ContractError(EXIT_USAGE, "--shard %s: need 0 <= I < N" % text)
    return index, count


def shard_bounds(total, shard, align=1):
    """Rows [start, stop) of shard (I, N): contiguous, so shards concatenate in order. Inner
    boundaries fall on multiples of `align` (the images of one forward batch), so a sharded
    run feeds the framework exactly the batches an unsharded run does: same numbers, bit
    for bit, not just to float tolerance."""
    if shard is None:
        return 0, total

    def boundary(k):
        return total if k == shard[1] else min(total, total * k // shard[1] // align * align)

    return boundary(shard[0]), boundary(shard[0] + 1)


def output_prefix(split, shard):
    return split if shard is None else "%s.shard-%d-of-%d" % (split, shard[0], shard[1])


def output_files(out, prefix):
    names = {"embeddings": prefix + ".npy", "flip": prefix + "_flip.npy",
             "augment": prefix + "_aug.npy", "index": prefix + "_index.csv",
             "meta": prefix + "_meta.json"}
    return dict((key, os.path.join(out, name)) for key, name in names.items())


def build_parser(backbone_cls):
    parser = argparse.ArgumentParser(
        prog="embed", description="Embed aligned face crops with a %s model (the embed "
        "contract; see shared/contract.py)." % backbone_cls.family)
    parser.add_argument("--model", required=True, help="registry name, e.g. model4_insightface")
    parser.add_argument("--images", required=True, help="folder the list's paths are relative to")
    parser.add_argument("--list", required=True, help="image list (one path a line, or a CSV with an 'image' column)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--split", default="embeddings", help="output name prefix (e.g. train, test)")
    parser.add_argument("--weights", help="folder with the model's files (default: <weights-root>/<registry dir>)")
    parser.add_argument("--weights-root", default=os.environ.get("FACES_WEIGHTS_DIR"),
                        help="root of all weight folders (env FACES_WEIGHTS_DIR)")
    parser.add_argument("--flip", action="store_true", help="also embed the mirrored images")
    parser.add_argument("--augment", type=int, default=0, metavar="N", help="augmented copies per image")
    parser.add_argument("--seed", type=int, default=0, help="seed of the augmentation")
    parser.add_argument("--batch-size", type=int, default=backbone_cls.default_batch_size)
    parser.add_argument("--shard", help="I/N: embed only the I-th of N contiguous parts (I from 0)")
    parser.add_argument("--workers", type=int, default=1,
                        help="run N shards as parallel processes and merge them (for single-threaded "
                             "frameworks such as dlib); the result is the unsharded one, bit for bit")
    parser.add_argument("--chunk-size", type=int, default=256, help="images per resumable chunk")
    parser.add_argument("--registry", default=None, help="model registry YAML (default: shared/models.yaml)")
    parser.add_argument("--no-verify", action="store_true", help="skip the sha256 check of weight files")
    return parser


def progress_bar(total, desc):
    """A tqdm bar on a terminal (silent otherwise); None where tqdm is not installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="img", disable=not sys.stderr.isatty())


def _load_crop(path, size, counters):
    image = load_rgb(path)
    if (image.shape[1], image.shape[0]) != size:
        from PIL import Image

        image = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))
        counters["resized"] += 1
    return image


def _l2(array):
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    return array / np.maximum(norms, 1e-12)


class _Job(object):
    """One run of the entrypoint: resolved arguments plus the resumable chunk loop."""

    def __init__(self, args, entry):
        self.args = args
        self.entry = entry
        self.size = crop_size(entry["input"]["crop"])
        self.normalize = bool(entry["output"].get("normalize"))

    def views(self, image, key):
        yield image
        if self.args.flip:
            yield np.ascontiguousarray(image[:, ::-1])
        for copy_number in range(self.args.augment):
            yield augment(image, self.args.seed, key, copy_number)

    def per_image(self):
        return 1 + int(self.args.flip) + self.args.augment

    def group(self):
        """Images whose views share forward batches. Batches never mix groups, and groups
        are counted from row 0 of the full list, so batch contents do not depend on sharding,
        chunking or resuming."""
        return max(1, self.args.batch_size // self.per_image())

    def embed_chunk(self, backbone, names, counters, progress):
        per_image, dim = self.per_image(), self.entry["output"]["dim"]
        stacked = np.zeros((len(names), per_image, dim), np.float32)
        for lo in range(0, len(names), self.group()):
            views = []
            for name in names[lo:lo + self.group()]:
                image = _load_crop(os.path.join(self.args.images, name), self.size, counters)
                views.extend(self.views(image, name))
                if progress is not None:
                    progress.update(1)
            out = np.concatenate([self._forward(backbone, views[b:b + self.args.batch_size])
                                  for b in range(0, len(views), self.args.batch_size)])
            stacked[lo:lo + len(views) // per_image] = out.reshape(-1, per_image, dim)
        if self.normalize:
            stacked = _l2(stacked)
        arrays = {"embeddings": stacked[:, 0]}
        if self.args.flip:
            arrays["flip"] = stacked[:, 1]
        if self.args.augment:
            arrays["augment"] = stacked[:, 1 + int(self.args.flip):]
        return arrays

    def _forward(self, backbone, batch):
        out = np.asarray(backbone.embed(batch), dtype=np.float32)
        if out.shape != (len(batch), self.entry["output"]["dim"]):
            raise ContractError(EXIT_BACKEND, "model '%s' returned shape %s for a batch of %d, "
                                "expected (%d, %d)" % (self.entry["name"], out.shape, len(batch),
                                                       len(batch), self.entry["output"]["dim"]))
        return out


def _fingerprint(args, entry, names, start, digests):
    return {"contract": CONTRACT_VERSION, "model": entry["name"], "images": os.path.abspath(args.images),
            "names": len(names), "first": names[0], "last": names[-1], "start": start,
            "flip": args.flip, "augment": args.augment, "seed": args.seed,
            "weights": digests, "chunk_size": args.chunk_size, "list_hash": hash_names(names)}


def hash_names(names):
    import hashlib

    return hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()


def resume_folder(out, prefix, fingerprint):
    """The hidden folder where a run keeps its finished chunks: kept when an earlier run had
    the same fingerprint (so it resumes), emptied otherwise."""
    partial = os.path.join(out, "." + prefix + ".partial")
    marker = os.path.join(partial, "fingerprint.json")
    if os.path.isdir(partial) and (not os.path.isfile(marker) or read_json(marker) != fingerprint):
        shutil.rmtree(partial)  # left by a run with other arguments: not resumable
    if not os.path.isdir(partial):
        os.makedirs(partial)
        write_json(marker, fingerprint)
    return partial


def _run(backbone_cls, args):
    registry = registry_mod.load(args.registry)
    try:
        entry = registry.model(args.model)
    except KeyError as exc:
        raise ContractError(EXIT_USAGE, exc.args[0])
    if entry["family"] != backbone_cls.family:
        raise ContractError(EXIT_USAGE, "model '%s' is of family '%s'; this is the %s service"
                            % (args.model, entry["family"], backbone_cls.family))
    if args.augment < 0 or args.batch_size < 1 or args.chunk_size < 1:
        raise ContractError(EXIT_USAGE, "--augment must be >= 0, --batch-size and --chunk-size >= 1")
    all_names = read_list(args.list)
    shard = parse_shard(args.shard)
    job = _Job(args, entry)
    start, stop = shard_bounds(len(all_names), shard, align=job.group())
    names = all_names[start:stop]
    if not names:
        raise ContractError(EXIT_USAGE, "shard %s of %d images is empty" % (args.shard, len(all_names)))
    missing = [n for n in names if not os.path.isfile(os.path.join(args.images, n))]
    if missing:
        raise ContractError(EXIT_BAD_IMAGE, "cannot read image '%s': no such file (%d of %d listed "
                            "images are missing)" % (os.path.join(args.images, missing[0]),
                                                     len(missing), len(names)))
    folder = registry_mod.weights_dir(entry, args.weights_root, args.weights)
    try:
        digests = registry_mod.check_weights(entry, folder, verify=not args.no_verify)
    except registry_mod.WeightsError as exc:
        raise ContractError(EXIT_WEIGHTS, str(exc))

    prefix = output_prefix(args.split, shard)
    files = output_files(args.out, prefix)
    fingerprint = _fingerprint(args, entry, names, start, digests)
    if os.path.isfile(files["meta"]) and read_json(files["meta"]).get("fingerprint") == fingerprint:
        print("%s: %s is up to date (%d images)" % (entry["name"], files["meta"], len(names)))
        return
    if args.workers > 1 and shard is None:
        _run_workers(args, fingerprint)
        return
    partial = resume_folder(args.out, prefix, fingerprint)

    load_started = time.time()
    try:
        backbone = backbone_cls(entry, folder, args.batch_size)
    except ContractError:
        raise
    except Exception as exc:
        raise ContractError(EXIT_BACKEND, "cannot load model '%s' from %s: %s: %s"
                            % (entry["name"], folder, type(exc).__name__, exc))
    load_seconds = time.time() - load_started
    counters = {"resized": 0}
    step = -(-args.chunk_size // job.group()) * job.group()  # whole groups per chunk
    chunks = [(lo, min(lo + step, len(names))) for lo in range(0, len(names), step)]
    progress = progress_bar(len(names), entry["name"])
    embed_started = time.time()
    computed = 0
    for lo, hi in chunks:
        chunk_file = os.path.join(partial, "chunk-%08d.npz" % lo)
        if os.path.isfile(chunk_file):
            if progress is not None:
                progress.update(hi - lo)
            continue
        arrays = job.embed_chunk(backbone, names[lo:hi], counters, progress)
        computed += hi - lo
        with atomic_path(chunk_file) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    if progress is not None:
        progress.close()
    embed_seconds = time.time() - embed_started

    parts = [np.load(os.path.join(partial, "chunk-%08d.npz" % lo)) for lo, _ in chunks]
    keys = ["embeddings"] + (["flip"] if args.flip else []) + (["augment"] if args.augment else [])
    for key in keys:
        save_npy(files[key], np.concatenate([part[key] for part in parts]))
    write_text(files["index"], "row,image\n" + "".join(
        "%d,%s\n" % (start + i, name) for i, name in enumerate(names)))
    views_computed = computed * (1 + int(args.flip) + args.augment)
    meta = {
        "contract": CONTRACT_VERSION, "model": entry["name"], "family": entry["family"],
        "weights": {"dir": os.path.abspath(folder), "files": digests, "verified": not args.no_verify},
        "dim": entry["output"]["dim"], "output_layer": entry["output"]["layer"],
        "input": entry["input"], "normalized": job.normalize,
        "counts": {"images": len(names), "rows": [start, stop], "total_listed": len(all_names),
                   "flip": bool(args.flip), "augment": args.augment, "resized": counters["resized"]},
        "seed": args.seed, "shard": list(shard) if shard else None, "split": args.split,
        "files": dict((key, os.path.basename(files[key])) for key in keys + ["index"]),
        "timing": {"load_s": round(load_seconds, 3), "embed_s": round(embed_seconds, 3),
                   "images_computed": computed, "batch_size": args.batch_size,
                   "views_per_s": round(views_computed / max(embed_seconds, 1e-9), 2)},
        "versions": dict({"python": platform.python_version(), "numpy": np.__version__},
                         **backbone.versions()),
        "fingerprint": fingerprint,
    }
    write_json(files["meta"], meta)
    shutil.rmtree(partial)
    print("%s: %d images -> %s (%s)" % (entry["name"], len(names), args.out,
                                        ", ".join(os.path.basename(files[k]) for k in keys)))


def _run_workers(args, fingerprint):
    """Embed the list as args.workers shards in parallel child processes, then merge them."""
    import subprocess

    argv, skip = [], False
    for item in args.argv:  # the parent's arguments, less --workers
        if skip:
            skip = False
        elif item == "--workers":
            skip = True
        elif not item.startswith("--workers="):
            argv.append(item)
    children = [subprocess.Popen([sys.executable, os.path.abspath(sys.argv[0])] + argv +
                                 ["--shard", "%d/%d" % (i, args.workers)]) for i in range(args.workers)]
    codes = [child.wait() for child in children]
    failed = [code for code in codes if code != 0]
    if failed:
        raise ContractError(failed[0], "%d of %d worker processes failed (exit codes %s)"
                            % (len(failed), len(codes), codes))
    merge_shards(args.out, args.split, args.workers, fingerprint)


def main(backbone_cls, argv=None):
    """Entry point of a service: parse the contract's arguments and run; exit with its code."""
    args = build_parser(backbone_cls).parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    exit_with_code("embed", lambda: _run(backbone_cls, args))


def exit_with_code(program, action):
    """Run `action`; report a contract or image error as one line on stderr and exit with the
    contract's code for it (0 when all went well)."""
    try:
        action()
    except ContractError as exc:
        sys.stderr.write("%s: error: %s\n" % (program, exc))
        sys.exit(exc.code)
    except ImageError as exc:
        sys.stderr.write("%s: error: %s\n" % (program, exc))
        sys.exit(EXIT_BAD_IMAGE)
    sys.exit(EXIT_OK)


def merge_shards(out, split, count, fingerprint=None):
    """Concatenate the outputs of shards 0..count-1 into the unsharded files of `split`.
    `fingerprint` (an unsharded run's) lets a later run see the merged split as up to date."""
    metas = []
    for index in range(count):
        meta_path = output_files(out, output_prefix(split, (index, count)))["meta"]
        if not os.path.isfile(meta_path):
            raise ContractError(EXIT_USAGE, "shard %d/%d of '%s' is not finished (%s missing)"
                                % (index, count, split, meta_path))
        metas.append(read_json(meta_path))
    files = output_files(out, split)
    shard_files = [output_files(out, output_prefix(split, (i, count))) for i in range(count)]
    for key in metas[0]["files"]:
        if key == "index":
            continue
        save_npy(files[key], np.concatenate([np.load(sf[key]) for sf in shard_files]))
    rows = []
    for sf in shard_files:
        with io.open(sf["index"], encoding="utf-8") as f:
            rows.extend(f.read().splitlines()[1:])
    write_text(files["index"], "row,image\n" + "".join(row + "\n" for row in rows))
    meta = dict(metas[0])
    meta["shard"] = None
    meta["merged_from"] = count
    meta["counts"] = dict(meta["counts"], images=sum(m["counts"]["images"] for m in metas),
                          rows=[0, metas[-1]["counts"]["rows"][1]],
                          resized=sum(m["counts"]["resized"] for m in metas))
    meta["fingerprint"] = fingerprint
    meta["timing"] = dict(meta["timing"], embed_s=max(m["timing"]["embed_s"] for m in metas),
                          images_computed=sum(m["timing"]["images_computed"] for m in metas),
                          views_per_s=round(sum(m["timing"]["views_per_s"] for m in metas), 2))
    write_json(files["meta"], meta)
    for sf in shard_files:
        for path in sf.values():
            if os.path.isfile(path):
                os.remove(path)
    return files
