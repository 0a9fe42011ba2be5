"""Baselines every model must beat."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import _num_samples, check_is_fitted

from ..concepts._metrics import imageclef_f1_score
from ..files._numbers import WholeNumber
from ..models._base import BaseConceptClassifier
from ..models._card import ModelFileError
from ..models._decision import DecisionRule
from ..models._persistence import ArchivedModel

if TYPE_CHECKING:  # names for annotations only
    from typing import Literal

    from .._typing import FloatArray, Images


class MostFrequentConcepts(ArchivedModel, BaseConceptClassifier):
    """Predict the ``k`` most frequent training concepts for every image.

    Like scikit-learn's ``DummyClassifier``, it ignores the images. In the
    ImageCLEF 2019 task the 7 most frequent concepts scored about 0.108 on
    validation: the bar every model must clear.

    Parameters
    ----------
    k : int or "auto", default="auto"
        How many concepts to predict; "auto" picks the ``k`` that maximises
        the official F1 on the training concepts.
    max_k : int, default=50
        The largest ``k`` tried by "auto".
    min_count : int, default=1
        For concept lists: keep only concepts of at least this many training
        images.
    max_labels : int or None, default=None
        For concept lists: keep only this many most frequent concepts.

    Attributes
    ----------
    classes_ : ndarray
        Concept names (concept-list targets) or column indices (indicator).
    targets_ : ConceptTargets
        The concept vocabulary and the form of ``y``.
    concept_frequencies_ : ndarray of float
        Share of training images with each of ``classes_``.
    k_ : int
        The number of concepts predicted.
    top_concepts_ : ndarray of int
        Columns of the ``k_`` most frequent concepts.
    decision_rule_ : DecisionRule
        Top ``k_``: exactly ``k_`` concepts per image, the most frequent.

    Examples
    --------
    >>> from imageclef_concepts import MostFrequentConcepts
    >>> model = MostFrequentConcepts(k=1).fit([[0], [0]], ["C1;C2", "C1"])
    >>> model.predict([[0]])
    array([('C1',)], dtype=object)
    """

    _parameter_constraints = {
        "k": [WholeNumber(1), StrOptions({"auto"})],
        "max_k": [WholeNumber(1)],
        "min_count": [WholeNumber(1)],
        "max_labels": [WholeNumber(1), None],
    }

    def __init__(self, k: int | Literal["auto"] = "auto", max_k: int = 50, *,
                 min_count: int = 1, max_labels: int | None = None) -> None:
        self.k = k
        self.max_k = max_k
        self.min_count = min_count
        self.max_labels = max_labels

    def _fit(self, X, y):
        """Count the training concepts and choose ``k`` (``X`` is used for its length)."""
        indicator = self._fit_targets(y, min_count=self.min_count, max_labels=self.max_labels)
        counts = np.asarray(indicator.sum(axis=0), dtype=float).ravel()
        self._set_frequencies(counts / _num_samples(X),
                              self._best_k(y, counts / _num_samples(X)) if self.k == "auto"
                              else min(self.k, len(counts)))

    def _set_frequencies(self, frequencies, k):
        """The fitted attributes that follow from the frequencies and ``k``."""
        self.concept_frequencies_ = frequencies
        self.k_ = k
        ranking = np.argsort(-frequencies, kind="stable")
        self.top_concepts_ = np.sort(ranking[:k])
        self.decision_rule_ = self._top(k)

    @staticmethod
    def _top(k):
        # No frequency reaches above 1: the floor and the cap make it exactly top-k.
        return DecisionRule(np.inf, min_concepts=k, max_concepts=k)

    def _best_k(self, y, frequencies):
        frequencies = frequencies[np.newaxis, :]
        scores = [imageclef_f1_score(y, self.targets_.inverse_transform(
                      np.repeat(self._top(k).apply(frequencies), len(y), axis=0)))
                  for k in range(1, min(self.max_k, len(self.classes_)) + 1)]
        return int(np.argmax(scores)) + 1

    def _decision_rule(self):
        return self.decision_rule_

    def predict_proba(self, X: Images) -> FloatArray:
        """Each concept's training frequency, the same for every image.

        Parameters
        ----------
        X : array-like or sequence of paths

        Returns
        -------
        ndarray of shape (n_images, n_concepts)
        """
        check_is_fitted(self)
        return np.tile(self.concept_frequencies_, (_num_samples(X), 1))

    def _to_archive(self, writer):
        return {"params": writer.params(self), "targets": self.targets_.to_dict(),
                "frequencies": writer.array("frequencies", self.concept_frequencies_),
                "k": int(self.k_)}

    @classmethod
    def _from_archive(cls, description, reader):
        estimator = reader.params(cls, description)
        estimator.targets_ = reader.targets(description)
        estimator.classes_ = estimator.targets_.classes_
        frequencies = reader.array(reader.expect(description, "frequencies", (str,)), "f", 1,
                                   "the concept frequencies")
        n_concepts = len(estimator.classes_)
        if len(frequencies) != n_concepts or not ((frequencies >= 0) & (frequencies <= 1)).all():
            raise ModelFileError(f"the concept frequencies must be {n_concepts} shares in "
                                 "[0, 1], one per concept")
        k = reader.expect(description, "k", (int,))
        if not 1 <= k <= n_concepts:
            raise ModelFileError(f"k={k} is not between 1 and the {n_concepts} concepts")
        estimator._set_frequencies(frequencies, k)
        return estimator
