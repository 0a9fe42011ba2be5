"""The concept-estimator contract, checked on every public estimator and on a user's own."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.multioutput import MultiOutputClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from imageclef_concepts import (
    BackboneEmbedding,
    ConceptCNNClassifier,
    ConceptEncoder,
    ConceptEnsemble,
    ConceptKNNClassifier,
    ConceptMLPClassifier,
    ConceptSpecialists,
    DecisionRule,
    EnsembleTuner,
    MostFrequentConcepts,
    ThresholdTuner,
    imageclef_f1_score,
)
from imageclef_concepts.utils.estimator_checks import (
    check_concept_estimator,
    check_decision_rule,
    check_fit_checks_its_input,
    concept_images,
    parametrize_with_concept_checks,
)


class MeanColour(ClassifierMixin, BaseEstimator):
    """A user's own concept estimator, written with public tools only.

    A concept's probability is how close the image's mean colour is to the
    mean colour of the training images that carry it.
    """

    def __init__(self, threshold=0.5):
        self.threshold = threshold

    def fit(self, X, y):
        if len(X) != len(y):
            raise ValueError("X and y differ in length")
        self.encoder_ = ConceptEncoder().fit(y)
        self.classes_ = self.encoder_.classes_
        Y = self.encoder_.transform(y).astype(bool)
        colours = self._colours(X)
        self.centres_ = np.array([colours[column].mean(axis=0) for column in Y.T])
        return self

    @staticmethod
    def _colours(X):
        return np.asarray(X, dtype=float).mean(axis=(1, 2)) / 255

    def predict_proba(self, X):
        if not hasattr(self, "centres_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("MeanColour is not fitted")
        distances = np.linalg.norm(self._colours(X)[:, None] - self.centres_[None], axis=2)
        return 1 - distances / np.sqrt(3)

    def decide(self, X):
        return DecisionRule.of(self.threshold).apply(self.predict_proba(X))

    def predict(self, X):
        decided = self.decide(X)
        concepts = np.empty(len(decided), dtype=object)
        concepts[:] = [tuple(self.classes_[row]) for row in decided]
        return concepts

    def score(self, X, y):
        return imageclef_f1_score(y, self.predict(X))


TINY_CNN = dict(image_size=16, filters=(4,), dense_units=(8,), epochs=1, random_state=0,
                verbose=0)

def _members():
    return [("knn", ConceptKNNClassifier(n_neighbors=3, pixel_size=4)),
            ("top", MostFrequentConcepts(k=1))]


def _knns():
    return [(f"k{k}", ConceptKNNClassifier(n_neighbors=k, pixel_size=4)) for k in (3, 5)]


# Every library estimator, in each configuration that decides differently.
ESTIMATORS = [
    MostFrequentConcepts(),
    ConceptKNNClassifier(n_neighbors=3, pixel_size=4),
    ConceptKNNClassifier(n_neighbors=3, pixel_size=4, voting="mean_count"),
    *[ConceptEnsemble(_members(), combine=combine)
      for combine in ("mean", "max", "union", "intersection", "vote")],
    ConceptEnsemble(_members(), combine="mean", fallback="top"),
    ThresholdTuner(ConceptKNNClassifier(n_neighbors=3, pixel_size=4), cv=2, thresholds=10),
    ThresholdTuner(ConceptKNNClassifier(n_neighbors=3, pixel_size=4), cv=2, thresholds=10,
                   strategy="per_concept", min_support=1),
    ConceptCNNClassifier(**TINY_CNN),
    ConceptEnsemble.from_grid(ConceptKNNClassifier(pixel_size=4), {"n_neighbors": [1, 3]},
                              subsample=0.75, random_state=0, combine="intersection"),
    EnsembleTuner(ConceptEnsemble(_knns(), combine="vote"), cv=2, thresholds=5),
    EnsembleTuner(ConceptEnsemble(_knns()), tune="weights", bands=2, cv=2, thresholds=5),
    *[ConceptSpecialists(ConceptKNNClassifier(n_neighbors=3, pixel_size=4),
                         [("c2", "C2", MostFrequentConcepts(k=2))], merge=merge, min_images=2)
      for merge in ("union", "replace")],
    # Heads on embeddings, their encoder of random weights kept in model files by identity.
    ConceptKNNClassifier(n_neighbors=3, weights="uniform",
                         embedding=BackboneEmbedding("efficientnetb0", 32, weights=None)),
    ConceptMLPClassifier((8,), epochs=2, random_state=0,
                         embedding=BackboneEmbedding("efficientnetb0", 32, weights=None)),
]

# (estimator, check) -> why it is expected to fail.
EXPECTED_FAILURES = {
    ("MeanColour", "check_predict_returns_y_form"): (
        "the user's estimator takes concept lists only, as its docstring says"),
    ("MeanColour", "check_predict_returns_y_form[paths]"): "X is arrays only",
    ("MeanColour", "check_score_is_the_official_f1[paths]"): "X is arrays only",
    ("MeanColour", "check_decision_rule[paths]"): "X is arrays only",
    ("MeanColour", "check_unseen_concepts_are_misses[paths]"): "X is arrays only",
    ("MeanColour", "check_clone_and_pickle[paths]"): "X is arrays only",
    ("MeanColour", "check_fit_checks_its_input[paths]"): "X is arrays only",
    ("ConceptSpecialists", "check_predict_returns_y_form"): (
        "its trigger 'C2' names a concept, and an indicator's columns name none (an "
        "indicator's trigger is a column number: tests/test_specialists.py)"),
}


def _expected(estimator):
    return {check: why for (name, check), why in EXPECTED_FAILURES.items()
            if name == type(estimator).__name__}


class LinearScores(MeanColour):
    """A user's estimator with decision_function only: ``threshold`` in score units."""

    def __init__(self, threshold=0.0):
        self.threshold = threshold

    def decision_function(self, X):
        return 4 * (MeanColour.predict_proba(self, X) - 0.8)  # negative and positive

    def decide(self, X):
        return DecisionRule.of(self.threshold).apply(self.decision_function(X))

    def __getattribute__(self, name):
        if name == "predict_proba":
            raise AttributeError(name)
        return super().__getattribute__(name)


