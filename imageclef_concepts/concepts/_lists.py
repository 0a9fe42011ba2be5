"""Concept lists: the forms a user may give an image's concepts in, and their identity.

An image's concepts arrive as a collection of strings (``["C0040405",
"C0817096"]``) or as one ``;``-joined string (``"C0040405;C0817096"``), the
form of the ImageCLEF run files. Everything in the library that reads
concepts goes through :func:`split_concepts`, so both forms mean the same.

The identity rule, the one place it is decided: a concept is its text with
surrounding white space removed, **upper-cased** (:func:`canonical_concept`).
The organisers' script compares concepts upper-cased, so ``c0040405`` and
``C0040405`` are one concept to the encoder, the estimators, the metric and
the files alike, and the library writes the canonical (upper-case) form.

An image without concepts is an empty string or collection, or a missing
value (:func:`is_missing`): None, NaN or pandas' ``NA``, what
``pd.read_csv`` gives for an empty cell.
"""

import numbers
import re
import sys

import numpy as np
from scipy import sparse

CONCEPT_SEPARATOR = ";"
CUI_PATTERN = re.compile(r"C\d+")  # a UMLS concept unique identifier, upper-cased


def looks_comma_joined(concept):
    """True for one "concept" that is really UMLS CUIs joined by commas ("C1,C2").

    The organisers' scripts split on ``;`` only, so such a string is one
    concept to them, and to the library; it is worth a warning, not a guess.
    """
    pieces = concept.split(",")
    return len(pieces) > 1 and all(CUI_PATTERN.fullmatch(piece.strip()) for piece in pieces)


def canonical_concept(concept):
    """The canonical form of one concept: stripped and upper-cased.

    Examples
    --------
    >>> canonical_concept(" c0040405 ")
    'C0040405'
    """
    return concept.strip().upper()


def is_missing(value):
    """True for a missing value, an image without concepts: None, NaN or pandas' ``NA``.

    A table's empty cell is one of these (``pd.read_csv`` gives NaN, a
    nullable string column ``pd.NA``), so each means "no concepts", as an
    empty string does.

    Examples
    --------
    >>> is_missing(float("nan")), is_missing(None), is_missing("")
    (True, True, False)
    """
    if value is None:
        return True
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return value != value  # NaN, of any float type
    pandas = sys.modules.get("pandas")  # a pandas NA comes with pandas imported
    return pandas is not None and value is pandas.NA


def split_concepts(concepts):
    """Return the canonical concepts of one image as a tuple of strings, in given order.

    Parameters
    ----------
    concepts : str or iterable of str or None
        A ``;``-joined string, a collection of concept strings, or a missing
        value (None, NaN, pandas' ``NA``: :func:`is_missing`) for no
        concepts. Each concept is put in canonical form
        (:func:`canonical_concept`) and empty pieces (as in ``"C1;"``) are
        dropped; duplicates are kept for the caller to decide.

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> split_concepts("c1; C2;")
    ('C1', 'C2')
    >>> split_concepts(float("nan"))
    ()
    """
    if is_missing(concepts):
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
    canonical = (canonical_concept(piece) for piece in pieces)
    return tuple(piece for piece in canonical if piece)


def is_concept_lists(y):
    """Tell whether ``y`` holds concept collections rather than an indicator matrix.

    Concept collections are a sequence (list, tuple, 1-d object or string
    array, pandas Series) whose items are strings, collections of strings or
    missing values (:func:`is_missing`; the first other item decides). An
    indicator matrix is a 2-d numeric array or a scipy sparse matrix.
    """
    if sparse.issparse(y) or len(getattr(y, "shape", ())) == 2:  # matrices and DataFrames
        return False
    if isinstance(y, np.ndarray):
        return y.ndim == 1 and y.dtype.kind in "OUS"
    if hasattr(y, "dtype") and hasattr(y, "ndim"):  # pandas Series and the like
        # pandas' own dtypes (StringDtype, the default for text in pandas 3) are
        # not NumPy dtypes, but they have a kind: "O" for strings.
        return y.ndim == 1 and getattr(y.dtype, "kind", None) in tuple("OUS")
    if isinstance(y, (str, bytes)) or not np.iterable(y):
        return False
    first = next((item for item in y if not is_missing(item)), None)
    if first is None or isinstance(first, (str, set, frozenset)):  # None: no item, or all missing
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


