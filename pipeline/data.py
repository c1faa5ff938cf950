"""`data` collection: build datasets in the competition layout."""
from invoke import task

from pipeline.common import load_config, progress, workspace_paths
from shared import settings as settings_mod


@task(help={"source": "identity folders <root>/<Name>/*.jpg (default: invoke.yaml benchmark.source)",
            "seed": "seed of every random choice", "workspace": "workspace folder"})
def benchmark(c, source=None, seed=None, workspace=None):
    """Build the competition-layout benchmark (train.csv, train/, test/, test truth)."""
    from shared.benchmark import build

    config = load_config(workspace)
    spec = config["benchmark"]
    dataset = workspace_paths(config["workspace"])["dataset"]
    info = build(settings_mod.under(config["data_dir"], source or spec["source"]), dataset,
                 seed=spec["seed"] if seed is None else int(seed), known=spec["known"],
                 max_train=spec["max_train"], unknown_share=spec["unknown_share"],
                 damage_share=spec["damage_share"], progress=progress("benchmark"))
    print("benchmark in %s: %s" % (dataset, info["counts"]))
