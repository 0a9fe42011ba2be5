"""The concept-estimator contract, and the one implementation of what estimators share.

What a concept estimator provides
---------------------------------
Any estimator (the library's, or a user's own) that provides the following
can be tuned by :class:`~imageclef_concepts.ThresholdTuner`, joined into a
:class:`~imageclef_concepts.ConceptEnsemble` and checked with
:func:`~imageclef_concepts.utils.estimator_checks.check_concept_estimator`.
Estimators use one another only through these public names:

``fit(X, y)``
    ``X`` images (an array or image paths), ``y`` concept lists or a 0/1
    indicator matrix; returns ``self``.
``classes_``
    One entry per column of the scores: concept names for concept lists
    (any 1-d sequence of strings: an object or unicode array, a list; in
    any order, no concept twice; concepts are compared stripped and
    upper-cased), ``0..n-1`` for an indicator. (A fitted ``targets_``, a
    :class:`~imageclef_concepts.concepts._targets.ConceptTargets`, may stand for
    it.) An estimator fitted on an indicator alone (no names) joins an
    ensemble or a tuner only with indicator ``y``.
``predict_proba(X)`` or ``decision_function(X)``
    Scores of shape (n_images, len(classes_)) (scikit-learn's list of
    per-label (n, 2) arrays is read too), column ``j`` for ``classes_[j]``.
    ``threshold`` is a probability for ``predict_proba``; for an estimator
    with only ``decision_function`` it is in the units of those scores (a
    concept is decided when its score is at least ``threshold``, so 0 is
    the usual boundary of a linear model), and the library's
    :class:`~imageclef_concepts.ThresholdTuner` tunes it in those units.
``decide(X)`` (optional)
    The boolean indicator (n_images, len(classes_)) of the concepts the
    estimator decides for each image, by its own decision rule: what
    ``predict`` returns, before it is put in ``y``'s form (a SciPy sparse
    matrix is read too). Without it, an ensemble reads ``predict``.
a decision rule
    A ``threshold`` parameter (a probability, or a score for a
    ``decision_function`` estimator, or a
    :class:`~imageclef_concepts.DecisionRule`) or a fitted ``decision_rule_``:
    ``decide(X)`` is that rule applied to the scores.
``decides_by_threshold`` (optional, default True)
    False when ``decide`` is not ``threshold`` applied to the scores, as
    documented by the estimator (k-NN's ``voting="mean_count"``, an
    ensemble's set combinations or ``fallback``): the check suite then
    checks only that ``decide`` and ``predict`` agree.
``predict(X)`` and ``score(X, y)``
    Concepts in ``y``'s own form (concept tuples for concept lists, an int
    indicator for an indicator) and the official ImageCLEF F1 of them.

How the library's estimators implement it
-----------------------------------------
:class:`BaseConceptClassifier` is a template, as scikit-learn's
``BaseThresholdClassifier.fit`` calls ``_fit`` and imbalanced-learn's
``SamplerMixin.fit_resample`` calls ``_fit_resample``: its ``fit`` checks
the parameters and the data once and calls the subclass's ``_fit(X, y)``,
which learns ``targets_`` (usually by ``_fit_targets``) and its own
attributes. :class:`ConceptClassifierMixin` gives ``decide``, ``predict``,
``predict_concepts`` and ``score``, the same for all of them:

    paths -> images -> scores (predict_proba) -> DecisionRule -> decide
          -> targets_ -> concepts in y's form (predict) or as tuples (predict_concepts)

A subclass writes ``_fit``, ``predict_proba`` and, when its rule is not its
``threshold`` parameter, ``_decision_rule``. A meta-estimator also derives
from :class:`RoutingMixin` and names its inner estimators: scikit-learn's
metadata routing then takes its ``fit`` parameters to them. Saving is each class's own
(``_to_archive`` / ``_from_archive``, :mod:`imageclef_concepts.models._persistence`).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import Bunch, _safe_indexing
from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping, process_routing
from sklearn.utils.validation import _check_method_params, check_is_fitted

from ..concepts._metrics import imageclef_f1_score
from ..concepts._targets import ConceptTargets, align_columns, as_target, score_columns
from ._decision import probability_rule
from ._ranges import check_pos_weight

if TYPE_CHECKING:  # names for annotations only
    from typing import Any

    from numpy.typing import ArrayLike, NDArray
    from typing_extensions import Self

    from .._typing import Images, Predictions, Targets


class ConceptClassifierMixin:
    """``decide``, ``predict``, ``predict_concepts`` and ``score`` from scores and a rule.

    For estimators that must keep another base class (the Keras estimator
    derives from scikeras); others derive from :class:`BaseConceptClassifier`.
    """

    def _decision_rule(self):
        """The rule that turns this estimator's scores into concepts: its ``threshold``."""
        return probability_rule(self.threshold)

    @property
    def decides_by_threshold(self) -> bool:
        """Whether :meth:`decide` is the ``threshold`` rule applied to the scores.

        True here; an estimator whose decision is documented otherwise says
        False (see the contract), so that the check suite does not expect it.
        """
        return True

    def _validate_params(self):
        """scikit-learn's parameter checks, a ``threshold`` rule's range and weights' ranges.

        Called at ``fit`` and when a model file is loaded, so a ``pos_weight``
        of NaN, infinity, 0 or beyond float32 is refused in both.
        """
        super()._validate_params()
        names = self._get_param_names()
        if "threshold" in names:
            probability_rule(self.threshold)
        if "pos_weight" in names:
            check_pos_weight(self.pos_weight)

    def decide(self, X: Images) -> NDArray[np.bool_]:
        """The concepts decided for each image, as a boolean indicator over ``classes_``.

        The decision rule applied to the scores (``predict_proba``, or
        ``decision_function`` for an estimator without probabilities):
        :meth:`predict` is this in ``y``'s form. Ensembles combine their
        members' decisions through this method.

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        ndarray of bool, shape (n_images, n_concepts)

        Examples
        --------
        >>> from imageclef_concepts import MostFrequentConcepts
        >>> model = MostFrequentConcepts(k=1).fit([[0], [0]], ["C1;C2", "C1"])
        >>> model.decide([[0]])
        array([[ True, False]])
        """
        check_is_fitted(self, "targets_")
        return self._decision_rule().apply(decision_scores(self, X, len(self.classes_)))

    def predict(self, X: Images) -> Predictions:
        """Predicted concepts, in the form ``y`` was given to ``fit``.

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        ndarray
            An int indicator matrix (n_images, n_concepts) for an indicator
            ``y``; a 1-d object array of concept tuples for concept lists, so
            that the official scorer compares like with like.
        """
        decided = self.decide(X)  # checks that the estimator is fitted first
        return self.targets_.inverse_transform(decided)

    def predict_concepts(self, X: Images) -> list[tuple[str, ...]]:
        """Predicted concepts of each image, as tuples of ``classes_`` entries.

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        list of tuple
        """
        decided = self.decide(X)
        return self.targets_.concepts_of(decided)

    def score(self, X: Images, y: Targets, sample_weight: ArrayLike | None = None) -> float:
        """The official ImageCLEF F1 of ``predict(X)`` against ``y``.

        Parameters
        ----------
        X : array-like of images or sequence of paths
        y : indicator matrix or sequence of concept lists
            In the form the model was fitted on.
        sample_weight : None
            Not supported by the official score; must be None.

        Returns
        -------
        float
        """
        if sample_weight is not None:
            raise ValueError("The official ImageCLEF F1 has no sample weights.")
        return imageclef_f1_score(y, self.predict(X))

    def _fit_targets(self, y, *, min_count=1, max_labels=None):
        """Learn ``targets_`` and ``classes_`` from ``y``; return ``y`` as a CSR indicator.

        ``min_count`` / ``max_labels``: the vocabulary of concept lists
        (:class:`~imageclef_concepts.concepts._targets.ConceptTargets`).
        """
        self.targets_ = ConceptTargets(min_count=min_count, max_labels=max_labels).fit(y)
        self.classes_ = self.targets_.classes_
        return self.targets_.transform(y)


