"""`invoke all` end to end on a tiny real benchmark: every stage, skipping, and reproducibility."""
import copy
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import yaml

from conftest import ROOT, SETTINGS, tiny_people
from pipeline.context import RunContext
from pipeline.heads import pseudo_source
from pipeline.plan import final_submission
from services.head import diagnostics
from shared.method.submission import read_submission
from shared.running.runner import LocalRunner

INVOKE = os.path.join(os.path.dirname(sys.executable), "invoke")
ALL = ["all", "--profile", "smoke", "--models", "model4_insightface"]


def invoke(*args):
    proc = subprocess.run([INVOKE] + list(args), cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """16 identities with 3+ images (known) and 10 with one (unknown candidates)."""
    return tiny_people(tmp_path_factory.mktemp("people"))


@pytest.fixture(scope="module")
def first_run(source, tmp_path_factory):
    workspace = str(tmp_path_factory.mktemp("ws") / "a")
    invoke("data.benchmark", "--source", source, "--workspace", workspace)
    return workspace, invoke(*(ALL + ["--workspace", workspace]))


def test_all_writes_submissions_and_the_evaluation(first_run):
    workspace, log = first_run
    test_images = sorted(os.listdir(os.path.join(workspace, "dataset", "test")))
    for step in ("step4", "step6", "step7", "final"):
        images, ranked = read_submission(os.path.join(workspace, "submissions", step + ".csv"))
        assert sorted(images) == test_images
        assert all(len(set(row)) == 5 for row in ranked)
    report = open(os.path.join(workspace, "reports", "evaluation.md")).read()
    for row in ("ensemble step4", "ensemble step7", "nearest neighbour (model4_insightface", "linear SVM",
                "| nearest neighbour, fused (model4_insightface 1.0; threshold ", "| UPPER BOUND, not a method: "):
        assert row in report
    fused = json.load(open(os.path.join(workspace, "reports", "evaluation.json")))["fused_baseline"]
    assert fused["weights_from"] == "equal weights"  # no prototypes submission in this profile
    assert fused["upper_bound"]["map5"] >= fused["nearest_neighbour"]["map5"]
    assert open(os.path.join(workspace, "folds.csv")).readline().strip().endswith(",rt29")
    assert "ensemble step4: groups facenet, vggface2 absent" in log
    assert "[all] wall time per stage" in log


def test_rerun_skips_and_a_deleted_step_reruns_what_depends_on_it(first_run):
    workspace, _ = first_run
    final = open(os.path.join(workspace, "submissions", "final.csv"), "rb").read()
    log = invoke(*(ALL + ["--workspace", workspace]))
    assert "[heads/model4_insightface/step4] up to date" in log and "] running" not in log
    shutil.rmtree(os.path.join(workspace, "heads", "model4_insightface", "step6"))
    log = invoke(*(ALL + ["--workspace", workspace]))
    assert "[heads/model4_insightface/step4] up to date" in log
    assert "[heads/model4_insightface/step6] running" in log
    assert "up to date (" in log  # the embeddings were not recomputed
    assert open(os.path.join(workspace, "submissions", "final.csv"), "rb").read() == final


def test_same_seed_gives_a_byte_identical_submission(source, first_run, tmp_path):
    workspace, _ = first_run
    other = str(tmp_path / "b")
    invoke("data.benchmark", "--source", source, "--workspace", other)
    invoke(*(ALL + ["--workspace", other]))
    for step in ("step4", "step7"):
        assert open(os.path.join(workspace, "submissions", step + ".csv"), "rb").read() == \
            open(os.path.join(other, "submissions", step + ".csv"), "rb").read()


def test_heads_keep_their_history_and_the_curve_has_a_point_per_epoch(first_run, tmp_path):
    from pipeline import plots

    workspace, _ = first_run
    for step in ("step4", "step6", "step7"):
        summary = json.load(open(os.path.join(workspace, "heads", "model4_insightface", step, "summary.json")))
        for record in summary["heads"]:
            assert [len(record["history"][key]) for key in ("val_top1", "val_loss", "learning_rate")] == \
                [record["epochs"]] * 3
            assert record["history"]["val_top1"][record["best_epoch"]] == pytest.approx(record["val_top1"], abs=1e-5)
        points = plots.training_curves(summary, step, str(tmp_path / (step + ".png")))
        assert points == [record["epochs"] for record in summary["heads"]]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PNG = b"\x89PNG\r\n\x1a\n"


def test_the_report_page_has_every_figure_as_a_png(first_run):
    from PIL import Image

    workspace, log = first_run
    page = os.path.join(workspace, "reports", "index.html")
    assert "[all] report: %s" % page in log
    text = open(page).read()
    for heading in ("Run", "Evaluation", "Unknown faces", "Training", "Worst errors"):
        assert "<h2>%s</h2>" % heading in text
    assert "<script" not in text and not re.search(r'(src|href)="\w*:?//', text)  # nothing to run or fetch
    sources = re.findall(r'<img [^>]*src="([^"]+)"', text)
    figures = [s for s in sources if "/faces/" not in s]
    assert len(figures) == 7  # systems, unknown rule, nearest neighbour, distances, 3 training curves
    assert len(sources) > len(figures)  # the worst errors' faces
    for source in sources:
        path = os.path.join(os.path.dirname(page), source)
        assert open(path, "rb").read(8) == PNG, source
        Image.open(path).verify()


def test_the_report_opens_in_headless_chromium_without_console_errors(first_run, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("no chromium here (Debian: apt-get install chromium); CI runs this test")
    workspace, _ = first_run
    screenshot = tmp_path / "page.png"
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--user-data-dir=" + tempfile.mkdtemp(dir=str(tmp_path)), "--enable-logging=stderr",
                           "--v=0", "--window-size=1200,3000", "--screenshot=" + str(screenshot),
                           "file://" + os.path.join(workspace, "reports", "index.html")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert open(str(screenshot), "rb").read(8) == PNG


@pytest.fixture(scope="module")
def best_run(first_run, tmp_path_factory):
    """`best` on a copy of the smoke run: (its workspace, its log)."""
    workspace = str(tmp_path_factory.mktemp("best") / "best")
    shutil.copytree(first_run[0], workspace)
    return workspace, invoke("all", "--profile", "best", "--models", "model4_insightface", "--workspace", workspace)


def test_the_best_profile_fixes_orientation_and_makes_the_prototypes_submission_final(best_run):
    """`best`: the pre-aligned crops pass the orientation detector and are moved onto the
    template, the original's steps still run on the prototypes' pseudo-labels, and final.csv is
    the prototypes submission, scored beside the ensemble and the baselines."""
    workspace, log = best_run
    assert re.search(r"orientation: test \d+ of \d+, train \d+ of \d+ turned upright", log), log[-2000:]
    assert os.path.isfile(os.path.join(workspace, "aligned", "orientation.csv"))
    # the LFW crops' 8 px offset is measured on the train crops and every crop moved by it
    assert re.search(r"template: \d+ of \d+ sampled train crops have a face; moved onto the template", log)
    assert 6 < json.load(open(os.path.join(workspace, "aligned", "template.json")))["matrix"][0][2] < 10
    submissions = os.path.join(workspace, "submissions")
    assert open(os.path.join(submissions, "final.csv"), "rb").read() == \
        open(os.path.join(submissions, "prototypes.csv"), "rb").read()
    assert open(os.path.join(submissions, "step7.csv"), "rb").read() != \
        open(os.path.join(submissions, "prototypes.csv"), "rb").read()
    report = open(os.path.join(workspace, "reports", "evaluation.md")).read()
    assert "class prototypes" in report and "ensemble step7" in report
    # the report's trade-off of the final submission: at the chosen unknown score, the sweep
    # scores what the evaluation scored
    sweep = json.load(open(os.path.join(workspace, "reports", "diagnostics.json")))["prototypes"]
    chosen = json.load(open(os.path.join(submissions, "prototypes.json")))["threshold"]
    evaluation = json.load(open(os.path.join(workspace, "reports", "evaluation.json")))["prototypes"]
    assert sweep["chosen"] == chosen and len(sweep["thresholds"]) == len(sweep["map5"]) > 50
    assert sweep["map5"][sweep["thresholds"].index(chosen)] == round(evaluation["map5"], 5)
    page = open(os.path.join(workspace, "reports", "index.html")).read()
    assert "index_files/prototypes.png" in page and "index_files/prototype-scores.png" in page
    assert "nearest neighbour, fused (model4_insightface 1.0; threshold" in page and "UPPER BOUND, not a method" in page
    assert "index_files/distances.png" not in page  # the step-4 rules' distances made no pseudo-labels
    # the gallery shows the final submission's errors: each a wrong first guess of prototypes.csv
    assert "wrong first guesses of the class prototypes submission (final.csv)" in page
    names, ranked = read_submission(os.path.join(submissions, "prototypes.csv"))
    first = dict(zip(names, (int(row[0]) for row in ranked)))
    truth = dict((r["image"], int(r["label"])) for r in csv.DictReader(open(os.path.join(workspace, "dataset",
                                                                                         "test_truth.csv"))))
    errors = sweep["worst_errors"]
    assert sorted(sweep["best_score"]["images"]) == sorted(truth)  # the histogram's scores: one per test face
    assert all(-1 <= v <= 1 for v in sweep["best_score"]["values"])
    wrong = [n for n in names if first[n] != truth[n]]  # none at all is possible: the draw is small
    assert len(errors) == min(len(wrong), diagnostics.WORST)
    assert all(first[e["image"]] == e["guess"] != e["truth"] == truth[e["image"]] for e in errors)
    # steps 6 and 7 learn from the prototypes' first guesses (pseudo_labels: prototypes)
    pseudo = dict((r["image"], int(r["label"])) for r in csv.DictReader(open(os.path.join(workspace, "pseudo",
                                                                                          "step6.csv"))))
    assert pseudo == first
    assert json.load(open(os.path.join(workspace, "pseudo", "step6.json")))["source"] == "prototypes"


def folds_file(path):
    """{(column, fold): {image: label}} of a per-fold pseudo-label CSV."""
    found = {}
    for r in csv.DictReader(open(path)):
        found.setdefault((r["column"], int(r["fold"])), {})[r["image"]] = int(r["label"])
    return found


def test_steps_6_and_7_validate_each_head_on_pseudo_labels_made_without_its_fold(first_run, best_run, tmp_path):
    """The original's one pseudo-label set lets a head's validation see its own labels, and the
    evaluation says so; under `best` each step-6/7 head learns from its own set, and the step-7
    set of head (rt0, k) comes from the step-6 head (rt0, k) alone: changing another head's
    test probabilities leaves it as it was."""
    assert "\\* not honest" in open(os.path.join(first_run[0], "reports", "evaluation.md")).read()
    workspace = best_run[0]
    assert "not honest" not in open(os.path.join(workspace, "reports", "evaluation.md")).read()
    pseudo = os.path.join(workspace, "pseudo")
    for step in ("step6", "step7"):
        sets = folds_file(os.path.join(pseudo, step + ".folds.csv"))  # a head with no confident row: absent
        assert set(sets) <= set(("rt0", k) for k in range(5)) and len(sets) >= (5 if step == "step6" else 1)
        summary = json.load(open(os.path.join(workspace, "heads", "model4_insightface", step, "summary.json")))
        assert summary["pseudo_per_fold"] is True
        assert [h["pseudo_rows"] for h in summary["heads"]] == [len(sets.get(("rt0", k), {})) for k in range(5)]
    heads = str(tmp_path / "heads")
    shutil.copytree(os.path.join(workspace, "heads"), heads)
    probs_path = os.path.join(heads, "model4_insightface", "step6", "test_fold_probs.npz")
    probs = dict(np.load(probs_path))
    probs["rt0.1"] = np.zeros_like(probs["rt0.1"])
    probs["rt0.1"][:, 0] = 1  # head (rt0, 1) now sure every test face is class 0
    np.savez(probs_path, **probs)
    rules = yaml.safe_load(open(os.path.join(ROOT, "invoke.yaml")))["rules"]
    out = str(tmp_path / "step7.csv")
    proc = subprocess.run(LocalRunner().command("head", "ensemble", [
        "pseudo", "--models", "model4_insightface", "--heads", heads, "--embeddings", os.path.join(workspace, "embeddings"),
        "--folds", os.path.join(workspace, "folds.csv"), "--step", "step6", "--out", out, "--rules", json.dumps(rules),
        "--previous", os.path.join(pseudo, "step6.csv"), "--per-fold"]), cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    before, after = folds_file(os.path.join(pseudo, "step7.folds.csv")), folds_file(str(tmp_path / "step7.folds.csv"))
    assert all(before.get(("rt0", k)) == after.get(("rt0", k)) for k in (0, 2, 3, 4))
    assert before.get(("rt0", 1)) != after[("rt0", 1)] and set(after[("rt0", 1)].values()) <= {0, 1000}


def test_the_ablation_runs_each_row_in_its_own_workspace_and_reuses_finished_rows(first_run, tmp_path):
    """`bench.ablation` on the smoke run's dataset, two rows of a config file's table: each row
    a whole run with its one change, the table and JSON written, finished rows kept on rerun."""
    workspace = str(tmp_path / "ablation")
    shutil.copytree(os.path.join(first_run[0], "dataset"), os.path.join(workspace, "dataset"))
    config = tmp_path / "ablation.yaml"
    config.write_text(json.dumps({"bench": {"ablation": {"base": "smoke", "models": "model4_insightface",
                                                         "rows": {"smoke": {}, "epochs 2": {"epochs": 2}}}}}))
    args = ["-f", str(config), "bench.ablation", "--rows", "smoke,epochs 2", "--runner", "local",
            "--workspace", workspace]
    log = invoke(*args)
    root = os.path.join(workspace, "bench", "ablation")
    results = json.load(open(os.path.join(root, "ablation.json")))
    assert [r["row"] for r in results] == ["smoke", "epochs 2"]
    assert [r["settings"]["epochs"] for r in results] == [6, 2]
    assert all(0 < r["ensemble"]["step7"]["map5"] <= 1 and r["wall_s"] > 0 and r["cpu_s"] > 0 for r in results)
    for row in ("smoke", "epochs-2"):
        assert os.path.isfile(os.path.join(root, row, "submissions", "final.csv"))
        assert os.path.samefile(os.path.join(root, row, "dataset", "train.csv"),
                                os.path.join(workspace, "dataset", "train.csv"))
    table = open(os.path.join(root, "ablation.md")).read()
    assert "| smoke |" in table and "| epochs 2 |" in table and "[ablation] epochs 2: epochs=2" in log
    rerun = invoke(*args)
    assert rerun.count("finished earlier") == 2 and "[all]" not in rerun
    assert json.load(open(os.path.join(root, "ablation.json"))) == results
    # one row asked for: the table still has the other, finished with its current settings
    one = invoke(*[a if a != "smoke,epochs 2" else "epochs 2" for a in args])
    assert one.count("finished earlier") == 2 and json.load(open(os.path.join(root, "ablation.json"))) == results
    proc = subprocess.run([INVOKE, "-f", str(config), "bench.ablation", "--rows", "nope", "--workspace", workspace],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "error: --rows: no 'nope'" in proc.stderr


@pytest.mark.parametrize("key, read", [("final", final_submission), ("pseudo_labels", pseudo_source)])
def test_a_profile_choice_missing_or_misspelt_is_refused(key, read, tmp_path):
    config = copy.deepcopy(dict(SETTINGS, workspace=str(tmp_path)))
    assert read(RunContext(config, "local", "best")) == "prototypes"
    for value in ("prototype", None):
        config["profiles"]["best"][key] = value
        with pytest.raises(ValueError, match="profile 'best': %s must be .* not %r" % (key, value)):
            read(RunContext(config, "local", "best"))
