"""Upside-down photos on the detect path (pipeline/align.py turn_detected): real LFW faces placed
on textured canvases, a few photos turned a half turn; the align service (MTCNN) runs on all of
them, the photos whose crops look upside down or show no face are detected again turned, and
the turned result replaces their crops where it looks upright. Turning the fix off aligns them
again as detected."""
import copy
import csv
import os

import numpy as np
import pytest
from PIL import Image, ImageFilter

from conftest import LFW, SETTINGS, WEIGHTS, lfw_people, require
from shared.faces.images import load_rgb, save_rgb

TURNED = {"train": (5, 40, 77, 120, 181), "test": (3, 21, 34)}  # photo indices turned a half turn, per split


def photo(crop, seed):
    """A 224x224 photo: the 112 crop scaled 1.3x, pasted on a blurred noise canvas."""
    rng = np.random.RandomState(seed)
    canvas = Image.fromarray(rng.randint(0, 255, (28, 28, 3)).astype(np.uint8)).resize((224, 224), Image.BICUBIC)
    canvas = canvas.filter(ImageFilter.GaussianBlur(3))
    canvas.paste(Image.fromarray(crop).resize((146, 146), Image.BICUBIC), (30 + seed % 40, 25 + seed % 30))
    return np.asarray(canvas)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """200 train photos (100 identities x 2) and 40 test photos of 40 of them; some turned.
    Returns (workspace, {split: [(name, upright LFW crop)]})."""
    root = tmp_path_factory.mktemp("detected") / "ws"
    people = lfw_people(100, per_person=3)
    faces, lines = {"train": [], "test": []}, ["image,label"]
    for label, (_, paths) in enumerate(people):
        for split, path in [("train", paths[0]), ("train", paths[1])] + ([("test", paths[2])] if label < 40 else []):
            index = len(faces[split])
            name, crop = "%s%03d.jpg" % (split, index), load_rgb(os.path.join(require(LFW), path))
            image = photo(crop, index + (1000 if split == "test" else 0))
            save_rgb(str(root / "dataset" / split / name), image[::-1, ::-1] if index in TURNED[split] else image)
            faces[split].append((name, crop))
            if split == "train":
                lines.append("%s,%d" % (name, label))
    (root / "dataset" / "train.csv").write_text("\n".join(lines) + "\n")
    return root, faces


def detect(root, fix, capsys):
    from pipeline.align import detect_stage
    from pipeline.context import RunContext

    config = copy.deepcopy(dict(SETTINGS, workspace=str(root), weights_dir=require(WEIGHTS)))
    config["profiles"]["quick"]["orientation_fix"] = fix
    detect_stage(RunContext(config, "local", "quick"), ["112x112"], detectors="mtcnn")
    return capsys.readouterr().out


def upright_closer(path, crop):
    """Whether the aligned crop at `path` correlates more with the upright face than with it turned."""
    found = load_rgb(path).astype(float).mean(axis=2).ravel()
    gray = crop.astype(float).mean(axis=2)
    return np.corrcoef(found, gray.ravel())[0, 1] > np.corrcoef(found, gray[::-1, ::-1].ravel())[0, 1]


def test_turned_photos_are_detected_again_upright_and_back_when_the_fix_is_off(workspace, capsys):
    root, faces = workspace
    out = detect(root, True, capsys)
    with open(str(root / "aligned" / "orientation.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 240, out
    for split, names in faces.items():
        turned = set(rows[i]["image"] for i in range(len(rows)) if rows[i]["split"] == split and rows[i]["rotated"] == "1")
        truly = set(names[i][0] for i in TURNED[split])
        print(split, "turned", sorted(turned), "truly", sorted(truly))
        assert turned <= truly, (split, turned, truly)  # no upright photo turned
        # the train crops' scores come from a detector fitted on them (in-sample), so some turned
        # train photos pass as upright; every turned test photo is found
        assert turned == truly if split == "test" else turned, (split, turned, truly)
        for name, crop in names:  # the crops of the photos turned back look like the upright face
            if name in turned:
                assert upright_closer(str(root / "aligned" / "112x112" / split / name), crop), (split, name)
        assert "orientation %s: " % split in out and "%d of them turned upright" % len(turned) in out, out
    fixed = dict((name, (root / "aligned" / "112x112" / "test" / name).read_bytes()) for name, _ in faces["test"])

    assert "[align/turned] up to date" in detect(root, True, capsys)  # nothing redone, nothing changed
    assert fixed == dict((n, (root / "aligned" / "112x112" / "test" / n).read_bytes()) for n in fixed)

    out = detect(root, False, capsys)  # off: every photo aligned again as detected
    assert "the fix is off" in out and not (root / "aligned" / "orientation.csv").exists()
    assert not (root / "aligned" / "turned").exists()
    again = [n for n in fixed if fixed[n] != (root / "aligned" / "112x112" / "test" / n).read_bytes()]
    turned_test = [r["image"] for r in rows if r["split"] == "test" and r["rotated"] == "1"]
    assert sorted(again) == sorted(turned_test)
    upright = dict(faces["test"])
    assert not any(upright_closer(str(root / "aligned" / "112x112" / "test" / n), upright[n]) for n in turned_test)
