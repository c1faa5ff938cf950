"""`images` collection: the per-service Docker images (docker/<service>.Dockerfile, else the
bookworm template docker/service.Dockerfile; see shared/running/docker_runner.py).

    invoke images.build [--only NAME]   build every image (or one); prints build time and size
    invoke images.smoke [--only NAME]   build if needed, then the per-image smoke tests
                                        (tests/test_docker.py: real images and weights, container
                                        vs local runner, no network, not root)
"""
import os
import subprocess
import sys
import time

from invoke import task

from pipeline import arguments
from pipeline.common import fail
from shared.running import docker_runner
from shared.running.runner import services as all_services
from shared.running.settings import ROOT


def _services(only):
    return all_services() if only is None else arguments.names(only, all_services(), "--only")


def _engine(runner):
    version = runner.engine()
    if not version:
        fail("no Docker engine answers (%s version): start one, e.g. `sudo docker/start-engine.sh`"
             % runner.docker)
    return version


@task(help={"only": "comma-separated services (default: every folder of services/ with a requirements.txt)"})
def build(c, only=None):
    """Build the service images (the engine's cache makes an unchanged image a no-op)."""
    services = _services(only)
    builder = docker_runner.DockerRunner(writable=[])
    print("Docker engine %s" % _engine(builder))
    started = time.time()
    builder.ensure_base_images(services)
    print("base images ready in %.0f s" % (time.time() - started))
    for service in services:
        image_started = time.time()
        builder.build(service)
        print("image %s: built in %.0f s, %.0f MB" % (builder.image(service), time.time() - image_started,
                                                     builder.size(service) / 1e6))
    print("images: %d built in %.0f s" % (len(services), time.time() - started))


@task(help={"only": "comma-separated services (default: all)"})
def smoke(c, only=None):
    """The per-image smoke tests (tests/test_docker.py), building images where needed."""
    services = _services(only)
    _engine(docker_runner.DockerRunner(writable=[]))
    command = [sys.executable, "-m", "pytest", "-q", os.path.join("tests", "test_docker.py")]
    if only:
        command += ["-k", " or ".join(services)]
    sys.exit(subprocess.call(command, cwd=ROOT))
