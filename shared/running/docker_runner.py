"""The docker runner: a service's entrypoint in the service's image, built from
docker/<service>.Dockerfile where the service has one of its own, else from the bookworm
template docker/service.Dockerfile (`--build-arg SERVICE=<service>`). No network, not root, the
workspace mounted read-write and the weights and data read-only (even inside the workspace),
each at the same path as on the host, so the arguments and outputs are the same as with the
local runner; a read-only root, memory and process limits (shared/running/container_policy.py).
"""
import os
import re
import signal
import socket
import subprocess
import sys

from shared.contract.shards import die_with_parent
from shared.running import container_policy
from shared.running.lending import IMAGE_USER, lent_folders
from shared.running.runner import ServiceError, services as service_names
from shared.running.settings import ROOT

TEMPLATE = "service"  # docker/service.Dockerfile
OWNER_LABEL = "faces.owner"  # <host>:<pid>:<start time> of the process whose `docker run` started it


def owner(pid=None):
    """A process as `<host>:<pid>:<start time>`; the start time tells a reused pid apart."""
    pid = pid or os.getpid()
    try:
        with open("/proc/%d/stat" % pid) as f:
            started = f.read().rsplit(")", 1)[1].split()[19]  # field 22, counted after the name
    except (OSError, IndexError):
        started = "gone"
    return "%s:%d:%s" % (socket.gethostname(), pid, started)


def orphaned(label):
    """Whether a container's owner label names a process of this host that no longer runs."""
    host, _, pid = label.partition(":")
    return host == socket.gethostname() and pid.partition(":")[0].isdigit() and owner(int(pid.partition(":")[0])) != label


def default_docker():
    """The docker client: $FACES_DOCKER, else Debian's /usr/bin/docker (BuildKit works with it;
    a /usr/local/bin/docker 28.x without buildx fails), else `docker` on PATH. Read when asked,
    so a caller (a test) can point it at another executable."""
    if os.environ.get("FACES_DOCKER"):
        return os.environ["FACES_DOCKER"]
    return "/usr/bin/docker" if os.path.isfile("/usr/bin/docker") else "docker"


def ca_bundle():
    """A CA bundle the host trusts (TLS-inspecting proxies), handed to pip in builds: $PIP_CERT
    or the system bundle, when present; else None."""
    return next((c for c in (os.environ.get("PIP_CERT"), "/etc/ssl/certs/ca-certificates.crt")
                 if c and os.path.isfile(c)), None)


