"""The embed entrypoint every backbone service exposes, and the Backbone it runs.

    embed --model NAME --images DIR --list FILE --out DIR [--split NAME] [--weights DIR]
          [--weights-root DIR] [--flip] [--augment N --seed S] [--batch-size B]
          [--shard I/N] [--workers N] [--chunk-size C] [--registry YAML] [--no-verify] [--debug]
          [--engine native|openvino] [--engine-cache DIR]

Writes split S (S.shard-I-of-N when sharded) into --out as shared/schema.py describes (S.npy, S_flip.npy, S_aug.npy,
S_index.csv, S_meta.json: model, weights + sha256, input, counts, timing, versions, engine), and exits with its
codes. Work is saved in chunks (shared/contract/resumable.py), so an interrupted run resumes; --workers N runs N
shards as processes and merges them (shared/contract/shards.py). Python-2.7 compatible (the Caffe service).
"""
from __future__ import absolute_import, division, print_function

import argparse
import os
import platform
import sys

import numpy as np

from shared.contract import resumable, validate
from shared.contract.shards import drop_shard_partials, run_workers
from shared.faces.augment import augment
from shared.faces.images import load_rgb_at
from shared.faces.template import crop_size
from shared.models import engines
from shared.models import registry as registry_mod
from shared.schema import (CONTRACT_VERSION, EXIT_BACKEND, EXIT_USAGE, ContractError, at_least, clear_outputs,
                           exit_with_code, hash_names, output_files, output_prefix, parse_shard, require_images,
                           shard_bounds)
from shared.storage import save_npy, write_text


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


def build_parser(backbone_cls):
    parser = argparse.ArgumentParser(
        prog="embed", description="Embed aligned face crops with a %s model (the embed "
        "entrypoint; see shared/contract/backbone.py)." % backbone_cls.family)
    add = parser.add_argument
    add("--model", required=True, help="registry name, e.g. model4_insightface")
    add("--images", required=True, help="folder the list's paths are relative to")
    add("--list", required=True, help="image list (one path a line, or a CSV with an 'image' column)")
    add("--out", required=True, help="output folder")
    add("--split", default="embeddings", help="output name prefix (e.g. train, test)")
    add("--weights", help="folder with the model's files (default: <weights-root>/<registry dir>)")
    add("--weights-root", default=os.environ.get("FACES_WEIGHTS_DIR"),
        help="root of all weight folders (env FACES_WEIGHTS_DIR)")
    add("--flip", action="store_true", help="also embed the mirrored images")
    add("--augment", type=at_least(0), default=0, metavar="N", help="augmented copies per image")
    add("--seed", type=int, default=0, help="seed of the augmentation")
    add("--batch-size", type=at_least(1), default=backbone_cls.default_batch_size)
    add("--shard", help="I/N: embed only the I-th of N contiguous parts (I from 0)")
    add("--workers", type=at_least(1), default=1, help="run N shards as parallel processes and merge them (for "
        "single-threaded frameworks such as dlib); the result is the unsharded one, bit for bit")
    add("--chunk-size", type=at_least(1), default=256, help="images per resumable chunk")
    add("--registry", default=None, help="model registry YAML (default: shared/models/models.yaml)")
    add("--no-verify", action="store_true", help="skip the sha256 check of weight files")
    add("--debug", action="store_true", help="show the traceback of an unforeseen error (or FACES_DEBUG=1)")
    add("--engine", choices=engines.ENGINES, default="native", help="native: the service's framework (the "
        "faithful path); openvino: the weights converted once, verified against native (shared/models/engines.py)")
    add("--engine-cache", help="folder of the verified conversions (default: <out>/.engines)")
    add("--precision", choices=engines.PRECISIONS, default="auto", help="openvino's inference precision "
        "(auto: bf16 where the CPU has AVX512-BF16 or AMX-BF16 and it verifies, else f32; shared/models/engines.py)")
    return parser


