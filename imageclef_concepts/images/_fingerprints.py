"""Fingerprints of training images: a digest that changes when the images change.

Checkpoints and recipe-2026's plan ask "same data, go on?" here, and only
here: a file counts as its absolute path (or URL) and its
:func:`~._shelf.file_version`, the image store's version of a file.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..files._checkpoints import digest
from ._decoding import is_url
from ._shelf import file_version
from ._sources import ImageArray, ImageFiles, image_column, is_path_sequence


def _file_identity(path):
    """A file's absolute path (a URL as it is) and its version, :func:`file_version` (the
    image store's: a file rewritten with its modification time put back is a change too)."""
    name = path if is_url(path) else os.path.abspath(path)
    # None for a bad file (reported by the image check, by on_error) or a URL whose
    # version cannot be told: its name alone.
    version = file_version(path)
    return name if version is None else f"{name}\0{version}"


def images_digest(X):
    """A digest that changes when the images change: their files, or their pixels.

    For an image source (:class:`ImageFiles`, :class:`ImageArray`) or what a
    user passes as ``X``; a file counts as its absolute path (or URL) and its
    :func:`file_version` (size, modification and status-change times). Fingerprints a
    training run for its checkpoint and the training data of ``recipe-2026``.
    """
    if isinstance(X, ImageFiles):
        X = X.paths
    elif isinstance(X, ImageArray):
        X = X.pixels
    X = image_column(X)
    if is_path_sequence(X):
        paths = [os.fspath(path) for path in X]
        if any(is_url(path) for path in paths):  # one request each: not one after another
            with ThreadPoolExecutor(max_workers=8) as pool:
                return digest(*pool.map(_file_identity, paths))
        return digest(*map(_file_identity, paths))
    pixels = np.ascontiguousarray(X)
    return digest(str(pixels.shape), pixels.dtype.str, memoryview(pixels).cast("B"))
