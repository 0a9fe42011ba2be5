import warnings

import numpy as np
import pytest
from scipy import sparse
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import f1_score

from imageclef_concepts import ConceptEncoder, imageclef_f1_score, per_image_f1_scores

from ..official_f1 import official_mean_f1


def test_hand_computed_case():
    # image 1: T={C1,C2}, P={C1} -> 2*1/3; image 2: T={C3}, P={C3,C4} -> 2/3;
    # image 3: empty truth, left out whatever was predicted.
    score = imageclef_f1_score(["C1;C2", "C3", ""], ["C1", "C3;C4", "C5"])
    assert score == pytest.approx(2 / 3)


def test_empty_prediction_scores_zero_for_that_image():
    assert imageclef_f1_score(["C1", "C2"], ["C1", ""]) == pytest.approx(0.5)


def test_empty_truth_rows_leave_numerator_and_denominator():
    with_empty = imageclef_f1_score(["C1", "", ""], ["C1", "C9", ""])
    assert with_empty == 1.0


def test_all_empty_truth_is_zero_with_warning():
    with pytest.warns(UndefinedMetricWarning, match="No image has a true concept"):
        assert imageclef_f1_score(["", ""], ["C1", ""]) == 0.0
    with pytest.warns(UndefinedMetricWarning):
        assert imageclef_f1_score(np.zeros((2, 3)), np.ones((2, 3))) == 0.0


def test_duplicates_and_case_count_as_one_concept():
    # T={C1,C2}, P={C1}: duplicates and lower case do not change the sets.
    assert imageclef_f1_score(["C1;c2;C1"], [["c1", "C1"]]) == pytest.approx(2 / 3)


def test_string_list_and_collection_forms_agree():
    as_strings = imageclef_f1_score(["C1;C2", "C3"], ["C1", "C3"])
    as_lists = imageclef_f1_score([["C1", "C2"], ("C3",)], [{"C1"}, ["C3"]])
    as_array = imageclef_f1_score(np.array(["C1;C2", "C3"]), np.array(["C1", "C3"], dtype=object))
    assert as_strings == as_lists == as_array == pytest.approx((2 / 3 + 1) / 2)


def test_differs_from_sklearn_samples_average():
    y_true = np.array([[1, 0], [0, 0]])
    y_pred = np.array([[1, 0], [1, 0]])
    assert imageclef_f1_score(y_true, y_pred) == 1.0
    for zero_division in (0, 1):
        assert f1_score(y_true, y_pred, average="samples", zero_division=zero_division) != 1.0


def _random_case(rng, n_images=300, n_concepts=40):
    y_true = (rng.random((n_images, n_concepts)) < 0.05).astype(int)
    y_pred = (rng.random((n_images, n_concepts)) < 0.08).astype(int)
    y_true[:10] = 0  # some images without truth
    y_pred[10:20] = 0  # some without prediction
    names = np.array([f"C{i:07d}" for i in range(n_concepts)])
    as_lines = [";".join(names[row.astype(bool)]) for row in y_true]
    pred_lines = [";".join(names[row.astype(bool)]) for row in y_pred]
    return y_true, y_pred, as_lines, pred_lines


def test_dense_sparse_and_strings_identical_and_match_official_loop():
    rng = np.random.default_rng(0)
    y_true, y_pred, true_lines, pred_lines = _random_case(rng)
    expected = official_mean_f1(true_lines, pred_lines)
    dense = imageclef_f1_score(y_true, y_pred)
    as_sparse = imageclef_f1_score(sparse.csr_matrix(y_true), sparse.csc_matrix(y_pred))
    strings = imageclef_f1_score(true_lines, pred_lines)
    assert dense == as_sparse == strings
    assert dense == pytest.approx(expected, abs=1e-12)


