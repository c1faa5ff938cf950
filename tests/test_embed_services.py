"""The two real backbone services through their entrypoints, on real LFW crops and weights."""
import os
import shutil

import numpy as np
import pytest

from conftest import lfw_people, run_service
from shared.contract.shards import merge_shards
from shared.faces.images import load_rgb, save_rgb
from shared.faces.template import derive_from_112
from shared.schema import EXIT_BAD_IMAGE, EXIT_USAGE, EXIT_WEIGHTS, output_files
from shared.storage import read_json

PEOPLE = 6  # 6 identities x 2 images: 6 same-person pairs, 60 different-person pairs
SERVICES = [("insightface", "model4_insightface", "112x112"), ("dlib", "model5_dlib", "150x150"),
            ("dlib", "model5_dlib_chip", "224x224")]


@pytest.fixture(scope="module")
def faces(tmp_path_factory, lfw):
    """Crops of PEOPLE identities at every size the services read, plus the list file."""
    root = tmp_path_factory.mktemp("faces")
    names = [image for _, images in lfw_people(PEOPLE) for image in images]
    for crop in ("112x112", "150x150", "224x224"):
        for name in names:
            os.makedirs(str(root / crop / os.path.dirname(name)), exist_ok=True)
            save_rgb(str(root / crop / name), derive_from_112(load_rgb(os.path.join(lfw, name)), crop))
    (root / "list.txt").write_text("".join(n + "\n" for n in names))
    return root, names


def _embed(faces, service, model, crop, out, *extra):
    root, _ = faces
    code, log = run_service(service, ["--model", model, "--images", str(root / crop), "--list",
                                      str(root / "list.txt"), "--out", str(out)] + list(extra))
    assert code == 0, log
    return log


@pytest.mark.parametrize("service,model,crop", SERVICES)
def test_same_person_is_closer_than_different_person(faces, tmp_path, service, model, crop, weights_root):
    _embed(faces, service, model, crop, tmp_path, "--flip", "--weights-root", weights_root)
    files = output_files(str(tmp_path), "embeddings")
    embeddings = np.load(files["embeddings"])
    flips = np.load(files["flip"])
    assert embeddings.shape == flips.shape == (2 * PEOPLE, 128) and embeddings.dtype == np.float32
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)
    cosine = embeddings.dot(embeddings.T)
    person = np.repeat(np.arange(PEOPLE), 2)
    same = cosine[(person[:, None] == person[None, :]) & ~np.eye(2 * PEOPLE, dtype=bool)]
    different = cosine[person[:, None] != person[None, :]]
    # dlib's descriptors all sit in one cone (cosine ~0.9 between strangers), so "clearly above"
    # is measured against the spread of the different-person scores, plus a ranking check.
    separation = (same.mean() - different.mean()) / different.std()
    ranked = np.mean(same[:, None] > different[None, :])
    print(model, "separation %.2f, ranked %.3f" % (separation, ranked))
    assert separation > 1.8 and ranked > 0.9, (separation, ranked)
    # a mirrored face is still the same face
    assert np.mean(np.sum(embeddings * flips, axis=1)) > same.mean()
    meta = read_json(files["meta"])
    assert meta["model"] == model and meta["dim"] == 128 and meta["counts"]["images"] == 2 * PEOPLE
    assert all(len(digest) == 64 for digest in meta["weights"]["files"].values())
    if service == "dlib":  # the OpenBLAS build (services/dlib/build-wheel.sh), not dlib-bin
        assert meta["versions"]["blas"] is True, meta["versions"]


@pytest.mark.parametrize("service,model,crop", SERVICES[:2])
def test_augmentation_shapes_and_determinism(faces, tmp_path, service, model, crop, weights_root):
    runs = {}
    for label, seed in (("a", 5), ("b", 5), ("c", 6)):
        _embed(faces, service, model, crop, tmp_path / label, "--augment", "3", "--seed", str(seed),
               "--weights-root", weights_root)
        runs[label] = np.load(output_files(str(tmp_path / label), "embeddings")["augment"])
    assert runs["a"].shape == (2 * PEOPLE, 3, 128)
    assert np.array_equal(runs["a"], runs["b"])
    assert not np.allclose(runs["a"], runs["c"])
    assert np.allclose(np.linalg.norm(runs["a"], axis=-1), 1, atol=1e-5)


