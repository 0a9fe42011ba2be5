"""Baselines every model must beat."""

from collections import Counter
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _num_samples, check_is_fitted

from ._concepts import as_binary_csr, as_concept_array, is_concept_lists, split_concepts
from ._base import OfficialScoreMixin, set_multilabel_tags
from ._metrics import imageclef_f1_score


class MostFrequentConcepts(OfficialScoreMixin, ClassifierMixin, BaseEstimator):
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

    Attributes
    ----------
    classes_ : ndarray
        Concept names (concept-list targets) or column indices (indicator).
    concept_frequencies_ : ndarray of float
        Share of training images with each of ``classes_``.
    k_ : int
        The number of concepts predicted.
    top_concepts_ : ndarray of int
        Columns of the ``k_`` most frequent concepts.

    Examples
    --------
    >>> from imageclef_concepts import MostFrequentConcepts
    >>> model = MostFrequentConcepts(k=1).fit([[0], [0]], ["C1;C2", "C1"])
    >>> model.predict([[0]])
    array([('C1',)], dtype=object)
    """

    _parameter_constraints = {
        "k": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "max_k": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, k="auto", max_k=50):
        self.k = k
        self.max_k = max_k

    def fit(self, X, y):
        """Count the training concepts and choose ``k``.

        Parameters
        ----------
        X : array-like or sequence of paths
            Ignored but for its length.
        y : indicator matrix or sequence of concept lists

        Returns
        -------
        self : MostFrequentConcepts
        """
        self._validate_params()
        if _num_samples(X) != _num_samples(y):
            raise ValueError(f"X has {_num_samples(X)} samples but y has {_num_samples(y)}.")
        self._fitted_on_concepts = is_concept_lists(y)
        if self._fitted_on_concepts:
            counts = Counter(c for concepts in y for c in set(split_concepts(concepts)))
            self.classes_ = np.array(sorted(counts), dtype=object)
            frequencies = np.array([counts[c] for c in self.classes_], dtype=float)
        else:
            indicator = as_binary_csr(y, "y")
            self.classes_ = np.arange(indicator.shape[1])
            frequencies = np.asarray(indicator.sum(axis=0), dtype=float).ravel()
        if not frequencies.any():
            raise ValueError("y has no positive label at all: there is no concept to count.")
        self.concept_frequencies_ = frequencies / _num_samples(y)
        ranking = np.argsort(-frequencies, kind="stable")
        self.k_ = self._best_k(y, ranking) if self.k == "auto" else min(self.k, len(ranking))
        self.top_concepts_ = ranking[: self.k_]
        return self

    def _best_k(self, y, ranking):
        scores = [imageclef_f1_score(y, self._constant_prediction(ranking[:k], len(y)))
                  for k in range(1, min(self.max_k, len(ranking)) + 1)]
        return int(np.argmax(scores)) + 1

    def _constant_prediction(self, columns, n_images):
        if self._fitted_on_concepts:
            return as_concept_array([tuple(self.classes_[np.sort(columns)])] * n_images)
        indicator = np.zeros((n_images, len(self.classes_)), dtype=np.int64)
        indicator[:, columns] = 1
        return indicator

    def predict_proba(self, X):
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

    def predict(self, X):
        """The ``k_`` most frequent concepts, in ``y``'s form.

        Parameters
        ----------
        X : array-like or sequence of paths

        Returns
        -------
        ndarray
            An indicator matrix, or concept tuples when fitted on concept lists.
        """
        check_is_fitted(self)
        return self._constant_prediction(self.top_concepts_, _num_samples(X))

    def predict_concepts(self, X):
        """The ``k_`` most frequent concepts of ``classes_`` for each image.

        Parameters
        ----------
        X : array-like or sequence of paths

        Returns
        -------
        list of tuple
        """
        check_is_fitted(self)
        return [tuple(self.classes_[np.sort(self.top_concepts_)])] * _num_samples(X)

    def __sklearn_tags__(self):
        return set_multilabel_tags(super().__sklearn_tags__())
