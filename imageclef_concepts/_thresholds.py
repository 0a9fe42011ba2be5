"""ThresholdTuner: decision thresholds tuned for the official ImageCLEF score.

The paper chose its threshold (0.1) on validation data. ``ThresholdTuner``
does that for any multi-label classifier with probabilities or decision
scores: one global threshold, or one per concept, chosen on out-of-fold
predictions. scikit-learn's ``TunedThresholdClassifierCV`` handles binary
targets only; its conventions are followed where they carry over.

The official score is evaluated for all candidate thresholds at once: each
image's scores are sorted once, and the number of predicted and of correctly
predicted concepts at every threshold is read off by binary search, instead
of building and scoring a predicted matrix per threshold.
"""

from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.model_selection import ShuffleSplit, check_cv
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import _num_samples, check_array, check_is_fitted

from ._concepts import as_binary_csr, as_concept_array, is_concept_lists, split_concepts
from ._base import OfficialScoreMixin, concept_tuples, set_multilabel_tags
from ._metrics import imageclef_f1, imageclef_f1_score


class ThresholdTuner(OfficialScoreMixin, MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
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
        thresholds at once. Otherwise a scorer name, a scorer, or a callable
        ``score(y_true, y_pred)``: each threshold is then scored in turn.
    thresholds : int or array-like, default=100
        Candidate thresholds: that many evenly spaced between the lowest and
        highest out-of-fold score, or the given values.
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
        Positives a concept needs to get its own threshold.
    min_concepts : int, default=0
        Always predict at least this many concepts per image (the most
        probable ones): under the official score an image with no prediction
        scores 0.
    max_concepts : int or None, default=None
        Predict at most this many concepts per image (100 in later editions).

    Attributes
    ----------
    estimator_ : estimator
        The fitted classifier used by ``predict``.
    best_threshold_ : float or ndarray of shape (n_concepts,)
        The chosen threshold(s).
    best_score_ : float
        The tuning score at ``best_threshold_``.
    cv_results_ : dict or None
        ``thresholds`` and their ``scores`` (global), when
        ``store_cv_results``.
    classes_ : ndarray
        The concepts: the estimator's concept names, or ``0..n_labels-1``.
    n_features_in_ : int
        When the estimator defines it.

    Notes
    -----
    With ``strategy="per_concept"``, ``min_concepts`` and ``max_concepts``
    are applied when predicting but not while improving each concept's
    threshold (the global threshold is tuned with them).

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
        "thresholds": [Interval(Integral, 2, None, closed="left"), "array-like"],
        "cv": ["cv_object", StrOptions({"prefit"}), Interval(Real, 0, 1, closed="neither")],
        "refit": ["boolean"],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "store_cv_results": ["boolean"],
        "strategy": [StrOptions({"global", "per_concept"})],
        "min_support": [Interval(Integral, 1, None, closed="left")],
        "min_concepts": [Interval(Integral, 0, None, closed="left")],
        "max_concepts": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(self, estimator, *, scoring=None, thresholds=100, cv=5, refit=True,
                 n_jobs=None, random_state=None, store_cv_results=False, strategy="global",
                 min_support=10, min_concepts=0, max_concepts=None):
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

    def fit(self, X, y, **fit_params):
        """Fit the estimator and choose the threshold(s) on out-of-fold scores.

        Parameters
        ----------
        X : array-like or sequence of paths
            Whatever ``estimator`` takes.
        y : indicator matrix or sequence of concept lists
        **fit_params : dict
            Passed to ``estimator.fit``.

        Returns
        -------
        self : ThresholdTuner
        """
        self._validate_params()
        self._check_options()
        if not hasattr(X, "__getitem__"):  # array-likes known only by __array__
            X = np.asarray(X)
        self._fitted_on_concepts, y = _check_target(X, y)
        n_labels = None if self._fitted_on_concepts else as_binary_csr(y, "y").shape[1]
        splits = self._splits(X, y)
        fitted, out_of_fold, tuning_rows = self._out_of_fold_scores(X, y, splits, fit_params,
                                                                    n_labels)
        self.classes_ = _classes_of(fitted[0], n_labels)
        truth = _Truth.from_target(_safe_indexing(y, tuning_rows), self.classes_)
        self._choose_thresholds(out_of_fold, truth)
        if self.cv == "prefit":
            self.estimator_ = self.estimator
        elif self.refit:
            self.estimator_ = clone(self.estimator).fit(X, y, **fit_params)
        else:
            self.estimator_ = fitted[0]
        if hasattr(self.estimator_, "n_features_in_"):
            self.n_features_in_ = self.estimator_.n_features_in_
        return self

    def _check_options(self):
        if self.strategy == "per_concept" and not self._uses_official_score():
            raise ValueError("strategy='per_concept' tunes the official ImageCLEF F1; "
                             f"it cannot be combined with scoring={self.scoring!r}.")
        if self.max_concepts is not None and self.max_concepts < self.min_concepts:
            raise ValueError(f"max_concepts={self.max_concepts} is below "
                             f"min_concepts={self.min_concepts}.")
        if self.cv == "prefit" and self.refit:
            raise ValueError("cv='prefit' uses the estimator as fitted: set refit=False.")

    def _uses_official_score(self):
        return self.scoring in (None, "imageclef_f1", imageclef_f1, imageclef_f1_score)

    def _splits(self, X, y):
        """The (train, test) index pairs, drawn once."""
        n_samples = _num_samples(X)
        if self.cv == "prefit":
            return [(None, np.arange(n_samples))]
        if isinstance(self.cv, Real) and not isinstance(self.cv, Integral):
            splitter = ShuffleSplit(n_splits=1, test_size=self.cv,
                                    random_state=self.random_state)
        else:
            # Never stratified: concept lists and indicators are multi-label.
            splitter = check_cv(self.cv, classifier=False)
        splits = list(splitter.split(np.zeros((n_samples, 1))))
        if not self.refit and len(splits) > 1:
            raise ValueError(
                f"refit=False keeps the estimator of the split the threshold came from, "
                f"but cv={self.cv!r} makes {len(splits)} splits; use a float cv or refit=True."
            )
        return splits

    def _out_of_fold_scores(self, X, y, splits, fit_params, n_labels):
        if self.cv == "prefit":
            check_is_fitted(self.estimator)
            return [self.estimator], decision_scores(self.estimator, X, n_labels), splits[0][1]
        results = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_and_score)(clone(self.estimator), X, y, train, test, fit_params,
                                    n_labels)
            for train, test in splits
        )
        fitted = [estimator for estimator, _ in results]
        out_of_fold = np.concatenate([scores for _, scores in results])
        tuning_rows = np.concatenate([test for _, test in splits])
        return fitted, out_of_fold, tuning_rows

    def _candidates(self, scores):
        if isinstance(self.thresholds, Integral):
            finite = scores[np.isfinite(scores)]
            return np.linspace(finite.min(), finite.max(), num=self.thresholds)
        return np.sort(np.asarray(self.thresholds, dtype=float))

    def _choose_thresholds(self, scores, truth):
        candidates = self._candidates(scores)
        if self._uses_official_score():
            curve = global_f1_curve(scores, truth, candidates, self.min_concepts,
                                    self.max_concepts)
        else:
            curve = self._scored_one_by_one(scores, truth, candidates)
        best = int(np.argmax(curve))
        self.best_threshold_, self.best_score_ = float(candidates[best]), float(curve[best])
        if self.strategy == "per_concept":
            self.best_threshold_, self.best_score_ = per_concept_thresholds(
                scores, truth, candidates, self.best_threshold_, self.min_support)
        self.cv_results_ = ({"thresholds": candidates, "scores": curve}
                            if self.store_cv_results else None)

    def _scored_one_by_one(self, scores, truth, candidates):
        from sklearn.metrics import check_scoring

        y_true = truth.as_given
        scorer = self.scoring
        if isinstance(scorer, str) or hasattr(scorer, "_score_func"):
            scorer = check_scoring(None, scoring=scorer)
            return np.array([scorer(_FixedPredictions(self._decode(
                self._select(scores, threshold))), None, y_true) for threshold in candidates])
        return np.array([scorer(y_true, self._decode(self._select(scores, threshold)))
                         for threshold in candidates])

    def _select(self, scores, threshold):
        """Indicator of the predicted concepts: threshold, then min/max per image."""
        predicted = scores >= threshold
        if self.min_concepts or self.max_concepts is not None:
            ranks = ranks_in_row(scores)
            counts = predicted.sum(axis=1, keepdims=True)
            low = self.min_concepts
            high = scores.shape[1] if self.max_concepts is None else self.max_concepts
            predicted = ranks < np.clip(counts, low, high)
        return predicted.astype(np.int64)

    def _decode(self, indicator):
        if self._fitted_on_concepts:
            return as_concept_array(concept_tuples(self.classes_, indicator))
        return indicator

    def predict(self, X):
        """Concepts at the tuned threshold(s), within min/max concepts per image.

        Parameters
        ----------
        X : array-like or sequence of paths

        Returns
        -------
        ndarray
            An int indicator matrix, or concept tuples when fitted on concept
            lists (the form ``y`` was given in).
        """
        check_is_fitted(self, "best_threshold_")
        return self._decode(self._select(self._scores(X), self.best_threshold_))

    def _scores(self, X):
        return decision_scores(self.estimator_, X, len(self.classes_))

    @available_if(lambda self: hasattr(self.estimator, "predict_proba"))
    def predict_proba(self, X):
        """The estimator's probabilities, one column per concept.

        Parameters
        ----------
        X : array-like or sequence of paths

        Returns
        -------
        ndarray of shape (n_images, n_concepts)
        """
        check_is_fitted(self, "best_threshold_")
        return self._scores(X)

    def predict_concepts(self, X):
        """Predicted concepts of each image, as tuples of ``classes_`` entries.

        Parameters
        ----------
        X : array-like or sequence of paths

        Returns
        -------
        list of tuple
        """
        check_is_fitted(self, "best_threshold_")
        indicator = self._select(self._scores(X), self.best_threshold_)
        return concept_tuples(self.classes_, indicator)

    def __sklearn_tags__(self):
        tags = set_multilabel_tags(super().__sklearn_tags__(), images=False)
        tags.input_tags = self.estimator.__sklearn_tags__().input_tags
        return tags