for _check in ("check_predict_returns_y_form", "check_predict_returns_y_form[paths]",
               "check_score_is_the_official_f1[paths]", "check_decision_rule[paths]",
               "check_unseen_concepts_are_misses[paths]", "check_clone_and_pickle[paths]",
               "check_fit_checks_its_input[paths]"):
    EXPECTED_FAILURES["LinearScores", _check] = EXPECTED_FAILURES["MeanColour", _check]


@parametrize_with_concept_checks(ESTIMATORS + [MeanColour(), LinearScores()],
                                 expected_failed_checks=_expected)
def test_every_estimator_keeps_the_contract(estimator, check):
    check(estimator)


def test_the_decision_rule_is_checked_in_score_units_for_decision_function():
    assert not hasattr(LinearScores(), "predict_proba")

    class IgnoresItsScoreThreshold(LinearScores):
        def decide(self, X):
            return DecisionRule(0.0).apply(self.decision_function(X))

    with pytest.raises(AssertionError, match=r"threshold=-?\d.* is not applied"):
        check_decision_rule(IgnoresItsScoreThreshold())


def test_fit_changing_a_parameter_is_caught():
    class SetsItsThreshold(MeanColour):
        def fit(self, X, y):
            self.threshold = 0.25
            return super().fit(X, y)

    with pytest.raises(AssertionError, match="fit changed the parameter.* threshold"):
        check_fit_checks_its_input(SetsItsThreshold())


def test_an_exception_in_a_check_is_named_by_the_check():
    class Broken(MeanColour):
        def decide(self, X):
            raise KeyError("lost")

    with pytest.raises(AssertionError, match=r"Broken fails check_decision_rule\[arrays\]: "
                                             "KeyError"):
        check_concept_estimator(Broken(), expected_failed_checks={
            **_expected(MeanColour()), "check_score_is_the_official_f1": "",
            "check_unseen_concepts_are_misses": "", "check_clone_and_pickle": "",
            "check_fit_checks_its_input": ""})


