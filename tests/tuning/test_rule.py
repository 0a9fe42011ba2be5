"""ThresholdTuner's count model (coverage tuned with the threshold) and shrunk thresholds."""

import joblib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import sparse
from sklearn.model_selection import KFold
from sklearn.utils._param_validation import InvalidParameterError

from imageclef_concepts import (
    ConceptCNNClassifier,
    ConceptCountRegressor,
    ConceptKNNClassifier,
    DecisionRule,
    ModelFileError,
    ThresholdTuner,
    imageclef_f1_score,
)
from imageclef_concepts.concepts._metrics import threshold_curve
from imageclef_concepts.models._decision import within_bounds
from imageclef_concepts.tuning._rule import (
    _clears_one_standard_error,
    cross_fitted_intervals,
    shrunk_thresholds,
)

from ..conftest import TINY
from ..models.test_archive import rewritten
from ..tuning.test_thresholds import ScoresAsFeatures


def _tuner(scores, y, **params):
    params = {"thresholds": 50, "random_state": 0, **params}
    return ThresholdTuner(ScoresAsFeatures().fit(scores, y), cv="prefit", refit=False,
                          **params).fit(scores, y)


def _predictable_counts(rng, n=600, n_concepts=20):
    """Each image's concepts outscore its others, but the level moves from image to image.

    No global threshold separates them; the count is readable from the
    sorted scores (how far the sum lies below ``n_concepts`` x the top).
    """
    counts = rng.integers(1, 9, n)
    level = rng.uniform(0.3, 0.9, n)[:, None]
    y = (rng.permuted(np.tile(np.arange(n_concepts), (n, 1)), axis=1)
         < counts[:, None]).astype(int)
    scores = np.where(y == 1, level, level - 0.25) + rng.normal(0, 0.01, y.shape)
    return np.clip(scores, 0, 1), y


def _unpredictable_counts(rng, n=600, n_concepts=20):
    """Every image has the same sorted scores; its count (1-8) is drawn independently."""
    scores = rng.permuted(np.tile(np.linspace(0.95, 0.05, n_concepts), (n, 1)), axis=1)
    counts = rng.integers(1, 9, n)
    ranks = np.argsort(np.argsort(-scores, axis=1), axis=1)
    return scores, (ranks < counts[:, None]).astype(int)


COVERAGES = [None, 0.5, 0.8, 0.9]


# ------------------------------------------- the curve is the rule's official F1

# Few distinct values: ties everywhere, NaN (an unreadable image or concept) among them.
TIED = st.sampled_from([0.0, 0.25, 0.5, 0.5, 1.0, np.nan])
GRID = [0.0, 0.25, 0.5, 0.75, 1.0]


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (6, 5), elements=TIED).filter(lambda s: not np.isnan(s).all()),
       arrays(bool, (6, 5)).filter(np.any),
       st.integers(0, 3), st.sampled_from([None, 1, 2, 3]))
def test_the_tuner_scores_each_candidate_as_its_rule_scores(scores, truth, low, high):
    if high is not None and high < low:
        low, high = high, low
    y = truth.astype(int)
    tuner = ThresholdTuner(ScoresAsFeatures().fit(scores, y), cv="prefit", refit=False,
                           thresholds=GRID, min_concepts=low, max_concepts=high,
                           store_cv_results=True).fit(scores, y)
    official = [imageclef_f1_score(y, DecisionRule(t, min_concepts=low, max_concepts=high)
                                   .apply(scores).astype(int)) for t in GRID]
    assert tuner.cv_results_["scores"] == pytest.approx(official, abs=1e-12)
    assert tuner.best_score_ == pytest.approx(tuner.score(scores, y), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (6, 5), elements=TIED | st.sampled_from([-np.inf, np.inf])),
       arrays(bool, (6, 5)).filter(np.any), arrays(np.int64, (2, 6), elements=st.integers(0, 5)))
def test_the_curve_with_per_image_bounds_is_the_official_f1_of_the_bounded_rule(
        scores, truth, bounds):
    low, high = bounds.min(axis=0), bounds.max(axis=0)  # a count interval per image
    curve = threshold_curve(scores, sparse.csr_matrix(truth), truth.sum(axis=1), GRID,
                            low[:, None], high[:, None])
    official = [imageclef_f1_score(truth.astype(int), within_bounds(
        scores, scores >= t, low, high).astype(int)) for t in GRID]
    assert curve == pytest.approx(official, abs=1e-12)


