"""The vote search behind EnsembleTuner: members' thresholds with the vote count.

Exhaustive when that is affordable, and coordinate ascent on the official
score over held-out member scores otherwise: one member's threshold is
changed at a time, to the candidate that scores best with the others held
fixed, and only when that strictly improves the score; so the score never
decreases and the search ends. Each step is exact. (The weights' search is
in :mod:`._weight_search`.)

Votes. Each member's scores are read once into *buckets*: how many of its
candidate thresholds each score reaches (a score votes at candidate ``q``
when its bucket exceeds ``q``). A member's step then needs one pass over
the images x concepts: the votes of the other members are fixed, so a
histogram per image of (their votes, this member's bucket) gives, for every
candidate threshold of this member and every vote count ``L`` at once, how
many concepts each image gets and how many of them are true. Two candidate
thresholds of a member between which none of its scores lies give the same
votes (tied scores: a k-NN member's are multiples of ``1 / k``); counting
only one of them, every combination is tried when that is affordable (one
table per combination of the other members' thresholds, over the distinct
cells of image and members' votes): the best of the grid, exactly.
Affordable is a cost, not a count of settings: the elements the exhaustive
search visits (:func:`exhaustive_cost`: the combinations times the distinct
cells and the table) at most :data:`EXACT_COST`, or at most what the ascent
may visit (its starts x sweeps x members passes over the images x concepts)
when that is larger. So tied scores, which leave few distinct thresholds and
few cells, are searched exactly even with five or six members, while
continuous scores with many candidates ascend (``benchmarks/vote_search.py``
prints both and their times).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import sparse

from ..concepts._metrics import f1_from_counts, official_mean

TOLERANCE = 1e-12  # a step is taken only when it gains more than rounding


class VoteSearch(NamedTuple):
    """The result of :func:`vote_search`."""

    thresholds: list[float]  # one per member
    min_votes: int
    score: float
    start_score: float  # the best common threshold and vote count
    history: list[float]  # the score after each step of the ascent kept: never decreasing
    exact: bool = False  # every combination tried (the best of the grid), not an ascent


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

    Exhaustive (the best of the grid) when its cost (:func:`exhaustive_cost`,
    over the members' distinct thresholds, :func:`distinct_thresholds`, and
    the distinct cells) is at most ``exact_limit``; coordinate ascent otherwise.

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
    exact_limit : float or None, default=None
        The largest cost (:func:`exhaustive_cost`) searched exhaustively;
        None: :data:`EXACT_COST` or the ascent's own bound if larger (0
        always ascends, ``math.inf`` never does).

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
    n_starts = 1 if starts == "best_common" else n_members
    if exact_limit is None:
        exact_limit = max(EXACT_COST, _ascent_cost(buckets, n_candidates, len(true_at[0]),
                                                   n_starts * max_sweeps))
    grid = _exhaustive_grid(buckets, n_candidates, len(true_at[0]), exact_limit)
    if grid is not None:
        # As a step of the ascent: away from the best common setting only when strictly better.
        q, votes = np.unravel_index(int(np.argmax(common)), common.shape)
        start = float(common[q, votes])
        found = _exhaustive(grid, true_at, n_true)
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


EXACT_COST = 5 * 10**7
"""Elements the exhaustive vote search may visit (:func:`exhaustive_cost`) even when the
ascent would visit fewer: about half a second of NumPy on one core."""


def exhaustive_cost(levels, n_images, n_cells, n_true_cells):
    """Elements the exhaustive vote search visits: for each combination of the distinct
    thresholds (``levels``) of every member but the one scored all at once (the one with
    the most), the distinct cells and the true concepts (their votes and two histograms),
    and that member's table (images x vote counts x its thresholds)."""
    widest = max(map(len, levels))
    table = n_images * (len(levels) + 1) * (widest + 1)
    return math.prod(map(len, levels)) // widest * (n_cells + n_true_cells + table)


def _ascent_cost(buckets, n_candidates, n_true_cells, passes):
    """The most the ascent visits: ``passes`` (starts x sweeps) of a step per member."""
    n_images, n_concepts = buckets[0].shape
    step = n_images * n_concepts + n_true_cells + n_images * (len(buckets) + 1) * (
        n_candidates + 1)
    return passes * len(buckets) * step


class _Grid(NamedTuple):
    """What the exhaustive search runs on: each member's distinct thresholds (``levels``)
    and class per image x concept (how many of those it exceeds), and the distinct cells."""

    levels: list
    classes: list
    first: np.ndarray  # each distinct cell's first place in the flat images x concepts
    counts: np.ndarray  # how many images x concepts each one stands for


def _exhaustive_grid(buckets, n_candidates, n_true_cells, limit):
    """The :class:`_Grid` when the exhaustive search costs at most ``limit``, else None.

    The cells are counted (a sort of the images x concepts, a few passes' cost) only
    when the cost without them is within the limit.
    """
    levels = [distinct_thresholds(b, n_candidates) for b in buckets]
    n_images = buckets[0].shape[0]
    if exhaustive_cost(levels, n_images, 0, n_true_cells) > limit:
        return None
    classes = [np.searchsorted(level, np.arange(int(b.max()) + 1)).astype(np.int16)[b]
               for b, level in zip(buckets, levels)]  # by a lookup table: int16, not int64
    first, counts = _cells(classes, [len(level) + 1 for level in levels], n_images)
    if exhaustive_cost(levels, n_images, len(first), n_true_cells) > limit:
        return None
    return _Grid(levels, classes, first, counts)


def distinct_thresholds(buckets, n_candidates):
    """The candidate indices that give a member distinct votes: the lowest of each run.

    Candidates ``q - 1`` and ``q`` give the same votes unless a score's
    bucket is ``q`` (a score at or above candidate ``q - 1``, below ``q``).
    """
    present = np.bincount(np.ravel(buckets), minlength=n_candidates + 1)[1:n_candidates] > 0
    return [0, *(int(q) + 1 for q in np.flatnonzero(present))]


def _exhaustive(grid, true_at, n_true):
    """The best of every combination of distinct thresholds and vote count, on ``grid``.

    A member's class in a cell is the number of its distinct thresholds its
    score exceeds (it votes at the ``j``-th when that number exceeds ``j``);
    the images x concepts are taken as their distinct cells (an image and
    every member's class) with their counts: few, when the scores are tied or
    mostly low. One member (with the most distinct thresholds) is then scored
    for all its thresholds and vote counts at once, as in an ascent's step,
    for each combination of the others' thresholds; the first best is kept
    (the lowest thresholds, then the lowest count, of equally scoring settings).
    """
    levels, classes, first, weights = grid
    n_members, (n_images, n_concepts) = len(levels), classes[0].shape
    cells = [(member.ravel()[first], member[true_at]) for member in classes]
    rows = (first // n_concepts, true_at[0])
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
