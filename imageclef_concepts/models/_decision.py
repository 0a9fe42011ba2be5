"""The decision rule: from concept probabilities to each image's predicted concepts.

Every concept estimator of the library turns scores into concepts through
one :class:`DecisionRule`: a concept is predicted when its score is at least
its threshold (one global threshold or one per concept), then each image's
predictions are brought within its bounds (``[min_concepts, max_concepts]``,
narrowed by a count model's interval when the rule has one): an image with
too few gets its next highest-scoring concepts, one with too many loses its
lowest-scoring ones. :class:`~imageclef_concepts.ThresholdTuner` produces
one; saved models carry it as plain JSON.
"""

from __future__ import annotations

import json
from numbers import Integral, Real
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from ..concepts._targets import align_columns
from ..files._sizes import check_allocation
from ._ranges import _real_values

if TYPE_CHECKING:  # names for annotations only
    from typing import Any

    from numpy.typing import ArrayLike, NDArray

    from ._count import ConceptCountRegressor

_FORMAT = "imageclef_concepts.DecisionRule"


class DecisionRule:
    """Threshold(s) and bounds that turn concept scores into predicted concepts.

    Parameters
    ----------
    threshold : float or array-like of shape (n_concepts,), default=0.5
        A concept is predicted when its score is at least this: one value for
        every concept, or one per concept (column).
    min_concepts : int, default=0
        Predict at least this many concepts per image, the highest-scoring
        ones: under the official score an image with no prediction scores 0.
    max_concepts : int or None, default=None
        Predict at most this many concepts per image, the highest-scoring
        ones (the organisers refuse more than 100 from 2022 on).
    count_model : ConceptCountRegressor or None, default=None
        A fitted :class:`~imageclef_concepts.ConceptCountRegressor` of the
        scores this rule is applied to: each image's predictions are brought
        inside its count interval (``predict_interval`` of its scores, NaN
        read as 0 and infinite or huge scores clipped to finite ones), itself
        kept within ``[min_concepts, max_concepts]``. Its ``features`` must be
        ``"scores"``: a rule has nothing else to give it.

    Notes
    -----
    An image with fewer concepts over their thresholds than its lower bound
    gets its next highest-scoring concepts; one with more than its upper
    bound keeps its highest-scoring ones. Ties between equal scores are
    broken by column order. An image whose scores are all NaN (an
    unreadable file) gets no concept, whatever ``min_concepts`` says, and a
    NaN score is never predicted.

    Examples
    --------
    >>> import numpy as np
    >>> from imageclef_concepts import DecisionRule
    >>> rule = DecisionRule(0.5, min_concepts=1)
    >>> rule.apply(np.array([[0.9, 0.6, 0.1], [0.2, 0.3, 0.1]])).astype(int)
    array([[1, 1, 0],
           [0, 1, 0]])
    >>> DecisionRule.from_json(rule.to_json()) == rule
    True
    """

    def __init__(self, threshold: float | ArrayLike = 0.5, *, min_concepts: int = 0,
                 max_concepts: int | None = None,
                 count_model: ConceptCountRegressor | None = None) -> None:
        self.threshold = _checked_threshold(threshold)
        self.min_concepts = _checked_count(min_concepts, "min_concepts", 0)
        self.max_concepts = (None if max_concepts is None
                             else _checked_count(max_concepts, "max_concepts", 1))
        if self.max_concepts is not None and self.max_concepts < self.min_concepts:
            raise ValueError(f"max_concepts={self.max_concepts} is below "
                             f"min_concepts={self.min_concepts}.")
        self.count_model = _checked_count_model(count_model)

    @property
    def per_concept(self) -> bool:
        """True when there is one threshold per concept."""
        return np.ndim(self.threshold) == 1

    def apply(self, scores: ArrayLike, *, max_concepts: int | ArrayLike | None = None
              ) -> NDArray[np.bool_]:
        """Predicted concepts of each image, as a boolean indicator matrix.

        Parameters
        ----------
        scores : array-like of shape (n_images, n_concepts)
            Probabilities or decision scores; NaN never passes a threshold.
        max_concepts : array-like of shape (n_images,), default=None
            A cap per image that replaces ``max_concepts`` (k-NN's
            ``voting="mean_count"`` predicts as many concepts as the
            neighbours carry on average).

        Returns
        -------
        ndarray of bool, shape (n_images, n_concepts)
        """
        scores = np.asarray(scores)
        if scores.ndim != 2:
            raise ValueError(f"scores must be 2-d (images x concepts); got shape {scores.shape}.")
        if self.per_concept and len(self.threshold) != scores.shape[1]:
            raise ValueError(f"This rule has {len(self.threshold)} per-concept thresholds but "
                             f"the scores have {scores.shape[1]} concepts.")
        predicted = scores >= self.threshold
        cap = self.max_concepts if max_concepts is None else np.asarray(max_concepts)
        if not self.min_concepts and cap is None and self.count_model is None:
            return predicted
        low, high = self.min_concepts, np.inf if cap is None else cap
        if self.count_model is not None:
            low, high = self._count_interval(scores, low, high)
        return within_bounds(scores, predicted, low, high)

    def _count_interval(self, scores, low, high):
        """The count model's interval of each image, within the hard bounds ``[low, high]``."""
        if self.count_model.n_features_in_ != scores.shape[1]:
            raise ValueError(f"This rule's count model was fitted on the scores of "
                             f"{self.count_model.n_features_in_} concepts but the scores have "
                             f"{scores.shape[1]}.")
        if not len(scores):
            return low, high
        from ._count import finite_scores

        first, last = self.count_model.predict_interval(finite_scores(scores))
        return np.clip(first, low, high), np.clip(last, low, high)

    def to_dict(self) -> dict[str, Any]:
        """The rule as plain JSON-ready values."""
        threshold = (self.threshold.tolist() if self.per_concept else float(self.threshold))
        values = {"format": _FORMAT, "threshold": threshold, "min_concepts": self.min_concepts,
                  "max_concepts": self.max_concepts}
        if self.count_model is not None:  # only then: files of rules without one unchanged
            values["count_model"] = self.count_model.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DecisionRule:
        """The rule of :meth:`to_dict`'s output."""
        if not isinstance(values, dict) or values.get("format") != _FORMAT:
            raise ValueError(f"Not a decision rule: {str(values)[:200]!r}.")
        missing = [key for key in ("threshold", "min_concepts", "max_concepts")
                   if key not in values]
        if missing:
            raise ValueError(f"The decision rule has no {', '.join(missing)}.")
        threshold = values["threshold"]
        if not (isinstance(threshold, (Real, list)) and not isinstance(threshold, bool)) or (
                isinstance(threshold, list) and not all(
                    isinstance(v, Real) and not isinstance(v, bool) for v in threshold)):
            raise ValueError(f"The decision rule's threshold must be a number or a list of "
                             f"numbers, not {threshold!r:.80}.")
        count_model = values.get("count_model")
        if count_model is not None:
            from ._count import ConceptCountRegressor

            count_model = ConceptCountRegressor.from_dict(count_model)
        return cls(threshold if isinstance(threshold, list) else float(threshold),
                   min_concepts=values["min_concepts"], max_concepts=values["max_concepts"],
                   count_model=count_model)

    def to_json(self) -> str:
        """The rule as a JSON string."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> DecisionRule:
        """The rule of :meth:`to_json`'s output."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def of(cls, threshold: float | ArrayLike | DecisionRule) -> DecisionRule:
        """A rule from a ``threshold`` parameter: a number, or already a rule."""
        return threshold if isinstance(threshold, DecisionRule) else cls(threshold)

    def with_bounds(self, *, min_concepts: int | None = None,
                    max_concepts: int | None = None) -> DecisionRule:
        """A copy with other ``min_concepts`` / ``max_concepts`` (None keeps them)."""
        return DecisionRule(
            self.threshold,
            min_concepts=self.min_concepts if min_concepts is None else min_concepts,
            max_concepts=self.max_concepts if max_concepts is None else max_concepts,
            count_model=self.count_model)

    def __eq__(self, other):
        if not isinstance(other, DecisionRule):
            return NotImplemented
        models = [None if rule.count_model is None else rule.count_model.to_dict()
                  for rule in (self, other)]
        return (self.min_concepts == other.min_concepts
                and self.max_concepts == other.max_concepts
                and np.array_equal(self.threshold, other.threshold)
                and models[0] == models[1])

    __hash__ = None  # type: ignore[assignment]  # arrays inside: not hashable

    def __repr__(self):
        threshold = (f"<{len(self.threshold)} per-concept thresholds>" if self.per_concept
                     else f"{self.threshold:g}")
        count = ("" if self.count_model is None else
                 f", count_model=<count model, coverage {self.count_model.coverage:g}>")
        return (f"DecisionRule({threshold}, min_concepts={self.min_concepts}, "
                f"max_concepts={self.max_concepts}{count})")


