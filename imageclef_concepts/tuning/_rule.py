"""Choosing a decision rule on out-of-fold scores: thresholds, count interval, shrinkage.

:class:`~imageclef_concepts.ThresholdTuner` makes the out-of-fold scores;
this module chooses, from them, what its
:class:`~imageclef_concepts.DecisionRule` holds: the candidate thresholds and
their scores under another scorer than the official one, the coverage of a
concept count model together with the global threshold, and how far
per-concept thresholds are shrunk toward the global one; and the splits of
a tuner's ``cv`` (:func:`tuning_splits`, through :func:`tuning_start`, both tuners'). Every official
score comes from :mod:`imageclef_concepts.concepts._metrics`.

No choice is scored on images that what it chooses was fitted on: a count
model's interval for an image comes from a model fitted and calibrated
without it (cross-fitting), and the shrinkage is scored on held-out folds.
"""

from __future__ import annotations

import difflib
import inspect
import math
import warnings
from collections import namedtuple
from numbers import Integral, Real

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.model_selection import KFold, ShuffleSplit, check_cv
from sklearn.utils import check_random_state
from sklearn.utils.validation import _num_samples

from ..concepts._metrics import (
    f1_from_counts,
    official_mean,
    per_concept_thresholds,
    threshold_curve,
)
from ..concepts._targets import checked_multilabel_target
from ..estimators._members import check_one_training_per_checkpoint
from ..models._count import ConceptCountRegressor, calibration_needed, finite_scores
from ..models._decision import DecisionRule, check_threshold_grid, within_bounds

#: Strengths ``k`` that ``shrinkage="cv"`` tries: from none (the raw per-concept
#: thresholds) to infinite (the global threshold for every concept).
SHRINKAGE_GRID = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, np.inf)
N_FOLDS = 5  # cross-fitting of count models and cross-validation of the shrinkage

CountChoice = namedtuple("CountChoice", "coverage threshold score low high curves")
#: What a tuner keeps: the rule, its global threshold(s), its tuning score, the
#: chosen coverage and shrinkage (or None) and the scores of what was tried.
TunedRule = namedtuple("TunedRule", "rule threshold score coverage shrinkage results")


def check_tuning_options(tuner, official):
    """Refuse, naming the parameter, what a :class:`ThresholdTuner`'s
    ``_parameter_constraints`` cannot say, before any fit (``official``: it tunes the
    official score): ``thresholds`` in [0, 1] when the estimator's scores are
    probabilities, a ``scoring`` name resolved now; and warn of a ``min_support`` that
    ``strategy="global"`` does not use (dropped without a word)."""
    check_scoring_of_predictions(None if official else tuner.scoring)
    check_threshold_grid(tuner.thresholds,
                         probabilities=hasattr(tuner.estimator, "predict_proba"))
    checked_coverages(tuner.count_coverage)
    for name, used in (("strategy='per_concept'", tuner.strategy == "per_concept"),
                       ("count_coverage", tuner.count_coverage is not None)):
        if used and not official:
            raise ValueError(f"{name} tunes the official ImageCLEF F1; it cannot be "
                             f"combined with scoring={tuner.scoring!r}.")
    if isinstance(tuner.shrinkage, (bool, np.bool_)):
        raise ValueError(f"shrinkage must be a number >= 0, 'cv' or None, not "
                         f"{tuner.shrinkage}.")
    if tuner.shrinkage is not None and tuner.strategy != "per_concept":
        raise ValueError(f"shrinkage={tuner.shrinkage!r} shrinks per-concept thresholds: "
                         "set strategy='per_concept' (or shrinkage=None).")
    default = inspect.signature(type(tuner).__init__).parameters["min_support"].default
    if tuner.strategy != "per_concept" and tuner.min_support != default:
        warnings.warn(f"{type(tuner).__name__}(strategy={tuner.strategy!r}) does not use "
                      f"min_support={tuner.min_support!r}: it is for strategy='per_concept'.",
                      UserWarning, stacklevel=5)
    if tuner.max_concepts is not None and tuner.max_concepts < tuner.min_concepts:
        raise ValueError(f"max_concepts={tuner.max_concepts} is below "
                         f"min_concepts={tuner.min_concepts}.")
    if tuner.cv == "prefit" and tuner.refit:
        raise ValueError("cv='prefit' uses the estimator as fitted: set refit=False.")


