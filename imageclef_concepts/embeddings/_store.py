"""EmbeddingStore: each image's embedding kept on disk, for every fit, fold and process.

An embedding costs a foundation model's forward pass (a ViT-B/16 is about
17.5 G multiply-adds an image at 224 px); a grid search, the folds of a
tuner and the members of an ensemble used to pay it again for every image
each time. A store is a folder the library owns, built as the image store is
(:class:`~imageclef_concepts.ImageStore`, with its guarantees: a marked folder,
never a user's file deleted, rows checked, concurrent writers serialised by
SQLite):

* ``imageclef_concepts-embedding-store.json`` marks the folder as a store;
* ``index.sqlite`` maps each image (its absolute path and version, the
  image store's :func:`~imageclef_concepts.images._shelf.file_version`; or,
  for images given as pixels, a digest of the pixels) and each encoder (a
  digest of its ``embedding_identity()``) to a row of a chunk file, with the
  row's CRC-32 seeded by the image's key and version;
* ``<encoder digest>/<random>.npy``: float32 chunks of shape ``(n, d)``.

A damaged or missing row is embedded again; a store that cannot be written
is read as it is.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import TYPE_CHECKING

import numpy as np

from ..files._atomic import open_regular_file
from ..files._numbers import check_whole_number
from ..images._folder_store import FolderStore, _folder_bytes, public_errors
from ..images._shelf import Shelf
from ..images._store_folder import StoreKind

if TYPE_CHECKING:  # names for annotations only
    from .._typing import PathLike


class EmbeddingStoreError(ValueError):
    """A folder that cannot be used as an embedding store, with the reason.

    Examples
    --------
    >>> from imageclef_concepts.embeddings import EmbeddingStoreError
    >>> issubclass(EmbeddingStoreError, ValueError)
    True
    """


class EmbeddingStoreWarning(UserWarning):
    """An embedding store that cannot be written: what it lacks is embedded at every use.

    Examples
    --------
    >>> from imageclef_concepts.embeddings import EmbeddingStoreWarning
    >>> issubclass(EmbeddingStoreWarning, UserWarning)
    True
    """


_SHELF_NAME = re.compile(r"^[0-9a-f]{32}$")
EMBEDDING_STORE = StoreKind("imageclef_concepts-embedding-store.json",
                            "imageclef_concepts.EmbeddingStore", "embedding store",
                            EmbeddingStoreError, _SHELF_NAME)


class EmbeddingStore(FolderStore):
    """A folder of image embeddings, shared by every fit, fold, member and process.

    Give it (or its folder) as ``embedding_store`` to
    :class:`~imageclef_concepts.ConceptKNNClassifier`,
    :class:`~imageclef_concepts.ConceptMLPClassifier` or
    :func:`~imageclef_concepts.embeddings.embed_images`: each image is then
    embedded once per encoder, by whichever process asks first, and read back
    ever after while its file is unchanged. ``imageclef-concepts embed``
    fills a store ahead of training.

    Parameters
    ----------
    path : str or path-like
        A folder: created when absent; else it must be empty or already an
        embedding store (a folder holding anything else is refused, never
        changed). Local disks only (SQLite's locks).

    Attributes
    ----------
    path : str
        The folder, as an absolute path.

    Raises
    ------
    EmbeddingStoreError
        When ``path`` is a file, a folder holding other files, or a store
        of a newer format.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from imageclef_concepts.embeddings import EmbeddingStore, embed_images
    >>> class Mean:  # any encoder: embed(X) and embedding_identity()
    ...     def embed(self, X):
    ...         return np.asarray(X, dtype=np.float32).mean(axis=(1, 2))
    ...     def embedding_identity(self):
    ...         return "mean-colour v1"
    >>> store = EmbeddingStore(os.path.join(tempfile.mkdtemp(), "store"))
    >>> X = np.stack([np.full((8, 8, 3), value, np.uint8) for value in (0, 1, 2)])
    >>> embed_images(Mean(), X, store=store).shape
    (3, 3)
    >>> [shelf["embeddings"] for shelf in store.summary().values()]
    [3]
    """

    kind = EMBEDDING_STORE
    table = "embeddings"
    warning = EmbeddingStoreWarning

    def __init__(self, path: PathLike) -> None:
        super().__init__(path)

    @public_errors
    def shelf(self, identity: str, dimension: int) -> Shelf:
        """The store's float32 embeddings of ``dimension`` by the encoder ``identity``.

        Raises
        ------
        EmbeddingStoreError
            When the folder is no longer a store (deleted or replaced since a
            store read from a pickle named it).
        """
        return self._shelf(identity, dimension)

    def _shelf(self, identity, dimension):
        """:meth:`shelf` for the library's readers: a lost folder is ``_StoreLost``."""
        width = check_whole_number(dimension, "dimension")  # int() took True, "4" and 2.5
        self._check_claim()
        return Shelf(self, shelf_name(identity), (width,), np.float32)

    def dimension(self, identity: str, chunk: str) -> int | None:
        """The width of the rows of one of the encoder's chunks, None when unreadable."""
        path = os.path.join(self.path, shelf_name(identity), chunk)
        try:
            with open_regular_file(path, "embedding chunk") as f:
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(f)
        except (OSError, ValueError):
            return None
        return int(shape[1]) if dtype == np.float32 and len(shape) == 2 else None

    @public_errors
    def summary(self) -> dict[str, dict[str, int]]:
        """What the store holds, by encoder (a digest of its identity).

        ``embeddings``, and ``disk_bytes`` of the encoder's chunk files (which
        also hold rows of changed files and of concurrent writes).
        """
        self._check_still_own()
        rows = self._query("SELECT shelf, COUNT(*) FROM embeddings GROUP BY shelf "
                           "ORDER BY shelf")
        return {shelf: {"embeddings": count,
                        "disk_bytes": _folder_bytes(os.path.join(self.path, shelf))}
                for shelf, count in rows if isinstance(shelf, str) and _SHELF_NAME.match(shelf)}


def shelf_name(identity):
    """The folder of an encoder's embeddings: a digest of its ``embedding_identity()``."""
    return hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def as_embedding_store(embedding_store):
    """The :class:`EmbeddingStore` of an estimator's ``embedding_store`` (None stays None)."""
    if embedding_store is None or isinstance(embedding_store, EmbeddingStore):
        return embedding_store
    return EmbeddingStore(embedding_store)
