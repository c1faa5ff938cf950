"""Pipeline tasks: thin glue over the shared library and the services.

    invoke data.benchmark          identity folders -> competition layout in <workspace>/dataset
    invoke align.prealigned        112x112 template crops -> every crop size in <workspace>/aligned
    invoke embed.run --models A,B  embed train and test with each model's service
    invoke bench.lfw-pairs --model NAME   LFW-style 10-fold verification accuracy
Every task takes --workspace DIR (default from invoke.yaml) so several runs live side by side.
"""
import os
import sys

from invoke import Collection, task

from shared import registry as registry_mod
from shared import runner as runner_mod
from shared import settings as settings_mod

SPLITS = ("train", "test")


def _config(workspace=None):
    config = settings_mod.load()
    if workspace:
        config["workspace"] = os.path.abspath(workspace)
    return config


def _progress(desc):
    from tqdm import tqdm

    return lambda items: tqdm(items, desc=desc, disable=not sys.stderr.isatty())


def _paths(workspace):
    return {"dataset": os.path.join(workspace, "dataset"), "aligned": os.path.join(workspace, "aligned"),
            "embeddings": os.path.join(workspace, "embeddings"), "bench": os.path.join(workspace, "bench")}


# ---------------------------------------------------------------- data
@task(help={"source": "identity folders <root>/<Name>/*.jpg (default: invoke.yaml benchmark.source)",
            "seed": "seed of every random choice", "workspace": "workspace folder"})
def benchmark(c, source=None, seed=None, workspace=None):
    """Build the competition-layout benchmark (train.csv, train/, test/, test truth)."""
    from shared.benchmark import build

    config = _config(workspace)
    spec = config["benchmark"]
    source = settings_mod.under(config["data_dir"], source or spec["source"])
    info = build(source, _paths(config["workspace"])["dataset"], seed=spec["seed"] if seed is None else int(seed),
                 known=spec["known"], max_train=spec["max_train"], unknown_share=spec["unknown_share"],
                 damage_share=spec["damage_share"], progress=_progress("benchmark"))
    print("benchmark in %s: %s" % (_paths(config["workspace"])["dataset"], info["counts"]))


# ---------------------------------------------------------------- align
def _dataset_lists(dataset):
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

    config = _config(workspace)
    paths = _paths(config["workspace"])
    wanted = crops.split(",") if crops else sorted(set(
        registry_mod.load().models[n]["input"]["crop"] for n in registry_mod.load().names()))
    for split, names in _dataset_lists(paths["dataset"]).items():
        out_dirs = dict((crop, os.path.join(paths["aligned"], crop, split)) for crop in wanted)
        written = derive_prealigned(os.path.join(paths["dataset"], split), names, out_dirs,
                                    progress=_progress("align " + split))
        write_text(os.path.join(paths["aligned"], split + ".txt"), "".join(n + "\n" for n in names))
        print("aligned %s: %d images, %d new crop files (%s)" % (split, len(names), written, ", ".join(wanted)))


# ---------------------------------------------------------------- embed
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
            "runner": "local", "workspace": "workspace folder"})
def run(c, models, splits="train,test", augment=None, profile=None, seed=0, batch_size=None,
        runner=None, workspace=None):
    """Embed the aligned train/test crops with each model's service (the embed contract)."""
    config = _config(workspace)
    paths = _paths(config["workspace"])
    registry = registry_mod.load()
    service_runner = runner_mod.get(runner or config["runner"])
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
            service_runner.run(entry["family"], "embed", args)


# ---------------------------------------------------------------- bench
@task(help={"model": "registry name", "pairs": "pairs.txt (default: invoke.yaml bench.pairs)",
            "images": "folder of 112x112 template crops the pairs name (default: beside pairs.txt)",
            "batch_size": "images per forward pass", "runner": "local", "workspace": "workspace folder"})
def lfw_pairs(c, model, pairs=None, images=None, batch_size=None, runner=None, workspace=None):
    """10-fold verification accuracy of MODEL on LFW-style pairs (original + flip embeddings)."""
    import numpy as np

    from shared.contract import output_files
    from shared.crops import derive_prealigned
    from shared.storage import read_json, write_text
    from shared.verification import cosine_scores, kfold_accuracy, read_pairs

    config = _config(workspace)
    pairs_path = settings_mod.under(config["data_dir"], pairs or config["bench"]["pairs"])
    images = images or os.path.join(os.path.dirname(pairs_path), "images")
    pair_list = read_pairs(pairs_path)
    names = sorted(set(p[0] for p in pair_list) | set(p[1] for p in pair_list))
    entry = registry_mod.load().model(model)
    crop = entry["input"]["crop"]
    bench_dir = os.path.join(_paths(config["workspace"])["bench"], "lfw-pairs",
                             os.path.basename(os.path.dirname(os.path.abspath(pairs_path))))
    crops_dir = os.path.join(bench_dir, "crops", crop)
    derive_prealigned(images, names, {crop: crops_dir}, progress=_progress("crops " + crop))
    list_path = os.path.join(bench_dir, "images.txt")
    write_text(list_path, "".join(n + "\n" for n in names))
    out = os.path.join(bench_dir, model)
    runner_mod.get(runner or config["runner"]).run(entry["family"], "embed", [
        "--model", model, "--images", crops_dir, "--list", list_path, "--out", out, "--split", "pairs",
        "--flip", "--weights-root", config["weights_dir"],
        "--batch-size", batch_size or config["bench"]["batch_size"]])
    files = output_files(out, "pairs")
    embeddings = np.load(files["embeddings"]) + np.load(files["flip"])
    scores = cosine_scores(embeddings, names, pair_list)
    mean, std = kfold_accuracy(scores, [p[2] for p in pair_list])
    timing = read_json(files["meta"])["timing"]
    print("%s: %d pairs, %d images, embedding %.1f images/s (original + flip, batch %d)"
          % (model, len(pair_list), len(names), timing["views_per_s"], timing["batch_size"]))
    print("accuracy %.4f +- %.4f" % (mean, std))


namespace = Collection(
    Collection("data", benchmark),
    Collection("align", prealigned),
    Collection("embed", run),
    Collection("bench", lfw_pairs),
)
