"""`embed` collection: run backbone services over the aligned crops (the embed contract)."""
import os

from invoke import task

from pipeline import arguments, context


def augment_count(ctx, entry, augment=None):
    """Augmented copies per image: --augment, else the registry's count capped by the profile."""
    if augment is not None:
        return int(augment)
    cap, wanted = ctx.profile.get("max_augment"), entry["embed"]["augment"]
    return wanted if cap is None else min(wanted, cap)


def embed_args(ctx, name, split, augment=None, seed=None, batch_size=None, workers=None):
    """The `embed` arguments of one model and split; `workers` (default: invoke.yaml's for the
    family) parallel shard processes, merged; the run's engine (RunContext.engine_for), whose
    verified conversions are cached in the workspace."""
    entry = ctx.registry.model(name)
    args = ["--model", name, "--split", split,
            "--images", os.path.join(ctx.paths["aligned"], entry["input"]["crop"], split),
            "--list", os.path.join(ctx.paths["aligned"], split + ".txt"),
            "--out", os.path.join(ctx.paths["embeddings"], name),
            "--weights-root", ctx.weights_root, "--engine", ctx.engine_for(entry)]
    if ctx.engine_for(entry) != "native":
        args += ["--engine-cache", ctx.paths["engines"]]
    if split in entry["embed"]["flip"]:
        args.append("--flip")
    copies = augment_count(ctx, entry, augment)
    if copies:
        args += ["--augment", copies, "--seed", ctx.seed if seed is None else int(seed)]
    if batch_size:
        args += ["--batch-size", batch_size]
    workers = ctx.workers(entry) if workers is None else workers
    if workers > 1:
        args += ["--workers", workers]
    return args


def embed_stage(ctx, models, splits=arguments.SPLITS, augment=None, seed=None, batch_size=None):
    """Each model's service embeds each split; the service itself skips a split that is up to
    date and resumes one that was interrupted."""
    for name in models:
        for split in splits:
            ctx.runner.run(ctx.registry.model(name)["family"], "embed",
                           embed_args(ctx, name, split, augment, seed, batch_size))


@task(help={"models": "comma-separated registry names", "splits": "comma-separated splits (train,test)",
            "augment": "augmented copies per image (default: registry count, capped by the profile)",
            "profile": "settings profile from invoke.yaml (quick, faithful, smoke)",
            "seed": "augmentation seed (default: invoke.yaml seed)",
            "batch_size": "images per forward pass (default: the service's)",
            "runner": "local, docker or auto (default: invoke.yaml)", "workspace": "workspace folder",
            "engine": "native or openvino (default: the profile's engine)"})
def run(c, models, splits="train,test", augment=None, profile=None, seed=None, batch_size=None,
        runner=None, workspace=None, engine=None):
    """Embed the aligned train/test crops with each model's service (the embed contract)."""
    models, splits = arguments.models(models), arguments.splits(splits)
    augment, seed = arguments.integer(augment, "--augment", minimum=0), arguments.integer(seed, "--seed", minimum=0)
    batch_size = arguments.integer(batch_size, "--batch-size")
    embed_stage(context.from_task(c, workspace, runner, profile, engine), models, splits, augment, seed, batch_size)
