"""ImageLoader: image files decoded into a uint8 array, as a scikit-learn transformer."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import StrOptions

from ..files._numbers import WholeNumber
from ._decoding import RESAMPLING
from ._inputs import image_column, is_path_sequence
from ._sources import ImageFiles, check_image_size
from ._store import ImageStore, as_image_store

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Sequence

    from numpy.typing import NDArray
    from typing_extensions import Self

    from .._typing import ImageStoreLike, PathLike, Resample


class ImageLoader(TransformerMixin, BaseEstimator):
    """Decode image files into a uint8 array, for pipelines that want pixels.

    Parameters
    ----------
    image_size : int, default=400
        Side of the square output images.
    resample : {"nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"}, \
            default="bilinear"
        Pillow resampling filter.
    n_jobs : int or None, default=None
        Decoding threads; None: one per core available to this process (its
        CPU affinity, at most 32).
    image_store : str, path-like, ImageStore or None, default=None
        A folder of prepared images (:class:`~imageclef_concepts.ImageStore`):
        images it holds at this size and filter are read from it, the others
        decoded and added.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from imageclef_concepts import ImageLoader
    >>> folder = tempfile.mkdtemp()
    >>> paths = [os.path.join(folder, f"{i}.png") for i in range(2)]
    >>> for path in paths:
    ...     Image.fromarray(np.zeros((50, 40), dtype=np.uint8)).save(path)
    >>> ImageLoader(image_size=32).fit_transform(paths).shape
    (2, 32, 32, 3)

    In a ``Pipeline(memory=...)`` before a concept estimator, the decoded
    arrays are cached between the fits of a grid search.
    """

    _parameter_constraints = {
        "image_size": [WholeNumber(1)],
        "resample": [StrOptions(set(RESAMPLING))],
        "n_jobs": [WholeNumber(1), None],
        "image_store": [str, os.PathLike, ImageStore, None],
    }

    def __init__(self, image_size: int = 400, resample: Resample = "bilinear",
                 n_jobs: int | None = None, image_store: ImageStoreLike = None) -> None:
        self.image_size = image_size
        self.resample = resample
        self.n_jobs = n_jobs
        self.image_store = image_store

    def fit(self, X: Sequence[PathLike], y: None = None) -> Self:
        """Check the parameters; nothing is learned.

        Parameters
        ----------
        X : sequence of str or path-like
        y : None
            Ignored.

        Returns
        -------
        self : ImageLoader
        """
        self._validate_params()
        return self

    def transform(self, X: Sequence[PathLike]) -> NDArray[np.uint8]:
        """Decode every file of ``X``.

        Parameters
        ----------
        X : sequence of str or path-like, or one-column DataFrame of them

        Returns
        -------
        ndarray of uint8, shape (n, image_size, image_size, 3)
        """
        self._validate_params()
        X = image_column(X)
        if not is_path_sequence(X):
            raise ValueError("ImageLoader expects a sequence of image paths.")
        check_image_size(self.image_size, len(X))  # the array returned, before any work
        files = ImageFiles(X, self.image_size, self.resample, "raise", self.n_jobs,
                           image_store=as_image_store(self.image_store))
        images = files.load(np.arange(len(files)))[0]
        files.flush()  # in the store (or its warning given) when the images are returned
        return images

    def _image_shelves(self):  # the store it fills: see images._shared.check_stores_room
        return [(self.image_store, "image_size", self.image_size, self.resample)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = False
        return tags
