"""The VGGFace2 (Caffe) entrypoint and what it imports must also run under Python 2.7."""
import glob
import os
import subprocess
import sys

import pytest

from conftest import ROOT

VERMIN = os.path.join(os.path.dirname(sys.executable), "vermin")

PY27_MODULES = ["shared/__init__.py", "shared/schema.py", "shared/resumable.py", "shared/backbone.py",
                "shared/shards.py", "shared/validate.py", "shared/preprocess.py", "shared/images.py",
                "shared/storage.py", "shared/registry.py", "shared/engines.py",
                "shared/steps.py", "shared/template.py", "shared/augment.py", "shared/progress.py"]
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
