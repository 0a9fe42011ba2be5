"""Embed once: each image's embedding computed once per encoder, then read back.

:func:`embed_images` keys every image by its version (a file by its path and
the image store's :func:`~imageclef_concepts.images._shelf.file_version`,
pixels by a digest of their bytes) and the encoder by its
``embedding_identity()``. It looks in this process's bounded cache, then in
an :class:`~imageclef_concepts.embeddings.EmbeddingStore` when one is named,
and embeds only what neither holds, a block at a time, adding it to both.
Without a store, the process's cache alone makes a grid search, a tuner's
folds and an ensemble's members embed each image once; with one, every
process and every later run shares it.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

from ..files._numbers import WholeNumber
from ..images._folder_store import _StoreLost, index_bytes
from ..images._inputs import image_column, is_path_sequence
from ..images._shelf import file_version, source_key
from ._store import as_embedding_store

if TYPE_CHECKING:  # names for annotations only
    from .._typing import Embedder, FloatArray, Images, PathLike
    from ._store import EmbeddingStore

#: Bytes of embeddings this process keeps (least recently used out first):
#: 512 MiB is a million 128-d vectors, or 262,144 of 512 dimensions.
PROCESS_CACHE_BYTES = 512 * 2**20
#: Images embedded at a time when the stores lack them (each block is kept
#: before the next starts, so an interrupted pass keeps what it did).
BLOCK = 1024


class _ProcessCache:
    """Embeddings by (identity, key, version), least recently used out past a byte bound."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._rows = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            row = self._rows.get(key)
            if row is not None:
                self._rows.move_to_end(key)
            return row

    def put(self, key, row):
        if row.nbytes > self.max_bytes:
            return
        if row.base is not None:  # a row of a block: kept alone, not the whole block with it
            row = row.copy()
        with self._lock:
            old = self._rows.pop(key, None)
            self.bytes += row.nbytes - (0 if old is None else old.nbytes)
            self._rows[key] = row
            while self.bytes > self.max_bytes:
                _, dropped = self._rows.popitem(last=False)
                self.bytes -= dropped.nbytes

    def clear(self):
        with self._lock:
            self._rows.clear()
            self.bytes = 0


PROCESS_CACHE = _ProcessCache(PROCESS_CACHE_BYTES)
# The last store whose rows of the cache were found there: [(its folder, identity), keys].
_CONFIRMED: list = [None, set()]


def embedding_identity(encoder):
    """The encoder's ``embedding_identity()``, or None when it has none (nothing is kept)."""
    identify = getattr(encoder, "embedding_identity", None)
    if not callable(identify):
        return None
    identity = identify()
    if not isinstance(identity, str) or not identity:
        raise TypeError(f"{type(encoder).__name__}.embedding_identity() must return a "
                        f"non-empty string; got {identity!r}.")
    return identity


