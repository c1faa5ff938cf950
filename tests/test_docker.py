"""Per-image smoke tests (`invoke images.smoke`): each service's image runs its entrypoint on
real LFW crops with real weights and agrees with the local runner; containers have no network
and do not run as root. Every test here needs a Docker engine: without one they are skipped
(a developer without Docker), unless FACES_REQUIRE_DOCKER=1 (CI), where that is a failure."""
import os
import subprocess

import numpy as np
import pytest

from conftest import LFW, ROOT, WEIGHTS, lfw_people, require
from shared import registry as registry_mod
from shared import runner as runner_mod
from shared.contract import output_files
from shared.settings import load as load_settings
from shared.storage import read_json

ENGINE = runner_mod.docker_answers()
if ENGINE is None:
    if os.environ.get("FACES_REQUIRE_DOCKER") == "1":
        raise RuntimeError("FACES_REQUIRE_DOCKER=1 but no Docker engine answers (%s version)" % runner_mod.DOCKER)
    pytest.skip("no Docker engine answers (%s version): the image smoke tests need one "
                "(start it with docker/start-engine.sh)" % runner_mod.DOCKER, allow_module_level=True)

# The model each image's smoke test embeds with (real weights where they exist here). Every
# image needs one: a new docker/<service>.Dockerfile without a case fails test_every_image_has_a_smoke_case.
SMOKE_MODELS = {"insightface": "model4_insightface", "dlib": "model5_dlib", "vggface2": "caffe_mobilefacenet"}
PEOPLE = 3  # identities, two images each
TOLERANCE = 1e-4  # max abs difference, container vs local runner, per embedding value


@pytest.fixture(scope="module")
def docker_runner(tmp_path_factory):
    """The runner the tasks use, with a scratch folder as its workspace."""
    data_dir = load_settings()["data_dir"]
    return runner_mod.DockerRunner(writable=[str(tmp_path_factory.mktemp("docker-workspace"))],
                                   readable=[require(WEIGHTS), require(data_dir)])


@pytest.fixture(scope="module")
def built(docker_runner):
    """Build each image once (a no-op when the engine's cache is current)."""
    def ensure(service):
        if service not in docker_runner.built:
            docker_runner.build(service, quiet=True)
        return docker_runner.image(service)
    return ensure


def probe(docker_runner, service, python, code, args=(), network=None):
    """Run a Python snippet in the service's image with the runner's own `docker run` options
    (or those with another --network); return what it printed."""
    options = docker_runner.options()
    if network:
        options[options.index("--network") + 1] = network
    proc = subprocess.run([docker_runner.docker, "run"] + options + ["--entrypoint", python,
                          docker_runner.image(service), "-c", code] + list(args), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip()


def image_python(service):
    return "python3" if service == "vggface2" else "python"


def test_every_image_has_a_smoke_case():
    assert sorted(runner_mod.image_services()) == sorted(SMOKE_MODELS)


@pytest.mark.parametrize("service", sorted(SMOKE_MODELS))
def test_container_matches_local_runner(service, docker_runner, built):
    built(service)
    model = SMOKE_MODELS[service]
    entry = registry_mod.load().model(model)
    people = lfw_people(PEOPLE, per_person=2)
    names = [image for _, images in people for image in images]
    scratch = docker_runner.writable[0]
    list_path = os.path.join(scratch, service + "-images.txt")
    with open(list_path, "w") as f:
        f.write("".join(n + "\n" for n in names))
    outputs = {}
    runners = {"docker": docker_runner, "local": runner_mod.LocalRunner()}
    for name, runner in sorted(runners.items()):
        out = os.path.join(scratch, service + "-" + name)
        runner.run(service, "embed", ["--model", model, "--images", LFW, "--list", list_path, "--out", out,
                                      "--split", "smoke", "--flip", "--weights-root", WEIGHTS])
        outputs[name] = output_files(out, "smoke")

    docker_files = outputs["docker"]
    for path in docker_files.values():  # the caller owns what the container wrote
        if os.path.exists(path):
            assert os.stat(path).st_uid == os.getuid(), path
    embeddings = np.load(docker_files["embeddings"])
    flipped = np.load(docker_files["flip"])
    assert embeddings.shape == flipped.shape == (len(names), entry["output"]["dim"])
    assert embeddings.dtype == np.float32
    assert np.isfinite(embeddings).all() and np.isfinite(flipped).all()
    if entry["output"]["normalize"]:
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)
    # Same person > different person: each person's pair against every cross-person pair.
    cosine = embeddings @ embeddings.T / np.outer(np.linalg.norm(embeddings, axis=1), np.linalg.norm(embeddings, axis=1))
    person = np.repeat(np.arange(PEOPLE), 2)
    same = cosine[person[:, None] == person[None, :]].reshape(-1)
    same = same[same < 1 - 1e-6]  # drop the diagonal
    different = cosine[person[:, None] != person[None, :]]
    assert same.min() > different.mean(), (same, different.mean())

    for key in ("embeddings", "flip"):
        difference = np.abs(np.load(docker_files[key]) - np.load(outputs["local"][key])).max()
        assert difference <= TOLERANCE, "%s %s: container vs local max abs diff %g" % (service, key, difference)
    meta = read_json(docker_files["meta"])
    assert meta["model"] == model and meta["counts"]["images"] == len(names)
    if service == "vggface2":  # the image runs Caffe itself; the local venv runs OpenCV's importer
        assert meta["versions"]["backend"] == "caffe", meta["versions"]
        assert read_json(outputs["local"]["meta"])["versions"]["backend"] == "opencv"


@pytest.mark.parametrize("service", sorted(SMOKE_MODELS))
def test_container_has_no_network_and_is_not_root(service, docker_runner, built):
    built(service)
    code = ("import errno, os, socket\n"
            "s = socket.socket()\n"
            "s.settimeout(5)\n"
            "try:\n"
            "    s.connect(('151.101.2.132', 80)); reached = 'reached'\n"  # deb.debian.org's CDN
            "except (OSError, socket.error) as e:\n"
            "    reached = 'unreachable'\n"
            "print(os.getuid(), os.getgid(), reached, ','.join(sorted(os.listdir('/sys/class/net'))))\n")
    uid, gid, reached, interfaces = probe(docker_runner, service, image_python(service), code).split()
    assert int(uid) != 0 and int(gid) != 0
    assert (int(uid), int(gid)) == docker_runner.user()
    assert reached == "unreachable" and interfaces == "lo"
    # The probe can tell: on Docker's default network the same container has an interface.
    control = probe(docker_runner, service, image_python(service),
                    "import os; print(','.join(sorted(os.listdir('/sys/class/net'))))",
                    network="bridge")
    assert control != "lo" and "eth0" in control.split(",")


def test_vggface2_image_compiles_the_caffe_entrypoint_under_python27(docker_runner, built):
    from test_python27 import PY27_MODULES

    built("vggface2")
    code = ("from __future__ import print_function\n"
            "import py_compile, sys\n"
            "for path in sys.argv[1:]:\n"
            "    py_compile.compile(path, cfile='/tmp/check.pyc', doraise=True)\n"
            "print(sys.version.split()[0], len(sys.argv) - 1)\n")
    version, count = probe(docker_runner, "vggface2", "python2.7", code,
                           args=["/app/" + module for module in PY27_MODULES]).split()
    assert version.startswith("2.7.") and int(count) == len(PY27_MODULES)
    assert any(m.startswith("services/vggface2/") for m in PY27_MODULES)