def probability_rule(threshold: float | ArrayLike | DecisionRule, name: str = "threshold"
                     ) -> DecisionRule:
    """The rule of a probability estimator's ``threshold``, its thresholds checked in [0, 1].

    A threshold above 1 predicts nothing and one below 0 predicts every
    concept, for every image: never what was meant. (Rules over decision
    scores, as :class:`~imageclef_concepts.ThresholdTuner` tunes for a
    ``decision_function``, may lie anywhere and do not come here.)

    Raises
    ------
    ValueError
        Naming ``name`` and the offending values.
    """
    rule = DecisionRule.of(threshold)
    values = np.atleast_1d(rule.threshold)
    outside = values[~((values >= 0) & (values <= 1))]
    if outside.size:
        raise ValueError(f"{name} must be a probability in [0, 1] (or a DecisionRule whose "
                         f"thresholds all are); got {outside[0]:g}"
                         + (f" among {len(values)} per-concept thresholds" if rule.per_concept
                            else "") + ".")
    return rule


def candidate_thresholds(scores, thresholds):
    """The thresholds tried: ``thresholds`` evenly spaced over the scores, or the ones given.

    In the scores' own precision, so that a chosen threshold compares with
    float32 probabilities at prediction exactly as it did in tuning.
    """
    finite = scores[np.isfinite(scores)]
    if finite.size == 0:
        raise ValueError(
            f"The estimator's scores on the {len(scores)} tuning image(s) are all NaN or "
            "infinite (unreadable images, skipped with on_error='skip'?): there is "
            "nothing to tune the threshold on.")
    if isinstance(thresholds, Integral):
        low, high = finite.min(), finite.max()  # decision functions can be inf
        candidates = np.linspace(low, high, num=thresholds)
    else:
        candidates = np.sort(np.asarray(thresholds, dtype=float))
    return candidates.astype(scores.dtype)


