"""The docker runner's command line, path checks, runner choice and the root caller's folder
lending; none of these need a Docker engine (tests/test_docker.py runs the images)."""
import os

import pytest

from shared import runner as runner_mod


def make_runner(tmp_path):
    workspace, weights = tmp_path / "ws", tmp_path / "weights"
    workspace.mkdir()
    weights.mkdir()
    return runner_mod.DockerRunner(writable=[str(workspace)], readable=[str(weights), str(tmp_path / "absent")],
                                   docker="docker", prefix="faces/")


def test_command_runs_the_image_without_network_as_a_user_with_the_mounts(tmp_path):
    runner = make_runner(tmp_path)
    out = str(tmp_path / "ws" / "out")
    command = runner.command("dlib", "embed", ["--model", "model5_dlib", "--out", out, "--batch-size", 8],
                             env={"OMP_NUM_THREADS": "2"})
    assert command[:2] == ["docker", "run"]
    assert command[-8:] == ["faces/dlib", "embed", "--model", "model5_dlib", "--out", out, "--batch-size", "8"]
    options = command[2:-8]
    assert "--rm" in options and options[options.index("--network") + 1] == "none"
    uid, gid = (int(v) for v in options[options.index("--user") + 1].split(":"))
    assert uid != 0 and gid != 0
    assert (uid, gid) == ((os.getuid(), os.getgid()) if os.getuid() else runner_mod.IMAGE_USER)
    volumes = [options[i + 1] for i, o in enumerate(options) if o == "--volume"]
    ws, weights = str(tmp_path / "ws"), str(tmp_path / "weights")
    # Each folder at its own path; a readable folder that does not exist is not mounted.
    assert volumes == ["%s:%s:rw" % (ws, ws), "%s:%s:ro" % (weights, weights)]
    assert options[options.index("--env") + 1] == "OMP_NUM_THREADS=2"


def test_a_path_the_container_cannot_see_is_refused(tmp_path):
    runner = make_runner(tmp_path)
    with pytest.raises(ValueError, match="outside the folders the container sees"):
        runner.command("dlib", "embed", ["--images", str(tmp_path / "elsewhere")])
    # A sibling whose name merely starts like a mounted folder is outside it too.
    with pytest.raises(ValueError, match=str(tmp_path / "ws-other")):
        runner.command("dlib", "embed", ["--out", str(tmp_path / "ws-other")])
    runner.command("dlib", "embed", ["--weights-root", str(tmp_path / "weights" / "dlib")])


def test_auto_takes_docker_only_when_an_engine_answers(monkeypatch, capsys, tmp_path):
    assert runner_mod.docker_answers(str(tmp_path / "no-docker-here")) is None
    config = {"workspace": str(tmp_path), "weights_dir": str(tmp_path), "data_dir": str(tmp_path)}
    monkeypatch.setattr(runner_mod, "docker_answers", lambda: None)
    assert isinstance(runner_mod.get("auto", config), runner_mod.LocalRunner)
    assert "runner: local (no Docker engine answers)" in capsys.readouterr().err
    monkeypatch.setattr(runner_mod, "docker_answers", lambda: "20.10.24")
    chosen = runner_mod.get("auto", config)
    assert isinstance(chosen, runner_mod.DockerRunner) and chosen.writable == [str(tmp_path)]
    assert "runner: docker (Docker engine 20.10.24 answers)" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown runner 'podman'"):
        runner_mod.get("podman", config)


def test_every_dockerfile_names_a_debian_base_and_a_service(tmp_path):
    services = runner_mod.image_services()
    assert {"insightface", "dlib"} <= set(services)
    for service in services:
        assert runner_mod.base_image(runner_mod.dockerfile(service)) in ("debian:bookworm-slim", "debian:bullseye-slim")
        assert os.path.isdir(os.path.join(runner_mod.ROOT, "services", service)), service
    bad = tmp_path / "x.Dockerfile"
    bad.write_text("FROM debian:bookworm-slim\n")
    with pytest.raises(ValueError, match="ARG BASE_IMAGE"):
        runner_mod.base_image(str(bad))


@pytest.mark.skipif(os.getuid() != 0, reason="only a root caller lends folders to the images' user")
def test_a_root_caller_lends_its_folders_and_gets_the_outputs_back(tmp_path):
    lent_uid, lent_gid = runner_mod.IMAGE_USER
    workspace = tmp_path / "ws"
    (workspace / "old").mkdir(parents=True)
    theirs = workspace / "old" / "theirs.txt"  # already the images' user's: left alone
    theirs.write_text("x")
    os.chown(str(theirs), lent_uid, lent_gid)
    with runner_mod._LentFolders([str(workspace)]):
        assert os.stat(str(workspace / "old")).st_uid == lent_uid  # the container may write here
        (workspace / "old" / "new").mkdir()  # what a container running as that user writes
        written = workspace / "old" / "new" / "out.npy"
        written.write_bytes(b"0")
        for path in (workspace / "old" / "new", written):
            os.chown(str(path), lent_uid, lent_gid)
    for path in (workspace, workspace / "old", workspace / "old" / "new", written):
        assert (os.stat(str(path)).st_uid, os.stat(str(path)).st_gid) == (0, 0), path
    assert os.stat(str(theirs)).st_uid == lent_uid
