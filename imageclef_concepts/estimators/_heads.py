"""ConceptMLPClassifier: a linear or MLP multi-label head on image embeddings.

A frozen foundation model's embeddings hold most of what a concept detector
needs; a logistic layer per concept (or a small MLP) on them trains in
seconds on a CPU, where fine-tuning a network takes hours. Keras trains the
head; prediction is a few matrix products in NumPy, so that a fitted head
pickles, saves and predicts without TensorFlow.
"""

from __future__ import annotations

import os
from numbers import Real
from typing import TYPE_CHECKING

import numpy as np
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..embeddings._store import EmbeddingStore
from ..files._numbers import WholeNumber, check_sizes
from ..files._sizes import check_allocation, setting
from ..keras import BACKBONES
from ..models._base import BaseConceptClassifier
from ..models._card import ModelFileError
from ..models._decision import DecisionRule
from ..models._persistence import ArchivedModel
from ._retrieval import ConceptKNNClassifier

if TYPE_CHECKING:  # names for annotations only
    from .._typing import Embedder, FloatArray, Images, PathLike, RandomState


#: Images through the hidden layers at a time when predicting: their activations
#: (rows x the widest layer) stay small however many images are predicted.
_PREDICT_ROWS = 1024


class ConceptMLPClassifier(ArchivedModel, BaseConceptClassifier):
    """A linear (``hidden_units=()``) or MLP multi-label head on image embeddings.

    Parameters
    ----------
    hidden_units : tuple of int, default=()
        Widths of the ReLU hidden layers; ``()`` is one logistic regression
        per concept, all trained together.
    embedding : "precomputed", backbone name, or encoder, default="precomputed"
        ``"precomputed"``: ``X`` is embeddings made beforehand (n_images,
        n_dims); otherwise images are embedded as
        :class:`~imageclef_concepts.ConceptKNNClassifier` embeds them, each
        once (``embedding_store``). Embeddings are L2-normalised.
    embedding_store : str, path-like, EmbeddingStore or None, default=None
        Where an encoder's embeddings are kept on disk. Not saved.
    epochs : int, default=20
    batch_size : int, default=512
    learning_rate : float, default=1e-3
        Adam's.
    l2 : float, default=0.0
        Weight decay of every layer's kernel.
    dropout : float, default=0.0
        Before each hidden layer's output and the last layer.
    threshold : float or DecisionRule, default=0.5
    min_count : int, default=1
    max_labels : int or None, default=None
    random_state : int or None, default=None
        Seeds the weights and the order of examples (training reproducible).

    Attributes
    ----------
    classes_, targets_
        As every concept estimator.
    coefs_, intercepts_ : list of ndarray
        Each layer's weights, as scikit-learn's ``MLPClassifier``.
    embedding_ : object or None
        The encoder (None for ``"precomputed"``).

    Examples
    --------
    >>> import numpy as np
    >>> from imageclef_concepts import ConceptMLPClassifier
    >>> X = np.eye(4, 8, dtype=np.float32) + 0.1
    >>> head = ConceptMLPClassifier(epochs=20, learning_rate=0.5, random_state=0)
    >>> head.fit(X, ["C1", "C1", "C2", "C2"]).predict(X[[0, 3]])
    array([('C1',), ('C2',)], dtype=object)
    """

    _parameter_constraints = {
        "hidden_units": [tuple, list],
        "embedding": [StrOptions({"precomputed", *BACKBONES}), HasMethods(["embed"])],
        "embedding_store": [str, os.PathLike, EmbeddingStore, None],
        "epochs": [WholeNumber(1)],
        "batch_size": [WholeNumber(1)],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "l2": [Interval(Real, 0, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "threshold": [Interval(Real, 0, 1, closed="both"), DecisionRule],
        "min_count": [WholeNumber(1)],
        "max_labels": [WholeNumber(1), None],
        "random_state": ["random_state"],
    }

    def __init__(self, hidden_units: tuple[int, ...] = (), *,
                 embedding: str | Embedder = "precomputed",
                 embedding_store: PathLike | EmbeddingStore | None = None, epochs: int = 20,
                 batch_size: int = 512, learning_rate: float = 1e-3, l2: float = 0.0,
                 dropout: float = 0.0, threshold: float | DecisionRule = 0.5,
                 min_count: int = 1, max_labels: int | None = None,
                 random_state: RandomState = None) -> None:
        self.hidden_units = hidden_units
        self.embedding = embedding
        self.embedding_store = embedding_store
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.l2 = l2
        self.dropout = dropout
        self.threshold = threshold
        self.min_count = min_count
        self.max_labels = max_labels
        self.random_state = random_state

    def _fit(self, X, y):
        units = check_sizes(self.hidden_units, "hidden_units")  # ints: Keras takes no other
        indicator = self._fit_targets(y, min_count=self.min_count, max_labels=self.max_labels)
        self.embedding_ = self._embedder()._fitted_embedding(X, y)
        vars(self).pop("coefs_", None)  # a refit's X may be of another width
        vectors = self._embed(X)
        n, n_concepts = len(vectors), len(self.classes_)
        check_allocation(4 * n * n_concepts, setting("y", f"{n} x {n_concepts}"),
                         "holding the concepts as a dense matrix for training",
                         "keep fewer concepts (min_count, max_labels)")
        batch_size = int(self.batch_size)  # np.uint8 wraps; TensorFlow slices by int32/64
        _check_head_memory(vectors.shape, units, n_concepts, batch_size)
        from ..keras._training import train_dense_head

        self.coefs_, self.intercepts_ = train_dense_head(
            vectors, indicator.toarray().astype(np.float32), units, epochs=int(self.epochs),
            batch_size=batch_size, learning_rate=self.learning_rate, l2=self.l2,
            dropout=self.dropout, random_state=self.random_state)

    def _embedder(self):
        """A k-NN of the same embedding: its one implementation of embedding images."""
        embedder = ConceptKNNClassifier(embedding=self.embedding,
                                        embedding_store=self.embedding_store)
        embedder.embedding_ = getattr(self, "embedding_", None)
        if hasattr(self, "coefs_"):
            embedder.embeddings_ = np.empty((0, self.coefs_[0].shape[0]), np.float32)
        return embedder

    def _embed(self, X):
        return self._embedder()._embed(X)

    def predict_proba(self, X: Images) -> FloatArray:
        """Each concept's probability: the head's sigmoid outputs.

        Parameters
        ----------
        X : embeddings (n_images, n_dims) for ``"precomputed"``, else images or paths

        Returns
        -------
        ndarray of shape (n_images, n_concepts)
        """
        check_is_fitted(self, "coefs_")
        vectors = self._embed(X)
        probabilities = np.empty((len(vectors), len(self.classes_)), np.float32)
        for start in range(0, len(vectors), _PREDICT_ROWS):  # hidden layers a block at a time
            values = vectors[start:start + _PREDICT_ROWS]
            for layer, (kernel, bias) in enumerate(zip(self.coefs_, self.intercepts_)):
                values = values @ kernel + bias
                if layer < len(self.coefs_) - 1:
                    np.maximum(values, 0, out=values)
            probabilities[start:start + len(values)] = 1 / (1 + np.exp(-np.clip(values, -60, 60)))
        return probabilities

    def _to_archive(self, writer):
        from ..embeddings._names import encoder_description

        named = self.embedding_ is None or isinstance(self.embedding, str)
        return {"params": writer.params(self, nested=("embedding",)),
                "embedding": self.embedding if named else None,
                "encoder": None if named else encoder_description(self.embedding_),
                "targets": self.targets_.to_dict(),
                "coefs": [writer.array(f"coef{i}", c) for i, c in enumerate(self.coefs_)],
                "intercepts": [writer.array(f"intercept{i}", b)
                               for i, b in enumerate(self.intercepts_)]}

    @classmethod
    def _from_archive(cls, description, reader):
        from ..embeddings._names import encoder_from_description

        embedding = reader.expect(description, "embedding", (str, type(None)))
        if embedding is None:  # an encoder kept by identity, rebuilt from this machine's weights
            embedding = encoder_from_description(description.get("encoder"), reader.path)
        estimator = reader.params(cls, description, embedding=embedding)
        estimator.targets_ = reader.targets(description)
        estimator.classes_ = estimator.targets_.classes_
        estimator.embedding_ = estimator._embedder()._fitted_embedding(None, None)
        coefs = reader.expect(description, "coefs", (list,))
        intercepts = reader.expect(description, "intercepts", (list,))
        estimator.coefs_ = [reader.array(name, "f", 2, "the head's weights") for name in coefs]
        estimator.intercepts_ = [reader.array(name, "f", 1, "the head's biases")
                                 for name in intercepts]
        shapes = [c.shape for c in estimator.coefs_]
        if (not shapes or len(intercepts) != len(coefs)
                or any(a[1] != b[0] for a, b in zip(shapes, shapes[1:]))
                or shapes[-1][1] != len(estimator.classes_)
                or any(c.shape[1] != b.shape[0]
                       for c, b in zip(estimator.coefs_, estimator.intercepts_))):
            raise ModelFileError(f"the head's layers {shapes} do not chain to the "
                                 f"{len(estimator.classes_)} concepts")
        return estimator


def _check_head_memory(shape, units, n_concepts, batch_size):
    """Refuse, before Keras allocates it, a head this machine's memory cannot train.

    Each weight is held four times while training (itself, its gradient and
    Adam's two moments); a batch's activations twice (forward and backward); both at
    once, so their sum is checked too.
    """
    n, width = shape
    layers = (width, *units, n_concepts)
    weights = sum(a * b + b for a, b in zip(layers, layers[1:]))
    check_allocation(4 * 4 * weights, setting("hidden_units", units),
                     f"training a head of {weights:,} weights on {width}-d embeddings",
                     "choose fewer or narrower hidden_units")
    activations = 2 * 4 * min(batch_size, n) * sum(layers)
    check_allocation(activations, setting("batch_size", batch_size),
                     f"the activations of a batch through layers {layers}",
                     "choose a smaller batch_size or narrower hidden_units")
    check_allocation(4 * 4 * weights + activations,
                     f"{setting('hidden_units', units)} and {setting('batch_size', batch_size)}",
                     f"training a head of {weights:,} weights on {width}-d embeddings, with "
                     "the activations of a batch", "choose fewer or narrower hidden_units "
                     "or a smaller batch_size")
