"""ImageStore: images decoded and resized once, kept on disk for every later use.

Decoding a radiology JPEG and resizing it costs more than a training step on
it at small sizes, and every epoch, fold, grid-search candidate and ensemble
member used to decode the same files again. A store is a folder that keeps
each image as the networks see it (``image_size`` square, RGB uint8, resized
with the chosen Pillow filter), decoded the first time any process asks for
it and read back from disk ever after:

* ``imageclef_concepts-image-store.json`` marks the folder as a store (the
  library writes only into a new, empty or marked folder, and never deletes);
* ``index.sqlite`` maps each file (its absolute path or URL, and a version
  made of its size and modification times) and each shelf (image size and
  filter) to a row of a chunk file, with the row's CRC-32. SQLite serialises
  the writers of concurrent processes (joblib's loky, Dask or Ray workers on
  one machine) and lets readers go on meanwhile;
* ``<size>px-<filter>/<random>.npy``: chunks of prepared images, plain
  ``.npy`` arrays of shape ``(n, size, size, 3)`` (``numpy.load(...,
  mmap_mode="r")`` maps them), each written atomically before the index
  names it, so that no reader ever sees half a chunk.

A file that changed (another size or modification time) is decoded again and
its entry replaced; a row whose CRC does not match (a damaged disk, a file
edited by hand) is decoded again, never served. Rows are read with positioned
reads straight into the batch being assembled, so memory stays that of one
batch whatever the number of images (pages of mapped files would count
towards the process's resident memory).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import uuid
import zlib
from typing import TYPE_CHECKING

import numpy as np

from ._atomic_files import file_kind, open_regular_file, write_atomically
from ._image_decoding import RESAMPLING, is_url

if TYPE_CHECKING:  # names for annotations only
    from ._typing import PathLike

MANIFEST = "imageclef_concepts-image-store.json"
INDEX = "index.sqlite"
_FORMAT = "imageclef_concepts.ImageStore"
_FORMAT_VERSION = 1
# What the store may find in its own folder besides shelves: SQLite's journal
# files, and the temporary file of a manifest being written by another process.
_OWN_FILES = re.compile(r"^(index\.sqlite(-wal|-shm|-journal)?|\.saving-.*\.json|"
                        + re.escape(MANIFEST) + r")$")
_SHELF_NAME = re.compile(r"^[1-9][0-9]*px-(" + "|".join(RESAMPLING) + r")$")
_CHUNK_NAME = re.compile(r"^[0-9a-f]{32}\.npy$")
_SCHEMA = """CREATE TABLE IF NOT EXISTS images (
    shelf TEXT NOT NULL, source TEXT NOT NULL, version TEXT NOT NULL,
    chunk TEXT NOT NULL, row INTEGER NOT NULL, crc INTEGER NOT NULL,
    PRIMARY KEY (shelf, source))"""
_QUERY_SIZE = 500  # sources per SELECT ... IN (...): far below SQLite's variable limit


class ImageStoreError(ValueError):
    """A folder that cannot be used as an image store, with the reason.

    Examples
    --------
    >>> from imageclef_concepts import ImageStoreError
    >>> issubclass(ImageStoreError, ValueError)
    True
    """


class ImageStoreWarning(UserWarning):
    """An image store that cannot be written: images are decoded without it.

    Examples
    --------
    >>> from imageclef_concepts import ImageStoreWarning
    >>> issubclass(ImageStoreWarning, UserWarning)
    True
    """


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
        _claim_folder(self.path)
        self._connections = threading.local()

    def __getstate__(self):
        return {"path": self.path}  # connections belong to one process and thread

    def __setstate__(self, state):
        self.path = state["path"]
        self._connections = threading.local()

    def __repr__(self):
        return f"ImageStore({self.path!r})"

    def __eq__(self, other):
        return isinstance(other, ImageStore) and other.path == self.path

    __hash__ = None  # type: ignore[assignment]  # equal by path, but mutable on disk

    def shelf(self, image_size: int, resample: str = "bilinear") -> Shelf:
        """The store's images of one size and filter."""
        if resample not in RESAMPLING:
            raise ValueError(f"resample must be one of {sorted(RESAMPLING)}; got {resample!r}.")
        return Shelf(self, int(image_size), resample)

    def summary(self) -> dict[str, dict[str, int]]:
        """What the store holds, by shelf (``"<size>px-<filter>"``).

        ``images`` and ``bytes`` of their pixels, and ``disk_bytes``: the
        size of the shelf's chunk files, which also hold earlier versions of
        changed files and the images of interrupted or concurrent writes.
        """
        rows = self._connection().execute(
            "SELECT shelf, COUNT(*) FROM images GROUP BY shelf ORDER BY shelf").fetchall()
        return {shelf: {"images": count, "bytes": count * _row_bytes(shelf),
                        "disk_bytes": _folder_bytes(os.path.join(self.path, shelf))}
                for shelf, count in rows}

    # --------------------------------------------------------------- the index

    def _connection(self):
        """This thread's connection to the index (SQLite connections are per thread and process)."""
        local = self._connections
        if getattr(local, "pid", None) != os.getpid():
            index = os.path.join(self.path, INDEX)
            try:
                connection = sqlite3.connect(index, timeout=120, isolation_level=None)
                # WAL: readers go on while another process writes; NORMAL: no fsync per
                # commit (a crash may lose the last entries, never damage the index).
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.execute(_SCHEMA)
            except sqlite3.Error as error:
                raise ImageStoreError(f"the index of the image store {self.path} cannot be "
                                      f"used ({index}: {error}).") from None
            local.connection, local.pid = connection, os.getpid()
        return local.connection

    def _entries(self, shelf, sources):
        """``{source: (version, chunk, row, crc)}`` for the ``sources`` the shelf holds."""
        found = {}
        connection = self._connection()
        for start in range(0, len(sources), _QUERY_SIZE):
            part = sources[start:start + _QUERY_SIZE]
            found.update((source, rest) for source, *rest in connection.execute(
                "SELECT source, version, chunk, row, crc FROM images WHERE shelf = ? AND "
                f"source IN ({', '.join('?' * len(part))})", (shelf, *part)))
        return found

    def _record(self, shelf, entries):
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?)",
                                   [(shelf, *entry) for entry in entries])
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")


