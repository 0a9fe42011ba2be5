"""Concept lists: the forms a user may give an image's concepts in.

An image's concepts arrive as a collection of strings (``["C0040405",
"C0817096"]``) or as one ``;``-joined string (``"C0040405;C0817096"``), the
form of the ImageCLEF run files. Everything in the library that reads
concepts goes through :func:`split_concepts`, so both forms mean the same.
"""

import numbers

import numpy as np
from scipy import sparse

CONCEPT_SEPARATOR = ";"


def split_concepts(concepts):
    """Return the concepts of one image as a tuple of strings, in given order.

    Parameters
    ----------
    concepts : str or iterable of str or None
        A ``;``-joined string, a collection of concept strings, or None (no
        concepts). Surrounding white space is stripped and empty pieces (as in
        ``"C1;"``) are dropped; duplicates are kept for the caller to decide.

    Returns
    -------
    tuple of str
    """
    if concepts is None:
        return ()
    if isinstance(concepts, str):
        pieces = concepts.split(CONCEPT_SEPARATOR)
    elif isinstance(concepts, (bytes, numbers.Number)) or not np.iterable(concepts):
        raise TypeError(
            "An image's concepts must be a ';'-joined string or a collection of "
            f"strings, got {type(concepts).__name__}: {concepts!r}"
        )
    else:
        pieces = []
        for concept in concepts:
            if not isinstance(concept, str):
                raise TypeError(
                    f"Concepts must be strings, got {type(concept).__name__}: "
                    f"{concept!r} in {concepts!r}"
                )
            pieces.append(concept)
    stripped = (piece.strip() for piece in pieces)
    return tuple(piece for piece in stripped if piece)


def is_concept_lists(y):
    """Tell whether ``y`` holds concept collections rather than an indicator matrix.

    Concept collections are a sequence (list, tuple, 1-d object or string
    array, pandas Series) whose items are strings, collections of strings or
    None. An indicator matrix is a 2-d numeric array or a scipy sparse matrix.
    """
    if sparse.issparse(y):
        return False
    if isinstance(y, np.ndarray):
        return y.ndim == 1 and y.dtype.kind in "OUS"
    if hasattr(y, "dtype") and hasattr(y, "ndim"):  # pandas Series and the like
        return y.ndim == 1 and np.dtype(y.dtype).kind in "OUS"
    if isinstance(y, (str, bytes)) or not np.iterable(y):
        return False
    items = list(y[:1]) if hasattr(y, "__getitem__") else list(y)[:1]
    if not items:
        return True
    first = items[0]
    if first is None or isinstance(first, (str, set, frozenset)):
        return True
    if isinstance(first, (list, tuple)):
        return len(first) == 0 or isinstance(first[0], str)
    return False


def as_concept_array(concept_lists):
    """Return concept collections as a 1-d object array of tuples of strings.

    This is the form ``predict`` returns for a model fitted on concept lists:
    it indexes like any scikit-learn target (``y[train]``), and the official
    score reads it directly.
    """
    result = np.empty(len(concept_lists), dtype=object)
    for index, concepts in enumerate(concept_lists):
        result[index] = split_concepts(concepts)
    return result


def as_binary_csr(y, name):
    """An indicator matrix as CSR with ones where ``y`` is non-zero."""
    if sparse.issparse(y):
        return (sparse.csr_matrix(y) != 0).astype(np.int64)
    array = np.asarray(y)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-d indicator matrix (images x concepts) or a "
            f"sequence of concept collections; got an array of shape {array.shape}."
        )
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric; got dtype {array.dtype}.")
    if array.dtype.kind == "f" and np.isnan(array).any():
        raise ValueError(f"{name} contains NaN.")
    return sparse.csr_matrix(array != 0, dtype=np.int64)
