import numpy as np
import pytest

from shared.faces.template import (ARCFACE_112, CROP_SIZES, align, derive_from_112, estimate_similarity,
                                   template_points)


def _similarity(scale, degrees, shift):
    angle = np.deg2rad(degrees)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([rotation, np.asarray(shift, float)[:, None]])


def test_estimate_recovers_a_known_similarity():
    matrix = _similarity(1.7, 23.0, (40.0, -12.0))
    moved = ARCFACE_112.dot(matrix[:, :2].T) + matrix[:, 2]
    assert np.allclose(estimate_similarity(ARCFACE_112, moved), matrix, atol=1e-9)
    inverse = estimate_similarity(moved, ARCFACE_112)
    back = moved.dot(inverse[:, :2].T) + inverse[:, 2]
    assert np.allclose(back, ARCFACE_112, atol=1e-9)


def test_template_sizes():
    assert np.allclose(template_points("112x112"), ARCFACE_112)
    assert np.allclose(template_points("96x112")[:, 0], ARCFACE_112[:, 0] - 8)
    assert np.allclose(template_points("224x224"), ARCFACE_112 * 2)
    assert np.allclose(template_points("150x150"), ARCFACE_112 * 150 / 112)
    with pytest.raises(ValueError, match="unknown crop"):
        template_points("100x100")


def test_warped_face_is_aligned_back():
    # Paint a dot at each template point of a 112 crop, warp it by a known similarity into a
    # bigger canvas, then align the canvas back with the moved landmarks: dots return home.
    import cv2

    crop = np.zeros((112, 112, 3), np.uint8)
    for x, y in ARCFACE_112:
        cv2.circle(crop, (int(round(x)), int(round(y))), 3, (255, 255, 255), -1)
    matrix = _similarity(1.4, -17.0, (60.0, 35.0))
    canvas = cv2.warpAffine(crop, matrix, (260, 260))
    moved = ARCFACE_112.dot(matrix[:, :2].T) + matrix[:, 2]
    for name in ("112x112", "224x224", "96x112"):
        aligned = align(canvas, moved, name)
        width, height = CROP_SIZES[name]
        assert aligned.shape == (height, width, 3)
        for x, y in template_points(name):
            assert aligned[int(round(y)), int(round(x))].max() > 100


def test_derive_from_112():
    crop = np.random.RandomState(0).randint(0, 256, (112, 112, 3)).astype(np.uint8)
    for name, (width, height) in CROP_SIZES.items():
        assert derive_from_112(crop, name).shape == (height, width, 3)
    assert np.array_equal(derive_from_112(crop, "96x112"), crop[:, 8:104])
    with pytest.raises(ValueError, match="must be 112x112"):
        derive_from_112(crop[:100], "150x150")
