"""ThresholdTuner: decision rules tuned for the official ImageCLEF score.

The paper chose its threshold (0.1) on validation data. ``ThresholdTuner``
does that for any multi-label classifier with probabilities or decision
scores: one global threshold, or one per concept, chosen on out-of-fold
predictions, optionally with a concept count model and per-concept thresholds
shrunk toward the global one, and gives the result as a
:class:`~imageclef_concepts.DecisionRule`.
scikit-learn's ``TunedThresholdClassifierCV`` handles binary targets only;
its conventions are followed where they carry over.

This module only orchestrates (splits, fitting, refitting, saving): the rule
is chosen by :mod:`imageclef_concepts.tuning._rule`, and the score of every
candidate threshold and the per-concept search are the metric's
(:mod:`imageclef_concepts.concepts._metrics`).
"""

from __future__ import annotations

from numbers import Real
from typing import TYPE_CHECKING

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import MetaEstimatorMixin, clone
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ..concepts._lists import is_concept_lists
from ..concepts._metrics import imageclef_f1, imageclef_f1_score
from ..concepts._targets import ConceptTargets, score_columns, targets_of
from ..estimators._members import workers_for
from ..files._numbers import WholeNumber
from ..images._shared import shares_decoding
from ..models._base import (
    BaseConceptClassifier,
    RoutingMixin,
    aligned_scores,
    fit_on_rows,
    set_multilabel_tags,
    shallow_copy,
)
from ..models._decision import (
    DecisionRule,
    candidate_thresholds,
    check_candidate_memory,
    rule_for_columns,
)
from ._rule import (
    check_tuning_images,
    check_tuning_options,
    check_tuning_truth,
    checked_coverages,
    choose_from_curve,
    choose_official_rule,
    scored_one_by_one,
    tuning_start,
)

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Callable, Sequence
    from typing import Any, Literal

    from numpy.typing import NDArray
    from sklearn.base import BaseEstimator

    from .._typing import (
        CrossValidation,
        Estimator,
        FloatArray,
        Images,
        Numbers,
        PathLike,
        RandomState,
        Targets,
        ThresholdStrategy,
    )


