"""The official ImageCLEFmed Caption concept-detection score.

The organisers' ``evaluate-f1.py`` (2019) computes, for each image, the F1
between the true concept set T and the predicted set P,
``2 |T & P| / (|T| + |P|)`` (0 when P is empty), leaves images with an empty T
out of the mean altogether, and averages the rest. Concepts are compared
upper-cased, after splitting on ``;``, each line's concepts counting as a set.

scikit-learn's ``f1_score(average="samples")`` differs for every
``zero_division`` setting: it keeps images with an empty T in the mean.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import make_scorer

from ._lists import (
    as_binary_csr,
    canonical_concept,
    describe_target,
    is_concept_lists,
    split_concepts,
)
from ._targets import as_target

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Callable

    from numpy.typing import NDArray

    from .._typing import ConceptSubset, Targets


def imageclef_f1_score(y_true: Targets, y_pred: Targets, *,
                       concepts: ConceptSubset | None = None) -> float:
    """Mean per-image F1, exactly as the ImageCLEFmed Caption organisers score.

    Parameters
    ----------
    y_true, y_pred : indicator matrices or sequences of concept collections
        Either two 0/1 indicator matrices of the same shape (numpy arrays or
        scipy sparse matrices), or two sequences of the same length whose
        items are collections of concept strings or ``;``-joined strings.
        Strings are compared upper-cased and each image's concepts count as
        a set. A pandas DataFrame of 0/1 columns named by concept is read
        as each row's concepts (the names of its columns holding 1), so two
        frames compare by concept name, not by column position.
    concepts : collection of str, or of column indices, default=None
        The secondary score (secondary F1 reported from 2022, computed by
        the published evaluators 2024-2026): both sets are restricted
        to these concepts (for instance the manually validated ones) before
        the same mean per-image F1; images left with no true concept drop
        out of the mean. Concept names for concept lists, column indices for
        indicator matrices. None scores every concept.

    Returns
    -------
    float
        The mean over images with at least one true concept. When no image
        has a true concept the score is 0.0 and an
        :class:`~sklearn.exceptions.UndefinedMetricWarning` is issued.

    Notes
    -----
    A vectorised mean, for arrays in memory: it may differ from the
    organisers' evaluators in the last digit (about 1e-16), since each of
    them adds the per-image F1 one image at a time in the run file's order.
    :func:`~imageclef_concepts.evaluate_run` scores files in that order, to
    the last digit.

    Examples
    --------
    >>> from imageclef_concepts import imageclef_f1_score
    >>> imageclef_f1_score(["C1;C2", "C3", ""], ["c1", "C3;C4", "C5"])
    0.6666666666666666
    >>> imageclef_f1_score(["C1;C2", "C3", ""], ["c1", "C3;C4", "C5"], concepts=["C1", "C4"])
    1.0
    """
    n_correct, n_true, n_predicted = per_image_counts(y_true, y_pred, concepts=concepts)
    if not (n_true > 0).any():
        warnings.warn(
            "No image has a true concept: the official F1 is undefined and "
            "reported as 0.0.",
            UndefinedMetricWarning,
            stacklevel=2,
        )
        return 0.0
    return float(official_mean(f1_from_counts(n_correct, n_true, n_predicted), n_true))


def per_image_f1_scores(y_true: Targets, y_pred: Targets
                        ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Per-image F1 and which images the official mean counts.

    Parameters
    ----------
    y_true, y_pred : indicator matrices or sequences of concept collections
        As for :func:`imageclef_f1_score`.

    Returns
    -------
    scores : ndarray of shape (n_images,)
        ``2 |T & P| / (|T| + |P|)``; 0 where both sets are empty.
    counted : ndarray of bool, shape (n_images,)
        True for images with at least one true concept.

    Examples
    --------
    >>> from imageclef_concepts import per_image_f1_scores
    >>> per_image_f1_scores(["C1", "", "C2"], ["C1", "C1", ""])
    (array([1., 0., 0.]), array([ True, False,  True]))
    """
    n_correct, n_true, n_predicted = per_image_counts(y_true, y_pred)
    return f1_from_counts(n_correct, n_true, n_predicted), n_true > 0


def per_image_counts(y_true, y_pred, *, concepts=None):
    """Each image's correct, true and predicted concept counts: |T & P|, |T|, |P|.

    The one place the official score's sets are counted, for concept
    collections (compared in canonical form, each line a set) and indicator
    matrices alike. ``concepts`` restricts both sets first (see
    :func:`imageclef_f1_score`).

    Returns
    -------
    n_correct, n_true, n_predicted : ndarray of int, shape (n_images,)
    """
    y_true, y_pred, true_is_lists = paired_targets(y_true, y_pred)
    if true_is_lists:
        subset = None if concepts is None else {canonical_concept(str(c)) for c in concepts}
        return _counts_from_lists(y_true, y_pred, subset)
    return _counts_from_indicators(y_true, y_pred, concepts)