class EmbedJob(object):
    """One run of the entrypoint: the resolved arguments, this shard's rows, its views."""

    def __init__(self, args, entry, all_names):
        self.args, self.entry, self.all_names, self.listed = args, entry, all_names, len(all_names)
        self.engine_folder, self.engine = None, {"engine": "native"}
        self.size = crop_size(entry["input"]["crop"])
        self.normalize = bool(entry["output"].get("normalize"))
        self.shard = parse_shard(args.shard)
        self.start, self.stop = shard_bounds(len(all_names), self.shard, align=self.group())
        self.names = all_names[self.start:self.stop]
        self.files = output_files(args.out, output_prefix(args.split, self.shard))
        self.keys = ["embeddings"] + (["flip"] if args.flip else []) + (["augment"] if args.augment else [])

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

    def chunk_rows(self):
        return -(-self.args.chunk_size // self.group()) * self.group()  # whole groups per chunk

    def embed_chunk(self, backbone, names, counters, progress):
        per_image, dim = self.per_image(), self.entry["output"]["dim"]
        stacked = np.zeros((len(names), per_image, dim), np.float32)
        for lo in range(0, len(names), self.group()):
            views = []
            for name in names[lo:lo + self.group()]:
                image, resized = load_rgb_at(os.path.join(self.args.images, name), self.size)
                counters["resized"] += int(resized)
                views.extend(self.views(image, name))
                progress.update(1)
            out = np.concatenate([self._forward(backbone, views[b:b + self.args.batch_size])
                                  for b in range(0, len(views), self.args.batch_size)])
            stacked[lo:lo + len(views) // per_image] = out.reshape(-1, per_image, dim)
        if self.normalize:
            stacked = stacked / np.maximum(np.linalg.norm(stacked, axis=-1, keepdims=True), 1e-12)
        columns = {"embeddings": 0, "flip": 1, "augment": slice(1 + int(self.args.flip), None)}
        return dict((key, stacked[:, columns[key]]) for key in self.keys)

    def _forward(self, backbone, batch):
        out = np.asarray(backbone.embed(batch), dtype=np.float32)
        if out.shape != (len(batch), self.entry["output"]["dim"]):
            raise ContractError(EXIT_BACKEND, "model '%s' returned shape %s for a batch of %d, expected (%d, %d)"
                                % (self.entry["name"], out.shape, len(batch), len(batch), self.entry["output"]["dim"]))
        return out

    def check_weights(self):
        """Find and check the model's files; sets folder, digests and the run's fingerprint."""
        args, names = self.args, self.names
        self.folder = registry_mod.weights_dir(self.entry, args.weights_root, args.weights)
        self.digests = registry_mod.check_weights(self.entry, self.folder, verify=not args.no_verify)
        self.fingerprint = {
            "contract": CONTRACT_VERSION, "model": self.entry["name"], "images": os.path.abspath(args.images),
            "names": len(names), "first": names[0], "last": names[-1], "start": self.start,
            "flip": args.flip, "augment": args.augment, "seed": args.seed,
            "weights": self.digests, "chunk_size": args.chunk_size, "list_hash": hash_names(names)}
        self.content = validate.content_digests(args.images, names)
        self.fingerprint["content"] = validate.chunk_tags(self.content, [(0, len(names))])[0]


def _entry(backbone_cls, args):
    try:
        entry = registry_mod.load(args.registry).model(args.model)
    except KeyError as exc:
        raise ContractError(EXIT_USAGE, exc.args[0])
    except EnvironmentError as exc:
        raise ContractError(EXIT_USAGE, "--registry '%s': %s" % (exc.filename, exc.strerror))
    if entry["family"] != backbone_cls.family:
        raise ContractError(EXIT_USAGE, "model '%s' is of family '%s'; this is the %s service"
                            % (args.model, entry["family"], backbone_cls.family))
    validate.check_split(args.split)
    validate.check_out(args.out)
    if args.engine_cache:
        validate.check_out(args.engine_cache, "--engine-cache")
    return entry


def _meta(job, backbone, resized, timing):
    args, entry = job.args, job.entry
    return {
        "contract": CONTRACT_VERSION, "model": entry["name"], "family": entry["family"],
        "weights": {"dir": os.path.abspath(job.folder), "files": job.digests, "verified": not args.no_verify},
        "dim": entry["output"]["dim"], "output_layer": entry["output"]["layer"],
        "input": entry["input"], "normalized": job.normalize,
        "counts": {"images": len(job.names), "rows": [job.start, job.stop], "total_listed": job.listed,
                   "flip": bool(args.flip), "augment": args.augment, "resized": resized},
        "seed": args.seed, "shard": list(job.shard) if job.shard else None, "split": args.split,
        "files": dict((key, os.path.basename(job.files[key])) for key in job.keys + ["index"]),
        "timing": timing, "fingerprint": job.fingerprint, "engine": engines.summary(job.engine),
        "versions": dict({"python": platform.python_version(), "numpy": np.__version__},
                         **backbone.versions()),
    }


def _embed(backbone_cls, job):
    """The resumable chunk loop, then the outputs, meta last."""
    args, names = job.args, job.names
    clear_outputs(job.files, job.keys)  # the meta first: a reader never mixes this run's files with older ones
    partial = resumable.resume_folder(args.out, output_prefix(args.split, job.shard),
                                      dict(job.fingerprint, content=None))  # chunks carry their own
    bounds = resumable.chunk_bounds(len(names), job.chunk_rows())
    backbone, load_seconds = resumable.timed_load(lambda: engines.load(backbone_cls, job),
                                                  "model '%s' from %s" % (job.entry["name"], job.folder))
    counters = {"resized": 0}
    parts, computed, seconds = resumable.run_chunks(
        partial, bounds, resumable.NPZ, job.entry["name"],
        lambda lo, hi, progress: job.embed_chunk(backbone, names[lo:hi], counters, progress),
        tags=validate.chunk_tags(job.content, bounds))
    for key in job.keys:
        save_npy(job.files[key], np.concatenate([part[key] for part in parts]))
    write_text(job.files["index"], "row,image\n" + "".join(
        "%d,%s\n" % (job.start + i, name) for i, name in enumerate(names)))
    timing = {"load_s": round(load_seconds, 3), "embed_s": round(seconds, 3), "images_computed": computed,
              "batch_size": args.batch_size,
              "views_per_s": round(computed * job.per_image() / max(seconds, 1e-9), 2)}
    resumable.finish(job.files["meta"], _meta(job, backbone, counters["resized"], timing), partial)
    if job.shard is None:
        drop_shard_partials(args.out, args.split)
    print("%s: %d images -> %s (%s)" % (job.entry["name"], len(names), args.out,
                                        ", ".join(os.path.basename(job.files[k]) for k in job.keys)))


def _run(backbone_cls, args):
    entry = _entry(backbone_cls, args)
    all_names = validate.read_list(args.list)
    per_image = 1 + int(args.flip) + args.augment
    args.batch_size = min(args.batch_size, len(all_names) * per_image)  # no bigger than the list
    job = EmbedJob(args, entry, all_names)
    if not job.names:
        raise ContractError(EXIT_USAGE, "shard %s of %d images is empty" % (args.shard, len(all_names)))
    args.workers = min(args.workers, max(1, len(all_names) // job.group()))  # no empty shard
    require_images(args.images, job.names)
    job.check_weights()
    job.fingerprint.update(engines.fingerprint(backbone_cls, args.engine, args.precision))
    lock = validate.hold_lock(args.out, output_prefix(args.split, job.shard))
    try:
        if resumable.up_to_date(job.files["meta"], job.fingerprint):
            print("%s: %s is up to date (%d images)" % (entry["name"], job.files["meta"], len(job.names)))
        else:  # converted and verified here, before any worker starts
            job.engine_folder, job.engine = engines.prepare(backbone_cls, job)
            if args.workers > 1 and job.shard is None:
                run_workers(args, job.fingerprint)
            else:
                _embed(backbone_cls, job)
    finally:
        validate.release_lock(lock)


def main(backbone_cls, argv=None):
    """Entry point of a service: parse the entrypoint's arguments and run; exit with its code."""
    args = build_parser(backbone_cls).parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    exit_with_code("embed", lambda: _run(backbone_cls, args), debug=args.debug)
