import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402

from imageclef_concepts import (  # noqa: E402
    MostFrequentConcepts,
    ThresholdCurveDisplay,
    ThresholdTuner,
    imageclef_f1_score,
)


def _brute_force(y_true, scores, thresholds):
    """The official F1 of each threshold, one predicted matrix at a time."""
    return [imageclef_f1_score(y_true, (scores >= t).astype(int)) for t in thresholds]


@pytest.fixture
def indicator_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    return X, (X + rng.normal(scale=0.7, size=X.shape) > 0).astype(int)


def test_from_predictions_scores_every_threshold_officially(indicator_data):
    _, y = indicator_data
    scores = np.random.default_rng(1).random(y.shape)
    display = ThresholdCurveDisplay.from_predictions(y, scores, thresholds=[0.5, 0.1, 0.3])
    np.testing.assert_allclose(display.thresholds, [0.1, 0.3, 0.5])
    np.testing.assert_allclose(display.scores, _brute_force(y, scores, display.thresholds))
    line = display.line_
    np.testing.assert_allclose(line.get_xdata(), display.thresholds)
    np.testing.assert_allclose(line.get_ydata(), display.scores)
    assert display.best_line_.get_xdata()[0] == display.best_threshold
    assert display.best_score == pytest.approx(max(display.scores))
    plt.close("all")


def test_a_candidate_grid_beyond_memory_is_refused_naming_thresholds(indicator_data):
    _, y = indicator_data  # was NumPy's MemoryError, naming nothing
    scores = np.random.default_rng(1).random(y.shape)
    with pytest.raises(ValueError, match=r"^thresholds=1099511627776: "):
        ThresholdCurveDisplay.from_predictions(y, scores, thresholds=2**40)


class _NeverPredicted(MostFrequentConcepts):
    def predict_proba(self, X):
        raise AssertionError("the images were predicted before thresholds was checked")


@pytest.mark.parametrize("thresholds, match", [
    (2**40, r"^thresholds=1099511627776: "),
    # 0 was 'attempt to get argmax of an empty sequence', -5 NumPy's 'Number of samples',
    # a 0-d array an AxisError, True one candidate: none named thresholds
    (0, r"^thresholds must be "), (-5, r"^thresholds must be "), (True, r"^thresholds must be "),
    (np.array(7), r"^thresholds must be "), ([], r"^thresholds must be "),
    ([[0.1, 0.2]], r"^thresholds must be "), (["0.5", "x"], r"^thresholds must be "),
    ([0.5, True], r"^thresholds must be "),
    # NaN: drawn as a candidate no image passes (ThresholdTuner refused it)
    ([0.2, float("nan"), 0.6], r"^thresholds must be .*not NaN"),
    (np.array([np.nan]), r"^thresholds must be .*not NaN")])
def test_thresholds_are_checked_before_any_image_is_predicted(thresholds, match):
    # from_estimator predicted every image (a CNN over a folder) before refusing them
    X = np.zeros((6, 1))
    model = _NeverPredicted(k=1).fit(X, ["A;B", "A", "A;C", "B", "A", "C"])
    with pytest.raises(ValueError, match=match):
        ThresholdCurveDisplay.from_estimator(model, X, ["A", "B", "A", "C", "A", "B"],
                                             thresholds=thresholds)
    with pytest.raises(ValueError, match=match):
        ThresholdCurveDisplay.from_predictions(np.eye(3, dtype=int), np.eye(3),
                                               thresholds=thresholds)


def test_from_estimator_counts_concepts_the_estimator_never_saw_as_misses():
    X = np.zeros((6, 1))
    model = MostFrequentConcepts(k=1).fit(X, ["A;B", "A", "A;C", "B", "A", "C"])
    y = ["A;UNSEEN", "B", "A", "C;UNSEEN"]
    display = ThresholdCurveDisplay.from_estimator(model, X[:4], y, thresholds=5)
    probabilities = model.predict_proba(X[:4])
    predicted = [[[c for c, p in zip(model.classes_, row) if p >= t] for row in probabilities]
                 for t in display.thresholds]
    np.testing.assert_allclose(display.scores,
                               [imageclef_f1_score(y, lists) for lists in predicted])
    np.testing.assert_allclose(display.thresholds[[0, -1]],
                               [probabilities.min(), probabilities.max()])
    plt.close("all")


def test_from_estimator_matches_its_predictions(indicator_data):
    X, y = indicator_data
    model = KNeighborsClassifier(7).fit(X[:50], y[:50])
    scores = np.column_stack([p[:, 1] for p in model.predict_proba(X[50:])])
    from_model = ThresholdCurveDisplay.from_estimator(model, X[50:], y[50:], thresholds=8)
    from_scores = ThresholdCurveDisplay.from_predictions(y[50:], scores, thresholds=8)
    np.testing.assert_allclose(from_model.thresholds, from_scores.thresholds)
    np.testing.assert_allclose(from_model.scores, from_scores.scores)
    plt.close("all")


def test_from_tuner_is_the_curve_the_tuner_chose_on(indicator_data):
    X, y = indicator_data
    tuner = ThresholdTuner(KNeighborsClassifier(7), cv=3, thresholds=15,
                           store_cv_results=True).fit(X, y)
    display = ThresholdCurveDisplay.from_tuner(tuner)
    np.testing.assert_allclose(display.thresholds, tuner.cv_results_["thresholds"])
    assert display.best_threshold == pytest.approx(tuner.best_threshold_)
    assert display.line_.get_label() == "out-of-fold official F1"
    with pytest.raises(ValueError, match="store_cv_results=True"):
        ThresholdCurveDisplay.from_tuner(ThresholdTuner(KNeighborsClassifier(7), cv=3).fit(X, y))
    plt.close("all")


def test_plot_draws_on_the_axes_given():
    figure, (left, right) = plt.subplots(1, 2)
    display = ThresholdCurveDisplay(thresholds=[0.1, 0.2, 0.3], scores=[0.2, 0.5, 0.4],
                                    reference_threshold=None)
    assert display.plot(ax=right) is display
    assert display.ax_ is right and display.figure_ is figure
    assert len(right.lines) == 2 and not left.lines  # the curve and the best threshold
    assert display.best_threshold == 0.2
    made = ThresholdCurveDisplay.from_predictions(np.eye(3, dtype=int), np.eye(3), ax=left)
    assert made.ax_ is left and len(left.lines) == 3  # with the paper's 0.1
    plt.close("all")