def paired_targets(first, second, names=("y_true", "y_pred")):
    """Two targets read by ``as_target``, checked to be of one form, and whether it is lists.

    Both concept collections (a DataFrame with concept-named columns counts as
    those) or both indicator matrices; anything else is refused, naming both.
    """
    given = first, second
    first, second = as_target(first, names[0]), as_target(second, names[1])
    on_lists = is_concept_lists(first)
    if on_lists != is_concept_lists(second):
        raise ValueError(
            f"{names[0]} and {names[1]} must both be indicator matrices or both be "
            "sequences of concept collections (a DataFrame with concept-named columns "
            "counts as concept collections); got "
            f"{describe_target(given[0])} and {describe_target(given[1])}."
        )
    return first, second, on_lists


def checked_columns(columns):
    """The ``concepts=`` of an indicator matrix: column indices or a boolean mask, checked."""
    columns = np.asarray(list(columns))
    if columns.size and columns.dtype.kind not in "biu":
        raise ValueError("With indicator matrices, concepts= selects columns: give "
                         f"column indices or a boolean mask, not {columns.dtype} values.")
    return columns.astype(np.int64) if not columns.size else columns


def f1_from_counts(n_correct, n_true, n_predicted):
    """Per-image F1 ``2 |T & P| / (|T| + |P|)`` from counts (0 when both are empty).

    Broadcasts: counts of shape (n_images, n_thresholds) give one F1 per
    image and threshold.
    """
    denominator = np.add(n_true, n_predicted)
    return np.divide(2.0 * np.asarray(n_correct), denominator,
                     out=np.zeros(np.shape(denominator)), where=denominator > 0)


def official_mean(f1, n_true):
    """The official mean of per-image F1 (rows) over images with a true concept.

    ``f1`` may have one column per threshold; the result then has one value
    per column. 0 when no image has a true concept.
    """
    counted = np.asarray(n_true) > 0
    if not counted.any():
        return np.zeros(np.shape(f1)[1:]) if np.ndim(f1) > 1 else 0.0
    return f1[counted].mean(axis=0)


def _counts_from_lists(y_true, y_pred, subset):
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true has {len(y_true)} images but y_pred has {len(y_pred)}."
        )
    true_sets = [set(split_concepts(concepts)) for concepts in y_true]
    pred_sets = [set(split_concepts(concepts)) for concepts in y_pred]
    if subset is not None:
        true_sets = [concepts & subset for concepts in true_sets]
        pred_sets = [concepts & subset for concepts in pred_sets]
    n_true = np.fromiter(map(len, true_sets), dtype=np.int64, count=len(true_sets))
    n_pred = np.fromiter(map(len, pred_sets), dtype=np.int64, count=len(pred_sets))
    n_both = np.fromiter(
        (len(t & p) for t, p in zip(true_sets, pred_sets)),
        dtype=np.int64,
        count=len(true_sets),
    )
    return n_both, n_true, n_pred


def _counts_from_indicators(y_true, y_pred, columns):
    true = as_binary_csr(y_true, "y_true")
    pred = as_binary_csr(y_pred, "y_pred")
    if true.shape != pred.shape:
        raise ValueError(
            f"y_true has shape {true.shape} but y_pred has shape {pred.shape}; "
            "indicator matrices must have one row per image and one column "
            "per concept, in the same order."
        )
    if columns is not None:
        columns = checked_columns(columns)
        true, pred = true[:, columns].tocsr(), pred[:, columns].tocsr()
    n_true = np.diff(true.indptr)
    n_pred = np.diff(pred.indptr)
    n_both = np.diff(true.multiply(pred).tocsr().indptr)
    return n_both, n_true, n_pred


def _nan_as_never(scores):
    """Float scores with NaN (no image, or a concept a model lacks) as -inf: never predicted."""
    scores = np.asarray(scores)
    if scores.dtype.kind != "f":
        scores = scores.astype(np.float64)
    if np.isnan(scores).any():
        scores = np.where(np.isnan(scores), -np.inf, scores)
    return scores


