"""concept_sample_weight: rare concepts weigh more; every estimator that weighs images takes it."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.utils._param_validation import InvalidParameterError

from imageclef_concepts import (
    ConceptCNNClassifier,
    ConceptEnsemble,
    ConceptKNNClassifier,
    ConceptSpecialists,
    MostFrequentConcepts,
    ThresholdTuner,
    concept_sample_weight,
    imageclef_f1,
)
from imageclef_concepts.utils.estimator_checks import concept_images


def test_the_formula_on_three_images_by_hand():
    y = ["A;B", "A", "C"]  # N = 3; A on 2 images, B and C on 1
    w = {"A": 3 / 2, "B": 3.0, "C": 3.0}  # N / n_c
    expected_max = np.array([w["B"], w["A"], w["C"]])
    expected_mean = np.array([(w["A"] + w["B"]) / 2, w["A"], w["C"]])
    np.testing.assert_allclose(concept_sample_weight(y, power=1),
                               expected_max / expected_max.mean())
    np.testing.assert_allclose(concept_sample_weight(y, power=1, combine="mean"),
                               expected_mean / expected_mean.mean())
    root = np.sqrt(expected_max)
    np.testing.assert_allclose(concept_sample_weight(y), root / root.mean())  # power=0.5
    np.testing.assert_array_equal(concept_sample_weight(y, power=0), np.ones(3))


def test_rare_concepts_weigh_more_in_every_form_of_y():
    rng = np.random.default_rng(0)
    names = np.array([f"C{i}" for i in range(30)])
    frequencies = 1 / np.arange(1, 31)  # a long tail
    y = [";".join(names[rng.random(30) < frequencies / 2]) for _ in range(400)]
    weights = concept_sample_weight(y)
    assert weights.mean() == pytest.approx(1) and (weights > 0).all()
    counts = {name: sum(name in row.split(";") for row in y) for name in names}
    only = {row: weights[i] for i, row in enumerate(y) if row.count(";") == 0 and row}
    by_rarity = sorted(only, key=lambda row: counts[row])
    assert [only[row] for row in by_rarity] == sorted(only.values(), reverse=True)
    empty = weights[[i for i, row in enumerate(y) if not row]]
    assert np.allclose(empty, empty[0])  # no concept: as if one on every image
    assert empty[0] < weights[[bool(row) for row in y]].min()
    Y = np.array([[name in row.split(";") for name in names] for row in y], dtype=int)
    np.testing.assert_allclose(concept_sample_weight(Y), weights)
    np.testing.assert_allclose(concept_sample_weight(pd.DataFrame(Y, columns=names)), weights)


@pytest.mark.parametrize("params, name", [(dict(power=-1), "power"),
                                          (dict(combine="sum"), "combine")])
def test_bad_settings_are_refused_by_name(params, name):
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
        concept_sample_weight(["A"], **params)


class Weighed(MostFrequentConcepts):
    """Records, in one log shared by its clones, what each fit was given."""

    log: list = []

    def _fit(self, X, y, sample_weight=None, validation_data=None):
        Weighed.log.append((np.asarray(X)[:, 0, 0, 0].tolist(), sample_weight, validation_data))
        super()._fit(X, y)


@pytest.fixture
def weighed():
    X, y = concept_images()
    X = X.copy()
    X[:, 0, 0, 0] = np.arange(len(X))  # each image tells its number
    Weighed.log = []
    return X, y, concept_sample_weight(y)


def _fits():
    return [(rows, None if weights is None else weights.tolist(), validation)
            for rows, weights, validation in Weighed.log]


def test_the_tuner_cuts_the_weights_to_each_fold_and_refits_with_all(weighed):
    X, y, weights = weighed
    ThresholdTuner(Weighed(k=1), cv=2, thresholds=5).fit(X, y, sample_weight=weights)
    assert _fits() == [(list(range(6, 12)), weights[6:].tolist(), None),
                       (list(range(6)), weights[:6].tolist(), None),
                       (list(range(12)), weights.tolist(), None)]


@pytest.mark.filterwarnings("ignore:The scoring")  # the official score has no weights
def test_the_ensemble_and_grid_search_pass_the_weights_on(weighed):
    X, y, weights = weighed
    ConceptEnsemble([("a", Weighed(k=1)), ("b", Weighed(k=2))]).fit(X, y, sample_weight=weights)
    assert _fits() == [(list(range(12)), weights.tolist(), None)] * 2
    Weighed.log = []
    GridSearchCV(Weighed(), {"k": [1]}, cv=KFold(2), scoring=imageclef_f1).fit(
        X, y, sample_weight=weights)
    assert [rows for rows, _, _ in _fits()] == [list(range(6, 12)), list(range(6)),
                                                list(range(12))]
    assert _fits()[0][1] == weights[6:].tolist()


def test_the_specialists_cut_the_weights_and_validation_to_their_images(weighed):
    X, y, weights = weighed
    validation = (X[:4], y[:4])  # C2 on images 1 and 3
    ConceptSpecialists(Weighed(k=1), [("c2", "C2", Weighed(k=1))], min_images=2).fit(
        X, y, sample_weight=weights, validation_data=validation)
    (base, base_weights, base_validation), (rows, own, own_validation) = _fits()
    assert base == list(range(12)) and base_weights == weights.tolist()
    assert base_validation is validation
    assert rows == [1, 3, 5, 7, 9, 11] and own == weights[1::2].tolist()
    np.testing.assert_array_equal(own_validation[0], X[[1, 3]])
    assert list(own_validation[1]) == [y[1], y[3]]


@pytest.mark.parametrize("model", [ConceptKNNClassifier(n_neighbors=3, pixel_size=4),
                                   MostFrequentConcepts()])
def test_models_that_learn_from_every_image_alike_say_so(model):
    X, y = concept_images()
    with pytest.raises(TypeError, match=f"{type(model).__name__}.fit does not take "
                                        "sample_weight: it learns from every image alike"):
        model.fit(X, y, sample_weight=concept_sample_weight(y))


def test_the_weights_change_what_the_network_learns():
    X, y = concept_images()
    weights = concept_sample_weight(y, power=2)
    assert weights.max() > 1.5 * weights.min()
    params = dict(image_size=16, filters=(4,), dense_units=(8,), epochs=1, batch_size=4,
                  learning_rate=1e-2, decay=0.0, validation_fraction=None, random_state=0)
    plain = ConceptCNNClassifier(**params).fit(X, y).predict_proba(X)
    weighted = ConceptCNNClassifier(**params).fit(X, y, sample_weight=weights).predict_proba(X)
    assert np.abs(plain - weighted).max() > 1e-4


def _direct(concept_lists, power, combine):
    """The formula as written, in plain floats (overflows for a large power)."""
    n = len(concept_lists)
    counts = {c: sum(c in image for image in concept_lists) for image in concept_lists
              for c in image}
    pool = max if combine == "max" else np.mean
    weights = [pool([np.float64(n / counts[c]) ** power for c in image])
               if image else 1.0 for image in concept_lists]
    return np.array(weights) / np.mean(weights)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sets(st.sampled_from("ABCD")), max_size=8),
       st.floats(0, 5000), st.sampled_from(["max", "mean"]))
def test_weights_stay_positive_finite_and_of_mean_one_for_any_power(images, power, combine):
    y = [["A"]] + [sorted(image) for image in images]  # at least one concept
    try:
        weights = concept_sample_weight(y, power=power, combine=combine)
    except ValueError as error:  # only when the lightest weight is below float64's range
        assert "Give a smaller power" in str(error)
        with np.errstate(all="ignore"):
            direct = _direct([set(image) for image in y], power, combine)
        assert not (np.isfinite(direct).all() and direct.min() > 1e-300)
        return
    assert np.isfinite(weights).all() and (weights > 0).all()
    assert np.mean(weights) == pytest.approx(1, rel=1e-9)
    with np.errstate(all="ignore"):
        direct = _direct([set(image) for image in y], power, combine)
    if np.isfinite(direct).all() and direct.min() > 1e-290:
        np.testing.assert_allclose(weights, direct, rtol=1e-6)


def test_a_large_power_keeps_the_weights_finite_or_is_refused():
    weights = concept_sample_weight(["A", "B", "B", "B"], power=200)
    np.testing.assert_allclose(weights, np.r_[4, [3 ** -200 * 4] * 3], rtol=1e-9)
    with pytest.raises(ValueError, match=r"power=2000 makes the weights span .* e\^-2197"):
        concept_sample_weight(["A", "B", "B", "B"], power=2000)
