import json

import numpy as np
import pytest

from imageclef_concepts import DecisionRule
from imageclef_concepts._decision import ranks_in_row


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
    np.testing.assert_array_equal(ranks_in_row(np.array([[0.5, 0.5, 0.9]])), [[1, 2, 0]])


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