class _FixedPredictions(BaseEstimator):
    """Stands in for an estimator inside a scorer: ``predict`` returns fixed output."""

    def __init__(self, predictions):
        self.predictions = predictions

    def predict(self, X):
        return self.predictions


class _Truth:
    """The tuning rows' true concepts, as the official score needs them.

    ``indicator`` (CSR) marks the true concepts that are columns of the
    scores; ``n_true`` counts every true concept, including ones the
    estimator never saw, so that they count as misses.
    """

    def __init__(self, indicator, n_true, as_given):
        self.indicator = indicator
        self.n_true = n_true
        self.as_given = as_given

    @classmethod
    def from_target(cls, y, classes):
        if not is_concept_lists(y):
            indicator = as_binary_csr(y, "y")
            return cls(indicator, np.asarray(indicator.sum(axis=1)).ravel(), y)
        column = {str(name).upper(): j for j, name in enumerate(classes)}
        rows, cols, n_true = [], [], []
        for row, concepts in enumerate(y):
            names = {concept.upper() for concept in split_concepts(concepts)}
            n_true.append(len(names))
            known = [column[name] for name in names if name in column]
            rows += [row] * len(known)
            cols += known
        indicator = sparse.csr_matrix((np.ones(len(rows), dtype=np.int64), (rows, cols)),
                                      shape=(len(y), len(classes)))
        return cls(indicator, np.array(n_true, dtype=np.int64), y)


