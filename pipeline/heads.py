"""`heads` collection: folds, Keras heads per step, pseudo-labels, submissions, evaluation.

Each function here is one stage of `invoke all` (pipeline/workflow.py) as well as a task of
its own; stamps under <workspace>/.stamps make a stage re-run only when its inputs changed.
"""
import csv
import io
import json
import os

from invoke import task

from pipeline.common import load_config, workspace_paths
from shared import registry as registry_mod
from shared import runner as runner_mod
from shared.stages import Stage

STEPS = ("step4", "step6", "step7")
PSEUDO_FOR = {"step6": "step4", "step7": "step6"}  # the pseudo set of a step comes from this step


def layout(workspace):
    paths = workspace_paths(workspace)
    paths.update(folds=os.path.join(workspace, "folds.csv"), heads=os.path.join(workspace, "heads"),
                 pseudo=os.path.join(workspace, "pseudo"), submissions=os.path.join(workspace, "submissions"),
                 reports=os.path.join(workspace, "reports"), stamps=os.path.join(workspace, ".stamps"))
    return paths


def profile_settings(config, profile=None):
    name = profile or config["profile"]
    if name not in config["profiles"]:
        raise ValueError("unknown profile '%s' (invoke.yaml has: %s)" % (name, ", ".join(sorted(config["profiles"]))))
    return config["profiles"][name]


