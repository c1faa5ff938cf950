"""The head service's `prototypes` program (class prototypes of fused embeddings, no training) on
a small real benchmark embedded by y1 and MobileFaceNet: a valid submission, the same bytes twice,
settings from its grids, a validation figure no worse than the nearest-neighbour baseline's,
the pseudo-label set of its first guesses, and clear errors for missing or mismatched embeddings."""
import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import LFW, ROOT, require
from services.head import baselines, fold_pseudo
from services.head.arrays import load_models, load_split
from services.head.prototypes import (FOLD_COLUMNS, THRESHOLDS, best_five, choose_threshold, fold_first_guesses, fuse,
                                      fusions, rank, validation)
from shared.method.ensemble import UNKNOWN
from shared.method.folds import read_folds
from shared.method.submission import read_submission
from shared.running.runner import LocalRunner

INVOKE = os.path.join(os.path.dirname(sys.executable), "invoke")
MODELS = ["model4_insightface", "caffe_mobilefacenet"]


def run(command, expect=0):
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def people(root, known=60, singles=30, least=4, cap=8):
    """The first `known` LFW identities with `least` images or more (their first `cap`) and the
    first `singles` with one. tiny_people's 16 identities give folds so small that one row
    moves MAP@5 by 0.02; identities with several train images are where prototypes differ
    from a nearest neighbour."""
    multi = single = 0
    for name in sorted(os.listdir(require(LFW))):
        images = sorted(os.listdir(os.path.join(LFW, name)))
        if (len(images) >= least and multi < known) or (len(images) == 1 and single < singles):
            os.makedirs(os.path.join(str(root), name))
            for image in images[:cap]:
                shutil.copyfile(os.path.join(LFW, name, image), os.path.join(str(root), name, image))
            multi, single = multi + (len(images) >= least), single + (len(images) == 1)
    return str(root)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A small benchmark embedded by y1 and MobileFaceNet, and its prototypes submission."""
    source = people(tmp_path_factory.mktemp("people"))
    ws = str(tmp_path_factory.mktemp("ws") / "w")
    for task in (["data.benchmark", "--source", source], ["align.prealigned"], ["split"],
                 ["embed.run", "--models", ",".join(MODELS), "--profile", "smoke", "--runner", "local"],
                 ["ensemble.prototypes", "--models", ",".join(MODELS), "--runner", "local"]):
        run([INVOKE] + task + ["--workspace", ws])
    return ws


def program(ws, out, models=",".join(MODELS), embeddings=None, expect=0):
    args = ["--models", models, "--embeddings", embeddings or os.path.join(ws, "embeddings"),
            "--folds", os.path.join(ws, "folds.csv"), "--out", out]
    return run(LocalRunner().command("head", "prototypes", args), expect)


def nn_validation(ws, model):
    """The nearest-neighbour baseline's own validation MAP@5 (known and unknown rows weighed by
    the unknown share it estimated) at the threshold it chose."""
    images, labels, columns = read_folds(os.path.join(ws, "folds.csv"))
    folder = os.path.join(ws, "embeddings", model)
    train, test = load_split(folder, "train", images)["embeddings"], load_split(folder, "test")["embeddings"]
    return baselines.nearest_neighbour(train, labels, test, columns["rt0"])[1]["validation_map5"]


def test_a_valid_submission_the_same_bytes_twice_and_settings_from_the_grids(workspace, tmp_path):
    path = os.path.join(workspace, "submissions", "prototypes.csv")
    names, ranked = read_submission(path)
    assert sorted(names) == sorted(os.listdir(os.path.join(workspace, "dataset", "test")))
    assert all(len(set(row)) == 5 for row in ranked)
    _, labels, _ = read_folds(os.path.join(workspace, "folds.csv"))
    assert set(np.ravel(ranked)) <= set(labels) | {UNKNOWN}
    assert any(row[0] == UNKNOWN for row in ranked) and any(row[0] != UNKNOWN for row in ranked)
    again = str(tmp_path / "prototypes.csv")
    program(workspace, again)
    for suffix in (".csv", ".json"):
        assert open(path[:-4] + suffix, "rb").read() == open(again[:-4] + suffix, "rb").read()
    chosen = json.load(open(path[:-4] + ".json"))
    assert chosen["threshold"] in THRESHOLDS.tolist()
    assert chosen["weights"] in fusions(sorted(MODELS)) and len(chosen["candidates"]) == 5
    assert chosen["validation_map5"] == max(c["validation_map5"] for c in chosen["candidates"])
    # one unknown share weighs every fusion: the median of the fusions' own estimates
    shares = set(c["estimated_unknown_share"] for c in chosen["candidates"])
    assert shares == {round(float(np.median([c["own_unknown_share"] for c in chosen["candidates"]])), 6)}


def test_validation_figure_at_least_the_nearest_neighbour_baselines(workspace):
    chosen = json.load(open(os.path.join(workspace, "submissions", "prototypes.json")))
    baseline = max(nn_validation(workspace, m) for m in MODELS)
    print("prototypes validation MAP@5 %.4f, best nearest-neighbour baseline %.4f" % (chosen["validation_map5"], baseline))
    assert chosen["validation_map5"] >= baseline - 1e-9


def test_settings_are_chosen_on_the_folds_of_every_fold_column_pooled(workspace, tmp_path):
    """The chosen figure is that of the five fold columns' 25 folds together (not rt0's five), and
    a folds.csv without one of those columns is refused, naming the file and the column."""
    chosen = json.load(open(os.path.join(workspace, "submissions", "prototypes.json")))
    assert chosen["fold_columns"] == list(FOLD_COLUMNS) == ["rt%d" % c for c in range(5)]
    images, labels, columns = read_folds(os.path.join(workspace, "folds.csv"))
    train, test, _ = load_models(os.path.join(workspace, "embeddings"), MODELS, images)
    fused_train, fused_test = fuse(train, chosen["weights"]), fuse(test, chosen["weights"])

    def figure(names):
        parts = [p for c in names for p in validation(fused_train, labels, columns[c], fused_test)]
        return choose_threshold(parts, chosen["estimated_unknown_share"])["validation_map5"]

    assert figure(FOLD_COLUMNS) == pytest.approx(chosen["validation_map5"], abs=2e-6)
    assert figure(FOLD_COLUMNS[:1]) != pytest.approx(chosen["validation_map5"], abs=2e-6)
    fewer = str(tmp_path / "folds.csv")
    with open(os.path.join(workspace, "folds.csv")) as f, open(fewer, "w") as out:
        for line in f:
            out.write(",".join(line.rstrip("\n").split(",")[:6]) + "\n")  # image, label, rt0..rt3
    found = run(LocalRunner().command("head", "prototypes", ["--models", ",".join(MODELS), "--folds", fewer,
                                                             "--embeddings", os.path.join(workspace, "embeddings"),
                                                             "--out", str(tmp_path / "p.csv")]), expect=2)
    assert fewer in found and "rt4" in found and not os.path.exists(str(tmp_path / "p.csv"))


def test_unknown_is_inserted_where_its_score_falls():
    top, top_scores = best_five(np.array([[0.9, 0.1, 0.5, 0.3, 0.2, 0.0]]), np.arange(6) * 10)
    assert [rank(top, top_scores, t).tolist()[0] for t in (0.95, 0.4, 0.05, -1.0)] == [
        [UNKNOWN, 0, 20, 30, 40], [0, 20, UNKNOWN, 30, 40], [0, 20, 30, 40, 10], [0, 20, 30, 40, 10]]


def test_images_without_a_face_rank_unknown_first_and_the_pseudo_labels_are_the_first_guesses(workspace, tmp_path):
    names, ranked = read_submission(os.path.join(workspace, "submissions", "prototypes.csv"))
    listed = [n for n, row in zip(names, ranked) if row[0] != UNKNOWN][:2]
    no_face = tmp_path / "no_face_test.txt"
    no_face.write_text("\n".join(listed) + "\n")
    out, pseudo = str(tmp_path / "prototypes.csv"), str(tmp_path / "step6.csv")
    run(LocalRunner().command("head", "prototypes", ["--models", ",".join(MODELS), "--no-face", str(no_face),
                                                     "--embeddings", os.path.join(workspace, "embeddings"),
                                                     "--folds", os.path.join(workspace, "folds.csv"), "--out", out,
                                                     "--pseudo", pseudo]))
    found = dict(zip(*read_submission(out)))
    for name, row in zip(names, ranked):
        assert found[name] == ([UNKNOWN] + [c for c in row if c != UNKNOWN][:4] if name in listed else row)
    labels = dict((r["image"], int(r["label"])) for r in csv.DictReader(open(pseudo)))
    assert labels == dict((name, row[0]) for name, row in found.items())
    stats = json.load(open(str(tmp_path / "step6.json")))
    assert stats["no_face"] == 2 and stats["unknown"] == sum(row[0] == UNKNOWN for row in found.values()) >= 2
    assert stats["pseudo_known"] + stats["unknown"] == stats["test_images"] == len(names)


def test_each_heads_pseudo_labels_come_from_the_prototypes_of_the_other_folds(workspace, tmp_path):
    """--pseudo-columns: one step-6 set per head, the first guesses of the prototypes without its
    validation fold. Scrambling fold 0's train rows (embeddings and labels) leaves head (rt0, 0)'s
    set as it was and changes the others'."""
    out, pseudo = str(tmp_path / "prototypes.csv"), str(tmp_path / "step6.csv")
    run(LocalRunner().command("head", "prototypes", ["--models", ",".join(MODELS), "--out", out, "--pseudo", pseudo,
                                                     "--embeddings", os.path.join(workspace, "embeddings"),
                                                     "--folds", os.path.join(workspace, "folds.csv"),
                                                     "--pseudo-columns", "rt0,rt1"]))
    chosen = json.load(open(out[:-4] + ".json"))
    images, labels, columns = read_folds(os.path.join(workspace, "folds.csv"))
    train, test, names = load_models(os.path.join(workspace, "embeddings"), MODELS, images)
    written = fold_pseudo.read_folds(str(tmp_path / "step6.folds.csv"), names)
    assert sorted(written) == [(c, k) for c in ("rt0", "rt1") for k in range(5)]
    no_face = np.zeros(len(names), bool)
    sets = fold_first_guesses(train, labels, test, chosen, {"rt0": columns["rt0"]}, no_face)
    for k in range(5):  # every test row labelled, as the CLI's sets are the function's
        assert written[("rt0", k)].tolist() == sets[("rt0", k)].tolist() and (sets[("rt0", k)] >= 0).all()
    shared = np.array([int(r["label"]) for r in csv.DictReader(open(pseudo))])
    assert any(sets[("rt0", k)].tolist() != shared.tolist() for k in range(5))
    fold0 = np.flatnonzero(columns["rt0"] == 0)
    rng = np.random.RandomState(0)
    scrambled = dict((m, e.copy()) for m, e in train.items())
    for m in scrambled:
        scrambled[m][fold0] = rng.normal(size=(len(fold0), scrambled[m].shape[1]))
    moved = labels.copy()
    moved[fold0] = rng.permutation(labels[fold0])
    again = fold_first_guesses(scrambled, moved, test, chosen, {"rt0": columns["rt0"]}, no_face)
    assert again[("rt0", 0)].tolist() == sets[("rt0", 0)].tolist()
    assert any(again[("rt0", k)].tolist() != sets[("rt0", k)].tolist() for k in range(1, 5))