def decision_scores(estimator, X, n_labels=None):
    """One (n, n_labels) array of scores from ``predict_proba`` or ``decision_function``.

    A list of per-label (n, 2) probability arrays (``MultiOutputClassifier``,
    ``KNeighborsClassifier``, ``RandomForestClassifier``) becomes the
    columns of positive-class probabilities, and so does the (n, 2) array of
    a single label (``n_labels=1``). NaN (an image that could not be read)
    becomes -inf: never above a threshold.
    """
    if hasattr(estimator, "predict_proba"):
        scores = estimator.predict_proba(X)
        if isinstance(scores, list):
            scores = np.column_stack([_positive_column(p, c) for p, c in
                                      zip(scores, _per_label_classes(estimator, len(scores)))])
        elif n_labels == 1 and np.ndim(scores) == 2 and np.shape(scores)[1] == 2:
            scores = _positive_column(scores, getattr(estimator, "classes_", [0, 1]))
    elif hasattr(estimator, "decision_function"):
        scores = estimator.decision_function(X)
    else:
        raise TypeError(f"{type(estimator).__name__} has neither predict_proba nor "
                        "decision_function: there are no scores to threshold.")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[:, np.newaxis]
    return np.where(np.isnan(scores), -np.inf, scores)


def _per_label_classes(estimator, n_labels):
    classes = getattr(estimator, "classes_", None)
    if isinstance(classes, list) and len(classes) == n_labels:
        return classes
    return [np.array([0, 1])] * n_labels


