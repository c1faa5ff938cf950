"""The Caffe (vggface2) service: generated VGGFace2-style models for all eight registry entries,
and the real Caffe MobileFaceNet on real LFW crops.

The eight VGGFace2 models are not available here. The tests write models in their format: a
`.prototxt` with the published ResNet-50 / SE-ResNet-50 layer layout (layer names as in the
released models and their MMdnn conversions: conv1/7x7_s2, convS_B_1x1_reduce/3x3/1x1_increase,
_1x1_proj, SE _global_pool/_1x1_down/_1x1_up/_prob and the Axpy sum, pool5/7x7_s1, then
`feat_extract` (1x1 conv, no bias) or `classifier` (1x1 conv to 8631, then softmax `prob`)) and
a `.caffemodel` holding random weights, encoded here as the NetParameter protobuf message of
BVLC caffe.proto (field numbers below). Most tests use nets with every layer but fewer channels,
for speed; one runs the full-width SE-ResNet-50.
"""
import importlib.util
import json
import os
import subprocess

import cv2
import numpy as np
import pytest

from conftest import LFW, ROOT, lfw_people, run_service
from shared.faces.crops import derive_prealigned
from shared.faces.images import load_rgb
from shared.models import registry as registry_mod
from shared.running.runner import LocalRunner
from test_python27 import _python27

SERVICE = os.path.join(ROOT, "services", "vggface2")
STAGES = [(64, 256, 3), (128, 512, 4), (256, 1024, 6), (512, 2048, 3)]  # ResNet-50: mid, out, blocks
VGGFACE2 = sorted(registry_mod.load().names(family="vggface2", original=True))


