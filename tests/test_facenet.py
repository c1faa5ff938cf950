"""The FaceNet service on generated graphs in both of FaceNet's release formats.

The real 20180402-114759 / 20180408-102900 files are not available here, so the test builds a
small graph with FaceNet's interface (placeholders `input` float32 [None,160,160,3] and
`phase_train` bool, output `embeddings` [None,512] L2-normalised), saves it as FaceNet does
(`model-X.meta` + `model-X.ckpt-N` checkpoint, and a frozen `.pb`), and runs it through the real
entrypoint. Its arithmetic is simple enough to recompute in numpy, which checks the
prewhitening, the channel layout and that phase_train is fed False.
"""
import copy
import json
import os
import subprocess

import numpy as np
import pytest
import yaml

from conftest import LFW, lfw_people, run_service
from shared.faces.crops import derive_prealigned
from shared.faces.images import load_rgb
from shared.models import registry as registry_mod
from shared.running.runner import LocalRunner
from shared.schema import output_files

POOL = 8  # the graph average-pools 8x8 blocks, then one dense layer to 512

# Run by the facenet venv's Python (the test's own environment has no TensorFlow).
BUILD_GRAPHS = r'''
import os, sys
import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1
out, pool = sys.argv[1], int(sys.argv[2])
side = 160 // pool
rng = np.random.RandomState(0)
weights = (rng.randn(side * side * 3, 512) / np.sqrt(side * side * 3)).astype(np.float32)
bias = (rng.randn(512) * 0.1).astype(np.float32)
np.savez(os.path.join(out, "reference.npz"), weights=weights, bias=bias)
graph = tf.Graph()
with graph.as_default():
    tf1.set_random_seed(0)
    images = tf1.placeholder(tf.float32, [None, 160, 160, 3], name="input")
    phase_train = tf1.placeholder(tf.bool, name="phase_train")
    pooled = tf.nn.avg_pool2d(images, pool, pool, "VALID")
    prelogits = tf.matmul(tf.reshape(pooled, [-1, side * side * 3]), tf1.Variable(weights, name="weights"))
    prelogits = prelogits + tf1.Variable(bias, name="bias")
    # Like FaceNet's batch norm and dropout, phase_train changes the result: in training mode
    # this graph adds noise, so a service that fed True would miss the reference.
    prelogits = tf.cond(phase_train, lambda: prelogits + tf.random.normal(tf.shape(prelogits)),
                        lambda: prelogits)
    tf.nn.l2_normalize(prelogits, 1, 1e-10, name="embeddings")
    with tf1.Session(graph=graph) as session:
        session.run(tf1.global_variables_initializer())
        saver = tf1.train.Saver()
        # facenet's train_softmax.py: model-<id>.ckpt-<step> without meta, then model-<id>.meta
        saver.save(session, os.path.join(out, "checkpoint", "model-test.ckpt"), global_step=1,
                   write_meta_graph=False)
        saver.export_meta_graph(os.path.join(out, "checkpoint", "model-test.meta"))
        frozen = tf1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), ["embeddings"])
with open(os.path.join(out, "frozen", "test.pb"), "wb") as f:
    f.write(frozen.SerializeToString())
'''

