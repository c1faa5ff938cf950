"""`data` collection: build datasets in the competition layout, and example people and photos."""
import os

from invoke import task

from pipeline import arguments, context
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
    seed, known = arguments.integer(seed, "--seed", minimum=0), arguments.integer(known, "--known")
    min_images = arguments.integer(min_images, "--min-images", minimum=2)
    benchmark_stage(context.from_task(c, workspace), source, seed, known, min_images)


@task(help={"out": "folder for people/, photos/ and truth.csv (default: <workspace>/example)",
            "source": "identity folders of aligned crops (default: invoke.yaml benchmark.source)",
            "people": "people to enroll", "photos_each": "photos per enrolled person",
            "strangers": "faces of people never enrolled", "group_photos": "group photos",
            "seed": "seed of every random choice", "workspace": "workspace folder"})
def people(c, out=None, source=None, people=10, photos_each=3, strangers=6, group_photos=2, seed=2019,
           workspace=None):
    """An example for `invoke enroll` and `invoke identify`: a folder of named people, group
    photos of some of them and of strangers, and the truth (shared/method/group_photos.py)."""
    from shared.method.group_photos import build

    ctx = context.from_task(c, workspace)
    out = out or os.path.join(ctx.workspace, "example")
    folders = build(settings_mod.under(ctx.config["data_dir"], source or ctx.config["benchmark"]["source"]), out,
                    int(seed), int(people), int(photos_each), int(strangers), int(group_photos))
    print("example in %s: %d people in people/, %d group photos in photos/, the truth in truth.csv"
          % (out, len(folders), int(group_photos)))
