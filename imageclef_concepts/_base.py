"""What every concept estimator shares: one implementation of the decision.

A concept estimator writes ``fit`` (which sets ``targets_``, a
:class:`~imageclef_concepts._targets.ConceptTargets`) and ``predict_proba``;
it says which :class:`~imageclef_concepts.DecisionRule` applies through
``_decision_rule``. :class:`ConceptClassifierMixin` then gives ``predict``,
``predict_concepts`` and ``score``, the same way for all of them, in the
manner of scikit-learn's ``BaseThresholdClassifier``:

    paths -> images -> scores (predict_proba) -> DecisionRule -> indicator
          -> targets_ -> concepts in y's form (predict) or as tuples (predict_concepts)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from ._decision import probability_rule
from ._metrics import imageclef_f1_score
from ._targets import ConceptTargets

if TYPE_CHECKING:  # names for annotations only
    from numpy.typing import ArrayLike

    from ._typing import Images, Predictions, Targets


class ConceptClassifierMixin:
    """``predict``, ``predict_concepts`` and ``score`` from ``predict_proba`` and a rule.

    For estimators that must keep another base class (the Keras estimator
    derives from scikeras); others derive from :class:`BaseConceptClassifier`.
    """

    def _decision_rule(self):
        """The rule that turns this estimator's probabilities into concepts."""
        return probability_rule(self.threshold)

    def _validate_params(self):
        """scikit-learn's parameter checks, and a ``threshold`` rule's range."""
        super()._validate_params()
        if "threshold" in self._get_param_names():
            probability_rule(self.threshold)

    def _decide(self, X):
        """The predicted indicator (bool) of the images of ``X``."""
        check_is_fitted(self, "targets_")
        return self._decision_rule().apply(self.predict_proba(X))

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
        decided = self._decide(X)  # checks that the estimator is fitted first
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
        decided = self._decide(X)
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

    def _fit_targets(self, y):
        """Learn ``targets_`` and ``classes_`` from ``y``; return ``y`` as a CSR indicator.

        ``min_count`` / ``max_labels`` apply when the estimator has them.
        """
        self.targets_ = ConceptTargets(min_count=getattr(self, "min_count", 1),
                                       max_labels=getattr(self, "max_labels", None)).fit(y)
        self.classes_ = self.targets_.classes_
        return self.targets_.transform(y)


class BaseConceptClassifier(ConceptClassifierMixin, ClassifierMixin, BaseEstimator):
    """Base of the library's concept estimators: write ``fit`` and ``predict_proba``."""

    def __sklearn_tags__(self):
        return set_multilabel_tags(super().__sklearn_tags__())


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
    return scores


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

