import numpy as np
import pytest

from shared.bench.verification import cosine_scores, kfold_accuracy, read_pairs


def test_read_pairs_both_formats_and_header(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("10\t300\nAnn\t1\t3\nAnn\t2\tBob\t11\n")
    assert read_pairs(str(path)) == [("Ann/Ann_0001.jpg", "Ann/Ann_0003.jpg", True),
                                     ("Ann/Ann_0002.jpg", "Bob/Bob_0011.jpg", False)]
    path.write_text("Ann 1 2 3 4 5\n")
    with pytest.raises(ValueError, match="line 1"):
        read_pairs(str(path))


def test_kfold_accuracy_separable_and_random():
    same = np.array([True, False] * 50)
    assert kfold_accuracy(np.where(same, 0.8, 0.1), same) == (1.0, 0.0)
    mean, _ = kfold_accuracy(np.random.RandomState(0).rand(100), same)
    assert mean < 0.75


def test_kfold_threshold_is_tuned_on_other_folds_only():
    # Fold 0 alone is inverted; its threshold comes from the other folds, so it scores 0.
    same = np.array([True, False] * 50)
    scores = np.where(same, 0.9, 0.1)
    scores[:10] = np.where(same[:10], 0.1, 0.9)
    mean, std = kfold_accuracy(scores, same)
    assert mean == pytest.approx(0.9) and std > 0


def test_cosine_scores():
    embeddings = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    scores = cosine_scores(embeddings, ["a", "b", "c"], [("a", "b", True), ("a", "c", False)])
    assert np.allclose(scores, [1.0, 0.0])
