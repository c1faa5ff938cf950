"""The engine an embed run computes with: `native` (the service's own framework: the faithful
path, the default) or `openvino` (the same weights converted once to an OpenVINO graph).

A conversion is cached under --engine-cache as <cache>/<model>/<key>/ (model.xml, model.bin,
meta.json), keyed by the weight files' sha256, the service's converter version and OpenVINO's
version, so new weights or a new converter convert again. Before its first use every conversion
is verified against the native framework on a fixed calibration set of real crops (evenly
spaced over the run's list): the cosine of each image's two embeddings must be >= MIN_COSINE,
else the run is refused with the figures (EXIT_BACKEND) and nothing is cached. The folder is
written under a temporary name and renamed, so a crash never leaves half a cache; meta.json
keeps the digests of the graph files, so a damaged cache is converted again, not used.
OpenVINO is imported only by the openvino engine (the module is Python-2.7 compatible).
"""
from __future__ import absolute_import, division, print_function

import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

from shared.faces.images import load_rgb_at
from shared.models.preprocess import to_batch
from shared.schema import EXIT_BACKEND, EXIT_USAGE, ContractError
from shared.storage import read_json, sha256_file, write_json

ENGINES = ("native", "openvino")
CALIBRATION = 32  # images; each must match native to MIN_COSINE
MIN_COSINE = 0.9999
GRAPH_FILES = ("model.xml", "model.bin")
# f32 everywhere: the CPU plugin would pick bf16 on CPUs with AMX/AVX512-BF16, so a conversion
# verified on one machine would compute differently on another.
COMPILE_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


def openvino_version():
    import openvino

    return openvino.get_version()


