"""Images as the network sees them: checked once, prepared batch by batch.

An image source hides where the pixels come from (an in-memory array or a
list of files) behind ``len(source)`` and ``source.load(indices)``, which
returns a batch of ``image_size x image_size x 3`` uint8 pixels and a mask of
the images that could be loaded. Checks that can fail run when the source is
made, before any training; the work that scales with the data (decoding,
resizing) runs per batch, in background threads for files, so that the images
are never all in memory.

This module is Pillow and NumPy only: files (``_image_decoding``) and arrays
are resized by the same Pillow filter (``resample``), and nothing here
imports TensorFlow (the ``tf.data`` pipeline lives in
:mod:`imageclef_concepts.keras`) or scikit-learn.
"""

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress

import numpy as np

from ..files._atomic import listing
from ..files._sizes import check_allocation, setting
from ._decoding import (
    ImageDecodeError,
    check_image_file,
    check_image_size,
    decode_image,
    decoding_threads,
    resized,
)
from ._folder_store import _StoreLost
from ._inputs import checked_pixel_array, image_column, is_path_sequence
from ._shared import disown, shared_shelf
from ._shelf import Shelf, file_version, source_key
from ._store import as_image_store, check_store_room
from ._store_folder import ImageStoreError
from ._writer import flush, writer_of

ON_ERROR = ("raise", "skip")
"""What an image source does with a file it cannot use: stop naming it, or leave it out."""

class SkippedImagesWarning(UserWarning):
    """Bad image files were left out (``on_error="skip"``).

    Examples
    --------
    >>> import warnings
    >>> from imageclef_concepts import ImageLoader, SkippedImagesWarning
    >>> issubclass(SkippedImagesWarning, UserWarning)
    True
    """


class _ImageSource:
    """What every image source has: ``failures`` (index -> problem) and the rest."""

    failures: dict[int, str]  # index -> problem, set per instance

    def usable_indices(self):
        """Indices of the images not known to be bad."""
        return np.setdiff1d(np.arange(len(self)), list(self.failures))

    def warn_failures(self, when, reported=0,
                      consequence="no training on them, NaN probabilities in prediction"):
        """Warn about the images in ``failures`` from position ``reported`` on."""
        new = list(self.failures.values())[reported:]
        if new:
            warnings.warn(listing(
                f"{len(new)} of {len(self)} image file(s) cannot be used (found {when}) and "
                f"are left out: {consequence}", new), SkippedImagesWarning, stacklevel=4)


class ImageArray(_ImageSource):
    """Images held in memory, validated on construction.

    Parameters
    ----------
    X : array-like of shape (n, h, w, 3), (n, h, w, 1) or (n, h, w)
        uint8 (or integer) pixels in 0-255, or floats in [0, 1] (rounded to
        the nearest of the 256 levels an image file holds).
    image_size : int
        Side of the square images :meth:`load` returns.
    resample : str, default="bilinear"
        A key of :data:`RESAMPLING`: the Pillow filter that resizes images of
        another size, the same one files are resized with.
    """

    # uint8 crosses into TensorFlow 4x cheaper than float32, and is what files give.
    dtype = np.uint8

    def __init__(self, X, image_size, resample="bilinear"):
        self.image_size = check_image_size(image_size)
        self.pixels = checked_pixel_array(X)
        self.resample = resample
        self.failures = {}  # checked up front: an array has no undecodable image

    def __len__(self):
        return len(self.pixels)

    @property
    def shape(self):
        return self.pixels.shape

    def load(self, indices):
        """Return images ``indices`` as an (n, image_size, image_size, 3) batch, 0-255.

        The second value, which images loaded, is always all True in memory.
        """
        check_image_size(self.image_size, len(indices))
        return self._prepare(self.pixels[indices]), np.ones(len(indices), dtype=bool)

    def _prepare(self, batch):
        if batch.ndim == 3:
            batch = batch[..., np.newaxis]
        if batch.dtype.kind == "f":
            batch = np.rint(batch.astype(np.float32) * np.float32(255)).astype(np.uint8)
        elif batch.dtype != np.uint8:
            batch = batch.astype(np.uint8)
        if batch.shape[-1] == 1:
            batch = np.repeat(batch, 3, axis=-1)
        if batch.shape[1:3] != (self.image_size, self.image_size):
            batch = np.stack([resized(image, self.image_size, self.resample)
                              for image in batch])
        return batch


