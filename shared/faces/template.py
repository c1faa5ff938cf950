"""The ArcFace 5-point template, its scaled crop sizes, and similarity alignment.

The original solution warped every face onto InsightFace's 112x112 template and derived the
other crops from the same geometry: 96x112 is the template shifted 8 px left, and the square
crops (150, 160, 224) are the 112 template scaled by size/112.
"""
from __future__ import absolute_import, division, print_function

import numpy as np

# (x, y) of left eye, right eye, nose tip, left and right mouth corner in a 112x112 crop.
ARCFACE_112 = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
], dtype=np.float64)

CROP_SIZES = {  # name -> (width, height)
    "96x112": (96, 112),
    "112x112": (112, 112),
    "150x150": (150, 150),
    "160x160": (160, 160),
    "224x224": (224, 224),
}


def crop_size(name):
    if name not in CROP_SIZES:
        raise ValueError("unknown crop '%s' (known: %s)" % (name, ", ".join(sorted(CROP_SIZES))))
    return CROP_SIZES[name]


def template_points(name):
    """The five template points for crop `name`."""
    width, height = crop_size(name)
    if name == "96x112":
        return ARCFACE_112 - np.array([8.0, 0.0])
    return ARCFACE_112 * (width / 112.0)


def estimate_similarity(src, dst):
    """Least-squares similarity transform (rotation, uniform scale, shift) mapping src to dst.

    Umeyama's closed form without reflection; returns the 2x3 matrix cv2.warpAffine takes.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T.dot(src_c) / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1, 1] = -1.0
    rotation = u.dot(d).dot(vt)
    scale = np.trace(np.diag(s).dot(d)) / src_c.var(axis=0).sum()
    shift = dst_mean - scale * rotation.dot(src_mean)
    return np.hstack([scale * rotation, shift[:, None]])


def align(image, landmarks, name="112x112"):
    """Warp `image` so that its five `landmarks` land on the template of crop `name`."""
    import cv2  # only the alignment paths need OpenCV

    width, height = crop_size(name)
    matrix = estimate_similarity(landmarks, template_points(name))
    return cv2.warpAffine(image, matrix, (width, height), borderValue=0.0)


def derive_from_112(crop112, name):
    """Another crop size from a face already aligned to the 112x112 template (no detection)."""
    import cv2

    if crop112.shape[:2] != (112, 112):
        raise ValueError("a pre-aligned crop must be 112x112, got %dx%d"
                         % (crop112.shape[1], crop112.shape[0]))
    width, height = crop_size(name)
    if name == "112x112":
        return crop112.copy()
    if name == "96x112":
        return crop112[:, 8:104].copy()
    return cv2.resize(crop112, (width, height), interpolation=cv2.INTER_CUBIC)


def correction(points, limit=1.0):
    """The similarity (2x3) that moves crops whose five landmarks were found at `points` (N x 5 x 2,
    one row per crop, in crop pixels) onto the 112x112 template, fitted on each landmark's
    median over the crops, so that a few misdetected or mirrored faces do not move it. None
    when it would move no landmark by more than `limit` px: the crops are on the template."""
    median = np.median(np.asarray(points, dtype=np.float64), axis=0)
    matrix = estimate_similarity(median, ARCFACE_112)
    moved = median.dot(matrix[:, :2].T) + matrix[:, 2] - median
    return matrix if np.linalg.norm(moved, axis=1).max() > limit else None


def rewarp(crop112, matrix):
    """A 112x112 crop moved by `matrix` (correction's); the edge pixels fill what comes in from outside."""
    import cv2

    return cv2.warpAffine(crop112, np.asarray(matrix, dtype=np.float64), (112, 112), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