def _positive_column(probabilities, classes):
    """Probability of label 1 from a per-label (n, k) array with columns ``classes``."""
    classes = list(np.asarray(classes))
    if 1 in classes:
        return probabilities[:, classes.index(1)]
    return np.zeros(len(probabilities))  # label 1 never seen in training


def _fit_and_score(estimator, X, y, train, test, fit_params, n_labels):
    estimator.fit(_safe_indexing(X, train), _safe_indexing(y, train), **fit_params)
    return estimator, decision_scores(estimator, _safe_indexing(X, test), n_labels)


def _check_target(X, y):
    """Check ``y`` against ``X``; return whether it holds concept lists, and ``y``."""
    if y is None:
        raise ValueError("ThresholdTuner requires y to be passed, but the target y is None.")
    if _num_samples(X) != _num_samples(y):
        raise ValueError(f"X has {_num_samples(X)} samples but y has {_num_samples(y)}.")
    if is_concept_lists(y):
        return True, y
    y = check_array(y, ensure_2d=False, accept_sparse=True, dtype=None, input_name="y")
    kind = type_of_target(y, input_name="y", raise_unknown=True)
    if kind.startswith("continuous"):
        raise ValueError(f"Unknown label type: y is {kind}; ThresholdTuner needs 0/1 labels.")
    if kind != "multilabel-indicator" and not (kind == "binary" and y.ndim == 2):
        raise ValueError(
            f"y is a {kind} target. Only binary classification is supported, per concept: "
            "pass an indicator matrix (n_images, n_concepts) or concept lists."
        )
    return False, y


def _classes_of(estimator, n_labels):
    classes = getattr(estimator, "classes_", None)
    if isinstance(classes, np.ndarray) and classes.dtype == object:
        return classes  # concept names (ConceptCNNClassifier and the like)
    if n_labels is None:
        raise ValueError(
            "With concept lists as y the estimator must expose its concept names as "
            "classes_ (like ConceptCNNClassifier); encode y with ConceptEncoder otherwise."
        )
    return np.arange(n_labels)


