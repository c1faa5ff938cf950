"""`heads` collection: each model's Keras heads for one step (the head service's `train`)."""
import os

from invoke import task

from pipeline import arguments, context
from shared import hardware
from shared.method.ensemble import ensemble_weights
from shared.method.steps import FOLD_PROBS, PSEUDO_SOURCE, STEPS, folds_path


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


def pseudo_source(ctx):
    """The profile's `pseudo_labels`: where the step-6 set comes from, heads (the original's
    step-4 ensemble and rules) or prototypes (the prototypes' first guesses)."""
    return ctx.choice("pseudo_labels", ("heads", "prototypes"))


def per_fold(ctx):
    """The profile's `fold_pseudo_labels`: each step-6/7 head learns from its own pseudo-labels,
    made by models that did not see its validation fold (services/head/fold_pseudo.py)."""
    return ctx.flag("fold_pseudo_labels")


def feeds_per_fold(ctx, step):
    """Whether `step`'s heads keep each head's test probabilities: the next step's per-fold
    pseudo-labels come from them (step 6's come from the prototypes where the profile says so)."""
    return per_fold(ctx) and step in PSEUDO_SOURCE.values() and not (
        step == PSEUDO_SOURCE["step6"] and pseudo_source(ctx) == "prototypes")


def head_job(ctx, model, step):
    """(the stamped stage, the head service's `train` arguments) of `model`'s heads for `step`."""
    out = os.path.join(ctx.paths["heads"], model, step)
    embeddings = os.path.join(ctx.paths["embeddings"], model)
    columns = ",".join(fold_columns(ctx))
    args = ["--model", model, "--embeddings", embeddings, "--folds", ctx.paths["folds"], "--columns", columns,
            "--out", out, "--epochs", ctx.profile["epochs"], "--patience", ctx.profile["patience"],
            "--seed", ctx.seed, "--matmul", ctx.choice("train_matmul", hardware.MATMUL_CHOICES)]
    inputs, outputs = [embeddings, ctx.paths["folds"]], [os.path.join(out, "summary.json")]
    if step in PSEUDO_SOURCE:
        pseudo = os.path.join(ctx.paths["pseudo"], step + ".csv")
        pseudo = folds_path(pseudo) if per_fold(ctx) else pseudo
        args += ["--pseudo-folds" if per_fold(ctx) else "--pseudo", pseudo, "--unknown-class"]
        inputs.append(pseudo)
    if feeds_per_fold(ctx, step):
        args.append("--fold-probs")
        outputs.append(os.path.join(out, FOLD_PROBS))
    stage = ctx.stage("heads/%s/%s" % (model, step), inputs, outputs, {"args": " ".join(str(a) for a in args)})
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
