"""Pre-aligned crops off the models' template (pipeline/align_template.py, template_fix): on real
LFW dev crops, which sit 8 px left of the 112x112 ArcFace template (../shared/README.md), the
align service's MTCNN measures that offset on a sample of train crops and every crop is moved
onto the template before the other sizes are derived; turning the fix off gives back the crops
as they came."""
import copy
import json
import os

import numpy as np
import pytest

from conftest import LFW, SETTINGS, WEIGHTS, lfw_people, require
from shared.faces.images import load_rgb, save_rgb
from shared.faces.template import ARCFACE_112, correction, rewarp


def test_correction_is_the_median_crops_move_and_none_on_the_template():
    rng = np.random.RandomState(0)
    left = ARCFACE_112 - [8.0, 0.0]
    points = [left + rng.normal(0, 1.0, left.shape) for _ in range(40)]
    points += [ARCFACE_112[[1, 0, 2, 4, 3]] * [-1, 1] + [112, 0] + [8.0, 0.0]] * 5  # mirrored faces: a minority
    matrix = correction(points)
    assert np.allclose(matrix[:, :2], np.eye(2), atol=0.03)
    assert np.allclose(matrix[:, 2], [8.0, 0.0], atol=0.8)
    assert correction([ARCFACE_112 + rng.normal(0, 0.3, ARCFACE_112.shape) for _ in range(40)]) is None


def test_rewarp_moves_the_content_and_keeps_the_size():
    crop = np.zeros((112, 112, 3), np.uint8)
    crop[50:60, 30:40] = 255
    moved = rewarp(crop, [[1, 0, 8], [0, 1, 0]])
    assert moved.shape == (112, 112, 3)
    assert (moved[55, 42] == 255).all() and (moved[55, 32] == 0).all()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """80 train crops of 40 identities and 20 test crops, real LFW dev crops as they are."""
    root = tmp_path_factory.mktemp("template") / "ws"
    people, lines = lfw_people(40, per_person=3), ["image,label"]
    for label, (_, paths) in enumerate(people):
        for index, path in enumerate(paths):
            split = "test" if index == 2 and label < 20 else "train" if index < 2 else None
            if split:
                name = "%02d_%d.jpg" % (label, index)
                save_rgb(str(root / "dataset" / split / name), load_rgb(os.path.join(require(LFW), path)), quality=95)
                if split == "train":
                    lines.append("%s,%d" % (name, label))
    (root / "dataset" / "train.csv").write_text("\n".join(lines) + "\n")
    return root


def align(root, fix, capsys):
    from pipeline.align import prealigned_stage
    from pipeline.context import RunContext

    config = copy.deepcopy(dict(SETTINGS, workspace=str(root), weights_dir=require(WEIGHTS)))
    config["profiles"]["quick"]["template_fix"] = fix
    prealigned_stage(RunContext(config, "local", "quick"), ["112x112", "96x112"])
    return capsys.readouterr().out


def test_the_lfw_offset_is_measured_and_every_crop_moved_onto_the_template(workspace, capsys):
    out = align(workspace, True, capsys)
    record = json.loads((workspace / "aligned" / "template.json").read_text())
    assert record["sampled"] == 64 and record["found"] >= 60, record
    matrix = np.array(record["matrix"])
    assert 6.0 < matrix[0, 2] < 10.0 and abs(matrix[1, 2]) < 3.0, matrix  # the documented 8 px, to the right
    assert np.allclose(matrix[:, :2], np.eye(2), atol=0.05), matrix
    assert "moved onto the template" in out
    source = load_rgb(str(workspace / "dataset" / "test" / "00_2.jpg"))
    written = load_rgb(str(workspace / "aligned" / "112x112" / "test" / "00_2.jpg"))
    assert np.abs(written.astype(int) - rewarp(source, matrix).astype(int)).mean() < 3.0
    assert np.abs(written.astype(int) - source.astype(int)).mean() > 8.0
    assert not (workspace / "aligned" / "template").exists()  # the canvases are gone

    again = align(workspace, True, capsys)
    assert "[align/template] up to date" in again and again.count(" 0 new crop files") == 2


def test_with_the_fix_off_the_crops_come_back_as_given(workspace, capsys):
    align(workspace, True, capsys)
    out = align(workspace, False, capsys)
    assert not (workspace / "aligned" / "template.json").exists()
    assert "aligned test: 20 images, 40 new crop files" in out
    source = (workspace / "dataset" / "test" / "00_2.jpg").read_bytes()
    assert (workspace / "aligned" / "112x112" / "test" / "00_2.jpg").read_bytes() == source


def test_a_misspelt_switch_is_refused(workspace):
    from pipeline.align import prealigned_stage
    from pipeline.context import RunContext

    config = copy.deepcopy(dict(SETTINGS, workspace=str(workspace)))
    config["profiles"]["quick"]["template_fix"] = "yes"
    with pytest.raises(ValueError, match="profile 'quick': template_fix must be true or false, not 'yes'"):
        prealigned_stage(RunContext(config, "local", "quick"), ["112x112"])