def ranks_in_row(scores):
    """Each entry's rank in its row, 0 for the highest (ties in column order)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(scores.shape[1])[np.newaxis, :], axis=1)
    return ranks


def global_f1_curve(scores, truth, candidates, min_concepts=0, max_concepts=None):
    """Official F1 at every candidate threshold, each image's scores sorted once.

    Parameters
    ----------
    scores : ndarray of shape (n_images, n_concepts)
    truth : _Truth
    candidates : ndarray of shape (n_thresholds,), ascending
    min_concepts, max_concepts : int
        Bounds on the number of concepts predicted per image.

    Returns
    -------
    ndarray of shape (n_thresholds,)
    """
    n_images, n_concepts = scores.shape
    ordered = np.sort(scores, axis=1)
    true_rows, true_cols = truth.indicator.nonzero()
    true_scores = scores[true_rows, true_cols]
    n_predicted = np.empty((n_images, len(candidates)), dtype=np.int64)
    true_rank = np.empty(len(true_rows), dtype=np.int64)  # concepts scored above it
    starts = np.searchsorted(true_rows, np.arange(n_images + 1))
    for row in range(n_images):
        n_predicted[row] = n_concepts - np.searchsorted(ordered[row], candidates, side="left")
        mine = slice(starts[row], starts[row + 1])
        true_rank[mine] = n_concepts - np.searchsorted(ordered[row], true_scores[mine],
                                                       side="right")
    high = n_concepts if max_concepts is None else max_concepts
    n_predicted = np.clip(n_predicted, min_concepts, high)
    # A true concept is predicted when fewer concepts rank above it than are predicted.
    hits = true_rank[:, np.newaxis] < n_predicted[true_rows]
    n_correct = np.zeros_like(n_predicted)
    np.add.at(n_correct, true_rows, hits)
    return _mean_f1(n_correct, truth.n_true[:, np.newaxis], n_predicted)


def _mean_f1(n_correct, n_true, n_predicted):
    """Official mean over images with a true concept, for each column of counts."""
    counted = n_true[:, 0] > 0
    if not counted.any():
        return np.zeros(n_correct.shape[1])
    denominator = n_true + n_predicted
    f1 = np.divide(2.0 * n_correct, denominator, out=np.zeros(n_correct.shape),
                   where=denominator > 0)
    return f1[counted].mean(axis=0)


def per_concept_thresholds(scores, truth, candidates, global_threshold, min_support,
                           n_sweeps=2):
    """Per-concept thresholds by coordinate ascent on the official F1.

    Starting from ``global_threshold`` everywhere, each concept with at
    least ``min_support`` positives takes, in turn, the candidate threshold
    that maximises the official mean F1 with every other concept's
    threshold held fixed. Each step is exact and costs one sort of that
    concept's scores.

    Returns
    -------
    thresholds : ndarray of shape (n_concepts,)
    score : float
        The official F1 on the tuning data at those thresholds.
    """
    n_images, n_concepts = scores.shape
    thresholds = np.full(n_concepts, global_threshold)
    truth_by_concept = truth.indicator.tocsc()
    predicted = scores >= thresholds
    n_predicted = predicted.sum(axis=1)
    n_correct = np.asarray(truth.indicator.multiply(predicted).sum(axis=1)).ravel()
    n_true = truth.n_true
    counted = n_true > 0
    support = np.diff(truth_by_concept.indptr)
    tunable = np.flatnonzero(support >= min_support)
    for _ in range(n_sweeps):
        changed = False
        for concept in tunable:
            is_true = np.zeros(n_images, dtype=np.int64)
            column = truth_by_concept[:, concept]
            is_true[column.indices] = 1
            was = predicted[:, concept]
            # Counts of every image without this concept predicted...
            base_predicted = n_predicted - was
            base_correct = n_correct - (was & (is_true == 1))
            without = _image_f1(base_correct, n_true, base_predicted)
            with_it = _image_f1(base_correct + is_true, n_true, base_predicted + 1)
            gain = np.where(counted, with_it - without, 0.0)
            # ...and the total gain of predicting it for images scoring >= each candidate.
            order = np.argsort(-scores[:, concept], kind="stable")
            cumulative = np.concatenate([[0.0], np.cumsum(gain[order])])
            included = n_images - np.searchsorted(np.sort(scores[:, concept]), candidates,
                                                  side="left")
            totals = cumulative[included]
            current = cumulative[int(was.sum())] if was.any() else 0.0
            best = int(np.argmax(totals))
            if totals[best] > current + 1e-12:
                thresholds[concept] = candidates[best]
                now = scores[:, concept] >= candidates[best]
                n_predicted = base_predicted + now
                n_correct = base_correct + (now & (is_true == 1))
                predicted[:, concept] = now
                changed = True
        if not changed:
            break
    score = _image_f1(n_correct, n_true, n_predicted)[counted].mean() if counted.any() else 0.0
    return thresholds, float(score)


def _image_f1(n_correct, n_true, n_predicted):
    denominator = n_true + n_predicted
    return np.divide(2.0 * n_correct, denominator, out=np.zeros(len(denominator)),
                     where=denominator > 0)
