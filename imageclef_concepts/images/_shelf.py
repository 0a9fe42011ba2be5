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

import hashlib
import os
import re
import threading
import time
import uuid
import zlib

import numpy as np

from ..files._atomic import content_digest, open_regular_file, write_in_folder
from ..files._sizes import check_disk_space, setting
from ._decoding import is_url
from ._folder_store import CHUNK_ROWS, index_bytes

# A status-change time that is a whole number of seconds is taken for a file system
# of whole-second times; such a file changed less than _UNSETTLED ago may change
# again unseen within the same second (a margin for clocks that disagree a little).
_COARSE_TICK = 10**9
_UNSETTLED = 2 * 10**9
# One more than _AHEAD ahead of this clock was set by another's (a FAT stick written on a
# machine whose clock was ahead): a rewrite here sets it to this clock's time, a change,
# so that such a file is settled (its version must not change when this clock catches up).
_AHEAD = 10**9
# CPython 3.11's AST validator counts its depth per interpreter, not per thread
# (python/cpython#106905): numpy's header parser (ast.literal_eval) runs one at a time.
_HEADER_LOCK = threading.Lock()
_CHUNK_NAME = re.compile(r"^[0-9a-f]{32}\.npy$")
# What an fsspec file system may report that changes with an object's content
# (local, memory, HTTP, S3, GCS, Azure): the version is all of those it gives.
_URL_VERSION_KEYS = ("mtime", "LastModified", "last_modified", "Last-Modified", "updated",
                     "created", "ETag", "etag", "md5Hash", "Content-MD5", "Digest", "crc32c",
                     "generation", "version_id")
# Those made from the content or given anew at each write; the others are times, which
# a rewrite in the same second, or a file's modification time put back (a plain HTTP
# server's Last-Modified is the file's), keep.
_URL_CONTENT_KEYS = ("ETag", "etag", "md5Hash", "Content-MD5", "Digest", "crc32c",
                     "generation", "version_id")
# Over HTTP an ETag is the server's own: nginx's is the file's modification time and size,
# Apache's (by default) those and the inode, which a rewrite with the time put back keeps.
_HTTP_CONTENT_KEYS = ("Content-MD5", "Digest")


class Shelf:
    """The rows of one store's shelf: located, read and added in batches.

    Parameters
    ----------
    store : FolderStore
    name : str
        The shelf's folder in the store (``"<size>px-<filter>"`` for images).
    row_shape : tuple of int
    dtype : numpy dtype, default=uint8
    sized_by : (str, object) or None, default=None
        The parameter that sets a row's size and its value (``("image_size", 224)``
        for images), named when the disk has no room for a chunk.
    """

    def __init__(self, store, name, row_shape, dtype=np.uint8, sized_by=None):
        self.store = store
        self.sized_by = sized_by
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
        located, chunks = {}, {}
        for position, (key, version) in enumerate(zip(keys, versions)):
            entry = entries.get(key)
            if version is None or entry is None or entry[0] != version:
                continue
            chunk, row, crc = entry[1:]
            if (isinstance(chunk, str) and _CHUNK_NAME.match(chunk) and type(row) is int
                    and 0 <= row < 2**40 and type(crc) is int):
                if chunk not in chunks:  # a chunk a user deleted (its size's folder, to
                    # free space) holds nothing: asked once per chunk of up to CHUNK_ROWS rows
                    chunks[chunk] = os.path.isfile(os.path.join(self.folder, chunk))
                if chunks[chunk]:
                    located[position] = (chunk, row, crc, _seed(key, version))
        return located

    def writable(self):
        """Whether rows can be added: the store's index can be written and the shelf's
        folder too (made by another user, it may not be, though the index is), or, when
        there is none yet, the store's folder it is made in; not when something that is not a
        folder (a user's file) is at its place, where none can be made."""
        if self.store.read_only or self.blocked():
            return False
        return os.access(self.folder if os.path.isdir(self.folder) else self.store.path,
                         os.W_OK | os.X_OK)

    def blocked(self):
        """Whether something that is not a folder (a user's file) is at the shelf folder's place."""
        return os.path.lexists(self.folder) and not os.path.isdir(self.folder)

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
        """Write ``pixels`` (n, size, size, 3) as chunks and record which file each row is.

        A chunk holds at most :data:`~._folder_store.CHUNK_ROWS` rows, recorded in
        one SQLite transaction: the index's log grows past the pages the room check
        counts (:func:`~._folder_store.index_bytes`) by one chunk's entries at most.
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
            raise OSError(f"the {self.store.kind.label} {self.store.path} is read-only")
        entries = {}
        for start in range(0, len(keys), CHUNK_ROWS):
            stop = start + CHUNK_ROWS
            added = self._add_chunk(keys[start:stop], versions[start:stop], pixels[start:stop])
            entries.update((start + row, entry) for row, entry in added.items())
        return entries

    def _add_chunk(self, keys, versions, pixels):
        pixels = np.ascontiguousarray(pixels, dtype=self.dtype)
        self.store._check_still_own()  # the folder it opened, not one put at its path since
        # Every write goes through the descriptors of the folders the store opened:
        # a folder swapped in at the path after the check above gets nothing.
        store_folder = self.store._folder_descriptor()
        try:
            os.mkdir(self.name, dir_fd=store_folder)  # never re-creates a deleted store
        except FileExistsError:
            pass
        try:  # never write into a folder the store did not make (a link to elsewhere)
            folder = os.open(self.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                             dir_fd=store_folder)
        except OSError as error:
            raise OSError(f"{self.folder} is not the store's own folder "
                          f"({error.strerror or error})") from None
        chunk = f"{uuid.uuid4().hex}.npy"
        try:
            try:  # never begin a chunk the disk has no room for
                name, value = self.sized_by or ("row_shape", self.row_shape)
                check_disk_space(pixels.nbytes + index_bytes(
                                     len(keys), sum(map(len, keys))),
                                 self.store.path, setting(name, value),
                                 f"a chunk of {len(pixels)} row(s) at that size",
                                 f"free space there or choose a smaller {name}")
            except ValueError as error:
                raise OSError(str(error)) from None
            self.store._check_still_own()
            write_in_folder(folder, chunk,
                            lambda f: np.lib.format.write_array(f, pixels, allow_pickle=False))
        finally:
            os.close(folder)
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
            with _HEADER_LOCK:  # ast.literal_eval in two threads at once can fail on 3.11
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

    Bytes, because a file name need not be valid UTF-8 (``os.fsencode``). A name holding a
    lone surrogate no file name gives (``"\ud800"``: no such file can be) is keyed after a
    NUL byte, which no file name holds: never another file's key.
    """
    path = os.fspath(path)
    try:
        if is_url(path):
            return path.encode("utf-8", "surrogateescape")
        return os.fsencode(os.path.abspath(path))
    except UnicodeEncodeError:
        return b"\0" + path.encode("utf-8", "surrogatepass")


