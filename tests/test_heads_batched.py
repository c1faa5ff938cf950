"""The heads of a fold column trained together (services/head/batched.py) against one at a time
(model.py) on real embeddings of a tiny benchmark, and a model whose heads are skipped
(invoke.yaml skip_zero_weight_heads) still served by the ensemble and the evaluation."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import ROOT, tiny_people
from pipeline.context import RunContext
from pipeline.heads import skipped_heads
from shared.models.registry import REGISTRY_PATH
from shared.running import settings as settings_mod
from shared.running.runner import LocalRunner

INVOKE = os.path.join(os.path.dirname(sys.executable), "invoke")
MODELS = "model4_insightface,model5_dlib"


def run(command, **env):
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT, **env))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny benchmark embedded by y1 (one augmented view per train image) and dlib."""
    source = tiny_people(tmp_path_factory.mktemp("people"))
    ws = str(tmp_path_factory.mktemp("ws") / "w")
    for task in (["data.benchmark", "--source", source], ["align.prealigned"], ["split"],
                 ["embed.run", "--models", MODELS, "--profile", "smoke", "--runner", "local"]):
        run([INVOKE] + task + ["--workspace", ws])
    return ws


def train(ws, out, *extra, **env):
    args = ["--model", "model4_insightface", "--embeddings", os.path.join(ws, "embeddings", "model4_insightface"),
            "--folds", os.path.join(ws, "folds.csv"), "--columns", "rt0", "--out", out, "--seed", "7"] + list(extra)
    run(LocalRunner().command("head", "train", args), **env)
    summary = json.load(open(os.path.join(out, "summary.json")))
    return summary, dict((n, np.load(os.path.join(out, n + ".npy"))) for n in ("val_probs", "test_probs"))


def test_same_seed_same_bytes_and_early_stopped_heads_keep_their_best(workspace, tmp_path):
    first, _ = train(workspace, str(tmp_path / "a"), "--epochs", "30", "--patience", "2")
    train(workspace, str(tmp_path / "b"), "--epochs", "30", "--patience", "2")
    for name in ("val_probs.npy", "test_probs.npy"):
        assert open(str(tmp_path / "a" / name), "rb").read() == open(str(tmp_path / "b" / name), "rb").read()
    assert first["heads_trained"] == "together" and len(first["heads"]) == 5
    stopped = [r for r in first["heads"] if r["epochs"] < 30]
    assert stopped  # the tiny folds saturate: heads stop at different epochs
    assert len(set(r["epochs"] for r in first["heads"])) > 1
    for record in first["heads"]:
        assert [len(record["history"][k]) for k in ("val_top1", "val_loss", "learning_rate")] == [record["epochs"]] * 3
        assert record["history"]["val_top1"][record["best_epoch"]] == pytest.approx(record["val_top1"], abs=1e-5)
    for record in stopped:  # frozen once it waited `patience` epochs without a better one
        assert record["epochs"] == record["best_epoch"] + 1 + 2


def test_without_dropout_together_is_the_one_at_a_time_head(workspace, tmp_path):
    """Dropout is the one random draw the two paths make differently: without it they share the
    initialisation, batch order, views, learning rates and Adam, so only rounding differs."""
    registry = yaml.safe_load(open(REGISTRY_PATH))
    registry["head_defaults"]["dropout"] = 0.0
    path = str(tmp_path / "models.yaml")
    yaml.safe_dump(registry, open(path, "w"))
    found = [train(workspace, str(tmp_path / name), "--epochs", "5", "--patience", "5", "--registry", path, *extra)
             for name, extra in (("together", ["--matmul", "float32"]),  # model.Head's arithmetic (bf16 rounds ~1e-2)
                                 ("one", ["--one-at-a-time"]))]
    (together, arrays), (one, reference) = found
    assert one["heads_trained"] == "one at a time"
    for name in arrays:
        assert arrays[name].shape == reference[name].shape and arrays[name].dtype == reference[name].dtype
        assert np.abs(arrays[name] - reference[name]).max() < 1e-3
    assert [r["epochs"] for r in together["heads"]] == [r["epochs"] for r in one["heads"]]
    assert sorted(together) == sorted(one)


