"""ConceptEncoder: concept lists to an indicator matrix and back."""

from __future__ import annotations

import warnings
from collections import Counter
from numbers import Integral
from typing import TYPE_CHECKING

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.utils._param_validation import Hidden, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._lists import (
    as_binary_csr,
    as_target,
    is_concept_lists,
    looks_comma_joined,
    split_concepts,
)

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Sequence
    from typing import Any, Literal

    from numpy.typing import ArrayLike, NDArray
    from scipy import sparse
    from typing_extensions import Self

    from .._typing import HandleUnknown, Targets


class UnknownConceptWarning(UserWarning):
    """Concepts unseen in ``fit`` were dropped by ``ConceptEncoder.transform``.

    Examples
    --------
    >>> import warnings
    >>> from imageclef_concepts import ConceptEncoder, UnknownConceptWarning
    >>> encoder = ConceptEncoder().fit(["C1"])
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = encoder.transform(["C1;C9"])
    >>> caught[0].category is UnknownConceptWarning
    True
    """


class ConceptEncoder(TransformerMixin, BaseEstimator):
    """Encode images' concept lists as a multi-label indicator matrix.

    A :class:`~sklearn.preprocessing.MultiLabelBinarizer` that also reads
    ``;``-joined strings, can keep only frequent concepts, and never drops an
    unknown concept silently (``MultiLabelBinarizer`` does, which inflates any
    score computed from its output). Concepts are compared in canonical form,
    stripped and upper-cased, as the official score compares them: ``c1`` and
    ``C1`` are one concept, ``C1``.

    Parameters
    ----------
    min_count : int, default=1
        Keep only concepts seen in at least this many images in ``fit``.
    max_labels : int, default=None
        Keep only this many most frequent concepts (ties broken by name): the
        vocabulary's size, as ``max_labels`` of the estimators.
    max_concepts : int or None
        Deprecated alias of ``max_labels`` (``max_concepts`` means a cap per
        image everywhere else, in :class:`~imageclef_concepts.DecisionRule`),
        deprecated since 0.1.0 and to be removed in 0.3. Giving both with
        different values is an error.
    sparse_output : bool, default=False
        Return a scipy CSR matrix from ``transform``.
    handle_unknown : {"ignore", "error"}, default="ignore"
        What ``transform`` does with concepts never seen in ``fit``: drop them
        with one :class:`UnknownConceptWarning` saying how many, or raise.
        Concepts seen in ``fit`` but left out by ``min_count`` or
        ``max_labels`` are dropped without a warning: you asked for that.

    Attributes
    ----------
    classes_ : ndarray of str
        The kept concepts, sorted; column ``j`` of the matrix is ``classes_[j]``.
    concept_counts_ : ndarray of int
        The number of ``fit`` images with each of ``classes_``.
    excluded_concepts_ : frozenset of str
        Concepts seen in ``fit`` but left out by ``min_count``/``max_labels``.

    Examples
    --------
    >>> from imageclef_concepts import ConceptEncoder
    >>> encoder = ConceptEncoder().fit(["C1;C2", ["c2"], ""])
    >>> encoder.classes_
    array(['C1', 'C2'], dtype=object)
    >>> encoder.transform(["C2;c1"])
    array([[1, 1]])
    >>> encoder.inverse_transform([[0, 1]])
    [('C2',)]
    """

    _parameter_constraints = {
        "min_count": [Interval(Integral, 1, None, closed="left")],
        "max_labels": [Interval(Integral, 1, None, closed="left"), None],
        "max_concepts": [Interval(Integral, 1, None, closed="left"), None,
                         Hidden(StrOptions({"deprecated"}))],
        "sparse_output": ["boolean"],
        "handle_unknown": [StrOptions({"ignore", "error"})],
    }

    def __init__(self, *, min_count: int = 1, max_labels: int | None = None,
                 sparse_output: bool = False, handle_unknown: HandleUnknown = "ignore",
                 max_concepts: int | None | Literal["deprecated"] = "deprecated") -> None:
        self.min_count = min_count
        self.max_labels = max_labels
        self.sparse_output = sparse_output
        self.handle_unknown = handle_unknown
        self.max_concepts = max_concepts

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Targets, y: None = None) -> Self:
        """Learn the concepts to encode.

        Parameters
        ----------
        X : sequence of collections of str or of ``;``-joined strings, or DataFrame
            Each image's concepts; a DataFrame of 0/1 columns named by
            concept gives each row the names of its columns holding 1.
        y : None
            Ignored.

        Returns
        -------
        self : ConceptEncoder
        """
        concept_sets = _concept_sets(X)
        counts = Counter(concept for concepts in concept_sets for concept in concepts)
        _warn_comma_joined(counts)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = [concept for concept, count in ranked if count >= self.min_count]
        max_labels = self._max_labels()
        if max_labels is not None:
            kept = kept[:max_labels]
        self.classes_ = np.array(sorted(kept), dtype=object)
        self.concept_counts_ = np.array([counts[c] for c in self.classes_], dtype=np.int64)
        self.excluded_concepts_ = frozenset(counts) - frozenset(kept)
        self._binarizer = MultiLabelBinarizer(
            classes=list(self.classes_), sparse_output=self.sparse_output
        ).fit([])
        return self

    def _max_labels(self):
        """``max_labels``, or the deprecated ``max_concepts`` with a FutureWarning."""
        if isinstance(self.max_concepts, str):  # "deprecated": not given
            return self.max_labels
        if self.max_labels is not None and self.max_concepts != self.max_labels:
            raise ValueError(f"ConceptEncoder got max_labels={self.max_labels} and the deprecated "
                             f"max_concepts={self.max_concepts}: give max_labels only.")
        warnings.warn("ConceptEncoder's max_concepts is deprecated since 0.1.0 and will be "
                      "removed in 0.3: use max_labels (max_concepts is a cap per image in "
                      "DecisionRule).", FutureWarning, stacklevel=3)
        return self.max_concepts

    def transform(self, X: Targets) -> NDArray[Any] | sparse.csr_matrix:
        """Encode concept lists as an indicator matrix.

        Parameters
        ----------
        X : sequence of collections of str or of ``;``-joined strings

        Returns
        -------
        ndarray or scipy.sparse.csr_matrix of shape (n_images, n_concepts)
        """
        check_is_fitted(self)
        concept_sets = _concept_sets(X)
        known = set(self.classes_) | self.excluded_concepts_
        unknown = Counter(c for concepts in concept_sets for c in concepts if c not in known)
        if unknown:
            self._report_unknown(unknown)
        return self._encode(concept_sets)

    def transform_known(self, X: Targets) -> NDArray[Any] | sparse.csr_matrix:
        """Encode the concepts of ``classes_`` and drop every other one, without a warning.

        For scoring, where concepts the model never saw are counted apart.

        Parameters
        ----------
        X : sequence of collections of str or of ``;``-joined strings

        Returns
        -------
        ndarray or scipy.sparse.csr_matrix of shape (n_images, n_concepts)
        """
        check_is_fitted(self)
        return self._encode(_concept_sets(X))

    def _encode(self, concept_sets):
        kept = set(self.classes_)
        return self._binarizer.transform([concepts & kept for concepts in concept_sets])

    @classmethod
    def from_vocabulary(cls, classes: Sequence[str], concept_counts: Sequence[int], *,
                        sparse_output: bool = True) -> ConceptEncoder:
        """An encoder fitted on a known vocabulary (a saved model's), without the data.

        Parameters
        ----------
        classes : sequence of str
            The concepts, in column order (sorted, canonical).
        concept_counts : sequence of int
            Training images with each concept.
        sparse_output : bool, default=True

        Returns
        -------
        ConceptEncoder
        """
        encoder = (sparse_encoder() if sparse_output else cls(sparse_output=False)).fit(
            [[c] for c in classes])
        if list(encoder.classes_) != list(classes):
            raise ValueError("A saved vocabulary must be sorted, canonical and free of "
                             "duplicates.")
        encoder.concept_counts_ = np.array(concept_counts, dtype=np.int64)
        return encoder

    def _report_unknown(self, unknown):
        examples = ", ".join(sorted(unknown)[:5])
        message = (
            f"{len(unknown)} concept(s) unseen in fit ({sum(unknown.values())} "
            f"occurrence(s)), e.g. {examples}"
        )
        if self.handle_unknown == "error":
            raise ValueError(f"{message}; set handle_unknown='ignore' to drop them.")
        warnings.warn(f"{message}, were dropped.", UnknownConceptWarning, stacklevel=3)

    def inverse_transform(self, Y: ArrayLike | sparse.spmatrix) -> list[tuple[str, ...]]:
        """Turn an indicator matrix back into concept tuples.

        Parameters
        ----------
        Y : array-like or sparse matrix of shape (n_images, n_concepts)
            Non-zero entries are concepts present.

        Returns
        -------
        list of tuple of str
        """
        check_is_fitted(self)
        indicator = as_binary_csr(Y, "Y")
        if indicator.shape[1] != len(self.classes_):
            raise ValueError(
                f"Expected an indicator matrix with {len(self.classes_)} columns "
                f"(one per concept in classes_), got shape {indicator.shape}."
            )
        return self._binarizer.inverse_transform(indicator)

    def get_feature_names_out(self, input_features: None = None) -> NDArray[np.object_]:
        """The concept of each output column.

        Parameters
        ----------
        input_features : None
            Ignored.

        Returns
        -------
        ndarray of str
        """
        check_is_fitted(self)
        return self.classes_.copy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = True
        return tags


def _concept_sets(X):
    X = as_target(X, "X")
    if not is_concept_lists(X):
        raise ValueError(
            "ConceptEncoder expects a sequence of concept collections (lists of "
            "strings or ';'-joined strings), one per image; got "
            f"{type(X).__name__}{getattr(X, 'shape', '')}."
        )
    return [set(split_concepts(concepts)) for concepts in X]



def _warn_comma_joined(counts):
    joined = sorted(concept for concept in counts if looks_comma_joined(concept))
    if joined:
        warnings.warn(
            f"{len(joined)} concept(s) look like CUIs joined by commas, e.g. {joined[0]!r}: "
            "concepts are split on ';' only, as the organisers' scripts split them, so each "
            "is one concept. Give ';'-joined strings or lists if they are several.",
            UserWarning, stacklevel=3)


def sparse_encoder(**params):
    """A :class:`ConceptEncoder` with ``sparse_output=True`` for the library's own use: its
    ``transform`` gives the sparse matrix whatever scikit-learn's
    ``set_config(transform_output=...)`` asks of a user's transformers (pandas holds no
    sparse matrix: under ``transform_output="pandas"`` every fit failed)."""
    return ConceptEncoder(sparse_output=True, **params).set_output(transform="default")
