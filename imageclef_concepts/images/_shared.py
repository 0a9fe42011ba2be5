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
  temporary disk has not twice that room, or the folder cannot be made,
  nothing is shared (decoded at every use, as before). Its removal takes only
  the store's own files, through the descriptor of the folder it made (never
  a link or another folder put at its path); a file of another name put
  there is left with its folder, and a folder a user names as their own
  ``image_store`` meanwhile is theirs, left in place.

A member's own ``image_store`` wins: it is read and written as ever, and the
shared shelf is not used for it. Sharing is per process: members fitted in
other processes (``n_jobs`` with joblib's default backend, or a forked
child, which starts with no run) decode for themselves; name an
``image_store`` to share across processes.
"""

import functools
import os
import re
import shutil
import stat
import tempfile
import threading
import warnings

from ..files._atomic import folder_identity
from ..files._sizes import check_disk_space, memory_limit, setting
from ._decoding import RESAMPLING
from ._inputs import image_column, is_path_sequence
from ._shelf import _CHUNK_NAME
from ._store import (
    ImageStore,
    ImageStoreWarning,
    check_room_for_files,
    files_to_store,
    key_length,
    stored_bytes,
)
from ._store_folder import IMAGE_STORE, ImageStoreError
from ._writer import flush

_MAX_MEMORY = 2 * 2**30
_TEMPORARY_PREFIX = "imageclef_concepts-decoded-"
# A file being written atomically (files/_atomic.py), left by an interrupted write.
_BEING_WRITTEN = re.compile(r"^\.saving-[^/]*$")

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
        for row, key in enumerate(keys):
            if key not in self._images and not self.run.hold(pixels[row].nbytes):
                break  # more images than the first sources announced: the rest are not kept
            added[row] = pixels[row]
        if len(added) < len(keys):  # views of rows would keep the whole batch held
            added = {row: image.copy() for row, image in added.items()}
        for row, image in added.items():
            self._images[keys[row]] = (versions[row], image)
        return added


class _SharedRun:
    """The shelves of one outermost meta-estimator call; a temporary store made on demand."""

    def __init__(self):
        self.depth = 0
        self.shelves = {}  # (image_size, resample) -> shelf
        self.memory_bytes = 0  # reserved for the memory shelves, from their first sources
        self.held_bytes = 0  # held by them: never beyond the budget
        self.folder = None  # the temporary store's folder, once made (None when disowned)
        self.identity = None
        self.store = None
        self.no_store = False  # the temporary folder could not be made: not tried again
        self.closed = False  # ended: nothing more is shared, no folder made

    def shelf(self, n_images, image_size, resample):
        """The shared shelf for ``n_images`` at this size and filter, or None (not shared)."""
        with _lock:
            if self.closed:  # asked by a thread outside the call as it ended
                return None
            key = (int(image_size), resample)
            if key in self.shelves:
                return self.shelves[key]
            needed = n_images * int(image_size) ** 2 * 3
            if self.memory_bytes + needed <= memory_budget():
                self.memory_bytes += needed
                shelf = _MemoryShelf(self, image_size, resample)
            else:
                store = self._temporary_store(needed)
                shelf = None if store is None else store._shelf(image_size, resample)
            self.shelves[key] = shelf
            return shelf

    def hold(self, n_bytes):
        """Whether ``n_bytes`` more may be kept in memory (then counted as kept)."""
        with _lock:
            if self.closed or self.held_bytes + n_bytes > memory_budget():
                return False
            self.held_bytes += n_bytes
            return True

    def _temporary_store(self, needed):
        if self.store is None and not self.no_store:
            # A temporary folder that is missing, full or not writable is no error of
            # the user's: nothing is shared, as when the disk has no room.
            try:
                if shutil.disk_usage(tempfile.gettempdir()).free < 2 * needed:
                    return None
                folder = os.path.abspath(tempfile.mkdtemp(prefix=_TEMPORARY_PREFIX))
            except OSError:
                self.no_store = True
                return None
            self.folder, self.identity = folder, folder_identity(folder)
            try:
                self.store = ImageStore(folder)
            except ImageStoreError:
                self.no_store = True
        return self.store

    def disown(self, path):
        """A user named the temporary store's folder as their own store: it is theirs to keep."""
        with _lock:
            if self.folder is not None and folder_identity(path) == self.identity:
                self.folder = None

    def close(self):
        """Forget the images; remove what the temporary store wrote, if its folder is still ours.

        Only the store's own files (its manifest, index, chunks and files
        being written) are removed, through the descriptor of the folder it
        made; a file of any other name put there is left, and so is the
        folder, with a warning naming it.
        """
        self.shelves.clear()
        if self.store is not None:  # a source still holding its shelf decodes, unwarned
            stop_writing(self.store, f"the temporary image store {self.store.path} was "
                                     "removed at the end of the call that made it")
        if self.folder is not None:
            left = remove_store_folder(self.folder, self.identity)
            if left:
                shown = ", ".join(left[:5]) + (", ..." if len(left) > 5 else "")
                warnings.warn(f"The temporary image store {self.folder} holds {len(left)} "
                              f"file(s) it did not write ({shown}); they are left there, "
                              "with the folder.", ImageStoreWarning, stacklevel=4)


