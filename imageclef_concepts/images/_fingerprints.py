"""Fingerprints of training images (a digest that changes when the images change) and
of a backbone's weights file.

Checkpoints, recipe-2026's plan and the embedding store ask "same data, same weights,
go on?" here, and only here: a file counts as its absolute path (or URL) and its
:func:`~._shelf.file_version`, the image store's version of a file, taken
once the files have settled (:func:`wait_until_settled`), so that the same
files give the same fingerprint later.
"""

import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..files._digests import digest
from ._decoding import is_url
from ._inputs import image_column, is_path_sequence
from ._shelf import file_version, settles_at
from ._sources import ImageArray, ImageFiles

# Waits for files to settle before a fingerprint: files rewritten again and again meanwhile
# are fingerprinted unsettled (with their content: exact, but not the same later).
_SETTLE_ROUNDS = 3
_SETTLE_MARGIN = 10**6  # ns past the moment, against a sleep that ends a little early
# A file settles at most 2 s after it changed; one that settles later has times ahead of
# this clock (a FAT stick written on a machine whose clock was ahead): not waited for,
# it is settled (file_version: a rewrite here sets its times to this clock's, a change).
_LONGEST_WAIT = 3 * 10**9


def wait_until_settled(paths):
    """Sleep until no local file of ``paths`` is unsettled (:func:`~._shelf.settles_at`):
    changed less than 2 s ago on a file system of whole-second times, when its version
    carries its content, which it will not once settled. One sleep for all the files
    (at most about 2 s), then they are looked at again; at most ``_SETTLE_ROUNDS`` times.
    Files whose times are ahead of the clock are not waited for (``_LONGEST_WAIT``)."""
    for _ in range(_SETTLE_ROUNDS):
        now = time.time_ns()
        until = max((moment for moment in map(settles_at, paths)
                     if moment is not None and moment - now <= _LONGEST_WAIT), default=None)
        if until is None:
            return
        time.sleep(max(0, until + _SETTLE_MARGIN - time.time_ns()) / 1e9)


def weights_identity(weights):
    """A backbone's ``weights`` as a fingerprint knows them: None and ``"imagenet"`` as they
    are, a weights file as an image file (:func:`file_identity`, settled first): another
    file at the same path (re-exported, fine-tuned) is other weights. A file that cannot be
    read is its path alone (refused where the network is built)."""
    if weights is None or (isinstance(weights, str) and weights == "imagenet"):
        return weights
    path = os.fspath(weights)
    wait_until_settled([path])
    return file_identity(path)


def file_identity(path):
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
    :func:`file_version` (size, modification and status-change times, inode), settled
    first (:func:`wait_until_settled`). Fingerprints a
    training run for its checkpoint and the training data of ``recipe-2026``.
    """
    if isinstance(X, ImageFiles):
        X = X.paths
    elif isinstance(X, ImageArray):
        X = X.pixels
    X = image_column(X)
    if is_path_sequence(X):
        paths = [os.fspath(path) for path in X]
        wait_until_settled(paths)  # the fingerprint of the files as they stay
        if any(is_url(path) for path in paths):  # one request each: not one after another
            with ThreadPoolExecutor(max_workers=8) as pool:
                return digest(*pool.map(file_identity, paths))
        return digest(*map(file_identity, paths))
    pixels = np.ascontiguousarray(X)
    return digest(str(pixels.shape), pixels.dtype.str, memoryview(pixels).cast("B"))
