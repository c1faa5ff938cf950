"""`embed` collection: run backbone services over the aligned crops (the embed contract)."""
import os

from invoke import task

from pipeline.common import load_config, workspace_paths
from shared import registry as registry_mod
from shared import runner as runner_mod


def _augment_count(config, entry, augment, profile):
    """Augmented copies per image: --augment, else the registry's count capped by the profile."""
    if augment is not None:
        return int(augment)
    cap = config["profiles"][profile or config["profile"]].get("max_augment")
    wanted = entry["embed"]["augment"]
    return wanted if cap is None else min(wanted, cap)


@task(help={"models": "comma-separated registry names", "splits": "comma-separated splits (train,test)",
            "augment": "augmented copies per image (default: registry count, capped by the profile)",
            "profile": "settings profile from invoke.yaml (quick, faithful)", "seed": "augmentation seed",
            "batch_size": "images per forward pass (default: the service's)",
            "runner": "local, docker or auto (default: invoke.yaml)", "workspace": "workspace folder"})
def run(c, models, splits="train,test", augment=None, profile=None, seed=0, batch_size=None,
        runner=None, workspace=None):
    """Embed the aligned train/test crops with each model's service (the embed contract)."""
    config = load_config(workspace)
    paths = workspace_paths(config["workspace"])
    registry = registry_mod.load()
    service_runner = runner_mod.get(runner or config["runner"], config)
    for name in models.split(","):
        entry = registry.model(name)
        for split in splits.split(","):
            args = ["--model", name, "--split", split,
                    "--images", os.path.join(paths["aligned"], entry["input"]["crop"], split),
                    "--list", os.path.join(paths["aligned"], split + ".txt"),
                    "--out", os.path.join(paths["embeddings"], name),
                    "--weights-root", config["weights_dir"]]
            if split in entry["embed"]["flip"]:
                args.append("--flip")
            copies = _augment_count(config, entry, augment, profile)
            if copies:
                args += ["--augment", copies, "--seed", seed]
            if batch_size:
                args += ["--batch-size", batch_size]
            if config["workers"].get(entry["family"], 1) > 1:
                args += ["--workers", config["workers"][entry["family"]]]
            service_runner.run(entry["family"], "embed", args)
