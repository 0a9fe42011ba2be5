"""Issue 31: the estimators in the tools a scikit-learn user already runs, as those tools call them.

``cross_val_predict``, ``HalvingGridSearchCV`` and Optuna's ``OptunaSearchCV``
(pruning through ``partial_fit``), each real, with the targets users give:
``;``-joined strings, lists of lists and an indicator matrix. Where the tool
itself rules a form out, the test pins what it does and the form that works
(docs/faq.rst says the same).
"""

import numpy as np
import optuna
import pytest
from optuna_integration import OptunaSearchCV
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import HalvingGridSearchCV, KFold, cross_val_predict

from imageclef_concepts import ConceptEncoder, ConceptKNNClassifier, make_concept_images

from .conftest import tiny_cnn

DATA = make_concept_images(40, 5, 16, random_state=0)
FORMS = {
    "strings": [";".join(concepts) for concepts in DATA.concepts],
    "lists": [list(concepts) for concepts in DATA.concepts],  # of 1 to 4 concepts
    "indicator": ConceptEncoder().fit_transform(DATA.concepts),
}


def _by_hand(y, method):
    """What cross_val_predict should give: each fold fitted and asked by hand."""
    y_array = y if isinstance(y, np.ndarray) else np.array(y, dtype=object)
    out = [None] * len(y)
    for train, test in KFold(2).split(DATA.images):
        model = ConceptKNNClassifier().fit(DATA.images[train], y_array[train])
        for row, value in zip(test, getattr(model, method)(DATA.images[test])):
            out[row] = value
    return out


@pytest.mark.parametrize("form", FORMS)
def test_cross_val_predict_predicts_each_form_as_folds_by_hand(form):
    y = FORMS[form]
    predicted = cross_val_predict(ConceptKNNClassifier(), DATA.images, y, cv=KFold(2))
    assert [np.asarray(row).tolist() for row in predicted] == \
        [np.asarray(row).tolist() for row in _by_hand(y, "predict")]


def test_cross_val_predict_probabilities_from_an_indicator():
    Y = FORMS["indicator"]
    proba = cross_val_predict(ConceptKNNClassifier(), DATA.images, Y, cv=KFold(2),
                              method="predict_proba")
    np.testing.assert_array_equal(proba, np.array(_by_hand(Y, "predict_proba")))


def test_cross_val_predict_probabilities_from_concept_lists_name_the_indicator():
    # scikit-learn numbers a 1-d y before the estimator sees it: the estimator
    # refuses the numbers, naming the indicator that works.
    with pytest.raises(ValueError, match=r"cross_val_predict with method='predict_proba'.*"
                                         r"ConceptEncoder\(\)\.fit_transform\(y\)"):
        cross_val_predict(ConceptKNNClassifier(), DATA.images, FORMS["strings"], cv=KFold(2),
                          method="predict_proba")
    # Lists of lists of different lengths fail inside NumPy, before any estimator.
    with pytest.raises(ValueError, match="inhomogeneous"):
        cross_val_predict(ConceptKNNClassifier(), DATA.images, FORMS["lists"], cv=KFold(2),
                          method="predict_proba")
    # Of one length, they are numbered column by column: refused, with the same advice.
    pairs = [["C1", "C2"], ["C1", "C3"], ["C4", "C5"], ["C4", "C1"]] * 10
    with pytest.raises(ValueError, match=r"If you gave strings: .*ConceptEncoder"):
        cross_val_predict(ConceptKNNClassifier(), DATA.images, pairs, cv=KFold(2),
                          method="predict_proba")


@pytest.mark.parametrize("form", ["strings", "indicator"])
def test_halving_search_with_min_resources_as_the_faq_says(form):
    y, grid = FORMS[form], {"n_neighbors": [1, 3, 5]}
    # Its default counts each distinct ';' string as a class (and wants a 1-d y): it
    # fails on a small data set before any fit, in scikit-learn, whatever the estimator.
    with pytest.raises(ValueError, match="min_resources_=|y should be a 1d array"):
        HalvingGridSearchCV(ConceptKNNClassifier(), grid, cv=KFold(2)).fit(DATA.images, y)
    search = HalvingGridSearchCV(ConceptKNNClassifier(), grid, cv=KFold(2),
                                 min_resources=10).fit(DATA.images, y)
    assert search.n_resources_ == [10, 30]
    assert search.best_estimator_.predict(DATA.images).shape[0] == 40


# Slow by nature: Optuna's trials train networks (run by `pytest -m slow`).
@pytest.mark.slow
def test_optuna_prunes_the_network_through_partial_fit_with_classes():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    y = FORMS["strings"][:24]
    search = OptunaSearchCV(
        tiny_cnn(image_size=16, filters=(4,), validation_fraction=None),
        {"learning_rate": optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True)},
        cv=KFold(2), n_trials=2, max_iter=2, enable_pruning=True, error_score="raise",
        refit=False, random_state=0)
    search.fit(DATA.images[:24], y)
    trials = search.study_.trials
    assert [trial.state.name for trial in trials].count("FAIL") == 0
    # Each step (one epoch of partial_fit per fold) was reported to the pruner.
    assert all(sorted(trial.intermediate_values) == [0, 1] for trial in trials
               if trial.state.name == "COMPLETE")