def threshold_curve(scores, truth, n_true, candidates, min_concepts=0, max_concepts=None):
    """Official F1 at every candidate threshold, each image's scores sorted once.

    Instead of building and scoring a predicted matrix per threshold, the
    number of predicted and of correctly predicted concepts of every image at
    every threshold is read off its sorted scores by binary search. The
    result equals the official F1 of ``DecisionRule(candidate, ...).apply``
    at every candidate, bounds and ties included: where a bound cuts inside
    a group of equal scores, the rule keeps the group's leftmost columns.

    Parameters
    ----------
    scores : ndarray of shape (n_images, n_concepts)
        Probabilities or decision scores; NaN (an unreadable image) is never
        predicted.
    truth : scipy.sparse matrix of shape (n_images, n_concepts)
        The true concepts that are columns of ``scores``.
    n_true : ndarray of shape (n_images,)
        The size of each true set, concepts unknown to the model included.
    candidates : ndarray of shape (n_thresholds,)
    min_concepts, max_concepts : int, or column of shape (n_images, 1)
        Bounds on the number of concepts predicted per image, as
        :class:`~imageclef_concepts.DecisionRule` applies them.

    Returns
    -------
    ndarray of shape (n_thresholds,)
    """
    scores = np.asarray(scores)
    if scores.dtype.kind != "f":
        scores = scores.astype(np.float64)
    candidates = np.asarray(candidates, dtype=scores.dtype)
    n_images, n_concepts = scores.shape
    truth = sparse.csr_matrix(truth)
    truth.sort_indices()
    true_rows = np.repeat(np.arange(n_images), np.diff(truth.indptr))
    true_scores = scores[true_rows, truth.indices]
    n_valid = np.empty(n_images, dtype=np.int64)  # NaN sorts last, is never predicted
    n_at_least = np.empty((n_images, len(candidates)), dtype=np.int64)
    n_below = np.empty((2, len(true_rows)), dtype=np.int64)  # scores < and <= each true one
    starts = truth.indptr
    # Sorted a block of rows at a time, in one buffer (and no whole-matrix temporary):
    # a new array per block is fresh pages from the system at every block of a first call.
    buffer = np.empty((min(n_images, 1024), n_concepts), dtype=scores.dtype)
    for first in range(0, n_images, 1024):
        block = buffer[:min(1024, n_images - first)]
        block[...] = scores[first:first + len(block)]
        block.sort(axis=1)
        n_valid[first:first + len(block)] = n_concepts - np.isnan(block).sum(axis=1)
        for offset, ordered in enumerate(block):
            row = first + offset
            n_at_least[row] = n_valid[row] - np.searchsorted(ordered, candidates, side="left")
            mine = slice(starts[row], starts[row + 1])
            n_below[0, mine] = np.searchsorted(ordered, true_scores[mine], side="left")
            n_below[1, mine] = np.searchsorted(ordered, true_scores[mine], side="right")
    high = n_concepts if max_concepts is None else max_concepts
    n_predicted = np.minimum(np.clip(n_at_least, min_concepts, high), n_valid[:, np.newaxis])
    # Each true concept's place in the rule's order (decreasing score, ties by column):
    # a bound that cuts inside a tie group keeps its leftmost columns only.
    place = n_valid[true_rows] - n_below[1]
    place[np.isnan(true_scores)] = n_concepts  # never predicted
    tied = n_below[1] - n_below[0]
    if np.any(np.asarray(min_concepts) > 0) or np.any(np.asarray(high) < n_concepts):
        # Only where some candidate's count ends strictly inside the concept's tie group.
        cut = n_predicted[true_rows]
        inside = (tied > 1) & ((cut > place[:, np.newaxis])
                               & (cut < (place + tied)[:, np.newaxis])).any(axis=1)
        place += _tied_before(scores, true_rows, truth.indices, true_scores, inside)
    # A true concept is predicted when its place is among the predicted ones; the
    # hits of each image are the difference of running sums at its CSR bounds.
    hits = place[:, np.newaxis] < n_predicted[true_rows]
    running = np.zeros((len(true_rows) + 1, len(candidates)), dtype=np.int64)
    np.cumsum(hits, axis=0, out=running[1:])
    n_correct = running[truth.indptr[1:]] - running[truth.indptr[:-1]]
    n_true = np.asarray(n_true)[:, np.newaxis]
    return official_mean(f1_from_counts(n_correct, n_true, n_predicted), n_true[:, 0])


def _tied_before(scores, rows, columns, values, tied, block=256):
    """For each true concept in a tie group: the group's columns to its left (0 elsewhere)."""
    before = np.zeros(len(rows), dtype=np.int64)
    which = np.flatnonzero(tied)
    for first in range(0, len(which), block):  # a block of rows' scores copied at a time
        some = which[first:first + block]
        left_of = np.arange(scores.shape[1]) < columns[some, np.newaxis]
        before[some] = ((scores[rows[some]] == values[some, np.newaxis]) & left_of).sum(axis=1)
    return before


