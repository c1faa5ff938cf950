"""`ensemble` collection: a step's heads combined into pseudo-labels or a submission (the head
service's `ensemble` program), and the heads-free `prototypes` submission (its `prototypes` program)."""
import json
import os

import yaml
from invoke import task

from pipeline import arguments, context
from pipeline.heads import fold_columns, head_models, per_fold, pseudo_source
from shared.method.steps import PSEUDO_SOURCE, folds_path
from shared.storage import write_text


def ensemble_args(ctx, models, step, out):
    """The arguments the head service's `ensemble` (pseudo, submit) and `evaluate` share."""
    paths = ctx.paths
    args = ["--models", ",".join(models), "--heads", paths["heads"], "--embeddings", paths["embeddings"],
            "--folds", paths["folds"], "--step", step, "--out", out, "--rules", json.dumps(ctx.config["rules"])]
    return args + _no_face_args(ctx) + _registry_args(ctx)


def ensemble_params(ctx, models):
    """What an ensemble's stamp depends on beyond its files: the models and any group weights of the profile."""
    params = {"models": ",".join(models)}
    if ctx.profile.get("groups"):
        params["groups"] = ctx.registry.groups
    return params


def _registry_args(ctx):
    """`--registry` when the profile sets its own ensemble group weights: the run's registry,
    written into the workspace for the head service (whose default is shared/models/models.yaml)."""
    if not ctx.profile.get("groups"):
        return []
    path = os.path.join(ctx.workspace, "registry.yaml")
    write_text(path, yaml.safe_dump(ctx.registry.with_models(ctx.registry.models), default_flow_style=False))
    return ["--registry", path]


def _no_face_args(ctx):
    """`--no-face` when the alignment found test images without a face."""
    no_face = os.path.join(ctx.paths["aligned"], "no_face_test.txt")
    return ["--no-face", no_face] if os.path.isfile(no_face) else []


def _ensemble_stage(ctx, command, models, step, out, previous=None):
    """`ensemble pseudo|submit` on one step's heads, skipped while its inputs are unchanged."""
    inputs = [os.path.join(ctx.paths["heads"], m, step) for m in head_models(ctx, models)] + [ctx.paths["folds"]]
    args, outputs = [command] + ensemble_args(ctx, models, step, out), [out]
    if previous:
        inputs.append(previous)
        args += ["--previous", previous]
    fold_sets = command == "pseudo" and per_fold(ctx)
    if fold_sets:  # each head's own set too, from each head's probabilities (and the set before's)
        args.append("--per-fold")
        outputs.append(folds_path(out))
        inputs += [folds_path(previous)] if previous else []
    if step == "step4":  # the distance rule reads the embeddings
        inputs += [os.path.join(ctx.paths["embeddings"], m) for m in models]
    name = "%s/%s" % (command, os.path.splitext(os.path.basename(out))[0])
    stage = ctx.stage(name, inputs, outputs, dict(ensemble_params(ctx, models), rules=json.dumps(
        ctx.config["rules"], sort_keys=True), **({"per_fold": True} if fold_sets else {})))
    if stage.needed():
        ctx.runner.run("head", "ensemble", args)
        stage.done()


def pseudo_stage(ctx, models, target):
    """The pseudo-label set `target` (step6 or step7) trains on, from the previous step's ensemble
    (and, for step 7, the unknowns of the step-6 set), or for step 6 from the prototypes."""
    if target == "step6" and pseudo_source(ctx) == "prototypes":
        return prototypes_stage(ctx, models)
    folder = ctx.paths["pseudo"]
    previous = os.path.join(folder, PSEUDO_SOURCE[target] + ".csv") if target == "step7" else None
    _ensemble_stage(ctx, "pseudo", models, PSEUDO_SOURCE[target], os.path.join(folder, target + ".csv"), previous)


def prototypes_stage(ctx, models):
    """submissions/prototypes.csv: the head service's `prototypes` program (no heads: class
    prototypes of the models' fused embeddings), and pseudo/step6.csv where the profile takes
    its pseudo-labels from them; skipped while its inputs are unchanged."""
    paths = ctx.paths
    out = os.path.join(paths["submissions"], "prototypes.csv")
    no_face = _no_face_args(ctx)
    pseudo = ["--pseudo", os.path.join(paths["pseudo"], "step6.csv")] if pseudo_source(ctx) == "prototypes" else []
    outputs, fold_sets = [out] + pseudo[1:], bool(pseudo) and per_fold(ctx)
    if fold_sets:  # each step-6 head's own set too, from the prototypes of the other folds
        outputs.append(folds_path(pseudo[1]))
        pseudo += ["--pseudo-columns", ",".join(fold_columns(ctx))]
    inputs = [os.path.join(paths["embeddings"], m) for m in models] + [paths["folds"]] + no_face[1:]
    stage = ctx.stage("prototypes", inputs, outputs, dict({"models": ",".join(models), "pseudo": bool(pseudo)},
                                                          **({"per_fold": True} if fold_sets else {})))
    if stage.needed():
        ctx.runner.run("head", "prototypes", ["--models", ",".join(models), "--embeddings", paths["embeddings"],
                                              "--folds", paths["folds"], "--out", out] + no_face + pseudo)
        stage.done()


def submit_stage(ctx, models, step):
    _ensemble_stage(ctx, "submit", models, step, os.path.join(ctx.paths["submissions"], step + ".csv"))


@task(help={"models": "comma-separated registry names", "target": "step6 (from step 4) or step7 (from step 6)",
            "runner": "local, docker or auto", "workspace": "workspace folder"})
def pseudo(c, models, target="step6", runner=None, workspace=None):
    """Pseudo-label the test set for TARGET from the previous step's ensemble (and find unknowns)."""
    models, target = arguments.models(models), arguments.target(target)
    pseudo_stage(context.from_task(c, workspace, runner), models, target)


@task(help={"models": "comma-separated registry names", "step": "step4, step6 or step7",
            "runner": "local, docker or auto", "workspace": "workspace folder"})
def submit(c, models, step="step7", runner=None, workspace=None):
    """Write submissions/<step>.csv: the ensemble's top-5 classes per test image."""
    models, step = arguments.models(models), arguments.step(step)
    submit_stage(context.from_task(c, workspace, runner), models, step)


@task(help={"models": "comma-separated registry names", "runner": "local, docker or auto",
            "workspace": "workspace folder"})
def prototypes(c, models, runner=None, workspace=None):
    """Write submissions/prototypes.csv from class prototypes of the models' fused embeddings."""
    models = arguments.models(models)
    prototypes_stage(context.from_task(c, workspace, runner), models)
