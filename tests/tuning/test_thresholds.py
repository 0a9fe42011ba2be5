
import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.metrics import f1_score
from sklearn.model_selection import KFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.multioutput import MultiOutputClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import LinearSVC

from imageclef_concepts import (
    ConceptCNNClassifier,
    ConceptEncoder,
    ThresholdTuner,
    imageclef_f1_score,
    read_concepts,
)

from ..conftest import TINY, shared_data

ROCO = ("roco-v1-concepts", "roco_v1_validation_radiology_concepts.tsv")


class ScoresAsFeatures(ClassifierMixin, BaseEstimator):
    """Test double: its 'features' are the probabilities it predicts."""

    def fit(self, X, y):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict_proba(self, X):
        return np.asarray(X, dtype=float)


def _planted_case(rng, n_images=400, n_concepts=8):
    scores = rng.random((n_images, n_concepts))
    planted = np.round(np.linspace(0.2, 0.9, n_concepts), 2)  # on a 0.01 grid
    return scores, (scores >= planted).astype(int), planted


# ------------------------------------------------------------ the threshold

def test_global_threshold_maximises_the_official_score():
    rng = np.random.default_rng(0)
    scores = rng.random((300, 12))
    y = (scores + rng.normal(0, 0.3, scores.shape) > 0.8).astype(int)
    tuner = ThresholdTuner(ScoresAsFeatures().fit(scores, y), cv="prefit", refit=False,
                           thresholds=50, store_cv_results=True).fit(scores, y)
    candidates = tuner.cv_results_["thresholds"]
    by_hand = [imageclef_f1_score(y, (scores >= t).astype(int)) for t in candidates]
    np.testing.assert_allclose(tuner.cv_results_["scores"], by_hand, atol=1e-12)
    assert tuner.best_threshold_ == candidates[int(np.argmax(by_hand))]
    assert tuner.best_score_ == pytest.approx(max(by_hand))
    assert tuner.score(scores, y) == pytest.approx(max(by_hand))


def test_explicit_threshold_grid():
    rng = np.random.default_rng(1)
    scores, y, _ = _planted_case(rng)
    tuner = ThresholdTuner(ScoresAsFeatures().fit(scores, y), cv="prefit", refit=False,
                           thresholds=[0.9, 0.1, 0.5], store_cv_results=True).fit(scores, y)
    np.testing.assert_array_equal(tuner.cv_results_["thresholds"], [0.1, 0.5, 0.9])
    assert tuner.best_threshold_ == 0.5


class _FitSpy(ScoresAsFeatures):
    def fit(self, X, y):
        raise AssertionError("the estimator was fitted before thresholds was checked")


@pytest.mark.parametrize("thresholds", [2**40, np.int64(10**12), 2**63])
def test_a_candidate_grid_beyond_memory_is_refused_before_fitting(thresholds):
    # 10**8 candidates on 40 images ended in NumPy's MemoryError naming nothing, after
    # fitting every fold; 2**63 in an IndexError
    rng = np.random.default_rng(0)
    scores = rng.random((40, 3))
    y = (scores > 0.5).astype(int)
    with pytest.raises(ValueError, match=rf"^thresholds={int(thresholds)}: .* candidate "):
        ThresholdTuner(_FitSpy(), cv=2, thresholds=thresholds).fit(scores, y)


@pytest.mark.parametrize("thresholds, shown", [([-0.1, 0.5], "-0.1"), ([0.5, 1.5], "1.5")])
def test_probability_thresholds_outside_0_1_are_refused_before_fitting(thresholds, shown):
    # Taken silently: a candidate above 1 predicts no concept, one below 0 every concept
    # (hostile review: a parameter checked only after long work, or dropped silently).
    scores = np.random.default_rng(0).random((40, 3))
    with pytest.raises(ValueError, match=rf"^thresholds must lie in \[0, 1\], the scores "
                                         rf"being probabilities .*got {shown}\.$"):
        ThresholdTuner(_FitSpy(), cv=2, thresholds=thresholds).fit(scores, scores > 0.5)


