"""Images as the network sees them: checked once, prepared batch by batch.

An image source hides where the pixels come from (an in-memory array now,
files later) behind ``len(source)`` and ``source.load(indices)``, which returns
a batch of ``image_size x image_size x 3`` pixels on the 0-255 scale. Checks
that can fail run when the source is made, before any training; the work that
scales with the data (resizing, channel expansion) runs per batch, so nothing
holds a second full copy of the images.
"""

import math

import keras
import numpy as np

IMAGE_SHAPES = "(n, h, w, 3), (n, h, w, 1) or (n, h, w)"


class ImageArray:
    """Images held in memory, validated on construction.

    Parameters
    ----------
    X : array-like of shape (n, h, w, 3), (n, h, w, 1) or (n, h, w)
        uint8 (or integer) pixels in 0-255, or floats in [0, 1].
    image_size : int
        Side of the square images :meth:`load` returns.
    """

    def __init__(self, X, image_size):
        self.pixels = _checked_pixel_array(X)
        self.image_size = image_size

    def __len__(self):
        return len(self.pixels)

    @property
    def shape(self):
        return self.pixels.shape

    def load(self, indices):
        """Return images ``indices`` as an (n, image_size, image_size, 3) batch, 0-255."""
        batch = self.pixels[indices]
        if batch.ndim == 3:
            batch = batch[..., np.newaxis]
        if batch.dtype.kind == "f":
            batch = batch.astype(np.float32) * np.float32(255)
        elif batch.dtype != np.uint8:
            batch = batch.astype(np.uint8)
        if batch.shape[1:3] != (self.image_size, self.image_size):
            batch = _resize(batch, self.image_size)
        if batch.shape[-1] == 1:
            batch = np.repeat(batch, 3, axis=-1)
        return batch


def as_image_source(X, image_size):
    """Wrap the user's ``X`` as an image source (an :class:`ImageArray` for arrays)."""
    if isinstance(X, ImageArray):
        return X
    return ImageArray(X, image_size)


def _checked_pixel_array(X):
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise ValueError(
            f"X must be an array of image pixels of shape {IMAGE_SHAPES}; got dtype {X.dtype}."
        )
    if X.ndim not in (3, 4) or (X.ndim == 4 and X.shape[-1] not in (1, 3)):
        raise ValueError(
            f"X must be images of shape {IMAGE_SHAPES}; got an array of shape {X.shape} "
            f"({X.ndim} dimensions)."
        )
    if len(X) == 0:
        raise ValueError("X holds no image (0 samples).")
    if X.shape[1] == 0 or X.shape[2] == 0:
        raise ValueError(f"X holds images of size {X.shape[1]} x {X.shape[2]}.")
    if X.dtype.kind == "b":
        raise ValueError("X is boolean; pass uint8 pixels (0-255) or floats in [0, 1].")
    if X.dtype.kind == "f":
        if not np.isfinite(X).all():
            raise ValueError(f"X contains {int((~np.isfinite(X)).sum())} NaN or infinite value(s).")
        low, high = X.min(), X.max()
        if low < 0 or high > 1:
            raise ValueError(
                f"Float images must be in [0, 1]; got values from {low:g} to {high:g}. "
                "Pass uint8 pixels (0-255) or divide by 255."
            )
    elif X.dtype != np.uint8:
        low, high = X.min(), X.max()
        if low < 0 or high > 255:
            raise ValueError(
                f"Integer images must be in 0-255; got values from {low} to {high}."
            )
    return X


def _resize(batch, image_size):
    # Antialiased bilinear, as Pillow resizes; returns floats on the same 0-255 scale.
    resized = keras.ops.image.resize(
        batch.astype(np.float32), (image_size, image_size), interpolation="bilinear",
        antialias=True,
    )
    return keras.ops.convert_to_numpy(resized)


class ImageBatches(keras.utils.PyDataset):
    """Batches of (images, targets[, sample weights]) for ``keras.Model.fit``/``predict``.

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
    rng : numpy.random.Generator, default=None
        Shuffles the order at the start and after every epoch; None keeps
        the order (prediction, validation).
    workers : int, default=1
        Threads that load batches ahead of the network.
    """

    def __init__(self, images, *, indices=None, targets=None, sample_weight=None,
                 batch_size=32, rng=None, workers=1):
        super().__init__(workers=workers, use_multiprocessing=False,
                         max_queue_size=max(2 * workers, 4))
        self.images = images
        self.indices = np.arange(len(images)) if indices is None else np.asarray(indices)
        self.targets = targets
        self.sample_weight = sample_weight
        self.batch_size = batch_size
        self.rng = rng
        self.order = self._new_order()

    def _new_order(self):
        return self.indices if self.rng is None else self.rng.permutation(self.indices)

    def __len__(self):
        return math.ceil(len(self.indices) / self.batch_size)

    def __getitem__(self, batch):
        chosen = self.order[batch * self.batch_size:(batch + 1) * self.batch_size]
        x = self.images.load(chosen)
        if self.targets is None:
            return (x,)
        y = self.targets[chosen]
        y = (y.toarray() if hasattr(y, "toarray") else np.asarray(y)).astype(np.float32)
        if self.sample_weight is None:
            return x, y
        return x, y, self.sample_weight[chosen].astype(np.float32)

    def on_epoch_end(self):
        self.order = self._new_order()