def test_the_check_images_suit_a_per_concept_logistic_regression():
    X, concepts = concept_images()
    Y = np.array([[name in row for name in ("C1", "C2", "C3")] for row in concepts])
    assert Y.any(axis=1).all() and not Y.all(axis=0).any() and Y.any(axis=0).all()
    assert _flattened_logistic().fit(X, Y.astype(int)).predict(X).shape == Y.shape


def test_check_concept_estimator_runs_every_check_and_names_a_failure():
    check_concept_estimator(MeanColour(), expected_failed_checks=_expected(MeanColour()))

    class IgnoresItsThreshold(MeanColour):
        def decide(self, X):
            return DecisionRule(0.5).apply(self.predict_proba(X))

    with pytest.raises(AssertionError,
                       match=r"check_decision_rule\[arrays\]: threshold=.* not applied"):
        check_concept_estimator(IgnoresItsThreshold(),
                                expected_failed_checks=_expected(MeanColour()))


def test_the_decision_rule_check_catches_a_predict_that_disagrees_with_decide():
    class PredictsNothing(MeanColour):
        def predict(self, X):
            return np.array([()] * len(X) + [None], dtype=object)[:-1]

    with pytest.raises(AssertionError):
        check_decision_rule(PredictsNothing())


def _flattened_logistic():
    """A user's scikit-learn pipeline: flattened pixels, one logistic regression per concept."""
    return make_pipeline(FunctionTransformer(lambda X: np.asarray(X, float).reshape(len(X), -1)),
                         MultiOutputClassifier(LogisticRegression(max_iter=200)))


def test_a_users_estimators_join_an_ensemble_and_a_tuner_through_public_methods():
    X, concepts = concept_images()
    Y = np.array([[name in row for name in ("C2", "C3")] for row in concepts], dtype=int)
    ensemble = ConceptEnsemble([("mine", MeanColour(threshold=0.9)),
                                ("top", MostFrequentConcepts(k=1))],
                               combine="union").fit(X, concepts)
    mine = MeanColour(threshold=0.9).fit(X, concepts)
    union = {c for row in ensemble.predict(X) for c in row}
    assert set().union(*map(set, mine.predict(X))) | {"C1"} == union
    tuner = ThresholdTuner(_flattened_logistic(), cv=2, thresholds=5).fit(X, Y)
    assert tuner.predict(X).shape == Y.shape
    indicator_ensemble = ConceptEnsemble([("logistic", _flattened_logistic()),
                                          ("top", MostFrequentConcepts(k=1))]).fit(X, Y)
    assert indicator_ensemble.predict(X).shape == Y.shape


def test_tuned_estimator_leaves_the_users_estimator_unchanged():
    X, concepts = concept_images()
    mine = ConceptKNNClassifier(n_neighbors=3, pixel_size=4).fit(X, concepts)
    tuner = ThresholdTuner(mine, cv="prefit", refit=False, thresholds=10).fit(X, concepts)
    tuned = tuner.tuned_estimator()
    assert mine.threshold == 0.5 and not hasattr(mine, "tuning_")
    assert tuned is not mine and tuned.threshold == tuner.decision_rule_
    assert tuner.estimator_.threshold == 0.5
    np.testing.assert_array_equal(tuned.predict_proba(X), mine.predict_proba(X))
    assert list(tuned.predict(X)) == list(tuner.predict(X))


def test_a_subclass_saves_and_loads_as_itself(tmp_path):
    class MyKNN(ConceptKNNClassifier):
        pass

    X, concepts = concept_images()
    model = MyKNN(n_neighbors=3, pixel_size=4).fit(X, concepts)
    model.save(tmp_path / "mine.zip")
    loaded = MyKNN.load(tmp_path / "mine.zip")
    assert type(loaded) is MyKNN
    assert list(loaded.predict(X)) == list(model.predict(X))