class ThresholdTuner(RoutingMixin, MetaEstimatorMixin, BaseConceptClassifier):
    """Tune the decision threshold(s) of a multi-label classifier for a score.

    Parameters
    ----------
    estimator : estimator
        A multi-label classifier with ``predict_proba`` (one (n, n_labels)
        array, or a list of per-label (n, 2) arrays as
        ``MultiOutputClassifier``, ``KNeighborsClassifier`` and
        ``RandomForestClassifier`` return) or ``decision_function``.
    scoring : str, callable or None, default=None
        What to maximise. None is the official ImageCLEF F1
        (:func:`~imageclef_concepts.imageclef_f1_score`), computed for all
        thresholds at once. Otherwise a scorer name or scorer of predictions,
        or a callable ``score(y_true, y_pred)``: each threshold in turn.
    thresholds : int or array-like, default=100
        Candidate thresholds: that many evenly spaced between the lowest and
        highest out-of-fold score, or the given values (in [0, 1] for an
        estimator with ``predict_proba``: probabilities).
    cv : int, cross-validation splitter, float or "prefit", default=5
        How the out-of-fold scores are made. An int is that many unshuffled
        folds (``KFold``, never stratified: the target is multi-label); a
        float in (0, 1) is one shuffled hold-out of that fraction;
        ``"prefit"`` takes ``estimator`` as fitted and tunes on the data given
        to ``fit``. The splits are drawn once.
    refit : bool, default=True
        Refit ``estimator`` on all the data once the thresholds are chosen.
        False keeps the estimator fitted on the training part, which needs a
        single split (a float ``cv`` or a splitter with one split).
    n_jobs : int, default=None
        Folds fitted in parallel (joblib).
    random_state : int, RandomState instance or None, default=None
        Shuffles the hold-out of a float ``cv``.
    store_cv_results : bool, default=False
        Keep every candidate threshold's score in ``cv_results_``.
    strategy : {"global", "per_concept"}, default="global"
        One threshold for all concepts, or one per concept. Per concept
        thresholds start from the best global one and are improved concept
        by concept (coordinate ascent on the official score); concepts with
        fewer than ``min_support`` positives in the tuning data keep the
        global one, so rare concepts do not overfit. Needs the official score.
    min_support : int, default=10
        Positives a concept needs to get its own threshold
        (``strategy="per_concept"``; another value warns with ``"global"``).
    min_concepts : int, default=0
        Always predict at least this many concepts per image (the most
        probable ones): under the official score an image with no prediction
        scores 0.
    max_concepts : int or None, default=None
        Predict at most this many concepts per image (100 in later editions).
    count_coverage : float in (0, 1), list of them and None, or None, default=None
        Coverages of a concept count model
        (:class:`~imageclef_concepts.ConceptCountRegressor` of the scores) to
        try with every threshold, None in a list for no count model: the best
        pair on the official F1 is kept, a count model only when its gain
        exceeds one standard error of the images' paired differences. Each
        image's interval is scored from a model fitted and
        calibrated on the other four fifths of the tuning images; the rule's
        model is then fitted (and calibrated) on all of them. None: no count
        model. Needs the official score.
    shrinkage : float >= 0, "cv" or None, default=None
        With ``strategy="per_concept"``, shrink each concept's threshold
        toward the global one by its support ``n_c`` (its positives):
        ``t_c = (n_c * t_c_raw + k * t_global) / (n_c + k)``. A number is
        ``k``; ``"cv"`` chooses ``k`` by 5-fold cross-validation over the
        tuning images (thresholds tuned on four folds, scored on the fifth);
        None (or 0) keeps the raw thresholds; ``np.inf`` (which ``"cv"`` may
        choose) gives the global threshold to every concept.

    Attributes
    ----------
    estimator_ : estimator
        The fitted classifier used by ``predict``.
    decision_rule_ : DecisionRule
        The tuned rule: the chosen threshold(s), ``min_concepts`` and
        ``max_concepts``. Give it to a concept estimator's ``threshold`` (or
        call :meth:`save`) to keep it with the model.
    best_threshold_ : float or ndarray of shape (n_concepts,)
        The chosen threshold(s).
    best_score_ : float
        The tuning score at ``best_threshold_`` (with ``shrinkage``: of the
        shrunk thresholds, each image within its bounds; with
        ``count_coverage``: cross-fitted, each image's count predicted by a
        model that did not learn from it, so it may differ from the score of
        the returned rule on the tuning images themselves).
    count_coverage_ : float or None
        The chosen coverage of the rule's count model, or None (no model).
    shrinkage_ : float or None
        The shrinkage strength ``k`` used, or None.
    cv_results_ : dict or None
        ``thresholds`` and their ``scores`` (global, at the chosen coverage),
        when ``store_cv_results``; with ``count_coverage``, also
        ``count_scores`` (coverage -> scores); with ``shrinkage="cv"``, also
        ``shrinkages`` and their held-out ``shrinkage_scores``.
    classes_ : ndarray
        The concepts: the estimator's concept names, or ``0..n_labels-1``.
    targets_ : ConceptTargets
        The concept vocabulary of ``estimator_`` and the form of ``y``.
    n_features_in_ : int
        When the estimator defines it.

    Notes
    -----
    With concept lists and several folds, each fold's model knows the
    concepts of its own training part; their scores are aligned by concept
    name (a concept a fold's model never saw scores nothing there).

    With ``strategy="per_concept"``, ``min_concepts``, ``max_concepts`` and
    the count interval are applied when predicting but not while improving
    each concept's threshold (the global threshold is tuned with them).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from imageclef_concepts import ThresholdTuner
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 4))
    >>> y = (X[:, :3] > 0).astype(int)
    >>> tuner = ThresholdTuner(KNeighborsClassifier(5), thresholds=20).fit(X, y)
    >>> tuner.predict(X[:2]).shape
    (2, 3)
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit"])],
        "scoring": [str, callable, None],
        "thresholds": [WholeNumber(2), "array-like"],
        "cv": ["cv_object", StrOptions({"prefit"}), Interval(Real, 0, 1, closed="neither")],
        "refit": ["boolean"],
        "n_jobs": [WholeNumber(None, None, closed="neither"), None],
        "random_state": ["random_state"],
        "store_cv_results": ["boolean"],
        "strategy": [StrOptions({"global", "per_concept"})],
        "min_support": [WholeNumber(1)],
        "min_concepts": [WholeNumber(0)],
        "max_concepts": [WholeNumber(1), None],
        "count_coverage": [Interval(Real, 0, 1, closed="neither"), list, tuple, None],
        "shrinkage": [Interval(Real, 0, None, closed="both"), StrOptions({"cv"}), None],
    }

    # Fitted attributes' types, for the type checker (set by fit, not here).
    decision_rule_: DecisionRule
    best_threshold_: float | NDArray[np.floating[Any]]

    def __init__(self, estimator: Estimator, *, scoring: str | Callable[..., float] | None = None,
                 thresholds: int | Numbers = 100, cv: CrossValidation = 5, refit: bool = True,
                 n_jobs: int | None = None, random_state: RandomState = None,
                 store_cv_results: bool = False, strategy: ThresholdStrategy = "global",
                 min_support: int = 10, min_concepts: int = 0, max_concepts: int | None = None,
                 count_coverage: float | Sequence[float | None] | None = None,
                 shrinkage: float | Literal["cv"] | None = None) -> None:
        self.estimator = estimator
        self.scoring = scoring
        self.thresholds = thresholds
        self.cv = cv
        self.refit = refit
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.store_cv_results = store_cv_results
        self.strategy = strategy
        self.min_support = min_support
        self.min_concepts = min_concepts
        self.max_concepts = max_concepts
        self.count_coverage = count_coverage
        self.shrinkage = shrinkage

    @shares_decoding
    def _fit(self, X: Images, y: Targets, **fit_params: Any) -> None:
        """Fit the estimator (``fit_params`` go to its ``fit``); choose the rule out of fold."""
        X, y, labels, fit_params, splits = tuning_start(self, X, y, fit_params, "estimator")
        vocabulary = self._tuning_vocabulary(labels)
        tuning_rows = np.concatenate([test for _, test in splits])
        truth, n_true = vocabulary.truth(_safe_indexing(labels, tuning_rows))
        check_tuning_truth(n_true)
        check_candidate_memory(self.thresholds, truth)  # before fitting
        seed = (check_tuning_images(n_true, self.count_coverage, self.shrinkage,
                                    self.random_state) if self._uses_official_score() else None)
        out_of_fold = self._out_of_fold_scores(X, y, labels, splits, fit_params, vocabulary)
        self._n_tuning_images = len(tuning_rows)
        self._choose_rule(out_of_fold, truth, n_true, vocabulary,
                          _safe_indexing(y, tuning_rows), seed)
        if self.cv == "prefit":
            self.estimator_ = self.estimator
        elif self.refit:
            self.estimator_ = clone(self.estimator).fit(X, y, **fit_params)
        else:
            self.estimator_ = self._fold_estimator
        del self._fold_estimator
        self.targets_ = (vocabulary if self.estimator_ is self.estimator and self.cv == "prefit"
                         else targets_of(self.estimator_, labels))
        self.classes_ = self.targets_.classes_
        self.decision_rule_ = rule_for_columns(self.decision_rule_, vocabulary.classes_,
                                                self.targets_.classes_, self.best_threshold_)
        if self.decision_rule_.per_concept:
            self.best_threshold_ = self.decision_rule_.threshold
        if hasattr(self.estimator_, "n_features_in_"):
            self.n_features_in_ = self.estimator_.n_features_in_

    def _check_options(self):
        check_tuning_options(self, self._uses_official_score())

    def _uses_official_score(self):
        return self.scoring in (None, "imageclef_f1", imageclef_f1, imageclef_f1_score)

    def _inner_estimators(self):
        return {"estimator": self.estimator}

    def _tuning_vocabulary(self, labels):
        """The columns the out-of-fold scores are aligned on."""
        if self.cv == "prefit":
            check_is_fitted(self.estimator)
            return targets_of(self.estimator, labels)
        if not is_concept_lists(labels):
            return ConceptTargets().fit(labels)
        params = self.estimator.get_params(deep=False)
        return ConceptTargets(min_count=params.get("min_count", 1),
                              max_labels=params.get("max_labels")).fit(labels)

    def _out_of_fold_scores(self, X, y, labels, splits, fit_params, vocabulary):
        if self.cv == "prefit":
            self._fold_estimator = self.estimator
            return self._scores_of(self.estimator, X, vocabulary, labels)
        if len(splits) == 1:  # one hold-out: nothing to spread (nor to nest in a cluster)
            results = [fit_on_rows(clone(self.estimator), X, y, fit_params, splits[0][0])]
        else:
            results = Parallel(n_jobs=workers_for(self.n_jobs, len(splits)))(
                delayed(fit_on_rows)(clone(self.estimator), X, y, fit_params, train)
                for train, _ in splits)
        self._fold_estimator = results[0]
        return np.concatenate([
            self._scores_of(fitted, _safe_indexing(X, test), vocabulary,
                            _safe_indexing(labels, train))
            for fitted, (train, test) in zip(results, splits)])

    @staticmethod
    def _scores_of(estimator, X, vocabulary, labels_fitted):
        return aligned_scores(estimator, X, targets_of(estimator, labels_fitted),
                              vocabulary.classes_)

    def _scores(self, X):
        """The estimator's scores on this tuner's ``classes_`` (aligned by name)."""
        check_is_fitted(self, "decision_rule_")
        return aligned_scores(self.estimator_, X, self.targets_, self.classes_)

    def _choose_rule(self, scores, truth, n_true, vocabulary, y_tuning, seed):
        candidates = candidate_thresholds(scores, self.thresholds)
        if self._uses_official_score():
            tuned = choose_official_rule(
                scores, truth, n_true, candidates, coverages=checked_coverages(self.count_coverage),
                strategy=self.strategy, min_support=self.min_support,
                shrinkage=self.shrinkage, min_concepts=self.min_concepts,
                max_concepts=self.max_concepts, seed=seed)
        else:
            curve = scored_one_by_one(self.scoring, scores, vocabulary, y_tuning, candidates,
                                      self.min_concepts, self.max_concepts)
            tuned = choose_from_curve(curve, candidates, self.min_concepts, self.max_concepts)
        (self.decision_rule_, self.best_threshold_, self.best_score_, self.count_coverage_,
         self.shrinkage_, results) = tuned
        self.cv_results_ = results if self.store_cv_results else None

    def _decision_rule(self):
        return self.decision_rule_

    @available_if(lambda self: hasattr(self.estimator, "predict_proba"))
    def predict_proba(self, X: Images) -> FloatArray:
        """The estimator's probabilities, one column per concept.

        Parameters
        ----------
        X : array-like or sequence of paths

        Returns
        -------
        ndarray of shape (n_images, n_concepts)
        """
        return self._scores(X)

    @available_if(lambda self: not hasattr(self.estimator, "predict_proba")
                  and hasattr(self.estimator, "decision_function"))
    def decision_function(self, X: Images) -> FloatArray:
        """The estimator's decision scores, one column per concept (no ``predict_proba``).

        Parameters
        ----------
        X : array-like or sequence of paths

        Returns
        -------
        ndarray of shape (n_images, n_concepts)

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.linear_model import RidgeClassifier
        >>> from imageclef_concepts import ThresholdTuner
        >>> X = np.arange(8.0)[:, None]; y = np.c_[X[:, 0] > 3, X[:, 0] < 5].astype(int)
        >>> tuner = ThresholdTuner(RidgeClassifier(), cv=2, thresholds=5).fit(X, y)
        >>> tuner.decision_function(X[:1]).shape
        (1, 2)
        """
        return self._scores(X)

    def save(self, path: PathLike) -> None:
        """Save the tuned model whole: the estimator's native file, carrying the rule.

        The estimator must have a ``save`` method and a ``threshold``
        parameter (:class:`~imageclef_concepts.ConceptCNNClassifier`): it is
        saved with ``threshold=decision_rule_``, so that loading it (with the
        estimator's ``load``) predicts exactly as this tuner does, per-concept
        thresholds and min/max concepts included.

        Parameters
        ----------
        path : str or path-like
        """
        check_is_fitted(self, "decision_rule_")
        if not hasattr(self.estimator_, "save") or "threshold" not in self.estimator_.get_params():
            raise TypeError(f"{type(self.estimator_).__name__} has no native file format with a "
                            "decision rule; save this tuner with joblib instead.")
        self.tuned_estimator().save(path)

    def tuned_estimator(self) -> BaseEstimator:
        """The fitted estimator carrying :attr:`decision_rule_` as its ``threshold``.

        Returns
        -------
        estimator
            A shallow copy of ``estimator_`` with ``threshold`` set to the
            tuned rule and the tuning recorded in ``tuning_``: neither
            ``estimator_`` nor, with ``cv="prefit"``, the user's estimator is
            changed. The copy shares the fitted network and arrays (no
            memory is doubled); it is for predicting and saving.

        Raises
        ------
        TypeError
            When the estimator has no ``threshold`` parameter to carry the rule.
        """
        check_is_fitted(self, "decision_rule_")
        if "threshold" not in self.estimator_.get_params(deep=False):
            raise TypeError(f"{type(self.estimator_).__name__} has no threshold parameter to "
                            "carry the tuned rule: predict with this tuner (save it with "
                            "joblib), or give the estimator a threshold its decide applies.")
        rule = self.decision_rule_  # per-concept thresholds in the estimator's own order:
        rule = rule_for_columns(rule, self.classes_, score_columns(self.estimator_, self.targets_),
                                float(np.mean(rule.threshold)))
        tuned = shallow_copy(self.estimator_).set_params(threshold=rule)
        tuned.tuning_ = {"official_f1": self.best_score_, "strategy": self.strategy,
                         "n_images": int(self._n_tuning_images)}
        return tuned

    def __sklearn_tags__(self):
        tags = set_multilabel_tags(super().__sklearn_tags__(), images=False)
        tags.input_tags = self.estimator.__sklearn_tags__().input_tags
        return tags