FORMATS = {
    "frozen": {"test.pb": None},
    "checkpoint": {"model-test.meta": None, "model-test.ckpt-1.index": None,
                   "model-test.ckpt-1.data-00000-of-00001": None},
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("facenet")
    for name in FORMATS:
        (root / name).mkdir()
    proc = subprocess.run([LocalRunner().python("facenet"), "-c", BUILD_GRAPHS, str(root), str(POOL)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(FORMATS["checkpoint"]) <= set(os.listdir(root / "checkpoint"))
    # A registry holding model6_facenet's entry twice, once per format of the generated graph.
    base = registry_mod.load()
    data = base.with_models({})
    for name, files in FORMATS.items():
        entry = copy.deepcopy(base.models["model6_facenet"])
        entry["weights"] = dict(entry["weights"], dir=name, files=files)
        data["models"]["facenet_" + name] = entry
    (root / "models.yaml").write_text(yaml.safe_dump(data))
    people = lfw_people(3)
    names = [image for _, images in people for image in images]
    derive_prealigned(LFW, names, {"160x160": str(root / "crops")})
    (root / "list.txt").write_text("".join(n + "\n" for n in names))
    return root, names


def embed(root, fmt, out, *extra):
    return run_service("facenet", ["--model", "facenet_" + fmt, "--registry", root / "models.yaml",
                                   "--weights-root", root, "--images", root / "crops", "--list", root / "list.txt",
                                   "--out", out, "--batch-size", 4] + list(extra))


def reference(root, names):
    """The generated graph in numpy, on FaceNet's prewhitened crops."""
    params = np.load(root / "reference.npz")
    crops = np.stack([load_rgb(str(root / "crops" / n)) for n in names]).astype(np.float64)
    flat = crops.reshape(len(crops), -1)
    std = np.maximum(flat.std(axis=1), 1.0 / np.sqrt(flat.shape[1]))
    whitened = (crops - flat.mean(axis=1)[:, None, None, None]) / std[:, None, None, None]
    side = 160 // POOL
    pooled = whitened.reshape(len(crops), side, POOL, side, POOL, 3).mean(axis=(2, 4))
    prelogits = pooled.reshape(len(crops), -1) @ params["weights"] + params["bias"]
    return prelogits / np.linalg.norm(prelogits, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def outputs(generated, tmp_path_factory):
    """Each format embedded once through the entrypoint: {format: output folder}."""
    root, _ = generated
    found = {}
    for fmt in sorted(FORMATS):
        out = tmp_path_factory.mktemp("out-" + fmt)
        code, log = embed(root, fmt, out, "--flip", "--augment", "2", "--seed", "3")
        assert code == 0, log
        found[fmt] = out
    return found


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_both_release_formats_match_the_reference(generated, outputs, fmt):
    root, names = generated
    out = outputs[fmt]
    embeddings = np.load(out / "embeddings.npy")
    assert embeddings.shape == (len(names), 512) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embeddings, reference(root, names), atol=2e-5)
    assert np.load(out / "embeddings_flip.npy").shape == (len(names), 512)
    assert np.load(out / "embeddings_aug.npy").shape == (len(names), 2, 512)
    meta = json.loads((out / "embeddings_meta.json").read_text())
    assert meta["versions"]["format"] == fmt and meta["counts"]["resized"] == 0


def test_formats_agree_and_a_rerun_repeats(generated, outputs, tmp_path):
    root, _ = generated
    frozen, checkpoint = [np.load(outputs[f] / "embeddings_aug.npy") for f in ("frozen", "checkpoint")]
    np.testing.assert_allclose(frozen, checkpoint, atol=1e-6)
    code, log = embed(root, "frozen", tmp_path, "--flip", "--augment", "2", "--seed", "3")
    assert code == 0, log
    for name in ("embeddings.npy", "embeddings_flip.npy", "embeddings_aug.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / name), np.load(outputs["frozen"] / name))


def test_a_graph_without_facenet_tensors_is_refused(generated, tmp_path):
    root, _ = generated
    data = yaml.safe_load((root / "models.yaml").read_text())
    data["models"]["facenet_frozen"]["output"]["layer"] = "logits:0"
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(data))
    code, log = run_service("facenet", ["--model", "facenet_frozen", "--registry", tmp_path / "models.yaml",
                                        "--weights-root", root, "--images", root / "crops",
                                        "--list", root / "list.txt", "--out", tmp_path / "out"])
    assert code == 5 and "test.pb has no tensor 'logits:0'" in log, log


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_the_openvino_engine_converts_both_formats(generated, tmp_path, fmt):
    """--engine openvino (shared/models/engines.py): the graph frozen with phase_train bound to False,
    read by OpenVINO's TensorFlow frontend, verified against TensorFlow, matches the reference."""
    root, names = generated
    code, log = embed(root, fmt, tmp_path, "--engine", "openvino", "--engine-cache", tmp_path / "engines",
                      "--precision", "f32")  # the conversion itself; bf16 inference: tests/test_engine.py
    assert code == 0, log
    found = np.load(output_files(str(tmp_path), "embeddings")["embeddings"])
    expected = reference(root, names)
    assert (found * expected).sum(1).min() >= 0.9999
    meta = json.loads((tmp_path / "embeddings_meta.json").read_text())
    assert meta["engine"]["engine"] == "openvino" and meta["engine"]["verification"]["passed"]
