"""Lending a root caller's workspace to the images' user: overlapping runs (a cluster's tasks)
give the folders back only when the last one ends."""
import os
import subprocess
import sys

import pytest

from shared.running.lending import IMAGE_USER, LentFolders

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="only a root caller lends folders to the images' user")


def owner(path):
    return os.lstat(str(path)).st_uid


def test_overlapping_loans_give_back_when_the_last_ends(tmp_path):
    workspace = tmp_path / "ws"
    (workspace / "a").mkdir(parents=True)
    first, second = LentFolders([str(workspace)]), LentFolders([str(workspace)])
    first.__enter__()
    (workspace / "made_by_root").mkdir()  # the tasks make folders between containers
    second.__enter__()
    assert owner(workspace / "made_by_root") == IMAGE_USER[0]  # lent to the second container too
    out = workspace / "a" / "out.npy"  # what the second container writes
    out.write_bytes(b"0")
    os.chown(str(out), *IMAGE_USER)
    first.__exit__(None, None, None)
    assert owner(workspace / "a") == IMAGE_USER[0] and owner(out) == IMAGE_USER[0]  # still lent
    second.__exit__(None, None, None)
    for path in (workspace, workspace / "a", workspace / "made_by_root", out):
        assert owner(path) == 0, path
    assert not os.path.exists(str(workspace / ".lent.json"))


def test_a_dead_holder_does_not_keep_the_folders_lent(tmp_path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    code = ("import os, sys; sys.path.insert(0, %r); from shared.running.lending import LentFolders; "
            "LentFolders([%r]).__enter__(); os._exit(0)" % (os.getcwd(), str(workspace)))
    subprocess.check_call([sys.executable, "-c", code])  # lends, then dies without giving back
    assert owner(workspace) == IMAGE_USER[0]
    with LentFolders([str(workspace)]):
        pass
    assert owner(workspace) == 0
