import json
import warnings

import numpy as np
import pytest

from imageclef_concepts import DecisionRule


def test_global_threshold_is_at_least():
    scores = np.array([[0.1, 0.5, 0.49], [0.6, 0.0, 0.5]])
    np.testing.assert_array_equal(DecisionRule(0.5).apply(scores),
                                  [[False, True, False], [True, False, True]])


def test_per_concept_thresholds_apply_by_column():
    scores = np.array([[0.3, 0.3, 0.3]])
    rule = DecisionRule([0.2, 0.3, 0.4])
    np.testing.assert_array_equal(rule.apply(scores), [[True, True, False]])
    with pytest.raises(ValueError, match="3 per-concept thresholds but the scores have 2"):
        rule.apply(np.zeros((1, 2)))


def test_min_concepts_takes_the_highest_and_max_concepts_caps():
    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.05, 0.2, 0.01, 0.02]])
    at_least_two = DecisionRule(0.75, min_concepts=2).apply(scores)
    np.testing.assert_array_equal(at_least_two, [[True, True, False, False],
                                                 [True, True, False, False]])
    at_most_one = DecisionRule(0.0, max_concepts=1).apply(scores)
    np.testing.assert_array_equal(at_most_one.sum(axis=1), [1, 1])
    assert at_most_one[0, 0] and at_most_one[1, 1]


def test_per_image_cap_replaces_max_concepts():
    scores = np.array([[0.9, 0.8, 0.7], [0.9, 0.8, 0.7]])
    decided = DecisionRule(0.5).apply(scores, max_concepts=[1, 3])
    np.testing.assert_array_equal(decided.sum(axis=1), [1, 3])


def test_unreadable_image_gets_nothing_even_with_a_floor():
    scores = np.array([[np.nan, np.nan], [0.1, 0.2]])
    decided = DecisionRule(0.5, min_concepts=1).apply(scores)
    np.testing.assert_array_equal(decided, [[False, False], [False, True]])


def test_ties_are_broken_by_column_order():
    decided = DecisionRule(1.0, min_concepts=2).apply(np.array([[0.5, 0.5, 0.9]]))
    np.testing.assert_array_equal(decided, [[True, False, True]])


@pytest.mark.parametrize("rule", [
    DecisionRule(0.1),
    DecisionRule([0.1, 0.25, 0.3333333333333333], min_concepts=1, max_concepts=2),
    DecisionRule(0.5, max_concepts=100),
])
def test_json_round_trip_is_exact(rule):
    text = rule.to_json()
    json.loads(text)  # plain JSON
    back = DecisionRule.from_json(text)
    assert back == rule
    scores = np.random.default_rng(0).random((20, 3))
    np.testing.assert_array_equal(back.apply(scores), rule.apply(scores))


@pytest.mark.parametrize("kwargs, message", [
    (dict(threshold=float("nan")), "NaN"),
    (dict(threshold=[[0.1]]), "one number per concept"),
    (dict(threshold=0.5, min_concepts=-1), "min_concepts must be a whole number >= 0"),
    (dict(threshold=0.5, max_concepts=0), "max_concepts must be a whole number >= 1"),
    (dict(threshold=0.5, min_concepts=3, max_concepts=2), "max_concepts=2 is below"),
    (dict(threshold=10**400), r"threshold \(int\) is too large for a float \(401 digits\)"),
    (dict(threshold=1 + 0j), "threshold must be a number .* got complex"),
    (dict(threshold=[10**400, 0.5]), "list that does not convert to floats"),
])
def test_bad_rules_are_refused_with_the_parameter_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DecisionRule(**kwargs)


def test_any_real_number_is_a_threshold():
    from decimal import Decimal
    from fractions import Fraction

    assert DecisionRule(Fraction(1, 2)) == DecisionRule(0.5)  # was "ufunc 'isnan'"
    assert DecisionRule(Decimal("0.25")) == DecisionRule(0.25)
    assert DecisionRule([Fraction(1, 4), 0.5]) == DecisionRule([0.25, 0.5])


def test_from_dict_refuses_other_json():
    with pytest.raises(ValueError, match="Not a decision rule"):
        DecisionRule.from_dict({"threshold": 0.1})


# ------------------------------------------------------- count model bounds

def _sum_model(quantile=0.4, n_concepts=4, features="scores"):
    """A count model predicting the sum of the scores, with a half-width ``quantile``."""
    from imageclef_concepts import ConceptCountRegressor

    # Features of scores: their sum, then the n_top highest (weighed 0 here).
    coef = [1.0] * n_concepts if features == "raw" else [1.0] + [0.0] * n_concepts
    return ConceptCountRegressor.from_dict({
        "format": "imageclef_concepts.ConceptCountRegressor",
        "params": {"features": features, "coverage": 0.8}, "n_features_in_": n_concepts,
        "n_top_": n_concepts, "coef_": coef, "intercept_": 0.0, "quantile_": quantile})


COUNTED = np.array([
    [0.9, 0.8, 0.7, 0.6],    # sum 3.0: interval [3, 3]; 4 pass 0.5: the lowest dropped
    [0.45, 0.1, 0.3, 0.2],   # sum 1.05: [1, 1]; none passes: the highest added
    [0.6, 0.55, 0.35, 0.1],  # sum 1.6: [2, 2]; 2 pass: unchanged
])


def test_count_interval_adds_the_next_and_drops_the_least_probable():
    decided = DecisionRule(0.5, count_model=_sum_model()).apply(COUNTED)
    np.testing.assert_array_equal(decided, [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]])


