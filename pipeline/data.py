"""`data` collection: build datasets in the competition layout."""
from invoke import task

from pipeline import context
from pipeline.common import progress
from shared import settings as settings_mod


def benchmark_stage(ctx, source=None, seed=None):
    """invoke.yaml's `benchmark` draw from identity folders -> <workspace>/dataset."""
    from shared.benchmark import build

    spec = ctx.config["benchmark"]
    dataset = ctx.paths["dataset"]
    info = build(settings_mod.under(ctx.config["data_dir"], source or spec["source"]), dataset,
                 seed=spec["seed"] if seed is None else int(seed), known=spec["known"],
                 max_train=spec["max_train"], unknown_share=spec["unknown_share"],
                 damage_share=spec["damage_share"], progress=progress("benchmark"))
    print("benchmark in %s: %s" % (dataset, info["counts"]))


@task(help={"source": "identity folders <root>/<Name>/*.jpg (default: invoke.yaml benchmark.source)",
            "seed": "seed of every random choice (default: invoke.yaml benchmark.seed)",
            "workspace": "workspace folder"})
def benchmark(c, source=None, seed=None, workspace=None):
    """Build the competition-layout benchmark (train.csv, train/, test/, test truth)."""
    benchmark_stage(context.from_task(c, workspace), source, seed)
