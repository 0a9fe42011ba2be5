"""The searches behind EnsembleTuner: members' thresholds with the vote count, and weights.

Both are exhaustive when the grid is small enough, and coordinate ascent on
the official score over held-out member scores otherwise: one coordinate (a
member's threshold, or a member's weight in a band of concepts) is changed
at a time, to the grid value that scores best with the others held fixed,
and only when that strictly improves the score; so the score never
decreases and the search ends. Each step is exact.

Votes. Each member's scores are read once into *buckets*: how many of its
candidate thresholds each score reaches (a score votes at candidate ``q``
when its bucket exceeds ``q``). A member's step then needs one pass over
the images x concepts: the votes of the other members are fixed, so a
histogram per image of (their votes, this member's bucket) gives, for every
candidate threshold of this member and every vote count ``L`` at once, how
many concepts each image gets and how many of them are true. Two candidate
thresholds of a member between which none of its scores lies give the same
votes (tied scores: a k-NN member's are multiples of ``1 / k``); counting
only one of them, when the members' distinct thresholds times the vote
counts are at most :data:`EXACT_VOTES`, every combination is tried (one
such table per combination of the other members' thresholds, over the
distinct cells of image and members' votes): the best of the grid, exactly.
Measured (``benchmarks/vote_search.py``, 1,000 images x 1,000 concepts),
that costs 0.8-1.1 times the ascent for three or four members up to the
limit, about 2 times for two members with 20 thresholds each.
"""

from __future__ import annotations

import itertools
import math
from numbers import Integral
from typing import NamedTuple

import numpy as np
from scipy import sparse

from ..concepts._metrics import f1_from_counts, official_mean, threshold_curve
from ..models._ranges import check_ensemble_weights, weighted_mean

TOLERANCE = 1e-12  # a step is taken only when it gains more than rounding


class VoteSearch(NamedTuple):
    """The result of :func:`vote_search`."""

    thresholds: list[float]  # one per member
    min_votes: int
    score: float
    start_score: float  # the best common threshold and vote count
    history: list[float]  # the score after each step of the ascent kept: never decreasing
    exact: bool = False  # every combination tried (the best of the grid), not an ascent


class WeightSearch(NamedTuple):
    """The result of :func:`weight_search`."""

    weights: np.ndarray  # (n_bands, n_members)
    threshold: float
    score: float
    start_score: float  # equal weights, threshold tuned
    history: list[float]


def vote_buckets(scores, candidates):
    """How many of ``candidates`` (ascending) each score reaches; NaN reaches none.

    Stored in the smallest unsigned integer type that holds ``len(candidates)``
    (one byte for up to 255 candidates): a narrower type would wrap.
    """
    candidates = np.asarray(candidates, dtype=scores.dtype)
    buckets = np.searchsorted(candidates, scores, side="right")
    buckets[np.isnan(scores)] = 0
    return buckets.astype(np.min_scalar_type(len(candidates)))


def vote_search(buckets, n_candidates, truth, n_true, max_sweeps=5, starts="each_vote_count",
                exact_limit=None):
    """Each member's threshold (a candidate index) and the vote count, for the official F1.

    Exhaustive (the best of the grid) when the product of the members'
    distinct candidate thresholds (:func:`distinct_thresholds`) times the
    vote counts is at most ``exact_limit``; coordinate ascent otherwise.

    Parameters
    ----------
    buckets : list of ndarray of shape (n_images, n_concepts)
        :func:`vote_buckets` of each member's held-out scores.
    n_candidates : int
        Candidate thresholds per member.
    truth : sparse matrix of shape (n_images, n_concepts)
        The true concepts that are columns of the scores.
    n_true : ndarray of shape (n_images,)
        The size of each true set (unknown concepts included).
    max_sweeps : int, default=5
        Passes over the members at most, from each start (ascent).
    starts : {"each_vote_count", "best_common"}, default="each_vote_count"
        Where the ascent starts: from the best common threshold for each vote
        count (one ascent per count; the best is kept), or only from the best
        common threshold and count overall (n_members times cheaper; a
        single member's move rarely leaves a common threshold's best count,
        so it misses more of the settings where members differ).
    exact_limit : int or None, default=None
        Combinations searched exhaustively at most; None: :data:`EXACT_VOTES`
        (0 always ascends).

    Returns
    -------
    VoteSearch
        ``thresholds`` as candidate indices, the lowest of equivalent ones;
        ``history`` is that of the ascent kept (exhaustive: the best common
        setting's score, then the best score; the best common setting is
        kept unless another scores strictly better). Its score is never below
        that of any setting the search scored, the common ones included.
    """
    truth = sparse.csr_matrix(truth)
    true_at = (np.repeat(np.arange(truth.shape[0]), np.diff(truth.indptr)), truth.indices)
    n_members = len(buckets)
    common = np.stack([_f1_by_votes(sum((b > q).astype(np.int16) for b in buckets), true_at,
                                    n_true, n_members) for q in range(n_candidates)])
    levels = [distinct_thresholds(b, n_candidates) for b in buckets]
    limit = EXACT_VOTES if exact_limit is None else exact_limit
    if math.prod(map(len, levels)) * n_members <= limit:
        # As a step of the ascent: away from the best common setting only when strictly better.
        q, votes = np.unravel_index(int(np.argmax(common)), common.shape)
        start = float(common[q, votes])
        found = _exhaustive(buckets, levels, true_at, n_true)
        if found.score <= start + TOLERANCE:
            found = found._replace(thresholds=[int(q)] * n_members, min_votes=int(votes) + 1,
                                   score=start)
        return found._replace(start_score=start, history=[start, found.score])
    if starts == "best_common":
        points = [np.unravel_index(int(np.argmax(common)), common.shape)]
    else:
        points = [(int(np.argmax(common[:, votes])), votes) for votes in range(n_members)]
    best = None
    for q, votes in points:
        found = _ascend(buckets, n_candidates, true_at, n_true, int(q), int(votes) + 1,
                        float(common[q, votes]), max_sweeps)
        if best is None or found.score > best.score + TOLERANCE:
            best = found
    return best._replace(start_score=float(common.max()))


