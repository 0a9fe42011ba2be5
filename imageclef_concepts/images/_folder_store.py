"""The machinery every store of the library shares: its claimed folder and its index.

A store (the image store, the embedding store) is a folder the library
claimed (:mod:`._store_folder`), an SQLite index of what its chunk files hold,
and the descriptor of the folder it opened: every write goes through that
descriptor, after checking that the folder at its path is still the one it
opened (same device and inode, its manifest present), from every thread and
process. A folder deleted or replaced meanwhile is never written nor
re-created: the store warns once and its users compute without it.
"""

from __future__ import annotations

import functools
import os
import random
import sqlite3
import threading
import time
import warnings
from typing import TYPE_CHECKING

from ..files._atomic import checked_file_name
from ._store_folder import IMAGE_STORE, INDEX, ImageStoreError, claim_folder, ownership_lost
from ._writer import flush

if TYPE_CHECKING:  # names for annotations only
    from .._typing import PathLike

_SCHEMA = """CREATE TABLE IF NOT EXISTS {table} (
    shelf TEXT NOT NULL, source BLOB NOT NULL, version TEXT NOT NULL,
    chunk TEXT NOT NULL, row INTEGER NOT NULL, crc INTEGER NOT NULL,
    PRIMARY KEY (shelf, source))"""
_QUERY_SIZE = 500  # sources per SELECT ... IN (...): far below SQLite's variable limit
# Seconds a writer waits for another's transaction (they last milliseconds);
# past it the row is computed without the store rather than blocking training.
_BUSY_TIMEOUT = 30
# What the index takes beside the rows' bytes (index_bytes): each row's entry
# (its file's key and version, its chunk's name and check) in the table and in the table's
# key index, at most twice the key and 256 bytes, written once in SQLite's write-ahead log
# and once in the index; the log grows up to 1,000 pages before SQLite moves them into the
# index (and is not truncated then), its header and shared memory take a few pages more.
_ENTRY_BYTES = 256
_LOG_BYTES = 1000 * 4096
_LOG_HEADER_BYTES = 2**16
#: Rows of a chunk at most: its entries are one transaction, which the log takes whole
#: before it can move any into the index (past its 1,000 pages when it began near them).
CHUNK_ROWS = 2048


# The lost folders warned of, (process, path, (device, inode)): one warning each.
_LOST_WARNED: set[tuple] = set()
_LOST_LOCK = threading.Lock()


class _StoreLost(ImageStoreError):
    """The folder at a live store's path is no longer the one it opened (warned once)."""