def test_integer_label_lists_are_refused_not_read_as_an_indicator():
    # [[3, 7], [2, 9]] against [[1, 4], [5, 6]] shares no label; read as a 0/1
    # matrix it would score 1.0.
    with pytest.raises(ValueError, match=r"0/1 indicator matrix.*values such as \[2, 3, 7, 9\]"):
        imageclef_f1_score([[3, 7], [2, 9]], [[1, 4], [5, 6]])
    with pytest.raises(ValueError, match="y_pred must be a 0/1 indicator"):
        imageclef_f1_score(np.array([[1, 0, 1]]), np.array([[0.3, 0.0, 2.0]]))
    assert imageclef_f1_score([["3", "7"], ["2", "9"]], [["1", "4"], ["5", "6"]]) == 0.0


def test_concepts_compare_case_insensitively_everywhere():
    encoder = ConceptEncoder().fit(["c1;C2", "C1"])
    assert list(encoder.classes_) == ["C1", "C2"]
    np.testing.assert_array_equal(encoder.transform(["C1;c2"]), [[1, 1]])
    assert imageclef_f1_score(["c1"], ["C1"]) == 1.0


def test_secondary_f1_restricts_both_sets_to_the_subset():
    truth = ["C1;C2;C3", "C4", "C2"]
    predicted = ["C1;C3;C5", "C4", "C1"]
    # On {C1, C2}: image 1 T={C1,C2} P={C1}: 2/3; image 2 has no true concept
    # in the subset and drops out; image 3 T={C2} P={C1}: 0.
    assert imageclef_f1_score(truth, predicted, concepts=["c1", "C2"]) == pytest.approx(1 / 3)
    y_true = np.array([[1, 1, 1, 0], [0, 0, 0, 1]])
    y_pred = np.array([[1, 0, 1, 0], [0, 0, 0, 1]])
    assert imageclef_f1_score(y_true, y_pred, concepts=[0, 1]) == pytest.approx(2 / 3)


def test_per_image_scores_and_mask():
    scores, counted = per_image_f1_scores(["C1", "", "C2"], ["C1", "C1", ""])
    np.testing.assert_allclose(scores, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(counted, [True, False, True])


@pytest.mark.parametrize(
    "y_true, y_pred, message",
    [
        (np.zeros((3, 4)), np.zeros((3, 5)), r"shape \(3, 4\).*shape \(3, 5\)"),
        (["C1", "C2"], ["C1"], "2 images but y_pred has 1"),
        (np.zeros((2, 2)), ["C1", "C2"], "both be indicator matrices"),
        (np.zeros(3), np.zeros(3), "2-d indicator matrix"),
        (np.array([[np.nan, 1.0]]), np.ones((1, 2)), "NaN"),
    ],
)
def test_bad_input_is_named(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        imageclef_f1_score(y_true, y_pred)


def test_scoring_concept_lists_keeps_concepts_the_encoder_drops():
    # Unknown concepts vanish from a MultiLabelBinarizer's matrix; the
    # concept-list score counts them as misses.
    encoder = ConceptEncoder().fit(["C1"])
    y_true = ["C1;C2"]
    y_pred = ["C1"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_matrix = imageclef_f1_score(encoder.transform(y_true), encoder.transform(y_pred))
    assert from_matrix == 1.0
    assert imageclef_f1_score(y_true, y_pred) == pytest.approx(2 / 3)


def test_scorer_in_cross_val_score():
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    from imageclef_concepts import imageclef_f1

    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3))
    y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0, X[:, 2] > 0]).astype(int)
    scores = cross_val_score(KNeighborsClassifier(3), X, y, cv=3, scoring=imageclef_f1)
    model = KNeighborsClassifier(3)
    expected = []
    for fold in range(3):
        test = np.arange(fold * 20, (fold + 1) * 20)
        train = np.setdiff1d(np.arange(60), test)
        model.fit(X[train], y[train])
        expected.append(imageclef_f1_score(y[test], model.predict(X[test])))
    np.testing.assert_allclose(scores, expected)
