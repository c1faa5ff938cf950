"""The align service end to end in its own venv (.venvs/align): real MTCNN and dlib on real
images with known answers, the real no-face images, bad input, resume; face-alignment on
generated weight files (the real S3FD/2DFAN4 files are not available here)."""
import csv
import io
import os
import subprocess

import numpy as np
import pytest

from conftest import ROOT, lfw_people, require
from shared.faces import known_faces as known
from shared.faces.images import load_rgb, save_rgb
from shared.running.runner import LocalRunner


def _data(*parts):
    from conftest import SETTINGS

    return require(os.path.join(SETTINGS["data_dir"], *parts))


def run_align(args):
    command = LocalRunner().command("align", "align", args)
    proc = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    return proc.returncode, proc.stdout + proc.stderr


def _faces(path):
    with io.open(path, encoding="utf-8") as f:
        return dict((row["image"], row) for row in csv.DictReader(f))


def _points(row):
    return np.array([[float(row["x%d" % k]), float(row["y%d" % k])] for k in range(1, 6)])


@pytest.fixture(scope="module")
def cases(tmp_path_factory, lfw, weights_root):
    """Six LFW crops on canvases at known placements, the same face as grayscale and RGBA, and
    six of the real no-face images."""
    folder = tmp_path_factory.mktemp("align-cases")
    names = [image for _, images in lfw_people(6, per_person=1) for image in images]
    matrices = known.write_cases(lfw, names, str(folder / "images"), seed=7)
    first = load_rgb(os.path.join(lfw, names[0]))
    big = known.paste(first, matrices[names[0]])
    from PIL import Image

    Image.fromarray(big).convert("L").save(str(folder / "images" / "gray.png"))
    Image.fromarray(big).convert("RGBA").save(str(folder / "images" / "rgba.png"))
    no_face = sorted(os.listdir(_data("aivivn-2019", "no-face-test-images")))[:6]
    for name in no_face:
        save_rgb(str(folder / "images" / name), load_rgb(_data("aivivn-2019", "no-face-test-images", name)))
    listing = names + ["gray.png", "rgba.png"] + no_face
    (folder / "list.txt").write_text("".join(n + "\n" for n in listing))
    return {"folder": folder, "names": names, "matrices": matrices, "no_face": no_face,
            "list": str(folder / "list.txt"), "weights": weights_root}


def _args(cases, out, detectors, *extra):
    return ["--images", str(cases["folder"] / "images"), "--list", cases["list"], "--out", str(out),
            "--split", "test", "--detectors", detectors, "--weights-root", cases["weights"]] + list(extra)


@pytest.mark.parametrize("detector,tolerance", [("mtcnn", 3.0), ("dlib", 4.0)])
def test_real_detectors_recover_known_placements(cases, tmp_path, detector, tolerance):
    code, output = run_align(_args(cases, tmp_path, detector, "--chunk-size", "5"))
    assert code == 0, output
    faces = _faces(str(tmp_path / "test_faces.csv"))
    for name in cases["names"]:
        row = faces[name]
        assert row["status"] == "face" and row["detector"] == detector, row
        truth = known.transform(known.LFW_DEV_POINTS, cases["matrices"][name])
        assert known.template_error(_points(row), truth) < tolerance, (name, row)
    gray, rgba = _points(faces["gray.png"]), _points(faces["rgba.png"])
    assert faces["gray.png"]["status"] == "face" and faces["rgba.png"]["status"] == "face"
    assert np.abs(gray - _points(faces[cases["names"][0]])).max() < 3.0  # same face, same place
    assert np.abs(rgba - _points(faces[cases["names"][0]])).max() < 1.5  # alpha dropped; JPEG vs PNG
    listed = (tmp_path / "no_face_test.txt").read_text().split()
    assert listed == [n for n in cases["no_face"] if faces[n]["status"] == "none"]
    for crop, (width, height) in (("96x112", (96, 112)), ("112x112", (112, 112)), ("224x224", (224, 224))):
        for name in cases["names"] + cases["no_face"]:
            assert load_rgb(str(tmp_path / crop / "test" / name)).shape == (height, width, 3)
    import json

    meta = json.loads((tmp_path / "test_meta.json").read_text())
    assert meta["counts"]["images"] == len(faces) and meta["counts"]["no_face"] == len(listed)
    assert meta["detectors"][0]["name"] == detector and all(meta["detectors"][0]["files"].values())
    assert not [p for p in os.listdir(str(tmp_path)) if p.startswith(".")]  # no partial state left
    code, output = run_align(_args(cases, tmp_path, detector, "--chunk-size", "5"))
    assert code == 0 and "up to date" in output, output


def test_no_face_images_get_the_plain_resize(cases, tmp_path):
    import cv2

    code, output = run_align(_args(cases, tmp_path, "mtcnn", "--no-blur-retry", "--crops", "150x150"))
    assert code == 0, output
    listed = (tmp_path / "no_face_test.txt").read_text().split()
    assert listed, "expected at least one of the real no-face images to stay without a face"
    source = load_rgb(str(cases["folder"] / "images" / listed[0]))
    written = load_rgb(str(tmp_path / "150x150" / "test" / listed[0]))
    expected = cv2.resize(source, (150, 150), interpolation=cv2.INTER_CUBIC)
    assert np.abs(written.astype(int) - expected).mean() < 1.0  # PNG: lossless
    assert not (tmp_path / "112x112").exists()