def check_threshold_grid(thresholds, *, probabilities=True, most=None, name="thresholds"):
    """Candidate ``thresholds`` checked, the one check of every tuner's, recipe's and display's.

    A number of candidates (an int >= 1, not a boolean), or a non-empty flat
    list of finite real thresholds; in [0, 1] when ``probabilities`` (the
    scores tuned are probabilities: a threshold outside predicts no concept,
    or every one, for every image); at most ``most`` of them (None: no limit).

    Returns
    -------
    int or ndarray of float64
        The number of candidates, or the given thresholds.

    Raises
    ------
    ValueError
        One line naming ``name`` and the offending value.
    """
    if isinstance(thresholds, Integral) and not isinstance(thresholds, (bool, np.bool_)):
        if thresholds < 1:
            raise ValueError(f"{name} must be a number of candidates (at least 1) or a list "
                             f"of thresholds; got {thresholds}.")
        return int(thresholds)
    values = _real_values(thresholds, name)  # strings, booleans, None, ragged lists named
    if values.ndim != 1 or not len(values) or not np.isfinite(values).all():
        raise ValueError(f"{name} must be a number of candidates or a non-empty flat list of "
                         f"finite thresholds (not NaN nor infinite); got {values.tolist()!r:.80}.")
    if most is not None and len(values) > most:
        raise ValueError(f"{name} must hold at most {most} candidate thresholds; got "
                         f"{len(values)}.")
    outside = values[(values < 0) | (values > 1)] if probabilities else values[:0]
    if outside.size:
        raise ValueError(f"{name} must lie in [0, 1], the scores being probabilities (a "
                         f"threshold outside predicts no concept or every one); got "
                         f"{outside[0]:g}.")
    return values


def check_candidate_memory(thresholds, truth):
    """Refuse, before any model is fitted, a grid of candidate ``thresholds`` (a number or a
    list, checked by :func:`check_threshold_grid`, any range: decision scores too) that
    scoring against ``truth`` (images x concepts, 1 for a true one) cannot hold in memory:
    :func:`~imageclef_concepts.concepts._metrics.threshold_curve` makes integer tables of
    images x candidates and true concepts x candidates (about 8 bytes a cell, several of
    each). ``thresholds=10**8`` on 40 images was NumPy's MemoryError after every fold was
    fitted, naming nothing."""
    check_threshold_grid(thresholds, probabilities=False)
    n = int(thresholds) if isinstance(thresholds, Integral) else int(np.size(thresholds))
    n_images, n_true_cells = truth.shape[0], sparse.csr_matrix(truth).nnz
    check_allocation(8 * n * (5 * n_images + 2 * n_true_cells), f"thresholds={n}",
                     f"scoring {n:,} candidate thresholds on {n_images:,} images",
                     "give fewer candidate thresholds (a few hundred tell the best apart)")