def embed_images(encoder: Embedder, X: Images, *,
                 store: PathLike | EmbeddingStore | None = None) -> FloatArray:
    """Embed ``X`` with ``encoder``, each image once for every fit, fold and process.

    Parameters
    ----------
    encoder : object with ``embed(X)``
        With ``embedding_identity()`` (:class:`~imageclef_concepts.BackboneEmbedding`
        and the foundation encoders have it), embeddings are kept; without, ``X``
        is embedded at every call.
    X : array-like of images or sequence of paths
    store : str, path-like, EmbeddingStore or None, default=None
        Where embeddings are kept on disk; None keeps them in this process
        only (a bounded cache, ``PROCESS_CACHE_BYTES``).

    Returns
    -------
    ndarray of float32, shape (n_images, n_dims)

    Examples
    --------
    >>> import numpy as np
    >>> from imageclef_concepts.embeddings import embed_images
    >>> class Flat:
    ...     calls = 0
    ...     def embed(self, X):
    ...         Flat.calls += len(X)
    ...         return np.asarray(X, dtype=np.float32).reshape(len(X), -1)
    ...     def embedding_identity(self):
    ...         return "flat, doctest"
    >>> X = np.arange(24, dtype=np.uint8).reshape(3, 2, 2, 2)
    >>> first, again = embed_images(Flat(), X), embed_images(Flat(), X[::-1])
    >>> Flat.calls, bool((again == first[::-1]).all())
    (3, True)
    """
    identity = embedding_identity(encoder)
    if identity is None:
        if store is not None:  # the store named is not silently left unused
            from ._store import EmbeddingStoreWarning

            warnings.warn(f"{type(encoder).__name__} has no embedding_identity(): its "
                          f"embeddings cannot be told from another encoder's, so none is "
                          f"kept in the embedding store {store}.", EmbeddingStoreWarning,
                          stacklevel=2)
        return _as_embeddings(encoder.embed(X), _length(X), encoder)
    X = image_column(X)
    keys = _image_keys(X)
    store = as_embedding_store(store)
    n = len(keys)
    found = {}
    for position, key in enumerate(keys):
        if key is not None and (row := PROCESS_CACHE.get((identity, *key))) is not None:
            found[position] = row
    if store is not None:
        try:
            _store_cached(store, identity, keys, found)
            found.update(_read_store(store, identity, keys, found))
        except _StoreLost:  # its folder deleted or replaced: warned once, embedded without
            store = None
    missing = [position for position in range(n) if position not in found]
    _embed_missing(encoder, identity, X, keys, missing, store, found)
    _check_width(identity, found)
    return np.stack([found[position] for position in range(n)]) if n else \
        np.zeros((0, 0), np.float32)


def count_stored(store, identity, X):
    """How many of the images ``X`` the store holds embeddings of by the encoder
    ``identity``, their files unchanged (what an embedding pass would not compute)."""
    keys = [key for key in _image_keys(image_column(X)) if key is not None]
    if not keys:
        return 0
    return len(store._shelf(identity, 1).locate([key for key, _ in keys],
                                                [version for _, version in keys]))


def _length(X):
    return len(X) if hasattr(X, "__len__") else None


def _as_embeddings(vectors, n, encoder):
    """The encoder's output as a float32 array of its own: (n, d >= 1), finite.

    Copied, so that an encoder that reuses its output buffer cannot change the
    rows kept in the cache; refused when not finite or of no dimension, so that
    a bad pass is never kept in a store for every later run.
    """
    vectors = np.array(vectors, dtype=np.float32)
    if vectors.ndim != 2 or (n is not None and len(vectors) != n) or vectors.shape[1] < 1:
        raise ValueError(f"{type(encoder).__name__}.embed gave an array of shape "
                         f"{vectors.shape} for {n} images; it must give (n_images, n_dims).")
    if not np.isfinite(vectors).all():
        bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
        raise ValueError(f"{type(encoder).__name__}.embed gave NaN or infinite values for "
                         f"{len(bad)} of {len(vectors)} images (the first at position "
                         f"{bad[0]} of its batch): nothing of this batch is kept.")
    return vectors


def _image_keys(X):
    """Each image's ``(key, version)``: a file's path and version, or a digest of pixels.

    None for a file whose version cannot be told (unreadable, or a URL whose
    file system says nothing of it): embedded at every use, never kept.
    """
    if is_path_sequence(X):
        paths = X.to_numpy(dtype=object) if hasattr(X, "to_numpy") else X
        keys = []
        for path in paths:
            version = file_version(path)
            keys.append(None if version is None else (source_key(path), version))
        return keys
    pixels = np.asarray(X)
    if pixels.dtype == object or pixels.ndim < 2:
        raise ValueError(f"X must be images (an array of pixels) or image paths; got an "
                         f"array of dtype {pixels.dtype} and shape {pixels.shape}.")
    layout = f"{pixels.dtype.str}{pixels.shape[1:]}".encode()
    return [(b"pixels:" + hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=20,
                                          key=layout[:64]).digest(), "pixels")
            for image in pixels]


