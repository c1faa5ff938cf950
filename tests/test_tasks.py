"""The invoke tasks end to end on a small real dataset: benchmark -> align -> embed, and the
verification benchmark, run exactly as a user runs them."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import LFW, ROOT, SETTINGS, lfw_people, require
from shared.bench.verification import read_pairs

INVOKE = os.path.join(os.path.dirname(sys.executable), "invoke")


def invoke(*args, **env):
    proc = subprocess.run([INVOKE] + list(args), cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, **env))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("people")
    for name, _ in lfw_people(12, per_person=3):
        shutil.copytree(os.path.join(require(LFW), name), str(root / name))
    return str(root)


def test_benchmark_align_embed(source, tmp_path):
    workspace = str(tmp_path / "ws")
    invoke("data.benchmark", "--source", source, "--workspace", workspace)
    invoke("align.prealigned", "--crops", "112x112,150x150", "--workspace", workspace)
    train_names = open(os.path.join(workspace, "aligned", "train.txt")).read().split()
    assert len(train_names) >= 12
    invoke("embed.run", "--models", "model4_insightface", "--augment", "1", "--workspace", workspace)
    out = os.path.join(workspace, "embeddings", "model4_insightface")
    assert np.load(os.path.join(out, "train.npy")).shape == (len(train_names), 128)
    assert np.load(os.path.join(out, "train_aug.npy")).shape == (len(train_names), 1, 128)
    assert not os.path.exists(os.path.join(out, "train_flip.npy"))  # registry: flip for test only
    test_rows = np.load(os.path.join(out, "test.npy")).shape[0]
    assert np.load(os.path.join(out, "test_flip.npy")).shape == (test_rows, 128)
    assert "up to date" in invoke("embed.run", "--models", "model4_insightface", "--augment", "1",
                                  "--workspace", workspace)
    assert json.load(open(os.path.join(out, "train_meta.json")))["seed"] == SETTINGS["seed"]  # invoke.yaml's

    # The seed reaches the augmentation through invoke's config (INVOKE_SEED overrides invoke.yaml).
    other = str(tmp_path / "other")
    shutil.copytree(os.path.join(workspace, "aligned"), os.path.join(other, "aligned"))
    invoke("embed.run", "--models", "model4_insightface", "--splits", "train", "--augment", "1",
           "--workspace", other, INVOKE_SEED="7")
    reseeded = os.path.join(other, "embeddings", "model4_insightface")
    assert json.load(open(os.path.join(reseeded, "train_meta.json")))["seed"] == 7
    assert np.array_equal(np.load(os.path.join(out, "train.npy")), np.load(os.path.join(reseeded, "train.npy")))
    assert not np.allclose(np.load(os.path.join(out, "train_aug.npy")), np.load(os.path.join(reseeded, "train_aug.npy")))


def test_lfw_pairs_prints_accuracy(tmp_path):
    pairs = read_pairs(os.path.join(os.path.dirname(require(LFW)), "pairs.txt"))
    subset = [p for p in pairs if p[2]][:15] + [p for p in pairs if not p[2]][:15]
    lines = []
    for a, b, same in subset:
        (pa, ia), (pb, ib) = [(os.path.dirname(x), int(x[-8:-4])) for x in (a, b)]
        lines.append("%s\t%d\t%d" % (pa, ia, ib) if same else "%s\t%d\t%s\t%d" % (pa, ia, pb, ib))
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    log = invoke("bench.lfw-pairs", "--model", "model4_insightface", "--pairs", str(tmp_path / "pairs.txt"),
                 "--images", LFW, "--workspace", str(tmp_path / "ws"))
    accuracy = float(re.search(r"^accuracy (\d\.\d{4}) \+- \d\.\d{4}$", log, re.M).group(1))
    assert accuracy >= 0.9
    figures = re.search(r"^figures: (.+)$", log, re.M).group(1).split(", ")
    assert [os.path.basename(f) for f in figures] == ["pairs_roc.png", "pairs_similarity.png"]
    for figure in figures:
        assert open(figure, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
