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

from pipeline.common import fail
from shared.running import docker_runner
from shared.running.runner import services as all_services
from shared.running.settings import ROOT


def _services(only):
    known = all_services()
    if only is None:
        return known
    wanted = only.split(",")
    unknown = [name for name in wanted if name not in known]
    if unknown:
        fail("no image named %s (images: %s)" % (", ".join(unknown), ", ".join(known)))
    return wanted


def _engine(runner):
    version = runner.engine()
    if not version:
        fail("no Docker engine answers (%s version): start one, e.g. `sudo docker/start-engine.sh`"
             % runner.docker)
    return version


@task(help={"only": "comma-separated services (default: every folder of services/ with a requirements.txt)"})
def build(c, only=None):
    """Build the service images (the engine's cache makes an unchanged image a no-op)."""
    builder = docker_runner.DockerRunner(writable=[])
    print("Docker engine %s" % _engine(builder))
    services = _services(only)
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
    _engine(docker_runner.DockerRunner(writable=[]))
    command = [sys.executable, "-m", "pytest", "-q", os.path.join("tests", "test_docker.py")]
    if only:
        command += ["-k", " or ".join(_services(only))]
    sys.exit(subprocess.call(command, cwd=ROOT))
