"""prepare_images: fill an image store ahead of training, in parallel, with a progress bar."""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from sklearn.utils._param_validation import StrOptions, validate_params

from ..files._numbers import WholeNumber
from ._decoding import RESAMPLING
from ._shelf import source_key
from ._sources import (
    ON_ERROR,
    ImageFiles,
    SkippedImagesWarning,
    check_image_size,
    image_column,
    is_path_sequence,
)
from ._store import ImageStore, as_image_store
from ._store_folder import ImageStoreError, ownership_lost

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Sequence

    from .._typing import PathLike

# Images decoded between two writes: a chunk of the store. Memory holds about
# three times this (the decoded images, the block assembled, the chunk written).
_BLOCK_BYTES = 32 * 2**20
_NOT_PREPARED = "they are not in the store"


def chunk_images(image_size):
    """How many images a chunk of the store holds at ``image_size`` (at least one)."""
    return max(1, _BLOCK_BYTES // (image_size * image_size * 3))


class PreparedImages(NamedTuple):
    """What :func:`prepare_images` did, in numbers of images.

    Examples
    --------
    >>> from imageclef_concepts import PreparedImages
    >>> done = PreparedImages(added=90, already_stored=10, unreadable=0)
    >>> done.added + done.already_stored
    100
    """

    added: int
    already_stored: int
    unreadable: int


@validate_params({"paths": ["array-like"],
                  "image_store": [str, os.PathLike, ImageStore],
                  "image_size": [WholeNumber(1)],
                  "resample": [StrOptions(set(RESAMPLING))],
                  "on_error": [StrOptions(set(ON_ERROR))],
                  "n_jobs": [WholeNumber(1), None],
                  "progress": ["boolean"]}, prefer_skip_nested_validation=True)
def prepare_images(paths: Sequence[PathLike], image_store: ImageStore | PathLike,
                   image_size: int = 400, resample: str = "bilinear", *,
                   on_error: str = "raise", n_jobs: int | None = None, progress: bool = True
                   ) -> PreparedImages:
    """Decode into ``image_store`` every image it does not hold yet at this size and filter.

    Training, prediction and retrieval then read the images from the store
    (give it as the estimators' ``image_store``). Memory stays about 100 MB,
    whatever the number of images; a file named twice (or by two paths to the
    same name) is prepared once.

    Parameters
    ----------
    paths : sequence of str or path-like, or one-column DataFrame
        Image files (local paths or ``fsspec`` URLs, which are then kept locally).
    image_store : ImageStore, str or path-like
        The store, or its folder (see :class:`ImageStore`).
    image_size : int, default=400
    resample : str, default="bilinear"
        The Pillow filter of the estimators that will read the images (their
        ``resample``): a store holds each size and filter apart.
    on_error : {"raise", "skip"}, default="raise"
        ``"raise"`` stops before decoding anything when a file is missing,
        empty or not an image, naming every such file; ``"skip"`` leaves
        them out with a :class:`SkippedImagesWarning` naming them (as files
        that fail to decode later).
    n_jobs : int or None, default=None
        Decoding threads; None: one per core available to this process (its
        CPU affinity, at most 32).
    progress : bool, default=True
        Show a progress bar (``tqdm.auto``: a widget in a Jupyter notebook
        with ipywidgets installed, text elsewhere).

    Returns
    -------
    PreparedImages
        Images added, already in the store (their file unchanged), and unreadable.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from imageclef_concepts import prepare_images
    >>> folder = tempfile.mkdtemp()
    >>> paths = [os.path.join(folder, f"{i}.png") for i in range(3)]
    >>> for path in paths:
    ...     Image.fromarray(np.full((50, 40), 7, dtype=np.uint8)).save(path)
    >>> store = os.path.join(folder, "store")
    >>> prepare_images(paths, store, image_size=32, progress=False)
    PreparedImages(added=3, already_stored=0, unreadable=0)
    >>> prepare_images(paths, store, image_size=32, progress=False)
    PreparedImages(added=0, already_stored=3, unreadable=0)
    """
    from tqdm.auto import tqdm  # a widget in a notebook with ipywidgets, text elsewhere

    paths = image_column(paths)
    if not is_path_sequence(paths):
        raise ValueError("paths must be a sequence of image paths (str or path-like).")
    image_size = check_image_size(image_size)  # a chunk is a block: before the store
    unique = list({source_key(path): path for path in reversed(list(paths))}.values())[::-1]
    with warnings.catch_warnings():  # said below, in the words of preparing
        warnings.simplefilter("ignore", SkippedImagesWarning)
        given = as_image_store(image_store)
        files = ImageFiles(unique, image_size, resample, on_error, n_jobs, image_store=given,
                           store_required=True)
    files.warn_failures("on checking the files", consequence=_NOT_PREPARED)
    stored_before, known_failures = len(files.stored), len(files.failures)
    pending = np.setdiff1d(files.usable_indices(), list(files.stored))
    store = files._shelf.store if files._shelf is not None else given  # lost: no shelf
    lost = None if store is None else ownership_lost(store.path, store._identity)
    if store is not None and lost:  # kept after its folder was replaced: all held or not
        raise ImageStoreError(f"image store {store.path} is no longer the folder it opened "
                              f"({lost}): " + (f"{len(pending)} image(s) of {len(files)} are "
                              "not in it, and none can be added" if len(pending) else
                              f"its {len(files)} image(s) are not at its path any more")
                              + "; open the store again (ImageStore(path)) to make or use the "
                              "one there now.")
    if len(pending) and files._shelf is not None and not files._shelf.writable():  # opened
        why = (f"{files._shelf.folder} is not a folder of its own" if files._shelf.blocked()
               else "a read-only folder or disk")
        raise ImageStoreError(f"image store {store.path} cannot be written: {len(pending)} "
                              f"image(s) of {len(files)} are not in it, and none can be added "
                              f"({why}); name a store that can be written.")
    block = chunk_images(image_size)  # the store's disk takes them all: checked by ImageFiles
    with tqdm(total=len(pending), unit="image", desc="preparing", disable=not progress) as bar:
        for start in range(0, len(pending), block):
            indices = pending[start:start + block]
            files.load(indices)
            bar.update(len(indices))
    files.flush()  # every chunk written (its rows counted in files.stored), or warned
    files.warn_failures("on decoding", reported=known_failures, consequence=_NOT_PREPARED)
    return PreparedImages(len(files.stored) - stored_before, stored_before,
                          len(files.failures))