def check_scoring_of_predictions(scoring):
    """Refuse a ``scoring`` name scikit-learn does not know (a typo was refused only after
    every fold was fitted) or a scorer of scores (``'roc_auc'``): each threshold is scored
    by the concepts it predicts. A plain callable ``score(y, y_pred)`` is taken as given."""
    from sklearn.metrics import get_scorer, get_scorer_names

    if isinstance(scoring, str):
        try:
            scoring = get_scorer(scoring)
        except ValueError:
            close = difflib.get_close_matches(scoring, get_scorer_names(), n=1)
            raise ValueError(f"scoring={scoring!r} is not a scorer name"
                             + (f" (did you mean {close[0]!r}?)" if close else "")
                             + ": see sklearn.metrics.get_scorer_names(), or None for the "
                               "official ImageCLEF F1.") from None
    method = getattr(scoring, "_response_method", "predict")
    if method not in ("predict", ("predict",), ["predict"]):
        raise ValueError(f"scoring={scoring!r:.80} scores {method!r}, not predictions: each "
                         "candidate threshold is scored by the concepts it predicts; give a "
                         "scorer of predictions (such as 'f1_samples') or None.")


def check_tuning_images(n_true, count_coverage, shrinkage, random_state):
    """The seed of every split of the choice (a fit is reproducible), drawn once.

    Refuses first, before any model is fitted, tuning images too few for the
    cross-fitting of a count model or the cross-validation of the shrinkage.
    """
    seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    for coverage in checked_coverages(count_coverage):
        if coverage is not None:
            _count_folds(n_true, coverage, seed)
    if shrinkage == "cv":
        _folds(len(n_true), seed, "shrinkage='cv'")
    return seed


def checked_coverages(count_coverage):
    """The count coverages a tuner tries (None: no count model), each checked."""
    coverages = (list(count_coverage) or [None] if isinstance(count_coverage, (list, tuple))
                 else [count_coverage])
    bad = [value for value in coverages if value is not None and not (
        isinstance(value, Real) and not isinstance(value, bool) and 0 < value < 1)]
    if bad:
        shown = bad[0].item() if isinstance(bad[0], np.generic) else bad[0]
        # pandas and NumPy read None among numbers as NaN: say so to a user who wrote None
        why = (" (NaN: None among numbers in a pandas Series or NumPy array is read as NaN; "
               "give a list to try no count model)" if isinstance(shown, float)
               and np.isnan(shown) else "")
        raise ValueError(f"count_coverage must hold coverages strictly between 0 and 1 "
                         f"(or None for no count model); got {shown!r:.40}{why}.")
    return coverages


def choose_official_rule(scores, truth, n_true, candidates, *, coverages, strategy,
                         min_support, shrinkage, min_concepts, max_concepts, seed):
    """The rule with the best official F1 on the tuning scores, as a :data:`TunedRule`.

    First the global threshold with the count model's coverage (or none),
    then, with ``strategy="per_concept"``, each concept's threshold
    (coordinate ascent) shrunk by ``shrinkage``.
    """
    choice = choose_count_and_threshold(scores, truth, n_true, candidates, coverages,
                                        min_concepts, max_concepts, seed)
    results = {"thresholds": candidates, "scores": choice.curves[choice.coverage]}
    if coverages != [None]:
        results["count_scores"] = choice.curves
    threshold, score, strength = choice.threshold, choice.score, None
    if strategy == "per_concept":
        threshold, score = per_concept_thresholds(scores, truth, n_true, candidates,
                                                  choice.threshold, min_support)
    if strategy == "per_concept" and shrinkage is not None:
        strength = shrinkage
        if shrinkage == "cv":
            strength, held_out = cv_shrinkage(scores, truth, n_true, candidates, choice.low,
                                              choice.high, min_support, seed)
            results.update(shrinkages=np.array(SHRINKAGE_GRID), shrinkage_scores=held_out)
        support = np.asarray(sparse.csr_matrix(truth).sum(axis=0)).ravel()
        threshold = shrunk_thresholds(threshold, choice.threshold, support, float(strength))
        score = official_f1_of(within_bounds(scores, scores >= threshold, choice.low,
                                             choice.high), truth, n_true)
    counted = np.asarray(n_true) > 0
    count_model = (None if choice.coverage is None else
                   fit_count_model(scores[counted], n_true[counted], choice.coverage, seed))
    rule = DecisionRule(threshold, min_concepts=min_concepts, max_concepts=max_concepts,
                        count_model=count_model)
    return TunedRule(rule, choice.threshold, score, choice.coverage,
                     None if strength is None else float(strength), results)


