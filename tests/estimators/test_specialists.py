"""ConceptSpecialists: specialists fitted on their trigger's images, run where the base sees it."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold

from imageclef_concepts import (
    ConceptKNNClassifier,
    ConceptSpecialists,
    MostFrequentConcepts,
    imageclef_f1,
)
from imageclef_concepts.concepts._targets import ConceptTargets
from imageclef_concepts.models._base import BaseConceptClassifier
from imageclef_concepts.utils.estimator_checks import concept_images, image_paths


class Spy(MostFrequentConcepts):
    """Records the images it was fitted on and those it was asked about."""

    def _fit(self, X, y):
        super()._fit(X, y)
        self.fitted_on_, self.asked_ = X, []

    def predict_proba(self, X):
        self.asked_.append(X)
        return super().predict_proba(X)


class Lookup(BaseConceptClassifier):
    """Fixed probabilities per image: ``X`` holds image numbers, ``table`` maps each
    concept to its probability on each image."""

    _parameter_constraints: dict = {"table": [dict], "threshold": [float]}

    def __init__(self, table=None, threshold=0.5):
        self.table = table
        self.threshold = threshold

    def _fit(self, X, y):
        self.targets_ = ConceptTargets.from_classes(sorted(self.table))
        self.classes_ = self.targets_.classes_

    def predict_proba(self, X):
        ids = np.asarray(X)[:, 0]
        return np.array([[self.table[c][i] for c in self.classes_] for i in ids])


def _knn(**params):
    return ConceptKNNClassifier(**{"n_neighbors": 5, "pixel_size": 4, "threshold": 0.3,
                                   **params})


@pytest.mark.parametrize("form", ["arrays", "paths"])
def test_a_specialist_sees_exactly_the_images_the_base_decides_its_trigger_on(form):
    images, y = concept_images()
    queries = np.concatenate([images, images[:, ::-1]])  # training images and their mirrors
    truth = np.array(["C2" in row for row in y])
    base = _knn().fit(images, y)
    triggered = base.decide(queries)[:, list(base.classes_).index("C2")]  # by hand
    assert 0 < triggered.sum() < len(queries)
    assert (triggered[:12] != truth).any()  # the base's decision, not the truth
    with image_paths(np.concatenate([images, queries])) as paths:
        X, X_query = (images, queries) if form == "arrays" else (paths[:12], paths[12:])
        model = ConceptSpecialists(_knn(), [("c2", "C2", Spy(k=1))], min_images=2).fit(X, y)
        model.predict(X_query)
        spy = model.named_specialists_["c2"]
        (asked,) = spy.asked_
        if form == "arrays":
            np.testing.assert_array_equal(spy.fitted_on_, images[truth])
            np.testing.assert_array_equal(asked, queries[triggered])
        else:
            assert spy.fitted_on_ == [p for p, keep in zip(X, truth) if keep]
            assert asked == [p for p, keep in zip(X_query, triggered) if keep]
    assert model.n_trigger_images_ == {"c2": int(truth.sum())}


BASE = {"US": [0.9, 0.3, 0.6, 0.0], "A": [0.8, 0.7, 0.0, 0.0], "B": [0.2, 0.0, 0.7, 0.0],
        "XR": [0.0, 0.0, 0.0, 0.9]}
SPECIALIST = {"US": [0.4, 0.0, 0.9, 0.0], "B": [0.9, 0.0, 0.1, 0.0],
              "C": [0.6, 0.0, 0.2, 0.0]}


@pytest.mark.parametrize("merge, concepts, probabilities", [
    # Image 0: the base has US (trigger) and A, the specialist B and C (not US: it stays).
    # Image 1: US 0.3, no trigger; image 2: the specialist drops B in "replace" only.
    ("union", [("A", "B", "C", "US"), ("A",), ("B", "US"), ("XR",)],
     {(0, "B"): 0.9, (0, "US"): 0.9, (2, "B"): 0.7, (2, "US"): 0.9, (2, "C"): 0.2}),
    ("replace", [("A", "B", "C", "US"), ("A",), ("US",), ("XR",)],
     {(0, "B"): 0.9, (0, "US"): 0.9, (2, "B"): 0.1, (2, "US"): 0.6, (2, "C"): 0.2}),
])
def test_the_merge_rules_on_a_case_computed_by_hand(merge, concepts, probabilities):
    X, y = np.arange(4)[:, np.newaxis], ["US;A", "A", "US;B", "XR"]
    model = ConceptSpecialists(Lookup(BASE), [("us", "US", Lookup(SPECIALIST))], merge=merge,
                               min_images=2).fit(X, y)
    assert list(model.classes_) == ["A", "B", "C", "US", "XR"]
    assert model.predict_concepts(X) == concepts
    scores = model.predict_proba(X)
    for (image, concept), expected in probabilities.items():
        assert scores[image, list(model.classes_).index(concept)] == pytest.approx(expected)
    assert scores[1, 2] == 0 and scores[1, 3] == pytest.approx(0.3)  # untriggered: the base's
    np.testing.assert_array_equal(scores >= 0.5, model.decide(X))  # one threshold: decide


def test_nested_parameters_under_grid_search():
    X, y = concept_images()
    model = ConceptSpecialists(_knn(), [("c2", "C2", _knn())], min_images=2)
    assert {"base__threshold", "c2", "c2__n_neighbors"} <= set(model.get_params())
    search = GridSearchCV(model, {"c2__n_neighbors": [1, 3], "base__threshold": [0.3, 0.6]},
                          cv=KFold(2), scoring=imageclef_f1, error_score="raise").fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    best = search.best_estimator_
    assert best.named_specialists_["c2"].n_neighbors == search.best_params_["c2__n_neighbors"]
    assert best.base_.threshold == search.best_params_["base__threshold"]
    assert model.specialists[0][2].n_neighbors == 5  # the search's clones, not the original
    replaced = clone(model).set_params(c2=MostFrequentConcepts(), merge="replace")
    assert isinstance(replaced.specialists[0][2], MostFrequentConcepts)
    assert replaced.specialists[0][:2] == ("c2", "C2")


def test_a_saved_model_loads_and_predicts_identically(tmp_path):
    X, y = concept_images()
    model = ConceptSpecialists(_knn(), [("c2", "C2", _knn(n_neighbors=2)),
                                        ("c1", "c1 ", MostFrequentConcepts(k=2))],
                               merge="replace", min_images=2).fit(X, y)
    model.save(tmp_path / "specialists.zip")
    loaded = ConceptSpecialists.load(tmp_path / "specialists.zip")
    queries = np.concatenate([X, X[:, ::-1]])
    np.testing.assert_array_equal(loaded.predict_proba(queries), model.predict_proba(queries))
    assert list(loaded.predict(queries)) == list(model.predict(queries))
    assert loaded.n_trigger_images_ == model.n_trigger_images_ == {"c2": 6, "c1": 8}
    assert loaded.merge == "replace" and loaded.specialists[1][1] == "c1 "


def test_an_indicator_names_its_trigger_by_column():
    X, y = concept_images()
    Y = np.array([[name in row for name in ("C1", "C2", "C3")] for row in y], dtype=int)
    model = ConceptSpecialists(_knn(), [("c2", 1, Spy(k=1))], min_images=2).fit(X, Y)
    assert model.predict(X).shape == Y.shape
    np.testing.assert_array_equal(model.named_specialists_["c2"].fitted_on_, X[Y[:, 1] == 1])
    with pytest.raises(ValueError, match="indicator matrix of 3 columns, so its trigger must "
                                         "be a column number"):
        ConceptSpecialists(_knn(), [("c2", "C2", _knn())], min_images=2).fit(X, Y)


class NeverFitted(MostFrequentConcepts):
    def fit(self, X, y, **fit_params):
        raise AssertionError("the base was fitted before the specialists were checked")


@pytest.mark.parametrize("specialists, params, message", [
    ([("us", "C9", _knn())], {}, r"'us': its trigger concept 'C9' is on no training image"),
    ([("us", "C2", _knn())], {"min_images": 7},
     r"'us': only 6 training images carry its trigger concept 'C2', fewer than min_images=7"),
    ([("us", "C2", _knn()), ("us", "C1", _knn())], {}, r"unique; \['us'\] are repeated"),
    ([("base", "C2", _knn())], {}, r"may not be a parameter's \(\['base'\]\)"),
    ([("a__b", "C2", _knn())], {}, "nor hold '__'"),
    ([("a/b", "C2", _knn())], {}, r"'a/b' in specialists cannot name a member"),
    ([("..", "C2", _knn())], {}, r"'\.\.' in specialists cannot name a member"),
    ([("us", _knn())], {}, r"specialists\[0\] must be \(name, trigger concept, estimator\)"),
    ([], {}, "specialists is empty"),
])
def test_bad_specialists_are_refused_before_anything_is_fitted(specialists, params, message):
    X, y = concept_images()
    with pytest.raises(ValueError, match=message):
        ConceptSpecialists(NeverFitted(), specialists, **{"min_images": 2, **params}).fit(X, y)


def test_a_trigger_the_base_cannot_predict_is_refused():
    X, y = concept_images()
    with pytest.raises(ValueError, match=r"MostFrequentConcepts\) does not know 'C2', the "
                                         "trigger of specialist 'c2'.*min_count"):
        ConceptSpecialists(MostFrequentConcepts(min_count=7), [("c2", "C2", _knn())],
                           min_images=2).fit(X, y)
