"""What a run is made of, for `invoke all` in one process (pipeline/workflow.py) and as a Dask
graph (pipeline/graph.py) alike: the models it uses, and which submission becomes final.csv."""
import os
import shutil

from pipeline.weights import PRESENT, model_status
from shared.schema import EXIT_WEIGHTS, ContractError


def requested_names(registry, requested):
    """The models `--models` asks for: original (the 15) or a comma-separated list."""
    return registry.names(original=True) if requested in (None, "original") else requested.split(",")


def present_models(ctx, models=None):
    """The models of a run whose weights are present: of those named (`--models A,B`), every one
    (else exit 4, naming it); of the profile's (or `original`), those present, each other skipped
    with a line."""
    registry = ctx.registry
    names = requested_names(registry, ctx.requested_models(models))
    present = []
    for name in names:
        status, folder, detail = model_status(registry.model(name), ctx.weights_root)
        if status == PRESENT:
            present.append(name)
        elif models not in (None, "original"):
            raise ContractError(EXIT_WEIGHTS, "--models %s: weights %s in %s (%s)" % (name, status, folder, detail))
        else:
            print("[models] skipping %s: weights %s in %s (%s)" % (name, status, folder, detail))
    if not present:
        raise ValueError("none of the models %s has its weights under %s" % (", ".join(names),
                                                                             ctx.weights_root))
    print("[models] using %s" % ", ".join(present))
    return present


def final_submission(ctx):
    """The profile's `final`: which submission becomes final.csv, step7 (the original's) or
    prototypes (the head service's heads-free ranking of every chosen model, fused)."""
    return ctx.choice("final", ("step7", "prototypes"))


def write_final(ctx):
    """submissions/final.csv, a copy of the profile's final submission; returns its path."""
    submissions = ctx.paths["submissions"]
    final = os.path.join(submissions, "final.csv")
    shutil.copyfile(os.path.join(submissions, final_submission(ctx) + ".csv"), final + ".tmp")
    os.rename(final + ".tmp", final)
    return final
