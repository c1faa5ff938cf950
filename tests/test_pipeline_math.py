"""Steps 2 and 4-7 arithmetic on hand-made inputs: folds, CLR, rules, ensemble, metrics, submission."""
import os

import numpy as np
import pytest

from shared.method.clr import exp_range
from shared.method.ensemble import (UNKNOWN, combine, confident_labels, distance_weights, ensemble_weights,
                                    keep_unknowns, min_distance, pseudo_labels)
from shared.method.folds import fold_column, make_folds, read_folds, write_folds
from shared.method.metrics import map_at_5, reciprocal_ranks, scores, top_columns, top_k
from shared.method.submission import read_submission, write_submission
from shared.models import registry as registry_mod
from shared.running.stages import Stage

RULES = {"pseudo_distance": 0.9, "pseudo_probability": 0.65, "unknown_distance": 1.35, "unknown_probability": 0.1}


def test_clr_exp_range_against_hand_computed_values():
    # base 1e-7, max 1e-3, step 10, gamma 0.99: a triangle 0 -> 10 -> 20 whose height decays
    assert exp_range(0, 1e-7, 1e-3, 10, 0.99) == pytest.approx(1e-7)
    assert exp_range(5, 1e-7, 1e-3, 10, 0.99) == pytest.approx(1e-7 + (1e-3 - 1e-7) * 0.5 * 0.99 ** 5)
    assert exp_range(10, 1e-7, 1e-3, 10, 0.99) == pytest.approx(1e-7 + (1e-3 - 1e-7) * 0.99 ** 10)
    assert exp_range(15, 1e-7, 1e-3, 10, 0.99) == pytest.approx(1e-7 + (1e-3 - 1e-7) * 0.5 * 0.99 ** 15)
    assert exp_range(20, 1e-7, 1e-3, 10, 0.99) == pytest.approx(1e-7)
    assert exp_range(30, 1e-7, 1e-3, 10, 0.99) == pytest.approx(1e-7 + (1e-3 - 1e-7) * 0.99 ** 30)
    # gamma 1 is the plain triangle
    assert exp_range(3, 0.0, 1.0, 4, 1.0) == pytest.approx(0.75)


def test_folds_are_seeded_partitions():
    labels = np.repeat(np.arange(20), 3)
    columns = make_folds(["i%d" % i for i in range(60)], labels, seed=5, columns=4)
    again = make_folds(["i%d" % i for i in range(60)], labels, seed=5, columns=4)
    assert sorted(columns) == ["rt0", "rt1", "rt2", "rt3"]
    for name, folds in columns.items():
        assert np.array_equal(folds, again[name])
        assert sorted(np.bincount(folds)) == [12] * 5
    assert not np.array_equal(columns["rt0"], columns["rt1"])
    assert not np.array_equal(columns["rt0"], make_folds(["x"] * 60, labels, seed=6, columns=1)["rt0"])


def test_stratified_folds_spread_each_identity():
    labels = np.repeat(np.arange(12), 5)
    folds = fold_column(labels, seed=1, column=0, stratified=True)
    for label in range(12):
        assert sorted(folds[labels == label]) == [0, 1, 2, 3, 4]


def test_folds_csv_round_trip(tmp_path):
    labels = [3, 1, 2, 1, 0, 2]
    columns = make_folds(list("abcdef"), labels, seed=1, columns=12)
    write_folds(str(tmp_path / "folds.csv"), list("abcdef"), labels, columns)
    images, read_labels, read_columns = read_folds(str(tmp_path / "folds.csv"))
    assert images == list("abcdef") and list(read_labels) == labels
    assert all(np.array_equal(read_columns[k], columns[k]) for k in columns)
    assert open(str(tmp_path / "folds.csv")).readline().strip().endswith("rt10,rt11")


