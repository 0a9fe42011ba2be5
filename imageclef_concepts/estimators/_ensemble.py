"""ConceptEnsemble: systems built from several concept models, as the task's winners build them.

Every edition since 2020 was won by a combination: averaged probabilities of
several networks, or the union / intersection of their concept sets, an
image's empty prediction filled from another model, a CNN fused with k-NN
retrieval (AUEB NLP Group 2019-2025, DBS-HHU 2024, VCMI 2022/23).
"""

from __future__ import annotations

from numbers import Real
from typing import TYPE_CHECKING

import numpy as np
from joblib import Parallel, delayed
from scipy import sparse
from sklearn.base import clone
from sklearn.utils import Bunch
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import _BaseComposition
from sklearn.utils.validation import _num_samples, check_is_fitted

from ..concepts._lists import is_concept_lists
from ..concepts._targets import ConceptTargets, align_columns, score_columns, targets_of
from ..files._numbers import WholeNumber
from ..images._shared import shares_decoding
from ..models._base import (
    BaseConceptClassifier,
    RoutingMixin,
    aligned_scores,
    fit_on_rows,
    visual_block,
)
from ..models._card import ModelFileError, expect
from ..models._decision import DecisionRule
from ..models._persistence import ArchivedModel
from ..models._ranges import check_ensemble_weights, weighted_mean
from ._members import (
    check_member_names,
    check_one_training_per_checkpoint,
    draw_samples,
    grid_members,
    rows_of,
    united_classes,
    warn_unused_parameters,
    workers_for,
)

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Sequence
    from typing import Any

    from numpy.typing import NDArray
    from typing_extensions import Self

    from .._typing import Combine, Estimator, FloatArray, Images, Numbers, RandomState, Targets

PROBABILITY_COMBINATIONS = ("mean", "max")
SET_COMBINATIONS = ("union", "intersection", "vote")


