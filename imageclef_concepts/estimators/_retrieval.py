"""ConceptKNNClassifier: concepts by retrieval of similar training images.

Several ImageCLEF teams predicted an image's concepts from its most similar
training images (AUEB NLP Group's "Mean@k-NN" in 2019). Images are embedded,
the ``k`` most cosine-similar training images are found, and their concepts
vote. Similarities are computed one block of query images at a time, so no
n x n matrix is ever held in memory.
"""

from __future__ import annotations

import os
from collections.abc import Sized
from concurrent.futures import ThreadPoolExecutor
from numbers import Real
from typing import TYPE_CHECKING

import joblib
import numpy as np
from scipy import sparse
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..embeddings._names import encoder_description, encoder_from_description
from ..embeddings._once import embed_images, embedding_identity
from ..embeddings._store import EmbeddingStore
from ..files._numbers import WholeNumber
from ..files._sizes import check_allocation, setting
from ..images._inputs import is_path_sequence
from ..images._sources import as_image_source, check_image_size
from ..images._store import ImageStore
from ..keras import BACKBONES
from ..models._base import BaseConceptClassifier
from ..models._card import ModelFileError
from ..models._decision import DecisionRule
from ..models._persistence import ArchivedModel

if TYPE_CHECKING:  # names for annotations only
    from numpy.typing import NDArray

    from .._typing import Embedder, FloatArray, Images, ImageStoreLike, PathLike, Voting