def choose_from_curve(curve, candidates, min_concepts, max_concepts):
    """The :data:`TunedRule` of the best global threshold of a curve of another scorer."""
    best = int(np.argmax(curve))
    rule = DecisionRule(float(candidates[best]), min_concepts=min_concepts,
                        max_concepts=max_concepts)
    return TunedRule(rule, float(candidates[best]), float(curve[best]), None, None,
                     {"thresholds": candidates, "scores": curve})


def scored_one_by_one(scoring, scores, vocabulary, y_true, candidates, min_concepts,
                      max_concepts):
    """Each candidate threshold's score under ``scoring`` (a scorer or ``score(y, y_pred)``)."""
    from sklearn.metrics import check_scoring

    def predictions(threshold):
        rule = DecisionRule(threshold, min_concepts=min_concepts, max_concepts=max_concepts)
        return vocabulary.inverse_transform(rule.apply(scores))

    if isinstance(scoring, str) or hasattr(scoring, "_score_func"):
        scorer = check_scoring(None, scoring=scoring)
        return np.array([scorer(_FixedPredictions(predictions(threshold)), None, y_true)
                         for threshold in candidates])
    return np.array([scoring(y_true, predictions(threshold)) for threshold in candidates])


class _FixedPredictions(BaseEstimator):
    """Stands in for an estimator inside a scorer: ``predict`` returns fixed output."""

    def __init__(self, predictions):
        self.predictions = predictions

    def predict(self, X):
        return self.predictions


def official_f1_of(decided, truth, n_true):
    """The official F1 of a decided indicator against the tuning truth (CSR and set sizes)."""
    return float(official_mean(_image_f1(decided, truth, n_true), n_true))


def _image_f1(decided, truth, n_true):
    n_correct = np.asarray(sparse.csr_matrix(truth).multiply(decided).sum(axis=1)).ravel()
    return f1_from_counts(n_correct, n_true, decided.sum(axis=1))


def choose_count_and_threshold(scores, truth, n_true, candidates, coverages, min_concepts,
                               max_concepts, seed):
    """The best (coverage, global threshold) pair on the official F1.

    ``None`` among ``coverages`` is the rule without a count model. Each
    image's interval comes from :func:`cross_fitted_intervals`. A count model
    must earn its place: it is chosen only when it scores higher than every
    earlier entry (``None`` is tried first) and, when ``None`` is among
    ``coverages``, when its gain over no count model exceeds one standard
    error of the images' paired F1 differences (the one-standard-error rule:
    a small tuning set does not pick one by chance).
    """
    ordered = sorted(coverages, key=lambda coverage: coverage is not None)
    choices, curves = [], {}
    for coverage in ordered:
        low, high = min_concepts, np.inf if max_concepts is None else max_concepts
        if coverage is not None:
            low, high = _hard_bounded(cross_fitted_intervals(scores, n_true, coverage, seed),
                                      min_concepts, max_concepts)
        curves[coverage] = threshold_curve(scores, truth, n_true, candidates, _column(low),
                                           _column(high))
        at = int(np.argmax(curves[coverage]))
        choices.append(CountChoice(coverage, float(candidates[at]),
                                   float(curves[coverage][at]), low, high, None))
    plain = _per_image_f1(scores, truth, n_true, choices[0]) if ordered[0] is None else None
    best = choices[0]
    for choice in choices[1:]:
        if choice.score > best.score and (plain is None or _clears_one_standard_error(
                _per_image_f1(scores, truth, n_true, choice) - plain)):
            best = choice
    return best._replace(curves=curves)


def _per_image_f1(scores, truth, n_true, choice):
    """The F1 of each image with a true concept under a global threshold and bounds."""
    decided = within_bounds(scores, scores >= choice.threshold, choice.low, choice.high)
    return _image_f1(decided, truth, n_true)[np.asarray(n_true) > 0]


def _clears_one_standard_error(gains):
    """Whether the mean of per-image gains exceeds its standard error."""
    spread = np.std(gains, ddof=1) / np.sqrt(len(gains)) if len(gains) > 1 else 0.0
    return gains.mean() > spread