def test_decision_scores_take_thresholds_outside_0_1():
    # A decision_function's scores are not probabilities: its candidates may lie anywhere.
    X = np.arange(20.0)[:, None]
    y = np.c_[X[:, 0] > 9, X[:, 0] < 5].astype(int)
    tuner = ThresholdTuner(RidgeClassifier(), cv=2, thresholds=[-1.0, 0.0, 1.0]).fit(X, y)
    assert tuner.best_threshold_ in (-1.0, 0.0, 1.0)


@pytest.mark.parametrize("scoring, message", [
    ("f1_sample", r"^scoring='f1_sample' is not a scorer name \(did you mean 'f1_samples'\?\): "
                  r"see sklearn.metrics.get_scorer_names\(\)"),
    ("qqqq", r"^scoring='qqqq' is not a scorer name: see "),
    ("roc_auc", r"^scoring=make_scorer\(roc_auc_score.* scores .*, not predictions"),
])
def test_a_scoring_that_cannot_score_thresholds_is_refused_before_fitting(scoring, message):
    # A typo ('f1_sample') was refused only after every fold was fitted; a scorer of
    # probabilities failed on the predictions after them too.
    scores = np.random.default_rng(0).random((40, 3))
    with pytest.raises(ValueError, match=message):
        ThresholdTuner(_FitSpy(), scoring=scoring, cv=2).fit(scores, scores > 0.5)


def test_min_support_given_to_the_global_strategy_warns_before_fitting():
    # min_support is for per-concept thresholds: strategy="global" dropped it silently
    scores = np.random.default_rng(0).random((40, 3))
    with pytest.warns(UserWarning, match=r"^ThresholdTuner\(strategy='global'\) does not use "
                                         r"min_support=3: it is for strategy='per_concept'"), \
            pytest.raises(AssertionError, match="fitted before thresholds was checked"):
        ThresholdTuner(_FitSpy(), cv=2, min_support=3).fit(scores, scores > 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ThresholdTuner(ScoresAsFeatures(), cv=2, thresholds=5, strategy="per_concept",
                       min_support=3).fit(scores, scores > 0.5)


def test_per_concept_recovers_planted_thresholds():
    rng = np.random.default_rng(2)
    scores, y, planted = _planted_case(rng)
    tuner = ThresholdTuner(ScoresAsFeatures().fit(scores, y), cv="prefit", refit=False,
                           thresholds=np.linspace(0, 1, 101), strategy="per_concept",
                           min_support=5)
    tuner.fit(scores, y)
    assert tuner.best_threshold_.shape == (8,)
    np.testing.assert_allclose(tuner.best_threshold_, planted, atol=0.011)
    assert tuner.best_score_ == pytest.approx(1.0)
    assert tuner.score(scores, y) == pytest.approx(1.0)


def test_rare_concepts_keep_the_global_threshold():
    rng = np.random.default_rng(3)
    scores, y, _ = _planted_case(rng)
    y[:, 0] = 0
    y[:3, 0] = 1  # three positives only
    tuner = ThresholdTuner(ScoresAsFeatures().fit(scores, y), cv="prefit", refit=False,
                           strategy="per_concept", min_support=10).fit(scores, y)
    global_tuner = ThresholdTuner(ScoresAsFeatures().fit(scores, y), cv="prefit",
                                  refit=False).fit(scores, y)
    assert tuner.best_threshold_[0] == global_tuner.best_threshold_


def test_min_and_max_concepts():
    rng = np.random.default_rng(4)
    scores = rng.random((50, 20)) ** 3
    y = (scores > 0.5).astype(int)
    y[:, 0] = 1
    base = ScoresAsFeatures().fit(scores, y)
    tuner = ThresholdTuner(base, cv="prefit", refit=False, thresholds=[0.99],
                           min_concepts=2, max_concepts=4).fit(scores, y)
    counts = tuner.predict(scores).sum(axis=1)
    assert counts.min() == 2  # at 0.99 almost nothing passes: the top 2 are kept
    top2 = np.argsort(-scores, axis=1)[:, :2]
    assert all(set(np.flatnonzero(row)) == set(best) for row, best in
               zip(tuner.predict(scores), top2))
    low = ThresholdTuner(base, cv="prefit", refit=False, thresholds=[0.0],
                         max_concepts=4).fit(scores, y)
    assert (low.predict(scores).sum(axis=1) == 4).all()
    with pytest.raises(ValueError, match="max_concepts=1 is below min_concepts=2"):
        ThresholdTuner(base, cv="prefit", refit=False, min_concepts=2,
                       max_concepts=1).fit(scores, y)


# ------------------------------------------------------------------- cv forms

class CountingKFold(KFold):
    calls = 0

    def split(self, X, y=None, groups=None):
        CountingKFold.calls += 1
        return super().split(X, y, groups)


@pytest.mark.parametrize("cv", [3, KFold(3, shuffle=True, random_state=0), 0.3, "prefit"])
def test_every_cv_form(cv):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 4))
    y = (X[:, :3] > 0).astype(int)
    estimator = KNeighborsClassifier(5)
    if cv == "prefit":
        estimator.fit(X, y)
    tuner = ThresholdTuner(estimator, cv=cv, refit=cv != "prefit", thresholds=20).fit(X, y)
    assert 0 <= tuner.best_threshold_ <= 1 and tuner.best_score_ > 0.5
    assert tuner.predict(X).shape == (120, 3)
    assert tuner.n_features_in_ == 4
    if cv == "prefit":
        assert tuner.estimator_ is estimator


