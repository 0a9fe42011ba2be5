"""One shelf of a store: rows of one shape and type (the images of one size and filter,
or the embeddings of one encoder), in chunk files.

A chunk is a plain ``.npy`` array of shape ``(n, *row_shape)``, e.g.
``(n, size, size, 3)`` uint8 images (so that
``numpy.load(..., mmap_mode="r")`` maps it), written atomically before the
index names its rows. Each row's check is a CRC-32 seeded with the file it
came from (its key and version), so a row is served only for the file it was
decoded from: a damaged chunk or a tampered index is decoded again, never
served. Files are named here by :func:`source_key` and versioned by
:func:`file_version`.
"""

import os
import re
import uuid
import zlib

import numpy as np

from ..files._atomic import open_regular_file, write_atomically
from ._decoding import is_url

_CHUNK_NAME = re.compile(r"^[0-9a-f]{32}\.npy$")
# What an fsspec file system may report that changes with an object's content
# (local, memory, HTTP, S3, GCS, Azure): the version is all of those it gives.
_URL_VERSION_KEYS = ("mtime", "LastModified", "last_modified", "Last-Modified", "updated",
                     "created", "ETag", "etag", "md5Hash", "Content-MD5", "Digest", "crc32c",
                     "generation", "version_id")


class Shelf:
    """The rows of one store's shelf: located, read and added in batches.

    Parameters
    ----------
    store : FolderStore
    name : str
        The shelf's folder in the store (``"<size>px-<filter>"`` for images).
    row_shape : tuple of int
    dtype : numpy dtype, default=uint8
    """

    def __init__(self, store, name, row_shape, dtype=np.uint8):
        self.store = store
        self.name = name
        self.folder = os.path.join(store.path, self.name)
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self.row_shape)) * self.dtype.itemsize
        self._offsets = {}  # chunk -> where its rows begin (its header checked)

    def locate(self, keys, versions):
        """Where the shelf holds each file at its current version: ``{position: entry}``.

        ``keys`` and ``versions`` come from :func:`source_key` and
        :func:`file_version`; a file whose version is None (unreadable, or a
        URL whose version cannot be told) or differs from the stored one is
        not held, nor is one whose index entry is not well formed.
        """
        entries = self.store._entries(self.name, list(keys))
        located = {}
        for position, (key, version) in enumerate(zip(keys, versions)):
            entry = entries.get(key)
            if version is None or entry is None or entry[0] != version:
                continue
            chunk, row, crc = entry[1:]
            if (isinstance(chunk, str) and _CHUNK_NAME.match(chunk) and type(row) is int
                    and 0 <= row < 2**40 and type(crc) is int):
                located[position] = (chunk, row, crc, _seed(key, version))
        return located

    def read_into(self, batch, entries):
        """Read each ``(position, entry)`` of :meth:`locate` into ``batch[position]``.

        Returns the positions that could not be read back intact (a chunk
        missing or damaged, a check that does not match): their images must
        be decoded again.
        """
        failed = []
        by_chunk = {}
        for position, (chunk, row, crc, seed) in entries:
            by_chunk.setdefault(chunk, []).append((position, row, crc, seed))
        for chunk, rows in by_chunk.items():
            try:
                with open_regular_file(os.path.join(self.folder, chunk), "image chunk") as f:
                    start = self._rows_start(chunk, f)
                    for position, row, crc, seed in rows:
                        target = memoryview(batch[position]).cast("B")
                        f.seek(start + row * self.row_bytes)
                        if (f.readinto(target) != self.row_bytes
                                or zlib.crc32(target, seed) != crc):
                            failed.append(position)
            except (OSError, ValueError):  # missing, not ours, or a header not of this shelf
                failed += [row[0] for row in rows]
        return failed

    def add(self, keys, versions, pixels):
        """Write ``pixels`` (n, size, size, 3) as one chunk and record which file each row is.

        Returns ``{position: entry}`` as :meth:`locate` does.

        Raises
        ------
        OSError
            When the chunk cannot be written (a full disk, a read-only store,
            a shelf folder that is not the store's own).
        ImageStoreError
            When the store's folder was deleted or replaced since it was
            opened (``ImageStore._check_still_own``).
        """
        if self.store.read_only:  # no chunk whose rows the index could not name
            raise OSError(f"the image store {self.store.path} is read-only")
        pixels = np.ascontiguousarray(pixels, dtype=self.dtype)
        self.store._check_still_own()  # the folder it opened, not one put at its path since
        try:
            os.mkdir(self.folder)  # in the store's folder, which is never re-created
        except FileExistsError:
            pass
        if os.path.islink(self.folder):  # never write into a folder the store did not make
            raise OSError(f"{self.folder} is a symbolic link, not the store's own folder")
        chunk = f"{uuid.uuid4().hex}.npy"
        self.store._check_still_own()
        write_atomically(os.path.join(self.folder, chunk),
                         lambda f: np.lib.format.write_array(f, pixels, allow_pickle=False))
        entries, records = {}, []
        for row, (key, version) in enumerate(zip(keys, versions)):
            seed = _seed(key, version)
            entries[row] = (chunk, row, zlib.crc32(pixels[row], seed), seed)
            records.append((key, version, chunk, row, entries[row][2]))
        self.store._record(self.name, records)
        return entries

    def _rows_start(self, chunk, f):
        """The offset of a chunk's first row, after checking that its header is this shelf's."""
        if chunk not in self._offsets:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran_order, dtype = read_header(f)
            if dtype != self.dtype or fortran_order or tuple(shape[1:]) != self.row_shape:
                raise ValueError(f"chunk {chunk} holds {dtype} rows of shape {shape}")
            self._offsets[chunk] = f.tell()
        return self._offsets[chunk]


def _seed(key, version):
    """The CRC seed that ties a stored row to the file (and version) it was decoded from."""
    return zlib.crc32(key + b"\0" + version.encode("utf-8", "surrogateescape"))


def source_key(path):
    """How the store names a file, as bytes: its absolute path, or the URL as given.

    Bytes, because a file name need not be valid UTF-8 (``os.fsencode``).
    """
    path = os.fspath(path)
    if is_url(path):
        return path.encode("utf-8", "surrogateescape")
    return os.fsencode(os.path.abspath(path))


def file_version(path):
    """What changes when a file changes; None when it cannot be told (or the file is unreadable).

    For a local file, the size, the modification time and the status-change
    time (which no program can set back) in nanoseconds; for an ``fsspec``
    URL, what its file system reports (size with a modification time, an
    ETag, a content hash...). A URL of which only the size is known is not
    stored: a change of the same size would go unseen.
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
    known = [f"{key}={info[key]}" for key in _URL_VERSION_KEYS if info.get(key) is not None]
    return "|".join([f"size={info.get('size')}", *known]) if known else None