def test_missing_or_mismatched_embeddings_name_the_file(workspace, tmp_path):
    found = program(workspace, str(tmp_path / "a.csv"), models="model4_insightface,model5_dlib", expect=2)
    assert os.path.join(workspace, "embeddings", "model5_dlib", "train_meta.json") in found
    copy = str(tmp_path / "embeddings")
    shutil.copytree(os.path.join(workspace, "embeddings", "model4_insightface"), os.path.join(copy, "model4_insightface"))
    test_npy = os.path.join(copy, "model4_insightface", "test.npy")
    np.save(test_npy, np.load(test_npy)[:-1])
    found = program(workspace, str(tmp_path / "b.csv"), models="model4_insightface", embeddings=copy, expect=2)
    assert test_npy in found and "lists" in found
    assert not os.path.exists(str(tmp_path / "b.csv"))


def test_the_fused_nearest_neighbour_rows_threshold_chosen_without_the_truth_and_its_upper_bound(workspace):
    """The evaluation's fused nearest neighbour (services/head/fused_baseline.py) fuses with the
    weights the prototypes submission chose; its threshold, unknown share and ranking are the same
    whatever the test truth says (here: the truth with known and unknown swapped), and the upper
    bound (the threshold the truth picks) scores at least the validated row."""
    from services.head import evaluate, fused_baseline

    folds = read_folds(os.path.join(workspace, "folds.csv"))
    rows = list(csv.DictReader(open(os.path.join(workspace, "dataset", "test_truth.csv"))))
    names, truth = [r["image"] for r in rows], np.array([int(r["label"]) for r in rows])
    args = (os.path.join(workspace, "embeddings"), os.path.join(workspace, "submissions"), MODELS, names)
    entry = fused_baseline.rows(*(args + (truth, folds)))
    chosen = json.load(open(os.path.join(workspace, "submissions", "prototypes.json")))["weights"]
    assert entry["weights"] == dict((m, w) for m, w in chosen.items() if w > 0)
    assert entry["weights_from"] == "prototypes.json"
    nn, bound = entry["nearest_neighbour"], entry["upper_bound"]
    assert nn["threshold"] in np.round(baselines.NN_THRESHOLDS, 4).tolist()
    assert bound["map5"] >= nn["map5"] and bound["threshold"] in np.round(baselines.NN_THRESHOLDS, 4).tolist()
    altered = np.where(truth == UNKNOWN, folds[1][0], UNKNOWN)
    other = fused_baseline.rows(*(args + (altered, folds)))
    settings = ("threshold", "estimated_unknown_share", "validation_map5")
    assert [other["nearest_neighbour"][k] for k in settings] == [nn[k] for k in settings]
    assert other["nearest_neighbour"]["map5"] != nn["map5"]  # the truth scores, and only scores
    table = evaluate.render(dict(ensemble={}, baselines={}, fused_baseline=entry, test_images=len(names),
                                 test_unknown=int(np.sum(truth == UNKNOWN)),
                                 systems=evaluate.systems(dict(ensemble={}, baselines={}, fused_baseline=entry), []),
                                 models={}), [])
    assert "| nearest neighbour, fused (" in table and "threshold %.3f chosen on validation folds" % nn["threshold"] in table
    assert "| UPPER BOUND, not a method: the fused nearest neighbour at the threshold the test truth picks" in table