class ImageFiles(_ImageSource):
    """Images read from files, a batch at a time.

    On construction every file is checked (exists, not empty, a header
    Pillow recognises), in threads, before any training starts.

    Parameters
    ----------
    paths : sequence of str or path-like
    image_size : int
    resample : str, default="bilinear"
        A key of :data:`RESAMPLING`.
    on_error : {"raise", "skip"}, default="raise"
        ``"raise"``: the check lists every bad file in one
        :class:`ImageDecodeError`, and a file that fails to decode later raises
        naming it. ``"skip"``: bad files are recorded in ``failures`` and left
        out (:meth:`usable_indices`), with a :class:`SkippedImagesWarning`
        naming them; so is a file that fails to decode later.
    workers : int or None, default=None
        Threads for the check and for decoding inside a batch; None: one per
        core available to this process (:func:`decoding_threads`).
    cache_mb : float, default=0
        Decoded images are kept in memory, up to this many megabytes, so that
        later epochs do not decode them again (as ``tf.data``'s ``cache()``,
        but bounded: images beyond the budget are decoded at every pass).
        Small images decode in less time than a training step on them, and
        decoding them every epoch makes training from files slower than from
        arrays.
    image_store : ImageStore or None, default=None
        Images the store holds at this size and filter are read from it (not
        checked again), the others decoded and added (its disk's room for them
        checked first). None: a meta-estimator's parts share what they decode.
    size_name : str or None, default="image_size"
        The parameter that sets ``image_size``, named when the store has no
        room; None when the size is a fitted model's, which cannot be chosen.
    store_required : bool, default=False
        Whether an ``image_store`` whose index cannot be read is an error
        (:func:`prepare_images`, whose work is the store), raised before any
        file is decoded, rather than a warning and images decoded without it.

    Attributes
    ----------
    stored : dict
        Where the store holds each image that it holds (by index).
    """

    def __init__(self, paths, image_size, resample="bilinear", on_error="raise", workers=None,
                 cache_mb=0, image_store=None, size_name="image_size", store_required=False):
        image_size = check_image_size(image_size)  # before any file is checked or store opened
        self.paths = [os.fspath(path) for path in paths]
        self.image_size = image_size
        self.resample = resample
        self.on_error = on_error
        self.workers = decoding_threads(workers)
        self.dtype = np.uint8
        self._cache = {}  # index -> decoded pixels
        self._pending = {}  # index -> decoded pixels the store's writer has not written yet
        if not self.paths:
            raise ValueError("X holds no image (0 paths).")
        # Python floats: NumPy's float16 (or 1e308) overflows to infinity; no more than X holds
        cached = int(min(float(cache_mb) * 2**20, len(self.paths) * 3 * int(image_size)**2))
        check_allocation(cached, setting("image_cache_mb", cache_mb),
                         f"caching the decoded images ({cached // (3 * int(image_size)**2)} at "
                         f"{image_size} px)", "choose a smaller image_cache_mb")
        self._cache_room = cached // (3 * int(image_size)**2)
        # No store of its own: within a meta-estimator, its parts share decoded images.
        self._shelf = None
        if image_store is not None:  # the user's, even a run's temporary folder: kept
            disown(image_store.path)
        with suppress(_StoreLost):  # a folder that changed hands: the store warned once
            self._shelf = (shared_shelf(len(self.paths), image_size, resample)
                           if image_store is None else image_store._shelf(image_size, resample))
        self._store_failed = False  # warned once, then decoded without the store
        self.stored = self._locate_stored(store_required)
        to_check = [index for index in range(len(self.paths)) if index not in self.stored]
        problems = self._map(check_image_file, [self.paths[index] for index in to_check])
        self.failures = {index: problem for index, problem in zip(to_check, problems)
                         if problem}
        if self.failures and on_error == "raise":
            raise ImageDecodeError(listing(
                f"{len(self.failures)} of {len(self.paths)} image file(s) cannot be used "
                "(on_error='skip' leaves them out)", self.failures.values()))
        if len(self.failures) == len(self.paths):
            raise ImageDecodeError(listing("None of the image files can be used",
                                            self.failures.values()))
        if image_store is not None and self._shelf is not None:  # a user's: its disk takes
            to_store = self._to_store()  # them all
            check_store_room(self._shelf.store, image_size, len(to_store),
                             size_name or "image_size", advice=", give no image_store",
                             resizable=size_name is not None,
                             key_bytes=sum(map(len, to_store)))
        self.warn_failures("on checking the files")

    def __len__(self):
        return len(self.paths)

    def _map(self, function, items):
        # One task per thread, not per item: handing a small image to a
        # thread costs as much as decoding it.
        n_chunks = min(self.workers, len(items))
        if n_chunks <= 1:
            return [function(item) for item in items]
        chunks = [items[start::n_chunks] for start in range(n_chunks)]
        with ThreadPoolExecutor(max_workers=n_chunks) as pool:
            done = list(pool.map(lambda chunk: [function(item) for item in chunk], chunks))
        outcomes = [None] * len(items)
        for start, chunk_outcomes in enumerate(done):
            outcomes[start::n_chunks] = chunk_outcomes
        return outcomes

    def load(self, indices):
        """Decode images ``indices``; return the batch and which decoded.

        Images that cannot be decoded are zeros, marked False in the mask.
        """
        check_image_size(self.image_size, len(indices))
        batch = np.zeros((len(indices), self.image_size, self.image_size, 3), dtype=np.uint8)
        good = np.array([int(index) not in self.failures for index in indices], dtype=bool)
        to_decode, from_store = [], []
        for position in np.flatnonzero(good):
            index = int(indices[position])
            cached = self._cache.get(index)
            if cached is None:  # or written to the store in the background, not yet done
                cached = self._pending.get(index)
            if cached is not None:
                batch[position] = cached
            elif index in self.stored:
                from_store.append((position, self.stored[index]))
            else:
                to_decode.append(position)
        if from_store:  # what cannot be read back intact is decoded again
            to_decode += self._read_stored(batch, from_store)
        outcomes = self._map(self._decode_or_error, [self.paths[indices[p]] for p in to_decode])
        decoded = []
        for position, outcome in zip(to_decode, outcomes):
            index = int(indices[position])
            if isinstance(outcome, ImageDecodeError):
                if self.on_error == "raise":
                    raise outcome
                self.failures[index] = str(outcome)
                good[position] = False
            else:
                batch[position] = outcome
                decoded.append(position)
                if len(self._cache) < self._cache_room:
                    self._cache[index] = outcome
        if decoded and self._shelf is not None:
            self._store([int(indices[p]) for p in decoded], batch[decoded])
        return batch, good

    def _read_stored(self, batch, from_store):
        """Read rows of the store into ``batch`` in the decoding threads (a part each)."""
        n_parts = min(self.workers, len(from_store) // 8)
        if n_parts <= 1:
            return self._shelf.read_into(batch, from_store)
        parts = [from_store[start::n_parts] for start in range(n_parts)]
        with ThreadPoolExecutor(max_workers=n_parts) as pool:
            failed = pool.map(lambda part: self._shelf.read_into(batch, part), parts)
            return [position for part in failed for position in part]

    def _locate_stored(self, required=False):
        """Where the store holds each image at its file's current version: ``{index: entry}``.

        A store whose index cannot be read is a warning: the images are decoded
        (an error when the store is ``required``).
        """
        if self._shelf is None:
            return {}
        self._keys = [source_key(path) for path in self.paths]
        self._versions = self._map(file_version, self.paths)
        try:
            return self._shelf.locate(self._keys, self._versions)
        except _StoreLost:  # changed hands (found first from a new thread): warned once,
            self._shelf = None  # and the caller's own check says so, as on any thread
            return {}
        except (ImageStoreError, OSError) as error:
            if required and isinstance(error, ImageStoreError):
                raise
            if required:
                raise ImageStoreError(f"image store {self._shelf.store.path} cannot be read "
                                      f"({error}).") from None
            self._give_up_store(f"cannot be read ({error})", error)
            self._shelf = None
            return {}

    def _to_store(self):
        """The files the store will be given (each once; none when it is read-only)."""
        return set() if self._shelf.store.read_only else {
            key for index, (key, version) in enumerate(zip(self._keys, self._versions))
            if version is not None and not (index in self.stored or index in self.failures)}

    def _store(self, decoded, pixels):
        """Add freshly decoded images to the store (those whose version is known).

        A store on disk writes them in its thread (:mod:`._writer`) while the batch goes on
        (served from memory until then); one that cannot be written warns once, then is not.
        """
        positions = [p for p, index in enumerate(decoded) if self._versions[index] is not None]
        if self._store_failed or not positions:
            return
        kept, rows = [decoded[p] for p in positions], pixels[positions]  # a copy: its own
        if not isinstance(self._shelf, Shelf):  # in memory: nothing to wait for
            self._write(self._shelf, kept, rows)
            return
        self._pending.update(zip(kept, rows))
        shelf = self._shelf
        try:
            writer_of(shelf.store).submit(lambda: self._write(shelf, kept, rows), rows.nbytes)
        except BaseException:  # Ctrl-C in the wait for room: not queued, not pending
            for index in kept:
                self._pending.pop(index, None)
            raise

    def _write(self, shelf, indices, rows):
        try:
            if not self._store_failed:  # a write queued before an earlier one failed: dropped
                added = shelf.add([self._keys[i] for i in indices],
                                  [self._versions[i] for i in indices], rows)
                self.stored.update((indices[row], entry) for row, entry in added.items())
        except Exception as error:  # in the writer's thread too: a warning, never a crash
            self._give_up_store(f"cannot be written ({error})", error)
        finally:
            for index in indices:
                self._pending.pop(index, None)

    def flush(self):
        """Wait until the images this source decoded are in its store (or its warning given)."""
        if isinstance(self._shelf, Shelf):
            flush(self._shelf.store)

    def _give_up_store(self, reason, error=None):
        self._store_failed = True
        if isinstance(error, _StoreLost):  # a folder that changed hands: the store warned once
            return
        self._shelf.store._warn_once(f"The image store {self._shelf.store.path} {reason}; the "
                                    "images it does not hold are decoded at every use.")

    def _decode_or_error(self, path):
        try:
            return decode_image(path, self.image_size, self.resample)
        except ImageDecodeError as error:
            return error


def as_image_source(X, image_size, resample="bilinear", on_error="raise", workers=None,
                    cache_mb=0, image_store=None, size_name="image_size"):
    """Wrap the user's ``X``: :class:`ImageFiles` for paths, :class:`ImageArray` otherwise.

    ``image_store`` is an estimator's parameter: None, a folder or an
    :class:`~imageclef_concepts.ImageStore` (arrays do not use it).
    """
    if isinstance(X, (ImageArray, ImageFiles)):
        return X
    X = image_column(X)
    if is_path_sequence(X):
        return ImageFiles(X, image_size, resample, on_error, workers, cache_mb,
                          as_image_store(image_store), size_name)
    return ImageArray(X, image_size, resample)