def test_pseudo_and_unknown_rules():
    probs = np.array([[0.70, 0.30],    # close and confident -> pseudo-label 0
                      [0.70, 0.30],    # confident but too far -> nothing
                      [0.60, 0.40],    # close but not confident enough -> nothing
                      [0.05, 0.05],    # far and unsure -> unknown
                      [0.05, 0.05],    # unsure but not far enough -> nothing
                      [0.20, 0.80]])   # -> pseudo-label 1
    distance = np.array([0.5, 0.95, 0.2, 1.4, 1.35, 0.89])
    assert list(pseudo_labels(probs, distance, RULES)) == [0, -1, -1, UNKNOWN, -1, 1]
    assert list(pseudo_labels(probs, distance, RULES, class_ids=[7, 9])) == [7, -1, -1, UNKNOWN, -1, 9]
    step6 = np.array([[0.66, 0.34], [0.65, 0.35], [0.1, 0.9]])
    assert list(confident_labels(step6, 0.65, class_ids=[4, UNKNOWN])) == [4, -1, UNKNOWN]


def test_step7_set_keeps_the_step4_unknowns_unless_step6_names_them():
    step6 = np.array([-1, 3, UNKNOWN, -1, 5])
    step4 = np.array([UNKNOWN, UNKNOWN, UNKNOWN, 2, -1])
    assert list(keep_unknowns(step6, step4)) == [UNKNOWN, 3, UNKNOWN, -1, 5]


def test_min_distance_matches_brute_force():
    rng = np.random.RandomState(0)
    test = {"a": rng.randn(7, 4), "b": rng.randn(7, 3)}
    train = {"a": rng.randn(5, 4), "b": rng.randn(5, 3)}
    weights = {"a": 0.75, "b": 0.25}
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    brute = np.array([[sum(w * np.sum((unit(test[m])[i] - unit(train[m])[j]) ** 2) for m, w in weights.items())
                       for j in range(5)] for i in range(7)]).min(axis=1)
    assert np.allclose(min_distance(test, train, weights, block=3), brute)


def test_ensemble_weights_renormalise_over_present_models():
    registry = registry_mod.load()
    everything = registry.names(original=True)
    full, notes = ensemble_weights(registry, everything, "step4")
    assert full["model1_insightface"] == pytest.approx(0.7 * 0.75)
    assert full["vggface2_senet50_ft"] == pytest.approx(0.2 / 8)
    assert full["model6_facenet"] == pytest.approx(0.05)
    assert "model5_dlib" not in full and sum(full.values()) == pytest.approx(1)
    assert any("model5_dlib" in n for n in notes)
    final, _ = ensemble_weights(registry, everything, "step7")
    assert final["model4_insightface"] == pytest.approx(0.82 * 0.05)
    partial, notes = ensemble_weights(registry, ["model1_insightface", "model4_insightface", "model6_facenet"], "step4")
    assert partial["model1_insightface"] == pytest.approx(0.7 / 0.8 * 0.75 / 0.8)
    assert partial["model4_insightface"] == pytest.approx(0.7 / 0.8 * 0.05 / 0.8)
    assert partial["model6_facenet"] == pytest.approx(0.1 / 0.8)
    assert any("renormalised" in n for n in notes)
    with pytest.raises(ValueError, match="non-zero"):
        ensemble_weights(registry, ["model5_dlib"], "step4")
    assert distance_weights(registry, ["model4_insightface", "model2_insightface", "model6_facenet"]) == \
        pytest.approx({"model4_insightface": 1 / 3.0, "model2_insightface": 2 / 3.0})
    probs = {"x": np.array([[1.0, 0.0]]), "y": np.array([[0.0, 1.0]])}
    assert np.allclose(combine(probs, {"x": 0.25, "y": 0.75}), [[0.25, 0.75]])


