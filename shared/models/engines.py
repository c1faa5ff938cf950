"""The engine an embed run computes with: `native` (the service's own framework: the faithful
path, the default) or `openvino` (the same weights converted once to an OpenVINO graph).

A conversion is cached under --engine-cache as <cache>/<model>/<key>/ (model.xml, model.bin,
meta.json), keyed by the weight files' sha256, the service's converter version and OpenVINO's
version, so new weights or a new converter convert again. Before its first use every conversion
is verified against the native framework on a fixed calibration set of real crops (evenly
spaced over the run's list): the cosine of each image's two embeddings must be >= MIN_COSINE of
its inference precision, else the run is refused with the figures (EXIT_BACKEND) and nothing is
cached. The precision is chosen from the CPU at run time (precision(): bf16 where the CPU has
AVX512-BF16 or AMX-BF16 and OpenVINO's CPU plugin offers it, f32 elsewhere), explicit in the
compile config and in the cache key; a bf16 conversion that fails its check falls back to f32,
which must pass its own. Threads: the CPUs this process may use (shared/hardware.py). The folder is
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

from shared import hardware
from shared.faces.images import load_rgb_at
from shared.models.preprocess import to_batch
from shared.schema import EXIT_BACKEND, EXIT_USAGE, ContractError
from shared.storage import read_json, sha256_file, write_json

ENGINES = ("native", "openvino")
CALIBRATION = 32  # images; each must match native to MIN_COSINE[precision]
# f32: the conversion's own rounding; bf16 rounds activations and weights to 8 mantissa bits:
# within 0.001 of float32 (issue 26), its LFW pair accuracy checked by bench.lfw-pairs
MIN_COSINE = {"f32": 0.9999, "bf16": 0.999}
PRECISIONS = ("auto", "f32", "bf16")
GRAPH_FILES = ("model.xml", "model.bin")


def precision(requested="auto"):
    """(the inference precision, why): `requested`, or for auto bf16 where the CPU has bf16 kernels
    (not capped by ONEDNN_MAX_CPU_ISA) and OpenVINO's CPU plugin lists BF16, else f32. Explicit
    either way: left to itself the plugin picks bf16 on such CPUs, unverified."""
    if requested != "auto":
        return requested, "forced %s" % requested
    found, why = hardware.bf16_kernels()
    if found:
        import openvino

        if "BF16" not in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            return "f32", "OpenVINO's CPU plugin offers no BF16 on this CPU"
    return ("bf16" if found else "f32"), why


def compile_config(inference_precision):
    """The CPU plugin's settings: the precision, and threads from the CPUs this process may use
    (its affinity: a container's or taskset's share, not the machine's count)."""
    return {"INFERENCE_PRECISION_HINT": inference_precision, "INFERENCE_NUM_THREADS": hardware.available_cpus()}


def openvino_version():
    import openvino

    return openvino.get_version()


def cache_key(backbone_cls, entry, digests, inference_precision="f32"):
    facts = {"weights": digests, "converter": backbone_cls.converter_version, "openvino": openvino_version(),
             "layer": entry["output"]["layer"], "input": entry["input"]}
    if inference_precision != "f32":  # f32 conversions keep the keys they had before precisions
        facts["precision"] = inference_precision
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def calibration_names(names):
    """CALIBRATION names evenly spaced over the list (all of a shorter list): the same for a list
    however it is sharded."""
    count = min(CALIBRATION, len(names))
    return [names[i * len(names) // count] for i in range(count)]


def cosines(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def verify(native, converted, images, batch_size, what, threshold=MIN_COSINE["f32"]):
    """Embed `images` with both Backbones; the figures, or ContractError with them when any
    image's cosine is below `threshold`."""
    found = np.concatenate([cosines(native.embed(images[i:i + batch_size]), converted.embed(images[i:i + batch_size]))
                            for i in range(0, len(images), batch_size)])
    figures = {"images": len(images), "min_cosine": float(found.min()), "mean_cosine": float(found.mean()),
               "threshold": threshold, "passed": bool(found.min() >= threshold)}
    if not figures["passed"]:
        worst = np.argsort(found)[:3]
        raise ContractError(EXIT_BACKEND, "%s disagrees with the native framework: cosine %.7f (min) / %.7f "
                            "(mean) over %d calibration images, %d below %s (worst: %s); not used"
                            % (what, figures["min_cosine"], figures["mean_cosine"], len(images),
                               int((found < threshold).sum()), threshold,
                               ", ".join("#%d %.7f" % (i, found[i]) for i in worst)))
    return figures


class OpenVinoBackbone(object):
    """A converted graph, run by OpenVINO's CPU plugin with the service's own preprocessing."""

    def __init__(self, entry, model, layout, converter_version, config):
        import openvino

        self.entry, self.layout, self.converter_version = entry, layout, converter_version
        self.request = openvino.Core().compile_model(model, "CPU", config).create_infer_request()

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


def _convert(backbone_cls, job, folder, inference_precision):
    """Convert, verify on the calibration crops at `inference_precision`, write <folder>
    atomically; its meta."""
    import openvino

    entry = job.entry
    model = backbone_cls.openvino_model(entry, job.folder)
    config = compile_config(inference_precision)
    converted = OpenVinoBackbone(entry, model, backbone_cls.layout, backbone_cls.converter_version, config)
    native = backbone_cls(entry, job.folder, job.args.batch_size)
    names = calibration_names(job.all_names)
    images = [load_rgb_at(os.path.join(job.args.images, name), job.size)[0] for name in names]
    figures = verify(native, converted, images, job.args.batch_size, "the OpenVINO conversion of model '%s' "
                     "(%s inference)" % (entry["name"], inference_precision), MIN_COSINE[inference_precision])
    figures["list_hash"] = hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()
    parent = os.path.dirname(folder)
    if not os.path.isdir(parent):
        os.makedirs(parent)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(folder) + ".", dir=parent)
    try:
        openvino.save_model(model, os.path.join(tmp, "model.xml"), compress_to_fp16=False)
        meta = {"engine": "openvino", "model": entry["name"], "weights": job.digests,
                "converter": backbone_cls.converter_version, "openvino": openvino_version(),
                "verification": figures, "compile": {"INFERENCE_PRECISION_HINT": inference_precision},
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


def fingerprint(backbone_cls, engine, requested="auto"):
    """What the engine adds to a run's fingerprint: nothing for native (so outputs embedded before
    engines existed stay up to date), the converter's and OpenVINO's versions for openvino (so
    switching engine, or converter, embeds again) and the inference precision chosen on this CPU
    for `requested` (absent for f32, as before precisions were chosen)."""
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
    found = {"engine": engine, "converter": backbone_cls.converter_version, "openvino": version}
    chosen, why = precision(requested)
    if chosen != "f32":
        found["precision"] = chosen
    print("%s inference precision: %s (%s)" % (engine, chosen, why))
    return {"engine": found}


def _verified(backbone_cls, job, inference_precision):
    """(folder, meta) of the verified conversion at `inference_precision`, converting first when
    the cache has none."""
    root = job.args.engine_cache or os.path.join(job.args.out, ".engines")
    folder = os.path.join(root, job.entry["name"], cache_key(backbone_cls, job.entry, job.digests, inference_precision))
    meta = _intact(folder)
    if meta is None:
        print("%s: converting for OpenVINO (%s inference) into %s" % (job.entry["name"], inference_precision, folder))
        meta = _convert(backbone_cls, job, folder, inference_precision)
    return folder, meta


def prepare(backbone_cls, job):
    """For --engine openvino: the verified conversion's cache folder and meta at the precision of
    the run's fingerprint (a bf16 one that fails its check: f32, which must pass its own); for
    native: (None, {'engine': 'native'})."""
    if job.args.engine == "native":
        return None, {"engine": "native"}
    chosen = job.fingerprint["engine"].get("precision", "f32")
    try:
        folder, meta = _verified(backbone_cls, job, chosen)
    except ContractError as exc:
        if chosen == "f32" or job.args.precision != "auto":
            raise
        print("%s: %s; falling back to f32 inference" % (job.entry["name"], exc))
        folder, meta = _verified(backbone_cls, job, "f32")
    return folder, dict(meta, compile=compile_config(meta["compile"]["INFERENCE_PRECISION_HINT"]))


def load(backbone_cls, job):
    """The Backbone of the job's engine."""
    if job.engine_folder is None:
        return backbone_cls(job.entry, job.folder, job.args.batch_size)
    return OpenVinoBackbone(job.entry, os.path.join(job.engine_folder, "model.xml"), backbone_cls.layout,
                            backbone_cls.converter_version, job.engine["compile"])


def summary(meta):
    """What the embed meta records of the engine: the conversion, its verification and the
    compile settings used (precision and threads)."""
    if meta["engine"] == "native":
        return {"engine": "native"}
    return dict((k, meta[k]) for k in ("engine", "converter", "openvino", "verification", "compile"))
