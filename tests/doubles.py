"""Test doubles shared by the ensemble tests."""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from imageclef_concepts import DecisionRule
from imageclef_concepts.concepts._targets import ConceptTargets


class FixedConcepts(ClassifierMixin, BaseEstimator):
    """Test double: fixed probabilities over its own vocabulary, row by image index.

    X is a column of image indices; ``threshold`` is its decision rule.
    """

    def __init__(self, classes=None, scores=None, threshold=0.5):
        self.classes = classes
        self.scores = scores
        self.threshold = threshold

    def fit(self, X, y):
        self.targets_ = ConceptTargets.from_classes(np.array(self.classes, dtype=object))
        self.classes_ = self.targets_.classes_
        return self

    def predict_proba(self, X):
        return np.asarray(self.scores, dtype=float)[np.asarray(X)[:, 0]]

    def decide(self, X):
        return DecisionRule.of(self.threshold).apply(self.predict_proba(X))