def public_errors(method):
    """A store's public method: a lost folder raises the store's own public error.

    ``_StoreLost`` tells the library's own readers to go on without the
    store; a user calling ``summary()`` sees ``ImageStoreError`` (or
    ``EmbeddingStoreError``), not a private class.
    """

    @functools.wraps(method)
    def public(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except _StoreLost as error:
            raise self.kind.error(str(error)) from None

    return public


class FolderStore:
    """What every store of the library shares: its claimed folder and its SQLite index.

    A subclass names its :class:`~._store_folder.StoreKind` (``kind``), the
    index's table (``table``) and the warning given when its folder is lost
    or cannot be written (``warning``).
    """

    kind = IMAGE_STORE
    table = "images"
    warning: type[Warning] = UserWarning

    def __init__(self, path: PathLike) -> None:
        try:  # a name no folder can have: refused by name (not a UnicodeEncodeError)
            path = checked_file_name(path, self.kind.label)
        except ValueError as error:
            raise self.kind.error(str(error)) from None
        self.path = os.path.abspath(path)
        if os.path.islink(self.path) and os.path.isdir(self.path):
            # A link to a folder (a store on a bigger disk): the folder itself, resolved
            # once, is the store (and its identity, device and inode, is checked at every
            # opening of its descriptor).
            self.path = os.path.realpath(self.path)
        claim_folder(self.path, create=True, kind=self.kind)
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
        # A store sent to a worker process (joblib/loky pickles it) reads the index
        # there: what was queued here is written first, as before a fork.
        flush(self)
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
        return f"{type(self).__name__}({self.path!r})"

    def __eq__(self, other):
        return type(other) is type(self) and other.path == self.path

    __hash__ = None  # type: ignore[assignment]  # equal by path, but mutable on disk

    # ------------------------------------------------------------- the folder

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
                claim_folder(self.path, create=False, kind=self.kind)
            except self.kind.error as error:
                if self._identity is None:  # not opened by a parent: the user's to fix
                    raise
                # why, as the live store says it (the refusal names the path again)
                self._lose(ownership_lost(self.path, self._identity, self.kind)
                           or str(error).rstrip("."))
            self._open_folder()
            self._claimed = True

    def _lose(self, why):
        """Stop writing for good: one warning (``self.warning``) per folder and process, then
        ``_StoreLost``."""
        with self._lost_lock:
            first = self._lost is None
            if first:
                self._lost = (f"the {self.kind.label} {self.path} is no longer the folder it "
                              f"opened ({why}): nothing more is written there")
        # Each joblib/loky call delivers the store unpickled anew: warned of once per
        # folder (its path and the device and inode it opened) and process, not per copy.
        folder = (os.getpid(), self.path, self._identity)
        with _LOST_LOCK:
            first = first and folder not in _LOST_WARNED
            _LOST_WARNED.add(folder)
        if first:
            warnings.warn(f"{self._lost}; what it does not hold is computed at every use "
                          "(open the store again to use a new one there).",
                          self.warning, stacklevel=4)
        raise _StoreLost(f"{self._lost}.")

    def _end(self, why):
        """Stop writing for good, without a warning: a store the library made and now removes."""
        with self._lost_lock:
            self._lost = self._lost or why

    def _check_still_own(self):
        """Raise unless the folder at ``path`` is still the one this store opened.

        Called before every write (a new index connection, a new shelf
        folder, a chunk): the same folder (device and inode) and its manifest
        still there. The first time it is not, one warning says so; from then
        on nothing is written there (the folder is never re-created) and what
        the store would give is computed without it. The writes themselves go
        through the folder's descriptor (``_folder_descriptor``), so a folder
        swapped in after this check still gets nothing.

        Raises
        ------
        ImageStoreError
            When the folder was deleted, replaced, or lost its manifest.
        """
        self._check_claim()
        why = ownership_lost(self.path, self._identity, self.kind)
        if why is not None:
            self._lose(why)

    def _warn_once(self, message):
        """One warning per store and process (a read-only store, a full disk)."""
        with self._lost_lock:
            first = self._warned != os.getpid()
            self._warned = os.getpid()
        if first:
            warnings.warn(message, self.warning, stacklevel=6)

    # --------------------------------------------------------------- the index

    def _connection(self):
        """This thread's connection to the index (SQLite connections are per thread and process).

        A store that cannot be written (read-only files or folder) is opened
        read-only; :meth:`_record` then fails, and rows are computed.
        """
        local = self._connections
        if getattr(local, "pid", None) != os.getpid():
            self._check_still_own()  # never open (nor create) an index in another folder
            index = _index_path(self.path, self._folder_descriptor())
            try:
                connection = _writable_index(index, self.table)
            except sqlite3.Error as error:
                connection = _read_only_index(index) if os.path.isfile(index) else None
                if connection is None or not _holds_table(connection, self.table):
                    # Not made (a disk full as it was created): its table was never there.
                    raise self.kind.error(f"the index of the {self.kind.label} {self.path} cannot "
                                          f"be created ({os.path.join(self.path, INDEX)}: "
                                          f"{error}).") from None
                self.read_only = True
            local.connection, local.pid = connection, os.getpid()
        return local.connection

    def _query(self, sql, parameters=()):
        flush(self)  # rows written in the background are in the index before it is read
        try:
            return self._connection().execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            raise self.kind.error(f"the index of the {self.kind.label} {self.path} cannot be "
                                  f"read ({type(error).__name__}: {error}); name another "
                                  "folder for the store.") from None

    def _entries(self, shelf, keys):
        """``{key: (version, chunk, row, crc)}`` for the sources (``keys``) the shelf holds."""
        found = {}
        for start in range(0, len(keys), _QUERY_SIZE):
            part = keys[start:start + _QUERY_SIZE]
            found.update((key, rest) for key, *rest in self._query(
                f"SELECT source, version, chunk, row, crc FROM {self.table} WHERE shelf = ? AND "
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
                    f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?, ?, ?, ?, ?)",
                    [(shelf, *record) for record in records])
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            raise OSError(f"the index {os.path.join(self.path, INDEX)} cannot be written "
                          f"({error})") from None


def index_bytes(n_rows, key_bytes=None):
    """The disk a store's index may take for ``n_rows`` more rows whose files' keys
    (:func:`~._shelf.source_key`) take ``key_bytes`` together (None: 256 bytes each).

    Measured: 190 to 600 bytes a row in the index for keys of 51 to 192 bytes, about
    as many in the log until SQLite moves it into the index: more than the row
    itself for an embedding of 64 dimensions or an image of 16 px. The log is
    counted up to its 1,000 pages and one chunk's transaction beyond them.
    """
    if n_rows < 1:
        return 0
    key_bytes = 256 * n_rows if key_bytes is None else key_bytes
    entries = 2 * key_bytes + _ENTRY_BYTES * n_rows
    transaction = entries * min(n_rows, CHUNK_ROWS) // n_rows  # the largest, in the log
    return entries + min(entries, _LOG_BYTES + transaction) + _LOG_HEADER_BYTES


def _index_path(path, folder):
    """The index's path through the folder's descriptor where the system has one (Linux).

    SQLite resolves that link to the folder's path when it opens the index
    (``PRAGMA database_list`` shows ``<path>/index.sqlite``), so a folder swapped
    in between :meth:`FolderStore._check_still_own` and the opening would still
    be opened: a window of one system call, only when a thread opens its first
    connection; a connection open already writes to the index it opened."""
    through = f"/proc/self/fd/{folder}"
    if os.path.isdir(through):
        return os.path.join(through, INDEX)
    return os.path.join(path, INDEX)


def _writable_index(index, table):
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
            connection.execute(_SCHEMA.format(table=table))
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


def _holds_table(connection, table):
    """Whether the index holds the store's table (else the connection is closed)."""
    if connection.execute("SELECT name FROM sqlite_master WHERE name = ?", (table,)).fetchall():
        return True
    connection.close()
    return False


def _read_only_index(index):
    """A read-only connection; ``immutable`` (no locks nor journal files, which a read-only
    folder cannot hold) when even that fails: nobody writes a store no one can write."""
    try:
        connection = sqlite3.connect(f"file:{index}?mode=ro", uri=True, isolation_level=None)
        connection.execute("SELECT name FROM sqlite_master").fetchall()
        return connection
    except sqlite3.Error:
        return sqlite3.connect(f"file:{index}?mode=ro&immutable=1", uri=True,
                               isolation_level=None)



def _folder_bytes(folder):
    try:
        with os.scandir(folder) as entries:
            return sum(entry.stat().st_size for entry in entries if entry.is_file())
    except OSError:
        return 0