def test_splits_are_drawn_once():
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(60, 3)), (rng.random((60, 2)) > 0.5).astype(int)
    CountingKFold.calls = 0
    ThresholdTuner(KNeighborsClassifier(3), cv=CountingKFold(3), thresholds=5).fit(X, y)
    assert CountingKFold.calls == 1


def test_refit_false_keeps_the_estimator_of_the_split():
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(100, 3)), (rng.random((100, 2)) > 0.5).astype(int)
    tuner = ThresholdTuner(KNeighborsClassifier(3), cv=0.3, refit=False, random_state=0,
                           thresholds=5).fit(X, y)
    assert tuner.estimator_.n_samples_fit_ == 70
    refitted = ThresholdTuner(KNeighborsClassifier(3), cv=0.3, thresholds=5).fit(X, y)
    assert refitted.estimator_.n_samples_fit_ == 100
    with pytest.raises(ValueError, match="refit=False keeps the estimator .* 3 splits"):
        ThresholdTuner(KNeighborsClassifier(3), cv=3, refit=False).fit(X, y)
    with pytest.raises(ValueError, match="set refit=False"):
        ThresholdTuner(KNeighborsClassifier(3).fit(X, y), cv="prefit").fit(X, y)


# --------------------------------------------------------- estimator kinds

@pytest.mark.parametrize("estimator", [
    KNeighborsClassifier(5),
    RandomForestClassifier(20, random_state=0),
    MultiOutputClassifier(LogisticRegression()),
    OneVsRestClassifier(LogisticRegression()),
    OneVsRestClassifier(LinearSVC()),  # decision_function only
], ids=["knn", "forest", "multioutput", "one_vs_rest", "decision_function"])
def test_any_multilabel_estimator(estimator):
    rng = np.random.default_rng(8)
    X = rng.normal(size=(150, 5))
    y = (X[:, :4] + rng.normal(0, 0.5, (150, 4)) > 0.3).astype(int)
    tuner = ThresholdTuner(estimator, cv=3, thresholds=30).fit(X, y)
    predicted = tuner.predict(X)
    assert predicted.shape == (150, 4)
    assert tuner.score(X, y) == pytest.approx(imageclef_f1_score(y, predicted))
    assert tuner.score(X, y) > 0.6