def cross_fitted_intervals(scores, n_true, coverage, seed):
    """Each image's count interval from a model fitted and calibrated on the other folds.

    The models learn the true set sizes of the images that count in the
    official score (those with a true concept).
    """
    low = np.zeros(len(scores), dtype=np.int64)
    high = np.zeros(len(scores), dtype=np.int64)
    for train, test in _count_folds(n_true, coverage, seed):
        model = fit_count_model(scores[train], n_true[train], coverage, seed)
        low[test], high[test] = model.predict_interval(finite_scores(scores[test]))
    return low, high


def _folds(n_images, seed, name):
    """The cross-fitting and cross-validation folds: :data:`N_FOLDS` (fewer for few images)."""
    if n_images < 2:
        raise ValueError(f"{name} cross-validates over the tuning images, which needs at least "
                         f"2 of them; got {n_images}. Tune on more images.")
    return list(KFold(min(N_FOLDS, n_images), shuffle=True, random_state=seed).split(
        np.zeros((n_images, 1))))


def _count_folds(n_true, coverage, seed):
    """The folds of the count models (trained on the images with a concept), each checked.

    A cross-fitted model needs 2 images with a concept or more (one to fit, one
    to calibrate) and enough calibration images for ``coverage``: refused
    otherwise, saying how many there are and how many it takes.
    """
    counted = np.asarray(n_true) > 0
    folds = [(train[counted[train]], test)
             for train, test in _folds(len(counted), seed, f"count_coverage={coverage:g}")]
    n_images = min(len(train) for train, _ in folds)
    calibration = ConceptCountRegressor().get_params()["calibration_size"]
    n_calibration = math.ceil(calibration * n_images)
    needed = calibration_needed(coverage)
    held = (f"{int(counted.sum())} of the {len(counted)} tuning images have a concept, "
            f"the smallest training part of the {len(folds)} folds {n_images}")
    if n_images < 2:
        raise ValueError(
            f"count_coverage={coverage:g}: a cross-fitted count model learns from the images "
            f"with a concept in a fold's training part and needs 2 of them or more (one to "
            f"fit, one to calibrate); {held}. Tune on more images with concepts.")
    if n_calibration < needed:
        fewest = math.floor((needed - 1) / calibration + 1e-9) + 1
        raise ValueError(
            f"count_coverage={coverage:g} is too high for these tuning images: a cross-fitted "
            f"count model learns from {n_images} images with a concept and calibrates on "
            f"{n_calibration} of them, which can reach a coverage of at most "
            f"{n_calibration / (n_calibration + 1):.3f} ({fewest} images with a concept in "
            f"each training part are needed; {held}). Lower it or tune on more images.")
    return folds


def fit_count_model(scores, n_true, coverage, seed):
    """The count model the tuner fits: a :class:`ConceptCountRegressor` of the scores."""
    try:
        return ConceptCountRegressor(coverage=coverage, random_state=seed).fit(
            finite_scores(scores), n_true)
    except ValueError as error:
        raise ValueError(f"count_coverage={coverage:g}: {error}") from None


