"""Weights and their ranges: ensemble member weights, sample weights, positive-class weights.

Each check is written once and called wherever the value enters: when a
model is fitted, when it predicts after ``set_params``, and when it is loaded
from a file. The messages name the parameter and the offending value.

A weight is a real number, finite, and never so large that the float32
arithmetic of a network overflows (``np.finfo(np.float32).max`` is about
3.4e38): past that, training ends in NaN and predicts nothing.
"""

from numbers import Real

import numpy as np

FLOAT32_MAX = float(np.finfo(np.float32).max)


def _real_values(values, name):
    """``values`` as a float64 array, or a ValueError naming what is not a real number."""
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{name} must be numbers, not the string {values!r:.80}.")
    if _holds_boolean(values):  # NumPy reads [0.5, True] as [0.5, 1.0]
        raise ValueError(f"{name} must be numbers, not booleans (got {values!r:.80}); give "
                         "1.0 and 0.0 if that is meant.")
    if not isinstance(values, np.ndarray) and hasattr(values, "isna"):  # pandas: NA is missing
        missing = np.flatnonzero(np.asarray(values.isna()).ravel())
        if missing.size:
            raise ValueError(f"{name} contains a missing value (None, NA) at position "
                             f"{missing[0]}; give a number for every entry.")
    try:
        array = np.asarray(values)
    except ValueError as error:  # NumPy's "inhomogeneous shape": rows of unequal lengths
        raise ValueError(f"{name} is ragged: its rows have different lengths (got "
                         f"{values!r:.80}); give one number per entry, or rows of one "
                         "length.") from error
    if array.dtype.kind == "O":
        for position, value in np.ndenumerate(array):
            if _is_missing(value):
                raise ValueError(f"{name} contains a missing value (None, NA) at position "
                                 f"{position[0] if len(position) == 1 else position}; give a "
                                 "number for every entry.")
            if not isinstance(value, Real) or isinstance(value, bool):
                raise ValueError(f"{name} must be real numbers; got {type(value).__name__} "
                                 f"{value!r:.40} at position "
                                 f"{position[0] if len(position) == 1 else position}.")
        return array.astype(np.float64)
    if array.dtype.kind == "c":
        raise ValueError(f"{name} must be real numbers; got complex values such as "
                         f"{complex(array.ravel()[0])}.")
    if array.dtype.kind == "b":  # True is 1 to NumPy, but a flag is no weight
        raise ValueError(f"{name} must be numbers, not booleans (got "
                         f"{array.tolist()!s:.80}); give 1.0 and 0.0 if that is meant.")
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be numbers; got values of dtype {array.dtype}.")
    return array.astype(np.float64)


def _holds_boolean(values):
    """Whether ``values`` is a boolean, or a list or tuple holding one at any depth."""
    return isinstance(values, (bool, np.bool_)) or (
        isinstance(values, (list, tuple)) and any(map(_holds_boolean, values)))


def _is_missing(value):
    """None, or pandas' missing values (``pd.NA``, ``pd.NaT``) in an object array."""
    return value is None or type(value).__name__ in ("NAType", "NaTType")


def check_ensemble_weights(weights, n_estimators, name="weights", *, n_concepts=None):
    """Member weights of an ensemble, checked; normalised to sum to 1 without overflow.

    Parameters
    ----------
    weights : array-like of shape (n_estimators,) or (n_estimators, n_concepts), or None
        Finite, non-negative, not all zero (in each column: one per
        concept); None weighs every member alike.
    n_estimators : int
    name : str, default="weights"
    n_concepts : int or None, default=None
        The columns per-concept weights must have (None: not checked yet,
        before the ensemble knows its concepts).

    Returns
    -------
    ndarray of shape (n_estimators,) or (n_estimators, n_concepts)
        The weights divided by their sum (computed after dividing by the
        largest, so that ``[1e308, 1e308]`` is ``[0.5, 0.5]``, not NaN),
        each column on its own.

    Raises
    ------
    ValueError
        The same message at ``fit``, at ``predict`` (after ``set_params``)
        and when an archive is loaded.

    Examples
    --------
    >>> check_ensemble_weights([1e308, 1e308], 2)
    array([0.5, 0.5])
    >>> check_ensemble_weights([[1, 0], [3, 2]], 2, n_concepts=2)
    array([[0.25, 0.  ],
           [0.75, 1.  ]])
    """
    if weights is None:
        return np.full(n_estimators, 1.0 / n_estimators)
    values = _real_values(weights, name)
    if values.ndim not in (1, 2):
        raise ValueError(f"{name} must be one number per estimator (a flat list of "
                         f"{n_estimators}), or one column of them per concept; got an array "
                         f"of shape {values.shape}.")
    if values.shape[0] != n_estimators:
        raise ValueError(f"{name} has {values.shape[0]} values for {n_estimators} estimators"
                         + (f" (shape {values.shape})." if values.ndim == 2 else "."))
    if values.ndim == 2 and n_concepts is not None and values.shape[1] != n_concepts:
        raise ValueError(f"{name} has {values.shape[1]} column(s) (one per concept) but the "
                         f"ensemble has {n_concepts} concepts (classes_).")
    if not (np.isfinite(values).all() and (values >= 0).all() and (values.max(axis=0) > 0).all()):
        each = " for every concept" if values.ndim == 2 else ""
        raise ValueError(f"{name} must be finite and non-negative with a positive sum{each} "
                         f"(a weighted mean of probabilities); got {values.tolist()!s:.200}.")
    scaled = values / values.max(axis=0)
    return scaled / scaled.sum(axis=0)


