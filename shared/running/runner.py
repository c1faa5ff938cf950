"""Runners: how the tasks start a service's entrypoint. Small and swappable on purpose.

A service is a folder of services/ with a requirements.txt (`services()`). The local runner
uses the service's own virtualenv, `.venvs/<service>/` (made by `make setup`), so frameworks
with incompatible pins (MXNet wants numpy 1.23, TensorFlow numpy >= 1.26) never share an
interpreter. The docker runner (shared/running/docker_runner.py) runs the same entrypoint in the
service's image, with the same arguments and outputs.
"""
import os
import subprocess

from shared.contract.shards import die_with_parent
from shared.running.settings import ROOT


class ServiceError(RuntimeError):
    def __init__(self, service, code, command):
        RuntimeError.__init__(self, "service '%s' failed with exit code %d: %s"
                              % (service, code, " ".join(command)))
        self.code = code


def services(root=ROOT):
    """Every service, sorted: the folders of services/ that have a requirements.txt (the
    Makefile's SERVICES follows the same rule). Each has a local environment and an image."""
    folder = os.path.join(root, "services")
    return sorted(name for name in os.listdir(folder)
                  if os.path.isfile(os.path.join(folder, name, "requirements.txt")))


class LocalRunner(object):
    name = "local"

    def __init__(self, root=ROOT, venvs=None):
        self.root = root
        self.venvs = venvs or os.path.join(root, ".venvs")

    def python(self, service):
        path = os.path.join(self.venvs, service, "bin", "python")
        if not os.path.isfile(path):
            raise FileNotFoundError("no environment for service '%s' at %s: run `make setup`"
                                    % (service, os.path.dirname(os.path.dirname(path))))
        return path

    def command(self, service, entrypoint, args):
        script = os.path.join(self.root, "services", service, entrypoint + ".py")
        return [self.python(service), script] + [str(a) for a in args]

    def run(self, service, entrypoint, args, env=None):
        command = self.command(service, entrypoint, args)
        full_env = dict(os.environ, PYTHONPATH=self.root, **(env or {}))
        code = subprocess.call(command, env=full_env, preexec_fn=die_with_parent())  # it dies with this task
        if code != 0:
            raise ServiceError(service, code, command)
