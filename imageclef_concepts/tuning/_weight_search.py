"""The weight search behind EnsembleTuner: member weights per band of concepts.

Exhaustive in a band when the grid's combinations are few enough
(:data:`EXHAUSTIVE`), and otherwise coordinate ascent on the official score
over held-out member scores: one member's weight in a band is changed at a
time, to the grid value that scores best with the others held fixed, and
only when that strictly improves the score (the global threshold re-tuned
each time); so the score never decreases and the search ends.
"""

from __future__ import annotations

import inspect
import itertools
import warnings
from numbers import Integral
from typing import NamedTuple

import numpy as np

from ..concepts._metrics import threshold_curve
from ..models._decision import DecisionRule
from ..models._ranges import _real_values, check_ensemble_weights, weighted_mean
from ._ensemble_search import TOLERANCE

# More candidate thresholds per member (or weights in weight_grid) than a search can use:
# every search scores each candidate on every held-out image and concept (10**5 thresholds
# took 70 s, 10**6 six GB; 10**5 weights 97 s on 30 images).
MAX_CANDIDATES = 1000
DEFAULT_WEIGHT_GRID = (0.0, 0.5, 1.0, 2.0)  # EnsembleTuner's weight_grid


class WeightSearch(NamedTuple):
    """The result of :func:`weight_search`."""

    weights: np.ndarray  # (n_bands, n_members)
    threshold: float
    score: float
    start_score: float  # equal weights, threshold tuned
    history: list[float]


def weight_search(members, truth, n_true, candidates, band_of, n_bands, grid, max_sweeps=5):
    """Member weights per band of concepts from ``grid``, the global threshold re-tuned.

    In each band, every combination of grid weights is tried when there are
    at most :data:`EXHAUSTIVE` of them (two or three members: the best of
    the grid, exactly, for one band), else one member's weight at a time.

    Parameters
    ----------
    members : ndarray of shape (n_members, n_images, n_concepts)
        Held-out probabilities (0 where a member does not know a concept).
    truth, n_true
        As for :func:`vote_search`.
    candidates : ndarray
        Thresholds of the weighted mean, re-tuned after every weight tried.
    band_of : ndarray of int, shape (n_concepts,)
        Each concept's band (0..n_bands-1).
    n_bands : int
    grid : ndarray
        The weights each member may take in each band (coarse: few values).

    Returns
    -------
    WeightSearch
        Starts from equal weights (every member at the grid's largest value).
    """
    n_members = len(members)

    def scored(weights):
        per_concept = weights[0] if n_bands == 1 else weights[band_of].T
        normalised = check_ensemble_weights(per_concept, n_members,
                                            n_concepts=members.shape[2])
        combined = weighted_mean(members, normalised)
        in_kind = np.asarray(candidates, dtype=combined.dtype)  # compared as at prediction
        curve = threshold_curve(combined, truth, n_true, in_kind)
        best = int(np.argmax(curve))
        return float(curve[best]), float(in_kind[best])

    # Equal weights, as values of the grid (its largest), so the result is always on it.
    state = {"weights": np.full((n_bands, n_members), float(np.max(grid)))}
    state["score"], state["threshold"] = scored(state["weights"])
    history = [state["score"]]

    def tried(band, row):
        """Take ``row`` as the band's weights when it scores strictly better."""
        if not row.any() or np.array_equal(row, state["weights"][band]):
            return False
        trial = state["weights"].copy()
        trial[band] = row
        score, threshold = scored(trial)
        if score <= state["score"] + TOLERANCE:
            return False
        state.update(weights=trial, score=score, threshold=threshold)
        return True

    exhaustive = len(grid) ** n_members <= EXHAUSTIVE
    for _ in range(max_sweeps):
        moved = False
        for band in np.unique(band_of):  # a band without a concept has nothing to tune
            if exhaustive:
                for row in _distinct_rows(grid, n_members):
                    moved |= tried(band, row)
                history.append(state["score"])
                continue
            for member in range(n_members):
                for value in grid:
                    row = state["weights"][band].copy()
                    row[member] = value
                    moved |= tried(band, row)
                history.append(state["score"])
        if not moved or (exhaustive and n_bands == 1):
            break
    return WeightSearch(state["weights"], state["threshold"], state["score"], history[0],
                        history)