def test_a_profile_sets_group_weights_that_still_sum_to_one():
    """`groups` of a profile over the registry's: the extra group (whose Caffe MobileFaceNet
    the registry weighs 0 within it) then shares the ensemble; sums other than 1 are refused."""
    registry = registry_mod.load()
    halves = {"step4": 0.5, "step6": 0.5, "step7": 0.5}
    none = {"step4": 0, "step6": 0, "step7": 0}
    changed = registry.with_groups({"insightface": halves, "extra": halves, "vggface2": none, "facenet": none})
    weights, _ = ensemble_weights(changed, ["model4_insightface", "caffe_mobilefacenet"], "step7")
    assert weights == pytest.approx({"model4_insightface": 0.5, "caffe_mobilefacenet": 0.5})
    assert registry.groups["extra"]["step7"] == 0  # the registry itself is unchanged
    with pytest.raises(ValueError, match="sum to 1.300000"):
        registry.with_groups({"extra": halves, "insightface": halves})
    with pytest.raises(ValueError, match="ensemble groups nope are not in"):
        registry.with_groups({"nope": halves})


def test_map_at_5_hand_computed():
    ranked = [[1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [9, 8, 7, 6, 1000]]
    assert map_at_5([1], ranked[:1]) == 1.0
    assert map_at_5([3], ranked[:1]) == pytest.approx(1 / 3.0)
    assert map_at_5([6], ranked[:1]) == 0.0
    assert map_at_5([1, 2, 6, 1000], ranked) == pytest.approx((1 + 0.5 + 0 + 0.2) / 4)
    result = scores([1, 2, 6, 1000], [[1000, 1, 2, 3, 4]] + ranked[1:])
    assert result["top1"] == 0.0 and result["unknown_precision"] == 0.0 and result["unknown_recall"] == 0.0
    result = scores([1000, 1000, 5], [[1000, 1, 2, 3, 4], [5, 1000, 2, 3, 4], [1000, 5, 1, 2, 3]])
    assert result["unknown_precision"] == 0.5 and result["unknown_recall"] == 0.5


def test_top_k_is_stable_and_maps_class_ids():
    probs = np.array([[0.1, 0.3, 0.3, 0.2, 0.05, 0.05]])
    assert list(top_k(probs)[0]) == [1, 2, 3, 0, 4]
    assert list(top_k(probs, class_ids=[0, 1, 2, 3, 4, 1000])[0]) == [1, 2, 3, 0, 4]
    assert list(top_k(np.array([[0, 0, 0, 0, 0.1, 0.9]]), class_ids=[0, 1, 2, 3, 4, 1000])[0]) == [1000, 4, 0, 1, 2]


def test_top_columns_is_the_stable_argsort_without_sorting_whole_rows():
    rng = np.random.RandomState(0)
    wide = rng.rand(300, 1001)
    wide[::3] = np.round(wide[::3] * 20) / 20  # ties at the fifth value
    wide[5, 7] = np.nan
    wide[6] = 0.0  # all tied (and -0.0 == 0.0)
    wide[7, ::2] = -0.0
    for values in (wide, wide.astype(np.float32)):
        for k in (1, 5):
            np.testing.assert_array_equal(top_columns(values, k), np.argsort(-values, axis=1, kind="stable")[:, :k])


def test_reciprocal_ranks_of_tables_lists_and_short_rows():
    truth = [3, 1000, 7, 2]
    table = np.array([[1, 2, 3, 4, 5], [1000, 1, 2, 3, 4], [1, 2, 3, 4, 5], [9, 8, 7, 6, 2]])
    expected = [1 / 3.0, 1.0, 0.0, 0.2]
    assert list(reciprocal_ranks(truth, table)) == list(reciprocal_ranks(truth, table.tolist())) == expected
    assert list(reciprocal_ranks([2, 5], [[1, 2], [5, 1, 2]])) == [0.5, 1.0]  # rows of different lengths


def test_submission_format(tmp_path):
    path = str(tmp_path / "final.csv")
    write_submission(path, ["a.png", "b.png"], [[1000, 3, 2, 1, 0], [4, 5, 6, 7, 8]])
    assert open(path).read() == "image,label\na.png,1000 3 2 1 0\nb.png,4 5 6 7 8\n"
    assert read_submission(path) == (["a.png", "b.png"], [[1000, 3, 2, 1, 0], [4, 5, 6, 7, 8]])
    with pytest.raises(ValueError, match="five distinct"):
        write_submission(path, ["a.png"], [[1, 1, 2, 3, 4]])
    with pytest.raises(ValueError, match="2 rankings"):
        write_submission(path, ["a.png"], [[1, 2, 3, 4, 5], [1, 2, 3, 4, 5]])
    assert read_submission(path)[0] == ["a.png", "b.png"]  # a refused write leaves the old file
    (tmp_path / "bad.csv").write_text("image,label\na.png,1 2 3\n")
    with pytest.raises(ValueError, match="line 2"):
        read_submission(str(tmp_path / "bad.csv"))


def test_stage_reruns_only_when_inputs_change(tmp_path):
    source, output = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("v1")

    def run():
        stage = Stage(str(tmp_path / "stamps"), "demo", [str(source)], [str(output)], {"p": 1})
        if stage.needed():
            output.write_text(source.read_text())
            stage.done()
            return True
        return False

    assert run() and not run()
    source.write_text("v2")
    assert run() and output.read_text() == "v2"
    os.remove(str(output))
    assert run() and not run()


def test_unknown_rule_tuned_on_validation_folds_finds_the_planted_threshold(tmp_path):
    """Identities with one image play the unknowns on the validation folds; the planted data
    puts them far from everything and unsure, so the tuned rule must flag them."""
    from types import SimpleNamespace

    from services.head.ensemble import tuned_rules
    from shared.schema import output_files
    from shared.storage import save_npy, write_json, write_text

    rng = np.random.RandomState(0)
    labels = np.concatenate([np.repeat(np.arange(20), 5), np.arange(20, 40)])  # 20 singletons
    centres = rng.randn(40, 16) * 3
    embeddings = centres[labels] + rng.randn(len(labels), 16) * 0.3
    images = ["i%03d.jpg" % i for i in range(len(labels))]
    write_folds(str(tmp_path / "folds.csv"), images, labels, make_folds(images, labels, seed=1, columns=1))
    files = output_files(str(tmp_path / "emb" / "model4_insightface"), "train")
    os.makedirs(os.path.dirname(files["embeddings"]))
    save_npy(files["embeddings"], embeddings.astype(np.float32))
    write_text(files["index"], "row,image\n" + "".join("%d,%s\n" % (i, n) for i, n in enumerate(images)))
    write_json(files["meta"], {"files": {"embeddings": "train.npy", "index": "train_index.csv"}})  # marks it complete
    probs = np.full((len(labels), 40), 0.001)
    probs[np.arange(100), labels[:100]] = 0.9  # confident on the identities with 5 images
    os.makedirs(str(tmp_path / "heads" / "model4_insightface" / "step4"))
    np.save(str(tmp_path / "heads" / "model4_insightface" / "step4" / "val_probs.npy"), probs)
    args = SimpleNamespace(folds=str(tmp_path / "folds.csv"), embeddings=str(tmp_path / "emb"),
                           heads=str(tmp_path / "heads"))
    rules = dict(RULES, tune_unknown=True)
    tuned = tuned_rules(args, registry_mod.load(), ["model4_insightface"], rules)
    flagged = pseudo_labels(probs, np.full(len(labels), 1.9), tuned) == UNKNOWN
    assert flagged[100:].all() and not flagged[:100].any()
    assert tuned_rules(args, registry_mod.load(), ["model4_insightface"], RULES) is RULES


def test_unknown_share_is_recovered_from_a_mixture_of_the_validation_histograms():
    """The nearest-neighbour baseline weighs its validation folds by the test's unknown share,
    estimated without test labels: the EM estimate must find the share a test set was drawn with."""
    from services.head.baselines import unknown_share

    rng = np.random.RandomState(0)
    known, unknown = rng.normal(0.7, 0.1, 4000), rng.normal(0.3, 0.1, 2000)  # validation best similarities
    for share in (0.02, 0.05, 0.2):
        n_unknown = int(share * 3000)
        test = np.concatenate([rng.normal(0.7, 0.1, 3000 - n_unknown), rng.normal(0.3, 0.1, n_unknown)])
        assert unknown_share(known, unknown, test) == pytest.approx(share, abs=0.015)
