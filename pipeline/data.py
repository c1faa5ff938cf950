"""`data` collection: build datasets in the competition layout."""
from invoke import task

from pipeline import context
from pipeline.common import progress
from shared.running import settings as settings_mod


def benchmark_stage(ctx, source=None, seed=None, known=None, min_images=None):
    """invoke.yaml's `benchmark` draw from identity folders -> <workspace>/dataset; the
    arguments given override its settings (a reduced benchmark: fewer known identities,
    each with more images)."""
    from shared.method.benchmark import build

    spec = ctx.config["benchmark"]
    dataset = ctx.paths["dataset"]
    info = build(settings_mod.under(ctx.config["data_dir"], source or spec["source"]), dataset,
                 seed=spec["seed"] if seed is None else int(seed),
                 known=spec["known"] if known is None else int(known),
                 max_train=spec["max_train"], unknown_share=spec["unknown_share"],
                 damage_share=spec["damage_share"], progress=progress("benchmark"),
                 min_images=spec["min_images"] if min_images is None else int(min_images))
    print("benchmark in %s: %s" % (dataset, info["counts"]))


@task(help={"source": "identity folders <root>/<Name>/*.jpg (default: invoke.yaml benchmark.source)",
            "seed": "seed of every random choice (default: invoke.yaml benchmark.seed)",
            "known": "known identities to draw (default: invoke.yaml benchmark.known)",
            "min_images": "draw known identities among those with at least this many images, 2 or more "
                          "(default: invoke.yaml benchmark.min_images)",
            "workspace": "workspace folder"})
def benchmark(c, source=None, seed=None, known=None, min_images=None, workspace=None):
    """Build the competition-layout benchmark (train.csv, train/, test/, test truth)."""
    benchmark_stage(context.from_task(c, workspace), source, seed, known, min_images)
