"""Read a model's embed outputs for the heads, in the order the caller needs."""
import os

import numpy as np

from shared.schema import load_outputs


def load_split(folder, split, order=None):
    """{'names', 'embeddings', optionally 'flip', 'augment'} of one split (shared/schema.py
    load_outputs); rows follow `order` (image names) when given, else the index's order."""
    out = load_outputs(folder, split)
    if order is None:
        return out
    position = dict((n, i) for i, n in enumerate(out["names"]))
    missing = [n for n in order if n not in position]
    if missing:
        raise ValueError("%s: %d of %d images have no %s embedding (e.g. %s)"
                         % (folder, len(missing), len(order), split, missing[0]))
    rows = np.array([position[n] for n in order], dtype=np.int64)
    return dict([("names", list(order))] + [(key, array[rows]) for key, array in out.items() if key != "names"])


def load_model(folder, images):
    """(train rows in `images` order, test rows in sorted name order, those names); the embed
    outputs' reader names the file when a split is missing or disagrees with its index."""
    train = load_split(folder, "train", images)["embeddings"]
    test = load_split(folder, "test")
    order = sorted(range(len(test["names"])), key=test["names"].__getitem__)
    if train.shape[1] != test["embeddings"].shape[1]:
        raise ValueError("%s: train embeddings have %d columns, test %d" % (folder, train.shape[1],
                                                                             test["embeddings"].shape[1]))
    return {"train": train, "test": test["embeddings"][order], "test_names": [test["names"][i] for i in order]}


def load_models(embeddings, models, images):
    """({model: train rows}, {model: test rows}, test names) of every model under `embeddings`;
    names the folder whose test split lists other images than the first model's."""
    loaded = dict((m, load_model(os.path.join(embeddings, m), images)) for m in models)
    names = loaded[models[0]]["test_names"]
    for m in models[1:]:
        if loaded[m]["test_names"] != names:
            raise ValueError("%s: its test split lists other images than %s's (%d vs %d)"
                             % (os.path.join(embeddings, m), models[0], len(loaded[m]["test_names"]), len(names)))
    return dict((m, e["train"]) for m, e in loaded.items()), dict((m, e["test"]) for m, e in loaded.items()), names


def view_scheme(split):
    """Which views a head draws from per batch: the augmented copies when the model has
    them, else original and flip stacked (the VGGFace2 scheme), else the original alone."""
    return "augment" if "augment" in split else "flip" if "flip" in split else "plain"


def training_views(split, scheme):
    """(N, V, D) views of `split` under `scheme` (from view_scheme of the train split, so
    pseudo-labelled test rows are drawn the same way as train rows)."""
    if scheme == "augment":
        return split["augment"]
    if scheme == "flip":
        return np.stack([split["embeddings"], split["flip"]], axis=1)
    return split["embeddings"][:, None]
