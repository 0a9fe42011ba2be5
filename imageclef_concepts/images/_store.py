"""ImageStore: images decoded and resized once, kept on disk for every later use.

Decoding a radiology JPEG and resizing it costs more than a training step on
it at small sizes, and every epoch, fold, grid-search candidate and ensemble
member used to decode the same files again. A store is a folder that keeps
each image as the networks see it (``image_size`` square, RGB uint8, resized
with the chosen Pillow filter), decoded the first time any process asks for
it and read back from disk ever after:

* ``imageclef_concepts-image-store.json`` marks the folder as a store (the
  library writes only into a new or empty folder, or one it marked, and
  never deletes anything);
* ``index.sqlite`` maps each file (its absolute path or URL, and a version
  made of its size and modification times) and each shelf (image size and
  filter) to a row of a chunk file, with the row's check. SQLite serialises
  the writers of concurrent processes (joblib's loky, Dask or Ray workers on
  one machine) and lets readers go on meanwhile;
* ``<size>px-<filter>/<random>.npy``: the shelves' chunks of prepared images
  (:mod:`._image_shelf`).

Rows are read with positioned reads straight into the batch being
assembled, so memory stays that of one batch whatever the number of images
(pages of mapped files would count towards the process's resident memory).
A store that cannot be written (a full disk, a read-only folder) is read as
it is, and what it lacks is decoded at every use. A store writes only into
the folder it opened: before each write (a new index connection, a new
shelf folder, a chunk) it checks that the folder at its path is still that
one (same device and inode) and still holds its manifest. A folder deleted
or replaced meanwhile ("delete the folder to start afresh" while a process
still holds the store) is never written nor re-created: the store warns
once and the images are decoded without it.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
import warnings
from typing import TYPE_CHECKING

from ._decoding import RESAMPLING
from ._shelf import Shelf
from ._store_folder import (
    INDEX,
    SHELF_NAME,
    ImageStoreError,
    claim_folder,
    ownership_lost,
)

if TYPE_CHECKING:  # names for annotations only
    from .._typing import PathLike

_SCHEMA = """CREATE TABLE IF NOT EXISTS images (
    shelf TEXT NOT NULL, source BLOB NOT NULL, version TEXT NOT NULL,
    chunk TEXT NOT NULL, row INTEGER NOT NULL, crc INTEGER NOT NULL,
    PRIMARY KEY (shelf, source))"""
_QUERY_SIZE = 500  # sources per SELECT ... IN (...): far below SQLite's variable limit
# Seconds a writer waits for another's transaction (they last milliseconds);
# past it the image is decoded without the store rather than blocking training.
_BUSY_TIMEOUT = 30


class ImageStoreWarning(UserWarning):
    """An image store that cannot be written: images are decoded without it.

    Examples
    --------
    >>> from imageclef_concepts import ImageStoreWarning
    >>> issubclass(ImageStoreWarning, UserWarning)
    True
    """


class _StoreLost(ImageStoreError):
    """The folder at a live store's path is no longer the one it opened (warned once)."""