def test_shards_concatenate_to_the_unsharded_result(faces, tmp_path, weights_root):
    common = ["--weights-root", weights_root, "--flip", "--augment", "2", "--seed", "3", "--batch-size", "5"]
    _embed(faces, "insightface", "model4_insightface", "112x112", tmp_path, "--split", "whole", *common)
    for index in range(3):
        _embed(faces, "insightface", "model4_insightface", "112x112", tmp_path, "--split", "parts",
               "--shard", "%d/3" % index, *common)
    merged = merge_shards(str(tmp_path), "parts", 3)
    whole = output_files(str(tmp_path), "whole")
    for key in ("embeddings", "flip", "augment"):
        assert np.array_equal(np.load(merged[key]), np.load(whole[key])), key
    assert open(merged["index"]).read() == open(whole["index"]).read()
    assert not [n for n in os.listdir(str(tmp_path)) if ".shard-" in n]


def test_parallel_workers_give_the_unsharded_result(faces, tmp_path, weights_root):
    common = ["--weights-root", weights_root, "--flip", "--batch-size", "4"]
    _embed(faces, "dlib", "model5_dlib", "150x150", tmp_path, "--split", "whole", *common)
    log = _embed(faces, "dlib", "model5_dlib", "150x150", tmp_path, "--split", "parallel", "--workers", "2", *common)
    for key in ("embeddings", "flip"):
        assert np.array_equal(np.load(output_files(str(tmp_path), "parallel")[key]),
                              np.load(output_files(str(tmp_path), "whole")[key])), key
    assert "shard" not in " ".join(os.listdir(str(tmp_path)))
    log = _embed(faces, "dlib", "model5_dlib", "150x150", tmp_path, "--split", "parallel", "--workers", "2", *common)
    assert "up to date" in log


def _no_outputs(folder):
    return not os.path.isdir(folder) or not [n for n in os.listdir(folder) if not n.startswith(".")]


def test_missing_image_is_named_and_nothing_is_written(faces, tmp_path, weights_root):
    root, names = faces
    listing = tmp_path / "list.txt"
    listing.write_text(names[0] + "\nnobody/missing.jpg\n")
    code, log = run_service("insightface", ["--model", "model4_insightface", "--images", str(root / "112x112"),
                                            "--list", str(listing), "--out", str(tmp_path / "out"),
                                            "--weights-root", weights_root])
    assert code == EXIT_BAD_IMAGE and "nobody/missing.jpg" in log and "no such file" in log
    assert _no_outputs(str(tmp_path / "out"))


def test_corrupt_image_stops_the_run_and_a_fixed_rerun_resumes(faces, tmp_path, weights_root):
    root, names = faces
    images = tmp_path / "images"
    shutil.copytree(str(root / "112x112"), str(images))
    broken = images / names[-1]
    good_bytes = broken.read_bytes()
    broken.write_bytes(good_bytes[:200])  # a truncated JPEG
    out = tmp_path / "out"
    args = ["--model", "model4_insightface", "--images", str(images), "--list", str(root / "list.txt"),
            "--out", str(out), "--weights-root", weights_root, "--chunk-size", "4", "--batch-size", "4"]
    code, log = run_service("insightface", args)
    assert code == EXIT_BAD_IMAGE and str(broken) in log
    assert _no_outputs(str(out))  # only the hidden resume folder holds the finished chunks
    broken.write_bytes(good_bytes)
    code, log = run_service("insightface", args)
    assert code == 0, log
    meta = read_json(output_files(str(out), "embeddings")["meta"])
    assert meta["timing"]["images_computed"] == 4  # chunks 0-3 and 4-7 were kept; 8-11 redone
    assert sorted(os.listdir(str(out))) == ["embeddings.npy", "embeddings_index.csv", "embeddings_meta.json"]
    code, log = run_service("insightface", args)
    assert code == 0 and "up to date" in log


def test_missing_weights_say_which_files_and_where(faces, tmp_path):
    root, _ = faces
    code, log = run_service("insightface", ["--model", "model4_insightface", "--images", str(root / "112x112"),
                                            "--list", str(root / "list.txt"), "--out", str(tmp_path / "out"),
                                            "--weights", str(tmp_path / "empty")])
    assert code == EXIT_WEIGHTS
    assert "model-0000.params" in log and str(tmp_path / "empty") in log and "InsightFace model zoo" in log
    assert _no_outputs(str(tmp_path / "out"))


def test_bad_arguments(faces, tmp_path, weights_root):
    root, _ = faces
    base = ["--images", str(root / "112x112"), "--list", str(root / "list.txt"), "--out", str(tmp_path),
            "--weights-root", weights_root]
    code, log = run_service("insightface", ["--model", "model5_dlib"] + base)
    assert code == EXIT_USAGE and "family 'dlib'" in log
    code, log = run_service("insightface", ["--model", "model4_insightface", "--shard", "3/3"] + base)
    assert code == EXIT_USAGE and "0 <= I < N" in log
    code, log = run_service("insightface", ["--model", "nope"] + base)
    assert code == EXIT_USAGE and "unknown model" in log