def test_a_label_never_positive_in_a_fold():
    X = np.arange(40, dtype=float)[:, None]
    y = np.zeros((40, 2), dtype=int)
    y[:, 0] = X[:, 0] % 2
    y[-5:, 1] = 1  # label 1 only in the last fold
    tuner = ThresholdTuner(KNeighborsClassifier(3), cv=4, thresholds=5).fit(X, y)
    assert tuner.predict(X).shape == (40, 2)


def test_custom_scoring_and_its_limits():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(120, 4))
    y = (X[:, :3] > 0).astype(int)
    samples_f1 = lambda t, p: f1_score(t, p, average="samples", zero_division=0)  # noqa: E731
    tuner = ThresholdTuner(KNeighborsClassifier(5), scoring=samples_f1, cv=3, thresholds=10,
                           store_cv_results=True).fit(X, y)
    assert len(tuner.cv_results_["scores"]) == 10
    by_name = ThresholdTuner(KNeighborsClassifier(5), scoring="f1_micro", cv=3,
                             thresholds=10).fit(X, y)
    assert 0 < by_name.best_score_ <= 1
    with pytest.raises(ValueError, match="per_concept.*official"):
        ThresholdTuner(KNeighborsClassifier(5), scoring="f1_micro",
                       strategy="per_concept").fit(X, y)


@pytest.mark.slow
def test_with_the_cnn_and_concept_lists_from_paths(tmp_path, tiny_images):
    from PIL import Image

    paths = []
    for index, image in enumerate(tiny_images.images):
        Image.fromarray(image).save(tmp_path / f"{index}.png")
        paths.append(str(tmp_path / f"{index}.png"))
    y = np.array([";".join(c) for c in tiny_images.concepts], dtype=object)
    tuner = ThresholdTuner(ConceptCNNClassifier(**TINY), cv=2, thresholds=10,
                           store_cv_results=True)
    tuner.fit(np.array(paths), y)
    assert list(tuner.classes_) == list(tuner.estimator_.classes_)
    predicted = tuner.predict(paths)
    assert predicted.dtype == object and len(predicted) == 40
    assert tuner.predict_concepts(paths) == [tuple(p) for p in predicted]
    assert tuner.predict_proba(paths).shape == (40, 5)
    assert tuner.score(paths, y) == pytest.approx(imageclef_f1_score(y, predicted))


@pytest.mark.slow
def test_concepts_unknown_to_the_estimator_count_as_misses(tiny_images):
    # prefit on two concepts; the tuning truth has a third the model never saw
    X = tiny_images.images[:20]
    model = ConceptCNNClassifier(**TINY).fit(X, ["C1", "C2"] * 10)
    y = np.array(["C1;C3", "C2;C3"] * 10, dtype=object)
    tuner = ThresholdTuner(model, cv="prefit", refit=False, thresholds=[0.0],
                           store_cv_results=True).fit(X, y)
    # at threshold 0 both known concepts are predicted: F1 = 2*1/(2+2) = 0.5
    assert tuner.cv_results_["scores"][0] == pytest.approx(0.5)


# --------------------------------------------------- realistic statistics

def _simulated_roco(rng):
    _, concepts, _ = read_concepts(shared_data(*ROCO))
    encoder = ConceptEncoder(sparse_output=True)
    Y = encoder.fit_transform(concepts).toarray().astype(bool)
    frequency = Y.mean(axis=0)
    # A classifier's scores: signal grows with how often a concept was seen.
    strength = np.clip(np.log10(frequency * len(Y) + 1) / 3, 0.05, 1.0)
    noise = rng.normal(0, 1, Y.shape)
    logits = -4 + 3.5 * strength * Y + noise
    scores = 1 / (1 + np.exp(-logits))
    return scores, Y.astype(int)


