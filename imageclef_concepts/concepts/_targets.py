"""Concept targets: what every concept estimator learns from ``y`` and gives back.

A user's ``y`` is either concept lists (collections of strings or
``;``-joined strings) or a 0/1 indicator matrix. :class:`ConceptTargets`
remembers which, and turns ``y`` into the indicator the models train on and
their decisions back into ``y``'s own form: concept tuples for concept lists,
an indicator matrix for an indicator. Returning ``y``'s form is what lets
``GridSearchCV(scoring=imageclef_f1)`` compare like with like, and concepts
that occur only in a validation fold count as misses instead of vanishing.

A pandas DataFrame (or any 2-d frame with named columns) of 0/1 values is an
indicator matrix whose column names are the concepts: :func:`as_target`, the
one conversion every target goes through (the metric, the encoder, every
estimator, the tuner, the ensemble), reads it as each row's concept list.
"""

from collections import Counter

import numpy as np
from sklearn.utils import check_array
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import _num_samples

from ._lists import (  # as_target is read from here too
    as_binary_csr,
    as_concept_array,
    as_target,
    canonical_concept,
    describe_target,
    is_concept_lists,
    split_concepts,
)


class ConceptTargets:
    """The concept vocabulary of a fitted estimator and the form of its ``y``.

    Parameters
    ----------
    min_count : int, default=1
        For concept lists: keep only concepts seen in at least this many
        training images (see :class:`~imageclef_concepts.ConceptEncoder`).
    max_labels : int or None, default=None
        For concept lists: keep only this many most frequent concepts.
    concepts : array-like of str or None, default=None
        For concept lists: the concepts to encode, fixed ahead of ``y``
        (sorted, canonical: :func:`incremental_concepts`, for ``partial_fit``'s
        ``classes``), each a column whether ``y`` holds it or not; None learns
        them from ``y`` by ``min_count`` and ``max_labels``.

    Attributes
    ----------
    classes_ : ndarray
        One entry per column: canonical concept names (object array) for
        concept lists, ``0..n-1`` for an indicator.
    encoder_ : ConceptEncoder or None
        The encoder of concept lists; None for an indicator.
    column_counts_ : ndarray of int
        Training images with each of ``classes_`` (0 when unknown).
    n_images_ : int
        Training images (0 when unknown).
    """

    def __init__(self, *, min_count=1, max_labels=None, concepts=None):
        self.min_count = min_count
        self.max_labels = max_labels
        self.concepts = concepts

    @property
    def on_concepts(self):
        """True when ``y`` was concept lists."""
        return self.encoder_ is not None

    def fit(self, y):
        """Learn the vocabulary (concept lists) or the width (indicator) of ``y``."""
        from ._encoder import ConceptEncoder, sparse_encoder

        y = as_target(y)
        if is_concept_lists(y) and self.concepts is not None:
            counts = Counter(c for concepts in y for c in set(split_concepts(concepts)))
            self.encoder_ = ConceptEncoder.from_vocabulary(
                list(self.concepts), [counts[c] for c in self.concepts])
            self.classes_ = self.encoder_.classes_
        elif is_concept_lists(y):
            self.encoder_ = sparse_encoder(min_count=self.min_count,
                                           max_labels=self.max_labels).fit(y)
            self.classes_ = self.encoder_.classes_
        else:
            self.encoder_ = None
            self.classes_ = np.arange(as_binary_csr(y, "y").shape[1])
        indicator = self.transform(y)
        if len(self.classes_) == 0 or indicator.nnz == 0:
            raise ValueError("y has no positive label at all: there is no concept to learn.")
        self.column_counts_ = np.diff(indicator.tocsc().indptr).astype(np.int64)
        self.n_images_ = indicator.shape[0]
        return self

    def transform(self, y):
        """``y`` as a float32 CSR indicator over ``classes_``."""
        given, y = y, as_target(y)
        if self.on_concepts:
            if not is_concept_lists(y):
                raise ValueError(
                    "This model was fitted on concept lists (or a DataFrame with "
                    "concept-named columns); y must name its concepts too (concept lists, or "
                    f"a DataFrame with concept-named columns), got {describe_target(given)}.")
            return self.encoder_.transform(y).astype(np.float32)
        indicator = as_binary_csr(y, "y")
        if indicator.shape[1] != len(self.classes_):
            raise ValueError(f"y has {indicator.shape[1]} columns but the model was fitted on "
                             f"{len(self.classes_)} concepts.")
        return indicator.astype(np.float32)

    def inverse_transform(self, indicator):
        """A predicted indicator in ``y``'s form (concept tuples or int indicator)."""
        if self.on_concepts:
            return as_concept_array(self.concepts_of(indicator))
        return np.asarray(indicator, dtype=np.int64)

    def concepts_of(self, indicator):
        """The ``classes_`` entries of each row of an indicator, as tuples."""
        indicator = np.asarray(indicator, dtype=bool)
        return [tuple(self.classes_[row]) for row in indicator]

    def truth(self, y):
        """Counts of ``y`` for the official score: (known-concept CSR, true set sizes).

        The CSR marks the true concepts that are columns of ``classes_``; the
        sizes count every true concept, including ones never seen in
        training, so that those count as misses.
        """
        y = as_target(y)
        if not self.on_concepts:
            indicator = self.transform(y).astype(np.int64)
            return indicator, np.asarray(indicator.sum(axis=1)).ravel()
        n_true = np.array([len(set(split_concepts(concepts))) for concepts in y],
                          dtype=np.int64)
        known = self.encoder_.transform_known(y).astype(np.int64)
        return known, n_true

    def to_dict(self):
        """The vocabulary as plain JSON-ready values."""
        return {"on_concepts": self.on_concepts, "classes": self.classes_.tolist(),
                "concept_counts": (self.encoder_.concept_counts_.tolist()
                                   if self.on_concepts else None),
                "column_counts": self.column_counts_.tolist(), "n_images": int(self.n_images_),
                # Python ints: an estimator's min_count may be NumPy's, which JSON refuses
                "min_count": int(self.min_count),
                "max_labels": None if self.max_labels is None else int(self.max_labels)}

    @classmethod
    def from_dict(cls, values):
        """Targets of :meth:`to_dict`'s output."""
        from ._encoder import ConceptEncoder

        targets = cls(min_count=values.get("min_count", 1),
                      max_labels=values.get("max_labels"))
        if values["on_concepts"]:
            targets.encoder_ = ConceptEncoder.from_vocabulary(values["classes"],
                                                              values["concept_counts"])
            targets.classes_ = targets.encoder_.classes_
        else:
            targets.encoder_ = None
            targets.classes_ = np.arange(len(values["classes"]))
        targets.column_counts_ = np.asarray(
            values.get("column_counts") or [0] * len(targets.classes_), dtype=np.int64)
        targets.n_images_ = values.get("n_images", 0)
        return targets

    @classmethod
    def from_classes(cls, classes):
        """Targets for a known list of columns: concept names, or ``0..n-1``."""
        classes = np.asarray(classes)
        on_concepts = classes.dtype.kind in "OUS"
        return cls.from_dict({"on_concepts": on_concepts, "classes": classes.tolist(),
                              "concept_counts": [0] * len(classes) if on_concepts else None})


