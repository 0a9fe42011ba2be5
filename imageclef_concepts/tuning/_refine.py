"""Coarse-to-fine hyper-parameter search with plain ``GridSearchCV``.

The paper tuned its hyper-parameters "in a coarse to fine search". Here a
round is an ordinary ``GridSearchCV``; :func:`refine_grid` turns its result
into the next, finer grid around the best values.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from numbers import Integral, Real
from typing import TYPE_CHECKING

import numpy as np
from sklearn.utils._param_validation import Interval

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Sequence
    from typing import Any

    from sklearn.base import BaseEstimator
    from sklearn.model_selection import GridSearchCV


def refine_grid(search: GridSearchCV, param_grid: dict[str, Sequence[Any]] | None = None, *,
                estimator: BaseEstimator | None = None, n_values: int = 3,
                log_scale: str | Collection[str] = "auto") -> dict[str, list[Any]]:
    """A finer grid around the best values of a grid search.

    For each parameter of the grid, by the kind of its values:

    * numbers on a scale (all positive, spanning a factor of 10 or more,
      such as a learning rate): ``n_values`` log-spaced values between the
      geometric midpoints of the best value and its neighbours;
    * other numbers: ``n_values`` evenly spaced values between the arithmetic
      midpoints (integers stay integers);
    * ordered choices (tuples or lists, such as ``dense_units``): the best
      and its neighbours in the grid's order;
    * unordered choices (strings, booleans, None, objects): unchanged.

    At the edge of the old grid the step is mirrored, so the search can move
    outward. Values outside a parameter's valid range (its estimator's
    ``_parameter_constraints`` intervals) are never proposed.

    Parameters
    ----------
    search : fitted GridSearchCV or dict
        The search of the previous round (its ``best_params_``,
        ``param_grid`` and ``estimator`` are used), or the best parameters.
    param_grid : dict, default=None
        The previous grid, when ``search`` is a dict.
    estimator : estimator, default=None
        The searched estimator, to read valid ranges from, when ``search`` is
        a dict. Nested names (``estimator__learning_rate``) are followed.
    n_values : int, default=3
        Values per numeric parameter in the new grid.
    log_scale : "auto" or collection of str, default="auto"
        Which parameters are on a log scale; "auto" decides from the values.

    Returns
    -------
    dict
        The new grid, for the next ``GridSearchCV``.

    Examples
    --------
    >>> from imageclef_concepts import refine_grid
    >>> refine_grid({"learning_rate": 1e-3, "threshold": 0.2},
    ...             {"learning_rate": [1e-4, 1e-3, 1e-2], "threshold": [0.1, 0.2, 0.3]})
    {'learning_rate': [0.000316227766017, 0.001, 0.00316227766017], 'threshold': [0.15, 0.2, 0.25]}
    """
    if isinstance(search, dict):
        best_params = search
        if param_grid is None:
            raise ValueError("refine_grid needs param_grid when given best parameters.")
    else:
        best_params, param_grid = search.best_params_, search.param_grid
        estimator = search.estimator if estimator is None else estimator
    if not isinstance(param_grid, dict):
        raise ValueError("refine_grid refines one grid (a dict) at a time; got "
                         f"{type(param_grid).__name__}.")
    _check_options(n_values, log_scale)
    refined = {}
    for name, values in param_grid.items():
        values = list(values)
        best = best_params[name]
        valid = _valid_interval(estimator, name)
        refined[name] = _refine_one(name, best, values, n_values, log_scale, valid)
    return refined


def _check_options(n_values, log_scale):
    """Refuse, naming it, an ``n_values`` that is no whole number of at least 1 (0 gave the
    best value alone, True one value) and a ``log_scale`` that is not "auto" nor names (a
    bool was not iterable; one name was searched for as a substring)."""
    from ..files._numbers import check_whole_number

    check_whole_number(n_values, "n_values")
    if isinstance(log_scale, str) and log_scale == "auto":
        return
    if isinstance(log_scale, (str, bytes)) or not isinstance(log_scale, Collection) or not all(
            isinstance(name, str) for name in log_scale):
        raise ValueError(f"log_scale={log_scale!r:.80}: give 'auto' or a collection of "
                         "parameter names (such as {'learning_rate'}).")


def _refine_one(name, best, values, n_values, log_scale, valid):
    if _is_number(best) and all(_is_number(v) for v in values):
        ordered = sorted(set(values))
        on_log = (name in log_scale) if log_scale != "auto" else _looks_logarithmic(ordered)
        candidates = _numeric_neighbourhood(best, ordered, n_values, on_log)
        if valid is not None:
            candidates = [_into_range(v, best, valid) for v in candidates]
        if isinstance(best, Integral):
            candidates = np.round(candidates).astype(int)
        kept = {_as_type(best, v) for v in candidates if valid is None or v in valid}
        return sorted(kept | {best})
    if isinstance(best, (tuple, list)):
        position = values.index(best)
        return values[max(position - 1, 0):position + 2]
    return values


def _is_number(value):
    return isinstance(value, Real) and not isinstance(value, bool)


def _looks_logarithmic(ordered):
    return ordered[0] > 0 and ordered[-1] / ordered[0] >= 10


def _numeric_neighbourhood(best, ordered, n_values, on_log):
    """``n_values`` points between the midpoints of ``best`` and its neighbours."""
    to_scale = math.log if on_log else float
    from_scale = math.exp if on_log else float
    position = ordered.index(best)
    here = to_scale(best)
    below = to_scale(ordered[position - 1]) if position > 0 else None
    above = to_scale(ordered[position + 1]) if position < len(ordered) - 1 else None
    if below is None and above is None:
        step = math.log(10) if on_log else (abs(here) or 1.0)
        below, above = here - step, here + step
    elif below is None:  # at the lower edge: mirror the step outward
        below = 2 * here - above
    elif above is None:
        above = 2 * here - below
    # best in the middle; the rest spread to the midpoints on either side
    n_below = (n_values - 1) // 2
    n_above = n_values - 1 - n_below
    points = np.concatenate([
        np.linspace((here + below) / 2, here, n_below + 1)[:-1],
        [here],
        np.linspace(here, (here + above) / 2, n_above + 1)[1:],
    ])
    return [from_scale(point) for point in points]


def _into_range(value, best, valid):
    """``value``, or the nearest valid step toward it from ``best``."""
    if value in valid:
        return value
    bound, closed = ((valid.left, valid.closed in ("left", "both")) if value < best
                     else (valid.right, valid.closed in ("right", "both")))
    if bound is None:
        return value
    return bound if closed else (best + bound) / 2


def _as_type(best, value):
    # 12 significant digits: 0.15, not 0.15000000000000002, in printed grids
    return int(value) if isinstance(best, Integral) else float(f"{value:.12g}")


def _valid_interval(estimator, name):
    """The Interval constraint of a (possibly nested) parameter, or None."""
    if estimator is None:
        return None
    *path, parameter = name.split("__")
    owner = estimator
    for step in path:
        owner = owner.get_params()[step]
    constraints = getattr(type(owner), "_parameter_constraints", {}).get(parameter, [])
    intervals = [c for c in constraints if isinstance(c, Interval)]
    return intervals[0] if intervals else None
