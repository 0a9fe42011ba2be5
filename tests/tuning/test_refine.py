import re

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from imageclef_concepts import (
    ConceptCNNClassifier,
    ThresholdTuner,
    imageclef_f1,
    refine_grid,
)


def test_log_linear_integer_and_choice_parameters():
    grid = {
        "learning_rate": [1e-4, 1e-3, 1e-2],
        "threshold": [0.1, 0.2, 0.3],
        "epochs": [4, 8, 16],
        "dense_units": [(64,), (128, 64), (256, 128)],
        "padding": ["valid", "same"],
    }
    best = {"learning_rate": 1e-3, "threshold": 0.2, "epochs": 8,
            "dense_units": (128, 64), "padding": "same"}
    refined = refine_grid(best, grid)
    np.testing.assert_allclose(refined["learning_rate"], [10**-3.5, 1e-3, 10**-2.5])
    assert refined["threshold"] == [0.15, 0.2, 0.25]
    assert refined["epochs"] == [6, 8, 12]  # linear midpoints: 4..16 spans < 10x
    assert refined["dense_units"] == [(64,), (128, 64), (256, 128)]
    assert refined["padding"] == ["valid", "same"]  # unordered: unchanged


def test_edges_move_outward_within_the_valid_range():
    estimator = ConceptCNNClassifier()
    grid = {"threshold": [0.0, 0.1, 0.2], "learning_rate": [1e-3, 1e-2, 1e-1],
            "conv_dropout": [0.5, 0.7, 0.9], "dense_units": [(32,), (64,)]}
    best = {"threshold": 0.0, "learning_rate": 1e-1, "conv_dropout": 0.9,
            "dense_units": (32,)}
    refined = refine_grid(best, grid, estimator=estimator)
    assert refined["threshold"] == [0.0, 0.05]  # -0.05 would be below 0
    np.testing.assert_allclose(refined["learning_rate"], [10**-1.5, 0.1, 10**-0.5])
    assert refined["conv_dropout"] == [0.8, 0.9, 0.95]  # below 1: conv_dropout < 1
    assert refined["dense_units"] == [(32,), (64,)]
    # an upper edge above the valid range is cut
    assert max(refine_grid({"threshold": 1.0}, {"threshold": [0.8, 0.9, 1.0]},
                           estimator=estimator)["threshold"]) == 1.0


def test_forced_log_scale_and_single_value_grids():
    refined = refine_grid({"alpha": 2.0}, {"alpha": [1.0, 2.0, 3.0]}, log_scale={"alpha"})
    np.testing.assert_allclose(refined["alpha"], [np.sqrt(2), 2.0, np.sqrt(6)])
    # one value says nothing about its scale: +-50% unless named in log_scale
    single = refine_grid({"learning_rate": 1e-3}, {"learning_rate": [1e-3]})
    np.testing.assert_allclose(single["learning_rate"], [5e-4, 1e-3, 1.5e-3])
    single_log = refine_grid({"learning_rate": 1e-3}, {"learning_rate": [1e-3]},
                             log_scale={"learning_rate"})
    np.testing.assert_allclose(single_log["learning_rate"], [10**-3.5, 1e-3, 10**-2.5])


def test_nested_names_inside_tuner_and_pipeline():
    tuner = ThresholdTuner(ConceptCNNClassifier())
    refined = refine_grid({"estimator__learning_rate": 1e-4},
                          {"estimator__learning_rate": [1e-5, 1e-4, 1e-3]}, estimator=tuner)
    np.testing.assert_allclose(refined["estimator__learning_rate"],
                               [10**-4.5, 1e-4, 10**-3.5])
    pipeline = Pipeline([("scale", StandardScaler()),
                         ("tuned", ThresholdTuner(ConceptCNNClassifier()))])
    edge = refine_grid({"tuned__estimator__threshold": 0.0},
                       {"tuned__estimator__threshold": [0.0, 0.5]}, estimator=pipeline)
    assert min(edge["tuned__estimator__threshold"]) == 0.0


def test_from_a_fitted_search_round():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3))
    y = (X > 0).astype(int)
    search = GridSearchCV(KNeighborsClassifier(), {"n_neighbors": [1, 5, 25]},
                          scoring=imageclef_f1, cv=KFold(3)).fit(X, y)
    refined = refine_grid(search)
    best = search.best_params_["n_neighbors"]
    assert best in refined["n_neighbors"]
    assert all(isinstance(v, int) and v >= 1 for v in refined["n_neighbors"])
    second = GridSearchCV(KNeighborsClassifier(), refined, scoring=imageclef_f1,
                          cv=KFold(3)).fit(X, y)
    assert second.best_score_ >= search.best_score_ - 0.05


def test_bad_arguments():
    with pytest.raises(ValueError, match="needs param_grid"):
        refine_grid({"a": 1})
    with pytest.raises(ValueError, match="one grid"):
        refine_grid({"a": 1}, [{"a": [1, 2]}])


@pytest.mark.parametrize("n_values, error", [(0, ValueError), (-3, ValueError),
                                             (True, TypeError), (np.array(3), TypeError),
                                             (2.0, TypeError)])
def test_n_values_is_a_whole_number_named(n_values, error):
    # n_values=0 gave the best value alone, n_values=True one value, n_values=-3 'Number of
    # samples, -1, must be non-negative' and 2.0 "'float' object cannot be interpreted as an
    # integer", naming nothing (review 16).
    with pytest.raises(error, match=rf"^n_values={re.escape(repr(n_values))}: n_values must "
                                    "be a whole number, at least 1"):
        refine_grid({"threshold": 0.2}, {"threshold": [0.1, 0.2, 0.3]}, n_values=n_values)
    assert refine_grid({"threshold": 0.2}, {"threshold": [0.1, 0.2, 0.3]},
                       n_values=np.int64(1)) == {"threshold": [0.2]}


@pytest.mark.parametrize("log_scale", [True, "threshold", 3])
def test_log_scale_is_auto_or_names_named(log_scale):
    # log_scale=True (the annotation says bool) ended in "argument of type 'bool' is not
    # iterable"; log_scale='threshold' took each letter for a parameter (review 16).
    with pytest.raises(ValueError, match=r"^log_scale=.*: give 'auto' or a collection of "
                                         r"parameter names"):
        refine_grid({"threshold": 0.2}, {"threshold": [0.1, 0.2, 0.3]}, log_scale=log_scale)