def within_bounds(scores, predicted, low, high):
    """``predicted`` with each image's number of concepts brought within ``[low, high]``.

    ``low`` and ``high`` are numbers or one per image. An image below its
    lower bound gets its next highest-scoring concepts, one above its upper
    bound keeps its highest-scoring predicted ones (the upper bound wins
    when they cross); only those images are ranked. NaN is never predicted.
    """
    counts = predicted.sum(axis=1)
    wanted = np.minimum(np.maximum(counts, low), high)
    missing = np.isnan(scores)
    readable = ~missing.all(axis=1)
    decided = predicted & readable[:, np.newaxis]
    rows = np.flatnonzero((wanted != counts) & readable)
    if rows.size:
        keys = np.where(missing[rows], 0.0, -np.asarray(scores[rows], dtype=np.float64))
        # The predicted concepts first, each group by decreasing score (ties by column),
        # NaN last of all: it never takes the place of a readable concept, even a -inf one.
        order = np.lexsort((keys, missing[rows], ~predicted[rows]), axis=1)
        taken = np.arange(scores.shape[1]) < np.asarray(wanted[rows])[:, np.newaxis]
        chosen = np.zeros((rows.size, scores.shape[1]), dtype=bool)
        np.put_along_axis(chosen, order, taken, axis=1)
        decided[rows] = chosen & ~missing[rows]
    return decided


def _checked_threshold(threshold):
    if np.ndim(threshold) == 0 and not isinstance(threshold, (bool, np.bool_, str, bytes)):
        try:  # any real number: float, NumPy scalar, Fraction, Decimal, a huge int
            value = float(threshold)
        except OverflowError:
            raise ValueError(f"threshold ({type(threshold).__name__}) is too large for a "
                             f"float ({len(str(threshold))} digits): give a probability in "
                             "[0, 1].") from None
        except (TypeError, ValueError):
            raise ValueError(f"threshold must be a number or one number per concept; got "
                             f"{type(threshold).__name__}: {threshold!r:.40}.") from None
        if np.isnan(value):
            raise ValueError("threshold is NaN.")
        return value
    try:
        values = np.asarray(threshold, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"threshold must be a number or one number per concept; got "
                         f"{type(threshold).__name__} that does not convert to floats "
                         "(too large, complex or not numbers).") from None
    if values.ndim != 1 or len(values) == 0:
        raise ValueError("threshold must be a number or one number per concept (a 1-d "
                         f"array); got {type(threshold).__name__} of shape {values.shape}.")
    if np.isnan(values).any():
        raise ValueError("threshold contains NaN.")
    values.setflags(write=False)
    return values


# The largest concept count a rule takes: far above any vocabulary, and within
# the 32-bit integers the decision's arrays compare it with.
LARGEST_COUNT = 2**31 - 1


def _checked_count(value, name, smallest):
    if not isinstance(value, Integral) or isinstance(value, bool) or value < smallest:
        raise ValueError(f"{name} must be a whole number >= {smallest}; got {value!r}.")
    if value > LARGEST_COUNT:
        raise ValueError(f"{name} must be at most {LARGEST_COUNT:,}; got {value!r:.40}.")
    return int(value)


def rule_for_columns(rule, tuned_classes, final_classes, global_threshold):
    """``rule`` with its per-concept thresholds moved from the tuning columns to the final ones.

    A concept the final estimator knows but the tuning did not (possible when
    folds were refitted on all the data) keeps the best global threshold. A
    count model of the scores takes the final number of concepts (its
    features do not depend on the columns' order).
    """
    if np.array_equal(tuned_classes, final_classes):
        return rule
    threshold = rule.threshold
    if rule.per_concept:
        moved = align_columns(np.asarray(rule.threshold)[np.newaxis, :], tuned_classes,
                              final_classes)[0]
        threshold = np.where(np.isnan(moved), global_threshold, moved)
    count_model = rule.count_model
    if count_model is not None:
        from ._count import with_width

        count_model = with_width(count_model, len(final_classes))
    return DecisionRule(threshold, min_concepts=rule.min_concepts,
                        max_concepts=rule.max_concepts, count_model=count_model)


def _checked_count_model(model):
    if model is None:
        return None
    from ._count import ConceptCountRegressor

    if not isinstance(model, ConceptCountRegressor) or not hasattr(model, "quantile_"):
        raise ValueError(f"count_model must be a fitted ConceptCountRegressor or None; got "
                         f"{'an unfitted ' if isinstance(model, ConceptCountRegressor) else ''}"
                         f"{type(model).__name__}.")
    if model.features != "scores":
        raise ValueError(f"count_model must be fitted with features='scores' (a rule gives it "
                         f"the concept scores only); got features={model.features!r}.")
    return model
