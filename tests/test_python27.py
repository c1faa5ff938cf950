"""The VGGFace2 (Caffe) entrypoint and what it imports must also run under Python 2.7."""
import glob
import os
import subprocess
import sys

import pytest

from conftest import ROOT

VERMIN = os.path.join(os.path.dirname(sys.executable), "vermin")

# The Caffe entrypoint's imports, with the package __init__ files on their way.
PY27_MODULES = ["shared/__init__.py", "shared/schema.py", "shared/storage.py", "shared/progress.py", "shared/hardware.py",
                "shared/contract/__init__.py", "shared/contract/backbone.py", "shared/contract/resumable.py",
                "shared/contract/shards.py", "shared/contract/validate.py",
                "shared/faces/__init__.py", "shared/faces/images.py", "shared/faces/template.py",
                "shared/faces/augment.py",
                "shared/method/__init__.py", "shared/method/steps.py",
                "shared/models/__init__.py", "shared/models/registry.py", "shared/models/engines.py",
                "shared/models/preprocess.py"]
PY27_MODULES += sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "services/vggface2/*.py")))


def test_vermin_finds_no_python3_only_feature():
    proc = subprocess.run([VERMIN, "--target=2.7", "--target=3.5-", "--no-tips",
                           "--violations"] + PY27_MODULES, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_vermin_catches_an_f_string(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("name = 'x'\nprint(f'{name}')\n")
    proc = subprocess.run([VERMIN, "--target=2.7", "--target=3.5-", "--no-tips",
                           "--violations", str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0


def _python27():
    for candidate in [os.path.expanduser("~/.pyenv/versions/2.7.18/bin/python2.7"), "/usr/bin/python2.7"]:
        if os.path.isfile(candidate):
            return candidate
    return None


@pytest.mark.skipif(_python27() is None, reason="no Python 2.7 interpreter here (the Caffe image checks it)")
def test_python27_compiles_the_modules(tmp_path):
    for module in PY27_MODULES:
        proc = subprocess.run([_python27(), "-c", "import py_compile,sys; py_compile.compile(sys.argv[1], "
                               "cfile=sys.argv[2], doraise=True)", module, str(tmp_path / "x.pyc")],
                              cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, module + ": " + proc.stderr
