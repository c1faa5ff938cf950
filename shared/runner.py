"""Runners: how the tasks start a service's entrypoint. Small and swappable on purpose.

The local runner uses the service's own virtualenv, `.venvs/<service>/` (made by
`make setup`), so frameworks with incompatible pins (MXNet wants numpy 1.23, TensorFlow
numpy >= 1.26) never share an interpreter. The docker runner runs the same entrypoint in the
service's image (docker/<service>.Dockerfile): no network, not root, the workspace mounted
read-write and the weights and data read-only, each at the same path as on the host, so the
arguments and outputs are the same as with the local runner.
"""
import os
import re
import subprocess
import sys

from shared.settings import ROOT


class ServiceError(RuntimeError):
    def __init__(self, service, code, command):
        RuntimeError.__init__(self, "service '%s' failed with exit code %d: %s"
                              % (service, code, " ".join(command)))
        self.code = code


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
        code = subprocess.call(command, env=full_env)
        if code != 0:
            raise ServiceError(service, code, command)


# Debian's client: BuildKit works with it (a /usr/local/bin/docker 28.x without buildx fails).
DOCKER = os.environ.get("FACES_DOCKER", "/usr/bin/docker" if os.path.isfile("/usr/bin/docker") else "docker")
IMAGE_PREFIX = os.environ.get("FACES_IMAGE_PREFIX", "faces/")
# The images' own unprivileged user; containers run as it when the caller is root.
IMAGE_USER = (1000, 1000)
# A CA bundle the host trusts (TLS-inspecting proxies): handed to pip in builds when present.
CA_BUNDLES = [os.environ.get("PIP_CERT") or "", "/etc/ssl/certs/ca-certificates.crt"]


