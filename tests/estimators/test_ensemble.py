"""ConceptEnsemble: each combination against a hand computation on small matrices."""

import re
import warnings

import numpy as np
import pytest
from scipy import sparse
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.utils.metaestimators import available_if

from imageclef_concepts import (
    ConceptCNNClassifier,
    ConceptEnsemble,
    ConceptKNNClassifier,
    DecisionRule,
    MostFrequentConcepts,
    ThresholdTuner,
    imageclef_f1,
    imageclef_f1_score,
)
from imageclef_concepts.concepts._targets import ConceptTargets

from ..conftest import TINY
from ..doubles import FixedConcepts

X = np.arange(3)[:, None]
Y = ["A", "B", "C"]  # any concept lists: the doubles ignore them
# Member one knows A, B; member two knows B, C.
ONE = FixedConcepts(["A", "B"], [[0.9, 0.2], [0.4, 0.6], [0.1, 0.1]])
TWO = FixedConcepts(["B", "C"], [[0.3, 0.8], [0.7, 0.1], [0.2, 0.3]])


def _ensemble(**kwargs):
    return ConceptEnsemble([("one", ONE), ("two", TWO)], **kwargs).fit(X, Y)


def test_vocabularies_are_united_by_concept_name():
    ensemble = _ensemble()
    assert list(ensemble.classes_) == ["A", "B", "C"]


def test_mean_aligns_members_and_counts_unknown_concepts_as_zero():
    ensemble = _ensemble(weights=[3, 1], threshold=0.4)
    # A: (3*0.9 + 1*0)/4, B: (3*0.2 + 0.3)/4, C: (0 + 0.8)/4 for image 0.
    expected = np.array([[0.675, 0.225, 0.2], [0.3, 0.625, 0.025], [0.075, 0.125, 0.075]])
    np.testing.assert_allclose(ensemble.predict_proba(X), expected)
    assert ensemble.predict_concepts(X) == [("A",), ("B",), ()]


def test_per_concept_weights_against_a_hand_computation():
    # One column of weights per concept A, B, C (0 where a member lacks the concept).
    ensemble = _ensemble(weights=[[1, 3, 1], [0, 1, 1]], threshold=0.4)
    expected = np.array([[0.9, (3 * 0.2 + 0.3) / 4, 0.8 / 2],
                         [0.4, (3 * 0.6 + 0.7) / 4, 0.1 / 2],
                         [0.1, (3 * 0.1 + 0.2) / 4, 0.3 / 2]])
    np.testing.assert_allclose(ensemble.predict_proba(X), expected)
    assert ensemble.predict_concepts(X) == [("A", "C"), ("A", "B"), ()]


def test_max_takes_the_highest_probability():
    ensemble = _ensemble(combine="max", threshold=0.75)
    np.testing.assert_allclose(ensemble.predict_proba(X),
                               [[0.9, 0.3, 0.8], [0.4, 0.7, 0.1], [0.1, 0.2, 0.3]])
    assert ensemble.predict_concepts(X) == [("A", "C"), (), ()]


def test_union_intersection_and_vote_of_the_members_own_decisions():
    # At 0.5: member one predicts {A}, {B}, {}; member two {C}, {B}, {}.
    assert _ensemble(combine="union").predict_concepts(X) == [("A", "C"), ("B",), ()]
    assert _ensemble(combine="intersection").predict_concepts(X) == [(), ("B",), ()]
    assert _ensemble(combine="vote", min_votes=2).predict_concepts(X) == [(), ("B",), ()]
    assert _ensemble(combine="vote", min_votes=1).predict_concepts(X) == [("A", "C"), ("B",),
                                                                          ()]


def test_each_member_decides_with_its_own_rule():
    low = FixedConcepts(["A", "B"], ONE.scores, threshold=0.15)
    ensemble = ConceptEnsemble([("one", low), ("two", TWO)], combine="union").fit(X, Y)
    assert ensemble.predict_concepts(X) == [("A", "B", "C"), ("A", "B"), ()]