def incremental_concepts(classes, y, targets=None, *, min_count=1, max_labels=None):
    """The concepts ``partial_fit(X, y, classes)`` fixes, checked against ``y`` and the model.

    scikit-learn's incremental convention: ``classes`` is every class ``y``
    may hold over all calls, as tools pass it (``np.unique(y)``; Optuna's
    pruning does). For concept lists ``y``, ``classes`` is concept lists
    too (concept names, or ``y``'s distinct ``;``-joined strings): the
    concepts they hold. For an indicator ``y``, it is ``y``'s values (0 and
    1) or its columns ``0..n-1``.

    Parameters
    ----------
    classes : array-like or None
    y : target, read by :func:`as_target`
    targets : ConceptTargets or None
        The model's, after its first call (None before).
    min_count, max_labels
        The model's: with ``classes`` they must keep every concept.

    Returns
    -------
    ndarray of str or None
        The sorted canonical concepts for concept lists; None for an
        indicator or ``classes=None``.

    Raises
    ------
    ValueError
        When ``y`` holds a concept ``classes`` does not, ``classes`` is not
        the model's ``classes_``, or it is not ``y``'s kind.
    """
    if classes is None:
        return None
    if isinstance(classes, (str, bytes)) or not np.iterable(classes):
        raise ValueError(f"partial_fit's classes must be a sequence, got {classes!r}.")
    y, listed = as_target(y), list(classes)
    if not is_concept_lists(y):
        values, width = np.asarray(listed), as_binary_csr(y, "y").shape[1]
        if values.dtype.kind not in "biuf" or not (
                set(values.tolist()) <= {0, 1} or np.array_equal(values, np.arange(width))):
            raise ValueError(
                f"partial_fit's classes={_shown(listed)} does not fit y, an indicator matrix of "
                f"{width} columns: give its values (np.unique(y): 0 and 1) or its columns "
                f"0..{width - 1}.")
        return None
    if not is_concept_lists(listed):
        raise ValueError(f"partial_fit's classes={_shown(listed)} must name concepts (y is "
                         "concept lists): concept names or ';'-joined strings, np.unique(y).")
    concepts = sorted({c for item in listed for c in split_concepts(item)})
    if min_count != 1 or max_labels is not None:
        raise ValueError(
            f"partial_fit's classes= fixes the model's concepts ahead of the data, but "
            f"min_count={min_count} and max_labels={max_labels} choose them from the data: "
            "give classes with min_count=1 and max_labels=None, or neither.")
    unknown = sorted({c for item in y for c in split_concepts(item)} - set(concepts))
    if unknown:
        raise ValueError(f"y holds {len(unknown)} concept(s) that partial_fit's classes does "
                         f"not: {', '.join(unknown[:5])}. classes must list every concept of "
                         "every call (np.unique of the whole y).")
    if targets is not None and list(targets.classes_) != concepts:
        fitted, given = set(targets.classes_), set(concepts)
        differences = [f"{what} {', '.join(sorted(names)[:5])}" for what, names in
                       (("lack", fitted - given), ("add", given - fitted)) if names]
        raise ValueError("partial_fit's classes must be the model's concepts, classes_, fixed "
                         f"at its first call; these {' and '.join(differences)}.")
    return np.array(concepts, dtype=object)


