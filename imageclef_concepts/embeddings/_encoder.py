"""FoundationEncoder: a foundation model's image embeddings, with its authors' preprocessing."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sized
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import StrOptions

from ..files._atomic import NotARegularFileError, open_regular_file
from ..files._numbers import WholeNumber
from ..files._sizes import check_allocation, setting
from ..images._sources import as_image_source
from ..images._store import ImageStore
from ..models._embedder import EmbedderMixin
from ._checkpoint import ZIP_MAGIC, open_clip_onnx
from ._onnx import network, open_weights, weights_digest
from ._presets import PRESETS

if TYPE_CHECKING:  # names for annotations only

    from .._typing import FloatArray, Images, ImageStoreLike

#: The version of what an embedding is (the pipeline around the network): a change
#: of this module that changes the vectors raises it, so kept vectors are not reused.
EMBEDDING_FORMAT = 1
_RANDOM_SEED = 0
_RANDOM: dict = {}  # model -> (serialised random network, its SHA-256)
_RANDOM_LOCK = threading.Lock()


class FoundationEncoder(EmbedderMixin, BaseEstimator):
    """Image embeddings from a foundation model (BiomedCLIP, RAD-DINO, CLIP, DINOv2, ViT,
    ConvNeXt), for :class:`~imageclef_concepts.ConceptKNNClassifier`.

    A transformer that learns nothing: ``fit`` checks the parameters,
    ``transform`` (or ``embed``) gives each image's L2-normalised embedding,
    computed by ONNX Runtime (the ``onnx`` extra) from the model's image
    tower exported to ONNX on the user's machine (see the documentation page
    "Foundation-model encoders"), with the preprocessing the model's authors
    published (size, filter, centre crop, mean, std).

    Parameters
    ----------
    model : {"biomedclip", "rad-dino", "clip-vit-b16", "dinov2-base", "vit-b16", \
"convnext-base"}, default="biomedclip"
        The model, which sets the preprocessing and the output taken.
    weights : path or "random", default=None
        The ONNX file of the model's image tower; for ``"biomedclip"``, its
        published ``open_clip_pytorch_model.bin`` works too (read without
        PyTorch, tensors only, converted in memory). ``"random"`` builds the
        model's architecture with fixed random weights (tests and timing:
        the vectors mean nothing); ConvNeXt has no random build. None is
        refused: a weights file must be named.
    batch_size : int, default=32
        Images run through the network together.
    image_store : str, path-like, ImageStore or None, default=None
        A folder of prepared images (:class:`~imageclef_concepts.ImageStore`):
        image paths are decoded once for every use and process.

    See Also
    --------
    BackboneEmbedding : ImageNet CNN features, with Keras.

    Examples
    --------
    >>> import numpy as np
    >>> from imageclef_concepts import FoundationEncoder
    >>> encoder = FoundationEncoder("vit-b16", weights="random", batch_size=2)
    >>> vectors = encoder.fit_transform(np.zeros((2, 40, 40, 3), dtype=np.uint8))
    >>> vectors.shape, vectors.dtype, bool(np.allclose(np.linalg.norm(vectors, axis=1), 1))
    ((2, 768), dtype('float32'), True)
    """

    _parameter_constraints = {
        "model": [str],  # a key of PRESETS, checked in fit
        "weights": [StrOptions({"random"}), str, os.PathLike, None],
        "batch_size": [WholeNumber(1)],
        "image_store": [str, os.PathLike, ImageStore, None],
    }

    def __init__(self, model: str = "biomedclip", weights: str | os.PathLike | None = None,
                 batch_size: int = 32, image_store: ImageStoreLike = None) -> None:
        self.model = model
        self.weights = weights
        self.batch_size = batch_size
        self.image_store = image_store

    def _n_features(self):
        return PRESETS[self.model].n_features

    def _image_shelves(self):  # the store it fills: see images._shared.check_stores_room
        preset = self._check()
        return [(self.image_store, "image_size", preset.resize, preset.resample)]

    def embed(self, X: Images) -> FloatArray:
        """Each image's embedding, of unit length.

        The network is loaded (and its file checked) before any image is read.

        Parameters
        ----------
        X : array-like of images or sequence of paths
            Pixels (n, h, w[, c]) in 0-255 or [0, 1], or image files.

        Returns
        -------
        ndarray of shape (n_images, n_features), float32
        """
        preset, size = self._check(), int(self.batch_size)  # np.uint8 wraps in arithmetic
        if isinstance(X, Sized):  # a batch in memory: checked before the network is loaded
            rows = min(size, len(X))
            # Two batches of decoded pixels (one decoded ahead), three float32 copies of
            # the crops (scaled, normalised, channels first), the vectors, and what the
            # network holds at once (review 18 F8: it was not counted, 9 times the rest).
            check_allocation(rows * (2 * 3 * preset.resize**2 + 3 * 12 * preset.crop**2
                                     + 4 * preset.n_features + preset.activation_bytes()),
                             setting("batch_size", self.batch_size),
                             f"running a batch of {rows} images through {self.model} (the pixels, "
                             "their float32 input and, for a ViT, its attention scores "
                             "and hidden layers)", "choose a smaller batch_size")
        runner = self._network()
        images = as_image_source(X, preset.resize, preset.resample,
                                 image_store=self.image_store)
        batches = (np.arange(start, min(start + size, len(images)))
                   for start in range(0, len(images), size))
        where = f"weights={os.fspath(self.weights or '')!r}"  # set: _check refuses None

        def run(pixels):
            values = runner.run(self.preprocess(pixels))
            if values.shape[1] != preset.n_features:  # another model's file, or a wrong name
                raise ValueError(f"{where}: the network gives embeddings of "
                                 f"{values.shape[1]} values; {self.model}'s have "
                                 f"{preset.n_features} (wrong model name, or a file exported "
                                 "from another model).")
            return values

        vectors = []
        with ThreadPoolExecutor(max_workers=1) as pool:  # decodes a batch ahead of the network
            pending = pool.submit(images.load, next(batches))
            for indices in batches:
                pixels, _ = pending.result()
                pending = pool.submit(images.load, indices)
                vectors.append(run(pixels))
            pixels, _ = pending.result()
            vectors.append(run(pixels))
        return _unit_rows(np.concatenate(vectors))

    def preprocess(self, pixels: np.ndarray) -> np.ndarray:
        """The network's input from square ``resize`` pixels: centre crop, scale to [0, 1],
        normalise by the model's mean and std, channels first.

        Parameters
        ----------
        pixels : ndarray of uint8, shape (n, resize, resize, 3)

        Returns
        -------
        ndarray of float32, shape (n, 3, crop, crop)
        """
        preset = PRESETS[self.model]
        offset = (preset.resize - preset.crop) // 2  # torchvision's CenterCrop: floor on the left
        crop = pixels[:, offset:offset + preset.crop, offset:offset + preset.crop]
        mean = np.asarray(preset.mean, dtype=np.float32)
        std = np.asarray(preset.std, dtype=np.float32)
        scaled = (crop.astype(np.float32) / np.float32(255) - mean) / std
        return np.ascontiguousarray(scaled.transpose(0, 3, 1, 2))

    def embedding_identity(self) -> str:
        """What makes this encoder's vectors what they are, as a stable string.

        JSON with sorted keys: the model, the backend, the SHA-256 of the
        weights file (or of the random network built), the preprocessing, the
        output taken and the embedding format. Two encoders that embed
        differently never share it; the same file loaded twice does.

        Returns
        -------
        str
        """
        preset = self._check()
        runner = self._network()
        source = ("random" if self.weights == "random" else
                  "open_clip" if _is_zip(os.fspath(self.weights or "")) else "onnx")
        return json.dumps({
            "weights_format": source,
            "format": EMBEDDING_FORMAT, "model": self.model, "backend": "onnxruntime",
            "weights_sha256": self._digest(), "random_weights": self.weights == "random",
            "preprocessing": preset.preprocessing(), "output": runner.output,
            "normalisation": "L2",
        }, sort_keys=True)

    def _check(self):
        self._validate_params()
        if self.model not in PRESETS:
            raise ValueError(f"model={self.model!r} is not a known model: choose one of "
                             f"{', '.join(sorted(PRESETS))}.")
        preset = PRESETS[self.model]
        if self.weights is None:
            raise ValueError(f"weights=None: name the ONNX file of {self.model}'s image tower "
                             f"(exported from {preset.source}; see the documentation page "
                             "Foundation-model encoders), or "
                             "weights='random' for random weights (tests and timing).")
        if self.weights == "random" and not preset.architecture:
            raise ValueError(f"weights='random': model={self.model!r} has no random build; "
                             "name its ONNX file.")
        if self.weights != "random":
            self._digest()  # a missing file, a folder, a pipe: refused here
        return preset

    def _digest(self):
        if self.weights == "random":
            return _random_network(self.model)[1]
        digest = weights_digest(self.weights)
        pinned = getattr(self, "_pinned_digest", None)
        if pinned is not None and pinned[0] == os.fspath(self.weights) and pinned[1] != digest:
            raise ValueError(f"weights={os.fspath(self.weights)!r}: the file changed since this "
                             "encoder first read it or was saved (its SHA-256 differs): its "
                             "embeddings would not match the kept ones. Name the file it read.")
        self._pinned_digest = (os.fspath(self.weights), digest)
        return digest

    def _network(self):
        preset = PRESETS[self.model]
        digest = self._digest()
        if self.weights == "random":
            model, where = _random_network(self.model)[0], f"weights='random' ({self.model})"
        else:
            model, where = os.fspath(self.weights), f"weights={os.fspath(self.weights)!r}"
            if _is_zip(model):  # a PyTorch checkpoint, not ONNX
                if not preset.checkpoint:
                    raise ValueError(
                        f"{where} is a PyTorch checkpoint: for model={self.model!r} export "
                        "the image tower to ONNX (the documentation page Foundation-model "
                        "encoders says how); only biomedclip's file is read as is.")
                path = model

                def model():  # what is converted is what was hashed
                    with open_weights(path, digest, where) as handle:
                        return open_clip_onnx(handle, preset, where)

        return network(model, digest, where, preset.crop, preset.outputs)


def _random_network(model):
    """The preset's architecture with fixed random weights, and its SHA-256."""
    import hashlib

    from ._random import random_vit

    with _RANDOM_LOCK:
        if model not in _RANDOM:
            preset = PRESETS[model]
            built = random_vit(preset.architecture, preset.outputs[0], seed=_RANDOM_SEED)
            _RANDOM.clear()  # a ViT-B is 350 MB: one kept
            _RANDOM[model] = (built, hashlib.sha256(built).hexdigest())
        return _RANDOM[model]


def _is_zip(path):
    try:  # regular files only: the path may have become a pipe since it was hashed
        with open_regular_file(path, "weights file") as handle:
            return handle.read(4) == ZIP_MAGIC
    except (FileNotFoundError, NotARegularFileError) as error:
        raise ValueError(f"weights={os.fspath(path)!r}: {error}") from None


def _unit_rows(vectors):
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
