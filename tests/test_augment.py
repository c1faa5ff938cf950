import numpy as np

from shared.faces.augment import OPERATIONS, augment


def _face():
    return np.random.RandomState(3).randint(0, 256, (112, 112, 3)).astype(np.uint8)


def test_same_seed_key_copy_gives_the_same_image():
    assert np.array_equal(augment(_face(), 7, "a.jpg", 3), augment(_face(), 7, "a.jpg", 3))


def test_copies_seeds_and_images_differ():
    base = augment(_face(), 7, "a.jpg", 0)
    others = [augment(_face(), 7, "a.jpg", c) for c in range(1, 6)] + [augment(_face(), 8, "a.jpg", 0)]
    assert sum(np.array_equal(base, o) for o in others) <= 1  # a plain no-op copy can repeat


def test_shape_and_dtype_kept_and_most_copies_change_the_image():
    face = _face()
    copies = [augment(face, 1, "x", c) for c in range(40)]
    assert all(c.shape == face.shape and c.dtype == np.uint8 for c in copies)
    changed = sum(not np.array_equal(c, face) for c in copies)
    assert changed >= 30  # flip 0.5 or op 0.8: only ~10% untouched


def test_every_operation_runs_and_changes_a_textured_face():
    face = _face()
    for op in OPERATIONS:
        rng = np.random.RandomState(11)
        out = op(face, rng)
        assert out.shape == face.shape and out.dtype == np.uint8, op.__name__
