"""Turn any identity-folder tree (<root>/<Name>/*.jpg) into the competition's layout.

    dataset/train.csv              image,label      (known identities, 1..max_train images each)
    dataset/train/, dataset/test/  the images, renamed to opaque ids
    dataset/sample_submission.csv  image,label      (every test image, label "0 1 2 3 4")
    dataset/test_truth.csv         image,label      (ground truth; 1000 = unknown identity)
    dataset/provenance.csv         image,split,source,damage
    dataset/benchmark.json         settings and counts
The pipeline reads only the first three; truth and provenance are for evaluation.
Everything is drawn from one seed: the same seed gives byte-identical files.
"""
import csv
import io
import json
import os
import shutil
import tempfile

import numpy as np

from shared.faces.images import list_images, load_rgb, save_rgb
from shared.schema import UNKNOWN_LABEL
from shared.storage import atomic_path, stable_seed

DAMAGE_KINDS = ("grayscale", "blur", "lowres", "hflip", "rot180")


def damage(image, kind, rng):
    """The competition's kinds of damage to one RGB image."""
    import cv2

    if kind == "grayscale":
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        return np.stack([gray] * 3, axis=-1)
    if kind == "blur":
        sigma = rng.uniform(1.0, 2.5)
        return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)
    if kind == "lowres":  # nearest-neighbour down then up: blocky, aliased faces
        factor = rng.uniform(0.25, 0.5)
        height, width = image.shape[:2]
        small = cv2.resize(image, (max(8, int(width * factor)), max(8, int(height * factor))),
                           interpolation=cv2.INTER_NEAREST)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    if kind == "hflip":
        return np.ascontiguousarray(image[:, ::-1])
    if kind == "rot180":
        return np.ascontiguousarray(image[::-1, ::-1])
    raise ValueError("unknown damage '%s' (known: %s)" % (kind, ", ".join(DAMAGE_KINDS)))


def _identities(source):
    groups = {}
    for path in list_images(source):
        parts = path.split(os.sep)
        if len(parts) != 2:
            raise ValueError("%s: expected <identity>/<image>, found '%s'" % (source, path))
        groups.setdefault(parts[0], []).append(path)
    if not groups:
        raise ValueError("%s holds no identity folders with images" % source)
    return [(name, groups[name]) for name in sorted(groups)]


def plan(source, seed=2019, known=1000, max_train=16, unknown_share=0.05, damage_share=0.10, min_images=2):
    """Decide every image's fate: [(source path, split, label, new name, damage or '')].
    Up to `known` identities are drawn among those with at least `min_images` images (2: a
    train and a test image); the others stay candidates for the unknown test images."""
    if not 0 < known <= UNKNOWN_LABEL:
        raise ValueError("known must be in 1..%d (label %d means unknown)" % (UNKNOWN_LABEL, UNKNOWN_LABEL))
    if not 0 <= unknown_share < 1 or not 0 <= damage_share <= 1 or max_train < 1 or min_images < 2:
        raise ValueError("need 0 <= unknown_share < 1, 0 <= damage_share <= 1, max_train >= 1, min_images >= 2")
    rng = np.random.RandomState(seed)
    identities = _identities(source)
    multi = [i for i in identities if len(i[1]) >= min_images]
    order = rng.permutation(len(multi))
    known_ids = [multi[i] for i in order[:known]]
    known_names = set(name for name, _ in known_ids)
    rows = []
    for label, (name, paths) in enumerate(known_ids):
        paths = [paths[i] for i in rng.permutation(len(paths))]
        n_train = rng.randint(1, min(max_train, len(paths) - 1) + 1)
        rows += [(p, "train", label) for p in paths[:n_train]]
        rows += [(p, "test", label) for p in paths[n_train:]]
    pool = sorted(p for name, paths in identities if name not in known_names for p in paths)
    known_test = sum(1 for r in rows if r[1] == "test")
    n_unknown = min(len(pool), int(round(unknown_share / (1 - unknown_share) * known_test)))
    rows += [(pool[i], "test", UNKNOWN_LABEL) for i in sorted(rng.choice(len(pool), n_unknown, replace=False))]
    planned = []
    for path, split, label in rows:
        image_rng = np.random.RandomState(stable_seed(seed, "damage", path))
        kind = DAMAGE_KINDS[image_rng.randint(len(DAMAGE_KINDS))] if image_rng.uniform() < damage_share else ""
        new_name = "%s%s" % (_opaque_id(seed, path), os.path.splitext(path)[1].lower())
        planned.append((path, split, label, new_name, kind))
    return sorted(planned, key=lambda r: r[3])


