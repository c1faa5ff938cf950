"""The alignment rules on constructed cases: 68 -> 5 points, upright check, face choice, blur
retry, crops. Pure numpy/OpenCV (services/align/rules.py), so they run in the tasks venv."""
import numpy as np
import pytest

from services.align import rules
from shared.faces.template import ARCFACE_112, CROP_SIZES, template_points


def _similarity(scale, degrees, shift):
    angle = np.deg2rad(degrees)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([rotation, np.asarray(shift, float)[:, None]])


def _moved(points, matrix):
    return np.asarray(points).dot(matrix[:, :2].T) + matrix[:, 2]


def test_five_from_68_is_the_originals_mapping():
    points68 = np.stack([np.arange(68) * 2.0, np.arange(68) * 3.0 + 1], axis=1)
    five = rules.five_from_68(points68)
    assert np.allclose(five[0], [np.mean(np.arange(36, 42)) * 2, np.mean(np.arange(36, 42)) * 3 + 1])
    assert np.allclose(five[1], [np.mean(np.arange(42, 48)) * 2, np.mean(np.arange(42, 48)) * 3 + 1])
    assert np.allclose(five[2:], [[66, 100], [96, 145], [108, 163]])  # points 33, 48, 54
    with pytest.raises(ValueError, match="68"):
        rules.five_from_68(points68[:5])


def test_upright_check():
    assert rules.is_upright(ARCFACE_112)
    assert rules.is_upright(_moved(ARCFACE_112, _similarity(1.5, 30.0, (10, 10))))
    assert not rules.is_upright(_moved(ARCFACE_112, _similarity(1.0, 180.0, (112, 112))))
    assert not rules.is_upright(_moved(ARCFACE_112, _similarity(1.0, 90.0, (112, 0))))
    nose_above_eye = ARCFACE_112.copy()
    nose_above_eye[2, 1] = 50.0  # between the eyes' heights: not below both eyes
    assert not rules.is_upright(nose_above_eye)


def _face(x1, y1, size, score, points=ARCFACE_112):
    return rules.Face(np.array([x1, y1, x1 + size, y1 + size], float), score, np.asarray(points, float))


def test_pick_face_takes_the_largest_then_the_most_confident():
    small_sure, big_unsure = _face(0, 0, 40, 0.99), _face(50, 50, 90, 0.7)
    assert rules.pick_face([small_sure, big_unsure]) is big_unsure
    twin_low, twin_high = _face(0, 0, 60, 0.8), _face(70, 0, 60, 0.9)
    assert rules.pick_face([twin_low, twin_high]) is twin_high


class _SmoothOnly(object):
    """Finds a face only in images without fine detail (high-frequency energy below `limit`),
    like a detector that a noisy texture defeats until the retry blurs it away."""

    def __init__(self, name, points, limit=20.0):
        self.name, self.points, self.limit, self.calls = name, points, limit, []

    def detect(self, image):
        detail = np.abs(np.diff(image.astype(np.float64), axis=1)).mean()
        self.calls.append(detail)
        return [_face(10, 10, 80, 0.9, self.points)] if detail < self.limit else []


class _Always(object):
    def __init__(self, name, points):
        self.name, self.points = name, points

    def detect(self, image):
        return [_face(10, 10, 80, 0.9, self.points)]


def _noisy(seed=0):
    return np.random.RandomState(seed).randint(0, 256, (112, 112, 3)).astype(np.uint8)


def test_blur_retry_finds_a_face_after_blurring():
    detector = _SmoothOnly("smooth", ARCFACE_112)
    found = rules.find_face(_noisy(), [detector])
    assert found is not None and found.detector == "smooth"
    assert 0 < found.sigma <= 3.0 and found.sigma in rules.BLUR_SIGMAS
    assert len(detector.calls) > 1 and detector.calls[0] >= detector.limit  # sigma 0 was tried first
    assert len(rules.BLUR_SIGMAS) == 11 and rules.BLUR_SIGMAS[0] == 0 and rules.BLUR_SIGMAS[-1] == 3.0


def test_blurred_hits_must_be_upright_but_the_first_pass_need_not():
    upside_down = _moved(ARCFACE_112, _similarity(1.0, 180.0, (112, 112)))
    assert rules.find_face(_noisy(), [_SmoothOnly("smooth", upside_down)]) is None
    first_pass = rules.find_face(_noisy(), [_Always("always", upside_down)])
    assert first_pass.sigma == 0.0 and first_pass.detector == "always"
    assert rules.find_face(_noisy(), [_SmoothOnly("smooth", ARCFACE_112)], sigmas=(0.0,)) is None


def test_a_fallback_on_the_image_beats_the_first_detector_on_a_blurred_copy():
    found = rules.find_face(_noisy(), [_SmoothOnly("first", ARCFACE_112), _Always("fallback", ARCFACE_112)])
    assert (found.detector, found.sigma, found.count) == ("fallback", 0.0, 1)


def test_a_face_warped_by_a_known_similarity_is_recovered_at_every_size():
    import cv2

    crop = np.zeros((112, 112, 3), np.uint8)
    for x, y in ARCFACE_112:
        cv2.circle(crop, (int(round(x)), int(round(y))), 3, (255, 255, 255), -1)
    matrix = _similarity(1.3, 25.0, (70.0, 20.0))
    canvas = cv2.warpAffine(crop, matrix, (260, 260))
    crops = rules.crops_for(canvas, _moved(ARCFACE_112, matrix), sorted(CROP_SIZES))
    for name, aligned in crops.items():
        width, height = CROP_SIZES[name]
        assert aligned.shape == (height, width, 3)
        for x, y in template_points(name):
            assert aligned[int(round(y)), int(round(x))].max() > 100, (name, x, y)
    resized = rules.plain_resizes(canvas, ["96x112", "224x224"])
    assert resized["96x112"].shape == (112, 96, 3) and resized["224x224"].shape == (224, 224, 3)
    assert np.array_equal(resized["224x224"], cv2.resize(canvas, (224, 224), interpolation=cv2.INTER_CUBIC))
