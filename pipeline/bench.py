"""`bench` collection: accuracy and speed figures printed for people, not asserted in tests."""
import os

from invoke import task

from pipeline.common import load_config, progress, workspace_paths
from shared import registry as registry_mod
from shared import runner as runner_mod
from shared import settings as settings_mod


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

    config = load_config(workspace)
    pairs_path = settings_mod.under(config["data_dir"], pairs or config["bench"]["pairs"])
    images = images or os.path.join(os.path.dirname(pairs_path), "images")
    pair_list = read_pairs(pairs_path)
    names = sorted(set(p[0] for p in pair_list) | set(p[1] for p in pair_list))
    entry = registry_mod.load().model(model)
    crop = entry["input"]["crop"]
    bench_dir = os.path.join(workspace_paths(config["workspace"])["bench"], "lfw-pairs",
                             os.path.basename(os.path.dirname(os.path.abspath(pairs_path))))
    crops_dir = os.path.join(bench_dir, "crops", crop)
    derive_prealigned(images, names, {crop: crops_dir}, progress=progress("crops " + crop))
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