def test_a_bound_inside_a_tie_credits_only_the_columns_the_rule_keeps():
    scores, y = np.full((4, 2), 0.5), np.array([[0, 1]] * 4)  # the rule keeps column 0
    tuner = _tuner(scores, y, min_concepts=1, thresholds=[0.9])
    assert tuner.best_score_ == tuner.score(scores, y) == 0.0


def test_a_nan_concept_never_takes_the_place_of_a_readable_one():
    rule = DecisionRule(0.5, min_concepts=1)
    assert rule.apply(np.array([[np.nan, -np.inf, 0.1]])).tolist() == [[False, False, True]]
    assert rule.apply(np.array([[np.nan, -np.inf]])).tolist() == [[False, True]]


def test_a_count_model_is_chosen_when_the_count_is_predictable():
    rng = np.random.default_rng(0)
    scores, y = _predictable_counts(rng)
    held_out, y_held_out = _predictable_counts(rng)
    plain = _tuner(scores, y)
    counted = _tuner(scores, y, count_coverage=COVERAGES, store_cv_results=True)
    assert counted.count_coverage_ in (0.5, 0.8, 0.9)
    assert counted.decision_rule_.count_model.coverage == counted.count_coverage_
    assert max(counted.cv_results_["count_scores"][None]) == pytest.approx(plain.best_score_)
    gain = (imageclef_f1_score(y_held_out, counted.predict(held_out))
            - imageclef_f1_score(y_held_out, plain.predict(held_out)))
    assert gain > 0.2


def test_no_count_model_when_the_count_carries_no_signal():
    # The sorted scores are the same for every image: the count model can only
    # clip every image to the same count, which the best threshold already is.
    scores, y = _unpredictable_counts(np.random.default_rng(1))
    tuner = _tuner(scores, y, count_coverage=COVERAGES, store_cv_results=True)
    assert tuner.count_coverage_ is None and tuner.decision_rule_.count_model is None
    assert all(max(curve) <= tuner.best_score_ for curve in
               tuner.cv_results_["count_scores"].values())


def test_a_count_model_must_gain_more_than_one_standard_error():
    # Gains of 0.1, -0.1, 0.05, 0: mean 0.0125, standard error 0.085 / 2.
    assert not _clears_one_standard_error(np.array([0.1, -0.1, 0.05, 0.0]))
    # Gains of 0.1, 0.1, 0.1, 0.12: mean 0.105, standard error 0.01 / 2.
    assert _clears_one_standard_error(np.array([0.1, 0.1, 0.1, 0.12]))
    assert not _clears_one_standard_error(np.zeros(5))


def test_intervals_are_cross_fitted_never_from_the_image_itself():
    rng = np.random.default_rng(2)
    scores, y = _predictable_counts(rng, n=200)
    n_true = y.sum(axis=1)
    low, high = cross_fitted_intervals(scores, n_true, 0.8, seed=3)
    for train, test in KFold(5, shuffle=True, random_state=3).split(scores):
        model = ConceptCountRegressor(coverage=0.8, random_state=3).fit(scores[train],
                                                                       n_true[train])
        expected_low, expected_high = model.predict_interval(scores[test])
        np.testing.assert_array_equal(low[test], expected_low)
        np.testing.assert_array_equal(high[test], expected_high)


def test_the_rule_of_a_tuned_count_model_predicts_as_the_tuner():
    rng = np.random.default_rng(3)
    scores, y = _predictable_counts(rng, n=300)
    tuner = _tuner(scores, y, count_coverage=0.8, min_concepts=1, max_concepts=6)
    rule = tuner.decision_rule_
    assert rule.count_model.n_features_in_ == 20
    np.testing.assert_array_equal(tuner.decide(scores), rule.apply(scores))
    assert tuner.decide(scores).sum(axis=1).max() <= 6
    back = DecisionRule.from_json(rule.to_json())
    assert back == rule
    np.testing.assert_array_equal(back.apply(scores), rule.apply(scores))