def docker_answers(docker=None):
    """The engine's version when a Docker engine answers, else None."""
    try:
        proc = subprocess.run([docker or default_docker(), "version", "--format", "{{.Server.Version}}"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = proc.stdout.decode().strip()
    return version if proc.returncode == 0 and version else None


def dockerfile(service, root=ROOT):
    """docker/<service>.Dockerfile where the service has its own, else the bookworm template."""
    own = os.path.join(root, "docker", service + ".Dockerfile")
    return own if os.path.isfile(own) else os.path.join(root, "docker", TEMPLATE + ".Dockerfile")


def base_image(path):
    """The default of the Dockerfile's `ARG BASE_IMAGE=...`."""
    with open(path) as f:
        found = re.search(r"^ARG BASE_IMAGE=(\S+)", f.read(), re.MULTILINE)
    if not found:
        raise ValueError("%s has no `ARG BASE_IMAGE=<image>` line" % path)
    return found.group(1)


class DockerRunner(object):
    """`docker run --rm --network none` of the service's image. `writable` folders (the
    workspace) are mounted read-write, `readable` ones (weights, data) read-only, each at its
    host path. Every path argument must name a place under them. The image is built
    (or found up to date in the engine's cache) once per service and runner, before its first
    run; `built` holds the services this runner has built."""

    name = "docker"

    def __init__(self, writable, readable=(), root=ROOT, docker=None, prefix=None, version=None, limits=None):
        self.writable = [os.path.abspath(p) for p in writable]
        self.readable = [os.path.abspath(p) for p in readable]
        self.limits = limits  # invoke.yaml `containers`: memory, pids_limit
        self.root = root
        self.docker = docker or default_docker()
        self.prefix = os.environ.get("FACES_IMAGE_PREFIX", "faces/") if prefix is None else prefix
        self.built = set()
        self.bases = set()  # base images known to be in the engine
        self._version = version

    def engine(self):
        """The engine's version, or None when none answers; asked once per runner."""
        if self._version is None:
            self._version = docker_answers(self.docker)
        return self._version

    def image(self, service):
        return self.prefix + service

    def user(self):
        """The caller's uid:gid, so outputs are the caller's; a root caller's containers run as
        the images' unprivileged user instead (see lent_folders)."""
        uid, gid = os.getuid(), os.getgid()
        return IMAGE_USER if uid == 0 else (uid, gid)

    def options(self):
        """The `docker run` options every container gets (shared/running/container_policy.py)."""
        return container_policy.run_options(self.user(), self.writable, self.readable, self.limits)

    def check_paths(self, args):
        container_policy.check_paths(args, self.writable, self.readable)

    def command(self, service, entrypoint, args, env=None):
        self.check_paths(args)
        environment = []
        for key, value in sorted((env or {}).items()):
            environment += ["--env", "%s=%s" % (key, value)]
        return ([self.docker, "run", "--label", "%s=%s" % (OWNER_LABEL, owner())] + self.options() + environment
                + [self.image(service), entrypoint] + [str(a) for a in args])

    def reap_orphans(self):
        """Remove the service containers whose `docker run` process died (a killed cluster
        worker's): the container outlives its client and would keep writing beside the retry."""
        listed = subprocess.run([self.docker, "ps", "--filter", "label=" + OWNER_LABEL, "--format",
                                 '{{.ID}} {{.Label "%s"}}' % OWNER_LABEL], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL).stdout.decode().split("\n")
        for container, _, label in (line.partition(" ") for line in listed if line.strip()):
            if orphaned(label):
                subprocess.call([self.docker, "rm", "--force", container], stdout=subprocess.DEVNULL)
                sys.stderr.write("removed container %s: its docker run (%s) is gone\n" % (container, label))

    def ensure_base_images(self, services):
        """Make the base images of these services' Dockerfiles available to the engine:
        docker/base-images.sh keeps, pulls, or (no registry) debootstraps them, all at once."""
        suites = set()
        for path in sorted(set(dockerfile(service, self.root) for service in services)):
            base = base_image(path)
            if base in self.bases:
                continue
            if subprocess.call([self.docker, "image", "inspect", base], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) == 0:
                self.bases.add(base)
                continue
            suite = re.match(r"debian:(\w+)-slim$", base)
            if not suite:
                raise ValueError("base image %s of %s is missing and is not a Debian slim image "
                                 "docker/base-images.sh can make" % (base, path))
            suites.add(suite.group(1))
        if suites:
            subprocess.check_call([os.path.join(self.root, "docker", "base-images.sh")] + sorted(suites),
                                  env=dict(os.environ, DOCKER=self.docker))
            self.bases.update("debian:%s-slim" % suite for suite in suites)

    def build_command(self, service, quiet=False):
        """The `docker build` of the service's image: its Dockerfile (the template with
        SERVICE=<service>), torch from .whl/ where this host has it, the host's CA bundle as the
        build secret `ca` when there is one (pip in the build trusts it; without it pip uses its
        own)."""
        if service not in service_names(self.root):
            raise ValueError("no service '%s' (services: %s)" % (service, ", ".join(service_names(self.root))))
        path = dockerfile(service, self.root)
        command = [self.docker, "build", "--file", path, "--tag", self.image(service)]
        if os.path.basename(path) == TEMPLATE + ".Dockerfile":
            command += ["--build-arg", "SERVICE=" + service]
        command += self._local_torch(service)
        if ca_bundle():
            command += ["--secret", "id=ca,src=" + ca_bundle()]
        return command + (["--quiet"] if quiet else []) + [self.root]

    def build(self, service, quiet=False):
        """Build the service's image (a no-op in the engine's cache when nothing changed), its
        base image first where missing."""
        command = self.build_command(service, quiet)
        self.ensure_base_images([service])
        proc = subprocess.run(command, env=dict(os.environ, DOCKER_BUILDKIT="1"),
                              stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            if quiet:
                sys.stderr.write(proc.stdout.decode(errors="replace"))
            raise ServiceError(service, proc.returncode, command)
        self.built.add(service)

    def _local_torch(self, service):
        """Build arguments for a service that pins torch. PyPI's Linux torch wheels are CUDA
        builds, so the Dockerfile installs torch from PyTorch's CPU index; where this host's pip
        has the pinned CPU wheel in a local folder (its find-links), the wheel goes into .whl/,
        the Dockerfile's wheelhouse, and the index is skipped (it may be unreachable)."""
        requirements = os.path.join(self.root, "services", service, "requirements.txt")
        with open(requirements) as f:
            pins = [line.split()[0] for line in f if line.startswith("torch==")]
        if not pins:
            return []
        found = subprocess.call([sys.executable, "-m", "pip", "download", "--quiet", "--no-index", "--no-deps",
                                 "--dest", os.path.join(self.root, ".whl"), pins[0]],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0
        return ["--build-arg", "TORCH_INDEX="] if found else []

    def size(self, service):
        """The image's size in bytes."""
        return int(subprocess.check_output([self.docker, "image", "inspect", "--format", "{{.Size}}",
                                            self.image(service)]).decode())

    def run(self, service, entrypoint, args, env=None):
        if service not in self.built:
            self.build(service, quiet=True)
        command = self.command(service, entrypoint, args, env)
        self.reap_orphans()
        with lent_folders(self.writable):  # the client dies with this task: SIGTERM, which it passes on to the
            code = subprocess.call(command, preexec_fn=die_with_parent(signal.SIGTERM))  # container (--init, --rm)
        if code != 0:
            raise ServiceError(service, code, command)

