"""Decoded pixels shared by a meta-estimator's members and folds, without a store named.

An ensemble of CNNs given paths, a threshold tuner's folds, a specialist
and its base: each used to decode every file again. While a meta-estimator
fits or predicts (:func:`shares_decoding` on its methods), every image
source made from paths without an ``image_store`` of its own
(:class:`~._sources.ImageFiles`) keeps what it decodes on a shared shelf, and
reads from it what another member or fold already decoded at the same size
and filter, for the same file version:

* in memory while the decoded images of the run fit in
  :func:`memory_budget` (a quarter of the machine's memory, at most 2 GiB:
  300 images at 128 px take 15 MB, 10,000 at 224 px 1.5 GB);
* beyond it, in an :class:`~._store.ImageStore` in a new temporary folder
  (``tempfile.mkdtemp``) that the run owns and removes when its outermost
  meta-estimator call ends, on success, error or ``KeyboardInterrupt``
  (100,000 images at 384 px are 44 GB: on disk, read back by rows). When the
  temporary disk has not twice that room, nothing is shared (decoded at
  every use, as before).

A member's own ``image_store`` wins: it is read and written as ever, and the
shared shelf is not used for it. Sharing is per process: members fitted in
other processes (``n_jobs`` with joblib's default backend) decode for
themselves; name an ``image_store`` to share across processes.
"""

import functools
import os
import shutil
import tempfile
import threading

from ..files._sizes import memory_limit
from ._store import ImageStore
from ._store_folder import folder_identity

_MAX_MEMORY = 2 * 2**30
_TEMPORARY_PREFIX = "imageclef_concepts-decoded-"

_lock = threading.Lock()
_run = None  # the shared run of the outermost meta-estimator call in progress, if any


def memory_budget():
    """Bytes of decoded images a run keeps in memory before it uses a temporary store."""
    return min(_MAX_MEMORY, memory_limit() // 4)


class _MemoryShelf:
    """Decoded images of one size and filter, in memory: the interface of a store's shelf."""

    def __init__(self, run, image_size, resample):
        self.run = run
        self.store = self  # ImageFiles names ``shelf.store.path`` in its warnings
        self.path = "(images shared in memory)"
        self.read_only = False
        self._images = {}  # key -> (version, pixels)

    def locate(self, keys, versions):
        held = {}
        for position, (key, version) in enumerate(zip(keys, versions)):
            found = self._images.get(key)
            if version is not None and found is not None and found[0] == version:
                held[position] = found[1]
        return held

    def read_into(self, batch, entries):
        for position, pixels in entries:
            batch[position] = pixels
        return []  # nothing in memory fails to read back

    def add(self, keys, versions, pixels):
        """Keep the images while the run's budget allows; return ``{row: entry}`` of those kept."""
        added = {}
        for row, (key, version) in enumerate(zip(keys, versions)):
            if key not in self._images and not self.run.hold(pixels[row].nbytes):
                break  # more images than the first sources announced: the rest are not kept
            self._images[key] = (version, pixels[row])
            added[row] = pixels[row]
        return added


class _SharedRun:
    """The shelves of one outermost meta-estimator call; a temporary store made on demand."""

    def __init__(self):
        self.depth = 0
        self.shelves = {}  # (image_size, resample) -> shelf
        self.memory_bytes = 0  # reserved for the memory shelves, from their first sources
        self.held_bytes = 0  # held by them: never beyond the budget
        self.folder = None  # the temporary store's folder, once made
        self.identity = None
        self.store = None

    def shelf(self, n_images, image_size, resample):
        """The shared shelf for ``n_images`` at this size and filter, or None (not shared)."""
        with _lock:
            key = (int(image_size), resample)
            if key in self.shelves:
                return self.shelves[key]
            needed = n_images * int(image_size) ** 2 * 3
            if self.memory_bytes + needed <= memory_budget():
                self.memory_bytes += needed
                shelf = _MemoryShelf(self, image_size, resample)
            else:
                store = self._temporary_store(needed)
                shelf = None if store is None else store.shelf(image_size, resample)
            self.shelves[key] = shelf
            return shelf

    def hold(self, n_bytes):
        """Whether ``n_bytes`` more may be kept in memory (then counted as kept)."""
        with _lock:
            if self.held_bytes + n_bytes > memory_budget():
                return False
            self.held_bytes += n_bytes
            return True

    def _temporary_store(self, needed):
        if self.store is None:
            if shutil.disk_usage(tempfile.gettempdir()).free < 2 * needed:
                return None
            self.folder = os.path.abspath(tempfile.mkdtemp(prefix=_TEMPORARY_PREFIX))
            self.identity = folder_identity(self.folder)
            self.store = ImageStore(self.folder)
        return self.store

    def close(self):
        """Forget the images; remove the temporary store's folder if it is still the one made."""
        self.shelves.clear()
        if self.folder is not None and folder_identity(self.folder) == self.identity:
            shutil.rmtree(self.folder, ignore_errors=True)


def shared_shelf(n_images, image_size, resample):
    """The shelf an image source without a store of its own shares, or None outside a run."""
    run = _run
    return None if run is None else run.shelf(n_images, image_size, resample)


def _enter():
    global _run
    with _lock:
        if _run is None:
            _run = _SharedRun()
        _run.depth += 1
        return _run


def _leave(run):
    global _run
    with _lock:
        run.depth -= 1
        if run.depth:
            return
        _run = None
    run.close()


def shares_decoding(method):
    """Decorate a meta-estimator's method: image files are decoded once for all its parts.

    Nested calls (a tuner's folds fitting an ensemble) share the outermost
    call's shelves; the outermost call's end removes what it made.
    """

    @functools.wraps(method)
    def sharing(*args, **kwargs):
        run = _enter()
        try:
            return method(*args, **kwargs)
        finally:
            _leave(run)

    return sharing


def temporary_folders():
    """Temporary stores of runs now in progress in this process (for tests)."""
    run = _run
    return [] if run is None or run.folder is None else [run.folder]


__all__ = ["memory_budget", "shared_shelf", "shares_decoding"]
