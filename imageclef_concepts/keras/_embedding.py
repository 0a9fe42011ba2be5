"""BackboneEmbedding: image embeddings from an ImageNet backbone, for retrieval."""

from __future__ import annotations

import hashlib
import os
import random
from typing import TYPE_CHECKING

import keras
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import StrOptions

from ..files._numbers import WholeNumber
from ..images._fingerprints import weights_identity
from ..images._sources import as_image_source
from ..images._store import ImageStore
from ..models._embedder import EmbedderMixin
from . import BACKBONES
from ._architecture import check_memory
from ._batches import ImageBatches, decode_errors_surfaced
from ._model_file import keras_free_state, keras_restored_state
from ._network import backbone_preprocessing, pooled_backbone
from ._prediction import check_network_memory, n_images

if TYPE_CHECKING:  # names for annotations only

    from .._typing import FloatArray, Images, ImageStoreLike


class BackboneEmbedding(EmbedderMixin, BaseEstimator):
    """Image embeddings from an ImageNet backbone, for
    :class:`~imageclef_concepts.ConceptKNNClassifier`.

    A transformer that learns nothing: ``fit`` checks the parameters,
    ``transform`` (or ``embed``) gives each image's pooled backbone features.

    Parameters
    ----------
    backbone : {"densenet121", "resnet50", "efficientnetb0"}, default="densenet121"
    image_size : int, default=224
    weights : None, "imagenet", str or path-like, default="imagenet"
        ImageNet weights are downloaded by Keras on first use (a machine
        without internet access needs None or a weights file: the backbone's
        saved weights, ``.weights.h5`` or ``.keras``).
    batch_size : int, default=32
    image_store : str, path-like, ImageStore or None, default=None
        A folder of prepared images (:class:`~imageclef_concepts.ImageStore`):
        image paths are decoded once for every use and process.

    Examples
    --------
    >>> import numpy as np
    >>> from imageclef_concepts import BackboneEmbedding
    >>> embedding = BackboneEmbedding("resnet50", image_size=32, weights=None)
    >>> embedding.fit_transform(np.zeros((2, 32, 32, 3), dtype=np.uint8)).shape
    (2, 2048)
    """

    _parameter_constraints = {
        "backbone": [StrOptions(set(BACKBONES))],
        "image_size": [WholeNumber(32)],
        "weights": [StrOptions({"imagenet"}), str, os.PathLike, None],
        "batch_size": [WholeNumber(1)],
        "image_store": [str, os.PathLike, ImageStore, None],
    }

    def __init__(self, backbone: str = "densenet121", image_size: int = 224,
                 weights: str | os.PathLike | None = "imagenet", batch_size: int = 32,
                 image_store: ImageStoreLike = None) -> None:
        self.backbone = backbone
        self.image_size = image_size
        self.weights = weights
        self.batch_size = batch_size
        self.image_store = image_store

    def _check(self):
        self._validate_params()

    def _n_features(self):
        return int(self._network().output_shape[-1])

    def _image_shelves(self):  # the store it fills: see images._shared.check_stores_room
        return [(self.image_store, "image_size", self.image_size, "bilinear")]

    def embed(self, X: Images) -> FloatArray:
        """The backbone's globally pooled features of each image.

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        ndarray of shape (n_images, n_features)
        """
        self._validate_params()
        check_memory(self, n_images(X), training=False)  # before the network or any image
        network = self._network()
        check_network_memory(self, network, n_images(X), training=False)  # and its layers'
        images = as_image_source(X, self.image_size, image_store=self.image_store)
        batches = ImageBatches(images, batch_size=self.batch_size)
        with decode_errors_surfaced(batches):
            return network.predict(batches.dataset(), verbose=0)

    def embedding_identity(self) -> str:
        """What tells these embeddings from any other: the key of kept embeddings.

        The backbone, image size, resize filter, Keras' version and a digest
        of the network's weights (ImageNet's, a file's, or the random ones of
        ``weights=None``, which are the same in every process and clone).

        Returns
        -------
        str

        Examples
        --------
        >>> from imageclef_concepts import BackboneEmbedding
        >>> a = BackboneEmbedding("resnet50", image_size=32, weights=None)
        >>> a.embedding_identity() == BackboneEmbedding(
        ...     "resnet50", image_size=32, weights=None).embedding_identity()
        True
        """
        self._validate_params()
        key = (*self._settings(), weights_identity(self.weights))
        stale = (getattr(self, "_built", (None,))[0] == key[:3]
                 and getattr(self, "_built_version", None) != key[3])
        if key in _IDENTITIES and not stale:  # clones (a grid search's) neither build nor
            return _IDENTITIES[key]  # digest again; a network of older weights digests its own
        network = self._network()
        if getattr(self, "_identity", (None,))[0] != self._built[0]:
            digest = hashlib.sha256()
            for weight in network.weights:
                value = keras.ops.convert_to_numpy(weight)
                digest.update(f"{value.shape}{value.dtype}".encode())  # not names: counters
                digest.update(value.tobytes())
            self._identity = (self._built[0], (
                f"BackboneEmbedding(backbone={self.backbone}, image_size={self.image_size}, "
                f"resample=bilinear, pooling=avg) keras={keras.__version__} "
                f"weights-sha256={digest.hexdigest()}"))
        # Kept for these settings only when the network was built from this version of the
        # weights file: one built before the file was rewritten must not lend its identity
        # to the encoders of the new weights.
        if len(_IDENTITIES) < 64 and getattr(self, "_built_version", None) == key[3]:
            _IDENTITIES[key] = self._identity[1]
        return self._identity[1]

    def __getstate__(self):  # pickle's and skops': the built network as its .keras file
        return keras_free_state(super().__getstate__())

    def __setstate__(self, state):
        super().__setstate__(keras_restored_state(state, "a pickled or skops BackboneEmbedding"))

    def _settings(self):
        # A weights file is the same whether named by a str or a Path (its version is
        # compared apart: weights_identity).
        weights = self.weights if self.weights in (None, "imagenet") else os.fspath(self.weights)
        return self.backbone, self.image_size, str(weights)

    def _network(self):
        # Built once per set of parameters and pickled with the estimator, so
        # that random (weights=None) backbones embed the same after loading.
        # Random weights (weights=None) are drawn from a fixed seed (Keras' initializers
        # take theirs from Python's random): the same network in every process and clone,
        # so that what one embedded, every other may reuse (embedding_identity).
        key = self._settings()
        if getattr(self, "_built", (None,))[0] != key:
            version = weights_identity(self.weights)  # of the file the network is built from
            state = random.getstate()
            random.seed(f"{self.backbone}-{self.image_size}")
            try:
                inputs = keras.Input((self.image_size, self.image_size, 3))
                base = pooled_backbone(self.backbone, self.image_size, self.weights)
                outputs = base(backbone_preprocessing(self.backbone, inputs), training=False)
                self._built = (key, keras.Model(inputs, outputs))
                self._built_version = version
            finally:
                random.setstate(state)
        return self._built[1]


# Identities by (backbone, size, weights, weights_identity): the same settings give the
# same network in a process (random weights from a fixed seed, ImageNet's, a file unchanged).
_IDENTITIES: dict = {}