def _store_cached(store, identity, keys, cached):
    """Write to the store the rows of this process's cache (``cached``, by position) that it
    lacks: the cache answered for them, and a second store named in one process was left
    empty, to be filled again in another process at the cost of the whole embedding. The
    rows found there are remembered for the last store (a grid search asks it again at
    every fit: 15 us an image)."""
    if store.read_only or not cached:
        return
    try:
        status = os.stat(store.path)
    except OSError:  # lost: _read_store says so
        return
    # A folder made anew at the path may reuse the inode; its ctime is its own.
    where = (status.st_dev, status.st_ino, status.st_ctime_ns, identity)
    if _CONFIRMED[0] != where:  # another store, or another folder at its path
        _CONFIRMED[:] = [where, set()]
    known = _CONFIRMED[1]
    wanted = [(position, keys[position]) for position in cached if keys[position] not in known]
    if not wanted:
        return
    located = store._shelf(identity, 1).locate([key for _, (key, _) in wanted],
                                               [version for _, (_, version) in wanted])
    lacking = [entry for index, entry in enumerate(wanted) if index not in located]
    if not lacking or _add_rows(store, identity, lacking, cached,
                                len(next(iter(cached.values())))):
        known.update(key for _, key in wanted)


def _read_store(store, identity, keys, found):
    """``{position: row}`` of the images the store holds intact (damaged rows left out)."""
    wanted = [(position, key) for position, key in enumerate(keys)
              if key is not None and position not in found]
    if not wanted:
        return {}
    probe = store._shelf(identity, 1)
    located = probe.locate([key for _, (key, _) in wanted],
                           [version for _, (_, version) in wanted])
    if not located:
        return {}
    widths = {}  # each chunk read at its own width: one of another width spoils only its rows
    by_width = {}
    for index, entry in located.items():
        if entry[0] not in widths:
            widths[entry[0]] = store.dimension(identity, entry[0])
        if widths[entry[0]] is not None:
            by_width.setdefault(widths[entry[0]], []).append(index)
    rows = {}
    for dimension, indices in by_width.items():
        batch = np.empty((len(indices), dimension), np.float32)
        shelf = store._shelf(identity, dimension)
        failed = set(shelf.read_into(batch, [(i, located[index])
                                             for i, index in enumerate(indices)]))
        for i, index in enumerate(indices):
            if i not in failed:
                position, key = wanted[index]
                rows[position] = batch[i].copy()
                PROCESS_CACHE.put((identity, *key), rows[position])
    return rows


def _blocks(n, first):
    """``(start, stop)`` of ``n`` images: ``first`` of them, then a :data:`BLOCK` at a time."""
    bounds = [0, *range(min(first, n), n, BLOCK), n]
    return [(start, stop) for start, stop in zip(bounds, bounds[1:]) if stop > start]


def _check_image_room(encoder, images):
    """Ask the image stores the encoder fills (a BackboneEmbedding's ``image_store``) for
    every image it will decode (``images``), before its first block: each block asked for
    its own, so the disk filled block after block and a later one was refused after the
    encoder had run over the others."""
    from ..images._shared import check_stores_room

    check_stores_room(encoder, images)


def _check_room(store, keys, dimension, encoder, images):
    """Refuse the rows of ``keys`` (``(key, version)``) the store's disk cannot take, their
    index entries with them, before the encoder runs over them; with the images the
    encoder's own image stores on that disk will take (``images``: those it decodes)."""
    from ..files._sizes import check_disk_space
    from ..images._shared import _image_paths, _shelves_of
    from ..images._store import files_to_store, key_length, stored_bytes

    n_rows, paths, images_bytes = len(keys), _image_paths(images), 0
    device = store._identity[0] if store._identity else None
    for image_store, _, size, resample in _shelves_of(encoder) if paths else ():
        if image_store._identity and image_store._identity[0] == device:  # one disk
            shelf = [(size, resample)]
            images_bytes += stored_bytes(image_store, shelf,
                                         files_to_store(image_store, shelf, paths),
                                         key_length(paths))
    check_disk_space(n_rows * dimension * 4 + index_bytes(
                         n_rows, sum(len(key) for key, _ in keys)) + images_bytes,
                     store.path, f"embedding store {store.path}",
                     f"storing {n_rows} embedding(s) of {dimension} dimensions"
                     + (" and the images the encoder stores on that disk" if images_bytes
                        else ""), "free space there or name a store on another disk")


