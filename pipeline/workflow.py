"""`invoke all`: the whole pipeline, each stage skipped when its outputs are up to date.

dataset (the default LFW benchmark when the workspace has none) -> align (pass-through for
pre-aligned input, else the detectors) -> folds -> embed (every model whose weights are
present) -> step-4 heads -> pseudo-labels + unknowns -> step-6 heads (1001 classes) -> step-7
pseudo set -> step-7 heads -> submissions -> evaluation (when the test truth exists).
"""
import os
import shutil
import time

from invoke import task

from pipeline import align, data, embed, heads
from pipeline.common import load_config
from pipeline.weights import PRESENT, model_status
from shared import registry as registry_mod


def present_models(config, requested):
    registry = registry_mod.load()
    names = registry.names(original=True) if requested in (None, "original") else requested.split(",")
    present = []
    for name in names:
        status, folder, detail = model_status(registry.model(name), config["weights_dir"])
        if status == PRESENT:
            present.append(name)
        else:
            print("[models] skipping %s: weights %s in %s (%s)" % (name, status, folder, detail))
    if not present:
        raise ValueError("none of the models %s has its weights under %s" % (", ".join(names), config["weights_dir"]))
    print("[models] using %s" % ", ".join(present))
    return present


@task(default=True, help={"profile": "quick or faithful (invoke.yaml profiles)", "runner": "local, docker or auto",
                          "models": "original (the 15, those present) or a comma-separated list",
                          "workspace": "workspace folder"})
def all_(c, profile=None, runner=None, models=None, workspace=None):
    """Run the whole pipeline; finished stages are skipped, changed inputs re-run what depends on them."""
    config = load_config(workspace)
    profile = profile or config["profile"]
    heads.profile_settings(config, profile)
    workspace = config["workspace"]
    paths = heads.layout(workspace)
    timings = []

    def timed(name, action, *args, **kwargs):
        started = time.time()
        result = action(*args, **kwargs)
        timings.append((name, time.time() - started))
        return result

    print("[all] workspace %s, profile %s" % (workspace, profile))
    if not os.path.isfile(os.path.join(paths["dataset"], "train.csv")):
        timed("dataset", data.benchmark, c, workspace=workspace)
    chosen = present_models(config, models or config["models"])
    registry = registry_mod.load()
    crops = ",".join(sorted(set(registry.model(m)["input"]["crop"] for m in chosen)))
    if os.path.isfile(os.path.join(paths["dataset"], "benchmark.json")):  # built from aligned crops
        timed("align", align.prealigned, c, crops=crops, workspace=workspace)
    else:
        timed("align", align.run, c, crops=crops, runner=runner, workspace=workspace)
    timed("split", heads.stage_split, config)
    timed("embed", embed.run, c, models=",".join(chosen), profile=profile, runner=runner, workspace=workspace)
    for step in heads.STEPS:
        if step in heads.PSEUDO_FOR:
            timed("pseudo " + step, heads.stage_pseudo, config, chosen, step, runner)
        for model in chosen:
            timed("heads %s %s" % (model, step), heads.stage_heads, config, model, step, profile, runner)
        timed("submit " + step, heads.stage_submit, config, chosen, step, runner)
    final = os.path.join(paths["submissions"], "final.csv")
    shutil.copyfile(os.path.join(paths["submissions"], "step7.csv"), final + ".tmp")
    os.rename(final + ".tmp", final)
    timed("evaluate", heads.stage_evaluate, config, chosen, runner)
    print("[all] submission: %s" % final)
    print("[all] wall time per stage:")
    for name, seconds in timings:
        print("  %-40s %8.1f s" % (name, seconds))
    print("  %-40s %8.1f s" % ("total", sum(s for _, s in timings)))


@task(help={"seed": "seed of the fold columns (default: invoke.yaml seed)",
            "stratified": "deal each identity's images over the folds", "workspace": "workspace folder"})
def split(c, seed=None, stratified=None, workspace=None):
    """Write folds.csv: rt0..rt29, each a seeded, shuffled 5-fold split of train.csv."""
    heads.stage_split(load_config(workspace), seed, stratified)


@task(help={"models": "comma-separated registry names", "runner": "local, docker or auto",
            "workspace": "workspace folder"})
def evaluate(c, models, runner=None, workspace=None):
    """MAP@5, top-1 and unknown precision/recall per model, step and baseline (needs test truth)."""
    heads.stage_evaluate(load_config(workspace), models.split(","), runner)
