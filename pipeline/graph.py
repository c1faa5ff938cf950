"""`invoke all --cluster SPEC`: the stages as a Dask task graph (pipeline/cluster.py makes the client).

align -> embed per model x split (x shard, then the service merges the shards) -> heads per
model x step x fold column (the head service's `train --no-merge`), then a merge (`train` with
every column, which finds them done) -> pseudo / submit / final / evaluate after their inputs.
Each task runs an existing stage function on a worker with its own run context; the stamped
stages and the services decide there, once their inputs are final, what is up to date. Tasks
are retried when a worker dies (the services resume). Logs: <workspace>/logs/<task>.log.
"""
import os
import time
import uuid

from pipeline import context
from pipeline.align import crops_for, dataset_lists, detect_stage, prealigned_stage
from pipeline.cluster import client, task_log, wait_all
from pipeline.data import benchmark_stage
from pipeline.embed import augment_count, embed_args
from pipeline.ensemble import prototypes_stage, pseudo_stage, submit_stage
from pipeline.evaluate import evaluate_stage
from pipeline.folds import split_stage
from pipeline.heads import fold_columns, head_job, head_models, train_stage
from pipeline.plan import final_submission, present_models, write_final
from pipeline.report import record_run, report_stage
from pipeline.validate import validate_stage
from shared.method.steps import PSEUDO_SOURCE, STEPS
from shared.schema import output_files, output_prefix

RETRIES = 2
MAX_BATCH = 64  # the largest default --batch-size of the backbone services


def run_task(setup, shared, name, action, params, after=()):
    """One task on a worker: `action(ctx, *params)` with its output in logs/<name>.log, once the
    worker is seen to share the driver's folders. `after`: the results of the tasks it waits for
    (Dask starts it once they are done)."""
    shared.check_here()
    ctx = context.RunContext(*setup)
    started = time.time()
    with task_log(os.path.join(ctx.workspace, "logs", name.replace(" ", "_") + ".log")):
        print("[task] %s" % name)
        action(ctx, *params)
    return name, time.time() - started


def embed_task(ctx, model, split, shard=None, count=1):
    """Shard `shard` of `count` of a model's split; shard None: the whole split, from its
    finished shards when count > 1 (the service's --workers merge finds each one up to date)."""
    args = embed_args(ctx, model, split, workers=count if shard is None and count > 1 else None)
    if shard is not None:
        args += ["--shard", "%d/%d" % (shard, count)]
    ctx.runner.run(ctx.registry.model(model)["family"], "embed", args)