class BaseConceptClassifier(ConceptClassifierMixin, ClassifierMixin, BaseEstimator):
    """Base of the library's concept estimators: write ``_fit`` and ``predict_proba``.

    ``fit`` is a template: it checks the parameters (``_validate_params``),
    that ``y`` is given and has a row per image of ``X``, and calls
    ``_fit(X, y, **fit_params)`` with ``y`` read as one of the library's
    target forms (:func:`~imageclef_concepts.concepts._targets.as_target`).
    """

    def fit(self, X: Images, y: Targets, **fit_params: Any) -> Self:
        """Check the parameters and the data, then fit.

        Parameters
        ----------
        X : array-like of images or sequence of paths
        y : indicator matrix or sequence of concept lists
        **fit_params : dict
            Given to the estimator's own fitting (members' or inner
            estimators' ``fit`` for the meta-estimators: with scikit-learn's
            metadata routing enabled, to each as it requested them, see
            ``get_metadata_routing``).

        Returns
        -------
        self : estimator
        """
        self._validate_params()
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             "is None.")
        y = as_target(y)
        check_n_images(X, y)
        self._check_fit_params(fit_params)
        self._fit(X, y, **fit_params)
        return self

    def _check_fit_params(self, fit_params):
        """Refuse, by name, fit parameters that ``_fit`` does not take."""
        taken = inspect.signature(self._fit).parameters
        if any(p.kind is p.VAR_KEYWORD for p in taken.values()):
            return  # a meta-estimator: its models say
        unknown = sorted(set(fit_params) - set(taken))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}.fit does not take {', '.join(unknown)}"
                + (": it learns from every image alike (of the library's models, "
                   "ConceptCNNClassifier weighs images; the meta-estimators pass the "
                   "weights on)" if "sample_weight" in unknown else "") + ".")

    def _fit(self, X, y, **fit_params):
        """Learn from checked ``X`` and ``y``: set ``targets_``, ``classes_`` and the rest."""
        raise NotImplementedError(f"{type(self).__name__} must implement _fit.")

    def __sklearn_tags__(self):
        return set_multilabel_tags(super().__sklearn_tags__())