def _shown(values, first=5):
    shown = ", ".join(repr(v) for v in list(values)[:first])
    return f"[{shown}{', ...' if len(values) > first else ''}]"


def concept_names(estimator):
    """The names of an estimator's score columns, when its ``classes_`` names concepts.

    Any 1-d sequence of strings is read (an object or unicode array, a list,
    a tuple; in any order), each name in canonical form (stripped,
    upper-cased, as concepts are compared); None when ``classes_`` is
    missing or not names (``0..n-1``, scikit-learn's per-label list).

    Raises
    ------
    ValueError
        When two entries are the same concept: a score column each could
        not be told apart.
    """
    classes = getattr(estimator, "classes_", None)
    if classes is None or isinstance(classes, (str, bytes)):
        return None
    if isinstance(classes, (list, tuple)) and not all(isinstance(c, str) for c in classes):
        return None
    names = np.asarray(classes, dtype=object) if isinstance(classes, (list, tuple)) else classes
    if not isinstance(names, np.ndarray) or names.ndim != 1 or len(names) == 0:
        return None
    if names.dtype.kind not in "OU" or not all(isinstance(c, str) for c in names):
        return None
    names = np.array([canonical_concept(str(c)) for c in names], dtype=object)
    if len(set(names)) != len(names):
        repeated = sorted({c for c in names if (names == c).sum() > 1})
        raise ValueError(f"{type(estimator).__name__}.classes_ names the concept(s) "
                         f"{', '.join(repeated[:5])} more than once: each score column must be "
                         "one concept.")
    return names