def _cpu_bf16():
    """Whether /proc/cpuinfo lists AVX512-BF16 or AMX-BF16 (read here, not through shared/hardware.py)."""
    flags = set(f for line in open("/proc/cpuinfo") if line.startswith("flags") for f in line.split(":")[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


@pytest.mark.parametrize("env, expected", [
    ({}, "bfloat16" if _cpu_bf16() else "float32"),  # auto: what this CPU supports
    ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "float32"),  # oneDNN as on a CPU without AVX-512: bf16 would abort
    ({"TF_ENABLE_ONEDNN_OPTS": "0"}, "float32"),  # the plain Eigen path: bf16 would be 2x slower
])
def test_the_training_dtype_follows_the_cpu_and_onednn(workspace, tmp_path, env, expected):
    summary, arrays = train(workspace, str(tmp_path / "heads"), "--epochs", "2", "--patience", "2", **env)
    assert summary["train_matmul"]["requested"] == "auto"
    assert summary["train_matmul"]["used"] == summary["settings"]["train_matmul"] == expected
    assert [r["epochs"] for r in summary["heads"]] == [2] * 5 and np.isfinite(arrays["test_probs"]).all()


def test_a_forced_bfloat16_that_onednn_would_abort_on_is_refused_in_one_line(workspace, tmp_path):
    if not _cpu_bf16():
        pytest.skip("this CPU has no bf16 kernels to cap")
    command = LocalRunner().command("head", "train", [
        "--model", "model4_insightface", "--embeddings", os.path.join(workspace, "embeddings", "model4_insightface"),
        "--folds", os.path.join(workspace, "folds.csv"), "--columns", "rt0", "--out", str(tmp_path / "h"),
        "--epochs", "1", "--matmul", "bfloat16"])
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT, ONEDNN_MAX_CPU_ISA="AVX2"))
    assert proc.returncode == 2 and "ONEDNN_MAX_CPU_ISA=AVX2" in proc.stderr and "Traceback" not in proc.stderr


def test_quick_skips_the_heads_of_zero_weight_models_and_faithful_trains_them():
    config = settings_mod.load()
    chosen = ["model4_insightface", "model5_dlib"]
    assert skipped_heads(RunContext(config, "local", "quick"), chosen) == ["model5_dlib"]
    assert skipped_heads(RunContext(config, "local", "faithful"), chosen) == []


def test_a_model_without_heads_still_serves_the_baselines(workspace, tmp_path):
    """dlib embedded, its heads skipped: the step-4 submission and the evaluation run on y1's
    heads, and dlib still has its nearest-neighbour and SVM rows."""
    heads = os.path.join(workspace, "heads")
    train(workspace, os.path.join(heads, "model4_insightface", "step4"), "--epochs", "3", "--patience", "2")
    common = ["--models", MODELS, "--heads", heads, "--embeddings", os.path.join(workspace, "embeddings"),
              "--folds", os.path.join(workspace, "folds.csv"), "--step", "step4",
              "--rules", json.dumps(settings_mod.load()["rules"])]
    submission = str(tmp_path / "step4.csv")
    run(LocalRunner().command("head", "ensemble", ["submit"] + common + ["--out", submission]))
    assert len(open(submission).read().splitlines()) == 1 + len(os.listdir(os.path.join(workspace, "dataset", "test")))
    reports = str(tmp_path / "reports")
    run(LocalRunner().command("head", "evaluate", common + ["--out", reports, "--submissions", str(tmp_path),
                                                             "--truth", os.path.join(workspace, "dataset", "test_truth.csv")]))
    evaluation = json.load(open(os.path.join(reports, "evaluation.json")))
    assert sorted(evaluation["models"]) == ["model4_insightface"]
    assert sorted(evaluation["baselines"]) == ["model4_insightface", "model5_dlib"]