#: Why an estimator may get class numbers for concepts, and the target that works instead.
LABEL_ENCODED = (
    "scikit-learn's cross_val_predict with method='predict_proba' (or 'decision_function') "
    "numbers the distinct values of y (of each column of a 2-d y) before the estimator sees "
    "them, so concept lists arrive as class numbers (lists of lists of different lengths "
    "fail inside NumPy). "
    "Give such a tool an indicator matrix: Y = ConceptEncoder().fit_transform(y), whose "
    "columns are the encoder's classes_ (method='predict' takes concept lists as they are).")


def as_binary_csr(y, name):
    """A 0/1 indicator matrix as CSR, checked.

    Values other than 0 and 1 are refused: a list of integer labels per image
    (``[[3, 7], [2, 9]]``) looks like a matrix but is not an indicator, and
    reading it as one would give a silently wrong answer.
    """
    if isinstance(y, (str, bytes)) or not (hasattr(y, "shape") or np.iterable(y)):
        raise ValueError(f"{name} must be an indicator matrix or concept lists, got {y!r}.")
    if sparse.issparse(y):
        matrix = sparse.csr_matrix(y)
        values = matrix.data
    else:
        values = np.asarray(y)
        if values.ndim != 2:
            raise ValueError(
                f"{name} must be a 2-d indicator matrix (images x concepts) or a "
                f"sequence of concept collections; got an array of shape {values.shape}."
                + (f" Integers in place of concepts: {LABEL_ENCODED}"
                   if values.ndim == 1 and values.dtype.kind in "iu" else ""))
        matrix = None
    if values.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric; got dtype {values.dtype}.")
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise ValueError(f"{name} contains NaN.")
    if values.dtype.kind != "b":
        # One pass over the values: counting the 0s and 1s is cheaper than np.unique.
        not_binary = values[(values != 0) & (values != 1)]
        if not_binary.size:
            raise ValueError(
                f"{name} must be a 0/1 indicator matrix (images x concepts) or concept "
                f"lists; got values such as {np.unique(not_binary)[:5].tolist()}. Give "
                "each image's labels as strings (e.g. [['3', '7'], ['2', '9']]) if they "
                f"are label lists. If you gave strings: {LABEL_ENCODED}")
    if matrix is not None:
        matrix = matrix.astype(np.int64)
        matrix.eliminate_zeros()
        return matrix
    return sparse.csr_matrix(values.astype(bool, copy=False), dtype=np.int64)


def is_frame(y):
    """True for a 2-d table with columns: a pandas (or polars...) DataFrame."""
    return hasattr(y, "columns") and len(getattr(y, "shape", ())) == 2


def as_target(y, name="y"):
    """``y`` in one of the library's two target forms: concept lists or an indicator.

    A DataFrame whose column names are strings is an indicator matrix named by
    concept: it becomes each row's concept list (a 1-d object array of tuples
    of the names of its columns holding 1), so that two frames compare by
    concept name and an estimator learns the names, not the positions. Its
    names are concepts like any other (stripped, upper-cased): a name that is
    empty once stripped, that holds ``;`` (which separates concepts), or that
    names the same concept as another column (``"C1"`` and ``"c1"``) is
    refused, never dropped or merged. A frame whose columns are the default
    ``0..n-1`` (``pd.DataFrame(Y)``) is a plain indicator matrix, read by
    position; any other column labels that are not strings (other numbers,
    bytes, None, tuples of a MultiIndex) are refused: they would be compared
    by position, whatever their order. Values other than 0 and 1 are refused,
    naming a column. Anything else (concept lists, a Series of strings,
    arrays, sparse matrices) is returned as it is.

    Parameters
    ----------
    y : target
    name : str, default="y"
        How errors name ``y``.

    Returns
    -------
    ndarray or the given ``y``

    Examples
    --------
    >>> import pandas as pd
    >>> as_target(pd.DataFrame([[1, 0], [1, 1]], columns=["C1", "C2"]))
    array([('C1',), ('C1', 'C2')], dtype=object)
    """
    if not is_frame(y):
        return y
    columns = list(y.columns)
    named = _checked_column_names(columns, y, name)
    values = y.to_numpy() if hasattr(y, "to_numpy") else np.asarray(y)
    if values.dtype == object:  # a nullable or mixed column: numbers only, or refused below
        try:
            values = values.astype(np.float64)
        except (TypeError, ValueError):
            pass
    problem = _bad_column(columns, values)
    if problem:
        raise ValueError(f"{name} is a {type(y).__name__}, read as an indicator matrix whose "
                         f"columns are the concepts: its values must be 0 or 1, but {problem}.")
    indicator = as_binary_csr(values, name)
    if not named:
        return indicator.toarray()
    names = np.array(columns, dtype=object)
    return as_concept_array([tuple(names[indicator.indices[start:end]])
                             for start, end in zip(indicator.indptr[:-1], indicator.indptr[1:])])