class RoutingMixin:
    """Metadata routing of a meta-estimator, as scikit-learn's meta-estimators route it.

    A meta-estimator names its inner estimators in ``_inner_estimators()``
    (name -> estimator, before they are cloned and fitted); its ``fit``
    parameters go to their ``fit``, and to its ``cv``'s ``split`` when it has
    one, through :meth:`_routed_fit_params`.
    """

    def get_metadata_routing(self) -> MetadataRouter:
        """Where ``fit``'s metadata go: each inner estimator's ``fit``, the ``cv``'s ``split``.

        With ``sklearn.set_config(enable_metadata_routing=True)``, each inner
        estimator gets what it requested (``set_fit_request``), and ``groups``
        reaches a group splitter given as ``cv``.

        Returns
        -------
        MetadataRouter
        """
        router = MetadataRouter(owner=self)
        for name, estimator in self._inner_estimators().items():
            router.add(**{name: estimator},
                       method_mapping=MethodMapping().add(caller="fit", callee="fit"))
        cv = getattr(self, "cv", None)  # the tuners' splitter (an int is KFold's)
        if cv is not None:
            router.add(splitter=cv, method_mapping=MethodMapping().add(caller="fit",
                                                                       callee="split"))
        return router

    def _inner_estimators(self):
        raise NotImplementedError(f"{type(self).__name__} must name its inner estimators.")

    def _routed_fit_params(self, fit_params):
        """``fit_params`` for each inner estimator's ``fit`` (``routed[name].fit``) and for
        the splitter (``routed.splitter.split``).

        With metadata routing enabled: scikit-learn's ``process_routing`` (each
        gets what it requested; a parameter no one requests, or one an
        estimator has not said whether it takes, is an error naming it).
        Without: every parameter to every inner estimator, none to the
        splitter, as before routing existed.
        """
        if get_config()["enable_metadata_routing"]:
            return process_routing(self, "fit", **fit_params)
        return Bunch(splitter=Bunch(split={}), **{
            name: Bunch(fit=dict(fit_params)) for name in self._inner_estimators()})


def set_multilabel_tags(tags, *, images=True):
    """Tags of a multi-label concept classifier; ``images``: X is images, not a table."""
    if images:
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
    tags.target_tags.required = True
    tags.target_tags.one_d_labels = False
    tags.target_tags.two_d_labels = True
    tags.target_tags.multi_output = True
    tags.target_tags.single_output = False
    tags.classifier_tags.multi_class = False
    tags.classifier_tags.multi_label = True
    return tags


