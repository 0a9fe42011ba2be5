"""The ceiling of a split: how much any model could score, given the training concepts.

A run's official F1 alone does not tell a weak model from a hard split.
:func:`oracle_bounds` measures the split itself, with three oracles that see
the test truth:

* a perfect model that knows only the training vocabulary V (it predicts
  T & V, so every test concept never seen in training is a miss);
* the best single training image copied (each test image takes the concept
  set of the training image that scores highest against it: the ceiling of
  1-nearest-neighbour retrieval, whatever the embedding);
* the best fixed list of the k most frequent training concepts (what
  :class:`~imageclef_concepts.MostFrequentConcepts` predicts), k chosen on
  the test set.

The retrieval oracle compares every test image with every training image:
the shared-concept counts come from a sparse-times-dense product, a block of
test images at a time, so that memory stays bounded (about
``3 * _BLOCK_ELEMENTS`` 4-byte numbers) whatever the size of the split.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from ._lists import as_binary_csr, canonical_concept
from ._metrics import checked_columns, f1_from_counts, official_mean, paired_targets

if TYPE_CHECKING:  # names for annotations only
    from .._typing import ConceptSubset, Targets

# Training images x test images compared at once by the retrieval oracle (float64):
# 8M numbers, 64 MB per array, about three such arrays alive at a time.
_BLOCK_ELEMENTS = 2 ** 23


@dataclass(frozen=True)
class SplitBounds:
    """The official F1 three oracles reach on a test set, given the training concepts.

    Attributes
    ----------
    vocabulary_f1 : float
        A perfect model restricted to the training vocabulary: it predicts
        each image's true concepts seen in training (an image left with
        none scores 0). No model that predicts only training concepts can
        score more.
    retrieval_f1 : float
        Each test image given the concepts of the one training image that
        scores best against it: the ceiling of copying one neighbour.
    top_k_f1 : float
        The same ``k`` most frequent training concepts for every image,
        ``k`` chosen on the test set (an oracle choice).
    k : int
        That ``k`` (0 when the training set has no concept).
    n_scored : int
        Test images with a true concept, the ones averaged.
    unseen_concepts : float
        Share of the distinct test concepts never seen in training.
    images_with_unseen : float
        Share of the scored test images with at least one such concept.
    images_all_unseen : float
        Share of the scored test images none of whose concepts was seen in
        training: every model scores 0 on them.

    Examples
    --------
    >>> from imageclef_concepts import oracle_bounds
    >>> bounds = oracle_bounds(["C1;C2", "C1"], ["C1;C3", "C2"])
    >>> bounds.vocabulary_f1, bounds.k
    (0.8333333333333333, 2)
    """

    vocabulary_f1: float
    retrieval_f1: float
    top_k_f1: float
    k: int
    n_scored: int
    unseen_concepts: float
    images_with_unseen: float
    images_all_unseen: float

    def to_dict(self) -> dict:
        """The fields as plain JSON-ready values."""
        return asdict(self)

    def __repr__(self):
        shown = ", ".join(f"{field.name}={getattr(self, field.name):.4g}"
                          if isinstance(getattr(self, field.name), float)
                          else f"{field.name}={getattr(self, field.name)}"
                          for field in fields(self))
        return f"SplitBounds({shown})"

    def lines(self) -> list[str]:
        """The three ceilings described, one line each (what the command line prints)."""
        return [
            f"perfect model on the training vocabulary: {self.vocabulary_f1:.4f} "
            f"({self.unseen_concepts:.1%} of the test concepts, in {self.images_with_unseen:.1%} "
            "of the images, never occur in training)",
            f"best single training image copied:        {self.retrieval_f1:.4f}",
            f"best fixed top-k frequent concepts:       {self.top_k_f1:.4f} (k={self.k}, "
            "chosen on the test set: an oracle)",
        ]


def oracle_bounds(y_train: Targets, y_test: Targets, *,
                  concepts: ConceptSubset | None = None) -> SplitBounds:
    """The ceilings of a split: the official F1 of three oracles that see the test truth.

    Parameters
    ----------
    y_train, y_test : indicator matrices or sequences of concept collections
        The training and the test concepts, in any form the official score
        takes (:func:`imageclef_f1_score`): concept lists (compared
        upper-cased, each image's concepts a set), or 0/1 indicator matrices
        with the same columns, or DataFrames with concept-named columns.
        Test images without a true concept are left out, as the official
        score leaves them out.
    concepts : collection of str, or of column indices, default=None
        For the secondary score (secondary F1 reported from 2022, computed
        by the published evaluators 2024-2026): every set, training and
        test, is restricted to these concepts first, as
        ``imageclef_f1_score(concepts=...)`` restricts both sets (test images
        left with no concept drop out; ``k`` then counts these concepts
        only). None: every concept.

    Returns
    -------
    SplitBounds
        ``vocabulary_f1 >= retrieval_f1`` and ``vocabulary_f1 >= top_k_f1``
        always: both copy sets of training concepts.

    Raises
    ------
    ValueError
        When no test image has a true concept (the official score is
        undefined), or the two targets differ in form or in columns.

    Examples
    --------
    >>> from imageclef_concepts import oracle_bounds
    >>> train = ["C1;C2", "C1", "C1;C4"]
    >>> test = ["C1;C2", "C3", "C1"]
    >>> bounds = oracle_bounds(train, test)
    >>> round(bounds.vocabulary_f1, 4), round(bounds.retrieval_f1, 4), bounds.k
    (0.6667, 0.6667, 1)
    >>> round(bounds.unseen_concepts, 4), round(bounds.images_all_unseen, 4)
    (0.3333, 0.3333)
    """
    train, test = _indicators(y_train, y_test, concepts)
    n_true = np.diff(test.indptr)
    counted = n_true > 0
    if not counted.any():
        raise ValueError("y_test has no image with a true concept"
                         + ("" if concepts is None else " among concepts=")
                         + ": the official F1 is undefined.")
    train_counts = np.diff(train.tocsc().indptr)
    seen = train_counts > 0
    n_seen = np.asarray(test @ seen.astype(np.int64)).ravel()  # |T & V| per image
    vocabulary = official_mean(f1_from_counts(n_seen, n_true, n_seen), n_true)
    correct, size = _best_copies(train, test, n_true, n_seen > 0)
    retrieval = official_mean(f1_from_counts(correct, n_true, size), n_true)
    k, top_k = _best_top_k(train_counts, test, n_true)
    in_test = np.diff(test.tocsc().indptr) > 0
    n_counted = int(counted.sum())
    return SplitBounds(
        vocabulary_f1=float(vocabulary), retrieval_f1=float(retrieval), top_k_f1=float(top_k),
        k=int(k), n_scored=n_counted,
        unseen_concepts=float((in_test & ~seen).sum() / in_test.sum()),
        images_with_unseen=float((counted & (n_seen < n_true)).sum() / n_counted),
        images_all_unseen=float((counted & (n_seen == 0)).sum() / n_counted))


def _indicators(y_train, y_test, concepts):
    """Both targets as 0/1 CSR matrices over the same columns, restricted to ``concepts``."""
    y_train, y_test, on_lists = paired_targets(y_train, y_test, ("y_train", "y_test"))
    if on_lists:
        from ._encoder import sparse_encoder

        # Columns sorted by name, as every estimator's: ties in frequency rank alike.
        encoder = sparse_encoder().fit(list(y_train) + list(y_test))
        train, test = encoder.transform(y_train), encoder.transform(y_test)
        columns = None
        if concepts is not None:
            kept = {canonical_concept(str(concept)) for concept in concepts}
            columns = np.array([name in kept for name in encoder.classes_], dtype=bool)
    else:
        train, test = as_binary_csr(y_train, "y_train"), as_binary_csr(y_test, "y_test")
        if train.shape[1] != test.shape[1]:
            raise ValueError(f"y_train has {train.shape[1]} columns but y_test has "
                             f"{test.shape[1]}: indicator matrices must have one column per "
                             "concept, in the same order.")
        columns = None if concepts is None else checked_columns(concepts)
    if columns is not None:
        train, test = train[:, columns], test[:, columns]
    return (sparse.csr_matrix(train, dtype=np.int64), sparse.csr_matrix(test, dtype=np.int64))


def _best_copies(train, test, n_true, worth_it):
    """For each test image, |T & R| and |R| of the training image R of highest F1 with T.

    Only the images in ``worth_it`` (with a concept seen in training) are
    compared; the others keep 0 and 0. Shared-concept counts of a block of
    test images with every training image come from one sparse (training) x
    dense (the block, over its own concepts only) product.
    """
    correct = np.zeros(test.shape[0], dtype=np.int64)
    size = np.zeros(test.shape[0], dtype=np.int64)
    n_train = train.shape[0]
    candidates = np.flatnonzero(worth_it)
    if not n_train or not len(candidates):
        return correct, size
    train_size = np.diff(train.indptr).astype(np.float64)
    by_concept = train.astype(np.float64).tocsc()
    block = max(1, _BLOCK_ELEMENTS // n_train)
    for first in range(0, len(candidates), block):
        rows = candidates[first:first + block]
        part = test[rows]
        columns = np.unique(part.indices)
        shared = by_concept[:, columns] @ part[:, columns].T.toarray().astype(np.float64)
        # F1 = 2 * shared / (|T| + |R|): the argmax of shared / (|T| + |R|) over R.
        ratio = np.add.outer(train_size, n_true[rows].astype(np.float64))
        np.divide(shared, ratio, out=ratio)
        best = np.argmax(ratio, axis=0)
        # The choice is exact in float64: a division is correctly rounded, so
        # equal fractions give equal ratios, and two different fractions with
        # denominators below 2**26 differ by more than 1 / 2**52 of their size,
        # so they never round to one value (float32 did, with thousands of
        # concepts per image: the wrong copy won a tie).
        correct[rows] = np.rint(shared[best, np.arange(len(rows))]).astype(np.int64)
        size[rows] = np.diff(train.indptr)[best]
    return correct, size


def _best_top_k(train_counts, test, n_true):
    """The ``k`` whose top-k list scores best, and its official F1.

    The score of every ``k`` at once: images are grouped by the size of
    their true set ``s``; with ``H_s(k)`` the true concepts of that group's
    images ranked below ``k``, the sum of F1 is ``sum_s 2 H_s(k) / (s + k)``.
    The chosen ``k`` is then scored image by image, as the official mean is.
    """
    # The training concepts, most frequent first, ties in column (name) order:
    # the ranking of MostFrequentConcepts.
    ranking = np.argsort(-train_counts, kind="stable")[:int((train_counts > 0).sum())]
    if not len(ranking):
        return 0, 0.0
    rank = np.full(test.shape[1], len(ranking), dtype=np.int64)
    rank[ranking] = np.arange(len(ranking))
    image_of = np.repeat(np.arange(test.shape[0]), np.diff(test.indptr))
    concept_rank = rank[test.indices]
    known = concept_rank < len(ranking)
    sizes, group = np.unique(n_true[n_true > 0], return_inverse=True)
    group_of = np.full(test.shape[0], -1)
    group_of[n_true > 0] = group
    cells = group_of[image_of[known]] * len(ranking) + concept_rank[known]
    hits = np.bincount(cells, minlength=len(sizes) * len(ranking))
    below = np.cumsum(hits.reshape(len(sizes), len(ranking)), axis=1)  # H_s(k), k = 1..
    ks = np.arange(1, len(ranking) + 1)
    totals = (2.0 * below / (sizes[:, np.newaxis] + ks)).sum(axis=0)
    k = int(np.argmax(totals)) + 1
    n_correct = np.bincount(image_of, weights=concept_rank < k, minlength=test.shape[0])
    return k, float(official_mean(f1_from_counts(n_correct, n_true, k), n_true))


__all__ = ["SplitBounds", "oracle_bounds"]