def _opaque_id(seed, path):
    import hashlib

    return hashlib.sha256(("%s\x1f%s" % (seed, path)).encode("utf-8")).hexdigest()[:32]


def _write_csv(path, header, rows):
    with atomic_path(path) as tmp:
        with io.open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)


def build(source, dataset_dir, seed=2019, known=1000, max_train=16, unknown_share=0.05,
          damage_share=0.10, progress=None, min_images=2):
    """Write the benchmark into `dataset_dir` (built in a temporary folder, then renamed)."""
    settings = {"source": os.path.abspath(source), "seed": seed, "known": known, "max_train": max_train,
                "unknown_share": unknown_share, "damage_share": damage_share}
    if min_images != 2:  # recorded only when set, so benchmarks built before it keep their bytes
        settings["min_images"] = min_images
    info_path = os.path.join(dataset_dir, "benchmark.json")
    if os.path.isfile(info_path):
        with open(info_path) as f:
            existing = json.load(f)
        if existing["settings"] == settings:
            return existing
        raise FileExistsError("%s holds a benchmark built with other settings (%s); remove it or "
                              "use another workspace" % (dataset_dir, existing["settings"]))
    if os.path.exists(dataset_dir):
        raise FileExistsError("%s exists and is not a finished benchmark; remove it first" % dataset_dir)
    rows = plan(source, seed, known, max_train, unknown_share, damage_share, min_images)
    parent = os.path.dirname(os.path.abspath(dataset_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".dataset-", dir=parent)
    try:
        for split in ("train", "test"):
            os.makedirs(os.path.join(staging, split))
        for path, split, label, new_name, kind in (progress(rows) if progress else rows):
            target = os.path.join(staging, split, new_name)
            if kind:
                image_rng = np.random.RandomState(stable_seed(seed, "damage-params", path))
                save_rgb(target, damage(load_rgb(os.path.join(source, path)), kind, image_rng))
            else:
                shutil.copyfile(os.path.join(source, path), target)
        train = [(r[3], r[2]) for r in rows if r[1] == "train"]
        test = [(r[3], r[2]) for r in rows if r[1] == "test"]
        _write_csv(os.path.join(staging, "train.csv"), ["image", "label"], train)
        _write_csv(os.path.join(staging, "sample_submission.csv"), ["image", "label"],
                   [(name, "0 1 2 3 4") for name, _ in test])
        _write_csv(os.path.join(staging, "test_truth.csv"), ["image", "label"], test)
        _write_csv(os.path.join(staging, "provenance.csv"), ["image", "split", "source", "damage"],
                   [(r[3], r[1], r[0], r[4]) for r in rows])
        counts = {
            "known_identities": len(set(label for _, label in train)),
            "train_images": len(train), "test_images": len(test),
            "test_known": sum(1 for _, label in test if label != UNKNOWN_LABEL),
            "test_unknown": sum(1 for _, label in test if label == UNKNOWN_LABEL),
            "damaged": dict((k, sum(1 for r in rows if r[4] == k)) for k in DAMAGE_KINDS),
            "train_per_identity": dict((str(k), int(v)) for k, v in zip(*np.unique(
                np.bincount([label for _, label in train]), return_counts=True))),
        }
        info = {"settings": settings, "counts": counts}
        with open(os.path.join(staging, "benchmark.json"), "w") as f:
            json.dump(info, f, indent=2, sort_keys=True)
            f.write("\n")
        os.rename(staging, dataset_dir)
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)
    return info