def stage_split(config, seed=None, stratified=None):
    from shared.folds import make_folds, write_folds

    paths = layout(config["workspace"])
    seed = config["seed"] if seed is None else int(seed)
    stratified = config["folds"]["stratified"] if stratified is None else stratified
    train_csv = os.path.join(paths["dataset"], "train.csv")
    stage = Stage(paths["stamps"], "split", [train_csv], [paths["folds"]],
                  {"seed": seed, "stratified": bool(stratified), "columns": config["folds"]["columns"]})
    if stage.needed():
        with io.open(train_csv, encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        images, labels = [r["image"] for r in rows], [int(r["label"]) for r in rows]
        write_folds(paths["folds"], images, labels,
                    make_folds(images, labels, seed, config["folds"]["columns"], stratified=bool(stratified)))
        stage.done()


def _runner(config, runner):
    return runner_mod.get(runner or config["runner"], config)


def stage_heads(config, model, step, profile=None, runner=None):
    paths = layout(config["workspace"])
    settings = profile_settings(config, profile)
    out = os.path.join(paths["heads"], model, step)
    embeddings = os.path.join(paths["embeddings"], model)
    args = ["--model", model, "--embeddings", embeddings, "--folds", paths["folds"],
            "--columns", ",".join("rt%d" % i for i in range(settings["parts"])), "--out", out, "--epochs", settings["epochs"], "--patience", settings["patience"], "--seed", config["seed"]]
    inputs = [embeddings, paths["folds"]]
    if step in PSEUDO_FOR:
        pseudo = os.path.join(paths["pseudo"], step + ".csv")
        args += ["--pseudo", pseudo, "--unknown-class"]
        inputs.append(pseudo)
    stage = Stage(paths["stamps"], "heads/%s/%s" % (model, step), inputs,
                  [os.path.join(out, "summary.json")], {"args": " ".join(str(a) for a in args)})
    if stage.needed():
        _runner(config, runner).run("head", "train", args)
        stage.done()


def _steps_args(config, command, models, step, out):
    paths = layout(config["workspace"])
    args = [command, "--models", ",".join(models), "--heads", paths["heads"], "--embeddings", paths["embeddings"],
            "--folds", paths["folds"], "--step", step, "--out", out, "--rules", json.dumps(config["rules"])]
    no_face = os.path.join(paths["aligned"], "no_face_test.txt")
    if os.path.isfile(no_face):
        args += ["--no-face", no_face]
    return args


def _ensemble_stage(config, command, models, step, out, runner, previous=None):
    """`steps pseudo|submit` on one step's ensemble, skipped while its inputs are unchanged."""
    paths = layout(config["workspace"])
    inputs = [os.path.join(paths["heads"], m, step) for m in models] + [paths["folds"]]
    args = _steps_args(config, command, models, step, out)
    if previous:
        inputs.append(previous)
        args += ["--previous", previous]
    if step == "step4":  # the distance rule reads the embeddings
        inputs += [os.path.join(paths["embeddings"], m) for m in models]
    name = "%s/%s" % (command, os.path.splitext(os.path.basename(out))[0])
    stage = Stage(paths["stamps"], name, inputs, [out],
                  {"models": ",".join(models), "rules": json.dumps(config["rules"], sort_keys=True)})
    if stage.needed():
        _runner(config, runner).run("head", "steps", args)
        stage.done()


def stage_pseudo(config, models, target, runner=None):
    """The pseudo-label set `target` (step6 or step7) trains on, from the previous step's ensemble
    (and, for step 7, the unknowns of the step-6 set)."""
    pseudo = layout(config["workspace"])["pseudo"]
    previous = os.path.join(pseudo, PSEUDO_FOR[target] + ".csv") if target == "step7" else None
    _ensemble_stage(config, "pseudo", models, PSEUDO_FOR[target], os.path.join(pseudo, target + ".csv"),
                    runner, previous)


def stage_submit(config, models, step, runner=None):
    out = os.path.join(layout(config["workspace"])["submissions"], step + ".csv")
    _ensemble_stage(config, "submit", models, step, out, runner)


def stage_evaluate(config, models, runner=None):
    paths = layout(config["workspace"])
    truth = os.path.join(paths["dataset"], "test_truth.csv")
    if not os.path.isfile(truth):
        print("[evaluate] skipped: %s does not exist (no ground truth for this dataset)" % truth)
        return
    steps = [s for s in STEPS if all(os.path.isdir(os.path.join(paths["heads"], m, s)) for m in models)]
    inputs = [truth, paths["submissions"]] + [os.path.join(paths["heads"], m, s) for m in models for s in steps]
    out = os.path.join(paths["reports"], "evaluation.md")
    stage = Stage(paths["stamps"], "evaluate", inputs, [out], {"models": ",".join(models)})
    if stage.needed():
        args = _steps_args(config, "evaluate", models, steps[-1], paths["reports"])
        args += ["--truth", truth, "--submissions", paths["submissions"]]
        _runner(config, runner).run("head", "steps", args)
        stage.done()
    else:
        print(io.open(out, encoding="utf-8").read())


# ------------------------------------------------------------------ tasks
@task(help={"models": "comma-separated registry names", "step": "step4, step6 or step7",
            "profile": "quick or faithful (invoke.yaml)", "runner": "local, docker or auto",
            "workspace": "workspace folder"})
def train(c, models, step="step4", profile=None, runner=None, workspace=None):
    """Train each model's heads for one step (parts x 5 heads on the fold columns)."""
    config = load_config(workspace)
    for model in models.split(","):
        registry_mod.load().model(model)
        stage_heads(config, model, step, profile, runner)


@task(help={"models": "comma-separated registry names", "target": "step6 (from step 4) or step7 (from step 6)",
            "runner": "local, docker or auto", "workspace": "workspace folder"})
def pseudo(c, models, target="step6", runner=None, workspace=None):
    """Pseudo-label the test set for TARGET from the previous step's ensemble (and find unknowns)."""
    stage_pseudo(load_config(workspace), models.split(","), target, runner)


@task(help={"models": "comma-separated registry names", "step": "step4, step6 or step7",
            "runner": "local, docker or auto", "workspace": "workspace folder"})
def submit(c, models, step="step7", runner=None, workspace=None):
    """Write submissions/<step>.csv: the ensemble's top-5 classes per test image."""
    stage_submit(load_config(workspace), models.split(","), step, runner)
