"""What a user's ``X`` is: image paths (a sequence, or a table's one column) or pixels."""

import os

import numpy as np

from ..concepts._lists import is_frame

IMAGE_SHAPES = "(n, h, w, 3), (n, h, w, 1) or (n, h, w)"


def image_column(X):
    """``X``, or the one column of a one-column table (a DataFrame of paths); else refused.

    A table's rows are images when it has one column (``df[["path"]]``, as
    ``MostFrequentConcepts`` takes it too); a table of several columns is
    refused, naming them, since which one holds the images is the user's
    to say.
    """
    if not is_frame(X):
        return X
    columns = list(X.columns)
    if len(columns) == 1:
        return X.iloc[:, 0] if hasattr(X, "iloc") else X[columns[0]]
    named = ", ".join(repr(column) for column in columns[:10]) + (
        ", ..." if len(columns) > 10 else "")
    raise ValueError(
        f"X is a {type(X).__name__} of {len(columns)} columns ({named}): X must be images "
        f"(an array of pixels of shape {IMAGE_SHAPES}) or image paths, one per row. Give the "
        f"column of paths: X[{columns[0]!r}] or X[[{columns[0]!r}]].")


def is_path_sequence(X):
    """True for a sequence (list, tuple, 1-d array, pandas Series) of str or path-like items.

    Strings may be local paths or ``fsspec`` URLs (``s3://``, ``gs://``,
    ``file://``, ``memory://``...). A table is not: :func:`image_column`
    first gives the column of a one-column one.
    """
    if isinstance(X, (str, bytes, os.PathLike)):
        raise ValueError(
            f"X must be a sequence of image paths or an array of images, not one path: {X!r}."
        )
    if hasattr(X, "iloc") and getattr(X, "ndim", None) == 1:  # a pandas Series or column
        X = X.to_numpy(dtype=object)
    items = X if isinstance(X, (list, tuple)) or (
        isinstance(X, np.ndarray) and X.ndim == 1 and X.dtype.kind in "OS") else ()
    first = next((item for item in items if isinstance(item, bytes)), None)  # any, not X[0]
    if first is not None:  # os.listdir(b"...")'s names: not pixels, nor refused as such
        raise ValueError(f"X holds image paths as bytes ({bytes(first)!r}): give them as str, "
                         "os.fsdecode(path) of each (a name that is not UTF-8 is kept).")
    if isinstance(X, np.ndarray):
        return X.ndim == 1 and X.dtype.kind in "UO" and len(X) > 0 and isinstance(
            X[0], (str, os.PathLike))
    if isinstance(X, (list, tuple)):
        return len(X) > 0 and all(isinstance(item, (str, os.PathLike)) for item in X)
    return False


def checked_pixel_array(X):
    """``X`` as an array of images (one column of a table taken), checked: shape, kind, range."""
    X = np.asarray(image_column(X))
    if X.dtype.kind not in "biuf":
        raise ValueError(
            f"X must be an array of image pixels of shape {IMAGE_SHAPES}; got dtype {X.dtype}."
        )
    if X.ndim not in (3, 4) or (X.ndim == 4 and X.shape[-1] not in (1, 3)):
        raise ValueError(
            f"X must be images of shape {IMAGE_SHAPES}; got an array of shape {X.shape} "
            f"({X.ndim} dimensions)."
        )
    if len(X) == 0:
        raise ValueError("X holds no image (0 samples).")
    if X.shape[1] == 0 or X.shape[2] == 0:
        raise ValueError(f"X holds images of size {X.shape[1]} x {X.shape[2]}.")
    if X.dtype.kind == "b":
        raise ValueError("X is boolean; pass uint8 pixels (0-255) or floats in [0, 1].")
    if X.dtype.kind == "f":
        if not np.isfinite(X).all():
            raise ValueError(f"X contains {int((~np.isfinite(X)).sum())} NaN or infinite value(s).")
        low, high = X.min(), X.max()
        if low < 0 or high > 1:
            raise ValueError(
                f"Float images must be in [0, 1]; got values from {low:g} to {high:g}. "
                "Pass uint8 pixels (0-255) or divide by 255."
            )
    elif X.dtype != np.uint8:
        low, high = X.min(), X.max()
        if low < 0 or high > 255:
            raise ValueError(
                f"Integer images must be in 0-255; got values from {low} to {high}."
            )
    return X
