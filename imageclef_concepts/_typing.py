"""The types of the public API's arguments, named once for annotations and type checkers.

The library is typed (``py.typed``); ``mypy`` checks it in CI, and a user's
script under ``mypy --strict`` sees every public constructor and function
precisely (``tests/test_typing.py``). These names are what the numpydoc
``Parameters`` sections describe in words. SciPy, pandas, scikit-learn and
Keras ship no types: what the library takes of theirs is named here by what
it uses (:class:`SupportsArray`, :class:`SparseMatrix`, :class:`Estimator`...),
never as ``Any``, which would let any argument pass. A parameter's options
(``Literal``) are its ``_parameter_constraints``' ``StrOptions``, as
``tests/test_typing.py`` checks.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse

if TYPE_CHECKING:  # the class, for the annotation ImageStoreLike only
    from .images._store import ImageStore


class SupportsArray(Protocol):
    """What NumPy makes an array of by itself (``__array__``): an ndarray, a
    pandas DataFrame or Series, a memory map."""

    def __array__(self) -> NDArray[Any]: ...


class SparseMatrix(Protocol):
    """A SciPy sparse matrix or array, by what the library reads of it."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def tocsr(self) -> Any: ...


class Estimator(Protocol):
    """A scikit-learn estimator: the library's, scikit-learn's or your own (see
    :mod:`imageclef_concepts.models._base` for what a concept estimator provides)."""

    def fit(self, X: Any, y: Any, /) -> Any: ...

    def get_params(self, deep: bool = True) -> dict[str, Any]: ...


class Embedder(Protocol):
    """An image embedding: ``embed(X)`` gives one vector per image (k-NN retrieval)."""

    def embed(self, X: Any, /) -> Any: ...


class CrossValidator(Protocol):
    """A scikit-learn cross-validation splitter (``KFold(5)``...)."""

    def split(self, *args: Any, **kwargs: Any) -> Iterable[tuple[Any, Any]]: ...


#: A file path, or an ``fsspec`` URL where images are read.
PathLike = Union[str, "os.PathLike[str]"]

#: Images: pixels of shape (n, h, w[, 3]), or a sequence of image paths (a
#: list, a 1-d array, a pandas Series or DataFrame column).
Images = Union[SupportsArray, Sequence[PathLike], Sequence[ArrayLike]]

#: One image's concepts: a ``;``-joined string, a collection of strings, or None.
ImageConcepts = Union[str, Collection[str], None]

#: Concepts to restrict a score to (the secondary F1): names for concept
#: lists, column indices for indicator matrices.
ConceptSubset = Union[Collection[str], Collection[int]]

#: Targets: concepts per image, or a 0/1 indicator matrix (dense or sparse).
Targets = Union[Sequence[ImageConcepts], Sequence[Sequence[float]], SupportsArray,
                SparseMatrix]

#: What ``predict`` returns: ``y``'s own form (an object array of concept
#: tuples, or an indicator matrix).
Predictions = Union[NDArray[Any], sparse.csr_matrix]

#: Probabilities or scores, one column per concept.
FloatArray = NDArray[np.floating[Any]]

#: Numbers, one per item (a list, a 1-d or 2-d array): weights, thresholds.
Numbers = Union[Sequence[float], SupportsArray]

#: ``random_state``: a seed, a NumPy ``RandomState``, or None (fresh randomness).
RandomState = Union[int, np.random.RandomState, None]

#: ``cv``: a number of folds, a held-out fraction, a splitter, explicit
#: (train, test) index pairs, or ``"prefit"`` (the estimator is fitted already).
CrossValidation = Union[int, float, Literal["prefit"], CrossValidator,
                        Iterable[tuple[ArrayLike, ArrayLike]]]

#: ``image_store``: an :class:`~imageclef_concepts.ImageStore` or its folder.
ImageStoreLike = Union[PathLike, "ImageStore", None]

# Each parameter's options.
Resample = Literal["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"]
OnError = Literal["raise", "skip"]
Padding = Literal["valid", "same"]
Pooling = Literal["avg", "max", "gem"]
Augmentation = Literal["light", "standard"]
Distribution = Literal["mirrored", "multi_worker_mirrored"]
DtypePolicy = Literal["float32", "mixed_float16", "mixed_bfloat16"]
Combine = Literal["mean", "max", "union", "intersection", "vote"]
Voting = Literal["threshold", "mean_count"]
Merge = Literal["union", "replace"]
ThresholdStrategy = Literal["global", "per_concept"]
EnsembleTuning = Literal["votes", "weights"]
SearchStarts = Literal["each_vote_count", "best_common"]
CountFeatures = Literal["scores", "raw"]
HandleUnknown = Literal["ignore", "error"]
