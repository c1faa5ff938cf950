"""`invoke all`: the whole pipeline, each stage skipped when its outputs are up to date.

dataset (the default LFW benchmark when the workspace has none) -> align (pass-through for
pre-aligned input, else the detectors) -> folds -> embed (every model whose weights are
present) -> step-4 heads -> pseudo-labels + unknowns -> step-6 heads (1001 classes) -> step-7
pseudo set -> step-7 heads -> submissions -> evaluation (when the test truth exists).
"""
import os
import time

from invoke import task

from pipeline import arguments, context
from pipeline.align import crops_for, detect_stage, prealigned_stage
from pipeline.data import benchmark_stage
from pipeline.embed import embed_stage
from pipeline.ensemble import prototypes_stage, pseudo_stage, submit_stage
from pipeline.evaluate import evaluate_stage
from pipeline.folds import split_stage
from pipeline.heads import head_models, train_stage
from pipeline.plan import final_submission, present_models, write_final
from pipeline.report import record_run, report_stage
from pipeline.validate import validate_stage
from shared.method.steps import PSEUDO_SOURCE, STEPS


def _stages(ctx, chosen):
    """(name, action) of every stage after the dataset, in order."""
    dataset = ctx.paths["dataset"]
    pre_aligned = os.path.isfile(os.path.join(dataset, "benchmark.json"))  # built from aligned crops
    crops = crops_for(ctx, chosen)
    yield "validate", lambda: validate_stage(ctx)
    yield "align", lambda: (prealigned_stage if pre_aligned else detect_stage)(ctx, crops)
    yield "split", lambda: split_stage(ctx)
    yield "embed", lambda: embed_stage(ctx, chosen)
    trained = head_models(ctx, chosen, log=True)
    for step in STEPS:
        if step in PSEUDO_SOURCE:
            yield "pseudo " + step, lambda step=step: pseudo_stage(ctx, chosen, step)
        for model in trained:
            yield "heads %s %s" % (model, step), lambda model=model, step=step: train_stage(ctx, model, step)
        yield "submit " + step, lambda step=step: submit_stage(ctx, chosen, step)
    if final_submission(ctx) == "prototypes":
        yield "prototypes", lambda: prototypes_stage(ctx, chosen)


@task(default=True, help={"profile": "quick, faithful, best or smoke (invoke.yaml profiles)",
                          "runner": "local, docker or auto",
                          "models": "original (the 15, those present) or a comma-separated list",
                          "workspace": "workspace folder",
                          "cluster": "none (in this process, one stage after another; the default), local[:N], "
                                     "tcp://HOST:PORT, PATH/scheduler.json or slurm[:JOBS] (README: On a cluster)",
                          "shards": "embed each split as N tasks on a cluster (default: invoke.yaml cluster.shards)",
                          "engine": "native or openvino: how the backbones embed (default: the profile's engine)"})
def all_(c, profile=None, runner=None, models=None, workspace=None, cluster=None, shards=None, engine=None):
    """Run the whole pipeline; finished stages are skipped, changed inputs re-run what depends on them."""
    models = models if models in (None, "original") else ",".join(arguments.models(models))
    cluster, shards = arguments.cluster(cluster) if cluster else None, arguments.integer(shards, "--shards")
    ctx = context.from_task(c, workspace, runner, profile, engine)
    print("[all] workspace %s, profile %s, engine %s" % (ctx.workspace, ctx.profile_name, ctx.engine))
    cluster = cluster or ctx.config["cluster"]["spec"]
    if cluster != "none":  # the stages as a Dask task graph; Dask is imported only then
        from pipeline.graph import run_all
        return run_all(ctx, cluster, shards or int(ctx.config["cluster"]["shards"]), models)
    run_pipeline(ctx, models)


def run_pipeline(ctx, models=None):
    """Every stage in this process, one after another; returns [(stage, seconds)]."""
    timings = []

    def timed(name, action):
        started = time.time()
        action()
        timings.append((name, time.time() - started))

    chosen = present_models(ctx, models)  # before any work: a model named with --models and not present ends it
    if not os.path.isfile(os.path.join(ctx.paths["dataset"], "train.csv")):
        timed("dataset", lambda: benchmark_stage(ctx))
    for name, action in _stages(ctx, chosen):
        timed(name, action)
    final = write_final(ctx)
    timed("evaluate", lambda: evaluate_stage(ctx, chosen))
    print("[all] submission: %s" % final)
    print("[all] wall time per stage:")
    for name, seconds in timings:
        print("  %-40s %8.1f s" % (name, seconds))
    print("  %-40s %8.1f s" % ("total", sum(s for _, s in timings)))
    record_run(ctx, ctx.requested_models(models), chosen, timings)
    print("[all] report: %s" % report_stage(ctx))
    return timings
