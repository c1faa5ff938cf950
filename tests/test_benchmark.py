"""The benchmark builder on a small identity tree of real LFW crops."""
import csv
import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from conftest import LFW, require
from shared.method.benchmark import DAMAGE_KINDS, UNKNOWN_LABEL, build, damage, plan


@pytest.fixture(scope="module")
def identities(tmp_path_factory):
    """40 identities with 2+ images and 30 with one, copied from the LFW crops."""
    root = tmp_path_factory.mktemp("identities")
    multi, single = 0, 0
    for name in sorted(os.listdir(require(LFW))):
        images = sorted(os.listdir(os.path.join(LFW, name)))
        if (len(images) >= 2 and multi < 40) or (len(images) == 1 and single < 30):
            shutil.copytree(os.path.join(LFW, name), str(root / name))
            multi, single = multi + (len(images) >= 2), single + (len(images) == 1)
        if multi == 40 and single == 30:
            return str(root)
    raise AssertionError("not enough identities")


def _read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _tree_digest(folder):
    digest = hashlib.sha256()
    for base, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(base, name)
            digest.update(os.path.relpath(path, folder).encode() + open(path, "rb").read())
    return digest.hexdigest()


def test_layout_labels_and_counts(identities, tmp_path):
    info = build(identities, str(tmp_path / "dataset"), seed=1, known=30, max_train=3,
                 unknown_share=0.2, damage_share=0.3)
    dataset = tmp_path / "dataset"
    train, truth = _read(str(dataset / "train.csv")), _read(str(dataset / "test_truth.csv"))
    assert sorted(os.listdir(str(dataset / "train"))) == sorted(r["image"] for r in train)
    assert sorted(os.listdir(str(dataset / "test"))) == sorted(r["image"] for r in truth)
    assert [r["image"] for r in _read(str(dataset / "sample_submission.csv"))] == [r["image"] for r in truth]
    labels = [int(r["label"]) for r in train]
    assert sorted(set(labels)) == list(range(30))
    assert max(np.bincount(labels)) <= 3
    provenance = dict((r["image"], r) for r in _read(str(dataset / "provenance.csv")))
    train_people = set(provenance[r["image"]]["source"].split("/")[0] for r in train)
    for row in truth:
        person = provenance[row["image"]]["source"].split("/")[0]
        assert (int(row["label"]) == UNKNOWN_LABEL) == (person not in train_people)
    unknown = info["counts"]["test_unknown"]
    assert unknown == sum(int(r["label"]) == UNKNOWN_LABEL for r in truth) > 0
    assert abs(unknown / float(len(truth)) - 0.2) < 0.05
    assert sum(info["counts"]["damaged"].values()) == sum(1 for r in provenance.values() if r["damage"])
    assert not any(name.startswith(".") for name in os.listdir(str(tmp_path)))  # no staging left


def test_same_seed_same_bytes_other_seed_differs(identities, tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        build(identities, str(tmp_path / name), seed=seed, known=20, damage_share=0.5)
    assert _tree_digest(str(tmp_path / "a")) == _tree_digest(str(tmp_path / "b"))
    assert _tree_digest(str(tmp_path / "a")) != _tree_digest(str(tmp_path / "c"))


def test_rebuild_is_skipped_and_other_settings_refused(identities, tmp_path):
    target = str(tmp_path / "dataset")
    first = build(identities, target, seed=3, known=10)
    assert build(identities, target, seed=3, known=10) == first
    with pytest.raises(FileExistsError, match="other settings"):
        build(identities, target, seed=4, known=10)


def _plan_digest(rows):
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def test_the_default_benchmark_draw_is_unchanged():
    """invoke.yaml's default benchmark, pinned: options added since keep its every choice."""
    rows = plan(require(LFW))
    assert len(rows) == 6058
    assert _plan_digest(rows) == "1908b4dec30deec18e8cf929c2492bae12937073813eff97464ae1de93d5f9d4"


def test_min_images_draws_known_identities_among_those_with_enough_images(identities, tmp_path):
    sizes = dict((name, len(os.listdir(os.path.join(identities, name)))) for name in os.listdir(identities))
    info = build(identities, str(tmp_path / "dataset"), seed=5, known=12, min_images=3, unknown_share=0.2)
    provenance = _read(str(tmp_path / "dataset" / "provenance.csv"))
    truth = dict((r["image"], int(r["label"])) for r in _read(str(tmp_path / "dataset" / "test_truth.csv")))
    train = dict((r["image"], int(r["label"])) for r in _read(str(tmp_path / "dataset" / "train.csv")))
    known = set(r["source"].split("/")[0] for r in provenance if r["image"] in train)
    assert len(known) == info["counts"]["known_identities"] == 12
    assert min(sizes[name] for name in known) >= 3 and min(sizes.values()) < 3  # a real filter
    assert abs(info["counts"]["test_unknown"] / float(len(truth)) - 0.2) < 0.05
    assert info["settings"]["min_images"] == 3
    assert "min_images" not in build(identities, str(tmp_path / "default"), seed=5, known=12)["settings"]
    again = plan(identities, seed=5, known=12, min_images=3, unknown_share=0.2)
    assert again == plan(identities, seed=5, known=12, min_images=3, unknown_share=0.2)
    assert again != plan(identities, seed=6, known=12, min_images=3, unknown_share=0.2)
    assert sorted(r[3] for r in again) == sorted(r["image"] for r in provenance)


def test_bad_settings_and_trees(identities, tmp_path):
    with pytest.raises(ValueError, match="known"):
        plan(identities, known=1001)
    with pytest.raises(ValueError, match="min_images >= 2"):
        plan(identities, min_images=1)
    (tmp_path / "flat.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="<identity>/<image>"):
        plan(str(tmp_path))


def test_every_damage_kind_changes_the_image():
    image = np.random.RandomState(0).randint(0, 256, (112, 112, 3)).astype(np.uint8)
    for kind in DAMAGE_KINDS:
        out = damage(image, kind, np.random.RandomState(1))
        assert out.shape == image.shape and out.dtype == np.uint8 and not np.array_equal(out, image), kind
    gray = damage(image, "grayscale", np.random.RandomState(1))
    assert np.array_equal(gray[..., 0], gray[..., 2])
    assert np.array_equal(damage(image, "rot180", None), image[::-1, ::-1])
