"""Upside-down crops found without labels, for pre-aligned input (pipeline/align.py).

Some pre-aligned crops are rotated 180 degrees (the benchmark damages ~2% of them that way);
a backbone embeds those as junk. The train crops themselves can teach a detector: they are
nearly all upright, and their 180-degree rotations are upside down by construction. So a
linear model on coarse gray pixels, fitted on train crops (label 0) against the same crops
rotated (label 1), scores each crop; those with p > THRESHOLD are rotated back before anything
embeds them. The ~2% upside-down train crops are label noise the fit tolerates.

numpy and Pillow only (the tasks venv has no sklearn/scipy): the logistic regression is fitted
by Newton's method, which on this strictly convex objective is deterministic and exact.
"""
import numpy as np
from PIL import Image

from shared.faces.crops import load_template_crop

SIDE = 24  # the feature grid: coarse enough to drop identity, fine enough for eyes-above-mouth
C = 0.01  # inverse L2 strength, as sklearn's C: the setting measured on four benchmark draws
THRESHOLD = 0.5  # p(upside down) above which a crop is rotated back
TOLERANCE = 1e-8  # Newton stops when no weight moves more than this
MAX_STEPS = 100  # Newton needs ~10 from zero; hitting this means broken input (NaN pixels, ...)


def crop_features(rgb):
    """One crop's feature row: gray, area-resized to SIDE x SIDE, standardised (minus its mean,
    over its std), so brightness and contrast (grayscale, blur, low-res damage) do not decide."""
    gray = Image.fromarray(np.asarray(rgb, dtype=np.uint8)).convert("L").resize((SIDE, SIDE), Image.BOX)
    pixels = np.asarray(gray, dtype=np.float64).ravel()
    return (pixels - pixels.mean()) / (pixels.std() + 1e-6)


def features(paths):
    """(len(paths), SIDE*SIDE) feature rows of 112x112 template crops, read one at a time so
    memory stays at the features' size however many crops there are."""
    rows = np.empty((len(paths), SIDE * SIDE))
    for row, path in enumerate(paths):
        rows[row] = crop_features(load_template_crop(path))
    return rows


def rotated(rows):
    """The feature rows of the same crops turned 180 degrees. Standardisation is unchanged by a
    rotation, so turning the rows equals featurising the turned crops (up to resize rounding)."""
    return rows.reshape(-1, SIDE, SIDE)[:, ::-1, ::-1].reshape(len(rows), -1)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


def _objective(design, y, weights, penalty):
    z = design.dot(weights)
    return np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * weights ** 2)


def fit_logistic(x, y, c=C):
    """Weights (bias last) minimising the summed log-loss + ||w||^2 / (2c), the bias unpenalised
    (sklearn's lbfgs objective), by Newton's method with step halving. The objective is strictly
    convex, so from zero this reaches the unique minimum whatever the row order."""
    design = np.hstack([x, np.ones((len(x), 1))])
    penalty = np.full(design.shape[1], 1.0 / c)
    penalty[-1] = 0.0
    weights = np.zeros(design.shape[1])
    loss = _objective(design, y, weights, penalty)
    for _ in range(MAX_STEPS):
        p = _sigmoid(design.dot(weights))
        gradient = design.T.dot(p - y) + penalty * weights
        hessian = (design * (p * (1.0 - p))[:, None]).T.dot(design) + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while True:  # halve until the loss does not rise (pure Newton can overshoot far from the minimum)
            trial = _objective(design, y, weights - scale * step, penalty)
            if trial <= loss or scale < 1e-10:
                break
            scale *= 0.5
        weights, loss = weights - scale * step, trial
        if np.max(np.abs(scale * step)) < TOLERANCE:
            return weights
    raise ValueError("the orientation fit did not converge in %d Newton steps (loss %r): are the "
                     "features finite?" % (MAX_STEPS, loss))


def fit(train_rows):
    """The self-supervised detector: train crops (upright, 0) against their rotations (1)."""
    if len(train_rows) == 0:
        raise ValueError("cannot fit the orientation detector: no train crops")
    x = np.vstack([train_rows, rotated(train_rows)])
    y = np.concatenate([np.zeros(len(train_rows)), np.ones(len(train_rows))])
    return fit_logistic(x, y)


def upside_down(weights, rows):
    """p(upside down) of each feature row."""
    return _sigmoid(rows.dot(weights[:-1]) + weights[-1])


def eyes_above_mouth(points):
    """Whether 5 landmarks (eyes, nose, mouth corners; image rows grow downward) are an upright face's."""
    return points is not None and points[:2, 1].mean() < points[3:, 1].mean()


def detector_vetoes(as_found, turned):
    """Whether the align service's face detector speaks against a turn this linear detector asks
    for: it finds an upright face (eyes above the mouth) in the crop as found, and none as
    confident in the crop turned. Each argument: (5x2 landmarks or None, detection score). Where
    the detector finds no upright face either way, the turn stands. The linear model errs on
    upright faces with p(upside down) of 0.5-0.8 (34 of 553 turns on four benchmark draws,
    docs/accuracy.md), and a turned upright face embeds as junk that matches the other junk."""
    (found_points, found_score), (turned_points, turned_score) = as_found, turned
    return eyes_above_mouth(found_points) and (not eyes_above_mouth(turned_points) or found_score > turned_score)