def stop_writing(store, why):
    """Stop ``store`` writing for good (``why``), before the library removes what it made."""
    store._end(why)
    # Writes queued in the background now stop at their first check; one under way ends
    # before its folder is removed (never a file left behind).
    flush(store)


def remove_store_folder(folder, identity, kind=IMAGE_STORE, keep_folder=False):
    """Remove the store's files in ``folder`` and the folder once empty (unless
    ``keep_folder``: a user's folder the store was opened in); return what is left.

    Nothing is removed unless the folder at that path (not a link) is the one
    made (``identity``); only files of a ``kind`` store's names (its manifest,
    index and shelves' chunks) are.
    """
    parent_path, name = os.path.split(folder)
    try:
        parent = os.open(parent_path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return []
    try:
        try:
            descriptor = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                                 dir_fd=parent)
        except OSError:  # gone, or a link or a file put at its path: not ours
            return []
        try:
            status = os.fstat(descriptor)
            if (status.st_dev, status.st_ino) != identity:
                return []
            left = _remove_own_entries(descriptor, lambda entry: entry in kind.own_files,
                                       own_folder=kind.shelf.match)
        finally:
            os.close(descriptor)
        if not left and not keep_folder:
            try:
                if folder_identity(folder) == identity and not os.path.islink(folder):
                    os.rmdir(name, dir_fd=parent)
            except OSError:
                pass
        return left
    finally:
        os.close(parent)


def _remove_own_entries(descriptor, own_file, own_folder=None):
    """Remove the store's files (and shelf folders, emptied) in an open folder; return the rest."""
    left = []
    for entry in sorted(os.listdir(descriptor)):
        try:
            mode = os.stat(entry, dir_fd=descriptor, follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode) and own_folder is not None and own_folder(entry):
                inner = os.open(entry, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                                dir_fd=descriptor)
                try:
                    inner_left = _remove_own_entries(inner, _CHUNK_NAME.match)
                finally:
                    os.close(inner)
                if inner_left:
                    left += [os.path.join(entry, name) for name in inner_left]
                else:
                    os.rmdir(entry, dir_fd=descriptor)
            elif stat.S_ISREG(mode) and (own_file(entry) or _BEING_WRITTEN.match(entry)):
                os.unlink(entry, dir_fd=descriptor)
            else:
                left.append(entry)
        except OSError:
            left.append(entry)
    return left


def shared_shelf(n_images, image_size, resample):
    """The shelf an image source without a store of its own shares, or None outside a run."""
    run = _run
    return None if run is None else run.shelf(n_images, image_size, resample)


def _enter():
    """The run in progress (made when none is), and whether this call is its outermost."""
    global _run
    with _lock:
        if _run is None:
            _run = _SharedRun()
        _run.depth += 1
        return _run, _run.depth == 1


def _leave(run):
    global _run
    with _lock:
        run.depth -= 1
        if run.depth:
            return
        _run = None
        run.closed = True
    run.close()


def disown(path):
    """The folder at ``path`` is a user's store: a run in progress leaves it in place."""
    run = _run
    if run is not None:
        run.disown(path)


def _forget_in_child():
    # A forked child has its own calls: it neither shares the parent's run (whose
    # folder only the parent removes) nor keeps a lock some parent thread held.
    global _run, _lock
    _lock = threading.Lock()
    _run = None


