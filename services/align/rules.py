"""The original solution's alignment rules, independent of any detector framework.

A detector here is anything with a `name` and `detect(rgb) -> [Face]`. The rules: try every
detector on the image; if none finds a face, retry on Gaussian-blurred copies (sigma in
linspace(0, 3, 11), the original's schedule) and keep a blurred hit only if its landmarks are
upright; with several faces take the largest; with none, the caller lists the image and writes
a plain bicubic resize. Needs only numpy and OpenCV, so the tests run it in any environment.
"""
import collections

import numpy as np

from shared.faces.template import CROP_SIZES, align

BLUR_SIGMAS = tuple(np.linspace(0.0, 3.0, 11))  # sigma 0 is the image itself

# Five points from the 68-point (iBUG 300-W) layout, as the original took them from
# face-alignment: the means of the two eye contours, point 33 and the two mouth corners.
LEFT_EYE_68, RIGHT_EYE_68 = slice(36, 42), slice(42, 48)
NOSE_68, MOUTH_LEFT_68, MOUTH_RIGHT_68 = 33, 48, 54

# box: x1, y1, x2, y2 in image pixels; score: the detector's confidence (its own scale);
# points: 5x2 (x, y) of left eye, right eye, nose, left and right mouth corner (image left/right).
Face = collections.namedtuple("Face", "box score points")

Found = collections.namedtuple("Found", "face detector sigma count")

# The five landmarks as CSV columns, in Face.points order: x1,y1,...,x5,y5.
POINT_COLUMNS = ",".join("%s%d" % (axis, k) for k in range(1, 6) for axis in "xy")


def five_from_68(points68):
    """The original's 68 -> 5 landmark mapping."""
    points68 = np.asarray(points68, dtype=np.float64)
    if points68.shape != (68, 2):
        raise ValueError("expected 68 (x, y) landmarks, got shape %s" % (points68.shape,))
    return np.array([points68[LEFT_EYE_68].mean(axis=0), points68[RIGHT_EYE_68].mean(axis=0),
                     points68[NOSE_68], points68[MOUTH_LEFT_68], points68[MOUTH_RIGHT_68]])


def is_upright(points):
    """Both eyes above the nose, the nose above both mouth corners (image y grows downwards)."""
    points = np.asarray(points, dtype=np.float64)
    eyes_low = max(points[0, 1], points[1, 1])
    mouth_high = min(points[3, 1], points[4, 1])
    return eyes_low < points[2, 1] < mouth_high


def box_area(face):
    x1, y1, x2, y2 = face.box
    return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def pick_face(faces):
    """The largest face; ties go to the more confident one.

    Largest rather than most confident: in a face-identification crop the person to identify
    fills the frame and bystanders are smaller, and the detectors' scores are on different
    scales, so the area is the one rule that means the same for every detector of the chain."""
    return max(faces, key=lambda face: (box_area(face), face.score))


def blurred(image, sigma):
    import cv2

    if sigma == 0:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigma)


def find_face(image, detectors, sigmas=BLUR_SIGMAS):
    """The first face the chain finds, or None.

    Each blur level is tried with every detector before the next level, so an unblurred hit
    by a fallback detector wins over a blurred hit by the first one. Landmarks found on a
    blurred copy apply unchanged to the original image (blurring moves nothing)."""
    for sigma in sigmas:
        view = blurred(image, sigma)
        for detector in detectors:
            faces = detector.detect(view)
            if sigma > 0:
                faces = [face for face in faces if is_upright(face.points)]
            if faces:
                return Found(pick_face(faces), detector.name, float(sigma), len(faces))
    return None


def crops_for(image, points, names):
    """{crop name: aligned crop} for a face with five landmarks."""
    return dict((name, align(image, points, name)) for name in names)


def plain_resizes(image, names):
    """{crop name: the whole image resized (bicubic)}: the original's crop for no-face images."""
    import cv2

    return dict((name, cv2.resize(image, CROP_SIZES[name], interpolation=cv2.INTER_CUBIC))
                for name in names)