def shrunk_thresholds(raw, global_threshold, support, strength):
    """Per-concept thresholds shrunk toward the global one by their support.

    ``t_c = (n_c * raw_c + k * t_global) / (n_c + k)``, with ``n_c`` the
    concept's positives and ``k`` the ``strength``: 0 keeps the raw
    thresholds exactly, infinity gives the global one everywhere. A concept
    without positives keeps the global threshold.
    """
    support = np.asarray(support, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(support > 0, support / (support + strength), 0.0)
    return weight * np.asarray(raw, dtype=np.float64) + (1 - weight) * global_threshold


def cv_shrinkage(scores, truth, n_true, candidates, low, high, min_support, seed):
    """The strength of :data:`SHRINKAGE_GRID` with the best held-out official F1.

    In each of :data:`N_FOLDS` folds, the global and the raw per-concept
    thresholds are tuned on the other folds, then every strength's shrunk
    thresholds are scored on the fold (with each image's bounds ``low``,
    ``high``). Ties go to the stronger shrinkage.

    Returns
    -------
    strength : float
    scores : ndarray of shape (len(SHRINKAGE_GRID),)
        The held-out F1 of each strength, averaged over the counted images.
    """
    truth, n_true = sparse.csr_matrix(truth), np.asarray(n_true)
    totals, counted = np.zeros(len(SHRINKAGE_GRID)), 0
    for train, test in _folds(len(scores), seed, "shrinkage='cv'"):
        curve = threshold_curve(scores[train], truth[train], n_true[train], candidates,
                                _column(_rows(low, train)), _column(_rows(high, train)))
        best = float(candidates[int(np.argmax(curve))])
        raw, _ = per_concept_thresholds(scores[train], truth[train], n_true[train],
                                        candidates, best, min_support)
        support = np.asarray(truth[train].sum(axis=0)).ravel()
        n_counted = int((n_true[test] > 0).sum())
        for position, strength in enumerate(SHRINKAGE_GRID):
            thresholds = shrunk_thresholds(raw, best, support, strength)
            decided = within_bounds(scores[test], scores[test] >= thresholds,
                                    _rows(low, test), _rows(high, test))
            totals[position] += n_counted * official_f1_of(decided, truth[test], n_true[test])
        counted += n_counted
    mean = totals / max(counted, 1)
    chosen = len(mean) - 1 - int(np.argmax(mean[::-1]))  # the last of the best: strongest
    return float(SHRINKAGE_GRID[chosen]), mean


def _hard_bounded(interval, min_concepts, max_concepts):
    """A count interval kept within ``[min_concepts, max_concepts]``, as DecisionRule does."""
    top = np.inf if max_concepts is None else max_concepts
    return tuple(np.clip(bound, min_concepts, top) for bound in interval)


def _column(bound):
    """A per-image bound as a column (it broadcasts over thresholds); numbers as they are."""
    return bound[:, np.newaxis] if np.ndim(bound) == 1 else bound


def _rows(bound, rows):
    return bound[rows] if np.ndim(bound) == 1 else bound



def tuning_start(tuner, X, y, fit_params, inner):
    """What a tuner's fit starts with: its options checked, ``X`` indexable, ``y``
    checked, the fit parameters routed (those of its ``inner`` estimator returned) and
    its splits drawn once. Returns ``(X, y, labels, inner_fit_params, splits)``."""
    tuner._check_options()
    if not hasattr(X, "__getitem__"):  # array-likes known only by __array__
        X = np.asarray(X)
    y, labels = checked_multilabel_target(X, y)
    routed = tuner._routed_fit_params(fit_params)
    splits = tuning_splits(tuner.cv, tuner.refit, tuner.random_state, _num_samples(X),
                           routed.splitter.split)
    if not (isinstance(tuner.cv, str) and tuner.cv == "prefit"):  # before any training
        check_one_training_per_checkpoint([(inner, getattr(tuner, inner))],
                                          len(splits) + bool(tuner.refit),
                                          f"{type(tuner).__name__}(cv={tuner.cv!r})")
    return X, y, labels, routed[inner].fit, splits


def check_tuning_truth(n_true):
    """Refuse tuning images none of which has a true concept (``n_true``: each image's
    count): every setting scores the undefined official F1 (0.0), and the first candidate,
    every concept for every image, was kept without a word."""
    if not np.any(n_true):
        raise ValueError(f"none of the {len(n_true)} tuning images has a true concept: every "
                         "setting scores the undefined official F1, and there is nothing to "
                         "tune on; tune on images with concepts.")


def tuning_splits(cv, refit, random_state, n_samples, split_params=None):
    """The (train, test) index pairs of a tuner's ``cv``, drawn once.

    ``"prefit"``: every image is tuning data; a float: one shuffled hold-out
    of that fraction; otherwise scikit-learn's ``check_cv`` (never
    stratified: the target is multi-label), whose ``split`` gets
    ``split_params`` (``groups``, routed to a group splitter). ``refit=False``
    needs one split.
    """
    if isinstance(cv, str) and cv == "prefit":
        return [(None, np.arange(n_samples))]
    if isinstance(cv, Real) and not isinstance(cv, Integral):
        splitter = ShuffleSplit(n_splits=1, test_size=cv, random_state=random_state)
    else:
        splitter = check_cv(cv, classifier=False)
    splits = list(splitter.split(np.zeros((n_samples, 1)), **(split_params or {})))
    if not refit and len(splits) > 1:
        raise ValueError(f"refit=False keeps the estimator of the split it was tuned on, but "
                         f"cv={cv!r} makes {len(splits)} splits; use a float cv or refit=True.")
    return splits
