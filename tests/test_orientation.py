"""Upside-down pre-aligned crops found without labels and turned upright (shared/faces/orientation.py,
pipeline/align.py orientation_fix), on real LFW crops: the detector recovers crops we turned,
the align stage writes them upright and re-derives them when the fix is turned off, and the
embed service's fingerprint follows the crops."""
import copy
import csv
import os

import numpy as np
import pytest
from PIL import Image

from conftest import LFW, SETTINGS, WEIGHTS, lfw_people, require
from shared.faces import orientation
from shared.faces.images import load_rgb, save_rgb

TURNED_EVERY = 10  # one crop in ten turned upside down: ~5x the benchmark's share, still a minority


def lfw_crops(count):
    """The first `count` LFW crop paths, two per identity so the set spans many people."""
    people = lfw_people(count // 2, per_person=2)
    return [os.path.join(require(LFW), path) for _, paths in people for path in paths]


def test_the_detector_finds_crops_turned_upside_down_deterministically():
    crops = [load_rgb(path) for path in lfw_crops(400)]
    turned = np.arange(len(crops)) % TURNED_EVERY == 3
    rows = np.array([orientation.crop_features(c[::-1, ::-1] if t else c) for c, t in zip(crops, turned)])
    weights = orientation.fit(rows)  # the turned crops are in the fit too, as label noise, as in a real run
    flagged = orientation.upside_down(weights, rows) > orientation.THRESHOLD
    recall, precision = (flagged & turned).sum() / turned.sum(), (flagged & turned).sum() / max(flagged.sum(), 1)
    print("turned %d of %d: flagged %d, recall %.3f, precision %.3f"
          % (turned.sum(), len(crops), flagged.sum(), recall, precision))
    assert recall >= 0.9 and precision >= 0.9, (recall, precision)
    assert np.array_equal(weights, orientation.fit(rows))  # deterministic: same bits twice


def test_the_newton_fit_reaches_the_penalised_minimum():
    rows = np.array([orientation.crop_features(load_rgb(path)) for path in lfw_crops(60)])
    x = np.vstack([rows, orientation.rotated(rows)])
    y = np.concatenate([np.zeros(len(rows)), np.ones(len(rows))])
    weights = orientation.fit_logistic(x, y)
    design = np.hstack([x, np.ones((len(x), 1))])
    p = 1.0 / (1.0 + np.exp(-design.dot(weights)))
    penalty = np.r_[np.full(x.shape[1], 1.0 / orientation.C), 0.0]  # the bias is not penalised
    assert np.abs(design.T.dot(p - y) + penalty * weights).max() < 1e-6  # zero gradient: the minimum


def test_the_face_detector_vetoes_a_turn_only_where_it_finds_the_crop_upright():
    upright = np.array([[38.0, 52], [74, 52], [56, 72], [42, 92], [70, 92]])  # eyes above the mouth
    down = 112 - upright  # the same landmarks on the face turned a half turn
    assert orientation.eyes_above_mouth(upright) and not orientation.eyes_above_mouth(down)
    assert orientation.detector_vetoes((upright, 0.99), (None, 0.0))  # upright as found, no face turned
    assert orientation.detector_vetoes((upright, 0.99), (upright, 0.90))  # both upright: the more confident
    assert not orientation.detector_vetoes((upright, 0.90), (upright, 0.99))
    assert not orientation.detector_vetoes((down, 0.99), (upright, 0.60))  # upside down as found: turn
    assert not orientation.detector_vetoes((None, 0.0), (None, 0.0))  # no face either way: the turn stands


def test_rotating_the_features_is_featurising_the_rotated_crop():
    crop = load_rgb(lfw_crops(2)[0])
    direct = orientation.crop_features(crop[::-1, ::-1])
    turned = orientation.rotated(orientation.crop_features(crop)[None])[0]
    assert np.corrcoef(direct, turned)[0, 1] > 0.99 and not np.allclose(direct, orientation.crop_features(crop))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A pre-aligned dataset of 360 train and 40 test LFW crops, one in ten turned upside down;
    returns (workspace, {split: names turned})."""
    root = tmp_path_factory.mktemp("orient") / "ws"
    paths, turned, lines = lfw_crops(400), {"train": [], "test": []}, ["image,label"]
    for index, path in enumerate(paths):
        split, name = ("train" if index < 360 else "test"), "%03d.jpg" % index
        image = load_rgb(path)
        if index % TURNED_EVERY == 3:
            turned[split].append(name)
            image = image[::-1, ::-1]
        save_rgb(str(root / "dataset" / split / name), image, quality=95)
        if split == "train":
            lines.append("%s,%d" % (name, index // 2))
    (root / "dataset" / "train.csv").write_text("\n".join(lines) + "\n")
    (root / "dataset" / "benchmark.json").write_text("{}\n")  # pre-aligned input
    return root, turned


def align(root, fix, capsys):
    """prealigned_stage at 112x112 and 160x160 with orientation_fix set; its printed lines."""
    from pipeline.align import prealigned_stage
    from pipeline.context import RunContext

    config = copy.deepcopy(dict(SETTINGS, workspace=str(root)))
    config["profiles"]["quick"]["orientation_fix"] = fix
    prealigned_stage(RunContext(config, "local", "quick"), ["112x112", "160x160"])
    return capsys.readouterr().out


def difference(path, image):
    return np.abs(load_rgb(path).astype(int) - image.astype(int)).mean()


def embed_fingerprint(root):
    """The fingerprint the embed service compares with its meta to decide 'up to date'
    (shared/contract/backbone.py), for the test split's 112 crops as the pipeline passes them."""
    from pipeline.context import RunContext
    from pipeline.embed import embed_args
    from shared.contract.backbone import Backbone, EmbedJob, build_parser
    from shared.contract.validate import read_list

    class Insightface(Backbone):
        family = "insightface"

    ctx = RunContext(dict(SETTINGS, workspace=str(root), weights_dir=require(WEIGHTS)), "local", "quick")
    args = build_parser(Insightface).parse_args([str(a) for a in embed_args(ctx, "model4_insightface", "test")]
                                                + ["--no-verify"])
    job = EmbedJob(args, ctx.registry.model("model4_insightface"), read_list(args.list))
    job.check_weights()
    return job.fingerprint


def test_the_align_stage_turns_flagged_crops_upright_and_back(workspace, capsys):
    root, turned = workspace
    out = align(root, True, capsys)
    with open(str(root / "aligned" / "orientation.csv")) as f:
        rows = list(csv.DictReader(f))
    flagged = dict((split, [r["image"] for r in rows if r["split"] == split and r["rotated"] == "1"])
                   for split in turned)
    assert len(rows) == 400 and "orientation: test %d of 40, train %d of 360" % (
        len(flagged["test"]), len(flagged["train"])) in out, out
    found = sum(len(set(flagged[split]) & set(turned[split])) for split in turned)
    recall = found / sum(len(names) for names in turned.values())
    precision = found / sum(len(names) for names in flagged.values())
    assert recall >= 0.85 and precision >= 0.85, (recall, precision)  # 360 train crops: a bit below the first test
    for row in rows:  # exactly the flagged crops are re-encoded; the others stay byte copies
        source = (root / "dataset" / row["split"] / row["image"]).read_bytes()
        crop = (root / "aligned" / "112x112" / row["split"] / row["image"]).read_bytes()
        asked = float(row["p_upside_down"]) > 0.5
        assert (crop != source) == (row["rotated"] == "1") == (asked and row["detector_veto"] == "0"), row
        assert row["detector_veto"] == "0" or (asked and row["image"] not in turned[row["split"]]), row
    # the face detector withdraws only turns of upright crops, so the turns are more often right
    asked = sum(float(r["p_upside_down"]) > 0.5 for r in rows)
    assert found / len([r for r in rows if r["rotated"] == "1"]) >= found / asked
    fixed_fingerprint = embed_fingerprint(root)
    name = sorted(set(flagged["test"]) & set(turned["test"]))[0]
    upright = load_rgb(lfw_crops(400)[int(name[:3])])
    crop = str(root / "aligned" / "112x112" / "test" / name)
    assert difference(crop, upright) < 4 < difference(crop, upright[::-1, ::-1])  # upright, within JPEG loss
    big = np.asarray(Image.fromarray(upright).resize((160, 160), Image.BICUBIC))
    assert difference(str(root / "aligned" / "160x160" / "test" / name), big) < 6

    out = align(root, False, capsys)  # off: exactly the turned crops (2 sizes each) are derived again, as given
    for split, count in (("train", 360), ("test", 40)):
        assert "aligned %s: %d images, %d new crop files" % (split, count, 2 * len(flagged[split])) in out, out
    assert not (root / "aligned" / "orientation.csv").exists()
    assert open(crop, "rb").read() == (root / "dataset" / "test" / name).read_bytes()
    assert difference(str(root / "aligned" / "160x160" / "test" / name), big[::-1, ::-1]) < 6
    assert align(root, False, capsys).count(" 0 new crop files") == 2  # resume: nothing stale, nothing redone
    given_fingerprint = embed_fingerprint(root)  # embed redoes the embeddings of changed crops, and only for that
    assert given_fingerprint["content"] != fixed_fingerprint["content"]
    assert dict(given_fingerprint, content=None) == dict(fixed_fingerprint, content=None)


def test_a_profile_without_the_setting_is_refused(workspace):
    from pipeline.align import prealigned_stage
    from pipeline.context import RunContext

    config = copy.deepcopy(dict(SETTINGS, workspace=str(workspace[0])))
    del config["profiles"]["quick"]["orientation_fix"]
    with pytest.raises(ValueError, match="profile 'quick': orientation_fix must be true or false, not None"):
        prealigned_stage(RunContext(config, "local", "quick"), ["112x112"])


def test_a_crash_while_turning_crops_leaves_no_turned_crop_vouched_for(tmp_path):
    """derive_prealigned stopped after its first rotated crop, then run with the fix off again:
    exactly that crop is derived again as given (the manifest never vouched for it turned)."""
    from shared.faces.crops import derive_prealigned

    source = require(LFW)
    names = [os.path.relpath(p, source) for p in lfw_crops(4)][:3]
    out, manifest = {"112x112": str(tmp_path / "112")}, str(tmp_path / "manifest.json")
    assert derive_prealigned(source, names, out, manifest=manifest) == 3

    def crash_after_one(plan):
        yield plan[0]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        derive_prealigned(source, names, out, progress=crash_after_one, manifest=manifest, rotate=names)
    first = tmp_path / "112" / names[0]
    assert first.read_bytes() != open(os.path.join(source, names[0]), "rb").read()  # it was turned
    assert derive_prealigned(source, names, out, manifest=manifest) == 1  # fix off: exactly that crop again
    assert all((tmp_path / "112" / n).read_bytes() == open(os.path.join(source, n), "rb").read() for n in names)
