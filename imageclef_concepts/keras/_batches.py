"""Image sources as a ``tf.data`` pipeline, for ``keras.Model.fit`` and ``predict``."""

import math
from contextlib import contextmanager

import numpy as np

from ..images._decoding import ImageDecodeError


class ImageBatches:
    """Batches of (images, targets[, sample weights]) as a ``tf.data`` pipeline.

    Batches are made by a Python generator that ``tf.data`` runs in a
    background thread, batches ahead of the network (prefetch), so that
    decoding overlaps training. The output signature is declared, so no
    batch is loaded twice to guess it (as ``keras.utils.PyDataset`` does).

    Parameters
    ----------
    images : image source
        Anything with ``len()`` and ``load(indices)`` (see :class:`ImageArray`).
    indices : ndarray of int, default=None
        The images to use (all by default): a validation split is the same
        source with other indices, without copying pixels.
    targets : ndarray or scipy.sparse matrix, default=None
        Indicator rows aligned with ``images``; densified one batch at a time.
    sample_weight : ndarray, default=None
    batch_size : int, default=32
    shuffle_seed : int or None, default=None
        Shuffles the order at every pass (epoch), the order of epoch ``e``
        drawn from ``(shuffle_seed, e)``, so that a resumed training sees the
        same orders as an uninterrupted one. None keeps the order
        (prediction, validation).
    first_epoch : int, default=0
        The epoch of the first pass (a resumed or continued training). Later
        passes take theirs from Keras through :meth:`epoch_callback`, not from
        counting passes: Keras may read a dataset more often than once an
        epoch, which would shift every later order.
    mirrored : bool, default=False
        Flip every image left to right (test-time augmentation).
    """

    def __init__(self, images, *, indices=None, targets=None, sample_weight=None,
                 batch_size=32, shuffle_seed=None, first_epoch=0, mirrored=False):
        self.images = images
        self.indices = np.arange(len(images)) if indices is None else np.asarray(indices)
        self.targets = targets
        self.sample_weight = sample_weight
        self.batch_size = batch_size
        self.shuffle_seed = shuffle_seed
        self.epoch = first_epoch
        self.mirrored = mirrored
        self.error = None

    def __len__(self):
        return math.ceil(len(self.indices) / self.batch_size)

    def batch(self, order, number):
        """Batch ``number`` of the images in ``order``."""
        chosen = order[number * self.batch_size:(number + 1) * self.batch_size]
        x, good = self.images.load(chosen)
        if self.mirrored:
            x = x[:, :, ::-1]
        if self.targets is None:
            return (x,)  # failed rows stay (zeros) so that predictions keep their places
        if not good.all():  # a file that failed to decode leaves with its labels
            x, chosen = x[good], chosen[good]
        y = self.targets[chosen]
        y = (y.toarray() if hasattr(y, "toarray") else np.asarray(y)).astype(np.float32)
        if self.sample_weight is None:
            return x, y
        return x, y, self.sample_weight[chosen].astype(np.float32)

    def _generate(self):
        if self.shuffle_seed is None:
            order = self.indices
        else:
            order = np.random.default_rng([self.shuffle_seed, self.epoch]).permutation(
                self.indices)
        for number in range(len(self)):
            try:
                batch = self.batch(order, number)
            except ImageDecodeError as error:
                self.error = error  # tf.data turns it into a graph error; keep it
                raise
            yield batch

    def epoch_callback(self):
        """A Keras callback that tells these batches which epoch begins."""
        import keras

        batches = self

        class _EpochOfBatches(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                batches.epoch = epoch

        return _EpochOfBatches()

    def dataset(self):
        """The batches as a ``tf.data.Dataset`` for ``keras.Model.fit``/``predict``.

        Prefetched on the host, ``tf.data.AUTOTUNE`` batches ahead, and of known
        length (the steps of an epoch). Not copied onto a GPU ahead of the step
        (``prefetch_to_device``): that must end a pipeline and loses its length,
        so that Keras warned that the input "ran out of data" at every epoch
        (64 uint8 images at 224 px are 10 MB: about a millisecond to copy).
        """
        import tensorflow as tf

        size = self.images.image_size
        signature = [tf.TensorSpec((None, size, size, 3), tf.as_dtype(self.images.dtype))]
        if self.targets is not None:
            signature.append(tf.TensorSpec((None, self.targets.shape[1]), tf.float32))
            if self.sample_weight is not None:
                signature.append(tf.TensorSpec((None,), tf.float32))
        dataset = tf.data.Dataset.from_generator(self._generate,
                                                 output_signature=tuple(signature))
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(self)))
        return dataset.prefetch(tf.data.AUTOTUNE)


@contextmanager
def decode_errors_surfaced(*batch_sets):
    """Re-raise an :class:`ImageDecodeError` that ``tf.data`` wrapped, as itself."""
    try:
        yield
    except Exception:
        for batches in batch_sets:
            if batches is not None and batches.error is not None:
                raise batches.error from None
        raise