EXHAUSTIVE = 256  # weight combinations per band tried all together


def _distinct_rows(grid, n_members):
    """Every combination of grid weights but all zeros, one per ratio ((1, 1) is (2, 2))."""
    seen, rows = set(), []
    for row in itertools.product(grid, repeat=n_members):
        row = np.array(row)
        if row.any():
            key = tuple(np.round(row / row.max(), 12))
            if key not in seen:
                seen.add(key)
                rows.append(row)
    return rows


def check_search_options(tuner):
    """Refuse, before any member is fitted, an :class:`EnsembleTuner`'s ``weight_grid`` or
    ``bands`` the weight search cannot use (bands out of order were refused after every
    fold was fitted); and warn, naming them, of what its ``tune`` does not use, given (a
    value other than the default: it was dropped without a word): ``weight_grid``,
    ``bands`` and the ensemble's weights and threshold (its mean's) by votes,
    ``starts`` by weights. A warning, as
    scikit-learn's for a parameter its chosen mode does not use: a grid search over
    ``tune`` and ``bands`` runs."""
    weight_grid, bands, tune = tuner.weight_grid, tuner.bands, tuner.tune
    grid = _real_values(weight_grid, "weight_grid")
    if grid.ndim != 1 or not (np.isfinite(grid) & (grid >= 0)).all() or not grid.any() \
            or len(grid) > MAX_CANDIDATES:
        raise ValueError(f"weight_grid must be a non-empty list of finite weights >= 0, "
                         f"one of them positive (all zeros weigh no member), at most "
                         f"{MAX_CANDIDATES} of them; got {weight_grid!r:.80}.")
    if bands is not None and not isinstance(bands, Integral):
        _edges(bands)
    threshold = tuner.ensemble.threshold
    given = [f"{name}={value!r:.60}" for name, value, unchanged in (
        ("weight_grid", weight_grid, np.array_equal(grid, DEFAULT_WEIGHT_GRID)),
        ("bands", bands, bands is None),
        ("the ensemble's weights", tuner.ensemble.weights, tuner.ensemble.weights is None),
        ("the ensemble's threshold", threshold,
         DecisionRule.of(threshold) == DecisionRule.of(unused_threshold(tuner.ensemble))))
        if not unchanged]
    if tune == "votes" and given:
        warnings.warn(f"EnsembleTuner(tune='votes') does not use {' nor '.join(given)}: "
                      "they set the weight search (tune='weights'); the votes tune each "
                      "member's threshold and the vote count.", UserWarning, stacklevel=5)
    if tune == "weights" and tuner.starts != "each_vote_count":  # not the default
        warnings.warn(f"EnsembleTuner(tune='weights') does not use starts={tuner.starts!r}: "
                      "it sets the vote search's ascent (tune='votes').", UserWarning,
                      stacklevel=5)


def unused_threshold(ensemble):
    """The threshold a tuned vote ensemble carries: its class's default, as ``ensemble``'s
    own (for its mean) is unused by votes and warned of at fit, not at every prediction."""
    return inspect.signature(type(ensemble).__init__).parameters["threshold"].default


def band_edges(bands, support):
    """The support at which each band after the first begins (None: one band)."""
    if bands is None:
        return None
    if isinstance(bands, Integral):
        quantiles = np.quantile(support, np.linspace(0, 1, int(bands) + 1)[1:-1])
        return np.unique(np.ceil(quantiles)) if bands > 1 else None
    return _edges(bands)


def _edges(bands):
    """Given support edges as an array, or a ValueError naming ``bands`` and the value."""
    edges = _real_values(bands, "bands")
    if edges.ndim != 1 or not len(edges) or not np.isfinite(edges).all() or (
            np.diff(edges) <= 0).any():
        raise ValueError(f"bands must be an int or increasing support edges (a non-empty "
                         f"list of finite numbers); got {bands!r:.80}.")
    return edges


def band_of(support, edges):
    """Each concept's band: 0 below the first edge, then one more at each edge reached."""
    if edges is None:
        return np.zeros(len(support), dtype=np.intp)
    return np.searchsorted(edges, support, side="right")
