"""`invoke bench.lfw-pairs`: a model's 10-fold verification accuracy on LFW-style pairs, through its
service."""
import os

from invoke import task

from pipeline import arguments, context, plots
from pipeline.common import progress
from shared.running import settings as settings_mod


def lfw_pairs_stage(ctx, entry, pairs_path, images, flip=True, batch_size=None):
    """10-fold verification accuracy of one model on LFW-style pairs, through its service."""
    import numpy as np

    from shared.bench.verification import cosine_scores, kfold_accuracy, read_pairs
    from shared.faces.crops import derive_prealigned
    from shared.schema import output_files
    from shared.storage import read_json, write_text

    pair_list = read_pairs(pairs_path)
    names = sorted(set(p[0] for p in pair_list) | set(p[1] for p in pair_list))
    crop = entry["input"]["crop"]
    bench_dir = os.path.join(ctx.paths["bench"], "lfw-pairs", os.path.basename(os.path.dirname(os.path.abspath(pairs_path))))
    crops_dir = os.path.join(bench_dir, "crops", crop)
    derive_prealigned(images, names, {crop: crops_dir}, progress=progress("crops " + crop))
    list_path = os.path.join(bench_dir, "images.txt")
    write_text(list_path, "".join(n + "\n" for n in names))
    engine = ctx.engine_for(entry)
    out = os.path.join(bench_dir, entry["name"] + ("" if engine == "native" else "-" + engine))
    split = "pairs" if flip else "pairs-noflip"
    ctx.runner.run(entry["family"], "embed", [
        "--model", entry["name"], "--images", crops_dir, "--list", list_path, "--out", out, "--split", split,
        "--weights-root", ctx.weights_root, "--workers", ctx.workers(entry), "--engine", engine,
        "--engine-cache", ctx.paths["engines"],
        "--batch-size", batch_size or ctx.config["bench"]["batch_size"]] + (["--flip"] if flip else []))
    files = output_files(out, split)
    embeddings = np.load(files["embeddings"]) + (np.load(files["flip"]) if flip else 0)
    scores, same = cosine_scores(embeddings, names, pair_list), [p[2] for p in pair_list]
    mean, std = kfold_accuracy(scores, same)
    timing = read_json(files["meta"])["timing"]
    print("%s: %d pairs, %d images, %.1f forward passes/s (%s, batch %d, engine %s)"
          % (entry["name"], len(pair_list), len(names), timing["views_per_s"],
             "original + flip views" if flip else "original views", timing["batch_size"], engine))
    print("accuracy %.4f +- %.4f" % (mean, std))
    print("figures: %s" % ", ".join(plots.verification(scores, same, os.path.join(out, split))))


@task(help={"model": "registry name", "pairs": "pairs.txt (default: invoke.yaml bench.pairs)",
            "images": "folder of 112x112 template crops the pairs name (default: beside pairs.txt)",
            "flip": "sum the original and mirrored embeddings (--no-flip: the original alone)",
            "batch_size": "images per forward pass", "runner": "local, docker or auto (default: invoke.yaml)",
            "engine": "native (the default: the model's own framework) or openvino, where the registry's "
                      "engines offer it to the model's family", "workspace": "workspace folder"})
def lfw_pairs(c, model, pairs=None, images=None, flip=True, batch_size=None, runner=None, engine="native",
              workspace=None):
    """10-fold verification accuracy of MODEL on LFW-style pairs (original + flip embeddings)."""
    model, batch_size = arguments.model(model), arguments.integer(batch_size, "--batch-size")
    ctx = context.from_task(c, workspace, runner, engine=engine)
    pairs_path = settings_mod.under(ctx.config["data_dir"], pairs or ctx.config["bench"]["pairs"])
    images = images or os.path.join(os.path.dirname(pairs_path), "images")
    lfw_pairs_stage(ctx, ctx.registry.model(model), pairs_path, images, flip, batch_size)
