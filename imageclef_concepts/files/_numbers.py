"""Whole numbers that size or count: the one check of every such parameter.

An image side, a batch, epochs, filters, threads or workers is a whole number.
scikit-learn's ``Interval(Integral, ...)`` (and ``check_scalar(x, name, int)``)
takes what follows its convention, and so do we: NumPy integers
(``np.int64(4)``) are accepted; floats, even whole ones (``2.0``,
``np.float64(4)``), NaN, infinity, strings and 0-d arrays are refused. But a
bool is an ``Integral`` to Python, so scikit-learn takes ``epochs=True`` as one
epoch: here a bool is refused, as a flag given where a count was meant.

:class:`WholeNumber` is that interval for ``_parameter_constraints`` and
``validate_params``; :func:`check_sizes` applies it to each of a list of sizes
(a network's filters and hidden layers, a kernel side per block), which
scikit-learn's ``"array-like"`` lets through unchecked; :func:`check_whole_number`
to a size outside the parameters (an image store's shelf, an image side given to a
function). Each refuses before any allocation, in one line naming the parameter and
the value.
"""

from collections.abc import Sequence
from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval

from ._sizes import setting


class WholeNumber(Interval):
    """``Interval(Integral, left, right, closed=closed)`` that refuses bools.

    Parameters
    ----------
    left, right : int or None
        The bounds (None: unbounded on that side).
    closed : {"left", "right", "both", "neither"}, default="left"

    Examples
    --------
    >>> from imageclef_concepts.files._numbers import WholeNumber
    >>> [WholeNumber(1).is_satisfied_by(v) for v in (4, True, 2.0, 0)]
    [True, False, False, False]
    """

    def __init__(self, left, right=None, *, closed="left"):
        super().__init__(Integral, left, right, closed=closed)

    def is_satisfied_by(self, val):
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)

    def __str__(self):
        # scikit-learn's message: "must be a whole number (an int, not a bool) in the range..."
        return super().__str__().replace("an int", "a whole number (an int, not a bool)", 1)


def check_whole_number(value, name, smallest=1, unit=""):
    """``value`` as a Python int, if a :class:`WholeNumber` of at least ``smallest``.

    For a size outside ``_parameter_constraints`` (a method's argument, a
    command's value); ``unit`` (``" of pixels"``) is said after "whole number".

    Raises
    ------
    TypeError
        For no whole number (a bool, a float, a string, an array), naming ``name`` and the value.
    ValueError
        For a whole number below ``smallest``.
    """
    whole = WholeNumber(None, None, closed="neither").is_satisfied_by(value)
    if not whole or value < smallest:
        raise (ValueError if whole else TypeError)(
            f"{_shown(name, value)}: {name} must be a whole number{unit}, at least {smallest}"
            f"{' (not a bool)' if isinstance(value, (bool, np.bool_)) else ''}.")
    return int(value)


def check_sizes(value, name, smallest=1, *, one=False):
    """A list of sizes as Python ints, each a :class:`WholeNumber` of at least ``smallest``.

    Parameters
    ----------
    value : list, tuple or 1-d array of int; with ``one``, also one int
        The sizes as the user gave them.
    name : str
        The parameter (or the command line's flag, ``--filters``), named in errors.
    smallest : int, default=1
    one : bool, default=False
        Whether one whole number is taken too (``kernel_size``: one side for every block).

    Returns
    -------
    tuple of int, or int
        The sizes (one int when ``value`` is one).

    Raises
    ------
    ValueError
        One line naming the parameter, its value and the first entry that is no size.
    """
    size, shown = WholeNumber(smallest), _shown(name, value)
    if one and size.is_satisfied_by(value):
        return int(value)
    if isinstance(value, np.ndarray) and value.ndim == 1:
        items = list(value)  # NumPy's own scalars: np.float64(2.0) stays a float
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        items = list(value)
    else:
        raise ValueError(f"{shown}: give {name} as " + (
            "one whole number or " if one else "") + f"a list of whole numbers (such as "
            f"[32, 64]), not {_kind(value)}.")
    wrong = [item for item in items if not size.is_satisfied_by(item)]
    if wrong:
        raise ValueError(f"{shown}: give {name} as whole numbers of at least "
                         f"{smallest}, one a block or layer (a list such as [32, 64]), not "
                         f"{_kind(wrong[0])}.")
    return tuple(int(item) for item in items)


def _shown(name, value):
    """``name=value`` as given (``setting``), but a 0-d array, which is no number, as one."""
    zero_d = isinstance(value, np.ndarray) and value.ndim == 0
    return f"{name}={value!r}" if zero_d else setting(name, value)


def _kind(value):
    """What ``value`` is, said with its type: ``float 2.0``, ``a 0-d array 4``."""
    if isinstance(value, np.ndarray):
        return f"a {value.ndim}-d array {value.tolist()!r:.60}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} {value!r:.60}"
    return f"{type(value).__name__} {value!r:.60}"