def test_the_count_model_follows_a_final_vocabulary_of_another_size():
    rng = np.random.default_rng(6)
    X = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    # C9 only among the tuning images: the kept fold's model (refit=False) lacks it.
    y = [("C1", "C9") if i >= 35 else ("C1",) if i % 2 else ("C1", "C2") for i in range(40)]
    split = [(np.arange(20), np.arange(20, 40))]
    tuner = ThresholdTuner(ConceptKNNClassifier(n_neighbors=3, pixel_size=4), cv=split,
                           refit=False, thresholds=10, count_coverage=0.75,
                           random_state=0).fit(X, y)
    assert list(tuner.classes_) == ["C1", "C2"]
    assert tuner.decision_rule_.count_model.n_features_in_ == 2
    assert tuner.decide(X).shape == (40, 2)


# ---------------------------------------------------------------- shrinkage

def test_shrinkage_follows_the_formula_and_zero_keeps_the_raw_thresholds():
    rng = np.random.default_rng(4)
    scores = rng.random((300, 6))
    y = (scores + rng.normal(0, 0.2, scores.shape) > np.linspace(0.5, 1.1, 6)).astype(int)
    params = dict(strategy="per_concept", min_support=1)
    global_threshold = _tuner(scores, y).best_threshold_
    raw = _tuner(scores, y, **params).decision_rule_.threshold
    support = y.sum(axis=0)
    by_hand = (support * raw + 5 * global_threshold) / (support + 5)
    np.testing.assert_allclose(_tuner(scores, y, shrinkage=5, **params).decision_rule_.threshold,
                               by_hand, rtol=1e-12)
    np.testing.assert_array_equal(_tuner(scores, y, shrinkage=0, **params).decision_rule_
                                  .threshold, raw)
    assert _tuner(scores, y, shrinkage=5, **params).shrinkage_ == 5.0


def test_shrinkage_by_hand_at_the_edges():
    raw, support = np.array([0.2, 0.6, 0.9]), np.array([0, 10, 30])
    np.testing.assert_allclose(shrunk_thresholds(raw, 0.5, support, 10),
                               [0.5, (10 * 0.6 + 5) / 20, (30 * 0.9 + 5) / 40])
    np.testing.assert_array_equal(shrunk_thresholds(raw, 0.5, support, 0), [0.5, 0.6, 0.9])
    np.testing.assert_array_equal(shrunk_thresholds(raw, 0.5, support, np.inf), [0.5] * 3)


def _same_concepts(rng, n):
    """30 rare concepts scored alike: the best threshold of each is the global one."""
    y = (rng.random((n, 30)) < 0.05).astype(int)
    return np.where(y == 1, rng.uniform(0.3, 1, y.shape), rng.uniform(0, 0.7, y.shape)), y


def _different_concepts(rng, n):
    """10 frequent concepts, each separable at its own level."""
    level = np.linspace(0.1, 0.8, 10)
    y = (rng.random((n, 10)) < 0.3).astype(int)
    return np.where(y == 1, rng.uniform(level, 1, y.shape),
                    rng.uniform(0, level + 0.1, y.shape)), y


def test_cross_validated_shrinkage_is_strong_where_thresholds_overfit():
    rng = np.random.default_rng(0)
    scores, y = _same_concepts(rng, 300)
    held_out, y_held_out = _same_concepts(rng, 3000)
    params = dict(strategy="per_concept", min_support=1)
    shrunk = _tuner(scores, y, shrinkage="cv", store_cv_results=True, **params)
    assert shrunk.shrinkage_ >= 30
    held = shrunk.cv_results_["shrinkage_scores"]
    chosen = list(shrunk.cv_results_["shrinkages"]).index(shrunk.shrinkage_)
    assert held[chosen] == held.max() and np.all(held[chosen + 1:] < held.max())
    raw = _tuner(scores, y, **params)
    assert (imageclef_f1_score(y_held_out, shrunk.predict(held_out))
            > imageclef_f1_score(y_held_out, raw.predict(held_out)) + 0.01)


def test_cross_validated_shrinkage_is_weak_where_concepts_differ():
    scores, y = _different_concepts(np.random.default_rng(0), 400)
    tuner = _tuner(scores, y, shrinkage="cv", strategy="per_concept", min_support=1)
    assert tuner.shrinkage_ <= 10