def visual_block(*groups):
    """scikit-learn's HTML diagram of a meta-estimator: each ``(name, estimator)`` in its box.

    What a meta-estimator's ``_sk_visual_block_`` (scikit-learn's hook, as
    ``VotingClassifier``'s) returns, so that ``_repr_html_`` shows the
    estimators it holds nested, each under its name, with its own
    parameters (``<name>__<parameter>``; a name's part before ``": "`` is
    the prefix). One group is drawn side by side; several, one after the
    other (as ``StackingClassifier``'s estimators, then its final one); an
    empty group is left out.
    """
    from sklearn.utils._repr_html.estimator import _VisualBlock  # as scikit-learn's own import it

    groups = [group for group in groups if group]
    blocks = [_VisualBlock("parallel", [estimator for _, estimator in group],
                           names=[name for name, _ in group], dash_wrapped=len(groups) == 1)
              for group in groups]
    return blocks[0] if len(blocks) == 1 else _VisualBlock("serial", blocks, dash_wrapped=False)


def decision_scores(estimator, X, n_labels=None):
    """One (n, n_labels) array of scores from ``predict_proba`` or ``decision_function``.

    A list of per-label (n, 2) probability arrays (``MultiOutputClassifier``,
    ``KNeighborsClassifier``, ``RandomForestClassifier``) becomes the
    columns of positive-class probabilities, and so does the (n, 2) array of
    a single label (``n_labels=1``). Floats keep their precision (float32
    stays float32: half the memory and twice the sorting speed on 10,000 x
    5,528 scores); NaN (an image that could not be read) stays NaN and never
    passes a threshold.
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
    scores = np.asarray(scores)
    if scores.dtype.kind != "f":
        scores = scores.astype(np.float64)
    if scores.ndim == 1:
        scores = scores[:, np.newaxis]
    if n_labels is not None and (scores.ndim != 2 or scores.shape[1] != n_labels):
        method = "predict_proba" if hasattr(estimator, "predict_proba") else "decision_function"
        shape = (f"have {scores.shape[1]} columns" if scores.ndim == 2
                 else f"are {scores.ndim}-d (shape {scores.shape})")
        raise ValueError(f"{type(estimator).__name__}'s scores ({method}) {shape} but its "
                         f"classes_ has {n_labels}: the contract is one column per entry of "
                         "classes_, in its order.")
    return scores


def aligned_scores(estimator, X, targets, classes, fill=np.nan):
    """``estimator``'s scores on ``classes``, its columns matched by concept name.

    ``targets``: the estimator's (:func:`~imageclef_concepts.concepts._targets.targets_of`);
    its own score columns are :func:`~imageclef_concepts.concepts._targets.score_columns`,
    in its order. A concept it lacks scores ``fill``.
    """
    own = score_columns(estimator, targets)
    return align_columns(decision_scores(estimator, X, len(own)), own, classes, fill=fill)


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


def check_n_images(X, y):
    """Raise unless ``X`` and ``y`` have as many rows."""
    from sklearn.utils.validation import _num_samples

    n_x, n_y = _num_samples(X), (y.shape[0] if hasattr(y, "shape") else len(y))
    if n_x != n_y:
        raise ValueError(f"X has {n_x} images but y has {n_y} rows.")


def fit_on_rows(estimator, X, y, fit_params, rows=None):
    """Fit ``estimator`` on all images, or on ``rows`` (a fold, a subsample).

    Per-image fit parameters (``sample_weight``) are cut to the rows as
    ``GridSearchCV`` cuts them. Returns the fitted estimator.
    """
    if rows is None:
        return estimator.fit(X, y, **fit_params)
    return estimator.fit(_safe_indexing(X, rows), _safe_indexing(y, rows),
                         **_check_method_params(X, fit_params, indices=rows))


def shallow_copy(estimator):
    """A new object with the same attributes: its parameters can change, its arrays are shared.

    ``copy.copy`` would go through the class's pickling hooks (scikeras
    serialises the whole network there).
    """
    copied = object.__new__(type(estimator))
    copied.__dict__.update(estimator.__dict__)
    return copied