def targets_of(estimator, y=None):
    """The concept targets of a fitted estimator: its own, or made from its classes or ``y``.

    The library's estimators carry ``targets_``; another classifier is read
    by its ``classes_`` when they are concept names (any 1-d sequence, any
    order: :func:`concept_names`; the targets hold them sorted and its
    scores are aligned by name), or by the width of an indicator ``y``.
    """
    y = as_target(y)
    targets = getattr(estimator, "targets_", None)
    if isinstance(targets, ConceptTargets):
        return targets
    names = concept_names(estimator)
    if names is not None:  # concept names of a foreign estimator
        return ConceptTargets.from_classes(np.array(sorted(names), dtype=object))
    if y is None or is_concept_lists(y):
        raise ValueError(
            f"{type(estimator).__name__} does not name its concepts: with concept lists the "
            "estimator must expose its concept names as classes_ (a 1-d sequence of strings, "
            "like ConceptCNNClassifier's); encode y with ConceptEncoder otherwise."
        )
    return ConceptTargets().fit(y)


def score_columns(estimator, targets):
    """The concept of each column of ``estimator``'s scores and ``decide``, in its own order.

    Its ``classes_`` when they are concept names (:func:`concept_names`),
    else ``targets.classes_`` (``targets``: :func:`targets_of` the estimator).
    """
    if getattr(estimator, "targets_", None) is targets or not targets.on_concepts:
        return targets.classes_
    names = concept_names(estimator)
    return targets.classes_ if names is None else names


def align_columns(scores, from_classes, to_classes, fill=np.nan):
    """Move score columns from one concept vocabulary to another, by concept name.

    Parameters
    ----------
    scores : ndarray of shape (n_images, len(from_classes))
    from_classes, to_classes : ndarray
        The concepts of the columns, before and after.
    fill : float, default=NaN
        The score of a concept of ``to_classes`` that ``from_classes`` lacks
        (NaN never passes a threshold).

    Returns
    -------
    ndarray of shape (n_images, len(to_classes))
    """
    if np.array_equal(from_classes, to_classes):
        return scores
    position = {name: column for column, name in enumerate(to_classes)}
    source, target = [], []
    for column, name in enumerate(from_classes):
        if name in position:
            source.append(column)
            target.append(position[name])
    dtype = scores.dtype if np.asarray(scores).dtype.kind == "f" else np.float64
    aligned = np.full((len(scores), len(to_classes)), fill, dtype=dtype)
    aligned[:, target] = np.asarray(scores)[:, source]
    return aligned


def checked_multilabel_target(X, y):
    """``y`` (read by ``as_target``) checked for a tuner, and its labels for counting.

    Returns ``y`` as given (what the estimator is fitted on) and the labels:
    the same concept lists, or the indicator as a 0/1 CSR matrix, made once.
    """
    if _num_samples(X) == 0:
        raise ValueError("X and y are empty: there is no image to tune the threshold on.")
    if is_concept_lists(y):
        return y, y
    y = check_array(y, ensure_2d=False, accept_sparse=True, dtype=None, input_name="y")
    if y.ndim == 2:
        try:  # one pass over a 0/1 matrix; scikit-learn's check only for anything else
            return y, as_binary_csr(y, "y")
        except ValueError:
            pass
    kind = type_of_target(y, input_name="y", raise_unknown=True)
    if kind.startswith("continuous"):
        raise ValueError(f"Unknown label type: y is {kind}; ThresholdTuner needs 0/1 labels.")
    if kind != "multilabel-indicator" and not (kind == "binary" and y.ndim == 2):
        raise ValueError(
            f"y is a {kind} target. Only binary classification is supported, per concept: "
            "pass an indicator matrix (n_images, n_concepts) or concept lists."
        )
    return y, as_binary_csr(y, "y")
