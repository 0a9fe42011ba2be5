"""Test doubles shared by the ensemble and metadata-routing tests."""

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


class Registry(list):
    """Where recording estimators put themselves when fitted; ``clone`` keeps the one
    list (scikit-learn's routing tests' ``_Registry``)."""

    def __deepcopy__(self, memo):
        return self

    def __copy__(self):
        return self


class RecordingConcepts(ClassifierMixin, BaseEstimator):
    """Test double: records the metadata its ``fit`` receives, as scikit-learn's routing
    tests' consumers do, and implements the library's contract.

    Each image's first value is its index (so that a fit's images are
    known); it scores each concept by its share of the training images.
    """

    def __init__(self, registry=None, threshold=0.5):
        self.registry = registry
        self.threshold = threshold

    def fit(self, X, y, sample_weight=None, metadata=None):
        if self.registry is not None:
            self.registry.append(self)
        self.received_ = {"rows": np.asarray(X).reshape(len(X), -1)[:, 0].astype(int),
                          "sample_weight": sample_weight,
                          "metadata": metadata}
        self.targets_ = ConceptTargets().fit(y)
        self.classes_ = self.targets_.classes_
        self.shares_ = np.asarray(self.targets_.transform(y).mean(axis=0)).ravel()
        return self

    def predict_proba(self, X):
        return np.tile(self.shares_, (len(X), 1))

    def decide(self, X):
        return DecisionRule.of(self.threshold).apply(self.predict_proba(X))


class CountingEncoder(BaseEstimator):
    """Test double: an encoder that counts the images it embeds (in ``log``, a file, across
    processes; else in ``CountingEncoder.embedded``), each a 12-d vector of its mean colours.

    Images are arrays or paths; its identity is fixed, so clones and processes share it.
    """

    embedded = 0

    def __init__(self, log=None, identity="counting encoder v1"):
        self.log = log
        self.identity = identity

    def embed(self, X):
        from imageclef_concepts.images._sources import as_image_source

        images = as_image_source(X, 16)
        pixels = images.load(np.arange(len(images)))[0].astype(np.float32)
        CountingEncoder.embedded += len(pixels)
        if self.log is not None:
            with open(self.log, "a") as log:
                log.write(f"{len(pixels)}\n")
        quarters = pixels.reshape(len(pixels), 2, 8, 2, 8, 3).mean(axis=(2, 4))
        return quarters.reshape(len(pixels), 12) + 1

    def embedding_identity(self):
        return self.identity

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


def logged_count(log):
    """The images a :class:`CountingEncoder` with ``log`` embedded, in every process."""
    try:
        with open(log) as lines:
            return sum(int(line) for line in lines)
    except FileNotFoundError:
        return 0
