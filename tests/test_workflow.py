"""`invoke all` end to end on a tiny real benchmark: every stage, skipping, and reproducibility."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import LFW, ROOT, require
from shared.submission import read_submission

INVOKE = os.path.join(os.path.dirname(sys.executable), "invoke")
ALL = ["all", "--profile", "smoke", "--models", "model4_insightface"]


def invoke(*args):
    proc = subprocess.run([INVOKE] + list(args), cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """16 identities with 3+ images (known) and 10 with one (unknown candidates)."""
    root = tmp_path_factory.mktemp("people")
    multi = single = 0
    for name in sorted(os.listdir(require(LFW))):
        count = len(os.listdir(os.path.join(LFW, name)))
        if (count >= 3 and multi < 16) or (count == 1 and single < 10):
            shutil.copytree(os.path.join(LFW, name), str(root / name))
            multi, single = multi + (count >= 3), single + (count == 1)
    return str(root)


@pytest.fixture(scope="module")
def first_run(source, tmp_path_factory):
    workspace = str(tmp_path_factory.mktemp("ws") / "a")
    invoke("data.benchmark", "--source", source, "--workspace", workspace)
    return workspace, invoke(*(ALL + ["--workspace", workspace]))


def test_all_writes_submissions_and_the_evaluation(first_run):
    workspace, log = first_run
    test_images = sorted(os.listdir(os.path.join(workspace, "dataset", "test")))
    for step in ("step4", "step6", "step7", "final"):
        images, ranked = read_submission(os.path.join(workspace, "submissions", step + ".csv"))
        assert sorted(images) == test_images
        assert all(len(set(row)) == 5 for row in ranked)
    report = open(os.path.join(workspace, "reports", "evaluation.md")).read()
    for row in ("ensemble step4", "ensemble step7", "nearest neighbour (model4_insightface", "linear SVM"):
        assert row in report
    assert open(os.path.join(workspace, "folds.csv")).readline().strip().endswith(",rt29")
    assert "ensemble step4: groups facenet, vggface2 absent" in log
    assert "[all] wall time per stage" in log


def test_rerun_skips_and_a_deleted_step_reruns_what_depends_on_it(first_run):
    workspace, _ = first_run
    final = open(os.path.join(workspace, "submissions", "final.csv"), "rb").read()
    log = invoke(*(ALL + ["--workspace", workspace]))
    assert "[heads/model4_insightface/step4] up to date" in log and "] running" not in log
    shutil.rmtree(os.path.join(workspace, "heads", "model4_insightface", "step6"))
    log = invoke(*(ALL + ["--workspace", workspace]))
    assert "[heads/model4_insightface/step4] up to date" in log
    assert "[heads/model4_insightface/step6] running" in log
    assert "up to date (" in log  # the embeddings were not recomputed
    assert open(os.path.join(workspace, "submissions", "final.csv"), "rb").read() == final


def test_same_seed_gives_a_byte_identical_submission(source, first_run, tmp_path):
    workspace, _ = first_run
    other = str(tmp_path / "b")
    invoke("data.benchmark", "--source", source, "--workspace", other)
    invoke(*(ALL + ["--workspace", other]))
    for step in ("step4", "step7"):
        assert open(os.path.join(workspace, "submissions", step + ".csv"), "rb").read() == \
            open(os.path.join(other, "submissions", step + ".csv"), "rb").read()
