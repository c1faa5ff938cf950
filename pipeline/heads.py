"""`heads` collection: each model's Keras heads for one step (the head service's `train`)."""
import os

from invoke import task

from pipeline import arguments, context
from shared import hardware
from shared.method.ensemble import ensemble_weights
from shared.method.steps import PSEUDO_SOURCE, STEPS


def fold_columns(ctx):
    return ["rt%d" % i for i in range(ctx.profile["parts"])]


def skipped_heads(ctx, models):
    """The models among `models` whose heads the profile skips (invoke.yaml
    `skip_zero_weight_heads`): those with ensemble weight 0 at every step, whose heads count for
    nothing. Their embeddings still serve the baselines and the distance rule."""
    if not ctx.profile["skip_zero_weight_heads"]:
        return []
    weighted = set(m for step in STEPS for m, w in ensemble_weights(ctx.registry, models, step)[0].items() if w > 0)
    return [m for m in models if m not in weighted]


def head_models(ctx, models, log=False):
    """The models whose heads this run trains (`log`: say which are skipped and why)."""
    skipped = skipped_heads(ctx, models)
    if skipped and log:
        print("[heads] not training the heads of %s: ensemble weight 0 at steps %s (profile %s: "
              "skip_zero_weight_heads; their embeddings still serve the baselines and the distance rule)"
              % (", ".join(skipped), ", ".join(STEPS), ctx.profile_name))
    return [m for m in models if m not in skipped]


def head_job(ctx, model, step):
    """(the stamped stage, the head service's `train` arguments) of `model`'s heads for `step`."""
    out = os.path.join(ctx.paths["heads"], model, step)
    embeddings = os.path.join(ctx.paths["embeddings"], model)
    columns = ",".join(fold_columns(ctx))
    args = ["--model", model, "--embeddings", embeddings, "--folds", ctx.paths["folds"], "--columns", columns,
            "--out", out, "--epochs", ctx.profile["epochs"], "--patience", ctx.profile["patience"],
            "--seed", ctx.seed, "--matmul", ctx.choice("train_matmul", hardware.MATMUL_CHOICES)]
    inputs = [embeddings, ctx.paths["folds"]]
    if step in PSEUDO_SOURCE:
        pseudo = os.path.join(ctx.paths["pseudo"], step + ".csv")
        args += ["--pseudo", pseudo, "--unknown-class"]
        inputs.append(pseudo)
    stage = ctx.stage("heads/%s/%s" % (model, step), inputs, [os.path.join(out, "summary.json")],
                      {"args": " ".join(str(a) for a in args)})
    return stage, args


def train_stage(ctx, model, step):
    """parts x 5 heads of `model` for `step`, skipped while their inputs are unchanged."""
    stage, args = head_job(ctx, model, step)
    if stage.needed():
        ctx.runner.run("head", "train", args)
        stage.done()


@task(help={"models": "comma-separated registry names", "step": "step4, step6 or step7",
            "profile": "quick, faithful or smoke (invoke.yaml profiles)", "runner": "local, docker or auto",
            "workspace": "workspace folder"})
def train(c, models, step="step4", profile=None, runner=None, workspace=None):
    """Train each model's heads for one step (parts x 5 heads on the fold columns)."""
    models, step = arguments.models(models), arguments.step(step)
    ctx = context.from_task(c, workspace, runner, profile)
    for model in models:
        train_stage(ctx, model, step)