EXACT_VOTES = 1024
"""Vote settings (distinct thresholds of every member x vote counts) searched exhaustively."""


def distinct_thresholds(buckets, n_candidates):
    """The candidate indices that give a member distinct votes: the lowest of each run.

    Candidates ``q - 1`` and ``q`` give the same votes unless a score's
    bucket is ``q`` (a score at or above candidate ``q - 1``, below ``q``).
    """
    present = np.bincount(np.ravel(buckets), minlength=n_candidates + 1)[1:n_candidates] > 0
    return [0, *(int(q) + 1 for q in np.flatnonzero(present))]


def _exhaustive(buckets, levels, true_at, n_true):
    """The best of every combination of ``levels`` (distinct thresholds) and vote count.

    Each member's buckets become the number of its distinct thresholds they
    exceed (it votes at the ``j``-th when that number exceeds ``j``), and the
    images x concepts become their distinct cells (an image and every
    member's number) with their counts: few, when the scores are tied or
    mostly low. One member (with the most distinct thresholds) is then scored
    for all its thresholds and vote counts at once, as in an ascent's step,
    for each combination of the others' thresholds; the first best is kept
    (the lowest thresholds, then the lowest count, of equally scoring settings).
    """
    n_members, n_images = len(buckets), buckets[0].shape[0]
    classes = [np.searchsorted(level, np.arange(int(b.max()) + 1)).astype(np.int16)[b]
               for b, level in zip(buckets, levels)]  # by a lookup table: int16, not int64
    first, weights = _cells(classes, [len(level) + 1 for level in levels], n_images)
    cells = [(member.ravel()[first], member[true_at]) for member in classes]
    rows = (first // buckets[0].shape[1], true_at[0])
    table_member = int(np.argmax([len(level) for level in levels]))
    others = [member for member in range(n_members) if member != table_member]
    own, width, n_levels = cells[table_member], n_members + 1, len(levels[table_member])
    best = None
    for choice, votes in _vote_counts([cells[m] for m in others],
                                      [len(levels[m]) for m in others], (len(first), len(rows[1]))):
        table = _official_by_votes(
            _histograms(rows[0], votes[0], own[0], n_images, n_levels, width, weights),
            _histograms(rows[1], votes[1], own[1], n_images, n_levels, width), n_true)
        q, count = np.unravel_index(int(np.argmax(table)), table.shape)
        if best is None or table[q, count] > best[0] + TOLERANCE:
            best = (float(table[q, count]), choice, int(q), int(count) + 1)
    score, choice, q, min_votes = best
    thresholds = [0] * n_members
    for member, index in zip(others, choice):
        thresholds[member] = levels[member][index]
    thresholds[table_member] = levels[table_member][q]
    return VoteSearch(thresholds, min_votes, score, score, [score], exact=True)


def _cells(classes, sizes, n_images):
    """The distinct (image, each member's class) of the images x concepts: where, how many.

    Returns the flat index of each cell's first place and its count (float,
    for weighted histograms).
    """
    n_concepts = classes[0].shape[1]
    key = np.repeat(np.arange(n_images, dtype=np.int64), n_concepts)
    span = n_images
    for member, size in zip(classes, sizes):
        if span * size >= 2 ** 62:  # renumber the keys so far before they overflow
            _, key = np.unique(key, return_inverse=True)
            span = int(key.max()) + 1
        key = key * size + member.ravel()
        span *= size
    _, first, counts = np.unique(key, return_index=True, return_counts=True)
    return first, counts.astype(np.float64)


def _vote_counts(members, sizes, shapes):
    """``(choice, votes)`` for every combination of the members' distinct thresholds.

    ``members`` holds each member's classes in the cells and at the true
    concepts; ``votes`` the votes in both. Depth first, in order, so that each
    member's votes are added once per combination of the members before it.
    """
    if not members:
        yield (), tuple(np.zeros(shape, dtype=np.int16) for shape in shapes)
        return
    for rest, votes in _vote_counts(members[:-1], sizes[:-1], shapes):
        for index in range(sizes[-1]):
            yield (*rest, index), tuple(sofar + (own > index)
                                        for sofar, own in zip(votes, members[-1]))


def _ascend(buckets, n_candidates, true_at, n_true, q, min_votes, score, max_sweeps):
    """Coordinate ascent from every member at candidate ``q`` and ``min_votes``."""
    n_members = len(buckets)
    chosen = [q] * n_members
    counts = sum((b > q).astype(np.int16) for b in buckets)
    history = [score]
    for _ in range(max_sweeps):
        moved = False
        for member, own in enumerate(buckets):
            others = counts - (own > chosen[member])
            table = _member_table(others, own, n_candidates, true_at, n_true, n_members)
            q, votes = np.unravel_index(int(np.argmax(table)), table.shape)
            if table[q, votes] > score + TOLERANCE:
                chosen[member], min_votes, score = int(q), int(votes) + 1, float(table[q, votes])
                counts = others + (own > q)
                moved = True
            history.append(score)
        if not moved:
            break
    return VoteSearch(chosen, min_votes, score, history[0], history)


def _f1_by_votes(counts, true_at, n_true, n_members):
    """Official F1 for each vote count 1..n_members, the votes per concept given."""
    n, width = counts.shape[0], n_members + 1
    predicted = _row_histogram(counts, width)
    correct = np.bincount(true_at[0] * width + counts[true_at],
                          minlength=n * width).reshape(n, width)
    return _official_by_votes(predicted, correct, n_true)


def _row_histogram(counts, width):
    keys = np.arange(counts.shape[0])[:, np.newaxis] * width + counts
    return np.bincount(keys.ravel(), minlength=counts.shape[0] * width).reshape(-1, width)


def _official_by_votes(predicted, correct, n_true):
    """F1 from per-image histograms over vote counts (last axis): ``L`` votes or more."""
    at_least = np.flip(np.cumsum(np.flip(predicted, -1), -1), -1)[..., 1:]
    hits = np.flip(np.cumsum(np.flip(correct, -1), -1), -1)[..., 1:]
    shape = (-1,) + (1,) * (predicted.ndim - 1)
    return official_mean(f1_from_counts(hits, np.reshape(n_true, shape), at_least), n_true)


def _member_table(others, own, n_candidates, true_at, n_true, n_members):
    """Official F1 for every (candidate of this member, vote count): shape (k, n_members)."""
    width = n_members + 1
    predicted = _shifted_histograms(others, own, n_candidates, width, None)
    correct = _shifted_histograms(others, own, n_candidates, width, true_at)
    return _official_by_votes(predicted, correct, n_true)


def _shifted_histograms(others, own, n_candidates, width, at):
    """Per image and candidate ``q``: concepts by total votes (the others' + this member's).

    Counted once by (the others' votes, this member's bucket); at candidate
    ``q`` the concepts whose bucket exceeds ``q`` move up one vote.
    """
    n = others.shape[0]
    rows = np.arange(n)[:, np.newaxis] if at is None else at[0]
    votes, bucket = (others, own) if at is None else (others[at], own[at])
    return _histograms(rows, votes, bucket, n, n_candidates, width)


def _histograms(rows, votes, bucket, n, n_candidates, width, weights=None):
    """:func:`_shifted_histograms` of concepts given by image, votes and bucket (and count)."""
    depth = n_candidates + 1
    keys = (rows * width + votes) * depth + bucket
    joint = np.bincount(np.ravel(keys), weights,
                        minlength=n * width * depth).reshape(n, width, depth)
    below = np.cumsum(joint, axis=2)[:, :, :n_candidates]  # bucket <= q: no vote at q
    above = joint.sum(axis=2)[:, :, np.newaxis] - below
    histograms = below.copy()
    histograms[:, 1:, :] += above[:, :-1, :]
    return np.moveaxis(histograms, 1, 2)  # (n, k, width)


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


def band_edges(bands, support):
    """The support at which each band after the first begins (None: one band)."""
    if bands is None:
        return None
    if isinstance(bands, Integral):
        quantiles = np.quantile(support, np.linspace(0, 1, int(bands) + 1)[1:-1])
        return np.unique(np.ceil(quantiles)) if bands > 1 else None
    edges = np.asarray(bands, dtype=float)
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
