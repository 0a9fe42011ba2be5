"""ConceptCountRegressor: counts, its ridge regression, its split-conformal interval, its JSON."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import ShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from imageclef_concepts import ConceptCountRegressor
from imageclef_concepts.models._count import (
    calibration_needed,
    conformal_quantile,
    score_features,
)


def _linear_counts(rng, n, width=5):
    """Features and whole-number counts that are a noisy linear function of them."""
    X = rng.normal(size=(n, width))
    noisy = 4 + X @ np.linspace(1, 0.2, width) + rng.normal(0, 1, n)
    return X, np.clip(np.round(noisy), 0, None)


def _scores_with_counts(rng, n, n_concepts=20):
    """Probabilities whose number of high values is each image's count."""
    counts = rng.integers(1, 9, n)
    high = np.arange(n_concepts) < counts[:, None]
    scores = np.where(high, rng.uniform(0.5, 1, (n, n_concepts)),
                      rng.uniform(0, 0.5, (n, n_concepts)))
    return rng.permuted(scores, axis=1), counts


def _tolerance(coverage, n_calibration, n_test):
    """Three standard errors of the held-out coverage, plus the conformal rounding.

    The coverage of one calibration draw is Beta-distributed around the
    level with variance about c(1-c)/m; the held-out share adds a binomial
    c(1-c)/n; the rank ceil((m+1)c) adds at most 1/(m+1).
    """
    spread = math.sqrt(coverage * (1 - coverage) * (1 / n_calibration + 1 / n_test))
    return 3 * spread + 1 / (n_calibration + 1)


@pytest.mark.parametrize("coverage", [0.5, 0.8, 0.9])
def test_held_out_coverage_is_the_stated_level(coverage):
    rng = np.random.default_rng(1)
    X, counts = _linear_counts(rng, 2000)
    X_test, counts_test = _linear_counts(rng, 5000)
    model = ConceptCountRegressor(features="raw", coverage=coverage, random_state=0)
    low, high = model.fit(X, counts).predict_interval(X_test)
    covered = np.mean((low <= counts_test) & (counts_test <= high))
    assert abs(covered - coverage) <= _tolerance(coverage, 500, 5000)


def test_held_out_coverage_from_scores():
    rng = np.random.default_rng(2)
    scores, counts = _scores_with_counts(rng, 1200)
    scores_test, counts_test = _scores_with_counts(rng, 4000)
    model = ConceptCountRegressor(coverage=0.8, random_state=0).fit(scores, counts)
    low, high = model.predict_interval(scores_test)
    covered = np.mean((low <= counts_test) & (counts_test <= high))
    assert abs(covered - 0.8) <= _tolerance(0.8, 300, 4000)
    assert np.mean(high - low) < 3  # informative: the scores tell the count


def test_conformal_quantile_is_the_rank_by_hand():
    residuals = np.array([0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 1.0, 0.4, 0.8, 0.6])
    assert conformal_quantile(residuals, 0.8) == 0.9  # ceil(11 * 0.8) = 9th smallest
    assert conformal_quantile(residuals, 0.5) == 0.6  # ceil(5.5) = 6th


def _fixed_model(quantile):
    """A fitted raw model predicting the first feature, with a given half-width."""
    return ConceptCountRegressor.from_dict({
        "format": "imageclef_concepts.ConceptCountRegressor",
        "params": {"features": "raw", "coverage": 0.9}, "n_features_in_": 1, "n_top_": 1,
        "coef_": [1.0], "intercept_": 0.0, "quantile_": quantile})


def test_interval_bounds_are_whole_numbers_rounded_inwards():
    low, high = _fixed_model(0.6).predict_interval([[2.3], [0.2], [5.5]])
    np.testing.assert_array_equal(low, [2, 0, 5])  # ceil(1.7), max(ceil(-0.4), 0), ceil(4.9)
    np.testing.assert_array_equal(high, [2, 0, 6])  # floor(2.9), floor(0.8), floor(6.1)
    low, high = _fixed_model(0.1).predict_interval([[2.3]])  # [2.2, 2.4] holds no count
    assert (low[0], high[0]) == (2, 2)


def test_score_features_are_the_sum_and_the_highest_by_hand():
    np.testing.assert_allclose(score_features(np.array([[0.1, 0.9, 0.5]]), 2),
                               [[1.5, 0.9, 0.5]])
    np.testing.assert_allclose(score_features(np.array([[0.1, 0.9, 0.5]]), 4),
                               [[1.5, 0.9, 0.5, 0.1, 0.0]])


def test_the_regression_is_ridge_on_standardised_features():
    rng = np.random.default_rng(3)
    X, counts = _linear_counts(rng, 200)
    model = ConceptCountRegressor(features="raw", alpha=5.0, random_state=7).fit(X, counts)
    fit_rows, _ = next(ShuffleSplit(1, test_size=0.25, random_state=7).split(X))
    reference = make_pipeline(StandardScaler(), Ridge(alpha=5.0)).fit(X[fit_rows],
                                                                      counts[fit_rows])
    np.testing.assert_allclose(model.predict(X), reference.predict(X), atol=1e-10)


