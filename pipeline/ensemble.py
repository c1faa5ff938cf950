"""`ensemble` collection: a step's heads combined into pseudo-labels or a submission (the head
service's `ensemble` program)."""
import json
import os

from invoke import task

from pipeline import context
from pipeline.heads import head_models
from shared.steps import PSEUDO_SOURCE


def ensemble_args(ctx, models, step, out):
    """The arguments the head service's `ensemble` (pseudo, submit) and `evaluate` share."""
    paths = ctx.paths
    args = ["--models", ",".join(models), "--heads", paths["heads"], "--embeddings", paths["embeddings"],
            "--folds", paths["folds"], "--step", step, "--out", out, "--rules", json.dumps(ctx.config["rules"])]
    no_face = os.path.join(paths["aligned"], "no_face_test.txt")
    if os.path.isfile(no_face):
        args += ["--no-face", no_face]
    return args


def _ensemble_stage(ctx, command, models, step, out, previous=None):
    """`ensemble pseudo|submit` on one step's heads, skipped while its inputs are unchanged."""
    inputs = [os.path.join(ctx.paths["heads"], m, step) for m in head_models(ctx, models)] + [ctx.paths["folds"]]
    args = [command] + ensemble_args(ctx, models, step, out)
    if previous:
        inputs.append(previous)
        args += ["--previous", previous]
    if step == "step4":  # the distance rule reads the embeddings
        inputs += [os.path.join(ctx.paths["embeddings"], m) for m in models]
    name = "%s/%s" % (command, os.path.splitext(os.path.basename(out))[0])
    stage = ctx.stage(name, inputs, [out], {"models": ",".join(models),
                                            "rules": json.dumps(ctx.config["rules"], sort_keys=True)})
    if stage.needed():
        ctx.runner.run("head", "ensemble", args)
        stage.done()


def pseudo_stage(ctx, models, target):
    """The pseudo-label set `target` (step6 or step7) trains on, from the previous step's ensemble
    (and, for step 7, the unknowns of the step-6 set)."""
    folder = ctx.paths["pseudo"]
    previous = os.path.join(folder, PSEUDO_SOURCE[target] + ".csv") if target == "step7" else None
    _ensemble_stage(ctx, "pseudo", models, PSEUDO_SOURCE[target], os.path.join(folder, target + ".csv"), previous)


def submit_stage(ctx, models, step):
    _ensemble_stage(ctx, "submit", models, step, os.path.join(ctx.paths["submissions"], step + ".csv"))


@task(help={"models": "comma-separated registry names", "target": "step6 (from step 4) or step7 (from step 6)",
            "runner": "local, docker or auto", "workspace": "workspace folder"})
def pseudo(c, models, target="step6", runner=None, workspace=None):
    """Pseudo-label the test set for TARGET from the previous step's ensemble (and find unknowns)."""
    pseudo_stage(context.from_task(c, workspace, runner), models.split(","), target)


@task(help={"models": "comma-separated registry names", "step": "step4, step6 or step7",
            "runner": "local, docker or auto", "workspace": "workspace folder"})
def submit(c, models, step="step7", runner=None, workspace=None):
    """Write submissions/<step>.csv: the ensemble's top-5 classes per test image."""
    submit_stage(context.from_task(c, workspace, runner), models.split(","), step)
