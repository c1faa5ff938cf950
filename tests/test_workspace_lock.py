"""One run per workspace, and no process of a run left behind when it is killed: `invoke all`
(the smoke profile on the tiny benchmark) refused while another holds its workspace, and killed
with SIGKILL while each kind of service runs, every process it started gone with it."""
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from conftest import ROOT, tiny_people

INVOKE = os.path.join(os.path.dirname(sys.executable), "invoke")
# the local runner: its service processes are this host's (a docker runner's run in containers,
# and CI has an engine; the docker client's part is the stand-in client test below)
ALL = ["all", "--profile", "smoke", "--models", "model4_insightface", "--runner", "local"]
SUBMISSIONS = ("step4.csv", "step6.csv", "step7.csv", "final.csv")
# the service programs of a smoke run, in the order they start: one kill while each runs
SERVICES = ("services/insightface/embed.py", "services/head/train.py", "services/head/ensemble.py",
            "services/head/evaluate.py")


def start(workspace, tag=None, log=None):
    """`invoke all` started; its output in a pipe, or in the file `log` (a pipe would keep the
    killed run's orphans from being seen: reading it waits for them)."""
    env = dict(os.environ, FACES_TEST_RUN=tag or "")
    return subprocess.Popen([INVOKE] + ALL + ["--workspace", workspace], cwd=ROOT, env=env, text=True,
                            stdout=open(log, "w") if log else subprocess.PIPE, stderr=subprocess.STDOUT)


def tagged(tag):
    """{pid: command line} of the live processes (not zombies) whose environment carries the tag:
    a run's processes and whatever they started, even once re-parented (read from /proc)."""
    found, mark = {}, ("FACES_TEST_RUN=%s" % tag).encode()
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open("/proc/%s/environ" % pid, "rb") as f:
                environ = f.read().split(b"\0")
            with open("/proc/%s/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone, or not ours to read
            continue
        if mark in environ and state != "Z":
            found[int(pid)] = command
    return found


def wait_for(condition, seconds, step=0.02):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    return condition()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return tiny_people(tmp_path_factory.mktemp("people"))


def benchmark(source, workspace):
    subprocess.run([INVOKE, "data.benchmark", "--source", source, "--workspace", workspace], cwd=ROOT,
                   check=True, capture_output=True)
    return workspace


@pytest.fixture(scope="module")
def contended(source, tmp_path_factory):
    """A workspace whose `invoke all` ran while a second one was refused: (workspace, the second's
    exit code, output and seconds)."""
    workspace = benchmark(source, str(tmp_path_factory.mktemp("contended") / "ws"))
    first = start(workspace)
    assert wait_for(lambda: os.path.exists(os.path.join(workspace, "aligned")), 120), first.communicate()[0]
    started = time.time()
    second = subprocess.run([INVOKE] + ALL + ["--workspace", workspace], cwd=ROOT, capture_output=True, text=True)
    seconds = time.time() - started
    still_running = first.poll() is None
    log = first.communicate()[0]
    assert first.returncode == 0 and still_running, log[-3000:]
    return workspace, second.returncode, second.stdout + second.stderr, seconds


def test_a_second_all_on_the_same_workspace_exits_2_at_once(contended):
    workspace, code, output, seconds = contended
    assert code == 2, output
    assert output.strip().splitlines()[-1] == "error: another run holds %s" % workspace, output
    assert seconds < 30 and "[all]" not in output  # refused before any work
    assert not os.path.exists(os.path.join(workspace, ".workspace.lock"))  # let go when the first ended


def test_a_stage_task_is_refused_while_all_holds_the_workspace(source, tmp_path):
    workspace = benchmark(source, str(tmp_path / "ws"))
    first = start(workspace)
    try:
        assert wait_for(lambda: os.path.exists(os.path.join(workspace, "aligned")), 120)
        proc = subprocess.run([INVOKE, "heads.train", "--models", "model4_insightface", "--workspace", workspace],
                              cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 2 and "error: another run holds %s" % workspace in proc.stderr, proc.stderr
    finally:
        first.kill()
        first.communicate()


def test_sigkill_of_all_during_each_service_leaves_no_process(source, contended, tmp_path):
    workspace = benchmark(source, str(tmp_path / "ws"))
    for service in SERVICES:
        tag, log = uuid.uuid4().hex, str(tmp_path / "all.log")
        run = start(workspace, tag, log)
        seen = wait_for(lambda: [c for c in tagged(tag).values() if service in c], 300, step=0.01)
        alive = run.poll() is None
        run.kill()
        run.wait()
        assert seen and alive, "%s never ran before the run ended:\n%s" % (service, open(log).read()[-3000:])
        left = wait_for(lambda: not tagged(tag), 15) or tagged(tag)
        assert left is True, "left running after kill -9 of invoke all during %s: %s" % (service, left)
    final = subprocess.run([INVOKE] + ALL + ["--workspace", workspace], cwd=ROOT, capture_output=True, text=True)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    for name in SUBMISSIONS:  # the killed and resumed run ends as the uninterrupted one
        with open(os.path.join(workspace, "submissions", name), "rb") as mine, \
                open(os.path.join(contended[0], "submissions", name), "rb") as theirs:
            assert mine.read() == theirs.read(), name


FAKE_DOCKER = """#!/bin/sh
# a docker client that answers `ps` with no container and on `run` waits, saying when it is stopped
[ "$1" = run ] || exit 0
echo "$@" > "$FAKE_DOCKER_LOG.args"
trap 'echo TERM > "$FAKE_DOCKER_LOG"; exit 143' TERM
while true; do sleep 0.1; done
"""


def test_the_docker_client_is_stopped_with_its_task(tmp_path):
    """The docker runner's `docker run` gets SIGTERM when the task that started it is killed: the
    real client passes it to the container, which --rm then removes (the container itself needs
    an engine: CI's tests/test_docker.py). Here a stand-in client records the signal."""
    docker, log = tmp_path / "docker", tmp_path / "signal.log"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    (tmp_path / "ws").mkdir()
    script = ("import sys; sys.path.insert(0, %r)\n"
              "from shared.running.docker_runner import DockerRunner\n"
              "runner = DockerRunner(writable=[%r], docker=%r, version='test')\n"
              "runner.built.add('head')\n"
              "runner.run('head', 'train', [])\n" % (ROOT, str(tmp_path / "ws"), str(docker)))
    tag = uuid.uuid4().hex
    task = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ, FACES_TEST_RUN=tag,
                                                                     FAKE_DOCKER_LOG=str(log)))
    assert wait_for(lambda: [c for c in tagged(tag).values() if c.startswith("/bin/sh %s run" % docker)], 30), \
        tagged(tag)
    os.kill(task.pid, signal.SIGKILL)
    task.wait()
    assert wait_for(lambda: not tagged(tag), 10), tagged(tag)
    assert log.read_text() == "TERM\n"
    options = (tmp_path / "signal.log.args").read_text().split()
    assert "--rm" in options and "--init" in options  # the container stops on the TERM, and is removed