def _embed_missing(encoder, identity, X, keys, missing, store, found):
    """Embed the images at ``missing`` (each distinct image once), a block at a time."""
    first_of = {}
    repeats = []
    for position in missing:
        key = keys[position]
        if key is not None and key in first_of:
            repeats.append((position, first_of[key]))
        else:
            if key is not None:
                first_of[key] = position
    todo = [position for position in missing if keys[position] is None
            or first_of.get(keys[position]) == position]
    warned, unwritten = False, []
    if is_path_sequence(X) and todo:
        _check_image_room(encoder, _subset(X, todo))
    # With a store, one batch first: its width tells the disk room all the rows take,
    # asked before the encoder runs over the others. A batch, not one image: the encoder's
    # memory checks see a whole batch before the network runs (one image at a size whose
    # batch was refused ran first).
    probe = store is not None and not store.read_only
    size = getattr(encoder, "batch_size", None)
    whole = WholeNumber(1).is_satisfied_by(size)
    blocks = _blocks(len(todo), (min(int(size), BLOCK) if whole else 1) if probe else BLOCK)
    for number, (start, stop) in enumerate(blocks):
        block = todo[start:stop]
        vectors = _as_embeddings(encoder.embed(_subset(X, block)), len(block), encoder)
        _check_width(identity, found, vectors.shape[1])  # before any row is kept
        if probe and number == 0:
            _check_room(store, [keys[position] for position in todo
                                if keys[position] is not None], vectors.shape[1],
                        encoder, _subset(X, todo[stop:]))
        for position, vector in zip(block, vectors):
            found[position] = vector
            if keys[position] is not None:
                PROCESS_CACHE.put((identity, *keys[position]), vector)
        unwritten += [(position, keys[position]) for position in block
                      if keys[position] is not None]
        if probe and number == 0 and len(blocks) > 1:
            continue  # the probe's row is written with the next block's: one chunk
        if store is not None and unwritten and not warned:
            warned = not _add_rows(store, identity, unwritten, found, vectors.shape[1])
        unwritten = []
    for position, first in repeats:
        found[position] = found[first]


def _add_rows(store, identity, kept, found, dimension):
    """Add the rows ``kept`` (``[(position, (key, version))]``) to the store; False when it
    cannot be written (then warned once, unless its folder was lost, which warned)."""
    try:
        store._shelf(identity, dimension).add(
            [key for _, (key, _) in kept], [version for _, (_, version) in kept],
            np.stack([found[position] for position, _ in kept]))
    except (OSError, ValueError) as error:
        if not isinstance(error, _StoreLost):  # that one warned already
            warnings.warn(f"the embedding store {store.path} cannot be written "
                          f"({error}): what it lacks is embedded at every use.",
                          store.warning, stacklevel=5)
        return False
    return True


def _check_width(identity, found, width=None):
    """Refuse rows of two widths under one identity (the encoder's output changed)."""
    widths = {row.shape[0] for row in found.values()} | ({width} if width else set())
    if len(widths) > 1:  # a kept row of another width: the encoder's output changed
        raise ValueError(f"the encoder {identity!r} gave embeddings of {sorted(widths)} "
                         "dimensions: its embedding_identity() must change with its output.")


def _subset(X, positions):
    if isinstance(X, np.ndarray):
        return X[positions]
    if hasattr(X, "iloc"):
        return X.iloc[positions]
    if is_path_sequence(X):
        return [X[position] for position in positions]
    return np.asarray(X)[positions]


def clear_process_cache():
    """Forget the embeddings this process keeps (the stores on disk are left as they are)."""
    PROCESS_CACHE.clear()
    _CONFIRMED[:] = [None, set()]

