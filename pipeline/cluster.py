"""The Dask engine of `invoke all --cluster SPEC`: a client for the spec, the shared-folder check,
per-task logs and a progress line per finished task.

    local[:N]             a local cluster of N single-threaded worker processes (default: the CPUs
                          this process may use, shared/hardware.py)
    tcp://HOST:PORT       a running `dask scheduler`
    PATH.json             a scheduler file (`dask scheduler --scheduler-file PATH.json`)
    slurm[:JOBS]          JOBS batch jobs of Dask workers through dask-jobqueue (invoke.yaml `cluster.slurm`)

Servers this module starts listen on 127.0.0.1 (local) or where `cluster.slurm.scheduler_options`
says. Every worker must see the workspace, weights and data at the same paths as the driver.
"""
import contextlib
import os
import shutil
import socket
import sys
import time
import uuid

from shared import hardware
from shared.running.settings import ROOT

CONNECT_S, WORKERS_S = 10, 15  # an unreachable scheduler fails in well under 30 s


class ClusterError(ValueError):
    """A cluster the run cannot use (the tasks print its message as one line, exit 2)."""


def _local(count):
    from dask.distributed import LocalCluster

    return LocalCluster(n_workers=count or hardware.available_cpus(), threads_per_worker=1, processes=True,
                        host="127.0.0.1", dashboard_address="127.0.0.1:0")


def _slurm(config, jobs):
    """`jobs` SLURM jobs, each `cores` single-threaded Dask workers in this environment's Python."""
    from dask_jobqueue import SLURMCluster

    options = dict((k, v) for k, v in dict(config.get("cluster", {}).get("slurm") or {}).items() if v is not None)
    options.pop("wait_s", None)
    prologue = ["cd %s" % ROOT, "export PYTHONPATH=%s" % ROOT] + list(options.pop("job_script_prologue", []))
    cluster = SLURMCluster(python=sys.executable, processes=options.get("cores", 1), job_script_prologue=prologue,
                           log_directory=os.path.join(config["workspace"], "logs"), **options)
    cluster.scale(jobs=jobs or 1)
    return cluster


def _connect(client_cls, spec, wait_s):
    """A client of a running scheduler, with at least one worker; a ClusterError otherwise."""
    kwargs = {"scheduler_file": spec} if spec.endswith(".json") else {"address": spec}
    if "scheduler_file" in kwargs and not os.path.isfile(spec):
        raise ClusterError("scheduler file %s does not exist (start `dask scheduler --scheduler-file %s`)"
                           % (spec, spec))
    try:
        client = client_cls(timeout=CONNECT_S, **kwargs)
    except (OSError, TimeoutError) as error:
        raise ClusterError("no Dask scheduler answers at %s within %d s (%s)" % (spec, CONNECT_S, error))
    _first_worker(client, spec, wait_s)
    return client


def _first_worker(client, spec, wait_s):
    try:
        client.wait_for_workers(1, timeout=wait_s)
    except (OSError, TimeoutError):
        client.close()
        raise ClusterError("the Dask cluster %s has no worker after %d s (SLURM: `squeue` says why a job "
                           "waits)" % (spec, wait_s))


@contextlib.contextmanager
def client(config, spec):
    """A Dask client for `spec` and the SharedFolders its workers were checked against (tasks
    check again where they run); closed (and a cluster this module started, stopped) on the way out."""
    from dask.distributed import Client

    kind, _, count = spec.partition(":")
    cluster = None
    if kind == "local":
        cluster = _local(int(count or 0))
    elif kind == "slurm":
        cluster = _slurm(config, int(count or 0))
    elif not (spec.startswith(("tcp://", "tls://")) or spec.endswith(".json")):
        raise ClusterError("unknown --cluster '%s' (none, local[:N], tcp://HOST:PORT, PATH.json, slurm[:JOBS])"
                           % spec)
    try:
        if cluster is None:
            dask = _connect(Client, spec, WORKERS_S)
        else:
            dask = Client(cluster)
            wait_s = (config.get("cluster", {}).get("slurm") or {}).get("wait_s") or 3600
            _first_worker(dask, spec, wait_s if kind == "slurm" else WORKERS_S)
        with contextlib.closing(dask):
            shared = SharedFolders(config)
            try:
                shared.check_workers(dask)
                dashboard = dask.scheduler_info().get("services", {}).get("dashboard")
                print("[cluster] %s: %d workers%s" % (spec, len(dask.scheduler_info()["workers"]),
                                                     ", dashboard %s" % dask.dashboard_link if dashboard else ""))
                yield dask, shared
            finally:
                shared.remove()
    finally:
        if cluster is not None:
            cluster.close()