class ImageStore:
    """A folder of prepared images, shared by every fit, fold, member and process.

    Give it (or its path) as ``image_store`` to :class:`ConceptCNNClassifier`,
    :class:`ConceptKNNClassifier`, :class:`BackboneEmbedding` or
    :class:`ImageLoader`: images given as paths are then read from the store
    when it holds them at the estimator's size and filter, and decoded and
    added otherwise. Pixels read back are exactly those decoding gives.
    :func:`prepare_images` (``imageclef-concepts prepare``) fills a store
    ahead of training.

    Parameters
    ----------
    path : str or path-like
        A folder: created when absent; else it must be empty or already a
        store (a folder holding anything else is refused, never changed).
        Local disks only: SQLite's locking is unreliable on network file
        systems.

    Attributes
    ----------
    path : str
        The folder, as an absolute path.

    Raises
    ------
    ImageStoreError
        When ``path`` is a file, a folder holding other files, or a store
        written by a newer version of the library.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from imageclef_concepts import ImageStore
    >>> folder = tempfile.mkdtemp()
    >>> paths = [os.path.join(folder, f"{i}.png") for i in range(3)]
    >>> for path in paths:
    ...     Image.fromarray(np.full((50, 40), 7, dtype=np.uint8)).save(path)
    >>> from imageclef_concepts import ImageLoader
    >>> store = ImageStore(os.path.join(folder, "store"))
    >>> ImageLoader(image_size=32, image_store=store).fit_transform(paths).shape
    (3, 32, 32, 3)
    >>> store.summary()
    {'32px-bilinear': {'images': 3, 'bytes': 9216, 'disk_bytes': 9344}}
    """

    def __init__(self, path: PathLike) -> None:
        self.path = os.path.abspath(os.fspath(path))
        claim_folder(self.path, create=True)
        self._start(identity=None)
        self._claimed = True
        self._open_folder()

    def _start(self, identity):
        self._claimed = False
        self._identity = identity  # (device, inode) of the folder it opened
        self._folder, self._folder_pid = None, None  # its descriptor, and whose it is
        self._connections = threading.local()
        self.read_only = False
        self._lost = None  # why the folder is no longer this store's, once found
        self._lost_lock = threading.Lock()
        self._warned = None  # the process that warned it cannot be written or read

    def __getstate__(self):
        # Connections and descriptors belong to one process; the folder's identity
        # goes along, so that a worker never takes another folder put at the path.
        return {"path": self.path, "identity": self._identity}

    def __setstate__(self, state):
        # A store read from a pickle (a joblib/loky worker's) is checked again
        # before its first use, never created, and must still be the folder the
        # parent opened: otherwise it warns once and nothing is written.
        self.path = state["path"]
        self._start(state.get("identity"))

    def __del__(self):
        folder = getattr(self, "_folder", None)
        if folder is not None and self._folder_pid == os.getpid():
            try:
                os.close(folder)
            except OSError:
                pass

    def __repr__(self):
        return f"ImageStore({self.path!r})"

    def __eq__(self, other):
        return isinstance(other, ImageStore) and other.path == self.path

    __hash__ = None  # type: ignore[assignment]  # equal by path, but mutable on disk

    def shelf(self, image_size: int, resample: str = "bilinear") -> Shelf:
        """The store's images of one size and filter.

        Raises
        ------
        ImageStoreError
            When the folder is no longer a store (a store read from a pickle
            is checked again here; one that is no longer the folder its
            pickle named warns once and raises ``_StoreLost``).
        """
        if resample not in RESAMPLING:
            raise ValueError(f"resample must be one of {sorted(RESAMPLING)}; got {resample!r}.")
        self._check_claim()
        return Shelf(self, int(image_size), resample)

    def _open_folder(self):
        """Open the folder's descriptor, which every write goes through, and check it is ours."""
        try:  # a path that is a link to a folder is that folder (its identity is checked)
            folder = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as error:
            self._lose(f"it cannot be opened: {error.strerror or error}")
        status = os.fstat(folder)
        if self._identity is not None and (status.st_dev, status.st_ino) != self._identity:
            os.close(folder)
            self._lose("another folder is at its path now")
        self._identity = status.st_dev, status.st_ino
        self._folder, self._folder_pid = folder, os.getpid()

    def _folder_descriptor(self):
        """The descriptor of the folder the store opened, for writing into it race-free."""
        self._check_claim()
        if self._folder is None or self._folder_pid != os.getpid():
            self._open_folder()
        return self._folder

    def _check_claim(self):
        if self._lost is not None:
            raise _StoreLost(f"{self._lost}.")
        if not self._claimed:
            try:
                claim_folder(self.path, create=False)
            except ImageStoreError as error:
                if self._identity is None:  # not opened by a parent: the user's to fix
                    raise
                self._lose(str(error).rstrip("."))
            self._open_folder()
            self._claimed = True

    def _lose(self, why):
        """Stop writing for good: one :class:`ImageStoreWarning`, then ``_StoreLost``."""
        with self._lost_lock:
            first = self._lost is None
            if first:
                self._lost = (f"the image store {self.path} is no longer the folder it "
                              f"opened ({why}): nothing more is written there")
        if first:
            warnings.warn(f"{self._lost}; the images it does not hold are decoded at "
                          "every use (open the store again to use a new one there).",
                          ImageStoreWarning, stacklevel=4)
        raise _StoreLost(f"{self._lost}.")

    def _check_still_own(self):
        """Raise unless the folder at ``path`` is still the one this store opened.

        Called before every write (a new index connection, a new shelf
        folder, a chunk): the same folder (device and inode) and its manifest
        still there. The first time it is not, one :class:`ImageStoreWarning`
        says so; from then on nothing is written there (the folder is never
        re-created) and images are decoded without the store. The writes
        themselves go through the folder's descriptor (``_folder_descriptor``), so a
        folder swapped in after this check still gets nothing.

        Raises
        ------
        ImageStoreError
            When the folder was deleted, replaced, or lost its manifest.
        """
        self._check_claim()
        why = ownership_lost(self.path, self._identity)
        if why is not None:
            self._lose(why)

    def _warn_once(self, message):
        """One :class:`ImageStoreWarning` per store and process (a read-only store, a full disk)."""
        with self._lost_lock:
            first = self._warned != os.getpid()
            self._warned = os.getpid()
        if first:
            warnings.warn(message, ImageStoreWarning, stacklevel=6)

    def summary(self) -> dict[str, dict[str, int]]:
        """What the store holds, by shelf (``"<size>px-<filter>"``).

        ``images`` and ``bytes`` of their pixels, and ``disk_bytes``: the
        size of the shelf's chunk files, which also hold earlier versions of
        changed files and the images of interrupted or concurrent writes.
        """
        self._check_still_own()  # not the entries of a folder deleted or replaced since
        rows = self._query("SELECT shelf, COUNT(*) FROM images GROUP BY shelf ORDER BY shelf")
        return {shelf: {"images": count, "bytes": count * _row_bytes(shelf),
                        "disk_bytes": _folder_bytes(os.path.join(self.path, shelf))}
                for shelf, count in rows
                if isinstance(shelf, str) and SHELF_NAME.match(shelf)}

    # --------------------------------------------------------------- the index

    def _connection(self):
        """This thread's connection to the index (SQLite connections are per thread and process).

        A store that cannot be written (read-only files or folder) is opened
        read-only; :meth:`_record` then fails, and images are decoded.
        """
        local = self._connections
        if getattr(local, "pid", None) != os.getpid():
            self._check_still_own()  # never open (nor create) an index in another folder
            index = _index_path(self.path, self._folder_descriptor())
            try:
                connection = _writable_index(index)
            except sqlite3.Error as error:
                if not os.path.isfile(index):
                    raise ImageStoreError(f"the index of the image store {self.path} cannot "
                                          f"be created ({index}: {error}).") from None
                connection = _read_only_index(index)
                self.read_only = True
            local.connection, local.pid = connection, os.getpid()
        return local.connection

    def _query(self, sql, parameters=()):
        try:
            return self._connection().execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            raise ImageStoreError(f"the index of the image store {self.path} cannot be read "
                                  f"({type(error).__name__}: {error}); name another folder "
                                  "for the store.") from None

    def _entries(self, shelf, keys):
        """``{key: (version, chunk, row, crc)}`` for the files (``keys``) the shelf holds."""
        found = {}
        for start in range(0, len(keys), _QUERY_SIZE):
            part = keys[start:start + _QUERY_SIZE]
            found.update((key, rest) for key, *rest in self._query(
                "SELECT source, version, chunk, row, crc FROM images WHERE shelf = ? AND "
                f"source IN ({', '.join('?' * len(part))})", (shelf, *part)))
        return found

    def _record(self, shelf, records):
        """Record ``(key, version, chunk, row, crc)`` rows in one transaction.

        Raises
        ------
        OSError
            When the index cannot be written (read-only, locked too long).
        """
        if self.read_only:
            raise OSError(f"the index {os.path.join(self.path, INDEX)} is read-only")
        self._check_still_own()
        connection = self._connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(
                    "INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?)",
                    [(shelf, *record) for record in records])
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            raise OSError(f"the index {os.path.join(self.path, INDEX)} cannot be written "
                          f"({error})") from None