def shard_count(ctx, model, split, images, wanted):
    """At most `wanted` shards of at least two forward batches each, so that none is empty
    (shard boundaries fall on whole batches of at most MAX_BATCH views)."""
    entry = ctx.registry.model(model)
    views = 1 + int(split in entry["embed"]["flip"]) + augment_count(ctx, entry)
    return max(1, min(wanted, images * views // (2 * MAX_BATCH)))


def heads_column(ctx, model, step, column):
    """The 5 heads of one fold column into the step's .partial/, unless the step is up to date."""
    stage, args = head_job(ctx, model, step)
    if not stage.fresh():
        args[args.index("--columns") + 1] = column
        ctx.runner.run("head", "train", args + ["--no-merge"])


class Graph(object):
    """The futures of one `invoke all` run, submitted in dependency order."""

    def __init__(self, dask, shared, ctx):
        self.dask, self.shared, self.ctx, self.futures = dask, shared, ctx, []
        self.setup = (ctx.config, ctx.runner_name, ctx.profile_name)
        self.run_id = uuid.uuid4().hex[:8]

    def submit(self, name, action, params=(), after=()):
        future = self.dask.submit(run_task, self.setup, self.shared, name, action, params, list(after),
                                  key="%s-%s" % (name.replace(" ", "-"), self.run_id), retries=RETRIES)
        self.futures.append(future)
        return future

    def embed(self, model, wanted, after):
        """The model's train and test embeddings: sharded where a split is not embedded yet."""
        done = []
        for split, names in sorted(dataset_lists(self.ctx.paths["dataset"]).items()):
            shards = shard_count(self.ctx, model, split, len(names), wanted)
            meta = output_files(os.path.join(self.ctx.paths["embeddings"], model), output_prefix(split, None))["meta"]
            parts = [] if shards < 2 or os.path.isfile(meta) else [
                self.submit("embed %s %s %d-of-%d" % (model, split, i, shards), embed_task,
                            (model, split, i, shards), after) for i in range(shards)]
            done.append(self.submit("embed %s %s" % (model, split), embed_task, (model, split, None, shards),
                                    parts or after))
        return done

    def heads(self, model, step, after):
        columns = [self.submit("heads %s %s %s" % (model, step, column), heads_column, (model, step, column), after)
                   for column in fold_columns(self.ctx)]
        return self.submit("heads %s %s" % (model, step), train_stage, (model, step), columns)

    def build(self, chosen, shards, pre_aligned):
        ctx = self.ctx
        align = self.submit("align", prealigned_stage if pre_aligned else detect_stage, (crops_for(ctx, chosen),))
        split = self.submit("split", split_stage)
        embedded = dict((model, self.embed(model, shards, [align])) for model in chosen)
        heads, pseudo, submits = {}, {}, []
        trained = head_models(ctx, chosen, log=True)
        # A model without heads (weight 0) is still read by the distance rule where its distance
        # weight is not 0, and by the evaluation's baselines: they wait for its embeddings.
        distance = [f for m in chosen if ctx.registry.model(m)["ensemble"]["distance"] > 0 for f in embedded[m]]
        every_embedding = [f for m in chosen for f in embedded[m]]
        for step in STEPS:
            if step in PSEUDO_SOURCE:  # step 6's set may come from the prototypes: every model's embeddings
                pseudo[step] = self.submit("pseudo " + step, pseudo_stage, (chosen, step), heads[PSEUDO_SOURCE[step]]
                                           + list(pseudo.values()) + every_embedding + [split])
            heads[step] = [self.heads(model, step, embedded[model] + [split] + ([pseudo[step]] if step in pseudo else []))
                           for model in trained]
            submits.append(self.submit("submit " + step, submit_stage, (chosen, step), heads[step] + distance))
        if final_submission(ctx) == "prototypes":  # after step 6's set, which may have run it
            submits.append(self.submit("prototypes", prototypes_stage, (chosen,),
                                       [split, pseudo["step6"]] + every_embedding))
        final = self.submit("final", write_final, (), submits)
        self.submit("evaluate", evaluate_stage, (chosen,), [final] + [h for hs in heads.values() for h in hs]
                    + every_embedding)


def run_all(ctx, spec, shards, models):
    """`invoke all` on the cluster `spec`, then the time of each task and the wall time."""
    started = time.time()
    with client(ctx.config, spec) as (dask, shared):
        chosen, timings = _run(dask, shared, ctx, shards, models)
    print("[all] submission: %s" % os.path.join(ctx.paths["submissions"], "final.csv"))
    print("[all] time per task (side by side: the wall time is less than their sum):")
    for name, seconds in timings:
        print("  %-40s %8.1f s" % (name, seconds))
    print("  %-40s %8.1f s" % ("wall time", time.time() - started))
    record_run(ctx, ctx.requested_models(models), chosen, timings)
    print("[all] report: %s" % report_stage(ctx))


def _run(dask, shared, ctx, shards, models):
    """The dataset (made here when missing) checked here, then the graph's tasks; the models
    and [(task, seconds)]."""
    timings = []
    if not os.path.isfile(os.path.join(ctx.paths["dataset"], "train.csv")):
        started = time.time()
        benchmark_stage(ctx)
        timings.append(("dataset", time.time() - started))
    validate_stage(ctx)
    chosen = present_models(ctx, models)
    graph = Graph(dask, shared, ctx)
    graph.build(chosen, shards, os.path.isfile(os.path.join(ctx.paths["dataset"], "benchmark.json")))
    logs = os.path.join(ctx.workspace, "logs")
    print("[cluster] %d tasks, logs in %s" % (len(graph.futures), logs))
    return chosen, timings + wait_all(dask, graph.futures, logs)