def test_a_nearest_neighbour_row_whose_unknown_share_collapsed_says_it_is_not_meaningful():
    """The template-crop dlib model's case: the test's best similarities all look like the
    validation's known rows, EM estimates no unknowns at all, and the table's row says so."""
    from services.head import evaluate

    rng = np.random.RandomState(0)
    known, unknown = rng.normal(0.7, 0.1, 4000), rng.normal(0.3, 0.1, 2000)
    found = {}
    for name, test in (("collapsed", rng.normal(0.75, 0.05, 3000)),
                       ("fine", np.concatenate([rng.normal(0.7, 0.1, 2700), rng.normal(0.3, 0.1, 300)]))):
        nn = dict(threshold=-0.2, estimated_unknown_share=round(baselines.unknown_share(known, unknown, test), 4),
                  map5=0.5, top1=0.5, unknown_precision=0.0, unknown_recall=0.0)
        row = evaluate.systems(dict(ensemble={}, baselines={"m": dict(nearest_neighbour=nn, linear_svm=nn)}), [])[0]
        found[name] = row["system"]
    assert "unknown share 0.000; NOT MEANINGFUL: the unknown-share estimate collapsed" in found["collapsed"]
    assert found["fine"].startswith("nearest neighbour (m, threshold -0.200, unknown share 0.1")
    assert "NOT MEANINGFUL" not in found["fine"]
