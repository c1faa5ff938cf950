"""What a service container may see and use (shared/running/container_policy.py): read-only mounts even
inside the workspace, a read-only root, limits from invoke.yaml, every path argument checked;
and, with a Docker engine, an --out on a read-only mount refused by the entrypoint."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import LFW, WEIGHTS, lfw_people
from shared.running import container_policy as policy
from shared.running import docker_runner as docker_mod
from shared.running.settings import load


def test_a_readable_folder_inside_the_workspace_is_mounted_read_only_over_it(tmp_path):
    ws, weights = str(tmp_path / "ws"), str(tmp_path / "ws" / "weights")
    os.makedirs(weights)
    options = policy.run_options((1000, 1000), [ws], [weights], {"memory": "12g", "pids_limit": 1024})
    volumes = [options[i + 1] for i, o in enumerate(options) if o == "--volume"]
    assert volumes == ["%s:%s:rw" % (ws, ws), "%s:%s:ro" % (weights, weights)]
    assert "--read-only" in options and options[options.index("--tmpfs") + 1].startswith("/tmp:")
    assert options[options.index("--memory") + 1] == "12g" and options[options.index("--pids-limit") + 1] == "1024"
    with pytest.raises(ValueError, match="mounted read-write .* and must be read-only"):
        policy.run_options((1000, 1000), [ws], [ws], None)


def test_the_runner_takes_its_limits_from_invoke_yaml():
    limits = load()["containers"]
    runner = docker_mod.DockerRunner(writable=["/nonexistent-ws"], limits=limits)
    options = runner.options()
    assert options[options.index("--memory") + 1] == str(limits["memory"])
    assert options[options.index("--pids-limit") + 1] == str(limits["pids_limit"])


def test_every_path_argument_is_checked(tmp_path, monkeypatch):
    ws = str(tmp_path / "ws")
    os.makedirs(os.path.join(ws, "sub"))
    policy.check_paths(["--out", ws + "/sub", "--shard", "0/2", "mtcnn=" + ws], [ws], [])
    with pytest.raises(ValueError, match="/elsewhere is outside"):
        policy.check_paths(["--weights", "face-alignment=/elsewhere"], [ws], [])
    with pytest.raises(ValueError, match="outside"):
        policy.check_paths(["--out", ws + "/../escape"], [ws], [])
    monkeypatch.chdir(ws)
    with pytest.raises(ValueError, match="relative path sub/ means another place"):
        policy.check_paths(["--out", "sub/"], [ws], [])


def test_a_weights_search_path_is_checked_folder_by_folder(tmp_path):
    """--weights-root weights_dir:installed_weights_dir (shared/running/settings.py weights_root):
    passes when both folders are mounted, and names the one that is not."""
    ws, weights, installed = (str(tmp_path / name) for name in ("ws", "weights", "installed"))
    policy.check_paths(["--weights-root", weights + os.pathsep + installed], [ws], [weights, installed])
    with pytest.raises(ValueError, match="path %s is outside" % installed):
        policy.check_paths(["--weights-root", weights + os.pathsep + installed], [ws], [weights])


def test_an_out_on_a_read_only_mount_is_refused_in_the_container(tmp_path):
    if not docker_mod.docker_answers():
        pytest.skip("no Docker engine answers")
    ws, data = tmp_path / "ws", tmp_path / "data"
    (ws / "images").mkdir(parents=True)
    data.mkdir()
    for letter, (_, paths) in zip("ab", lfw_people(2, per_person=1)):
        shutil.copyfile(os.path.join(LFW, paths[0]), str(ws / "images" / (letter + ".jpg")))
    (ws / "l.txt").write_text("a.jpg\nb.jpg\n")
    runner = docker_mod.DockerRunner(writable=[str(ws)], readable=[WEIGHTS, str(data)])
    args = ["--model", "model4_insightface", "--weights-root", WEIGHTS, "--images", str(ws / "images"),
            "--list", str(ws / "l.txt"), "--out", str(data / "out")]
    with pytest.raises(docker_mod.ServiceError) as info:
        runner.run("insightface", "embed", args)
    assert info.value.code == 2 and os.listdir(str(data)) == []
    runner.run("insightface", "embed", args[:-1] + [str(ws / "out")])  # a read-only root is no obstacle
    assert sorted(os.listdir(str(ws / "out"))) == ["embeddings.npy", "embeddings_index.csv", "embeddings_meta.json"]


@pytest.mark.skipif(os.getuid() != 0, reason="only a root caller lends folders to the images' user")
def test_a_loan_whose_run_was_killed_is_handed_back_when_the_next_starts(tmp_path):
    from shared.running.lending import IMAGE_USER, LentFolders

    workspace = tmp_path / "ws"
    workspace.mkdir()
    code = ("import os, sys; sys.path.insert(0, %r); from shared.running.lending import LentFolders; "
            "LentFolders([%r]).__enter__(); open(%r, 'w').close(); os.chown(%r, 1000, 1000); os._exit(0)"
            % (os.getcwd(), str(workspace), str(workspace / "out.npy"), str(workspace / "out.npy")))
    subprocess.check_call([sys.executable, "-c", code])  # a container wrote out.npy, then the run was killed
    assert os.lstat(str(workspace / "out.npy")).st_uid == IMAGE_USER[0]
    with LentFolders([str(workspace)]):
        assert os.lstat(str(workspace / "out.npy")).st_uid == 0  # given back on start, not at the end
