"""`evaluate`: MAP@5, top-1 and unknown precision/recall of every model, step and baseline."""
import io
import os

from invoke import task

from pipeline import arguments, context
from pipeline.ensemble import ensemble_args, ensemble_params
from pipeline.heads import head_models
from shared.method.steps import STEPS


def evaluate_stage(ctx, models):
    paths = ctx.paths
    truth = os.path.join(paths["dataset"], "test_truth.csv")
    if not os.path.isfile(truth):
        print("[evaluate] skipped: %s does not exist (no ground truth for this dataset)" % truth)
        return
    trained = head_models(ctx, models)
    steps = [s for s in STEPS if all(os.path.isdir(os.path.join(paths["heads"], m, s)) for m in trained)]
    inputs = [truth, paths["submissions"]] + [os.path.join(paths["heads"], m, s) for m in trained for s in steps]
    out = os.path.join(paths["reports"], "evaluation.md")
    diagnostics = os.path.join(paths["reports"], "diagnostics.json")  # what the report plots
    stage = ctx.stage("evaluate", inputs, [out, diagnostics], ensemble_params(ctx, models))
    if stage.needed():
        args = ensemble_args(ctx, models, steps[-1], paths["reports"])
        ctx.runner.run("head", "evaluate", args + ["--truth", truth, "--submissions", paths["submissions"]])
        stage.done()
    else:
        print(io.open(out, encoding="utf-8").read())


@task(help={"models": "comma-separated registry names", "runner": "local, docker or auto",
            "workspace": "workspace folder"})
def evaluate(c, models, runner=None, workspace=None):
    """MAP@5, top-1 and unknown precision/recall per model, step and baseline (needs test truth)."""
    models = arguments.models(models)
    evaluate_stage(context.from_task(c, workspace, runner), models)