@pytest.mark.slow
def test_on_roco_statistics_tuned_beats_fixed_thresholds_on_held_out():
    rng = np.random.default_rng(10)
    scores, Y = _simulated_roco(rng)
    tune, held_out = np.arange(0, 6000), np.arange(6000, len(Y))
    results = {}
    for strategy in ("global", "per_concept"):
        tuner = ThresholdTuner(ScoresAsFeatures().fit(scores, Y), cv="prefit", refit=False,
                               strategy=strategy, min_support=20, thresholds=100)
        tuner.fit(scores[tune], Y[tune])
        results[strategy] = tuner.score(scores[held_out], Y[held_out])
    fixed = {t: imageclef_f1_score(Y[held_out], (scores[held_out] >= t).astype(int))
             for t in (0.5, 0.1)}
    assert results["global"] > fixed[0.5] and results["global"] > fixed[0.1]
    assert results["per_concept"] >= results["global"] - 1e-3


# ------------------------------------------------------ the rule and its saving

def test_tuner_produces_a_decision_rule_that_predicts_as_it_does():
    rng = np.random.default_rng(5)
    scores, y, _ = _planted_case(rng)
    tuner = ThresholdTuner(ScoresAsFeatures().fit(scores, y), cv="prefit", refit=False,
                           strategy="per_concept", min_support=5, min_concepts=1,
                           max_concepts=3).fit(scores, y)
    rule = tuner.decision_rule_
    assert rule.per_concept and rule.min_concepts == 1 and rule.max_concepts == 3
    np.testing.assert_array_equal(rule.apply(scores).astype(int), tuner.predict(scores))


def test_folds_with_different_vocabularies_are_aligned_by_concept():
    from imageclef_concepts import ConceptKNNClassifier

    rng = np.random.default_rng(6)
    X = rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)
    # C9 occurs only in the first five images: the folds' models disagree on
    # their vocabularies, and every fold's scores must land in the right column.
    y = [("C1", "C9") if i < 5 else ("C1",) if i % 2 else ("C2",) for i in range(30)]
    tuner = ThresholdTuner(ConceptKNNClassifier(n_neighbors=3, pixel_size=4), cv=KFold(3),
                           thresholds=10, strategy="per_concept", min_support=1).fit(X, y)
    assert list(tuner.classes_) == ["C1", "C2", "C9"]
    assert tuner.decision_rule_.threshold.shape == (3,)
    assert all(set(p) <= {"C1", "C2", "C9"} for p in tuner.predict(X))


@pytest.mark.slow
def test_tuned_cnn_saves_whole_and_predicts_identically(tmp_path, tiny_images):
    cnn = ConceptCNNClassifier(**{**TINY, "epochs": 1})
    y = [";".join(c) for c in tiny_images.concepts]
    tuner = ThresholdTuner(cnn, cv=0.5, refit=False, random_state=0, strategy="per_concept",
                           min_support=1, min_concepts=1, max_concepts=2)
    tuner.fit(tiny_images.images, y)
    tuner.save(tmp_path / "tuned.keras")
    loaded = ConceptCNNClassifier.load(tmp_path / "tuned.keras")
    assert loaded.threshold == tuner.decision_rule_
    expected = tuner.predict(tiny_images.images)
    got = loaded.predict(tiny_images.images)
    assert list(got) == list(expected)
    assert all(1 <= len(concepts) <= 2 for concepts in got)


def test_tuned_estimator_without_a_threshold_parameter_says_so():
    from sklearn.linear_model import RidgeClassifier

    X = np.arange(8.0)[:, None]
    y = np.c_[X[:, 0] > 3, X[:, 0] < 5].astype(int)
    tuner = ThresholdTuner(RidgeClassifier(), cv=2, thresholds=5).fit(X, y)
    with pytest.raises(TypeError, match="RidgeClassifier has no threshold parameter"):
        tuner.tuned_estimator()
