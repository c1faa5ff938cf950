"""`invoke all --cluster`: a Dask cluster (local, a scheduler file, SLURM) gives the bytes of the
sequential run; a killed worker is survived; a bad cluster fails before anything is written."""
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import ROOT, tiny_people

INVOKE = os.path.join(os.path.dirname(sys.executable), "invoke")
DASK = os.path.join(os.path.dirname(sys.executable), "dask")
ALL = ["all", "--profile", "smoke", "--models", "model4_insightface"]
SLURM_NODE = os.path.join(ROOT, ".ci", "slurm-node.sh")


def invoke(*args, ok=True):
    proc = subprocess.run([INVOKE] + list(args), cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert (proc.returncode == 0) == ok, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """test_workflow's 16 + 10 identities, and one with 77 images: a test split big enough to shard."""
    return tiny_people(tmp_path_factory.mktemp("people"), extra=("Ariel_Sharon",))


def workspace_for(source, folder):
    invoke("data.benchmark", "--source", source, "--workspace", str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def sequential(source, tmp_path_factory):
    workspace = workspace_for(source, tmp_path_factory.mktemp("seq") / "ws")
    invoke(*(ALL + ["--workspace", workspace]))
    return workspace


def _timeless(value):
    if isinstance(value, dict):
        return dict((k, _timeless(v)) for k, v in value.items() if "seconds" not in k)
    return [_timeless(v) for v in value] if isinstance(value, list) else value


def outputs(workspace):
    """Embeddings, heads, pseudo-label sets, submissions, evaluation: relative path -> bytes
    (the JSON summaries without their timings)."""
    found = {}
    for folder in ("embeddings", "heads", "pseudo", "submissions", "reports"):
        for base, _, names in os.walk(os.path.join(workspace, folder)):
            for name in names:
                path = os.path.join(base, name)
                if name in ("summary.json", "evaluation.json"):
                    found[os.path.relpath(path, workspace)] = _timeless(json.load(open(path)))
                elif (name.endswith((".npy", ".csv")) and folder != "reports") or folder == "pseudo":
                    found[os.path.relpath(path, workspace)] = open(path, "rb").read()
    return found


def assert_same_outputs(workspace, reference):
    expected, got = outputs(reference), outputs(workspace)
    assert "submissions/final.csv" in expected and "pseudo/step7.csv" in expected
    assert sorted(got) == sorted(expected)
    assert [key for key in sorted(expected) if got[key] != expected[key]] == []


def test_local_cluster_with_sharded_embedding_gives_the_sequential_bytes(source, sequential, tmp_path):
    workspace = workspace_for(source, tmp_path / "ws")
    log = invoke(*(ALL + ["--workspace", workspace, "--cluster", "local:2", "--shards", "2"]))
    assert "embed model4_insightface test 1-of-2" in log  # the test split ran as two shards
    assert "[cluster] 19/19 done" in log
    assert_same_outputs(workspace, sequential)
    assert os.path.isfile(os.path.join(workspace, "logs", "heads_model4_insightface_step7_rt0.log"))
    invoke(*(ALL + ["--workspace", workspace, "--cluster", "local:2"]))  # again: every stamped stage is up to date
    log = open(os.path.join(workspace, "logs", "heads_model4_insightface_step7.log")).read()
    assert log.rstrip().endswith("[heads/model4_insightface/step7] up to date")


class Scheduler(object):
    """`dask scheduler` and `dask worker` processes on 127.0.0.1, each in its own process group."""

    def __init__(self, folder):
        self.file = str(folder / "scheduler.json")
        self.procs = [self._start([DASK, "scheduler", "--scheduler-file", self.file, "--host", "127.0.0.1",
                                   "--port", "0", "--dashboard-address", "127.0.0.1:0"], folder / "scheduler.log")]

    def _start(self, command, log):
        return subprocess.Popen(command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), start_new_session=True,
                                stdout=open(str(log), "w"), stderr=subprocess.STDOUT)

    def worker(self, log, prefix=()):
        self.procs.append(self._start(list(prefix) + [DASK, "worker", "--scheduler-file", self.file, "--nthreads",
                                                      "1", "--host", "127.0.0.1", "--dashboard-address",
                                                      "127.0.0.1:0"], log))

    def client(self):
        from dask.distributed import Client

        return Client(scheduler_file=self.file, timeout=60)

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def scheduler(tmp_path):
    running = Scheduler(tmp_path)
    yield running
    running.stop()


def _busy_worker(dask, run):
    """The address of a worker running a service (an embed or heads task), once there is one
    (None if the run ends first)."""
    import time

    while run.poll() is None:
        for worker, keys in dask.processing().items():
            if any(str(k).startswith(("embed-", "heads-")) for k in keys):
                return worker
        time.sleep(0.2)
    return None


def test_scheduler_file_cluster_survives_a_killed_worker(source, sequential, scheduler, tmp_path):
    workspace = workspace_for(source, tmp_path / "ws")
    for i in range(2):
        scheduler.worker(tmp_path / ("worker%d.log" % i))
    dask = scheduler.client()
    dask.wait_for_workers(2, timeout=120)
    run = subprocess.Popen([INVOKE] + ALL + ["--workspace", workspace, "--cluster", scheduler.file],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    victim = _busy_worker(dask, run)
    assert victim, run.communicate()[0][-3000:]
    pid = dask.run(os.getpid, workers=[victim])[victim]
    os.killpg(os.getpgid(pid), signal.SIGKILL)  # the worker, its nanny and the service it runs
    log = run.communicate(timeout=1200)[0]
    dask.close()
    assert run.returncode == 0, log[-3000:]
    assert_same_outputs(workspace, sequential)


def test_a_workspace_the_workers_cannot_see_fails_before_anything_is_written(source, scheduler, tmp_path):
    workspace = workspace_for(source, tmp_path / "hidden" / "ws")
    blind_worker(scheduler, tmp_path, "worker.log")
    before = sorted(os.walk(workspace))
    log = invoke(*(ALL + ["--workspace", workspace, "--cluster", scheduler.file]), ok=False)
    assert "not the same folder on worker(s)" in log and "the workspace %s" % workspace in log
    assert "shared filesystem" in log
    assert sorted(os.walk(workspace)) == before


def blind_worker(scheduler, tmp_path, log):
    """A worker that sees an empty folder where tmp_path/hidden is (a mount namespace of its own)."""
    scheduler.worker(tmp_path / log, ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                      "mount -t tmpfs none %s && exec \"$0\" \"$@\"" % (tmp_path / "hidden")])


def test_a_worker_that_joins_late_and_cannot_see_the_workspace_fails_its_tasks_clearly(source, scheduler, tmp_path):
    """SLURM jobs may start after the run's check: each task checks its worker again."""
    workspace = workspace_for(source, tmp_path / "hidden" / "ws")
    scheduler.worker(tmp_path / "good.log")
    dask = scheduler.client()
    dask.wait_for_workers(1, timeout=120)
    run = subprocess.Popen([INVOKE] + ALL + ["--workspace", workspace, "--cluster", scheduler.file],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    good = _busy_worker(dask, run)  # the run's check has passed: it runs a service
    assert good, run.communicate()[0][-3000:]
    blind_worker(scheduler, tmp_path, "late.log")
    dask.wait_for_workers(2, timeout=120)
    pid = dask.run(os.getpid, workers=[good])[good]
    os.killpg(os.getpgid(pid), signal.SIGKILL)  # what is left can only run on the late worker
    log = run.communicate(timeout=600)[0]
    dask.close()
    assert run.returncode != 0
    assert "not the same folder on worker(s)" in log and "the workspace %s" % workspace in log, log[-3000:]


def test_an_unreachable_scheduler_fails_before_anything_is_written(source, tmp_path):
    import socket

    workspace = workspace_for(source, tmp_path / "ws")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = sorted(os.walk(workspace))
    log = invoke(*(ALL + ["--workspace", workspace, "--cluster", "tcp://127.0.0.1:%d" % port]), ok=False)
    assert "no Dask scheduler answers at tcp://127.0.0.1:%d" % port in log
    log = invoke(*(ALL + ["--workspace", workspace, "--cluster", str(tmp_path / "none.json")]), ok=False)
    assert "scheduler file %s does not exist" % (tmp_path / "none.json") in log
    assert sorted(os.walk(workspace)) == before


@pytest.fixture
def slurm(tmp_path):
    """A single-node SLURM (.ci/slurm-node.sh); CI (FACES_REQUIRE_SLURM=1) fails without one."""
    if not shutil.which("slurmctld") and not os.environ.get("FACES_REQUIRE_SLURM"):
        pytest.skip("no SLURM here (Debian's slurmctld, slurmd, slurm-client, munge; .ci/run installs them)")
    folder = str(tmp_path / "slurm")
    conf = subprocess.run([SLURM_NODE, "start", folder], capture_output=True, text=True)
    try:
        assert conf.returncode == 0, conf.stderr
        yield conf.stdout.strip()
    finally:
        subprocess.call([SLURM_NODE, "stop", folder])


def test_slurm_jobs_give_the_sequential_bytes(source, sequential, slurm, tmp_path, monkeypatch):
    workspace = workspace_for(source, tmp_path / "ws")
    config = tmp_path / "slurm.yaml"
    config.write_text("cluster:\n  slurm: {queue: ci, cores: 1, memory: 1GB, walltime: '00:30:00', wait_s: 300,\n"
                      "          scheduler_options: {host: 127.0.0.1, dashboard_address: '127.0.0.1:0'}}\n")
    monkeypatch.setenv("SLURM_CONF", slurm)
    log = invoke(*(["-f", str(config)] + ALL + ["--workspace", workspace, "--cluster", "slurm:2"]))
    assert "[cluster] slurm:2" in log
    assert [name for name in os.listdir(os.path.join(workspace, "logs")) if name.startswith("dask-worker")]
    assert_same_outputs(workspace, sequential)