# ----------------------------------------------------------- bad parameters

@pytest.mark.parametrize("params, error, message", [
    (dict(count_coverage=1.5), InvalidParameterError, "'count_coverage' parameter"),
    (dict(count_coverage=[None, 0.5, 1.0]), ValueError,
     "count_coverage must hold coverages strictly between 0 and 1 .* got 1.0"),
    (dict(count_coverage=[0.5, "high"]), ValueError, "got 'high'"),
    # pandas and NumPy hold None among numbers as NaN: "got nan" to a user who wrote None,
    # and "got np.float64(nan)" for an array (review 19)
    (dict(count_coverage=[np.float64("nan"), 0.8]), ValueError,
     r"got nan \(NaN: None among numbers in a pandas Series or NumPy array is read as NaN; "
     r"give a list to try no count model\)\.$"),
    (dict(count_coverage=[np.float32(1.5)]), ValueError, r"got 1.5\.$"),
    (dict(shrinkage=-1, strategy="per_concept"), InvalidParameterError,
     "'shrinkage' parameter"),
    (dict(shrinkage="auto", strategy="per_concept"), InvalidParameterError,
     "'shrinkage' parameter"),
    (dict(shrinkage=5), ValueError, "shrinkage=5 shrinks per-concept thresholds: set "
                                    "strategy='per_concept'"),
    (dict(count_coverage=0.8, scoring="f1_samples"), ValueError,
     "count_coverage tunes the official ImageCLEF F1"),
    (dict(count_coverage=0.99), ValueError,
     "count_coverage=0.99 is too high for these tuning images: a cross-fitted count model "
     "learns from 80 images with a concept and calibrates on 20 of them, which can reach a "
     "coverage of at most 0.952"),
    (dict(thresholds=[]), ValueError, r"thresholds must be a number of candidates or a "
                                      r"non-empty flat list of finite thresholds .*got \[\]"),
    (dict(thresholds=[[0.1, 0.2]]), ValueError, r"thresholds must .* flat list .* \[\[0.1"),
    (dict(thresholds=[np.nan, 0.5]), ValueError,
     "thresholds must .* finite thresholds \\(not NaN nor infinite\\); got \\[nan, 0.5\\]"),
    (dict(shrinkage=True, strategy="per_concept"), ValueError,
     "shrinkage must be a number >= 0, 'cv' or None, not True"),
])
def test_bad_count_and_shrinkage_parameters_are_refused_at_fit(params, error, message):
    scores, y = _predictable_counts(np.random.default_rng(5), n=100)
    with pytest.raises(error, match=message):
        _tuner(scores, y, **params)


class _NeverFitted(ScoresAsFeatures):
    def fit(self, X, y):
        raise AssertionError("the tuning images were not checked before fitting")


@pytest.mark.parametrize("n_images, n_with_concepts, params, message", [
    (1, 1, dict(count_coverage=0.5), "count_coverage=0.5 cross-validates over the tuning "
                                     "images, which needs at least 2 of them; got 1"),
    (1, 1, dict(shrinkage="cv", strategy="per_concept"),
     "shrinkage='cv' cross-validates over the tuning images, which needs at least 2 of them; "
     "got 1"),
    (12, 2, dict(count_coverage=0.5), r"count_coverage=0.5: .* needs 2 of them or more \(one "
                                      r"to fit, one to calibrate\); 2 of the 12 tuning images "
                                      "have a concept, the smallest training part of the 5 "
                                      "folds [01]"),
    (40, 40, dict(count_coverage=0.95), r"count_coverage=0.95 is too high .* \(73 images with "
                                        "a concept in each training part are needed; 40 of "
                                        "the 40 tuning images have a concept, the smallest "
                                        "training part of the 5 folds 32\\)"),
])
def test_too_few_tuning_images_are_refused_before_any_fit(n_images, n_with_concepts, params,
                                                         message):
    y = np.zeros((n_images, 3), dtype=int)
    y[:n_with_concepts, 0] = 1
    scores = np.random.default_rng(0).random((n_images, 3))
    for tuner in (ThresholdTuner(_NeverFitted(), cv=2, random_state=0, **params),
                  ThresholdTuner(ScoresAsFeatures().fit(scores, y), cv="prefit", refit=False,
                                 random_state=0, **params)):
        if n_images == 1 and tuner.cv == 2:
            continue  # two folds need two images: KFold's own message
        with pytest.raises(ValueError, match=message):
            tuner.fit(scores, y)


