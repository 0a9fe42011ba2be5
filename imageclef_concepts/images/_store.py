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
from concurrent.futures import ThreadPoolExecutor

from ..files._sizes import check_disk_space, setting
from ._decoding import RESAMPLING, decoding_threads
from ._folder_store import FolderStore, _folder_bytes, index_bytes, public_errors
from ._shelf import Shelf, file_version, source_key
from ._store_folder import SHELF_NAME, ImageStoreError


class ImageStoreWarning(UserWarning):
    """An image store that cannot be written: images are decoded without it.

    Examples
    --------
    >>> from imageclef_concepts import ImageStoreWarning
    >>> issubclass(ImageStoreWarning, UserWarning)
    True
    """


class ImageStore(FolderStore):
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

    warning = ImageStoreWarning

    @public_errors
    def shelf(self, image_size: int, resample: str = "bilinear") -> Shelf:
        """The store's images of one size and filter.

        Raises
        ------
        ImageStoreError
            When the folder is no longer a store (a store read from a pickle
            is checked again here; one that is no longer the folder its
            pickle named warns once, then raises).
        """
        return self._shelf(image_size, resample)

    def _shelf(self, image_size, resample="bilinear"):
        """:meth:`shelf` for the library's readers: a lost folder is ``_StoreLost``."""
        if resample not in RESAMPLING:
            raise ValueError(f"resample must be one of {sorted(RESAMPLING)}; got {resample!r}.")
        from ..files._numbers import check_whole_number  # scikit-learn's: not at --help

        size = check_whole_number(image_size, "image_size", unit=" of pixels")  # int(True): 1
        self._check_claim()
        return Shelf(self, f"{size}px-{resample}", (size, size, 3), sized_by=("image_size", size))

    @public_errors
    def summary(self) -> dict[str, dict[str, int]]:
        """What the store holds, by shelf (``"<size>px-<filter>"``).

        ``images`` and ``bytes`` of their pixels, and ``disk_bytes``: the
        size of the shelf's chunk files, which also hold earlier versions of
        changed files and the images of interrupted or concurrent writes.

        Raises
        ------
        ImageStoreError
            When its folder was deleted or replaced since the store opened it.
        """
        self._check_still_own()  # not the entries of a folder deleted or replaced since
        rows = self._query("SELECT shelf, COUNT(*) FROM images GROUP BY shelf ORDER BY shelf")
        return {shelf: {"images": count, "bytes": count * _row_bytes(shelf),
                        "disk_bytes": _folder_bytes(os.path.join(self.path, shelf))}
                for shelf, count in rows
                if isinstance(shelf, str) and SHELF_NAME.match(shelf)}


def as_image_store(image_store):
    """The :class:`ImageStore` of an estimator's ``image_store`` parameter (None stays None)."""
    if image_store is None or isinstance(image_store, ImageStore):
        return image_store
    return ImageStore(image_store)


def check_store_room(store, image_size, n_images, name="image_size", advice="",
                     resizable=True, key_bytes=None):
    """Refuse ``n_images`` at ``image_size`` the store's disk has no room for, naming ``name``
    (``advice``: what else to do; ``resizable``: whether a smaller ``name`` may be chosen,
    not when it is a fitted model's): all of them and their index entries (``key_bytes``:
    their files' keys, :func:`~._folder_store.index_bytes`), before decoding,
    so that the disk is never filled to its last byte. :class:`~._sources.ImageFiles` asks
    for a user's store."""
    if store is None or n_images < 1:
        return
    check_disk_space(n_images * image_size * image_size * 3
                     + index_bytes(n_images, key_bytes), store.path,
                     setting(name, image_size),
                     f"storing {n_images} image(s) at that size",
                     f"free space there{advice} or choose a smaller {name}" if resizable
                     else f"free space there or{advice.lstrip(',')}")


def check_room_for_files(store, shelves, paths, name="image_size", advice="", counts=None):
    """Refuse, before any decoding, the images ``paths`` will add to ``store`` at every
    ``(image_size, resample)`` of ``shelves`` together, if its disk cannot take them.

    Each file counts once per shelf, and not where the shelf holds it at its
    current version; a read-only store takes nothing. What a meta-estimator's
    parts, a recipe's grid or ``prepare`` will store is refused here at once,
    not after the first parts have filled the disk and trained. ``counts``: what
    :func:`files_to_store` gave for these sorted shelves, when the caller has it.
    """
    shelves = sorted({(int(size), resample) for size, resample in shelves})
    counts = files_to_store(store, shelves, paths) if counts is None else counts
    if not any(counts):
        return
    key = key_length(paths)
    if len(shelves) == 1:
        check_store_room(store, shelves[0][0], counts[0], name, advice,
                         key_bytes=counts[0] * key)
        return
    largest = max(size for size, _ in shelves)
    check_disk_space(stored_bytes(store, shelves, counts, key), store.path,
                     setting(name, largest),
                     f"storing {max(counts)} image(s) at each of {len(shelves)} sizes and "
                     "filters",
                     f"free space there{advice}, or use one image_size and resample")


def key_length(paths):
    """The longest key (:func:`~._shelf.source_key`) of the files ``paths``, in bytes."""
    return max((len(source_key(path)) for path in paths), default=0)


def stored_bytes(store, shelves, counts, key):
    """The disk ``counts[i]`` images at each ``(image_size, resample)`` of ``shelves`` take
    in ``store``, their index entries (keys of at most ``key`` bytes) with them."""
    return sum(n * size * size * 3 for n, (size, _) in zip(counts, shelves)) + \
        index_bytes(sum(counts), sum(counts) * key)


def files_to_store(store, shelves, paths):
    """How many of the files ``paths`` (each once) ``store`` will add at each
    ``(image_size, resample)`` of ``shelves``: those it does not hold at their current
    version; none for a store that is read-only or lost (each use of it warns)."""
    files = {source_key(path): path for path in paths}  # each file once
    if store.read_only or not files or not shelves:
        return [0] * len(shelves)
    with ThreadPoolExecutor(max_workers=decoding_threads()) as pool:
        versions = list(pool.map(file_version, files.values()))
    known = sum(version is not None for version in versions)  # the others are never stored
    try:
        counts = [known - len(store._shelf(size, resample).locate(list(files), versions))
                  for size, resample in shelves]
    except (ImageStoreError, OSError):  # lost, or an index that cannot be read: each
        return [0] * len(shelves)  # use of the store warns, and it takes nothing more
    # Read-only is known once its index is opened (by the first query, just above).
    return [0] * len(shelves) if store.read_only else counts


def _row_bytes(shelf):
    return int(shelf.split("px-")[0]) ** 2 * 3
