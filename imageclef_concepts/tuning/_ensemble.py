"""EnsembleTuner: an ensemble's decision tuned as a whole for the official score.

The 2026 winner (AUEB/Archimedes) let every member vote with its own
threshold and kept a concept with at least ``L`` votes ("dual threshold");
teams before averaged probabilities with hand-set weights. This module
chooses those numbers on held-out member scores: the members' thresholds
and ``L`` together, or the members' weights (per band of concept
frequency) with the threshold of their mean. The searches themselves are
in :mod:`._ensemble_search` (votes) and :mod:`._weight_search`; this module makes the
held-out scores (folds, a hold-out, or given validation data) and builds
the tuned :class:`~imageclef_concepts.ConceptEnsemble`.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import TYPE_CHECKING

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import MetaEstimatorMixin, clone
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..concepts._targets import ConceptTargets, align_columns, targets_of
from ..estimators._ensemble import ConceptEnsemble
from ..estimators._members import fit_quietly, workers_for
from ..files._numbers import WholeNumber
from ..images._shared import shares_decoding
from ..models._base import (
    BaseConceptClassifier,
    RoutingMixin,
    aligned_scores,
    shallow_copy,
)
from ..models._decision import check_threshold_grid
from ._ensemble_search import vote_buckets, vote_search
from ._rule import check_tuning_truth, tuning_start
from ._weight_search import (
    DEFAULT_WEIGHT_GRID,
    MAX_CANDIDATES,
    band_edges,
    band_of,
    check_search_options,
    unused_threshold,
    weight_search,
)

if TYPE_CHECKING:  # names for annotations only
    from typing import Any

    from numpy.typing import NDArray

    from .._typing import (
        CrossValidation,
        EnsembleTuning,
        FloatArray,
        Images,
        Numbers,
        PathLike,
        RandomState,
        SearchStarts,
        Targets,
    )


class EnsembleTuner(RoutingMixin, MetaEstimatorMixin, BaseConceptClassifier):
    """Tune a :class:`ConceptEnsemble` for the official score: votes or weights.

    ``tune="votes"``: each member's threshold and the number of votes ``L``
    a concept needs, chosen together (the 2026 winner's "dual threshold");
    ``tune="weights"``: the members' weights in the mean of their
    probabilities, optionally per band of concept frequency, with the
    threshold of the mean re-tuned for every weight tried. Both search
    held-out member scores, exhaustively when the grid is small and by
    coordinate ascent otherwise (see Notes).

    Parameters
    ----------
    ensemble : ConceptEnsemble
        Its members, parameters and ``fallback`` are kept; ``combine``
        becomes ``"vote"`` (votes) or ``"mean"`` (weights). For votes each
        member needs a ``threshold`` parameter that its ``decide`` applies to
        its scores (the library's estimators have one).
    tune : {"votes", "weights"}, default="votes"
    thresholds : int or array-like, default=20
        Candidate thresholds: that many evenly spaced between the lowest and
        highest held-out score (each member's own range for votes, so a
        ``decision_function`` member is tuned in its own units), or the
        given values for every member (in [0, 1] when the members all have
        ``predict_proba``, and for weights).
    weight_grid : array-like, default=(0.0, 0.5, 1.0, 2.0)
        The weights a member may take (``tune="weights"``); coarse on
        purpose (at most 1,000 values). 0 drops a member (from a band); at
        least one value must be positive. The search starts from every member at the largest value
        (equal weights), so ``weights_`` are always values of the grid.
        Another value than the default with ``tune="votes"`` warns (unused).
    bands : int, array-like or None, default=None
        ``tune="weights"``: one set of weights per band of concepts by their
        support (positives in the ``y`` given to ``fit``): an int makes that
        many bands (at most one per concept) at quantiles of the support, an
        array gives the edges
        (``[10, 100]``: below 10, 10 to 99, 100 and above). None: one set.
        Given with ``tune="votes"``, it warns (unused).
    cv : int, cross-validation splitter, float or "prefit", default=5
        Where the held-out member scores come from, as
        :class:`ThresholdTuner`'s ``cv`` (scikit-learn's
        ``TunedThresholdClassifierCV`` convention): folds (each fits a clone
        of the ensemble, all its members), a float hold-out fraction, or
        ``"prefit"``: ``ensemble`` is fitted and ``fit(X, y)`` is given the
        validation data to tune on.
    refit : bool, default=True
        Refit the ensemble on all the data once tuned. False keeps the
        ensemble of the single split (a float ``cv``): half the training.
    n_jobs : int or None, default=None
        Folds fitted in parallel (joblib); the ensemble's own ``n_jobs``
        fits each fold's members in parallel.
    random_state : int, RandomState instance or None, default=None
        Shuffles the hold-out of a float ``cv``.
    max_sweeps : int, default=5
        Passes of coordinate ascent over the members at most (not used by an
        exhaustive search).
    starts : {"each_vote_count", "best_common"}, default="each_vote_count"
        Votes, when the search is coordinate ascent: start an ascent from the
        best common threshold of every vote count and keep the best
        (``n_members`` ascents), or one ascent from the best common threshold
        and count (``n_members`` times cheaper, but one member's move seldom
        leaves the count a common threshold chose: it misses more of the
        settings where members differ). Another value warns with ``tune="weights"``.

    Attributes
    ----------
    ensemble_ : ConceptEnsemble
        The tuned ensemble, fitted (``prefit=True``: its members are; set
        ``prefit=False`` to train it anew with the tuned rules). Its members
        carry their tuned ``threshold`` and its ``min_votes`` is ``L``
        (votes), or it carries the tuned ``weights`` and ``threshold``. It
        saves and loads whole (:meth:`save`, :meth:`ConceptEnsemble.load`).
    member_thresholds_ : ndarray of shape (n_members,) or None
        Votes: each member's threshold.
    min_votes_ : int or None
        Votes: ``L``.
    weights_ : ndarray of shape (n_members,) or (n_bands, n_members), or None
        Weights: per member, or per band and member.
    threshold_ : float or None
        Weights: the threshold of the weighted mean.
    band_edges_ : ndarray or None
        Weights with ``bands``: the support at which each band after the
        first begins.
    best_score_ : float
        The official F1 on the held-out scores at the tuned setting.
    start_score_ : float
        Where the search started: the best common threshold and ``L``
        (votes), or equal weights with a tuned threshold (weights).
    history_ : list of float
        The score after each coordinate step of the ascent kept (never
        decreasing); votes searched exhaustively: ``start_score_``, then
        ``best_score_``.
    classes_ : ndarray
    targets_ : ConceptTargets

    Notes
    -----
    Which search runs. Votes: two candidate thresholds of a member between
    which none of its held-out scores lies give the same votes, so only the
    lowest of them counts (tied scores leave few: a k-NN member of five
    neighbours has six score values). Every combination is then tried (a
    member at the lowest of equivalent thresholds, the best common threshold
    kept unless beaten by more than rounding) when that is affordable: when
    the elements it visits (the combinations times the distinct cells of
    image and members' votes, ``_ensemble_search.exhaustive_cost``) are at
    most 5 x 10^7 or at most what the ascent may visit (every start and
    sweep), so ``best_score_`` is the best of the grid. Tied scores leave few
    thresholds and cells: five or six k-NN-like members are searched exactly.
    Measured on 1,000 images x 1,000 concepts (``benchmarks/vote_search.py``):
    0.5-1.6 times the ascent's time with tied scores (up to six members),
    up to 6 times (2 s) with continuous scores; three members with 20
    continuous thresholds ascend. Otherwise coordinate ascent finds a local
    best, never below any setting it scored: on 480 random small cases with
    continuous scores it found the best of the grid in 478 with
    ``starts="each_vote_count"``, 466 with one start, but with scores tied at
    three values it missed it in a third to a half of the cases with four
    members, by up to 0.06 F1. Weights: when ``len(weight_grid) **
    n_members`` is at most 256 (four members on the default grid) every
    combination is tried in a band, so with one band the weights are the
    best of the grid; coordinate ascent otherwise.

    Over-fitting is kept down in three ways: every number is chosen on
    scores of images the members did not train on (folds, a hold-out, or
    validation data); the grids are coarse (``thresholds`` values, a few
    ``weight_grid`` values, a handful of ``bands`` rather than one weight
    per concept); and a step is taken only when it strictly improves the
    score, for at most ``max_sweeps`` passes. With ``cv="prefit"``,
    ``best_score_`` is exactly ``ensemble_.score(X, y)`` on the tuning data:
    an optimistic estimate, as every tuned score is; measure on other images.

    The search ignores ``fallback`` (applied when predicting), and replaces
    each member's threshold (per-concept thresholds and ``min_concepts`` of
    a member's rule included) by one tuned threshold.

    Examples
    --------
    >>> import numpy as np
    >>> from imageclef_concepts import ConceptEnsemble, ConceptKNNClassifier, EnsembleTuner
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 255, (60, 8, 8, 3), dtype=np.uint8)
    >>> y = [["C1"] + (["C2"] if image[0, 0, 0] > 128 else []) for image in X]
    >>> ensemble = ConceptEnsemble.from_grid(ConceptKNNClassifier(pixel_size=4),
    ...                                      {"n_neighbors": [3, 5, 7]}, combine="vote")
    >>> tuner = EnsembleTuner(ensemble, cv=3, thresholds=5).fit(X, y)
    >>> 1 <= tuner.ensemble_.min_votes <= 3
    True
    """

    _parameter_constraints = {
        "ensemble": [ConceptEnsemble],
        "tune": [StrOptions({"votes", "weights"})],
        "thresholds": [WholeNumber(2, MAX_CANDIDATES, closed="both"), "array-like"],
        "weight_grid": ["array-like"],
        "bands": [WholeNumber(1), "array-like", None],
        "cv": ["cv_object", StrOptions({"prefit"}), Interval(Real, 0, 1, closed="neither")],
        "refit": ["boolean"],
        "n_jobs": [WholeNumber(None, None, closed="neither"), None],
        "random_state": ["random_state"],
        "max_sweeps": [WholeNumber(1)],
        "starts": [StrOptions({"each_vote_count", "best_common"})],
    }

    def __init__(self, ensemble: ConceptEnsemble, *, tune: EnsembleTuning = "votes",
                 thresholds: int | Numbers = 20, weight_grid: Numbers = DEFAULT_WEIGHT_GRID,
                 bands: int | Numbers | None = None, cv: CrossValidation = 5, refit: bool = True,
                 n_jobs: int | None = None, random_state: RandomState = None,
                 max_sweeps: int = 5, starts: SearchStarts = "each_vote_count") -> None:
        self.ensemble = ensemble
        self.tune = tune
        self.thresholds = thresholds
        self.weight_grid = weight_grid
        self.bands = bands
        self.cv = cv
        self.refit = refit
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.max_sweeps = max_sweeps
        self.starts = starts

    @shares_decoding
    def _fit(self, X: Images, y: Targets, **fit_params: Any) -> None:
        """Held-out member scores, the search, then the tuned ensemble."""
        # The ensemble routes its fit parameters on to its members.
        X, y, labels, fit_params, splits = tuning_start(self, X, y, fit_params, "ensemble")
        if self.cv == "prefit":
            check_is_fitted(self.ensemble, "estimators_")
        vocabulary = (self.ensemble.targets_ if self.cv == "prefit" else
                      ConceptTargets().fit(labels))
        n_concepts = len(vocabulary.classes_)
        if self.tune == "weights" and isinstance(self.bands, Integral) and \
                int(self.bands) > n_concepts:
            raise ValueError(f"bands={self.bands} is more than the {n_concepts} concepts: at "
                             "most one band per concept.")
        truth, n_true = vocabulary.truth(_safe_indexing(labels, np.concatenate(
            [test for _, test in splits])))  # the held-out images, in the scores' order
        check_tuning_truth(n_true)  # before any member is fitted
        scores, fold_ensemble = self._held_out_scores(X, y, labels, splits, fit_params,
                                                      vocabulary)
        support = np.asarray(vocabulary.truth(labels)[0].sum(axis=0)).ravel()
        if self.tune == "votes":
            found = self._search_votes(scores, truth, n_true)
        else:
            found = self._search_weights(scores, truth, n_true, support)
        self.best_score_, self.start_score_ = found.score, found.start_score
        self.history_ = list(found.history)
        if self.cv == "prefit":
            base = self.ensemble
        elif self.refit:
            base = fit_quietly(clone(self.ensemble), X, y, fit_params)
        else:
            base = fold_ensemble
        self.ensemble_ = self._tuned(base, X, y, vocabulary, support)
        self.targets_, self.classes_ = self.ensemble_.targets_, self.ensemble_.classes_

    def _inner_estimators(self):
        return {"ensemble": self.ensemble}

    def _check_options(self):
        """Refuse (warn of, for what ``tune`` does not use) the settings the search cannot
        take, with no data and nothing fitted: what ``fit`` checks first, and what the 2026
        recipe checks before its members train."""
        if self.cv == "prefit" and self.refit:
            raise ValueError("cv='prefit' uses the ensemble as fitted: set refit=False.")
        if self.cv != "prefit" and self.ensemble.prefit:
            raise ValueError("The ensemble has prefit=True: its members are used as fitted and "
                             "cannot be trained on folds. Fit it and tune with cv='prefit' on "
                             "validation data, or set prefit=False.")
        check_search_options(self)
        members = [_unfrozen(member) for _, member in self.ensemble.estimators]
        check_threshold_grid(self.thresholds, most=MAX_CANDIDATES, probabilities=(
            self.tune == "weights" or all(hasattr(m, "predict_proba") for m in members)))
        if self.tune == "votes":
            for (name, _), member in zip(self.ensemble.estimators, members):
                _check_votes_by_threshold(name, member)

    def _held_out_scores(self, X, y, labels, splits, fit_params, vocabulary):
        """Each member's scores on the held-out images, on ``vocabulary``'s columns."""
        fill = np.nan if self.tune == "votes" else 0.0  # as the ensemble's votes and mean
        if self.cv == "prefit":
            members = self.ensemble.estimators_
            return ([aligned_scores(member, X, targets_of(member, labels), vocabulary.classes_,
                                    fill) for member in members], None)
        n_jobs = workers_for(self.n_jobs, len(splits)) if len(splits) > 1 else None
        fitted = Parallel(n_jobs=n_jobs)(
            delayed(fit_quietly)(clone(self.ensemble), X, y, fit_params, train)
            for train, _ in splits)
        per_fold = [[aligned_scores(member, _safe_indexing(X, test),
                                    targets_of(member, _safe_indexing(labels, train)),
                                    vocabulary.classes_, fill) for member in ensemble.estimators_]
                    for ensemble, (train, test) in zip(fitted, splits)]
        scores = [np.concatenate(parts) for parts in zip(*per_fold)]
        return scores, fitted[0]

    def _candidates(self, scores, whose=""):
        """Candidate thresholds, ascending, in the scores' own precision."""
        finite = scores[np.isfinite(scores)]
        if finite.size == 0:  # whose: the member they are of, when one member's
            raise ValueError(f"The held-out scores{whose} are all NaN or infinite: there is "
                             "nothing to tune on.")
        if isinstance(self.thresholds, Integral):
            candidates = np.linspace(finite.min(), finite.max(), num=self.thresholds)
        else:
            candidates = np.unique(np.asarray(self.thresholds, dtype=float))
        return candidates.astype(scores.dtype)

    def _search_votes(self, scores, truth, n_true):
        candidates = [self._candidates(member, f" of member {name!r}") for (name, _), member
                      in zip(self.ensemble.estimators, scores)]
        buckets = [vote_buckets(member, grid) for member, grid in zip(scores, candidates)]
        found = vote_search(buckets, len(candidates[0]), truth, n_true,
                            int(self.max_sweeps), self.starts)  # np.uint8 would wrap
        self.member_thresholds_ = np.array([float(grid[q]) for grid, q
                                            in zip(candidates, found.thresholds)])
        self.min_votes_ = found.min_votes
        self.weights_ = self.threshold_ = self.band_edges_ = None
        return found

    def _search_weights(self, scores, truth, n_true, support):
        members = np.stack(scores)
        self.band_edges_ = band_edges(self.bands, support)
        bands = band_of(support, self.band_edges_)
        n_bands = 1 if self.band_edges_ is None else len(self.band_edges_) + 1
        found = weight_search(members, truth, n_true, self._candidates(members), bands,
                              n_bands, np.asarray(self.weight_grid, dtype=float),
                              int(self.max_sweeps))
        self.weights_ = found.weights[0] if self.band_edges_ is None else found.weights
        self.threshold_ = found.threshold
        self.member_thresholds_ = self.min_votes_ = None
        return found

    def _tuned(self, base, X, y, vocabulary, support):
        """A fitted ensemble of ``base``'s fitted members carrying the tuned decision."""
        names = [name for name, _ in base.estimators]
        members = [_unfrozen(member) for member in base.estimators_]
        params = base.get_params(deep=False)
        if self.tune == "votes":
            members = [shallow_copy(member).set_params(threshold=threshold)
                       for member, threshold in zip(members, self.member_thresholds_)]
            params.update(combine="vote", min_votes=self.min_votes_,
                          threshold=unused_threshold(base))
        else:
            weights = self.weights_
            if self.band_edges_ is not None:  # one column per concept of the ensemble
                own = align_columns(support[np.newaxis, :].astype(float), vocabulary.classes_,
                                    base.classes_, fill=0.0)[0]
                weights = weights[band_of(own, self.band_edges_)].T
            params.update(combine="mean", weights=weights.tolist(), threshold=self.threshold_)
        params.update(estimators=list(zip(names, members)), prefit=True)
        tuned = fit_quietly(ConceptEnsemble(**params), X, y, {})  # prefit: the vocabulary
        tuned.estimators_samples_ = getattr(base, "estimators_samples_", None)  # what they saw
        return tuned

    @shares_decoding
    def decide(self, X: Images) -> NDArray[np.bool_]:
        """The tuned ensemble's decision (:meth:`ConceptEnsemble.decide`).

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        ndarray of bool, shape (n_images, n_concepts)
        """
        check_is_fitted(self, "ensemble_")
        return self.ensemble_.decide(X)

    @shares_decoding
    def predict_proba(self, X: Images) -> FloatArray:
        """The tuned ensemble's probabilities (:meth:`ConceptEnsemble.predict_proba`).

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        ndarray of shape (n_images, n_concepts)
        """
        check_is_fitted(self, "ensemble_")
        return self.ensemble_.predict_proba(X)

    @property
    def decides_by_threshold(self) -> bool:
        """True when tuned weights decide by ``threshold_`` alone (no ``fallback``)."""
        return self.tune == "weights" and self.ensemble.fallback is None

    def save(self, path: PathLike) -> None:
        """Save the tuned ensemble (``ensemble_``) as one archive; read it with
        :meth:`ConceptEnsemble.load` or ``load_model``.

        Parameters
        ----------
        path : str or path-like
        """
        check_is_fitted(self, "ensemble_")
        self.ensemble_.save(path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags = self.ensemble.__sklearn_tags__().input_tags
        return tags


def _unfrozen(member):
    """The estimator inside scikit-learn's ``FrozenEstimator`` (its parameters can be set)."""
    return member.estimator if type(member).__name__ == "FrozenEstimator" else member


def _check_votes_by_threshold(name, member):
    if "threshold" not in member.get_params(deep=False):
        raise ValueError(
            f"tune='votes' sets each member's threshold, but the member {name!r} "
            f"({type(member).__name__}) has no threshold parameter. Give it one (its decide "
            "applying it to its scores), or use tune='weights'.")
    if not getattr(member, "decides_by_threshold", True):
        raise ValueError(f"The member {name!r} ({type(member).__name__}) does not decide by "
                         "its threshold (decides_by_threshold is False), so tuning it would "
                         "change nothing: use voting by threshold, or tune='weights'.")