def test_bad_input_fails_clearly_and_writes_nothing(cases, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    good = cases["names"][0]
    save_rgb(str(images / "good.jpg"), load_rgb(str(cases["folder"] / "images" / good)))
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (images / "empty.png").write_bytes(b"")
    for bad in ("broken.jpg", "empty.png"):
        (tmp_path / "list.txt").write_text("good.jpg\n%s\n" % bad)
        out = tmp_path / ("out-" + bad)
        code, output = run_align(["--images", str(images), "--list", str(tmp_path / "list.txt"), "--out", str(out),
                                  "--split", "test", "--detectors", "mtcnn", "--weights-root", cases["weights"]])
        assert code == 3 and bad in output and "cannot read image" in output, output
        assert not (out / "test_meta.json").exists()
        assert not [f for _, _, files in os.walk(str(out)) for f in files if f.endswith(".tmp")]
    (tmp_path / "list.txt").write_text("good.jpg\nmissing.jpg\n")
    code, output = run_align(["--images", str(images), "--list", str(tmp_path / "list.txt"), "--out", str(tmp_path / "o"),
                              "--detectors", "mtcnn", "--weights-root", cases["weights"]])
    assert code == 3 and "missing.jpg" in output and not (tmp_path / "o").exists(), output
    (tmp_path / "list.txt").write_text("good.jpg\n")
    code, output = run_align(["--images", str(images), "--list", str(tmp_path / "list.txt"), "--out", str(tmp_path / "o"),
                              "--detectors", "retinaface"])
    assert code == 2 and "unknown detector 'retinaface'" in output, output


def test_face_alignment_without_its_files_fails_clearly(cases, tmp_path):
    empty = tmp_path / "fa"
    empty.mkdir()
    code, output = run_align(_args(cases, tmp_path / "out", "face-alignment", "--weights", "face-alignment=%s" % empty))
    assert code == 4, output
    assert "s3fd-619a316812.pth" in output and "2DFAN4-11f355bf06.pth.tar" in output and str(empty) in output
    assert not (tmp_path / "out").exists()


GENERATE_FACE_ALIGNMENT = r"""
import sys, torch
from face_alignment.detection.sfd.net_s3fd import s3fd
from face_alignment.models import FAN
torch.manual_seed(0)
detector = s3fd()
with torch.no_grad():
    # Random weights, except the heads: only the coarsest S3FD layer (stride 128) scores 'face',
    # with zero box offsets, so the detector fires on one prior box and the whole path runs.
    for name, module in detector.named_modules():
        if name.endswith("mbox_conf"):
            module.weight.zero_()
            module.bias.fill_(-10.0)
            if name == "conv6_2_mbox_conf":
                module.bias[1] = 10.0
        elif name.endswith("mbox_loc"):
            module.weight.zero_()
            module.bias.zero_()
torch.save(detector.state_dict(), sys.argv[1] + "/s3fd-619a316812.pth")
torch.save(FAN(4).state_dict(), sys.argv[1] + "/2DFAN4-11f355bf06.pth.tar")
"""


def test_face_alignment_runs_on_generated_weight_files(cases, tmp_path):
    """The real library loads files of the real architecture (random weights, generated here:
    the published S3FD/2DFAN4 files are not available) and the whole path runs: S3FD box, FAN
    68 landmarks, 68 -> 5, warp. The landmarks are meaningless; the plumbing is what is tested."""
    weights = tmp_path / "fa"
    weights.mkdir()
    subprocess.run([LocalRunner().python("align"), "-c", GENERATE_FACE_ALIGNMENT, str(weights)], check=True)
    images = tmp_path / "images"
    images.mkdir()
    save_rgb(str(images / "face.png"), load_rgb(_data("aivivn-2019", "no-face-test-images", cases["no_face"][0])))
    (tmp_path / "list.txt").write_text("face.png\n")
    code, output = run_align(["--images", str(images), "--list", str(tmp_path / "list.txt"), "--out", str(tmp_path / "out"),
                              "--detectors", "face-alignment", "--weights", "face-alignment=%s" % weights,
                              "--no-blur-retry", "--crops", "112x112"])
    assert code == 0, output
    row = _faces(str(tmp_path / "out" / "images_faces.csv"))["face.png"]
    assert row["status"] == "face" and row["detector"] == "face-alignment" and int(row["faces"]) >= 1, row
    assert np.isfinite(_points(row)).all()
    assert load_rgb(str(tmp_path / "out" / "112x112" / "images" / "face.png")).shape == (112, 112, 3)
    import json

    meta = json.loads((tmp_path / "out" / "images_meta.json").read_text())
    assert meta["versions"]["face_alignment"] == "1.5.0" and meta["detectors"][0]["dir"] == str(weights)
