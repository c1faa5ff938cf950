"""`align` collection: face crops at every size the models read."""
import os

from invoke import task

from pipeline.common import load_config, progress, workspace_paths
from shared import registry as registry_mod


def dataset_lists(dataset):
    """Image names per split: train.csv order, and sample_submission.csv order (or the sorted
    test folder when the dataset has no sample submission)."""
    from shared.contract import read_list
    from shared.images import list_images

    lists = {"train": read_list(os.path.join(dataset, "train.csv"))}
    submission = os.path.join(dataset, "sample_submission.csv")
    lists["test"] = read_list(submission) if os.path.isfile(submission) else list_images(os.path.join(dataset, "test"))
    return lists


@task(help={"crops": "comma-separated crop sizes (default: every size the registry uses)",
            "workspace": "workspace folder"})
def prealigned(c, crops=None, workspace=None):
    """Derive every crop size from input already aligned to the 112x112 template."""
    from shared.crops import derive_prealigned
    from shared.storage import write_text

    config = load_config(workspace)
    paths = workspace_paths(config["workspace"])
    registry = registry_mod.load()
    wanted = crops.split(",") if crops else sorted(set(registry.model(n)["input"]["crop"] for n in registry.names()))
    for split, names in sorted(dataset_lists(paths["dataset"]).items()):
        out_dirs = dict((crop, os.path.join(paths["aligned"], crop, split)) for crop in wanted)
        written = derive_prealigned(os.path.join(paths["dataset"], split), names, out_dirs,
                                    progress=progress("align " + split))
        write_text(os.path.join(paths["aligned"], split + ".txt"), "".join(n + "\n" for n in names))
        print("aligned %s: %d images, %d new crop files (%s)" % (split, len(names), written, ", ".join(wanted)))