def test_an_infinite_shrinkage_is_the_global_threshold_and_cv_s_choice_is_a_parameter():
    scores, y = _different_concepts(np.random.default_rng(0), 200)
    params = dict(strategy="per_concept", min_support=1)
    infinite = _tuner(scores, y, shrinkage=np.inf, **params)
    assert infinite.shrinkage_ == np.inf
    np.testing.assert_allclose(infinite.best_threshold_, _tuner(scores, y).best_threshold_)
    chosen = _tuner(scores, y, shrinkage="cv", **params).shrinkage_
    assert _tuner(scores, y, shrinkage=chosen, **params).shrinkage_ == chosen


# ------------------------------------------------------------------- saving

@pytest.mark.slow
def test_tuned_count_rule_saves_with_the_cnn(tmp_path, tiny_images):
    y = [";".join(c) for c in tiny_images.concepts]
    tuner = ThresholdTuner(ConceptCNNClassifier(**{**TINY, "epochs": 1}), cv=0.5, refit=False,
                           random_state=0, strategy="per_concept", min_support=1,
                           shrinkage=2.0, count_coverage=0.75)
    tuner.fit(tiny_images.images, y)
    assert tuner.decision_rule_.count_model is not None
    tuner.save(tmp_path / "tuned.keras")
    loaded = ConceptCNNClassifier.load(tmp_path / "tuned.keras")
    assert loaded.threshold == tuner.decision_rule_
    assert list(loaded.predict(tiny_images.images)) == list(tuner.predict(tiny_images.images))
    wider = rewritten(tmp_path / "tuned.keras", tmp_path / "wider.keras", lambda record: record[
        "params"]["threshold"]["count_model"].update(n_features_in_=9))
    with pytest.raises(ModelFileError, match="wider.keras: the decision rule's count model "
                                             "takes the scores of 9 concepts, not 5"):
        ConceptCNNClassifier.load(wider)


def test_tuned_count_rule_saves_in_an_archive(tmp_path, tiny_images):
    y = [";".join(c) for c in tiny_images.concepts]
    knn = ConceptKNNClassifier(n_neighbors=3, pixel_size=4)
    tuner = ThresholdTuner(knn, cv=KFold(2), random_state=0, count_coverage=[0.75],
                           thresholds=10).fit(tiny_images.images, y)
    tuner.tuned_estimator().save(tmp_path / "knn.zip")
    loaded = ConceptKNNClassifier.load(tmp_path / "knn.zip")
    assert loaded.threshold == tuner.decision_rule_
    assert list(loaded.predict(tiny_images.images)) == list(tuner.predict(tiny_images.images))
    again = joblib.load(joblib.dump(tuner, tmp_path / "tuner.joblib")[0])
    assert again.decision_rule_ == tuner.decision_rule_
    broken = rewritten(tmp_path / "knn.zip", tmp_path / "broken.zip", lambda record: record[
        "estimator"]["params"]["threshold"]["count_model"].update(coef_="ones"))
    with pytest.raises(ModelFileError, match="broken.zip: .*coef_ must be a list of 6"):
        ConceptKNNClassifier.load(broken)


def test_a_tuner_refuses_a_checkpoint_folder_it_would_train_many_times(tmp_path):
    # Each fold and the refit train a clone with the same checkpoint_dir: the first fold
    # trained whole, then the second was refused ("the checkpoint of another training").
    from imageclef_concepts import ConceptCNNClassifier, ThresholdTuner

    X = np.zeros((8, 16, 16, 3), dtype=np.uint8)
    folder = tmp_path / "checkpoint"
    cnn = ConceptCNNClassifier(image_size=16, filters=(2,), dense_units=(2,), epochs=1,
                               checkpoint_dir=str(folder))
    with pytest.raises(ValueError, match=r"^estimator__checkpoint_dir=.*: ThresholdTuner\(cv=2\) "
                                         r"trains it 3 times"):
        ThresholdTuner(cnn, cv=2).fit(X, ["C1", "C2"] * 4)
    assert not folder.exists()