def load_service_module(name):
    spec = importlib.util.spec_from_file_location("vggface2_" + name, os.path.join(SERVICE, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prototxt = load_service_module("prototxt")


# --- .caffemodel writer: caffe.proto's NetParameter { optional string name = 1; repeated
# LayerParameter layer = 100; }, LayerParameter { name = 1; type = 2; repeated BlobProto
# blobs = 7; }, BlobProto { BlobShape shape = 7; repeated float data = 5 [packed]; },
# BlobShape { repeated int64 dim = 1 [packed]; }. Loaders match weights to layers by name.

def _varint(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number, payload):  # wire type 2: length-delimited (strings, messages, packed arrays)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def caffemodel_bytes(name, weights):
    """[(layer name, layer type, [float arrays])] -> a serialised NetParameter."""
    def blob(array):
        shape = _field(1, b"".join(_varint(d) for d in array.shape))
        return _field(7, shape) + _field(5, np.ascontiguousarray(array, "<f4").tobytes())

    layers = [_field(1, n.encode()) + _field(2, t.encode()) + b"".join(_field(7, blob(a)) for a in arrays)
              for n, t, arrays in weights]
    return _field(1, name.encode()) + b"".join(_field(100, layer) for layer in layers)


class NetWriter(object):
    """Builds a prototxt and its random weights layer by layer (He-initialised convolutions,
    identity batch norm, small last-gamma residual branches so 16 random blocks stay finite)."""

    def __init__(self, name, size, seed):
        self.rng = np.random.RandomState(seed)
        self.lines = ['name: "%s"' % name, 'input: "data"'] + ["input_dim: %d" % d for d in (1, 3, size, size)]
        self.weights = []
        self.channels = {"data": 3}

    def layer(self, name, kind, bottoms, top, params=""):
        self.lines.append('layer { name: "%s" type: "%s" %s top: "%s" %s }' % (
            name, kind, " ".join('bottom: "%s"' % b for b in bottoms), top, params))
        self.channels.setdefault(top, self.channels[bottoms[0]])
        return top

    def conv(self, name, bottom, out, kernel, stride=1, pad=0, bias=False, top=None):
        fan_in = self.channels[bottom] * kernel * kernel
        arrays = [self.rng.randn(out, self.channels[bottom], kernel, kernel).astype(np.float32) * np.sqrt(2.0 / fan_in)]
        if bias:
            arrays.append(self.rng.randn(out).astype(np.float32) * 0.1)
        self.weights.append((name, "Convolution", arrays))
        self.channels[top or name] = out
        return self.layer(name, "Convolution", [bottom], top or name,
                          "convolution_param { num_output: %d kernel_size: %d stride: %d pad: %d bias_term: %s }"
                          % (out, kernel, stride, pad, "true" if bias else "false"))

    def batch_norm(self, blob, gamma=1.0):
        channels = self.channels[blob]
        self.weights.append((blob + "/bn", "BatchNorm", [np.zeros(channels, np.float32), np.ones(channels, np.float32),
                                                         np.ones(1, np.float32)]))
        self.weights.append((blob + "/bn/scale", "Scale", [np.full(channels, gamma, np.float32),
                                                           self.rng.randn(channels).astype(np.float32) * 0.1]))
        self.layer(blob + "/bn", "BatchNorm", [blob], blob, "batch_norm_param { use_global_stats: true }")
        return self.layer(blob + "/bn/scale", "Scale", [blob], blob, "scale_param { bias_term: true }")

    def text(self):
        return "\n".join(self.lines) + "\n"


def vggface2_net(model, width=1.0, seed=0):
    """(prototxt text, caffemodel bytes) of a VGGFace2-style net for a registry entry."""
    entry = registry_mod.load().model(model)
    se = model.startswith("vggface2_senet50")
    head, dim = entry["output"]["layer"], entry["output"]["dim"]
    scaled = lambda channels: max(4, int(channels * width))  # noqa: E731
    net = NetWriter(model, 224, seed)
    x = net.conv("conv1/7x7_s2", "data", scaled(64), 7, stride=2, pad=3)
    net.batch_norm(x)
    net.layer("conv1/relu_7x7_s2", "ReLU", [x], x)
    x = net.layer("pool1/3x3_s2", "Pooling", [x], "pool1/3x3_s2", "pooling_param { pool: MAX kernel_size: 3 stride: 2 }")
    for stage, (mid, out, blocks) in enumerate(STAGES, start=2):
        for block in range(1, blocks + 1):
            prefix = "conv%d_%d" % (stage, block)
            stride = 2 if block == 1 and stage > 2 else 1
            y = net.conv(prefix + "_1x1_reduce", x, scaled(mid), 1, stride=stride)
            net.batch_norm(y)
            net.layer(prefix + "_1x1_reduce/relu", "ReLU", [y], y)
            y = net.conv(prefix + "_3x3", y, scaled(mid), 3, pad=1)
            net.batch_norm(y)
            net.layer(prefix + "_3x3/relu", "ReLU", [y], y)
            y = net.conv(prefix + "_1x1_increase", y, scaled(out), 1)
            net.batch_norm(y, gamma=0.2)
            shortcut = x
            if block == 1:
                shortcut = net.conv(prefix + "_1x1_proj", x, scaled(out), 1, stride=stride)
                net.batch_norm(shortcut)
            if se:
                s = net.layer(prefix + "_global_pool", "Pooling", [y], prefix + "_global_pool",
                              "pooling_param { pool: AVE global_pooling: true }")
                s = net.conv(prefix + "_1x1_down", s, max(1, scaled(out) // 16), 1, bias=True)
                net.layer(prefix + "_1x1_down/relu", "ReLU", [s], s)
                s = net.conv(prefix + "_1x1_up", s, scaled(out), 1, bias=True)
                s = net.layer(prefix + "_prob", "Sigmoid", [s], s)
                x = net.layer(prefix, "Axpy", [s, y, shortcut], prefix)
            else:
                x = net.layer(prefix, "Eltwise", [y, shortcut], prefix, "eltwise_param { operation: SUM }")
            net.layer(prefix + "/relu", "ReLU", [x], x)
    x = net.layer("pool5/7x7_s1", "Pooling", [x], "pool5/7x7_s1", "pooling_param { pool: AVE kernel_size: 7 stride: 1 }")
    net.conv(head, x, dim, 1, bias=(head == "classifier"))
    if head == "classifier":
        net.layer("prob", "Softmax", [head], "prob")
    return net.text(), caffemodel_bytes(model, net.weights)


def write_model(root, model, width, seed=0):
    entry = registry_mod.load().model(model)
    folder = os.path.join(str(root), entry["weights"]["dir"])
    os.makedirs(folder)
    text, weights = vggface2_net(model, width, seed)
    for name in entry["weights"]["files"]:
        with open(os.path.join(folder, name), "wb") as f:
            f.write(text.encode() if name.endswith(".prototxt") else weights)
    return folder


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """Real LFW faces at the 224x224 VGGFace2 crop: 3 people x 2 images."""
    root = tmp_path_factory.mktemp("crops")
    names = [image for _, images in lfw_people(3) for image in images]
    derive_prealigned(LFW, names, {"224x224": str(root / "224")})
    (root / "list.txt").write_text("".join(n + "\n" for n in names))
    return root, names


def embed(model, weights_root, crops, out, env=None, extra=()):
    root, _ = crops
    return run_service("vggface2", ["--model", model, "--weights-root", weights_root, "--images", root / "224",
                                    "--list", root / "list.txt", "--out", out, "--flip", "--batch-size", 4]
                       + list(extra), env=env)


# --- the network-definition tools -------------------------------------------------------------

def test_prototxt_round_trip_keeps_the_real_net(weights_root):
    path = os.path.join(weights_root, "caffe-mobilefacenet", "mobilefacenet-v0.prototxt")
    with open(path) as f:
        net = prototxt.parse(f.read(), path)
    again = prototxt.parse(prototxt.dump(net))
    assert again == net and len(prototxt.layers(net)) == 198
    assert prototxt.input_name(net) == "data"
    assert prototxt.producers(net)["fc1"] == "fc1_scale"  # the in-place Scale writes fc1 last


def test_prototxt_errors_name_the_file():
    with pytest.raises(prototxt.PrototxtError, match="net.prototxt: 1 unclosed"):
        prototxt.parse('layer { name: "a"', "net.prototxt")
    with pytest.raises(prototxt.PrototxtError, match="net.prototxt: expected ':' or '{' after 'name'"):
        prototxt.parse('layer { name "a" }', "net.prototxt")


def test_axpy_expansion_computes_a_times_x_plus_y():
    """A one-block SE net through OpenCV after expand_axpy, against the same block in numpy."""
    net = NetWriter("se", 6, seed=1)
    c = net.conv("c", "data", 4, 1)
    net.batch_norm(c, gamma=0.5)
    s = net.layer("gp", "Pooling", [c], "gp", "pooling_param { pool: AVE global_pooling: true }")
    s = net.conv("down", s, 2, 1, bias=True)
    net.layer("down/relu", "ReLU", [s], s)
    s = net.conv("up", s, 4, 1, bias=True)
    net.layer("prob", "Sigmoid", [s], s)
    proj = net.conv("proj", "data", 4, 1)
    net.layer("sum", "Axpy", [s, c, proj], "sum")
    definition = prototxt.expand_axpy(prototxt.parse(net.text()))
    assert [prototxt.values(l, "type")[0] for l in prototxt.layers(definition)][-3:] == ["Reshape", "Scale", "Eltwise"]
    cv = cv2.dnn.readNetFromCaffe(bytearray(prototxt.dump(definition).encode()),
                                  bytearray(caffemodel_bytes("se", net.weights)))
    x = np.random.RandomState(2).randn(3, 3, 6, 6).astype(np.float32)
    cv.setInput(x)
    got = cv.forward(prototxt.producers(definition)["sum"])

    w = dict((name, arrays) for name, _, arrays in net.weights)
    conv = lambda name, v: np.einsum("oi,nihw->nohw", w[name][0][:, :, 0, 0], v)  # noqa: E731
    (mean, var, factor), (gamma, beta) = w["c/bn"], w["c/bn/scale"]
    col = lambda v: v[None, :, None, None]  # noqa: E731
    bn = (conv("c", x) - col(mean / factor)) / np.sqrt(col(var / factor) + 1e-5) * col(gamma) + col(beta)
    down = np.maximum(bn.mean(axis=(2, 3)) @ w["down"][0][:, :, 0, 0].T + w["down"][1], 0)
    prob = 1 / (1 + np.exp(-(down @ w["up"][0][:, :, 0, 0].T + w["up"][1])))
    np.testing.assert_allclose(got, prob[:, :, None, None] * bn + conv("proj", x), atol=1e-4)


@pytest.mark.skipif(_python27() is None, reason="no Python 2.7 interpreter here (the Caffe image checks it)")
def test_python27_rewrites_the_se_net_the_same_way():
    """The network-definition code runs under Python 2.7 (numpy-free) with the same result."""
    text, _ = vggface2_net("vggface2_senet50_128", width=0.125)
    expected = prototxt.dump(prototxt.expand_axpy(prototxt.parse(text)))
    proc = subprocess.run([_python27(), "-c", "import sys, prototxt; sys.stdout.write(prototxt.dump("
                           "prototxt.expand_axpy(prototxt.parse(sys.stdin.read()))))"],
                          input=text, cwd=SERVICE, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected and expected.count('type: "Reshape"') == 16


# --- the eight VGGFace2 registry entries, generated ----------------------------------------------

@pytest.fixture(scope="module")
def vggface2_weights(tmp_path_factory):
    """All eight models at 1/8 width (every layer, real input and output shapes)."""
    root = tmp_path_factory.mktemp("vggface2")
    for number, model in enumerate(VGGFACE2):
        write_model(root, model, width=0.125, seed=number)
    return root


@pytest.mark.parametrize("model", VGGFACE2)
def test_every_vggface2_entry_embeds(model, vggface2_weights, crops, tmp_path):
    code, log = embed(model, vggface2_weights, crops, tmp_path)
    assert code == 0, log
    dim = registry_mod.load().model(model)["output"]["dim"]
    count = len(crops[1])
    embeddings, flipped = np.load(tmp_path / "embeddings.npy"), np.load(tmp_path / "embeddings_flip.npy")
    assert embeddings.shape == flipped.shape == (count, dim) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert np.all(np.isfinite(embeddings)) and np.abs(embeddings - flipped).max() > 1e-4
    assert np.ptp(embeddings, axis=0).max() > 1e-3  # different faces, different embeddings
    meta = json.loads((tmp_path / "embeddings_meta.json").read_text())
    assert meta["versions"]["backend"] == "opencv" and meta["counts"]["resized"] == 0


def test_output_is_the_registry_blob_after_bgr_mean_preprocessing(vggface2_weights, crops, tmp_path):
    """resnet50_ft: `classifier` logits (not the net's final `prob`), from BGR crops minus the
    VGGFace2 mean, against a plain OpenCV run of the files with the preprocessing done here."""
    model = "vggface2_resnet50_ft"
    code, log = embed(model, vggface2_weights, crops, tmp_path)
    assert code == 0, log
    folder = os.path.join(str(vggface2_weights), "vggface2", "resnet50_ft")
    net = cv2.dnn.readNetFromCaffe(os.path.join(folder, "resnet50_ft.prototxt"),
                                   os.path.join(folder, "resnet50_ft.caffemodel"))
    root, names = crops
    images = np.stack([load_rgb(str(root / "224" / n)) for n in names]).astype(np.float32)
    net.setInput((images[..., ::-1] - np.float32([91.4953, 103.8827, 131.0912])).transpose(0, 3, 1, 2))
    logits = net.forward("classifier").reshape(len(names), -1)
    expected = logits / np.linalg.norm(logits, axis=1, keepdims=True)
    np.testing.assert_allclose(np.load(tmp_path / "embeddings.npy"), expected, atol=1e-5)


def test_reruns_are_identical(vggface2_weights, crops, tmp_path):
    for run in ("a", "b"):
        code, log = embed("vggface2_senet50_128", vggface2_weights, crops, tmp_path / run, extra=["--augment", "1"])
        assert code == 0, log
    for name in ("embeddings.npy", "embeddings_flip.npy", "embeddings_aug.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / "a" / name), np.load(tmp_path / "b" / name))


def test_full_size_se_resnet50(crops, tmp_path):
    """The full-width SE-ResNet-50 (about 26M weights, 16 Axpy blocks) through the entrypoint."""
    write_model(tmp_path / "weights", "vggface2_senet50_256", width=1.0)
    code, log = embed("vggface2_senet50_256", tmp_path / "weights", crops, tmp_path / "out")
    assert code == 0, log
    embeddings = np.load(tmp_path / "out" / "embeddings.npy")
    assert embeddings.shape == (len(crops[1]), 256)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


# --- errors --------------------------------------------------------------------------------------

def test_missing_files_say_what_and_where(crops, tmp_path):
    code, log = embed("vggface2_senet50_ft", tmp_path, crops, tmp_path / "out")
    assert code == 4, log
    assert "senet50_ft.prototxt" in log and os.path.join(str(tmp_path), "vggface2", "senet50_ft") in log
    assert "Oxford VGG" in log and not (tmp_path / "out" / "embeddings.npy").exists()


@pytest.mark.parametrize("backend,message", [("caffe", "FACES_CAFFE_BACKEND=caffe but pycaffe does not import"),
                                             ("tensorrt", "choose one of auto, caffe, opencv")])
def test_backend_choice_errors(vggface2_weights, crops, tmp_path, backend, message):
    code, log = embed("vggface2_resnet50_128", vggface2_weights, crops, tmp_path, env={"FACES_CAFFE_BACKEND": backend})
    assert code == 5 and message in log, log


# --- the real Caffe MobileFaceNet ----------------------------------------------------------------

def test_real_caffe_mobilefacenet_separates_people(weights_root, tmp_path):
    people = lfw_people(6)
    names = [image for _, images in people for image in images]
    (tmp_path / "list.txt").write_text("".join(n + "\n" for n in names))
    code, log = run_service("vggface2", ["--model", "caffe_mobilefacenet", "--weights-root", weights_root,
                                         "--images", LFW, "--list", tmp_path / "list.txt", "--out", tmp_path / "out",
                                         "--flip"], env={"FACES_CAFFE_BACKEND": "opencv"})
    assert code == 0, log
    embeddings = np.load(tmp_path / "out" / "embeddings.npy") + np.load(tmp_path / "out" / "embeddings_flip.npy")
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    cosine = embeddings @ embeddings.T
    person = np.repeat(np.arange(len(people)), 2)
    same = cosine[(person[:, None] == person[None]) & ~np.eye(len(names), dtype=bool)]
    different = cosine[person[:, None] != person[None]]
    assert same.min() > different.max() and same.mean() > 0.5 and different.mean() < 0.2, (same, different)


def test_weights_check_tells_present_missing_and_mismatched(weights_root, tmp_path):
    from pipeline.weights import MISMATCH, MISSING, PRESENT, model_status

    entry = registry_mod.load().model("caffe_mobilefacenet")
    assert model_status(entry, weights_root) == (PRESENT, os.path.join(weights_root, "caffe-mobilefacenet"),
                                                 "sha256 verified")
    status, folder, detail = model_status(entry, str(tmp_path))
    assert (status, detail) == (MISSING, "mobilefacenet-v0.caffemodel, mobilefacenet-v0.prototxt")
    os.makedirs(folder)
    for name in entry["weights"]["files"]:
        with open(os.path.join(folder, name), "wb") as f:
            f.write(b"not the model")
    status, _, detail = model_status(entry, str(tmp_path))
    assert status == MISMATCH and "sha256" in detail and folder in detail


CAFFE_PYTHON = os.environ.get("FACES_CAFFE_PYTHON")


@pytest.mark.skipif(not CAFFE_PYTHON, reason="FACES_CAFFE_PYTHON (a Python with pycaffe, e.g. in the Caffe "
                    "image) is not set: pycaffe cannot be installed in a local virtualenv")
def test_pycaffe_matches_opencv(weights_root, vggface2_weights, crops, tmp_path):
    root, names = crops
    for model, weights in (("caffe_mobilefacenet", weights_root), ("vggface2_senet50_256", vggface2_weights)):
        outputs = []
        for backend, python in (("opencv", LocalRunner().python("vggface2")), ("caffe", CAFFE_PYTHON)):
            out = tmp_path / model / backend
            proc = subprocess.run([python, os.path.join(SERVICE, "embed.py"), "--model", model, "--weights-root",
                                   str(weights), "--images", str(root / "224"), "--list", str(root / "list.txt"),
                                   "--out", str(out), "--flip"], capture_output=True, text=True,
                                  env=dict(os.environ, PYTHONPATH=ROOT, FACES_CAFFE_BACKEND=backend))
            assert proc.returncode == 0, proc.stdout + proc.stderr
            outputs.append(np.load(str(out / "embeddings.npy")))
        np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-4)


@pytest.mark.parametrize("model", ["vggface2_resnet50_128", "vggface2_senet50_ft"])
def test_the_openvino_engine_converts_resnet_and_se_nets(model, vggface2_weights, crops, tmp_path):
    """--engine openvino (services/vggface2/convert.py): the graph built from the prototxt (the SE
    nets' Axpy expanded) matches OpenCV's importer on every image and flip, and says so in the meta."""
    found = {}
    for engine in ("native", "openvino"):
        out = tmp_path / engine
        code, log = embed(model, vggface2_weights, crops, out,
                          extra=["--engine", engine, "--engine-cache", str(tmp_path / "engines"),
                                 "--precision", "f32"])  # the conversion itself; bf16: tests/test_engine.py
        assert code == 0, log
        found[engine] = [np.load(out / name) for name in ("embeddings.npy", "embeddings_flip.npy")]
    for native, converted in zip(found["native"], found["openvino"]):
        assert (native * converted).sum(1).min() >= 0.9999  # both L2-normalised
    meta = json.loads((tmp_path / "openvino" / "embeddings_meta.json").read_text())
    assert meta["engine"]["engine"] == "openvino" and meta["engine"]["verification"]["passed"]
