"""`invoke all` end to end on the smallest valid datasets: 1, 2 and 5 identities (fewer classes
than a top-5 has, fewer images than --workers): validated, then every stage, a full submission."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import LFW, ROOT, require
from shared.method.submission import read_submission
from shared.schema import UNKNOWN_LABEL

INVOKE = os.path.join(os.path.dirname(sys.executable), "invoke")


def invoke(*args):
    proc = subprocess.run([INVOKE] + [str(a) for a in args], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("identities", [1, 2, 5])
def test_all_runs_end_to_end_on_a_tiny_dataset(tmp_path, identities):
    source = tmp_path / "people"
    chosen = [name for name in sorted(os.listdir(require(LFW))) if len(os.listdir(os.path.join(LFW, name))) == 4]
    for name in chosen[:identities]:
        shutil.copytree(os.path.join(LFW, name), str(source / name))
    workspace = tmp_path / "ws"
    invoke("data.benchmark", "--source", source, "--workspace", workspace)
    log = invoke("all", "--profile", "smoke", "--models", "model4_insightface", "--workspace", workspace)
    assert "[validate] %s: " % (workspace / "dataset") in log and "of %d identities" % identities in log
    images, ranked = read_submission(str(workspace / "submissions" / "final.csv"))
    assert sorted(images) == sorted(os.listdir(str(workspace / "dataset" / "test")))
    for row in ranked:
        assert len(set(row)) == 5
        if identities < 5:
            assert UNKNOWN_LABEL in row  # the fill of a ranking of fewer than five classes
        assert set(row[:identities]) <= set(range(identities)) | {UNKNOWN_LABEL}
    assert os.path.isfile(str(workspace / "reports" / "evaluation.md"))