def per_concept_thresholds(scores, truth, n_true, candidates, global_threshold, min_support,
                           n_sweeps=2):
    """Per-concept thresholds by coordinate ascent on the official F1.

    Starting from ``global_threshold`` everywhere, each concept with at
    least ``min_support`` positives takes, in turn, the candidate threshold
    that maximises the official mean F1 with every other concept's
    threshold held fixed. Each step is exact and costs one sort of that
    concept's scores.

    Parameters
    ----------
    scores, truth, n_true, candidates
        As for :func:`threshold_curve`.
    global_threshold : float
    min_support : int
        Positives a concept needs to get its own threshold.
    n_sweeps : int, default=2

    Returns
    -------
    thresholds : ndarray of shape (n_concepts,)
    score : float
        The official F1 on the tuning data at those thresholds.
    """
    scores = _nan_as_never(scores)
    n_images, n_concepts = scores.shape
    thresholds = np.full(n_concepts, global_threshold, dtype=np.float64)
    truth_by_concept = sparse.csc_matrix(truth)
    predicted = scores >= thresholds
    n_predicted = predicted.sum(axis=1)
    n_correct = np.asarray(sparse.csr_matrix(truth).multiply(predicted).sum(axis=1)).ravel()
    counted = n_true > 0
    support = np.diff(truth_by_concept.indptr)
    for _ in range(n_sweeps):
        changed = False
        for concept in np.flatnonzero(support >= min_support):
            is_true = np.zeros(n_images, dtype=np.int64)
            is_true[truth_by_concept.indices[truth_by_concept.indptr[concept]:
                                             truth_by_concept.indptr[concept + 1]]] = 1
            was = predicted[:, concept]
            # Counts of every image without this concept predicted...
            base_predicted = n_predicted - was
            base_correct = n_correct - (was & (is_true == 1))
            without = f1_from_counts(base_correct, n_true, base_predicted)
            with_it = f1_from_counts(base_correct + is_true, n_true, base_predicted + 1)
            gain = np.where(counted, with_it - without, 0.0)
            # ...and the total gain of predicting it for images scoring >= each candidate.
            column = scores[:, concept]
            order = np.argsort(-column, kind="stable")
            cumulative = np.concatenate([[0.0], np.cumsum(gain[order])])
            included = n_images - np.searchsorted(np.sort(column), candidates, side="left")
            totals = cumulative[included]
            current = cumulative[int(was.sum())] if was.any() else 0.0
            best = int(np.argmax(totals))
            if totals[best] > current + 1e-12:
                thresholds[concept] = candidates[best]
                now = column >= candidates[best]
                n_predicted = base_predicted + now
                n_correct = base_correct + (now & (is_true == 1))
                predicted[:, concept] = now
                changed = True
        if not changed:
            break
    score = official_mean(f1_from_counts(n_correct, n_true, n_predicted), n_true)
    return thresholds, float(score)


imageclef_f1: Callable[..., float] = make_scorer(imageclef_f1_score)


def imageclef_f1_scorer(concepts: ConceptSubset | None = None) -> Callable[..., float]:
    """A scorer for the official F1, or for the secondary F1 on a subset of concepts.

    The secondary score: secondary F1 reported from 2022, computed by the
    published evaluators 2024-2026 (:func:`evaluate_run` reads their files).

    Parameters
    ----------
    concepts : collection of str or of column indices, default=None
        As for :func:`imageclef_f1_score`; None gives :data:`imageclef_f1`.

    Returns
    -------
    callable
        A scikit-learn scorer ``scorer(estimator, X, y)``.

    Examples
    --------
    >>> from imageclef_concepts import imageclef_f1_scorer
    >>> secondary = imageclef_f1_scorer(concepts=["C0040405", "C0817096"])
    >>> # GridSearchCV(model, grid, scoring={"primary": imageclef_f1, "secondary": secondary},
    >>> #              refit="primary")
    """
    if concepts is None:
        return imageclef_f1
    return make_scorer(imageclef_f1_score, concepts=sorted(concepts, key=str))


imageclef_f1.__doc__ = """Scorer for the official ImageCLEF F1, on ``predict``.

Use as ``GridSearchCV(..., scoring=imageclef_f1)``, ``cross_val_score`` or
``cross_validate``. It compares the fold's ``y`` with the estimator's
``predict`` output, so both must be of the same form: indicator matrices, or
concept collections (what the library's estimators return when fitted on
concept collections).

Examples
--------
>>> import numpy as np
>>> from imageclef_concepts import MostFrequentConcepts, imageclef_f1
>>> y = ["C1;C2", "C1", "C1;C3"]
>>> model = MostFrequentConcepts(k=1).fit(np.zeros((3, 1)), y)
>>> round(imageclef_f1(model, np.zeros((3, 1)), y), 4)
0.7778
"""
