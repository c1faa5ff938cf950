"""A shipped graph fixed at batch 1, rewritten by its service to take any batch (FaceNet's frozen
graph of the package index, SFace's ONNX file), is checked once against the graph as shipped:
the first batch it embeds, run again one image at a time through the shipped graph, must agree
image by image (cosine >= MIN_COSINE), else the run stops with the figures. The embed meta
records them (the service's versions()['batch_rewrite']).
"""
import numpy as np

from shared.models.engines import cosines
from shared.schema import EXIT_BACKEND, ContractError

MIN_COSINE = 0.99999


def check_batch_rewrite(found, batch, shipped_one, what):
    """`found`: the rewritten graph's outputs for `batch`; `shipped_one(x)`: the shipped graph on a
    batch of one. The figures, or ContractError when an image disagrees."""
    shipped = np.concatenate([shipped_one(batch[i:i + 1]) for i in range(len(batch))])
    agree = cosines(shipped, found)
    figures = {"images": len(batch), "min_cosine": float(agree.min()), "threshold": MIN_COSINE}
    if agree.min() < MIN_COSINE:
        raise ContractError(EXIT_BACKEND, "%s: the graph rewritten to take any batch disagrees with the shipped "
                            "batch-1 graph (cosine %.7f over %d images); not used" % (what, agree.min(), len(batch)))
    return figures
