"""ConceptKNNClassifier: concepts by retrieval of similar training images.

Several ImageCLEF teams predicted an image's concepts from its most similar
training images (AUEB NLP Group's "Mean@k-NN" in 2019). Images are embedded,
the ``k`` most cosine-similar training images are found, and their concepts
vote. Similarities are computed one block of query images at a time, so no
n x n matrix is ever held in memory.
"""

from numbers import Integral, Real

import keras
import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._concepts import as_binary_csr, as_concept_array, is_concept_lists
from ._encoder import ConceptEncoder
from ._images import ImageBatches, as_image_source, decode_errors_surfaced
from ._network import BACKBONES, backbone_preprocessing, pooled_backbone
from ._base import OfficialScoreMixin, concept_tuples, set_multilabel_tags
from ._thresholds import ranks_in_row


class BackboneEmbedding(BaseEstimator):
    """Image embeddings from an ImageNet backbone, for :class:`ConceptKNNClassifier`.

    Parameters
    ----------
    backbone : {"densenet121", "resnet50", "efficientnetb0"}, default="densenet121"
    image_size : int, default=224
    weights : None, "imagenet" or path, default="imagenet"
        ImageNet weights are downloaded by Keras on first use.
    batch_size : int, default=32
    """

    def __init__(self, backbone="densenet121", image_size=224, weights="imagenet",
                 batch_size=32):
        self.backbone = backbone
        self.image_size = image_size
        self.weights = weights
        self.batch_size = batch_size

    def embed(self, X):
        """The backbone's globally pooled features of each image.

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        ndarray of shape (n_images, n_features)
        """
        network = self._network()
        images = as_image_source(X, self.image_size)
        batches = ImageBatches(images, batch_size=self.batch_size)
        with decode_errors_surfaced(batches):
            return network.predict(batches.dataset(), verbose=0)

    def _network(self):
        # Built once per set of parameters and pickled with the estimator, so
        # that random (weights=None) backbones embed the same after loading.
        key = (self.backbone, self.image_size, str(self.weights))
        if getattr(self, "_built", (None,))[0] != key:
            inputs = keras.Input((self.image_size, self.image_size, 3))
            base = pooled_backbone(self.backbone, self.image_size, self.weights)
            outputs = base(backbone_preprocessing(self.backbone, inputs), training=False)
            self._built = (key, keras.Model(inputs, outputs))
        return self._built[1]


