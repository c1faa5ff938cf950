"""The original solution's image-level augmentation, re-implemented on NumPy/OpenCV.

The original used imgaug: Fliplr(0.5), then with p=0.8 one of Grayscale(alpha 0-1),
AddToHueAndSaturation(-20..20), Add(-20..20), Multiply(0.5..1.5), GaussianBlur(sigma 0-2),
ContrastNormalization(0.5..2), Sharpen, Emboss (imgaug's default ranges). imgaug pins
numpy < 1.24 and breaks on newer NumPy, so every backbone environment gets the same ops from
here instead. Each image's draws come from its own RandomState seeded by (seed, image key,
copy number): the result depends on neither batch order nor sharding.
"""
from __future__ import absolute_import, division, print_function

import numpy as np

from shared.storage import stable_seed

_IDENTITY = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float32)


def _clip(image):
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _grayscale(image, rng):
    alpha = rng.uniform(0.0, 1.0)
    gray = image.astype(np.float32).dot(np.array([0.299, 0.587, 0.114], dtype=np.float32))
    return _clip((1 - alpha) * image + alpha * gray[..., None])


def _hue_saturation(image, rng):
    import cv2

    value = rng.randint(-20, 21)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + int(round(value * 180.0 / 255.0))) % 180  # OpenCV hue: 0-179
    hsv[..., 1] = np.clip(hsv[..., 1] + value, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def _add(image, rng):
    return _clip(image.astype(np.float32) + rng.randint(-20, 21))


def _multiply(image, rng):
    return _clip(image.astype(np.float32) * rng.uniform(0.5, 1.5))


def _gaussian_blur(image, rng):
    import cv2

    sigma = rng.uniform(0.0, 2.0)
    if sigma < 0.01:
        return image.copy()
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)


def _contrast(image, rng):
    return _clip(128 + rng.uniform(0.5, 2.0) * (image.astype(np.float32) - 128))


def _convolve(image, kernel):
    import cv2

    return _clip(cv2.filter2D(image.astype(np.float32), -1, kernel))


def _sharpen(image, rng):
    alpha, lightness = rng.uniform(0.0, 0.2), rng.uniform(0.8, 1.2)
    effect = np.array([[-1, -1, -1], [-1, 8 + lightness, -1], [-1, -1, -1]], dtype=np.float32)
    return _convolve(image, (1 - alpha) * _IDENTITY + alpha * effect)


def _emboss(image, rng):
    alpha, strength = rng.uniform(0.0, 1.0), rng.uniform(0.25, 1.0)
    effect = np.array([[-1 - strength, -strength, 0],
                       [-strength, 1, strength],
                       [0, strength, 1 + strength]], dtype=np.float32)
    return _convolve(image, (1 - alpha) * _IDENTITY + alpha * effect)


OPERATIONS = (_grayscale, _hue_saturation, _add, _multiply, _gaussian_blur, _contrast,
              _sharpen, _emboss)


def augment(image, seed, key, copy):
    """Copy number `copy` of the augmented versions of `image` (HxWx3 RGB uint8)."""
    rng = np.random.RandomState(stable_seed("augment", seed, key, copy))
    out = image[:, ::-1] if rng.uniform() < 0.5 else image
    if rng.uniform() < 0.8:
        out = OPERATIONS[rng.randint(len(OPERATIONS))](np.ascontiguousarray(out), rng)
    return np.ascontiguousarray(out)