class ConceptEnsemble(RoutingMixin, ArchivedModel, _BaseComposition, BaseConceptClassifier):
    """Combine several concept estimators into one.

    Parameters
    ----------
    estimators : list of (str, estimator)
        The members, by name (a non-empty name without a slash, backslash or
        control character, not '.' or '..': it is a folder of the saved model).
        Any multi-label classifier with ``predict_proba``; the library's (CNNs, k-NN,
        baselines, tuners) also bring their own decision rules to the set combinations.
        Their parameters are reachable by nested names (``cnn__learning_rate``).
    combine : {"mean", "max", "union", "intersection", "vote"}, default="mean"
        ``"mean"`` (weighted by ``weights``) or ``"max"`` of the members'
        probabilities, then ``threshold``; or the ``"union"``,
        ``"intersection"`` or ``"vote"`` (at least ``min_votes`` members)
        of the concept sets the members predict, each with its own rule.
    weights : array-like of shape (n_members,) or (n_members, n_concepts), default=None
        Member weights of the mean (``"mean"`` decides on it, a set combination's
        ``predict_proba`` is it): one real number per member, finite,
        non-negative, with a positive sum (normalised without overflow), or one
        column of them per entry of ``classes_`` (weights per concept, as
        :class:`EnsembleTuner` tunes per frequency band); None weighs all alike.
        Checked at ``fit``, at every prediction (after ``set_params``) and at
        load; ``"max"`` uses none, and warns at ``fit``.
    threshold : float in [0, 1] or DecisionRule, default=0.5
        The decision rule on the combined probabilities (``"mean"`` and
        ``"max"``). The set combinations do not use it (each member decides
        by its own rule): any other value than the default warns at ``fit``,
        instead of silently changing nothing.
    min_votes : int, default=2
        Members that must predict a concept, for ``combine="vote"`` (another
        value warns at ``fit`` with other combinations).
    fallback : str or None, default=None
        The name of a member whose concepts an image gets when the
        combination predicts nothing for it (an empty prediction scores 0).
    prefit : bool, default=False
        Use the members as fitted; ``fit`` then only reads the vocabulary.
    n_jobs : int or None, default=None
        Members fitted in parallel (joblib; any joblib backend, a cluster's
        included).
    subsample : float in (0, 1] or None, default=None
        Fit each member on its own random part of the training images, this
        fraction of them drawn without replacement (Monte-Carlo
        cross-validation; with ``combine="intersection"`` only the concepts
        all of them agree on are kept). None: every member sees every image.
        With ``prefit=True``, another value than None warns (unused).
    random_state : int, RandomState instance or None, default=None
        Draws the members' parts for ``subsample``.

    Attributes
    ----------
    estimators_ : list of estimator
        The fitted members.
    named_estimators_ : Bunch
        The fitted members by name.
    classes_ : ndarray
        The union of the members' concepts. A member that does not know a
        concept contributes probability 0 and no vote for it.
    targets_ : ConceptTargets
    estimators_samples_ : list of ndarray or None
        The training images (row indices) each member was fitted on, with
        ``subsample`` (None when every member saw them all, or ``prefit``).

    Examples
    --------
    >>> import numpy as np
    >>> from imageclef_concepts import ConceptEnsemble, ConceptKNNClassifier, MostFrequentConcepts
    >>> X = np.zeros((6, 8, 8, 3), dtype=np.uint8); X[3:] = 255
    >>> X[:, 0, 0, 0] = np.arange(6)  # no two images alike
    >>> y = ["C1", "C1", "C1;C3", "C2", "C2", "C2"]
    >>> ensemble = ConceptEnsemble([("knn", ConceptKNNClassifier(1, pixel_size=4)),
    ...                             ("top", MostFrequentConcepts(k=1))],
    ...                            combine="union").fit(X, y)
    >>> ensemble.predict_concepts(X[[0, 5]])
    [('C1',), ('C1', 'C2')]
    """

    _parameter_constraints = {
        "estimators": [list],
        "combine": [StrOptions(set(PROBABILITY_COMBINATIONS + SET_COMBINATIONS))],
        "weights": ["array-like", None],
        "threshold": [Interval(Real, 0, 1, closed="both"), DecisionRule],
        "min_votes": [WholeNumber(1)],
        "fallback": [str, None],
        "prefit": ["boolean"],
        "n_jobs": [WholeNumber(None, None, closed="neither"), None],
        "subsample": [Interval(Real, 0, 1, closed="right"), None],
        "random_state": ["random_state"],
    }

    def __init__(self, estimators: Sequence[tuple[str, Estimator]], *, combine: Combine = "mean",
                 weights: Numbers | None = None, threshold: float | DecisionRule = 0.5,
                 min_votes: int = 2, fallback: str | None = None, prefit: bool = False,
                 n_jobs: int | None = None, subsample: float | None = None,
                 random_state: RandomState = None) -> None:
        self.estimators = estimators
        self.combine = combine
        self.weights = weights
        self.threshold = threshold
        self.min_votes = min_votes
        self.fallback = fallback
        self.prefit = prefit
        self.n_jobs = n_jobs
        self.subsample = subsample
        self.random_state = random_state

    @classmethod
    def from_grid(cls, template: Any, grid: Any, **params: Any) -> ConceptEnsemble:
        """An ensemble of one member per combination of ``grid``, clones of ``template``.

        Parameters
        ----------
        template : estimator
            The estimator each member is a clone of, with the grid's values set.
        grid : dict of str to list, or list of such dicts
            What varies, as ``GridSearchCV``'s ``param_grid`` (scikit-learn's
            ``ParameterGrid`` makes the product): ``{"random_state": [0, 1],
            "backbone": ["densenet121", "efficientnetv2b0"]}`` makes four.
            A member is named after what varies in it
            (``"backbone=densenet121,random_state=0"``).
        **params
            The ensemble's parameters (``combine``, ``min_votes``,
            ``n_jobs``, ``subsample``...).

        Returns
        -------
        ConceptEnsemble
            Unfitted; checked now (unknown or empty grid entries,
            ``min_votes`` above the number of members), before any training.

        Examples
        --------
        >>> from imageclef_concepts import ConceptEnsemble, ConceptKNNClassifier
        >>> ensemble = ConceptEnsemble.from_grid(
        ...     ConceptKNNClassifier(), {"n_neighbors": [3, 5], "pixel_size": [4, 8]},
        ...     combine="vote", min_votes=3)
        >>> len(ensemble.estimators), ensemble.estimators[1][0]
        (4, 'n_neighbors=3,pixel_size=8')
        """
        ensemble = cls(grid_members(template, grid), **params)
        ensemble._validate_params()
        ensemble._check_members()
        return ensemble

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of the ensemble and, with ``deep``, of its members by name."""
        return self._get_params("estimators", deep=deep)

    def set_params(self, **params: Any) -> Self:
        """Set the ensemble's parameters, its members' by ``<name>__<parameter>``."""
        self._set_params("estimators", **params)
        return self

    @shares_decoding
    def _fit(self, X: Images, y: Targets, **fit_params: Any) -> None:
        """Fit the members (unless ``prefit``) with their fit parameters; unite their concepts."""
        self._check_members()
        warn_unused_parameters(self)  # before any member trains
        members, routed = dict(self.estimators), self._routed_fit_params(fit_params)
        samples = None
        if self.prefit:
            for member in members.values():
                check_is_fitted(member)
            fitted = list(members.values())
        else:
            check_one_training_per_checkpoint(members.items())
            samples = draw_samples(_num_samples(X), len(members), self.subsample,
                                   self.random_state)
            fitted = Parallel(n_jobs=workers_for(self.n_jobs, len(members)))(
                delayed(fit_on_rows)(clone(member), X, y, routed[name].fit, rows)
                for (name, member), rows in zip(members.items(), samples or [None] * len(members)))
        self._set_members(fitted, y)
        self.estimators_samples_ = samples

    def _set_members(self, fitted, y=None, targets=None):
        """The fitted members, their vocabularies (read once, through their public
        attributes) and ours: united from theirs at fit (``y``), or as saved
        (``targets``), which must be theirs.
        """
        self.estimators_ = list(fitted)
        self.named_estimators_ = Bunch(**dict(zip(self._member_names(), self.estimators_)))
        self._member_targets = [targets_of(member, y) for member in self.estimators_]
        on_concepts = is_concept_lists(y) if targets is None else targets.on_concepts
        for name, member_targets in zip(self._member_names(), self._member_targets):
            if member_targets.on_concepts and not on_concepts:
                raise ValueError(
                    f"The member {name!r} "
                    f"was fitted on concept lists (its classes_ are concept names: "
                    f"{', '.join(map(str, member_targets.classes_[:3]))}, ...) but y is an "
                    "indicator matrix, whose columns name no concept to align it with: "
                    "give the ensemble y as concept lists.")
        self._member_columns = [score_columns(member, member_targets) for member, member_targets
                                in zip(self.estimators_, self._member_targets)]
        self._check_probabilities()
        classes = united_classes(self._member_targets, on_concepts)
        if targets is None:
            targets = (ConceptTargets.from_classes(classes) if on_concepts
                       else ConceptTargets().fit(y))
        elif not np.array_equal(classes, targets.classes_):
            raise ModelFileError("the ensemble's concepts are not those of its members")
        self.targets_ = targets
        self.classes_ = targets.classes_
        check_ensemble_weights(self.weights, len(fitted), n_concepts=len(self.classes_))

    def _member_names(self):
        return [name for name, _ in self.estimators]

    def _inner_estimators(self):
        return dict(self.estimators)

    def _check_members(self):
        names = self._member_names()
        if not names:
            raise ValueError("estimators is empty: an ensemble needs at least one member.")
        self._validate_names(names)
        check_member_names(names)
        check_ensemble_weights(self.weights, len(names))
        if isinstance(self.subsample, bool):  # True passes as the number 1
            raise ValueError(f"subsample must be a fraction of the images in (0, 1] or None, "
                             f"not the boolean {self.subsample}.")
        if self.fallback is not None and self.fallback not in names:
            raise ValueError(f"fallback={self.fallback!r} is not one of the estimators' names "
                             f"{names}.")
        if self.combine == "vote" and self.min_votes > len(names):
            raise ValueError(f"min_votes={self.min_votes} is more than the {len(names)} "
                             "estimators.")

    def _check_probabilities(self):
        """``"mean"`` and ``"max"`` combine probabilities: refuse a member without them."""
        if self.combine not in PROBABILITY_COMBINATIONS:
            return
        for name, member in zip(self._member_names(), self.estimators_):
            if not hasattr(member, "predict_proba"):
                raise ValueError(
                    f"The member {name!r} ({type(member).__name__}) has no predict_proba: "
                    f"combine={self.combine!r} averages probabilities, and its "
                    "decision_function scores are not probabilities. Use a set combination "
                    "('union', 'intersection', 'vote'), which takes each member's own "
                    "decisions, or give the member predict_proba (e.g. CalibratedClassifierCV).")

    def _sk_visual_block_(self):  # scikit-learn's HTML repr: each member in its box, by name
        return visual_block(self.estimators)

    @shares_decoding
    def predict_proba(self, X: Images) -> FloatArray:
        """The combined probabilities: weighted mean or maximum over the members.

        For the set combinations this is the weighted mean, for reference
        (``ThresholdTuner`` around a set combination tunes this mean).

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        ndarray of shape (n_images, n_concepts)
        """
        check_is_fitted(self, "estimators_")
        self._check_members()  # parameters set after fit are checked as at fit
        self._check_probabilities()
        members = [aligned_scores(member, X, targets, self.classes_, fill=0.0)  # 0: unknown
                   for member, targets in zip(self.estimators_, self._member_targets)]
        if self.combine == "max":
            return np.fmax.reduce(members)
        weights = check_ensemble_weights(self.weights, len(members), n_concepts=len(self.classes_))
        return weighted_mean(np.stack(members), weights)

    @shares_decoding
    def decide(self, X: Images) -> NDArray[np.bool_]:
        """The concepts decided for each image, as a boolean indicator over ``classes_``.

        ``"mean"`` and ``"max"``: ``threshold`` on :meth:`predict_proba`; the
        set combinations: the members' own decisions (their ``decide``, or
        their ``predict``), united, intersected or counted; then
        ``fallback`` for images left without a concept.

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        ndarray of bool, shape (n_images, n_concepts)

        Examples
        --------
        >>> from imageclef_concepts import ConceptEnsemble, MostFrequentConcepts
        >>> ensemble = ConceptEnsemble([("one", MostFrequentConcepts(k=1)),
        ...                             ("two", MostFrequentConcepts(k=2))],
        ...                            combine="intersection").fit([[0], [0]], ["C1;C2", "C1"])
        >>> ensemble.decide([[0]])
        array([[ True, False]])
        """
        check_is_fitted(self, "estimators_")
        if self.combine in PROBABILITY_COMBINATIONS:
            decided = self._decision_rule().apply(self.predict_proba(X))
        else:
            self._check_members()
            votes = sum(self._member_decision(position, X).astype(np.int64)
                        for position in range(len(self.estimators_)))
            needed = {"union": 1, "intersection": len(self.estimators_),
                      "vote": self.min_votes}[self.combine]
            decided = votes >= needed
        if self.fallback is not None:
            empty = ~decided.any(axis=1)
            if empty.any():
                position = self._member_names().index(self.fallback)
                decided[empty] = self._member_decision(position, rows_of(X, empty))
        return decided

    @property
    def decides_by_threshold(self) -> bool:
        """True for ``"mean"`` and ``"max"`` without ``fallback``: ``threshold`` on the scores."""
        return self.combine in PROBABILITY_COMBINATIONS and self.fallback is None

    def _member_decision(self, position, X):
        """A member's decided indicator (its public ``decide``, else ``predict``), on our columns.

        ``decide`` may return a dense or a SciPy sparse matrix, of bools or 0/1
        numbers, one column per entry of the member's ``classes_``.
        """
        member, targets = self.estimators_[position], self._member_targets[position]
        columns = self._member_columns[position]
        if hasattr(member, "decide"):
            own = member.decide(X)
            own = own.toarray() if sparse.issparse(own) else np.asarray(own)
            what = "decide"
        else:
            predicted = member.predict(X)
            if is_concept_lists(predicted):
                own, columns = targets.transform(predicted).toarray(), targets.classes_
            else:
                own = np.asarray(predicted)
            what = "predict"
        if own.ndim != 2 or own.shape[1] != len(columns):
            raise ValueError(
                f"The member {self._member_names()[position]!r} ({type(member).__name__}): "
                f"{what}(X) has shape {own.shape} but its classes_ has {len(columns)} "
                "entries: the contract is a (n_images, len(classes_)) indicator.")
        return align_columns((own != 0).astype(np.float32), columns, self.classes_,
                             fill=0.0) > 0

    def _to_archive(self, writer):
        members = [[name, writer.estimator(f"members/{name}", member)]
                   for name, member in zip(self._member_names(), self.estimators_)]
        samples = (None if self.estimators_samples_ is None else
                   [writer.array(f"samples/{position}", rows)
                    for position, rows in enumerate(self.estimators_samples_)])
        return {"params": writer.params(self, nested=("estimators",)), "members": members,
                "targets": self.targets_.to_dict(), "samples": samples}

    @classmethod
    def _from_archive(cls, description, reader):
        members = [(name, reader.estimator(member, f"{reader.where}['members'][{position}]"))
                   for position, (name, member) in enumerate(description["members"])]
        ensemble = reader.params(cls, description, estimators=members)
        ensemble._check_members()  # weights, fallback and votes against the members
        ensemble._set_members([member for _, member in members],
                              targets=reader.targets(description))
        samples = expect(description, "samples", (list, type(None)), reader.where, required=False)
        if samples is not None and (len(samples) != len(members)
                                    or not all(isinstance(entry, str) for entry in samples)):
            raise ModelFileError(f"{reader.where}['samples'] must name one array per member")
        ensemble.estimators_samples_ = None if samples is None else [
            reader.array(entry, "iu", 1, "a member's training images") for entry in samples]
        return ensemble

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if self.estimators:
            tags.input_tags = self.estimators[0][1].__sklearn_tags__().input_tags
        return tags
