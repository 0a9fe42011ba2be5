"""What a fitted :class:`ConceptCNNClassifier` gives back: probabilities and embeddings.

The images of ``X`` go through the fitted network batch by batch
(:class:`~._batches.ImageBatches` into ``Model.predict``), as in training:
arrays or paths decoded in background threads, an unreadable file a row of
NaN (no concept). :class:`NetworkOutputsMixin` gives the estimator
``predict_proba`` (with test-time augmentation) and ``embed`` (the
penultimate layer, for retrieval). :func:`check_network_memory` refuses, before any image goes
through a network (to predict, embed or train), one whose activations this machine cannot hold.
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING

import keras
import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..files._sizes import check_allocation, setting
from ._architecture import apply_thread_limit, batch_input_bytes, check_memory
from ._batches import ImageBatches, decode_errors_surfaced
from ._training import shown_progress

if TYPE_CHECKING:  # names for annotations only
    from .._typing import FloatArray, Images


def n_images(X):
    """The number of images of ``X`` when it tells without work (a list, an array), else None."""
    try:
        return len(X)
    except TypeError:
        return None


class NetworkOutputsMixin:
    """``predict_proba`` and ``embed`` of a fitted network ``model_``."""

    # The estimator's, for the type checker: its parameters and its fitted network.
    n_threads: int | None
    test_time_augmentation: bool
    batch_size: int
    verbose: int
    model_: keras.Model

    def predict_proba(self, X: Images) -> FloatArray:
        """Probability of each concept for each image.

        Parameters
        ----------
        X : array-like of images or sequence of paths
            As for :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_images, n_concepts)
            Column ``j`` is concept ``classes_[j]``.
        """
        check_is_fitted(self, "model_")
        apply_thread_limit(self.n_threads)
        probabilities = self._outputs_of(self.model_, X)
        if self.test_time_augmentation:
            mirrored = self._outputs_of(self.model_, X, mirrored=True)
            probabilities = (probabilities + mirrored) / 2
        return probabilities

    def _outputs_of(self, network, X, mirrored=False):
        """Run ``network`` over the images of ``X``; NaN rows for unreadable files."""
        check_memory(self, n_images(X), training=False)  # before any image is read
        check_network_memory(self, network, n_images(X), training=False)
        images, _ = self._validate_data(X)
        known_failures = len(images.failures)
        batches = ImageBatches(images, batch_size=self.batch_size, mirrored=mirrored)
        with decode_errors_surfaced(batches):
            verbose, shown = shown_progress(self.verbose)
            outputs = network.predict(batches.dataset(), verbose=verbose, callbacks=shown)
        images.warn_failures("during prediction", reported=known_failures)
        outputs[list(images.failures)] = np.nan  # no image, no output
        return outputs

    def embed(self, X: Images) -> FloatArray:
        """The penultimate layer's activations: the network's image embedding.

        Used by :class:`~imageclef_concepts.ConceptKNNClassifier` to retrieve
        similar images in the space the network learned.

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        ndarray of shape (n_images, n_units)
        """
        check_is_fitted(self, "model_")
        penultimate = keras.Model(self.model_.inputs, self.model_.layers[-2].output)
        return self._outputs_of(penultimate, X)


def check_network_memory(estimator, network, n_images=None, *, training=True):
    """Refuse, before any image goes through it, a ``network`` whose activations on a batch
    this machine cannot hold: a backbone at a large ``image_size`` passes
    :func:`check_memory`, which counts its input batch only, and TensorFlow then failed
    out of memory after the work before.

    Counted from the built network's layers (the backbone's inside it too), for a batch of
    ``batch_size`` images (``n_images`` when fewer): its input batch (uint8 and float32),
    and every layer output, kept for the gradients, when training; when predicting,
    :data:`LIVE_OUTPUTS` times the largest layer output, as a layer's inputs, its output and
    its work live at once. ``estimator``: a ConceptCNNClassifier or a BackboneEmbedding.
    """
    values = _activation_values(network)
    if not values:
        return
    batch = int(estimator.batch_size)
    batch = batch if n_images is None else max(1, min(batch, int(n_images)))
    need = batch_input_bytes(batch, estimator.image_size) + batch * (
        sum(values) if training else LIVE_OUTPUTS * max(values))
    shown = [setting("image_size", estimator.image_size)]
    shown += [setting("batch_size", estimator.batch_size)] if batch > 1 else []
    counted = ("its layers' outputs, kept for the gradients" if training else
               f"{LIVE_OUTPUTS} times its largest layer output, live at once")
    check_allocation(need, " and ".join(shown),
                     f"{'training' if training else 'running'} the network on a batch of "
                     f"{batch} image(s) (its input batch, uint8 and float32, and {counted})",
                     "choose a smaller image_size" + (" or batch_size" if batch > 1 else ""))


# The layer outputs' worth a network holds at once when predicting: measured (peak RSS over
# the process before, embed of mobilenetv3small, densenet121, resnet50 and efficientnetb0 at
# 1000 to 3000 px, batch sizes 2 to 8) at 3.3 to 4.2 times its largest layer output and its
# input batch together (a convolution's output, its normalisation's, its activation's work).
LIVE_OUTPUTS = 4


def _activation_values(network):
    """The bytes each layer of ``network`` (and of the networks inside it) outputs for one
    image; with a layer whose output does not bound what it computes, or is not known (used
    twice), the largest tensor the network computes too (:func:`largest_computed`)."""
    found, unbounded = [], False
    for layer in network.layers:
        if isinstance(layer, keras.Model):
            found += _activation_values(layer)
            continue
        unbounded = unbounded or not bounded_by_output(layer)
        try:
            outputs = keras.tree.flatten(layer.output)
        except (AttributeError, ValueError):  # a layer used more than once, or not built
            unbounded = True
            continue
        for output in outputs:
            shape = tuple(output.shape[1:])
            if shape and all(isinstance(side, int) for side in shape):
                found.append(math.prod(shape) * np.dtype(output.dtype).itemsize)
    return found + [largest_computed(network)] if unbounded else found


# Layers whose work on an image is bounded by their output and weights: Keras' convolutions,
# pools, normalisations, activations, merges, reshapes, dropouts, the geometric and colour
# image preprocessing named here (the library's augmentation among them), rescaling, its
# applications' and the library's own. Not an attention (its scores are its length squared),
# a spectrogram (its STFT), a histogram equalization (a CLAHE's one-hot of every pixel value,
# 256 times its output), a wrapper's or a Pipeline's inner layers, a layer not named here.
_BOUNDED_MODULES = tuple(f"keras.src.{kind}" for kind in (
    "layers.convolutional.", "layers.pooling.", "layers.normalization.", "layers.activations.",
    "layers.merging.", "layers.reshaping.", "layers.regularization.", "applications.",
    "layers.preprocessing.rescaling", "layers.preprocessing.normalization", "layers.core.dense",
    "layers.core.embedding", "layers.core.identity", "layers.core.input_layer",
    "layers.core.masking")) + tuple(
    f"keras.src.layers.preprocessing.image_preprocessing.{kind}" for kind in (
        "random_flip", "random_rotation", "random_zoom", "random_contrast", "random_translation",
        "random_crop", "random_brightness", "center_crop", "resizing")) + ("imageclef_concepts.",)


def bounded_by_output(layer):
    """True when what ``layer`` computes for an image is bounded by its output and weights."""
    return type(layer).__module__.startswith(_BOUNDED_MODULES)


def largest_computed(network):
    """The bytes of the largest tensor ``network`` computes for one image (an attention's
    scores too), from a trace in a TensorFlow graph (nothing is run); 0 when it cannot be
    traced. Traced once a network (its shapes do not change; up to 1.5 s measured)."""
    if network not in _LARGEST:
        _LARGEST[network] = _traced_largest(network)
    return _LARGEST[network]


_LARGEST: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> bytes


def _traced_largest(network):
    import tensorflow as tf

    specs = [tf.TensorSpec((None, *tensor.shape[1:]), tensor.dtype) for tensor in network.inputs]
    try:
        graph = tf.function(lambda x: network(x, training=False)).get_concrete_function(
            specs[0] if len(specs) == 1 else specs).graph
    except Exception:  # noqa: BLE001 (not traceable: Keras will say why when it runs)
        return 0
    return max((math.prod(output.shape[1:]) * output.dtype.size
                for operation in graph.get_operations() for output in operation.outputs
                if output.shape.rank and output.shape.rank > 1 and output.shape[0] is None
                and output.shape[1:].is_fully_defined() and output.dtype.is_numpy_compatible),
               default=0)
