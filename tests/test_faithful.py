"""The faithful profile's code path end to end on a tiny benchmark: every faithful switch on
(4 fold columns = 20 heads per model and step, augmented embeddings through the heads,
patience 20, dlib's heads trained, steps 4/6/7 with pseudo-labels), the counts shrunk only
where the profile allows (2 augmented copies instead of 100, 3 epochs instead of 300). It
asserts the path, not the numbers; and a head run killed in the middle of a column resumes to
the bytes of the uninterrupted run."""
import csv
import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from conftest import ROOT, tiny_people
from shared.method.submission import read_submission
from shared.running.runner import LocalRunner
from test_workflow import INVOKE, invoke

MODELS = ["model4_insightface", "model5_dlib"]  # y1 + dlib: the faithful models present here
COLUMNS = ["rt0", "rt1", "rt2", "rt3"]
AUGMENT, EPOCHS = 2, 3
SHRUNK = "profiles:\n  faithful: {max_augment: %d, epochs: %d}\n" % (AUGMENT, EPOCHS)


@pytest.fixture(scope="module")
def faithful(tmp_path_factory):
    root = tmp_path_factory.mktemp("faithful")
    source = tiny_people(root / "people")
    config = str(root / "shrunk.yaml")
    with open(config, "w") as f:
        f.write(SHRUNK)
    workspace = str(root / "ws")
    invoke("data.benchmark", "--source", source, "--known", "12", "--min-images", "3", "--workspace", workspace)
    log = invoke("-f", config, "all", "--profile", "faithful", "--models", ",".join(MODELS), "--runner", "local",
                 "--workspace", workspace)
    return workspace, config, log


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _summary(workspace, model, step):
    return json.load(open(os.path.join(workspace, "heads", model, step, "summary.json")))


def test_the_reduced_benchmark_options_reach_the_dataset(faithful):
    workspace, _, _ = faithful
    info = json.load(open(os.path.join(workspace, "dataset", "benchmark.json")))
    assert info["settings"]["known"] == 12 and info["settings"]["min_images"] == 3
    assert info["counts"]["known_identities"] == 12


def test_augmented_copies_four_columns_and_every_step(faithful):
    workspace, _, log = faithful
    assert "profile faithful" in log
    folds = _rows(os.path.join(workspace, "folds.csv"))
    for model in MODELS:
        embeddings = os.path.join(workspace, "embeddings", model)
        for split, count in (("train", len(folds)), ("test", len(os.listdir(os.path.join(workspace, "dataset", "test"))))):
            assert np.load(os.path.join(embeddings, split + "_aug.npy")).shape[:2] == (count, AUGMENT)
        for step in ("step4", "step6", "step7"):
            summary = _summary(workspace, model, step)
            pseudo = [] if step == "step4" else _rows(os.path.join(workspace, "pseudo", step + ".csv"))
            assert summary["columns"] == COLUMNS and (summary["epochs"], summary["patience"]) == (EPOCHS, 20)
            assert sorted((h["column"], h["fold"]) for h in summary["heads"]) == \
                [(c, f) for c in COLUMNS for f in range(5)]
            assert all(h["epochs"] == EPOCHS for h in summary["heads"])  # patience 20 never stops 3 epochs
            for head in summary["heads"]:  # the fit rows: the other 4 folds plus every pseudo-labelled row
                fit = sum(1 for row in folds if int(row[head["column"]]) != head["fold"])
                assert head["train_rows"] == fit + len(pseudo)
            assert summary["pseudo_rows"] == len(pseudo) and (step == "step4" or pseudo)
            assert (summary["class_ids"][-1] == 1000) == (step != "step4")
    test_images = sorted(os.listdir(os.path.join(workspace, "dataset", "test")))
    for step in ("step4", "step6", "step7", "final"):
        assert sorted(read_submission(os.path.join(workspace, "submissions", step + ".csv"))[0]) == test_images
    report = open(os.path.join(workspace, "reports", "evaluation.md")).read()
    assert all("ensemble %s" % step in report for step in ("step4", "step6", "step7"))


def _without_augment(source, target):
    """A copy of a model's embeddings whose metas list no augmented copies."""
    shutil.copytree(source, target)
    for split in ("train", "test"):
        path = os.path.join(target, split + "_meta.json")
        meta = json.load(open(path))
        del meta["files"]["augment"]
        json.dump(meta, open(path, "w"))


def test_the_heads_train_on_the_augmented_copies(faithful, tmp_path):
    """One column again on the same embeddings without their augmented copies: if the heads
    drew the original embeddings anyway, every head's history would come out the same."""
    workspace, _, _ = faithful
    model = MODELS[0]
    plain = str(tmp_path / "plain")
    _without_augment(os.path.join(workspace, "embeddings", model), plain)
    out = str(tmp_path / "heads")
    LocalRunner().run("head", "train", ["--model", model, "--embeddings", plain, "--folds",
                                        os.path.join(workspace, "folds.csv"), "--columns", "rt0", "--out", out,
                                        "--epochs", EPOCHS, "--patience", 20, "--seed", 2019])
    faithful_rt0 = [h["history"] for h in _summary(workspace, model, "step4")["heads"] if h["column"] == "rt0"]
    plain_rt0 = [h["history"] for h in json.load(open(os.path.join(out, "summary.json")))["heads"]]
    assert len(plain_rt0) == len(faithful_rt0) == 5
    assert all(a["val_loss"] != b["val_loss"] for a, b in zip(plain_rt0, faithful_rt0))


def _without_timing(summary):
    summary.pop("mean_head_seconds")
    for head in summary["heads"]:
        head.pop("seconds")
    return summary


def test_a_head_run_killed_in_the_middle_of_a_column_resumes_to_the_same_bytes(faithful):
    workspace, config, _ = faithful
    model = MODELS[0]
    out = os.path.join(workspace, "heads", model, "step4")
    names = ("val_probs.npy", "test_probs.npy")
    uninterrupted = [open(os.path.join(out, name), "rb").read() for name in names]
    summary = _without_timing(_summary(workspace, model, "step4"))
    shutil.rmtree(out)
    command = [INVOKE, "-f", config, "heads.train", "--models", model, "--step", "step4", "--profile", "faithful",
               "--runner", "local", "--workspace", workspace]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # its own process group: the kill reaches the service
    partial = os.path.join(out, ".partial")
    while not os.path.isfile(os.path.join(partial, "rt1.json")) and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # a crash while rt2's heads train
    proc.wait()
    assert sorted(os.listdir(partial)) == ["rt0.json", "rt0.npz", "rt1.json", "rt1.npz"]
    log = invoke(*command[1:])
    assert "%s rt2 fold 0" % model in log and "%s rt3 fold 4" % model in log
    assert "%s rt0 fold" % model not in log and "%s rt1 fold" % model not in log  # kept, not retrained
    assert [open(os.path.join(out, name), "rb").read() for name in names] == uninterrupted
    assert _without_timing(_summary(workspace, model, "step4")) == summary
    assert not os.path.exists(partial)