os.register_at_fork(after_in_child=_forget_in_child)


def shares_decoding(method):
    """Decorate a meta-estimator's method: image files are decoded once for all its parts.

    Nested calls (a tuner's folds fitting an ensemble) share the outermost
    call's shelves; the outermost call's end removes what it made.
    """

    @functools.wraps(method)
    def sharing(*args, **kwargs):
        run, outermost = _enter()
        try:
            if outermost and ("X" in kwargs or len(args) > 1):  # (self, X, ...)
                check_stores_room(args[0], kwargs["X"] if "X" in kwargs else args[1],
                                  kwargs.get("validation_data"))
            return method(*args, **kwargs)
        finally:
            _leave(run)

    return sharing


def check_stores_room(estimator, X, validation_data=None):
    """Refuse, before any part fits, the images of ``X`` (paths), and of the
    ``validation_data`` a fit is given, that the users' stores of all ``estimator``'s
    parts (itself too) cannot take together.

    Each part checks its own store when it fits, but only for the images it
    is given then: the folds of a tuner, or members at other sizes, would
    fill the disk one after another, and the last be refused after the
    others trained. A part names what it fills by ``_image_shelves()``:
    ``[(image_store, name, size, resample)]``, ``name`` the parameter that
    sets ``size``. Parameters a part would refuse are left to its ``fit``.
    A store is known by its folder (device and inode), whatever path names it.
    """
    paths = _image_paths(X)
    if not paths or not hasattr(estimator, "get_params"):
        return
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
        paths += _image_paths(validation_data[0])  # (X_val, y_val): stored alike
    parts = [estimator, *(value for value in estimator.get_params(deep=True).values()
                          if hasattr(value, "_image_shelves"))]
    by_store = {}  # folder -> (store, {(size, resample): name})
    for part in parts:
        for store, name, size, resample in _shelves_of(part):
            folder = store._identity or store.path  # one folder under two paths is one store
            by_store.setdefault(folder, (store, {}))[1][size, resample] = name
    by_disk = {}  # stores on one disk share its free space
    for store, shelves in by_store.values():
        disk = store._identity[0] if store._identity else store.path  # its device
        by_disk.setdefault(disk, []).append((store, shelves))
    for stores in by_disk.values():
        named = {shelf: name for _, shelves in stores for shelf, name in shelves.items()}
        name = named[max(named)]  # the largest size's parameter is the one named
        if len(stores) == 1:
            check_room_for_files(*stores[0], paths, name, advice=", give no image_store")
            continue
        n_bytes, n_files, key = 0, 0, key_length(paths)
        for store, shelves in stores:
            counts = files_to_store(store, sorted(shelves), paths)
            n_bytes += stored_bytes(store, sorted(shelves), counts, key)
            n_files = max(n_files, *counts)
        check_disk_space(n_bytes, stores[0][0].path, setting(name, max(named)[0]),
                         f"storing {n_files} image(s) in {len(stores)} image stores on one "
                         "disk", "free space there, give no image_store, or give the members "
                         "one store")


def _image_paths(X):
    """The paths of ``X`` (a sequence of them, or a table's one column); [] for anything else."""
    try:
        X = image_column(X)
        return [os.fspath(path) for path in X] if is_path_sequence(X) else []
    except ValueError:  # not images: the parts say so
        return []


def _shelves_of(part):
    """What ``part`` fills (where its parameters name it validly), each store opened."""
    try:
        named = part._image_shelves() if hasattr(part, "_image_shelves") else []
    except (TypeError, ValueError, LookupError, AttributeError):  # refused by its fit
        return []
    from ..files._numbers import WholeNumber  # scikit-learn's: not before a command runs

    shelves = []
    for store, name, size, resample in named:
        if store is None or not WholeNumber(1).is_satisfied_by(size) or \
                resample not in RESAMPLING:
            continue
        try:
            store = store if isinstance(store, ImageStore) else ImageStore(store)
        except (ImageStoreError, TypeError, ValueError, OSError):  # refused by its fit
            continue
        shelves.append((store, name, int(size), resample))
    return shelves


def temporary_folders():
    """Temporary stores of runs now in progress in this process (for tests)."""
    run = _run
    return [] if run is None or run.folder is None else [run.folder]


__all__ = ["memory_budget", "shared_shelf", "shares_decoding"]