class Shelf:
    """The images of one store at one size and filter: located, read and added in batches.

    Parameters
    ----------
    store : ImageStore
    image_size : int
    resample : str
    """

    def __init__(self, store, image_size, resample):
        self.store = store
        self.image_size = image_size
        self.name = f"{image_size}px-{resample}"
        self.folder = os.path.join(store.path, self.name)
        self.row_bytes = image_size * image_size * 3
        self._offsets = {}  # chunk -> where its rows begin (its header checked)

    def locate(self, sources, versions):
        """Where the shelf holds each source at its current version: ``{position: entry}``.

        ``versions`` come from :func:`file_version`; a source whose version
        is None (an unreadable file) or differs from the stored one is not held.
        """
        entries = self.store._entries(self.name, list(sources))
        located = {}
        for position, (source, version) in enumerate(zip(sources, versions)):
            entry = entries.get(source)
            if version is not None and entry is not None and entry[0] == version:
                located[position] = tuple(entry[1:])
        return located

    def read_into(self, batch, entries):
        """Read each ``(position, (chunk, row, crc))`` into ``batch[position]``.

        Returns the positions that could not be read back intact (a chunk
        missing or damaged, a CRC that does not match): their images must
        be decoded again.
        """
        failed = []
        by_chunk = {}
        for position, (chunk, row, crc) in entries:
            by_chunk.setdefault(chunk, []).append((position, row, crc))
        for chunk, rows in by_chunk.items():
            try:
                with open_regular_file(os.path.join(self.folder, chunk), "image chunk") as f:
                    start = self._rows_start(chunk, f)
                    for position, row, crc in rows:
                        target = memoryview(batch[position]).cast("B")
                        f.seek(start + row * self.row_bytes)
                        if f.readinto(target) != self.row_bytes or zlib.crc32(target) != crc:
                            failed.append(position)
            except (OSError, ValueError):  # missing, not ours, or a header not of this shelf
                failed += [position for position, _, _ in rows]
        return failed

    def add(self, sources, versions, pixels):
        """Write ``pixels`` (n, size, size, 3) as one chunk and record where each source is.

        Returns ``{position: entry}`` as :meth:`locate` does.
        """
        pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
        os.makedirs(self.folder, exist_ok=True)
        chunk = f"{uuid.uuid4().hex}.npy"
        write_atomically(os.path.join(self.folder, chunk),
                         lambda f: np.lib.format.write_array(f, pixels, allow_pickle=False))
        entries = {position: (chunk, position, zlib.crc32(pixels[position]))
                   for position in range(len(pixels))}
        self.store._record(self.name, [(source, version, *entries[position])
                                       for position, (source, version)
                                       in enumerate(zip(sources, versions))])
        return entries

    def _rows_start(self, chunk, f):
        """The offset of a chunk's first row, after checking that its header is this shelf's."""
        if chunk not in self._offsets:
            if not _CHUNK_NAME.match(chunk):
                raise ValueError(f"{chunk!r} is not the name of a chunk")
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran_order, dtype = read_header(f)
            size = self.image_size
            if dtype != np.uint8 or fortran_order or shape[1:] != (size, size, 3):
                raise ValueError(f"chunk {chunk} holds {dtype} images of shape {shape}")
            self._offsets[chunk] = f.tell()
        return self._offsets[chunk]