def test_counts_come_from_every_target_form():
    rng = np.random.default_rng(4)
    scores = rng.random((40, 3))
    indicator = (scores > 0.5).astype(int)
    names = np.array(["C1", "C2", "C3"])
    lists = [";".join(names[row == 1]) + (";c1" if row[0] else "") for row in indicator]
    frame = pd.DataFrame(indicator, columns=names)
    fitted = [ConceptCountRegressor(coverage=0.75, random_state=0).fit(scores, y).to_dict()
              for y in (indicator.sum(axis=1), indicator, lists, frame)]
    assert all(model == fitted[0] for model in fitted[1:])  # "C1;c1" counts once


def test_json_round_trip_predicts_identically():
    rng = np.random.default_rng(5)
    scores, counts = _scores_with_counts(rng, 200)
    model = ConceptCountRegressor(coverage=0.8, random_state=0).fit(scores, counts)
    back = ConceptCountRegressor.from_dict(json.loads(json.dumps(model.to_dict())))
    for got, expected in zip(back.predict_interval(scores), model.predict_interval(scores)):
        np.testing.assert_array_equal(got, expected)
    assert len(json.dumps(model.to_dict())) < 2000  # a few numbers, not the data


@pytest.mark.parametrize("change, message", [
    ({"format": "other"}, "Not a concept count model"),
    ({"coef_": [1.0, 2.0]}, "coef_ must be a list of 21 finite numbers"),
    ({"quantile_": -1}, "quantile_ must be a finite number >= 0"),
    ({"n_top_": 0}, "n_top_ must be a whole number >= 1"),
    ({"params": {"coverage": 2}}, "coverage"),
])
def test_malformed_saved_models_are_refused_naming_the_entry(change, message):
    rng = np.random.default_rng(6)
    scores, counts = _scores_with_counts(rng, 100)
    values = {**ConceptCountRegressor(coverage=0.75).fit(scores, counts).to_dict(), **change}
    with pytest.raises(ValueError, match=message):
        ConceptCountRegressor.from_dict(values)


@pytest.mark.parametrize("params, message", [
    ({"coverage": 0}, "'coverage' parameter .* must be a float in the range \\(0.0, 1.0\\)"),
    ({"coverage": 1}, "'coverage' parameter"),
    ({"coverage": 1.5}, "'coverage' parameter"),
    ({"calibration_size": 1.0}, "'calibration_size' parameter"),
    ({"alpha": -1}, "'alpha' parameter"),
    ({"coverage": 0.95}, "coverage=0.95 needs at least 19 calibration images, but "
                         "calibration_size=0.25 of 40 images holds 10"),
])
def test_bad_parameters_are_refused_at_fit(params, message):
    rng = np.random.default_rng(7)
    X, counts = _linear_counts(rng, 40)
    with pytest.raises((ValueError, InvalidParameterError), match=message):
        ConceptCountRegressor(**params).fit(X, counts)


@pytest.mark.parametrize("y, message", [
    (None, "requires y to be passed"),
    (-np.ones(40), "number of concepts .* got -1"),
    (np.ones(39), "X has 40 images but y has 39"),
    (np.full((40, 2), 2), "0/1 indicator"),
    (["3", "2"] * 20, r"y holds numbers written as strings \('3', '2', '3', ...\): give each "
                      r"image's count as a number"),
    (np.array(["1", " 2.0"] * 20), "y holds numbers written as strings"),
])
def test_bad_targets_are_refused_at_fit(y, message):
    X = np.random.default_rng(8).random((40, 3))
    with pytest.raises(ValueError, match=message):
        ConceptCountRegressor(coverage=0.75).fit(X, y)


def test_features_of_the_wrong_width_are_refused_at_predict():
    rng = np.random.default_rng(9)
    scores, counts = _scores_with_counts(rng, 100, n_concepts=6)
    model = ConceptCountRegressor(coverage=0.75).fit(scores, counts)
    with pytest.raises(ValueError, match="X has 5 features, but ConceptCountRegressor is "
                                         "expecting 6"):
        model.predict_interval(scores[:, :5])


@pytest.mark.parametrize("coverage, needed", [(0.5, 1), (0.75, 3), (0.8, 4), (0.9, 9),
                                              (0.95, 19)])
def test_fewest_calibration_images_by_hand(coverage, needed):
    # m calibration images reach coverage c when ceil((m + 1) c) <= m.
    assert calibration_needed(coverage) == needed
    assert conformal_quantile(np.arange(needed, dtype=float), coverage) == needed - 1
    assert math.ceil((needed - 1 + 1) * coverage - 1e-9) > needed - 1


def test_score_is_r2_of_the_counts_of_any_target_form():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(10)
    scores, counts = _scores_with_counts(rng, 200, n_concepts=10)
    model = ConceptCountRegressor(coverage=0.75, random_state=0).fit(scores, counts)
    indicator = (np.arange(10) < counts[:, None]).astype(int)
    assert model.score(scores, indicator) == pytest.approx(
        r2_score(counts, model.predict(scores)))


def test_concept_lists_with_some_numeric_names_are_still_concepts():
    from imageclef_concepts.models._count import concept_counts

    np.testing.assert_array_equal(concept_counts(["1;2", "3", "C1;C2;C1"]), [2, 1, 2])