class ConceptKNNClassifier(OfficialScoreMixin, ClassifierMixin, BaseEstimator):
    """Predict concepts from the votes of the most similar training images.

    Parameters
    ----------
    n_neighbors : int, default=5
        Training images that vote.
    embedding : "pixels", backbone name, or object with ``embed``, default="pixels"
        How images become vectors: ``"pixels"`` downscales them to
        ``pixel_size`` x ``pixel_size`` and flattens; ``"densenet121"``,
        ``"resnet50"`` or ``"efficientnetb0"`` use that ImageNet backbone's
        pooled features (:class:`BackboneEmbedding` with its defaults; pass a
        ``BackboneEmbedding`` to choose its size or weights); a fitted
        :class:`~imageclef_concepts.ConceptCNNClassifier` gives its
        penultimate layer (``embed``); anything with an ``embed(X)`` method
        works too.
    pixel_size : int, default=16
        Side of the downscaled images for ``embedding="pixels"``.
    voting : {"threshold", "mean_count"}, default="threshold"
        ``"threshold"``: concepts whose similarity-weighted vote share
        (``predict_proba``) is at least ``threshold``. ``"mean_count"``:
        as AUEB, the most voted concepts, as many as the neighbours' average
        number of concepts.
    threshold : float, default=0.5
    block_size : int, default=512
        Query images compared with the training set at a time.

    Attributes
    ----------
    classes_ : ndarray
        Concept names (concept-list targets) or column indices (indicator).
    embeddings_ : ndarray of shape (n_train, n_dims)
        Unit-length training embeddings.

    Examples
    --------
    >>> import numpy as np
    >>> from imageclef_concepts import ConceptKNNClassifier
    >>> X = np.zeros((4, 16, 16, 3), dtype=np.uint8); X[2:] = 200
    >>> X[:, 0, 0] = np.arange(4)[:, None]  # no two images alike
    >>> model = ConceptKNNClassifier(n_neighbors=1).fit(X, ["C1", "C1", "C2", "C2"])
    >>> model.predict(X[[0, 3]])
    array([('C1',), ('C2',)], dtype=object)
    """

    _parameter_constraints = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "embedding": [StrOptions({"pixels", *BACKBONES}), HasMethods(["embed"])],
        "pixel_size": [Interval(Integral, 1, None, closed="left")],
        "voting": [StrOptions({"threshold", "mean_count"})],
        "threshold": [Interval(Real, 0, 1, closed="both")],
        "block_size": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, n_neighbors=5, *, embedding="pixels", pixel_size=16,
                 voting="threshold", threshold=0.5, block_size=512):
        self.n_neighbors = n_neighbors
        self.embedding = embedding
        self.pixel_size = pixel_size
        self.voting = voting
        self.threshold = threshold
        self.block_size = block_size

    def fit(self, X, y):
        """Embed the training images and remember their concepts.

        Parameters
        ----------
        X : array-like of images or sequence of paths
        y : indicator matrix or sequence of concept lists

        Returns
        -------
        self : ConceptKNNClassifier
        """
        self._validate_params()
        self._fitted_on_concepts = is_concept_lists(y)
        if self._fitted_on_concepts:
            self._encoder = ConceptEncoder(sparse_output=True).fit(y)
            self._targets = self._encoder.transform(y).astype(np.float32)
            self.classes_ = self._encoder.classes_
        else:
            self._targets = as_binary_csr(y, "y").astype(np.float32)
            self.classes_ = np.arange(self._targets.shape[1])
        self.embeddings_ = self._embed(X)
        if len(self.embeddings_) != self._targets.shape[0]:
            raise ValueError(f"X has {len(self.embeddings_)} images but y has "
                             f"{self._targets.shape[0]} rows.")
        if self.n_neighbors > len(self.embeddings_):
            raise ValueError(f"n_neighbors={self.n_neighbors} is more than the "
                             f"{len(self.embeddings_)} training images.")
        return self

    def _embed(self, X):
        if self.embedding == "pixels":
            images = as_image_source(X, self.pixel_size)
            vectors = np.concatenate([
                images.load(np.arange(start, min(start + 1024, len(images))))[0]
                .reshape(-1, self.pixel_size * self.pixel_size * 3).astype(np.float32)
                for start in range(0, len(images), 1024)])
            vectors -= vectors.mean(axis=1, keepdims=True)  # cosine of contrast, not brightness
        else:
            embedding = (BackboneEmbedding(self.embedding) if isinstance(self.embedding, str)
                         else self.embedding)
            vectors = np.asarray(embedding.embed(X), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1)

    def kneighbors(self, X):
        """Indices and cosine similarities of each image's nearest training images.

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        similarities : ndarray of shape (n_images, n_neighbors)
            Highest first.
        indices : ndarray of shape (n_images, n_neighbors)
        """
        check_is_fitted(self)
        return self._kneighbors_of(self._embed(X))

    def _kneighbors_of(self, queries):
        k = self.n_neighbors
        similarities = np.empty((len(queries), k), dtype=np.float32)
        indices = np.empty((len(queries), k), dtype=np.int64)
        for start in range(0, len(queries), self.block_size):
            block = queries[start:start + self.block_size] @ self.embeddings_.T
            nearest = np.argpartition(-block, k - 1, axis=1)[:, :k]
            values = np.take_along_axis(block, nearest, axis=1)
            order = np.argsort(-values, axis=1, kind="stable")
            similarities[start:start + len(block)] = np.take_along_axis(values, order, axis=1)
            indices[start:start + len(block)] = np.take_along_axis(nearest, order, axis=1)
        return similarities, indices

    def predict_proba(self, X):
        """Similarity-weighted share of the neighbours' votes for each concept.

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        ndarray of shape (n_images, n_concepts)
        """
        similarities, indices = self.kneighbors(X)
        return self._vote_shares(similarities, indices)

    def _vote_shares(self, similarities, indices):
        weights = np.clip(similarities, 1e-6, None)  # dissimilar neighbours barely vote
        weights /= weights.sum(axis=1, keepdims=True)
        n_images, k = indices.shape
        rows = np.repeat(np.arange(n_images), k)
        mixing = sparse.csr_matrix((weights.ravel(), (rows, indices.ravel())),
                                   shape=(n_images, len(self.embeddings_)))
        return np.asarray((mixing @ self._targets).todense())

    def predict(self, X):
        """Concepts by neighbour votes, in ``y``'s form.

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        ndarray
            An indicator matrix, or concept tuples when fitted on concept lists.
        """
        indicator = self._predicted_indicator(X)
        if self._fitted_on_concepts:
            return as_concept_array(self._encoder.inverse_transform(indicator))
        return indicator

    def _predicted_indicator(self, X):
        similarities, indices = self.kneighbors(X)
        shares = self._vote_shares(similarities, indices)
        if self.voting == "threshold":
            return (shares >= self.threshold).astype(np.int64)
        neighbour_counts = np.asarray(self._targets.sum(axis=1)).ravel()[indices]
        how_many = np.rint(neighbour_counts.mean(axis=1)).astype(int)
        ranks = ranks_in_row(shares)
        return ((ranks < how_many[:, None]) & (shares > 0)).astype(np.int64)

    def predict_concepts(self, X):
        """Predicted concepts of each image, as tuples of ``classes_`` entries.

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        list of tuple
        """
        check_is_fitted(self)
        return concept_tuples(self.classes_, self._predicted_indicator(X))

    def __sklearn_tags__(self):
        return set_multilabel_tags(super().__sklearn_tags__())
