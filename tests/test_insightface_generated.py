"""The InsightFace service's MXNet loader on the large models' interface (r100/r50/r34: 512-d fc1).

Those checkpoints are not available here, so the test saves a small MXNet checkpoint with their
interface: `model-symbol.json` + `model-0000.params`, input `data` 3x112x112 RGB 0-255 (the
symbol scales it itself, as InsightFace's do), `pre_fc1` FullyConnected(512) then `fc1`
BatchNorm(fix_gamma) as in InsightFace's fresnet, and a classifier `fc7` after fc1 so that
reading the last output instead of fc1 would be caught. It recomputes the net in numpy.
"""
import os
import subprocess

import numpy as np
import pytest

from conftest import LFW, lfw_people, run_service
from shared.faces.images import load_rgb
from shared.models import registry as registry_mod
from shared.running.runner import LocalRunner

LARGE = ["model1_insightface", "model2_insightface", "model3_insightface"]
POOL = 14  # 112x112 -> 8x8 average pooling

# Run by the insightface venv's Python (the test's own environment has no MXNet).
BUILD_CHECKPOINT = r'''
import os, sys
import mxnet as mx
import numpy as np

prefix, pool = sys.argv[1], int(sys.argv[2])
rng = np.random.RandomState(0)
features = 3 * (112 // pool) ** 2
data = mx.sym.Variable("data")
body = (data - 127.5) * 0.0078125
body = mx.sym.Pooling(body, kernel=(pool, pool), stride=(pool, pool), pool_type="avg", name="pool")
body = mx.sym.FullyConnected(mx.sym.Flatten(body), num_hidden=512, name="pre_fc1")
fc1 = mx.sym.BatchNorm(body, fix_gamma=True, eps=2e-5, name="fc1")
fc7 = mx.sym.FullyConnected(fc1, num_hidden=10, name="fc7")
arg = {"pre_fc1_weight": rng.randn(512, features) / np.sqrt(features), "pre_fc1_bias": rng.randn(512) * 0.1,
       "fc1_gamma": rng.rand(512) + 0.5, "fc1_beta": rng.randn(512) * 0.1,
       "fc7_weight": rng.randn(10, 512), "fc7_bias": rng.randn(10)}
aux = {"fc1_moving_mean": rng.randn(512) * 0.1, "fc1_moving_var": rng.rand(512) + 0.5}
to_nd = lambda params: dict((k, mx.nd.array(v.astype(np.float32))) for k, v in params.items())
mx.model.save_checkpoint(prefix, 0, fc7, to_nd(arg), to_nd(aux))
np.savez(prefix + "-reference.npz", **dict(arg, **aux))
'''


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("insightface")
    registry = registry_mod.load()
    folders = [os.path.join(str(root), registry.model(m)["weights"]["dir"]) for m in LARGE]
    for folder in folders:
        os.makedirs(folder)
    proc = subprocess.run([LocalRunner().python("insightface"), "-c", BUILD_CHECKPOINT,
                           os.path.join(folders[0], "model"), str(POOL)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for folder in folders[1:]:  # the same checkpoint serves all three entries
        for name in ("model-symbol.json", "model-0000.params"):
            os.link(os.path.join(folders[0], name), os.path.join(folder, name))
    names = [image for _, images in lfw_people(3) for image in images]
    (root / "list.txt").write_text("".join(n + "\n" for n in names))
    return root, folders[0], names


def reference(folder, names):
    """The generated symbol up to fc1 in numpy, on raw RGB crops; then L2-normalised."""
    p = np.load(os.path.join(folder, "model-reference.npz"))
    crops = (np.stack([load_rgb(os.path.join(LFW, n)) for n in names]).astype(np.float64) - 127.5) * 0.0078125
    side = 112 // POOL
    pooled = crops.reshape(len(names), side, POOL, side, POOL, 3).mean(axis=(2, 4)).transpose(0, 3, 1, 2)
    pre = pooled.reshape(len(names), -1) @ p["pre_fc1_weight"].T + p["pre_fc1_bias"]
    fc1 = (pre - p["fc1_moving_mean"]) / np.sqrt(p["fc1_moving_var"] + 2e-5) + p["fc1_beta"]  # fix_gamma: gamma=1
    return fc1 / np.linalg.norm(fc1, axis=1, keepdims=True)


@pytest.mark.parametrize("model", LARGE)
def test_large_insightface_entries_read_a_512d_fc1(generated, tmp_path, model):
    root, folder, names = generated
    code, log = run_service("insightface", ["--model", model, "--weights-root", root, "--images", LFW,
                                            "--list", root / "list.txt", "--out", tmp_path, "--flip",
                                            "--batch-size", 4])
    assert code == 0, log
    embeddings = np.load(tmp_path / "embeddings.npy")
    assert embeddings.shape == np.load(tmp_path / "embeddings_flip.npy").shape == (len(names), 512)
    np.testing.assert_allclose(embeddings, reference(folder, names), atol=1e-5)
