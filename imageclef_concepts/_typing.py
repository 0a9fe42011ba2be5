"""The types of the public API's arguments, named once for annotations and type checkers.

The library is typed (``py.typed``); ``mypy`` checks it in CI. These names
are what the numpydoc ``Parameters`` sections describe in words.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from typing import Any, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse

#: A file path, or an ``fsspec`` URL where images are read.
PathLike = Union[str, "os.PathLike[str]"]

#: Images: pixels of shape (n, h, w[, 3]), or a sequence of image paths (a
#: list, a 1-d array, a pandas Series or DataFrame column).
Images = Union[ArrayLike, Sequence[PathLike]]

#: One image's concepts: a ``;``-joined string, a collection of strings, or None.
ImageConcepts = Union[str, Collection[str], None]

#: Targets: concepts per image, or a 0/1 indicator matrix (dense or sparse).
Targets = Union[Sequence[ImageConcepts], ArrayLike, sparse.spmatrix, sparse.sparray]

#: What ``predict`` returns: ``y``'s own form (an object array of concept
#: tuples, or an indicator matrix).
Predictions = Union[NDArray[Any], sparse.csr_matrix]

#: Probabilities or scores, one column per concept.
FloatArray = NDArray[np.floating[Any]]
