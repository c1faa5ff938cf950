"""The registry's input preprocessing of a batch of crops, as every backbone service applies it.
Python-2.7 compatible (the Caffe service).
"""
from __future__ import absolute_import, division, print_function

import numpy as np


def to_batch(images, entry, layout="NCHW"):
    """Stack crops and apply the registry's preprocessing: colour order, scale/mean/std or
    per-image prewhitening. Returns float32 in `layout` (NCHW or NHWC)."""
    spec = entry["input"]
    batch = np.stack(images).astype(np.float32)
    if spec["color"] == "BGR":
        batch = batch[..., ::-1]
    if spec.get("whiten"):
        flat = batch.reshape(len(batch), -1)
        mean = flat.mean(axis=1)
        std = np.maximum(flat.std(axis=1), 1.0 / np.sqrt(flat.shape[1]))
        batch = (batch - mean[:, None, None, None]) / std[:, None, None, None]
    else:
        mean = np.asarray(spec["mean"], dtype=np.float32)
        std = np.asarray(spec["std"], dtype=np.float32)
        batch = (batch * np.float32(spec["scale"]) - mean) / std
    if layout == "NCHW":
        batch = batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32)