class ConceptKNNClassifier(ArchivedModel, BaseConceptClassifier):
    """Predict concepts from the votes of the most similar training images.

    Parameters
    ----------
    n_neighbors : int, default=5
        Training images that vote.
    embedding : "pixels", "precomputed", backbone name, or object with ``embed``, \
default="pixels"
        How images become vectors: ``"precomputed"`` takes ``X`` as embeddings
        already made (an (n_images, n_dims) array, from any framework or
        :func:`~imageclef_concepts.embeddings.embed_images`); ``"pixels"`` downscales them to
        ``pixel_size`` x ``pixel_size`` and flattens; ``"densenet121"``,
        ``"resnet50"`` or ``"efficientnetb0"`` use that ImageNet backbone's
        pooled features (:class:`~imageclef_concepts.BackboneEmbedding` with
        its defaults; pass a ``BackboneEmbedding`` to choose its size or
        weights); a :class:`~imageclef_concepts.ConceptCNNClassifier` gives
        its penultimate layer (``embed``): a fitted one is used as it is, an
        unfitted one (or one cloned by ``GridSearchCV`` or an ensemble) is
        first fitted on the same ``X`` and ``y``, so retrieval runs in the
        space the network learned for these concepts; anything with an
        ``embed(X)`` method works too. An encoder with
        ``embedding_identity()`` embeds each image once for every fit, fold
        and grid point (see ``embedding_store``).
    pixel_size : int, default=16
        Side of the downscaled images for ``embedding="pixels"``.
    image_store : str, path-like, ImageStore or None, default=None
        For ``embedding="pixels"`` and paths: a folder of prepared images
        (:class:`~imageclef_concepts.ImageStore`) that decodes each file once
        for every fit and process. Not saved with the model.
    embedding_store : str, path-like, EmbeddingStore or None, default=None
        Where an encoder's embeddings are kept on disk
        (:class:`~imageclef_concepts.embeddings.EmbeddingStore`), shared by every
        process and run; None keeps them in this process only (a bounded
        cache). Not saved with the model.
    weights : {"similarity", "uniform"}, default="similarity"
        How neighbours vote: in proportion to their cosine similarity, or
        each alike (plain k-NN votes).
    voting : {"threshold", "mean_count"}, default="threshold"
        ``"threshold"``: concepts whose similarity-weighted vote share
        (``predict_proba``) passes the decision rule ``threshold``.
        ``"mean_count"``: as AUEB, the most voted concepts, as many as the
        neighbours' average number of concepts (the rule's per-image cap).
    threshold : float or DecisionRule, default=0.5
        The decision rule for ``voting="threshold"``: a vote share, or a
        :class:`~imageclef_concepts.DecisionRule` (per-concept thresholds,
        min/max concepts per image).
    block_size : int, default=512
        Query images compared with the training set at a time.
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
    embedding_ : object
        What embeds the images (``None`` for ``"pixels"``): the backbone, or
        the fitted network.
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
        "n_neighbors": [WholeNumber(1)],
        "embedding": [StrOptions({"pixels", "precomputed", *BACKBONES}),
                      HasMethods(["embed"])],
        "pixel_size": [WholeNumber(1)],
        "voting": [StrOptions({"threshold", "mean_count"})],
        "threshold": [Interval(Real, 0, 1, closed="both"), DecisionRule],
        "block_size": [WholeNumber(1)],
        "min_count": [WholeNumber(1)],
        "max_labels": [WholeNumber(1), None],
        "image_store": [str, os.PathLike, ImageStore, None],
        "embedding_store": [str, os.PathLike, EmbeddingStore, None],
        "weights": [StrOptions({"similarity", "uniform"})],
    }

    def __init__(self, n_neighbors: int = 5, *, embedding: str | Embedder = "pixels",
                 pixel_size: int = 16, voting: Voting = "threshold",
                 threshold: float | DecisionRule = 0.5, block_size: int = 512,
                 min_count: int = 1, max_labels: int | None = None,
                 image_store: ImageStoreLike = None,
                 embedding_store: PathLike | EmbeddingStore | None = None,
                 weights: str = "similarity") -> None:
        self.n_neighbors = n_neighbors
        self.embedding = embedding
        self.pixel_size = pixel_size
        self.voting = voting
        self.threshold = threshold
        self.block_size = block_size
        self.min_count = min_count
        self.max_labels = max_labels
        self.image_store = image_store
        self.embedding_store = embedding_store
        self.weights = weights

    def __setstate__(self, state):
        # A model pickled before these parameters existed voted by similarity, without a store.
        state = {"embedding_store": None, "weights": "similarity", **state}
        super().__setstate__(state)

    def _fit(self, X, y):
        """Embed the training images and remember their concepts."""
        self._targets = self._fit_targets(y, min_count=self.min_count,
                                          max_labels=self.max_labels)
        if self.n_neighbors > self._targets.shape[0]:  # a row per image of X: before embedding
            raise ValueError(f"n_neighbors={self.n_neighbors} is more than the "
                             f"{self._targets.shape[0]} training images.")
        self.embedding_ = self._fitted_embedding(X, y)
        vars(self).pop("embeddings_", None)  # a refit's X may be of another width
        self.embeddings_ = self._embed(X)

    def _fitted_embedding(self, X, y):
        embedding = self.embedding
        if isinstance(embedding, str):
            if embedding in ("pixels", "precomputed"):
                return None
            from ..keras import BackboneEmbedding

            return BackboneEmbedding(embedding)
        if hasattr(embedding, "fit") and not _is_fitted(embedding):
            return clone(embedding).fit(X, y)
        return embedding

    def _image_shelves(self):  # the store it fills: see images._shared.check_stores_room
        pixels = isinstance(self.embedding, str) and self.embedding == "pixels"
        return [(self.image_store, "pixel_size", self.pixel_size, "bilinear")] if pixels else []

    def _embed(self, X):
        if self.embedding == "precomputed":
            vectors = precomputed_embeddings(X, getattr(self, "embeddings_", None))
        elif self.embedding_ is None:
            n_images = len(X) if hasattr(X, "__len__") else 1
            check_image_size(self.pixel_size, name="pixel_size")
            side = int(self.pixel_size)  # np.uint8(16) ** 2 would wrap to 0
            check_allocation(2 * 4 * 3 * side**2 * n_images,  # float32
                             setting("pixel_size", self.pixel_size),
                             f"storing the pixel vectors of {n_images} images",
                             "choose a smaller pixel_size")
            images = as_image_source(X, self.pixel_size, image_store=self.image_store,
                                     size_name="pixel_size")
            vectors = np.concatenate([
                images.load(np.arange(start, min(start + 1024, len(images))))[0]
                .reshape(-1, side * side * 3).astype(np.float32)
                for start in range(0, len(images), 1024)])
            vectors -= vectors.mean(axis=1, keepdims=True)  # cosine of contrast, not brightness
        else:
            vectors = embed_images(self.embedding_, X, store=self.embedding_store)
        with np.errstate(over="ignore"):
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        overflowed = ~np.isfinite(norms[:, 0])
        if overflowed.any():
            # The squares of finite float32 values above 1.8e19 overflow (an infinite norm
            # would make the row zero): those rows are scaled by their largest value first,
            # only they, so that every other row's vector stays bit for bit what it was.
            vectors = vectors.copy()
            peaks = np.abs(vectors[overflowed]).max(axis=1, keepdims=True)
            vectors[overflowed] /= peaks
            norms[overflowed] = np.linalg.norm(vectors[overflowed], axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1)

    def kneighbors(self, X: Images) -> tuple[FloatArray, NDArray[np.intp]]:
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
        # A block of similarities (float32), negated for argpartition, and its int64
        # order: checked before any image is embedded.
        rows = min(self.block_size, _n_rows(X))
        check_allocation(rows * len(self.embeddings_) * (4 + 4 + 8),
                         setting("block_size", self.block_size),
                         f"comparing a block of {rows} images with the {len(self.embeddings_)} "
                         "training images", "choose a smaller block_size")
        return self._kneighbors_of(self._embed(X))

    def _kneighbors_of(self, queries):
        similarities = np.empty((len(queries), self.n_neighbors), dtype=np.float32)
        indices = np.empty((len(queries), self.n_neighbors), dtype=np.int64)
        # The product of a block uses every core (BLAS); the partition of its rows does not:
        # their parts are partitioned in threads (NumPy lets go of the GIL), row by row
        # exactly as in one thread.
        n_threads = max(1, min(joblib.cpu_count(), 8))
        with ThreadPoolExecutor(n_threads) as pool:
            for start in range(0, len(queries), self.block_size):
                block = queries[start:start + self.block_size] @ self.embeddings_.T
                rows = [(part, slice(start + part.start, start + part.stop))
                        for part in _row_parts(len(block), n_threads)]
                list(pool.map(lambda where: self._nearest(block[where[0]], similarities,
                                                          indices, where[1]), rows))
        return similarities, indices

    def _nearest(self, block, similarities, indices, rows):
        """The ``n_neighbors`` highest of each row of ``block``, highest first, into ``rows``."""
        nearest = np.argpartition(-block, self.n_neighbors - 1, axis=1)[:, :self.n_neighbors]
        values = np.take_along_axis(block, nearest, axis=1)
        order = np.argsort(-values, axis=1, kind="stable")
        similarities[rows] = np.take_along_axis(values, order, axis=1)
        indices[rows] = np.take_along_axis(nearest, order, axis=1)

    def predict_proba(self, X: Images) -> FloatArray:
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
        weights = (np.ones_like(similarities) if self.weights == "uniform"
                   else np.clip(similarities, 1e-6, None))  # dissimilar neighbours barely vote
        weights /= weights.sum(axis=1, keepdims=True)
        n_images, k = indices.shape
        rows = np.repeat(np.arange(n_images), k)
        mixing = sparse.csr_matrix((weights.ravel(), (rows, indices.ravel())),
                                   shape=(n_images, len(self.embeddings_)))
        return np.asarray((mixing @ self._targets).todense())

    @property
    def decides_by_threshold(self) -> bool:
        """True for ``voting="threshold"``; ``"mean_count"`` does not use ``threshold``."""
        return self.voting == "threshold"

    def decide(self, X: Images) -> NDArray[np.bool_]:
        """The concepts decided for each image, as a boolean indicator over ``classes_``.

        ``voting="threshold"``: the rule ``threshold`` on :meth:`predict_proba`;
        ``"mean_count"``: the most voted concepts, as many as the neighbours
        carry on average.

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        ndarray of bool, shape (n_images, n_concepts)

        Examples
        --------
        >>> import numpy as np
        >>> from imageclef_concepts import ConceptKNNClassifier
        >>> X = np.zeros((2, 4, 4, 3), dtype=np.uint8); X[0, :2] = 200; X[1, 2:] = 200
        >>> model = ConceptKNNClassifier(1, pixel_size=4, voting="mean_count").fit(
        ...     X, ["C1", "C2"])
        >>> model.decide(X[[1]])
        array([[False,  True]])
        """
        if self.voting == "threshold":
            return super().decide(X)
        check_is_fitted(self)
        similarities, indices = self.kneighbors(X)
        shares = self._vote_shares(similarities, indices)
        neighbour_counts = np.asarray(self._targets.sum(axis=1)).ravel()[indices]
        how_many = np.rint(neighbour_counts.mean(axis=1)).astype(int)
        # Any concept with a vote, capped at each image's neighbours' mean count.
        voted = DecisionRule(np.nextafter(np.float32(0), np.float32(1)))
        return voted.apply(shares, max_concepts=how_many)

    def _to_archive(self, writer):
        if self.embedding_ is None or isinstance(self.embedding, str):
            embedding = self.embedding  # "pixels" or a backbone name: rebuilt on load
        elif callable(getattr(self.embedding_, "_to_archive", None)):
            embedding = writer.estimator("embedding", self.embedding_)
        elif embedding_identity(self.embedding_) is not None:  # its identity, not its weights
            return {"params": writer.params(self, nested=("embedding",)), "embedding": None,
                    "encoder": encoder_description(self.embedding_), **self._archived(writer)}
        else:
            raise TypeError(f"A ConceptKNNClassifier with embedding={self.embedding_!r} cannot "
                            "be saved without pickle: use a name or a ConceptCNNClassifier.")
        return {"params": writer.params(self, nested=("embedding",)), "embedding": embedding,
                **self._archived(writer)}

    def _archived(self, writer):
        return {"targets": self.targets_.to_dict(),
                "embeddings": writer.array("embeddings", self.embeddings_),
                "indicator": writer.csr("indicator_", self._targets)}

    @classmethod
    def _from_archive(cls, description, reader):
        embedding = reader.expect(description, "embedding", (str, dict, type(None)))
        if embedding is None:  # an encoder kept by identity, rebuilt from this machine's weights
            embedding = encoder_from_description(description.get("encoder"), reader.path)
        elif isinstance(embedding, dict):
            embedding = reader.estimator(embedding, f"{reader.where}['embedding']")
        estimator = reader.params(cls, description, embedding=embedding)
        estimator.embedding_ = estimator._fitted_embedding(None, None)  # nothing to fit: as saved
        estimator.targets_ = reader.targets(description)
        estimator.classes_ = estimator.targets_.classes_
        estimator.embeddings_ = reader.array(reader.expect(description, "embeddings", (str,)),
                                             "f", 2, "the k-NN's embeddings")
        indicator = reader.csr(reader.expect(description, "indicator", (dict,)),
                               "the k-NN's concepts")
        estimator._check_loaded(indicator)
        estimator._targets = indicator.astype(np.float32)
        return estimator

    def _check_loaded(self, indicator):
        """Loaded arrays that agree with one another and with the parameters."""
        n_train, n_concepts = len(self.embeddings_), len(self.classes_)
        if indicator.shape != (n_train, n_concepts):
            raise ModelFileError(f"the k-NN's concepts are a {indicator.shape} matrix for "
                                 f"{n_train} training images and {n_concepts} concepts")
        if not np.isfinite(self.embeddings_).all():
            raise ModelFileError("the k-NN's embeddings hold NaN or infinite values")
        if self.n_neighbors > n_train:
            raise ModelFileError(f"n_neighbors={self.n_neighbors} is more than the {n_train} "
                                 "training images")
        if self.embedding == "pixels" and self.embeddings_.shape[1] != 3 * self.pixel_size ** 2:
            raise ModelFileError(f"the k-NN's embeddings have {self.embeddings_.shape[1]} "
                                 f"dimensions, not 3 x pixel_size^2 = {3 * self.pixel_size ** 2}")


def precomputed_embeddings(X, fitted=None):
    """``X`` as embeddings made beforehand: a finite (n, d) float32 array, ``d`` as at fit.

    Raises
    ------
    ValueError
        Naming what is wrong: not 2-d numbers, NaN or infinity, another width.
    """
    if is_path_sequence(X) if isinstance(X, (list, tuple)) else False:
        raise ValueError("embedding='precomputed' takes X as an (n_images, n_dims) array of "
                         "embeddings, not image paths: embed them first (embed_images).")
    if sparse.issparse(X):  # embeddings are dense: a sparse matrix is made so, if it fits
        check_allocation(4 * int(np.prod(X.shape)), setting("X", f"sparse {X.shape}"),
                         "holding the sparse embeddings as a dense array", "give fewer dimensions")
        X = X.toarray()
    vectors = np.asarray(X)
    if vectors.dtype.kind not in "biuf" or vectors.ndim != 2:
        raise ValueError(f"embedding='precomputed' takes X as an (n_images, n_dims) array "
                         f"of numbers; got dtype {vectors.dtype}, shape {vectors.shape}.")
    if not np.isfinite(vectors).all():
        raise ValueError("X (precomputed embeddings) holds NaN or infinite values.")
    if vectors.dtype.kind == "f" and vectors.size and \
            np.abs(vectors).max() > np.finfo(np.float32).max:
        raise ValueError("X (precomputed embeddings) holds values beyond float32's range "
                         f"(up to {np.abs(vectors).max():.3g}): scale them first.")
    vectors = vectors.astype(np.float32)
    if fitted is not None and vectors.shape[1] != fitted.shape[1]:
        raise ValueError(f"X has {vectors.shape[1]} dimensions; the model was fitted on "
                         f"embeddings of {fitted.shape[1]}.")
    return vectors


def _n_rows(X):
    """How many images ``X`` holds (a sparse matrix's rows too), 1 when it cannot tell."""
    if sparse.issparse(X):
        return int(getattr(X, "shape")[0])
    return len(X) if isinstance(X, Sized) else 1


def _is_fitted(estimator):
    if not estimator.__sklearn_tags__().requires_fit:
        return True
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


def _row_parts(n_rows, n_parts):
    """``n_parts`` slices of ``range(n_rows)`` (fewer when there are fewer rows)."""
    edges = np.linspace(0, n_rows, min(n_parts, n_rows) + 1).astype(int)
    return [slice(low, high) for low, high in zip(edges[:-1], edges[1:])]