def _view(token_path, folders):
    """What a worker sees: the token's text and the entries of each folder (None: missing)."""
    token = open(token_path).read() if os.path.isfile(token_path) else None
    return [token] + [sorted(os.listdir(f)) if os.path.isdir(f) else None for f in folders]


class SharedFolders(object):
    """What every worker must see as the driver does: a token the driver writes into the
    workspace, the weights and the data. Kept for the whole run, so that a worker that joins
    late (a SLURM job that starts later) is checked by each task it runs (`check_here`)."""

    def __init__(self, config):
        self.folders = [config["weights_dir"], config["installed_weights_dir"], config["data_dir"]]
        self.names = ("the workspace %s" % config["workspace"], "the weights %s" % self.folders[0],
                      "the installed weights %s" % self.folders[1], "the data %s" % self.folders[2])
        self.check_dir = os.path.join(config["workspace"], ".cluster-check")
        token = uuid.uuid4().hex
        os.makedirs(self.check_dir, exist_ok=True)
        self.token = os.path.join(self.check_dir, token)
        with open(self.token, "w") as f:
            f.write(token)
        self.expected = _view(self.token, self.folders)

    def wrong(self, view):
        return [name for name, a, b in zip(self.names, view, self.expected) if a != b]

    def error(self, wrong, workers):
        return ClusterError("%s: not the same folder on worker(s) %s as here. Every worker must see the "
                            "workspace, weights and data on a shared filesystem at the same paths"
                            % ("; ".join(sorted(wrong)), ", ".join(sorted(workers))))

    def check_workers(self, dask):
        """Fail unless every worker connected now sees what the driver sees."""
        seen = dask.run(_view, self.token, self.folders)
        blind = dict((worker, self.wrong(view)) for worker, view in seen.items() if self.wrong(view))
        if blind:
            raise self.error(set(name for names in blind.values() for name in names), blind)

    def check_here(self):
        """On a worker, before a task: fail unless it sees what the driver sees."""
        from dask.distributed import get_worker

        wrong = self.wrong(_view(self.token, self.folders))
        if wrong:
            raise self.error(wrong, ["%s (%s)" % (get_worker().address, socket.gethostname())])

    def remove(self):
        shutil.rmtree(self.check_dir, ignore_errors=True)


@contextlib.contextmanager
def task_log(path):
    """This process's stdout and stderr (the services' output included) appended to `path`."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _failure(dask, futures, future, logs):
    """The run's first failure as a ClusterError, the rest cancelled. A task whose input was
    lost may end first (cancelled, no exception): the failure then is the task that erred."""
    deadline = time.time() + 10
    while not any(f.status == "error" for f in futures) and time.time() < deadline:
        time.sleep(0.2)
    failed = next((f for f in futures if f.status == "error"), future)
    error = failed.exception() if failed.status == "error" else failed.status
    dask.cancel(futures)
    return ClusterError("task %s failed: %s (its log: %s/)" % (failed.key, error, logs))


def wait_all(dask, futures, logs):
    """Wait for every task with a progress line per finished one; the first failure cancels
    the rest and raises. Returns [(task, seconds)] in finishing order."""
    from dask.distributed import as_completed

    started, timings = time.time(), []
    for done, future in enumerate(as_completed(futures), 1):
        if future.status != "finished":
            raise _failure(dask, futures, future, logs)
        name, seconds = future.result()
        timings.append((name, seconds))
        left = (time.time() - started) / done * (len(futures) - done)
        print("[cluster] %d/%d done: %s (%.1f s), ETA %.0f s" % (done, len(futures), name, seconds, left))
        sys.stdout.flush()
    return timings
