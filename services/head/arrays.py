"""Read a model's embed-contract outputs for the heads, in the order the caller needs."""
import io
import os

import numpy as np


def _index(folder, split):
    path = os.path.join(folder, split + "_index.csv")
    if not os.path.isfile(path):
        raise IOError("%s is missing: embed the %s split first" % (path, split))
    with io.open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split(",", 1)[1] for line in f.readlines()[1:]]


def load_split(folder, split, order=None):
    """{'names', 'embeddings', optionally 'flip', 'augment'} of one split; rows follow `order`
    (image names) when given, else the index's order."""
    names = _index(folder, split)
    rows = None
    if order is not None:
        position = dict((n, i) for i, n in enumerate(names))
        missing = [n for n in order if n not in position]
        if missing:
            raise ValueError("%s: %d of %d images have no %s embedding (e.g. %s)"
                             % (folder, len(missing), len(order), split, missing[0]))
        rows = np.array([position[n] for n in order], dtype=np.int64)
        names = list(order)
    out = {"names": names}
    for key, suffix in (("embeddings", ""), ("flip", "_flip"), ("augment", "_aug")):
        path = os.path.join(folder, split + suffix + ".npy")
        if os.path.isfile(path):
            array = np.load(path)
            out[key] = array if rows is None else array[rows]
    return out


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
