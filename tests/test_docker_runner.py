"""The docker runner's command line, path checks, runner choice, image builds and the root
caller's folder lending; none of these need a Docker engine (tests/test_docker.py runs the
images): a fake `docker` stands in where one is called."""
import os
import re
import subprocess

import pytest

from conftest import ROOT
from pipeline.context import choose_runner
from shared.running import docker_runner as docker_mod
from shared.running import runner as runner_mod
from shared.running.lending import LentFolders


def make_runner(tmp_path):
    workspace, weights = tmp_path / "ws", tmp_path / "weights"
    workspace.mkdir()
    weights.mkdir()
    return docker_mod.DockerRunner(writable=[str(workspace)], readable=[str(weights), str(tmp_path / "absent")],
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
    assert (uid, gid) == ((os.getuid(), os.getgid()) if os.getuid() else docker_mod.IMAGE_USER)
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
    assert docker_mod.docker_answers(str(tmp_path / "no-docker-here")) is None
    config = {"workspace": str(tmp_path), "weights_dir": str(tmp_path), "data_dir": str(tmp_path)}
    monkeypatch.setattr(docker_mod, "docker_answers", lambda: None)
    assert isinstance(choose_runner("auto", config), runner_mod.LocalRunner)
    assert "runner: local (no Docker engine answers)" in capsys.readouterr().err
    monkeypatch.setattr(docker_mod, "docker_answers", lambda: "20.10.24")
    chosen = choose_runner("auto", config)
    assert isinstance(chosen, docker_mod.DockerRunner) and chosen.writable == [str(tmp_path)]
    assert chosen.engine() == "20.10.24"  # the answer get() had: not asked again
    assert "runner: docker (Docker engine 20.10.24 answers)" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown runner 'podman'"):
        choose_runner("podman", config)


def test_every_service_has_a_dockerfile_with_a_debian_base(tmp_path):
    services = runner_mod.services()
    assert {"insightface", "dlib", "vggface2", "head"} <= set(services)
    for service in services:
        assert os.path.isfile(os.path.join(ROOT, "services", service, "requirements.txt")), service
        assert docker_mod.base_image(docker_mod.dockerfile(service)) in ("debian:bookworm-slim", "debian:bullseye-slim")
    # Caffe has its own bullseye image; the others share the bookworm template.
    assert docker_mod.dockerfile("vggface2") == os.path.join(ROOT, "docker", "vggface2.Dockerfile")
    assert docker_mod.dockerfile("dlib") == os.path.join(ROOT, "docker", "service.Dockerfile")
    bad = tmp_path / "x.Dockerfile"
    bad.write_text("FROM debian:bookworm-slim\n")
    with pytest.raises(ValueError, match="ARG BASE_IMAGE"):
        docker_mod.base_image(str(bad))


def test_services_are_the_folders_with_requirements_in_the_makefile_too(tmp_path):
    for name in ("b", "a", "notes"):
        (tmp_path / "services" / name).mkdir(parents=True)
    for name in ("a", "b"):
        (tmp_path / "services" / name / "requirements.txt").write_text("numpy\n")
    assert runner_mod.services(str(tmp_path)) == ["a", "b"]
    proc = subprocess.run(["make", "-pnq", "setup"], cwd=ROOT, capture_output=True, text=True)
    found = re.search(r"^SERVICES := (.*)$", proc.stdout, re.MULTILINE)
    assert found, proc.stderr
    assert sorted(found.group(1).split()) == runner_mod.services()


def default_command(service):
    """What a bare `docker run IMAGE` runs in a template-built image (docker/entrypoint.sh)."""
    conf = os.path.join(ROOT, "services", service, "image.conf")
    script = 'DEFAULT_COMMAND="embed --help"; if [ -f "$1" ]; then . "$1"; fi; echo "$DEFAULT_COMMAND"'
    return subprocess.check_output(["sh", "-c", script, "sh", conf], text=True).split()


def test_each_template_image_runs_its_own_default_command():
    template = docker_mod.dockerfile("dlib")
    for service in runner_mod.services():
        if docker_mod.dockerfile(service) == template:
            command = default_command(service)
            assert os.path.isfile(os.path.join(ROOT, "services", service, command[0] + ".py")), (service, command)
    assert default_command("head") == ["train", "--help"]
    assert default_command("align") == ["align", "--help"]
    assert default_command("dlib") == ["embed", "--help"]


def fake_docker(tmp_path):
    """A `docker` that logs its arguments, answers `version` and succeeds at everything else."""
    log = tmp_path / "docker.log"
    path = tmp_path / "fake-docker"
    path.write_text('#!/bin/sh\necho "$*" >> %s\n[ "$1" = version ] && echo 99.0\nexit 0\n' % log)
    path.chmod(0o755)
    return str(path), log


def test_faces_docker_is_read_when_a_runner_is_made_and_the_engine_asked_once(tmp_path, monkeypatch):
    docker, log = fake_docker(tmp_path)
    monkeypatch.setenv("FACES_DOCKER", docker)
    runner = docker_mod.DockerRunner(writable=[str(tmp_path)])
    assert runner.docker == docker and runner.command("dlib", "embed", [])[0] == docker
    assert runner.engine() == runner.engine() == "99.0"
    assert log.read_text().splitlines() == ["version --format {{.Server.Version}}"]


def test_a_runner_builds_each_image_once(tmp_path, monkeypatch):
    docker, log = fake_docker(tmp_path)
    monkeypatch.setenv("FACES_DOCKER", docker)
    runner = docker_mod.DockerRunner(writable=[str(tmp_path / "ws")])
    for _ in range(2):
        runner.run("dlib", "embed", ["--help"])
    calls = log.read_text().splitlines()
    builds = [c for c in calls if c.startswith("build ")]
    assert len(builds) == 1 and runner.built == {"dlib"}
    assert "--file %s " % docker_mod.dockerfile("dlib") in builds[0] and "--build-arg SERVICE=dlib" in builds[0]
    assert len([c for c in calls if c.startswith("image inspect debian:bookworm-slim")]) == 1
    assert len([c for c in calls if c.startswith("run ")]) == 2
    own = runner.build_command("vggface2")
    assert "--build-arg" not in own and own[own.index("--file") + 1].endswith("vggface2.Dockerfile")
    with pytest.raises(ValueError, match="no service 'nobody'"):
        runner.build("nobody")


@pytest.mark.skipif(os.getuid() != 0, reason="only a root caller lends folders to the images' user")
def test_a_root_caller_lends_its_folders_and_gets_the_outputs_back(tmp_path):
    lent_uid, lent_gid = docker_mod.IMAGE_USER
    workspace = tmp_path / "ws"
    (workspace / "old").mkdir(parents=True)
    theirs = workspace / "old" / "theirs.txt"  # already the images' user's: left alone
    theirs.write_text("x")
    os.chown(str(theirs), lent_uid, lent_gid)
    with LentFolders([str(workspace)]):
        assert os.stat(str(workspace / "old")).st_uid == lent_uid  # the container may write here
        (workspace / "old" / "new").mkdir()  # what a container running as that user writes
        written = workspace / "old" / "new" / "out.npy"
        written.write_bytes(b"0")
        for path in (workspace / "old" / "new", written):
            os.chown(str(path), lent_uid, lent_gid)
    for path in (workspace, workspace / "old", workspace / "old" / "new", written):
        assert (os.stat(str(path)).st_uid, os.stat(str(path)).st_gid) == (0, 0), path
    assert os.stat(str(theirs)).st_uid == lent_uid