def _checked_column_names(columns, frame, name):
    """True when a frame's columns name concepts, False for the default ``0..n-1``; else raise.

    Concept names must be distinct concepts, each one concept; labels that are
    not strings are read by position, so only the default ``0..n-1`` in order
    is taken (any other would be compared by position, not by label).
    """
    where = f"{name} is a {type(frame).__name__} whose columns are the concepts"
    if all(isinstance(column, str) for column in columns):
        seen = {}
        for column in columns:
            concept = canonical_concept(column)
            if not concept:
                raise ValueError(f"{where}, but column {column!r} has no name (empty once "
                                 "white space is stripped): name every column by its concept.")
            if CONCEPT_SEPARATOR in concept:
                raise ValueError(f"{where}, but column {column!r} holds "
                                 f"{CONCEPT_SEPARATOR!r}, which separates concepts: one "
                                 "column is one concept.")
            if concept in seen:
                raise ValueError(f"{where}, but columns {seen[concept]!r} and {column!r} are "
                                 f"the same concept {concept!r} (concepts compare stripped "
                                 "and upper-cased): give each concept one column.")
            seen[concept] = column
        return True
    if all(isinstance(column, numbers.Integral) and not isinstance(column, bool)
           and column == position for position, column in enumerate(columns)):
        return False  # pd.DataFrame(Y): a plain indicator matrix, by position
    odd = next(column for position, column in enumerate(columns)
               if not isinstance(column, str) and not (
                   isinstance(column, numbers.Integral) and not isinstance(column, bool)
                   and column == position))
    raise ValueError(
        f"{name} is a {type(frame).__name__} with a column labelled {odd!r} "
        f"({type(odd).__name__}): a frame's columns must all be concept names (strings), "
        "or be the default 0..n-1 of an unnamed indicator matrix (read by position). Name "
        "the columns by concept, or pass frame.to_numpy() to compare by position.")


def describe_target(y):
    """How messages name a target as the user gave it: "a DataFrame of shape (3, 2)..."."""
    if is_frame(y):
        columns = list(y.columns)
        kind = ("concept-named columns" if columns and all(isinstance(c, str) for c in columns)
                else "unnamed (0..n-1) columns")
        return f"a {type(y).__name__} of shape {tuple(y.shape)} with {kind}"
    if sparse.issparse(y):
        return f"a sparse matrix of shape {y.shape}"
    if isinstance(y, np.ndarray):
        return f"an array of shape {y.shape} and dtype {y.dtype}"
    return f"a {type(y).__name__}"


def _bad_column(columns, values):
    """Which column of a frame first holds something other than 0 or 1 (None: none)."""
    for position, column in enumerate(columns):
        cells = values[:, position]
        try:
            bad = ~np.isin(cells.astype(np.float64), (0.0, 1.0))
        except (TypeError, ValueError):
            return f"column {column!r} is not numeric"
        if bad.any():
            value = cells[bad][0]
            return f"column {column!r} holds {getattr(value, 'item', lambda: value)()!r}"
    return None