def as_image_store(image_store):
    """The :class:`ImageStore` of an estimator's ``image_store`` parameter (None stays None)."""
    if image_store is None or isinstance(image_store, ImageStore):
        return image_store
    return ImageStore(image_store)


def source_key(path):
    """How the store names a file: its absolute path, or the URL as given."""
    path = os.fspath(path)
    return path if is_url(path) else os.path.abspath(path)


def file_version(path):
    """What changes when a file changes: its size and modification times; None when unreadable.

    For a local file, the size, the modification time and the status-change
    time (which no program can set back) in nanoseconds; for an ``fsspec``
    URL, what its file system reports (size, modification time, ETag...).
    """
    path = os.fspath(path)
    if is_url(path):
        return _url_version(path)
    try:
        status = os.stat(path)
    except OSError:
        return None
    return f"{status.st_size}:{status.st_mtime_ns}:{status.st_ctime_ns}"


def _url_version(url):
    try:
        import fsspec

        file_system, inner = fsspec.core.url_to_fs(url)
        info = file_system.info(inner)
    except Exception:  # no fsspec, no such object: decoding reports it
        return None
    keys = ("size", "mtime", "LastModified", "last_modified", "updated", "created", "ETag",
            "etag", "md5Hash")
    return "|".join(f"{key}={info[key]}" for key in keys if info.get(key) is not None)


def _folder_bytes(folder):
    try:
        with os.scandir(folder) as entries:
            return sum(entry.stat().st_size for entry in entries if entry.is_file())
    except OSError:
        return 0


def _row_bytes(shelf):
    return int(shelf.split("px-")[0]) ** 2 * 3


def _claim_folder(path):
    """Make ``path`` a store, or check that it is one; refuse anything else, changing nothing."""
    try:
        entries = os.listdir(path)
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)
        entries = os.listdir(path)
    except NotADirectoryError:
        raise ImageStoreError(f"image store {path} is {file_kind(os.stat(path).st_mode)}, not a "
                              "folder: name a new or empty folder, or an image store.") \
            from None
    except OSError as error:
        raise ImageStoreError(f"image store {path} cannot be opened: {error.strerror}.") \
            from None
    foreign = sorted(name for name in entries if not (
        _OWN_FILES.match(name) or _SHELF_NAME.match(name)))
    if MANIFEST not in entries and foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ImageStoreError(
            f"image store {path} holds {len(foreign)} file(s) that are not an image store "
            f"of imageclef_concepts ({shown}); it is left as it is. Name a new or empty "
            "folder for the store.")
    if MANIFEST in entries:
        _check_manifest(os.path.join(path, MANIFEST))
    else:
        manifest = json.dumps({"format": _FORMAT, "version": _FORMAT_VERSION}).encode()
        write_atomically(os.path.join(path, MANIFEST), lambda f: f.write(manifest))


def _check_manifest(path):
    try:
        with open_regular_file(path, "image store manifest") as f:
            manifest = json.loads(f.read(4096))
    except (OSError, ValueError) as error:
        raise ImageStoreError(f"{path} is not a readable image store manifest ({error}).") \
            from None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise ImageStoreError(f"{path} is not an image store manifest of imageclef_concepts.")
    if manifest.get("version") != _FORMAT_VERSION:
        raise ImageStoreError(f"the image store {os.path.dirname(path)} is of format version "
                              f"{manifest.get('version')!r}; this version of the library "
                              f"reads version {_FORMAT_VERSION}: name another folder.")