def test_min_and_max_concepts_stay_hard_bounds_around_the_interval():
    floor = DecisionRule(0.5, min_concepts=2, count_model=_sum_model()).apply(COUNTED)
    np.testing.assert_array_equal(floor, [[1, 1, 1, 0], [1, 0, 1, 0], [1, 1, 0, 0]])
    cap = DecisionRule(0.5, max_concepts=2, count_model=_sum_model()).apply(COUNTED)
    np.testing.assert_array_equal(cap, [[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0]])


def test_per_concept_rule_adds_and_drops_by_score_keeping_what_passed():
    # Adding: 0.6 passes its 0.5; the interval [2, 2] adds the next most probable, 0.9.
    add = DecisionRule([0.95, 0.5, 0.5, 0.5], count_model=_sum_model())
    np.testing.assert_array_equal(add.apply(np.array([[0.9, 0.6, 0.1, 0.1]])), [[1, 1, 0, 0]])
    # Dropping: 0.3, 0.25 and 0.22 pass; [2, 2] drops 0.22 and never adds 0.9.
    drop = DecisionRule([0.95, 0.2, 0.2, 0.2], count_model=_sum_model())
    np.testing.assert_array_equal(drop.apply(np.array([[0.9, 0.3, 0.25, 0.22]])),
                                  [[0, 1, 1, 0]])
    # The same with min_concepts alone: an image within its bounds keeps what passed.
    within = DecisionRule([0.95, 0.5], min_concepts=1).apply(np.array([[0.9, 0.6]]))
    np.testing.assert_array_equal(within, [[False, True]])


def test_rule_with_a_count_model_round_trips_through_json():
    rule = DecisionRule([0.1, 0.2, 0.3, 0.4], min_concepts=1, count_model=_sum_model())
    back = DecisionRule.from_json(json.dumps(json.loads(rule.to_json())))
    assert back == rule and back != DecisionRule([0.1, 0.2, 0.3, 0.4], min_concepts=1)
    assert back != DecisionRule([0.1, 0.2, 0.3, 0.4], min_concepts=1,
                                count_model=_sum_model(0.5))
    np.testing.assert_array_equal(back.apply(COUNTED), rule.apply(COUNTED))
    assert "count_model=<count model, coverage 0.8>" in repr(rule)
    assert back.with_bounds(max_concepts=3).count_model is back.count_model
    assert "count_model" not in DecisionRule(0.5).to_dict()  # older files unchanged


def test_bad_count_models_are_refused():
    from imageclef_concepts import ConceptCountRegressor

    with pytest.raises(ValueError, match="count_model must be a fitted ConceptCountRegressor "
                                         "or None; got an unfitted ConceptCountRegressor"):
        DecisionRule(0.5, count_model=ConceptCountRegressor())
    with pytest.raises(ValueError, match="got dict"):
        DecisionRule(0.5, count_model={"coverage": 0.9})
    with pytest.raises(ValueError, match="count model was fitted on the scores of 4 concepts "
                                         "but the scores have 3"):
        DecisionRule(0.5, count_model=_sum_model()).apply(np.zeros((2, 3)))
    values = DecisionRule(0.5, count_model=_sum_model()).to_dict()
    values["count_model"]["coef_"] = "ones"
    with pytest.raises(ValueError, match="coef_ must be a list of 5 finite numbers"):
        DecisionRule.from_dict(values)


def test_a_count_model_of_raw_features_is_refused():
    with pytest.raises(ValueError, match="count_model must be fitted with features='scores' "
                                         r"\(a rule gives it the concept scores only\); got "
                                         "features='raw'"):
        DecisionRule(0.5, count_model=_sum_model(features="raw"))


@pytest.mark.parametrize("count_model", [None, _sum_model()])
def test_no_image_gives_no_row_with_or_without_a_count_model(count_model):
    decided = DecisionRule(0.5, min_concepts=1, count_model=count_model).apply(np.zeros((0, 4)))
    assert decided.shape == (0, 4) and decided.dtype == bool


def test_infinite_and_huge_scores_meet_a_count_model_without_warnings():
    rule = DecisionRule(0.5, count_model=_sum_model())
    huge = np.array([[1e308, 1e308, 1e308, 1e308], [1e300, 1e300, 0.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # The sums are beyond any count: the interval is [2**53, ...], clipped to the
        # 4 concepts; the intervals' ends are whole numbers, never a failed cast.
        np.testing.assert_array_equal(rule.apply(huge), np.ones((2, 4), dtype=bool))
        mixed = np.array([[np.inf, 0.9, 0.1, 0.0], [-np.inf, 0.9, 0.8, 0.7],
                          [np.inf, -np.inf, 0.9, np.nan]])
        decided = rule.apply(mixed)
    # +inf clipped to a huge finite score: every concept; -inf to a hugely negative one:
    # none, the interval [0, 0] dropping the 3 that passed; the third sums inf - inf
    # (clipped: 0 + 0.9 -> [1, 1]) and keeps the inf concept only.
    np.testing.assert_array_equal(decided, [[1, 1, 1, 1], [0, 0, 0, 0], [1, 0, 0, 0]])


@pytest.mark.parametrize("name", ["min_concepts", "max_concepts"])
def test_a_count_too_large_for_the_decision_is_refused_by_name(name):
    # 2**63 passed the old check and overflowed only when the rule was applied.
    with pytest.raises(ValueError, match=f"{name} must be at most 2,147,483,647"):
        DecisionRule(0.5, **{name: 2**63})