def test_fallback_fills_empty_predictions_from_the_named_member():
    generous = FixedConcepts(["C"], [[0.0], [0.0], [0.6]])
    ensemble = ConceptEnsemble([("one", ONE), ("two", TWO), ("generous", generous)],
                               combine="intersection", fallback="generous").fit(X, Y)
    # Intersection of three is empty everywhere; the fallback gives image 2 its C.
    assert ensemble.predict_concepts(X) == [(), (), ("C",)]


@pytest.mark.parametrize("kwargs, message", [
    (dict(weights=[1]), "weights has 1 values for 2 estimators"),
    (dict(fallback="three"), "fallback='three' is not one of"),
    (dict(combine="vote", min_votes=3), "min_votes=3 is more than the 2"),
    (dict(weights=[[[1]], [[2]]]), r"one number per estimator .* shape \(2, 1, 1\)"),
    (dict(weights=[[1], [2]]), r"weights has 1 column\(s\) \(one per concept\) but the "
                               "ensemble has 3 concepts"),
    (dict(weights=[[1, 0, 1], [2, 0, 1]]), "positive sum for every concept"),
    (dict(weights=[1 + 0j, 1]), r"weights must be real numbers; got complex"),
    (dict(weights=[True, False]), r"weights must be numbers, not booleans"),
    (dict(weights=[[1, 2], [3]]), r"weights is ragged: its rows have different lengths"),
    (dict(subsample=True), r"subsample must be a fraction .* not the boolean True"),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _ensemble(**kwargs)


def test_huge_weights_are_normalised_without_overflow(tmp_path):
    ensemble = _ensemble(weights=[1e308, 1e308])  # their sum overflows to inf
    expected = _ensemble().predict_proba(X)
    np.testing.assert_allclose(ensemble.predict_proba(X), expected)  # not all zeros
    images = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    members = [("a", MostFrequentConcepts(k=1)), ("b", MostFrequentConcepts(k=2))]
    saved = ConceptEnsemble(members, weights=[1e308, 1e308]).fit(images, ["C1;C2", "C1"])
    saved.save(tmp_path / "huge.zip")  # as a file with such weights is loaded
    loaded = ConceptEnsemble.load(tmp_path / "huge.zip")
    np.testing.assert_allclose(loaded.predict_proba(images), [[1.0, 0.5]] * 2)


@pytest.mark.parametrize("weights, message", [
    ([1, -1], "weights must be finite and non-negative"),
    ([0, 0], "weights must be finite and non-negative"),
    ([np.nan, 1], "weights must be finite and non-negative"),
    ([-1, 3], "weights must be finite and non-negative"),
    ([1, 2, 3], "weights has 3 values for 2 estimators"),
])
def test_weights_set_after_fit_are_checked_at_predict_as_at_fit(weights, message):
    ensemble = _ensemble()
    ensemble.set_params(weights=weights)
    with pytest.raises(ValueError, match=message):
        ensemble.predict_proba(X)
    with pytest.raises(ValueError, match=message):
        ensemble.predict(X)


@pytest.mark.parametrize("combine", ["union", "intersection", "vote"])
def test_a_threshold_that_a_set_combination_ignores_warns_once_at_fit_never_at_predict(combine):
    # It warned at every predict and score (a grid search's every scoring), where the
    # other unused parameters warn once, at fit (review 18).
    votes = {"min_votes": 1} if combine == "vote" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = _ensemble(combine=combine, **votes).predict_concepts(X)  # the default
        _ensemble(combine=combine, threshold=DecisionRule(0.5), **votes)  # the same rule
    for threshold in (0.9, DecisionRule(0.5, max_concepts=1)):
        ensemble = ConceptEnsemble([("one", ONE), ("two", TWO)], combine=combine,
                                   threshold=threshold, **votes)
        with pytest.warns(UserWarning, match=rf"^ConceptEnsemble\(combine='{combine}'\) "
                                             r"decides without threshold=.*'<name>__threshold'"
                          ) as caught:
            ensemble.fit(X, Y)
        assert len(caught) == 1
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert ensemble.predict_concepts(X) == expected
            ensemble.decide(X)


def test_a_grid_search_over_combine_and_threshold_warns_at_its_fits_not_its_scorings(
        tiny_images):
    X, y = tiny_images.images, np.array([";".join(c) for c in tiny_images.concepts], dtype=object)
    ensemble = ConceptEnsemble([("knn", ConceptKNNClassifier(3)),
                                ("top", MostFrequentConcepts())], min_votes=1)
    search = GridSearchCV(ensemble, {"combine": ["vote", "mean"], "threshold": [0.3]},
                          scoring=imageclef_f1, cv=KFold(2), return_train_score=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search.fit(X, y)
    unused = [str(warning.message) for warning in caught if "threshold=0.3" in str(
        warning.message)]
    # The vote's two folds (the mean's won the refit), where each fold's two scorings
    # (test and training images) warned twice each.
    assert len(unused) == 2
    assert all("combine='vote'" in message for message in unused)


class _NeverFitted(FixedConcepts):
    def fit(self, X, y):
        raise AssertionError("a member was fitted before the ensemble warned")


@pytest.mark.parametrize("combine, params, given", [
    # the weights were ignored without a word by the maximum
    ("max", dict(weights=[1, 3]), "weights=[1, 3]: weights is for combine='mean' or 'vote'"),
    # and min_votes by every combination but the vote
    ("mean", dict(min_votes=3), "min_votes=3: min_votes is for combine='vote'"),
    ("max", dict(weights=[1, 3], min_votes=1), "weights=[1, 3] nor min_votes=1: weights is "
                                               "for combine='mean' or 'vote' or 'union' or "
                                               "'intersection'; min_votes is for "
                                               "combine='vote'"),
])
def test_parameters_a_combination_does_not_use_warn_before_any_member_fits(combine, params,
                                                                             given):
    members = [(name, _NeverFitted(["A"], [[0.5]] * 3)) for name in ("one", "two")]
    ensemble = ConceptEnsemble(members, combine=combine, **params)
    with pytest.warns(UserWarning, match=rf"^ConceptEnsemble\(combine='{combine}'\) decides "
                                         rf"without {re.escape(given)}"), \
            pytest.raises(AssertionError, match="a member was fitted before"):
        ensemble.fit(X, Y)


def test_subsample_given_to_fitted_members_warns():
    # prefit=True uses the members as fitted: subsample was ignored without a word
    with pytest.warns(UserWarning, match=r"^ConceptEnsemble\(prefit=True\) does not use "
                                         r"subsample=0.5: its members are used as fitted"):
        ConceptEnsemble([("one", clone(ONE).fit(X, Y)), ("two", clone(TWO).fit(X, Y))],
                        prefit=True, subsample=0.5).fit(X, Y)


@pytest.mark.parametrize("combine, params", [("mean", dict(weights=[1, 3])),
                                             ("vote", dict(min_votes=1)), ("vote", {}),
                                             ("max", dict(min_votes=2, weights=None)),
                                             # their predict_proba, a tuner's, is weighted
                                             ("vote", dict(weights=[1, 3])),
                                             ("union", dict(weights=[1, 3])),
                                             ("intersection", dict(weights=[0.5, 0.5]))])
def test_parameters_a_combination_uses_or_left_at_their_default_do_not_warn(combine, params):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _ensemble(combine=combine, **params)


def test_prefit_uses_fitted_members_and_refuses_unfitted_ones(tiny_images):
    y = [";".join(c) for c in tiny_images.concepts]
    knn = ConceptKNNClassifier(3).fit(tiny_images.images, y)
    ensemble = ConceptEnsemble([("knn", knn)], prefit=True).fit(tiny_images.images, y)
    assert ensemble.estimators_[0] is knn
    with pytest.raises(Exception, match="not fitted"):
        ConceptEnsemble([("knn", ConceptKNNClassifier())], prefit=True).fit(
            tiny_images.images, y)


def test_grid_search_over_weights_and_member_parameters(tiny_images):
    X, y = tiny_images.images, np.array([";".join(c) for c in tiny_images.concepts], dtype=object)
    ensemble = ConceptEnsemble([("knn", ConceptKNNClassifier(3)),
                                ("top", MostFrequentConcepts())], threshold=0.3)
    grid = {"weights": [[1, 0], [1, 1]], "knn__n_neighbors": [1, 5]}
    search = GridSearchCV(ensemble, grid, scoring=imageclef_f1, cv=KFold(2)).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    best = search.best_params_
    by_hand = []
    for train, test in KFold(2).split(X):
        fitted = ConceptEnsemble([("knn", ConceptKNNClassifier(best["knn__n_neighbors"])),
                                  ("top", MostFrequentConcepts())], threshold=0.3,
                                 weights=best["weights"]).fit(X[train], y[train])
        by_hand.append(imageclef_f1_score(y[test], fitted.predict(X[test])))
    assert search.best_score_ == pytest.approx(np.mean(by_hand))


def test_inside_a_threshold_tuner(tiny_images):
    X, y = tiny_images.images, [";".join(c) for c in tiny_images.concepts]
    ensemble = ConceptEnsemble([("a", ConceptKNNClassifier(3)), ("b", ConceptKNNClassifier(7))])
    tuner = ThresholdTuner(ensemble, cv=0.5, refit=False, random_state=0, thresholds=20)
    tuner.fit(X, y)
    np.testing.assert_array_equal(
        tuner.decision_rule_.apply(tuner.estimator_.predict_proba(X)).astype(int),
        ConceptTargets.from_classes(tuner.classes_).transform(tuner.predict(X)).toarray())


@pytest.mark.slow  # networks trained end to end: seconds (the README's 6 minutes)
def test_save_and_load_without_pickle_predict_identically(tmp_path, tiny_images):
    X, y = tiny_images.images, [";".join(c) for c in tiny_images.concepts]
    cnn = ConceptCNNClassifier(**{**TINY, "epochs": 1}).fit(X, y)
    fusion = ConceptEnsemble(
        [("cnn", cnn), ("knn", ConceptKNNClassifier(3, embedding=cnn)),
         ("pixels", ConceptKNNClassifier(5)), ("top", MostFrequentConcepts(k=2))],
        combine="mean", weights=[2, 1, 1, 1], threshold=DecisionRule(0.2, max_concepts=3),
        fallback="top", prefit=False)
    fusion.fit(X, y)
    fusion.save(tmp_path / "fusion.zip")
    loaded = ConceptEnsemble.load(tmp_path / "fusion.zip")
    np.testing.assert_allclose(loaded.predict_proba(X), fusion.predict_proba(X), rtol=1e-6)
    assert loaded.predict_concepts(X) == fusion.predict_concepts(X)
    assert loaded.get_params()["weights"] == [2, 1, 1, 1]
    import zipfile

    names = zipfile.ZipFile(tmp_path / "fusion.zip").namelist()
    assert not any(name.endswith((".pkl", ".pickle", ".joblib")) for name in names)
    assert "members/cnn/model.keras" in names and "members/knn/embedding/model.keras" in names


@pytest.mark.slow
def test_every_concept_estimator_filters_its_label_space(tiny_images):
    from collections import Counter

    X, y = tiny_images.images, [";".join(c) for c in tiny_images.concepts]
    counts = Counter(c for image in tiny_images.concepts for c in image)
    most_common = sorted(c for c, _ in counts.most_common(2))
    frequent = sorted(c for c, n in counts.items() if n >= 5)
    for estimator in (ConceptKNNClassifier(3), MostFrequentConcepts(k=1),
                      ConceptCNNClassifier(**{**TINY, "epochs": 1})):
        top = estimator.set_params(max_labels=2).fit(X, y)
        assert list(top.classes_) == most_common
        assert top.predict_proba(X).shape == (len(X), 2)
        assert list(estimator.set_params(max_labels=None, min_count=5).fit(X, y).classes_) \
            == frequent


class ForeignConcepts(FixedConcepts):
    """A user's member without targets_: ``classes_`` as ``form`` makes it, scores in that order.

    ``form``: "object", "unicode", "list", "reversed" (classes_ and columns reversed),
    "lower" (lower-case names), "short" (one score column too few), "sparse" (decide
    returns a SciPy matrix) or "decision" (decision_function only, in score units).
    """

    def __init__(self, classes=None, scores=None, threshold=0.5, form="object"):
        super().__init__(classes, scores, threshold)
        self.form = form

    def fit(self, X, y):
        names = list(self.classes)
        self.classes_ = {"unicode": np.array(names), "list": names,
                         "reversed": np.array(names[::-1], dtype=object),
                         "lower": np.array([n.lower() for n in names], dtype=object)}.get(
            self.form, np.array(names, dtype=object))
        return self

    def _scores(self, X):
        scores = np.asarray(self.scores, dtype=float)[np.asarray(X)[:, 0]]
        return scores[:, ::-1] if self.form == "reversed" else (
            scores[:, :-1] if self.form == "short" else scores)

    @available_if(lambda self: self.form != "decision")
    def predict_proba(self, X):
        return self._scores(X)

    @available_if(lambda self: self.form == "decision")
    def decision_function(self, X):
        return self._scores(X) - 0.5

    def decide(self, X):
        if self.form == "decision":  # its threshold in score units
            return DecisionRule(self.threshold - 0.5).apply(self.decision_function(X))
        decided = DecisionRule.of(self.threshold).apply(self._scores(X))
        return sparse.csr_matrix(decided) if self.form == "sparse" else decided


@pytest.mark.parametrize("form", ["unicode", "list", "reversed", "lower", "sparse"])
@pytest.mark.parametrize("combine", ["mean", "union"])
def test_a_foreign_members_classes_are_any_sequence_of_names_aligned_by_name(form, combine):
    def members(form):
        return [("one", ForeignConcepts(ONE.classes, ONE.scores, form=form)),
                ("two", TWO)]
    expected = ConceptEnsemble(members("object"), combine=combine).fit(X, Y)
    ensemble = ConceptEnsemble(members(form), combine=combine).fit(X, Y)
    assert list(ensemble.classes_) == ["A", "B", "C"]
    assert ensemble.predict_concepts(X) == expected.predict_concepts(X)
    tuner = ThresholdTuner(ForeignConcepts(ONE.classes, ONE.scores, form=form).fit(X, Y),
                           cv="prefit", refit=False, strategy="per_concept", min_support=1,
                           thresholds=5).fit(X, ["A", "B", "A;B"])
    tuned = tuner.tuned_estimator()  # its per-concept rule in the member's own order
    decided = tuned.decide(X)
    decided = decided.toarray() if sparse.issparse(decided) else decided
    assert [{n.upper() for n in np.asarray(tuned.classes_, dtype=object)[row]}
            for row in decided] == [set(row) for row in tuner.predict(X)]


def test_scores_of_the_wrong_width_name_the_member_and_both_counts():
    short = ForeignConcepts(ONE.classes, ONE.scores, form="short")
    with pytest.raises(ValueError, match=r"ForeignConcepts's scores \(predict_proba\) have 1 "
                                         r"columns but its classes_ has 2"):
        ConceptEnsemble([("one", short), ("two", TWO)]).fit(X, Y).predict(X)
    with pytest.raises(ValueError, match="have 1 columns but its classes_ has 2"):
        ThresholdTuner(short.fit(X, Y), cv="prefit", refit=False).fit(X, Y)


def test_a_decision_function_member_is_refused_by_the_probability_combinations():
    scorer = ForeignConcepts(ONE.classes, ONE.scores, form="decision")
    for combine in ("mean", "max"):
        with pytest.raises(ValueError, match=r"member 'one' \(ForeignConcepts\) has no "
                                             "predict_proba"):
            ConceptEnsemble([("one", scorer), ("two", TWO)], combine=combine).fit(X, Y)
    union = ConceptEnsemble([("one", scorer), ("two", TWO)], combine="union").fit(X, Y)
    assert union.predict_concepts(X)[0] == ("A", "C")
    with pytest.raises(ValueError, match="has no predict_proba"):
        union.set_params(combine="mean").predict(X)


def test_a_prefit_ensemble_of_concept_members_refuses_an_indicator_y():
    members = [("knn", ConceptKNNClassifier(1, pixel_size=4).fit(
        np.zeros((2, 4, 4, 3), np.uint8), ["C1", "C2"]))]
    with pytest.raises(ValueError, match=r"'knn' was fitted on concept lists .* y is an "
                                         "indicator matrix"):
        ConceptEnsemble(members, prefit=True).fit(np.zeros((2, 4, 4, 3), np.uint8),
                                                  np.array([[1, 0], [0, 1]]))