def cache_key(backbone_cls, entry, digests):
    facts = {"weights": digests, "converter": backbone_cls.converter_version, "openvino": openvino_version(),
             "layer": entry["output"]["layer"], "input": entry["input"]}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def calibration_names(names):
    """CALIBRATION names evenly spaced over the list (all of a shorter list): the same for a list
    however it is sharded."""
    count = min(CALIBRATION, len(names))
    return [names[i * len(names) // count] for i in range(count)]


def cosines(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def verify(native, converted, images, batch_size, what):
    """Embed `images` with both Backbones; the figures, or ContractError with them when any
    image's cosine is below MIN_COSINE."""
    found = np.concatenate([cosines(native.embed(images[i:i + batch_size]), converted.embed(images[i:i + batch_size]))
                            for i in range(0, len(images), batch_size)])
    figures = {"images": len(images), "min_cosine": float(found.min()), "mean_cosine": float(found.mean()),
               "threshold": MIN_COSINE, "passed": bool(found.min() >= MIN_COSINE)}
    if not figures["passed"]:
        worst = np.argsort(found)[:3]
        raise ContractError(EXIT_BACKEND, "%s disagrees with the native framework: cosine %.7f (min) / %.7f "
                            "(mean) over %d calibration images, %d below %s (worst: %s); not used"
                            % (what, figures["min_cosine"], figures["mean_cosine"], len(images),
                               int((found < MIN_COSINE).sum()), MIN_COSINE,
                               ", ".join("#%d %.7f" % (i, found[i]) for i in worst)))
    return figures


class OpenVinoBackbone(object):
    """A converted graph, run by OpenVINO's CPU plugin with the service's own preprocessing."""

    def __init__(self, entry, model, layout, converter_version):
        import openvino

        self.entry, self.layout, self.converter_version = entry, layout, converter_version
        self.request = openvino.Core().compile_model(model, "CPU", COMPILE_CONFIG).create_infer_request()

    def embed(self, images):
        out = self.request.infer({0: to_batch(images, self.entry, layout=self.layout)})[0]
        return np.asarray(out).reshape(len(images), -1)  # as the services: N x D (x 1 x 1) -> N x D

    def versions(self):
        return {"openvino": openvino_version(), "converter": self.converter_version}


def _intact(folder):
    meta_path = os.path.join(folder, "meta.json")
    if not os.path.isfile(meta_path):
        return None
    meta = read_json(meta_path)
    files = dict((name, sha256_file(os.path.join(folder, name))) for name in GRAPH_FILES
                 if os.path.isfile(os.path.join(folder, name)))
    return meta if files == meta.get("graph_files") and meta["verification"]["passed"] else None


def _convert(backbone_cls, job, folder):
    """Convert, verify on the calibration crops, write <folder> atomically; its meta."""
    import openvino

    entry = job.entry
    model = backbone_cls.openvino_model(entry, job.folder)
    converted = OpenVinoBackbone(entry, model, backbone_cls.layout, backbone_cls.converter_version)
    native = backbone_cls(entry, job.folder, job.args.batch_size)
    names = calibration_names(job.all_names)
    images = [load_rgb_at(os.path.join(job.args.images, name), job.size)[0] for name in names]
    figures = verify(native, converted, images, job.args.batch_size,
                     "the OpenVINO conversion of model '%s'" % entry["name"])
    figures["list_hash"] = hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()
    parent = os.path.dirname(folder)
    if not os.path.isdir(parent):
        os.makedirs(parent)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(folder) + ".", dir=parent)
    try:
        openvino.save_model(model, os.path.join(tmp, "model.xml"), compress_to_fp16=False)
        meta = {"engine": "openvino", "model": entry["name"], "weights": job.digests,
                "converter": backbone_cls.converter_version, "openvino": openvino_version(),
                "verification": figures, "compile": COMPILE_CONFIG,
                "graph_files": dict((n, sha256_file(os.path.join(tmp, n))) for n in GRAPH_FILES)}
        write_json(os.path.join(tmp, "meta.json"), meta)
        if _intact(folder) is None:  # else a concurrent run (a shard) finished first: keep its copy
            shutil.rmtree(folder, ignore_errors=True)  # damaged
            try:
                os.rename(tmp, folder)
            except OSError:  # a concurrent run renamed its copy in between
                pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return meta


def fingerprint(backbone_cls, engine):
    """What the engine adds to a run's fingerprint: nothing for native (so outputs embedded before
    engines existed stay up to date), the converter's and OpenVINO's versions for openvino (so
    switching engine, or converter, embeds again)."""
    if engine == "native":
        return {}
    if getattr(backbone_cls, "converter_version", None) is None:
        raise ContractError(EXIT_USAGE, "--engine %s: the %s service has no converter (engines: native)"
                            % (engine, backbone_cls.family))
    try:
        version = openvino_version()
    except ImportError as exc:
        raise ContractError(EXIT_USAGE, "--engine %s: OpenVINO does not import in this environment (%s); "
                            "install the service's requirements.txt, or use --engine native" % (engine, exc))
    return {"engine": {"engine": engine, "converter": backbone_cls.converter_version, "openvino": version}}


def prepare(backbone_cls, job):
    """For --engine openvino: the verified conversion's cache folder and meta (converting and
    verifying first when the cache has none); for native: (None, {'engine': 'native'})."""
    if job.args.engine == "native":
        return None, {"engine": "native"}
    root = job.args.engine_cache or os.path.join(job.args.out, ".engines")
    folder = os.path.join(root, job.entry["name"], cache_key(backbone_cls, job.entry, job.digests))
    meta = _intact(folder)
    if meta is None:
        print("%s: converting for OpenVINO into %s" % (job.entry["name"], folder))
        meta = _convert(backbone_cls, job, folder)
    return folder, meta


def load(backbone_cls, job):
    """The Backbone of the job's engine."""
    if job.engine_folder is None:
        return backbone_cls(job.entry, job.folder, job.args.batch_size)
    return OpenVinoBackbone(job.entry, os.path.join(job.engine_folder, "model.xml"), backbone_cls.layout,
                            backbone_cls.converter_version)


def summary(meta):
    """What the embed meta and fingerprint record of the engine."""
    if meta["engine"] == "native":
        return {"engine": "native"}
    return dict((k, meta[k]) for k in ("engine", "converter", "openvino", "verification", "compile"))