def file_version(path):
    """What changes when a file changes; None when it cannot be told (or the file is unreadable).

    For a local file, the size, the modification time, the status-change
    time (which no program can set back) in nanoseconds and the inode number
    (another file put at the path, a link pointed elsewhere, is another
    version even with the same size and times; not the device number, which
    some systems change between mounts), and its content's SHA-256 while it
    is unsettled (:func:`settles_at`): on a file system of whole-second times
    within 2 s of its last change, when a rewrite of the same size in the
    same second keeps every time. For an ``fsspec``
    URL, what its file system reports (size, modification time, an ETag, a
    content hash...) and, when none of that is made from the content or given
    anew at each write (an ETag, a hash, a generation: a plain HTTP server
    reports the size and a Last-Modified of whole seconds, which a rewrite
    within the second or a modification time put back keeps; over HTTP only a
    Content-MD5 or Digest counts, as nginx's and Apache's ETags are made of the
    file's time and size), the SHA-256 of its content (a download each time the
    version is asked for).
    """
    path = os.fspath(path)
    if is_url(path):
        return _url_version(path)
    try:
        status = os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL or lone surrogate no name can hold
        return None
    version = f"{status.st_size}:{status.st_mtime_ns}:{status.st_ctime_ns}:{status.st_ino}"
    if _settles_at(status) is not None:
        # A file system of whole-second times (FAT, some network mounts), the file
        # changed in the last seconds: a rewrite of the same size later in that same
        # second would keep all its times, so its content is part of the version.
        content = content_digest(path)
        if content is None:
            return None
        version += f":sha256={content}"
    return version


def settles_at(path):
    """When (``time.time_ns()``) a local file's :func:`file_version` stops carrying its content
    (it is settled: its times alone tell a later change); None when it already does, or for
    a URL or a file that cannot be read."""
    path = os.fspath(path)
    if is_url(path):
        return None
    try:
        return _settles_at(os.stat(path))
    except (OSError, ValueError):
        return None


def _settles_at(status):
    """None for a settled status; else when it settles: 2 s after a status-change time of
    whole seconds (a file system of whole-second times) that is less than 2 s old, and not
    more than 1 s ahead of this clock (``_AHEAD``)."""
    if status.st_ctime_ns % _COARSE_TICK == 0 and \
            -_AHEAD <= time.time_ns() - status.st_ctime_ns < _UNSETTLED:
        return status.st_ctime_ns + _UNSETTLED
    return None


def _url_version(url):
    try:
        import fsspec

        file_system, inner = fsspec.core.url_to_fs(url)
        info = file_system.info(inner)
    except Exception:  # no fsspec, no such object: decoding reports it
        return None
    known = [f"{key}={info[key]}" for key in _URL_VERSION_KEYS if info.get(key) is not None]
    protocols = getattr(file_system, "protocol", ())
    http = not {"http", "https"}.isdisjoint(
        (protocols,) if isinstance(protocols, str) else protocols)
    if not any(info.get(key) is not None
               for key in (_HTTP_CONTENT_KEYS if http else _URL_CONTENT_KEYS)):
        content = _url_content_digest(file_system, inner)  # times alone do not tell
        if content is None:
            return None
        known.append(f"sha256={content}")
    return "|".join([f"size={info.get('size')}", *known])


def _url_content_digest(file_system, inner):
    """The SHA-256 of a URL's content, read in blocks; None when it cannot be read."""
    try:
        hashed = hashlib.sha256()
        with file_system.open(inner, "rb") as f:
            for block in iter(lambda: f.read(2**20), b""):
                hashed.update(block)
        return hashed.hexdigest()
    except Exception:  # any file system's own errors: decoding reports the URL
        return None
