"""MXNet 1.9.1's MKLDNN graph fusion on y1: the crashing case, and the service with fusion on.

The crash (services/insightface/embed.py says why the service leaves out one pass): with the
MKLDNN subgraph backend and its FullyConnected pass, the second forward of one bound executor
fails with "Check failed: !IsMKLDNNData()". Both tests run the real MXNet of the insightface
environment on the real y1 weights.
"""
import os
import subprocess

import numpy as np
import pytest

from conftest import ROOT, lfw_people, run_service
from shared.running.runner import LocalRunner
from shared.schema import output_files
from shared.storage import read_json

# Two forwards of one Module bound to one batch shape, reading the output after each; run by the
# insightface environment's Python.
TWO_FORWARDS = r'''
import os, sys
import mxnet as mx
import numpy as np
from shared.faces.images import load_rgb

folder, crops = sys.argv[1], sys.argv[2:]
symbol, arg_params, aux_params = mx.model.load_checkpoint(os.path.join(folder, "model"), 0)
module = mx.mod.Module(symbol=symbol.get_internals()["fc1_output"], context=mx.cpu(), label_names=None)
module.bind(data_shapes=[("data", (len(crops), 3, 112, 112))], for_training=False)
module.set_params(arg_params, aux_params)
batch = np.stack([load_rgb(c) for c in crops]).astype(np.float32).transpose(0, 3, 1, 2)
for attempt in range(2):
    module.forward(mx.io.DataBatch(data=[mx.nd.array(batch)]), is_train=False)
    print("forward %d: %.6f" % (attempt, module.get_outputs()[0].asnumpy()[0, 0]))
'''

FUSED = {"MXNET_SUBGRAPH_BACKEND": "MKLDNN"}


def _two_forwards(weights_root, lfw, env):
    folder = os.path.join(weights_root, "insightface", "model-y1-test2")
    crops = [os.path.join(lfw, name) for _, names in lfw_people(1) for name in names]
    base = dict((k, v) for k, v in os.environ.items() if not k.startswith("MXNET_"))
    return subprocess.run([LocalRunner().python("insightface"), "-c", TWO_FORWARDS, folder] + crops,
                          capture_output=True, text=True, env=dict(base, PYTHONPATH=ROOT, **env))


@pytest.mark.parametrize("env,crashes", [
    (FUSED, True),  # the default passes: the crash; if this passes, MXNet no longer needs the workaround
    (dict(FUSED, MXNET_DISABLE_MKLDNN_FC_OPT="1"), False),  # the service's setting
    ({"MXNET_SUBGRAPH_BACKEND": "NONE"}, False),  # no fusion at all
], ids=["fused", "fused-without-fc-pass", "unfused"])
def test_second_forward_of_one_executor(weights_root, lfw, env, crashes):
    proc = _two_forwards(weights_root, lfw, env)
    log = proc.stdout + proc.stderr
    if crashes:
        assert proc.returncode != 0 and "IsMKLDNNData" in log, log[-3000:]
        assert "forward 0:" in log and "forward 1:" not in log, log[-3000:]  # the first one is fine
    else:
        assert proc.returncode == 0 and "forward 1:" in log, log[-3000:]
        lines = [line for line in proc.stdout.splitlines() if line.startswith("forward")]
        assert lines[0].split(": ")[1] == lines[1].split(": ")[1], lines  # same input, same output


def test_service_runs_fused_and_matches_unfused(tmp_path, lfw, weights_root):
    """Several forwards on one executor, the flip views and a padded last batch: 7 images x 2
    views in batches of 4 (2 images each) is 4 forwards, the last one padded."""
    names = [name for _, images in lfw_people(5) for name in images][:7]
    (tmp_path / "list.txt").write_text("".join(n + "\n" for n in names))
    runs = {}
    for label, env in (("fused", {}), ("unfused", {"MXNET_SUBGRAPH_BACKEND": "NONE"})):
        out = tmp_path / label
        code, log = run_service("insightface", [
            "--model", "model4_insightface", "--images", lfw, "--list", str(tmp_path / "list.txt"), "--out",
            str(out), "--weights-root", weights_root, "--flip", "--batch-size", "4"], env=env)
        assert code == 0, log[-3000:]
        files = output_files(str(out), "embeddings")
        runs[label] = (np.load(files["embeddings"]), np.load(files["flip"]), read_json(files["meta"]))
    fused, unfused = runs["fused"], runs["unfused"]
    assert fused[2]["versions"]["subgraph_backend"] == "MKLDNN" and unfused[2]["versions"]["subgraph_backend"] == "NONE"
    for key in (0, 1):  # the same embeddings up to float rounding (fusion folds BN into the convolutions)
        assert fused[key].shape == (7, 128)
        assert np.abs(fused[key] - unfused[key]).max() < 1e-5
