"""What a fitted :class:`ConceptCNNClassifier` gives back: probabilities and embeddings.

The images of ``X`` go through the fitted network batch by batch
(:class:`~._batches.ImageBatches` into ``Model.predict``), as in training:
arrays or paths decoded in background threads, an unreadable file a row of
NaN (no concept). :class:`NetworkOutputsMixin` gives the estimator
``predict_proba`` (with test-time augmentation) and ``embed`` (the
penultimate layer, for retrieval).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._architecture import apply_thread_limit, check_memory, check_network_memory
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