def _index_path(path, folder):
    """The index's path through the folder's descriptor where the system has one (Linux).

    SQLite resolves that link to the folder's path when it opens the index
    (``PRAGMA database_list`` shows ``<path>/index.sqlite``), so a folder swapped
    in between :meth:`ImageStore._check_still_own` and the opening would still
    be opened: a window of one system call, only when a thread opens its first
    connection; a connection open already writes to the index it opened."""
    through = f"/proc/self/fd/{folder}"
    if os.path.isdir(through):
        return os.path.join(through, INDEX)
    return os.path.join(path, INDEX)


def _writable_index(index):
    """A connection that may write the index, waiting up to ``_BUSY_TIMEOUT`` for other writers.

    Processes opening a new store at once race to create the index and set
    its journal mode; SQLite answers "database is locked" to the losers
    without calling its busy handler, so that answer is waited out here
    rather than taken for a read-only store.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT
    while True:
        connection = sqlite3.connect(index, timeout=_BUSY_TIMEOUT, isolation_level=None)
        try:
            # WAL: readers go on while another process writes; NORMAL: no fsync
            # per commit (a crash may lose the last entries, never damage the index).
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(_SCHEMA)
            return connection
        except sqlite3.OperationalError as error:
            connection.close()
            if not _is_busy(error) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.05))  # apart, so the racers do not meet again


def _is_busy(error):
    """Whether SQLite refused because another connection holds a lock (worth waiting for)."""
    name = getattr(error, "sqlite_errorname", "")  # Python 3.11+
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "is locked" in str(error)


def _read_only_index(index):
    """A read-only connection; ``immutable`` (no locks nor journal files, which a read-only
    folder cannot hold) when even that fails: nobody writes a store no one can write."""
    try:
        connection = sqlite3.connect(f"file:{index}?mode=ro", uri=True, isolation_level=None)
        connection.execute("SELECT COUNT(*) FROM images").fetchall()
        return connection
    except sqlite3.Error:
        return sqlite3.connect(f"file:{index}?mode=ro&immutable=1", uri=True,
                               isolation_level=None)


def as_image_store(image_store):
    """The :class:`ImageStore` of an estimator's ``image_store`` parameter (None stays None)."""
    if image_store is None or isinstance(image_store, ImageStore):
        return image_store
    return ImageStore(image_store)


def _folder_bytes(folder):
    try:
        with os.scandir(folder) as entries:
            return sum(entry.stat().st_size for entry in entries if entry.is_file())
    except OSError:
        return 0


def _row_bytes(shelf):
    return int(shelf.split("px-")[0]) ** 2 * 3