def weighted_mean(members, weights):
    """The members' scores (n_members, n_images, n_concepts) averaged with normalised weights.

    ``weights`` as :func:`check_ensemble_weights` returns them: one per
    member, or one column per concept. The one implementation, so that
    weights tuned on out-of-fold scores decide exactly as the ensemble does.
    """
    if weights.ndim == 1:
        return np.tensordot(weights, members, axes=1)
    return np.einsum("mc,mnc->nc", weights, members)


def check_pos_weight(pos_weight, n_concepts=None, name="pos_weight"):
    """The positive-class weight(s) of binary cross-entropy, checked.

    Parameters
    ----------
    pos_weight : float, array-like of shape (n_concepts,), "balanced" or None
        Each weight positive and finite in float32 (at most about 3.4e38);
        ``"balanced"`` and None are returned as they are.
    n_concepts : int or None, default=None
        The number of concepts a per-concept array must have (None: not
        checked, before the vocabulary is known).
    name : str, default="pos_weight"

    Returns
    -------
    float, ndarray of float64, "balanced" or None

    Raises
    ------
    ValueError
        Naming the parameter and the first offending value.

    Examples
    --------
    >>> check_pos_weight([1, 2.5, 4], 3)
    array([1. , 2.5, 4. ])
    """
    if pos_weight is None or (isinstance(pos_weight, str) and pos_weight == "balanced"):
        return pos_weight
    values = _real_values(pos_weight, name)
    if values.ndim > 1 or (values.ndim == 1 and len(values) == 0):
        raise ValueError(f"{name} must be a number or one number per concept (a flat list); "
                         f"got an array of shape {values.shape}.")
    flat = np.atleast_1d(values)
    bad = flat[~(np.isfinite(flat) & (flat > 0) & (flat <= FLOAT32_MAX))]
    if bad.size:
        raise ValueError(f"{name} must be positive and finite (at most {FLOAT32_MAX:.3g}, the "
                         f"largest float32: the loss is computed in float32); got "
                         f"{bad[0]:g}" + (f" among {len(flat)} values" if values.ndim else "")
                         + ".")
    if values.ndim == 1 and n_concepts is not None and len(values) != n_concepts:
        raise ValueError(f"{name} has {len(values)} values for {n_concepts} concepts.")
    return float(values) if values.ndim == 0 else values


def check_sample_weight(sample_weight, n_images, name="sample_weight"):
    """Sample weights checked: one finite, non-negative number per image, float32-safe.

    Parameters
    ----------
    sample_weight : array-like of shape (n_images,) or None
    n_images : int
    name : str, default="sample_weight"

    Returns
    -------
    ndarray of float64, shape (n_images,)
        Ones for None (as scikit-learn's ``_check_sample_weight``).

    Raises
    ------
    ValueError
        For None (missing) entries, anything not a real number, NaN or
        infinite values, negative values (they turn the loss into a reward
        for being wrong), values that overflow float32 (above about 3.4e38),
        all zeros, or the wrong length or shape.

    Examples
    --------
    >>> check_sample_weight(None, 2)
    array([1., 1.])
    """
    if sample_weight is None:
        return np.ones(n_images)
    if isinstance(sample_weight, Real) and not isinstance(sample_weight, bool):
        sample_weight = np.full(n_images, float(sample_weight))
    values = _real_values(sample_weight, name)
    if values.ndim != 1:
        raise ValueError(f"{name} must be one number per image (1-d); got shape "
                         f"{values.shape}.")
    if len(values) != n_images:
        raise ValueError(f"{name} has {len(values)} values for {n_images} images.")
    for problem, bad in (("NaN", np.isnan(values)), ("infinite", np.isinf(values)),
                         ("negative (a negative weight rewards being wrong)", values < 0),
                         (f"above {FLOAT32_MAX:.3g}, the largest float32 (training computes "
                          "in float32)", values > FLOAT32_MAX)):
        if bad.any():
            position = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name} must be finite, non-negative numbers; the value at "
                             f"position {position} ({values[position]:g}) is {problem}.")
    if n_images and not values.any():
        raise ValueError(f"{name} is 0 for every image: there is nothing to learn from.")
    return values
