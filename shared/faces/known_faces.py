"""Known-answer cases for the detectors: an aligned crop pasted onto a larger canvas by a known
similarity transform, and the error of an alignment against the known landmarks.

Used by the align benchmark (shared/bench/align.py) and the align service tests. Needs only numpy and
OpenCV.
"""
import numpy as np

from shared.faces.template import ARCFACE_112, estimate_similarity

# Where the landmarks of the LFW dev crops (../shared/data/lfw-112x112-dev) actually lie: 8 px
# left of the 112x112 ArcFace template, i.e. on the 96x112 template inside a 112-wide image.
# Measured with this service's MTCNN on 100 crops: mean x offset -8.0 (eyes -8.0/-7.4, nose
# -9.2, mouth -8.8/-6.8), y offset within 1.5 px.
LFW_DEV_POINTS = ARCFACE_112 - np.array([8.0, 0.0])

CANVAS = 250
SCALES = (0.6, 1.6)
DEGREES = 30.0
BACKGROUND_BLUR = 15.0  # sigma of the blurred, reflected surroundings: no face survives it


def transform(points, matrix):
    return np.asarray(points, dtype=np.float64).dot(np.asarray(matrix)[:, :2].T) + np.asarray(matrix)[:, 2]


def placement(rng, crop_size=112, canvas=CANVAS, scales=SCALES, degrees=DEGREES):
    """A random similarity (2x3, crop -> canvas): scale, rotation about the crop centre, and an
    offset that keeps the whole rotated crop inside the canvas."""
    scale = rng.uniform(*scales)
    angle = np.deg2rad(rng.uniform(-degrees, degrees))
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([crop_size / 2.0, crop_size / 2.0])
    corners = (np.array([[0, 0], [crop_size, 0], [0, crop_size], [crop_size, crop_size]]) - centre).dot(rotation.T)
    room = np.maximum(canvas / 2.0 - np.abs(corners).max(axis=0), 0.0)
    target = canvas / 2.0 + np.array([rng.uniform(-room[0], room[0]), rng.uniform(-room[1], room[1])])
    return np.hstack([rotation, (target - rotation.dot(centre))[:, None]])


def paste(crop, matrix, canvas=CANVAS):
    """The crop warped onto a canvas whose surroundings are its own reflection, blurred (so the
    mirrored copies of the face are not sharp faces themselves)."""
    import cv2

    size = (canvas, canvas)
    sharp = cv2.warpAffine(crop, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    background = cv2.GaussianBlur(sharp, (0, 0), BACKGROUND_BLUR)
    inside = cv2.warpAffine(np.full(crop.shape[:2], 255, np.uint8), matrix, size, flags=cv2.INTER_NEAREST)
    return np.where(inside[..., None] > 0, sharp, background)


def template_error(found_points, true_points):
    """Mean distance (px at 112) between the template and where the alignment estimated from
    `found_points` puts the true landmarks: 0 for a perfect alignment."""
    matrix = estimate_similarity(found_points, ARCFACE_112)
    return float(np.linalg.norm(transform(true_points, matrix) - ARCFACE_112, axis=1).mean())


def write_cases(source, names, folder, seed):
    """Paste each crop source/<name> onto a canvas at folder/<name>; returns {name: 2x3 matrix}.
    One random stream per seed, drawn in list order, so a seed gives the same cases."""
    import os

    from shared.faces.images import CROP_JPEG_QUALITY, load_rgb, save_rgb

    rng = np.random.RandomState(seed)
    matrices = {}
    for name in names:
        matrix = placement(rng)
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            save_rgb(path, paste(load_rgb(os.path.join(source, name)), matrix), quality=CROP_JPEG_QUALITY)
        matrices[name] = matrix
    return matrices


def read_faces(path):
    """{image: (status, detector, points 5x2 or None, faces found)} from an align S_faces.csv."""
    import csv
    import io

    found = {}
    with io.open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            points = None
            if row["status"] != "none":
                points = np.array([[float(row["x%d" % k]), float(row["y%d" % k])] for k in range(1, 6)])
            found[row["image"]] = (row["status"], row["detector"], points, int(row["faces"]))
    return found


def read_scores(path):
    """{image: detection score (0.0 where no face was found)} from an align S_faces.csv."""
    import csv
    import io

    with io.open(path, encoding="utf-8") as f:
        return dict((r["image"], float(r["score"]) if r["status"] != "none" else 0.0) for r in csv.DictReader(f))


def cosines(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def group_photo(crops, rng, tile_sizes=(140, 260), degrees=10.0):
    """A group photo of aligned 112 LFW crops: each pasted (paste) on a tile of its own at a
    random size, tilt and place, the tiles laid out on a grid over a blurred noise background.
    Returns (photo, [5x2 true landmarks of each crop in the photo], in `crops` order)."""
    import cv2

    columns = int(np.ceil(np.sqrt(len(crops))))
    cell = tile_sizes[1] + 24
    rows = int(np.ceil(len(crops) / float(columns)))
    noise = rng.randint(60, 200, (rows * cell, columns * cell, 3)).astype(np.uint8)
    photo = cv2.GaussianBlur(noise, (0, 0), 25)
    truth = []
    for index, crop in enumerate(crops):
        tile = int(rng.uniform(*tile_sizes))
        matrix = placement(rng, canvas=tile, scales=(0.55 * tile / 112.0, 0.8 * tile / 112.0), degrees=degrees)
        x = (index % columns) * cell + rng.randint(0, cell - tile + 1)
        y = (index // columns) * cell + rng.randint(0, cell - tile + 1)
        photo[y:y + tile, x:x + tile] = paste(crop, matrix, canvas=tile)
        truth.append(transform(LFW_DEV_POINTS, matrix) + np.array([x, y], dtype=np.float64))
    return photo, truth