def docker_answers(docker=DOCKER):
    """The engine's version when a Docker engine answers, else None."""
    try:
        proc = subprocess.run([docker, "version", "--format", "{{.Server.Version}}"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = proc.stdout.decode().strip()
    return version if proc.returncode == 0 and version else None


def dockerfile(service, root=ROOT):
    return os.path.join(root, "docker", service + ".Dockerfile")


def image_services(root=ROOT):
    """Services that have an image: docker/<service>.Dockerfile."""
    folder = os.path.join(root, "docker")
    return sorted(name[:-len(".Dockerfile")] for name in os.listdir(folder) if name.endswith(".Dockerfile"))


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
    host path. Every absolute path argument must lie under one of them. The image is built
    (or found up to date in the engine's cache) once per service before its first run."""

    name = "docker"

    def __init__(self, writable, readable=(), root=ROOT, docker=DOCKER, prefix=IMAGE_PREFIX):
        self.writable = [os.path.abspath(p) for p in writable]
        self.readable = [os.path.abspath(p) for p in readable]
        self.root = root
        self.docker = docker
        self.prefix = prefix
        self.built = set()

    def image(self, service):
        return self.prefix + service

    def user(self):
        """The caller's uid:gid, so outputs are the caller's; a root caller's containers run as
        the images' unprivileged user instead (see _lend)."""
        uid, gid = os.getuid(), os.getgid()
        return IMAGE_USER if uid == 0 else (uid, gid)

    def options(self):
        """The `docker run` options every container gets."""
        options = ["--rm", "--network", "none", "--user", "%d:%d" % self.user(),
                   "--security-opt", "no-new-privileges", "--cap-drop", "ALL"]
        for folder in self.writable:
            options += ["--volume", "%s:%s:rw" % (folder, folder)]
        for folder in self.readable:
            if os.path.isdir(folder) and not self._under(folder, self.writable):
                options += ["--volume", "%s:%s:ro" % (folder, folder)]
        return options

    @staticmethod
    def _under(path, folders):
        path = os.path.abspath(path)
        return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)

    def check_paths(self, args):
        mounted = self.writable + self.readable
        for arg in args:
            arg = str(arg)
            if os.path.isabs(arg) and not self._under(arg, mounted):
                raise ValueError("path %s is outside the folders the container sees (read-write: %s; "
                                 "read-only: %s)" % (arg, ", ".join(self.writable) or "-",
                                                     ", ".join(self.readable) or "-"))

    def command(self, service, entrypoint, args, env=None):
        self.check_paths(args)
        environment = []
        for key, value in sorted((env or {}).items()):
            environment += ["--env", "%s=%s" % (key, value)]
        return ([self.docker, "run"] + self.options() + environment + [self.image(service), entrypoint]
                + [str(a) for a in args])

    def ensure_base_images(self, services):
        """Make the base images of these services' Dockerfiles available to the engine:
        docker/base-images.sh keeps, pulls, or (no registry) debootstraps them, all at once."""
        suites = set()
        for service in services:
            path = dockerfile(service, self.root)
            base = base_image(path)
            if subprocess.call([self.docker, "image", "inspect", base], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) == 0:
                continue
            suite = re.match(r"debian:(\w+)-slim$", base)
            if not suite:
                raise ValueError("base image %s of %s is missing and is not a Debian slim image "
                                 "docker/base-images.sh can make" % (base, path))
            suites.add(suite.group(1))
        if suites:
            subprocess.check_call([os.path.join(self.root, "docker", "base-images.sh")] + sorted(suites),
                                  env=dict(os.environ, DOCKER=self.docker))

    def build(self, service, quiet=False):
        """Build the service's image (a no-op in the engine's cache when nothing changed), its
        base image first where missing, the host's CA bundle passed as the build secret `ca`
        when there is one (pip in the build trusts it; without it pip uses its own)."""
        path = dockerfile(service, self.root)
        if not os.path.isfile(path):
            raise ValueError("no image for service '%s': %s does not exist" % (service, path))
        self.ensure_base_images([service])
        command = [self.docker, "build", "--file", path, "--tag", self.image(service)]
        command += self._local_torch(service)
        ca = next((c for c in CA_BUNDLES if c and os.path.isfile(c)), None)
        if ca:
            command += ["--secret", "id=ca,src=" + ca]
        if quiet:
            command.append("--quiet")
        proc = subprocess.run(command + [self.root], env=dict(os.environ, DOCKER_BUILDKIT="1"),
                              stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            if quiet:
                sys.stderr.write(proc.stdout.decode(errors="replace"))
            raise ServiceError(service, proc.returncode, command)
        self.built.add(service)

    def _local_torch(self, service):
        """Build arguments for a service that pins torch. PyPI's Linux torch wheels are CUDA
        builds, so its Dockerfile installs torch from PyTorch's CPU index; where this host's pip
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
        with self._lend():
            code = subprocess.call(command)
        if code != 0:
            raise ServiceError(service, code, command)

    def _lend(self):
        return _LentFolders(self.writable) if os.getuid() == 0 else _NothingLent()


class _NothingLent(object):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _LentFolders(object):
    """A root caller's containers run as the images' user, which cannot write into root's
    folders: lend it the writable folders' directories for the run, then give every directory
    and file it owns there back to root, so the outputs end up the caller's as usual. (Two
    root runs overlapping on one workspace would give back each other's folders early: the
    tasks run containers one after another.)"""

    def __init__(self, folders):
        self.folders = folders
        self.before = set()

    def _walk(self):
        for folder in self.folders:
            for top, dirs, files in os.walk(folder):
                yield top, True
                for name in files:
                    yield os.path.join(top, name), False

    def __enter__(self):
        for folder in self.folders:
            if not os.path.isdir(folder):
                os.makedirs(folder)
        for path, is_dir in self._walk():
            owner = os.lstat(path).st_uid
            if owner == IMAGE_USER[0]:
                self.before.add(path)  # the user's own before the run: left as it is
            elif is_dir and owner == 0:
                os.lchown(path, IMAGE_USER[0], IMAGE_USER[1])
        return self

    def __exit__(self, *exc):
        for path, _ in self._walk():
            if path not in self.before and os.lstat(path).st_uid == IMAGE_USER[0]:
                os.lchown(path, 0, 0)
        return False


def get(name, config=None):
    """A runner by name: local, docker, or auto (docker when a Docker engine answers, else
    local; the choice is logged). The docker runner mounts the folders of `config` (a task's
    settings; default invoke.yaml + FACES_* overrides): the workspace read-write, the weights
    and data read-only."""
    if name == "auto":
        version = docker_answers()
        name = "docker" if version else "local"
        sys.stderr.write("runner: %s (%s)\n" % (name, "Docker engine %s answers" % version if version
                                                    else "no Docker engine answers"))
    if name == "local":
        return LocalRunner()
    if name == "docker":
        if config is None:
            from shared import settings

            config = settings.load()
        return DockerRunner(writable=[config["workspace"]],
                            readable=[config["weights_dir"], config["data_dir"]])
    raise ValueError("unknown runner '%s' (known: local, docker, auto)" % name)
