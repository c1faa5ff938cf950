"""`images` collection: the per-service Docker images (docker/<service>.Dockerfile).

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

from shared import runner as runner_mod


def _services(only):
    known = runner_mod.image_services()
    if only is None:
        return known
    wanted = only.split(",")
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise SystemExit("no image named %s (images: %s)" % (", ".join(unknown), ", ".join(known)))
    return wanted


def _engine():
    version = runner_mod.docker_answers()
    if not version:
        raise SystemExit("no Docker engine answers (%s version): start one, e.g. `sudo docker/start-engine.sh`"
                         % runner_mod.DOCKER)
    return version


@task(help={"only": "comma-separated services (default: every docker/<service>.Dockerfile)"})
def build(c, only=None):
    """Build the service images (the engine's cache makes an unchanged image a no-op)."""
    print("Docker engine %s" % _engine())
    builder = runner_mod.DockerRunner(writable=[])
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
    _engine()
    command = [sys.executable, "-m", "pytest", "-q", os.path.join("tests", "test_docker.py")]
    if only:
        command += ["-k", " or ".join(_services(only))]
    sys.exit(subprocess.call(command, cwd=runner_mod.ROOT))
