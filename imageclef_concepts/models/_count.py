"""How many concepts an image has: a small regressor with a split-conformal interval.

AUEB/Archimedes (ImageCLEFmed Caption 2026) predicted each image's concept
count and brought its thresholded concepts inside a conformal interval
around it. :class:`ConceptCountRegressor` is that count model: a ridge
regression over a few features of each image's scores, its interval
calibrated on images the regression did not see. A fitted model is a
handful of numbers, so that a :class:`~imageclef_concepts.DecisionRule`
carries it as plain JSON.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import ShuffleSplit
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ..concepts._lists import as_binary_csr, as_target, is_concept_lists, split_concepts
from ..files._numbers import WholeNumber

if TYPE_CHECKING:  # names for annotations only
    from typing import Any

    from numpy.typing import ArrayLike, NDArray

    from .._typing import CountFeatures, RandomState, Targets

_FORMAT = "imageclef_concepts.ConceptCountRegressor"
_FITTED = ("n_features_in_", "n_top_", "coef_", "intercept_", "quantile_")
_LARGEST_COUNT = 2 ** 53  # the largest bound of an interval
_ROUND_OFF = 1e-9  # 0.8 / (1 - 0.8) is 4.000000000000001 in floats: 4 is meant


class ConceptCountRegressor(RegressorMixin, BaseEstimator):
    """Predict each image's number of concepts, with a split-conformal interval.

    Parameters
    ----------
    features : {"scores", "raw"}, default="scores"
        What ``X`` is. ``"scores"``: each image's concept scores (a model's
        probabilities), summarised as their sum (the expected count of a
        calibrated model) and their ``n_top`` highest values in decreasing
        order; this is what a :class:`~imageclef_concepts.DecisionRule`
        applies the model to. ``"raw"``: any features (an embedding), used
        as they are.
    n_top : int, default=20
        With ``features="scores"``, how many of the highest scores are features.
    alpha : float, default=1.0
        Ridge penalty of the regression on standardised features.
    coverage : float in (0, 1), default=0.9
        Share of images whose true count the interval should hold.
    calibration_size : float in (0, 1), default=0.25
        Share of the images given to ``fit`` held out (at random) to
        calibrate the interval; the regression is fitted on the rest.
    random_state : int, RandomState instance or None, default=None
        Draws the calibration images.

    Attributes
    ----------
    n_features_in_ : int
        Width of ``X``: the number of concepts with ``features="scores"``.
    n_top_ : int
        The number of highest scores used (``n_top``, at most the width).
    coef_ : ndarray of shape (n_derived_features,)
        Coefficients on the (derived) features, in their own units.
    intercept_ : float
    quantile_ : float
        Half-width of the interval: the conformal quantile of the absolute
        residuals on the calibration images.

    Notes
    -----
    Split conformal prediction: the regression is fitted on one part of the
    images, the absolute residuals ``|count - predicted|`` of the other
    ``m`` (calibration) images are sorted, and ``quantile_`` is the
    ``ceil((m + 1) * coverage)``-th smallest. For a new image exchangeable
    with the calibration images, the interval ``[ceil(p - q), floor(p + q)]``
    around its prediction ``p`` then holds its count with probability at
    least ``coverage`` (Vovk et al. 2005; Lei et al. 2018). The calibration
    is a held-out part of ``fit``'s data, rather than data given separately,
    so that the estimator keeps scikit-learn's ``fit(X, y)`` (``clone``,
    pipelines, cross-validation) and the calibration images can never be
    ones the regression saw. Counts are whole numbers, so the bounds are
    rounded inwards without losing coverage; the lower one is at least 0.
    An interval that holds no whole number becomes the nearest one.

    Examples
    --------
    >>> import numpy as np
    >>> from imageclef_concepts import ConceptCountRegressor
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.random((200, 6))
    >>> counts = (scores > 0.5).sum(axis=1)
    >>> model = ConceptCountRegressor(coverage=0.8, random_state=0).fit(scores, counts)
    >>> low, high = model.predict_interval(scores[:3])
    >>> bool(np.all(low <= high))
    True
    >>> ConceptCountRegressor.from_dict(model.to_dict()).to_dict() == model.to_dict()
    True
    """

    _parameter_constraints = {
        "features": [StrOptions({"scores", "raw"})],
        "n_top": [WholeNumber(1)],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "coverage": [Interval(Real, 0, 1, closed="neither")],
        "calibration_size": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(self, *, features: CountFeatures = "scores", n_top: int = 20,
                 alpha: float = 1.0, coverage: float = 0.9, calibration_size: float = 0.25,
                 random_state: RandomState = None) -> None:
        self.features = features
        self.n_top = n_top
        self.alpha = alpha
        self.coverage = coverage
        self.calibration_size = calibration_size
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: Targets | ArrayLike) -> ConceptCountRegressor:
        """Fit the regression on part of the images, calibrate the interval on the rest.

        Parameters
        ----------
        X : array-like of shape (n_images, n_features)
            Concept scores (``features="scores"``) or other features.
        y : array-like of shape (n_images,), indicator matrix or concept lists
            The counts, or the concepts of each image (their number is
            counted; a concept repeated in one image counts once). Counts
            written as strings (``["3", "2"]``) are refused, not read as one
            concept named "3" and one named "2".

        Returns
        -------
        self
        """
        self._validate_params()
        features = validate_data(self, X, ensure_min_samples=2, dtype=np.float64)
        counts = concept_counts(y)
        if len(counts) != len(features):
            raise ValueError(f"X has {len(features)} images but y has {len(counts)}.")
        fit_rows, calibration_rows = next(ShuffleSplit(
            n_splits=1, test_size=self.calibration_size,
            random_state=self.random_state).split(features))
        needed = calibration_needed(self.coverage)
        if len(calibration_rows) < needed:
            raise ValueError(
                f"coverage={self.coverage:g} needs at least {needed} calibration images, but "
                f"calibration_size={self.calibration_size:g} of {len(features)} images holds "
                f"{len(calibration_rows)}: give more images, a larger calibration_size or a "
                "lower coverage.")
        self.n_top_ = min(self.n_top, self.n_features_in_)
        derived = self._derived(features)
        self.coef_, self.intercept_ = _ridge(derived[fit_rows], counts[fit_rows], self.alpha)
        residuals = np.abs(counts[calibration_rows] - self._linear(derived[calibration_rows]))
        self.quantile_ = conformal_quantile(residuals, self.coverage)
        return self

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        """The predicted number of concepts of each image (not rounded).

        Parameters
        ----------
        X : array-like of shape (n_images, n_features)

        Returns
        -------
        ndarray of shape (n_images,)
        """
        check_is_fitted(self, "quantile_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self._linear(self._derived(X))

    def predict_interval(self, X: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Each image's interval of concept counts: (low, high), whole numbers, both included.

        Parameters
        ----------
        X : array-like of shape (n_images, n_features)

        Returns
        -------
        low, high : ndarray of int of shape (n_images,)
            Both within ``[0, 2**53]``. A prediction that overflows to NaN
            (huge features) gives the whole range.
        """
        with np.errstate(over="ignore", invalid="ignore"):  # huge features: inf or NaN
            predicted = self.predict(X)
        # Bounds within [0, 2**53], whole numbers an int64 holds exactly; a prediction that
        # overflowed to NaN says nothing: every count.
        most = float(_LARGEST_COUNT)
        unknown = np.isnan(predicted)
        predicted = np.clip(np.where(unknown, 0.0, predicted), -most, 2 * most)
        low = np.clip(np.ceil(predicted - self.quantile_), 0, most)
        high = np.clip(np.floor(predicted + self.quantile_), 0, most)
        nearest = np.clip(np.rint(predicted), 0, most)
        empty = low > high
        low, high = np.where(empty, nearest, low), np.where(empty, nearest, high)
        low, high = np.where(unknown, 0, low), np.where(unknown, most, high)
        return low.astype(np.int64), high.astype(np.int64)

    def score(self, X: ArrayLike, y: Targets | ArrayLike,
              sample_weight: ArrayLike | None = None) -> float:
        """The coefficient of determination R^2 of the predicted counts.

        Parameters
        ----------
        X : array-like of shape (n_images, n_features)
        y : array-like of shape (n_images,), indicator matrix or concept lists
            As for :meth:`fit`.
        sample_weight : array-like of shape (n_images,), default=None

        Returns
        -------
        float
        """
        return super().score(X, concept_counts(y), sample_weight=sample_weight)

    def _derived(self, X):
        if self.features == "raw":
            return X
        return score_features(X, self.n_top_)

    def _linear(self, derived):
        return derived @ self.coef_ + self.intercept_

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as plain JSON-ready values (a few numbers)."""
        check_is_fitted(self, "quantile_")
        params = self.get_params()
        if not isinstance(params["random_state"], (Integral, type(None))):
            params["random_state"] = None  # only drew the calibration images
        return {"format": _FORMAT, "params": params, "n_features_in_": int(self.n_features_in_),
                "n_top_": int(self.n_top_), "coef_": self.coef_.tolist(),
                "intercept_": float(self.intercept_), "quantile_": float(self.quantile_)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ConceptCountRegressor:
        """The fitted model of :meth:`to_dict`'s output, its structure checked.

        Raises
        ------
        ValueError
            Naming the first missing or malformed entry.
        """
        if not isinstance(values, dict) or values.get("format") != _FORMAT:
            raise ValueError(f"Not a concept count model: {str(values)[:200]!r}.")
        missing = [key for key in ("params", *_FITTED) if key not in values]
        if missing:
            raise ValueError(f"The concept count model has no {', '.join(missing)}.")
        if not isinstance(values["params"], dict):
            raise ValueError("The concept count model's params must be an object.")
        try:
            model = cls(**values["params"])
        except TypeError as error:
            raise ValueError(f"The concept count model's params: {error}") from None
        model._validate_params()
        for key in ("n_features_in_", "n_top_"):
            if not _is_whole(values[key]) or values[key] < 1:
                raise ValueError(f"The concept count model's {key} must be a whole number "
                                 f">= 1, not {values[key]!r:.40}.")
        width = values["n_features_in_"] if model.features == "raw" else values["n_top_"] + 1
        coef = values["coef_"]
        if not (isinstance(coef, list) and len(coef) == width and all(map(_is_number, coef))):
            raise ValueError(f"The concept count model's coef_ must be a list of {width} "
                             "finite numbers.")
        for key in ("intercept_", "quantile_"):
            if not _is_number(values[key]) or (key == "quantile_" and values[key] < 0):
                raise ValueError(f"The concept count model's {key} must be a finite number"
                                 + (" >= 0" if key == "quantile_" else "")
                                 + f", not {values[key]!r:.40}.")
        model.n_features_in_, model.n_top_ = values["n_features_in_"], values["n_top_"]
        model.coef_ = np.asarray(coef, dtype=np.float64)
        model.intercept_, model.quantile_ = float(values["intercept_"]), float(values["quantile_"])
        return model

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True  # counts: scikit-learn's checks give y >= 0
        # Sorted-score summaries are no general regression features (make_regression's).
        tags.regressor_tags.poor_score = self.features == "scores"
        return tags


def score_features(scores, n_top):
    """Each row's sum and its ``n_top`` highest values, in decreasing order.

    Rows narrower than ``n_top`` are padded with zeros (a vocabulary that
    shrank after tuning).
    """
    scores = np.asarray(scores, dtype=np.float64)
    n_images, width = scores.shape
    top = np.zeros((n_images, n_top))
    kept = min(n_top, width)
    if kept:
        highest = np.partition(scores, width - kept, axis=1)[:, width - kept:]
        top[:, :kept] = -np.sort(-highest, axis=1)
    return np.column_stack([scores.sum(axis=1), top])


def finite_scores(scores):
    """Scores as a count model of scores reads them: NaN as 0, the rest finite.

    Infinite and huge scores (a ``decision_function``) are clipped to a range
    whose sum over an image cannot overflow, so that the features stay finite.
    """
    scores = np.asarray(scores, dtype=np.float64)
    largest = np.finfo(np.float64).max / (max(scores.shape[-1], 1) + 1)
    return np.clip(np.nan_to_num(scores, nan=0.0), -largest, largest)


def conformal_quantile(residuals, coverage):
    """The ``ceil((m + 1) * coverage)``-th smallest of ``m`` calibration residuals."""
    rank = math.ceil((len(residuals) + 1) * coverage - _ROUND_OFF)
    return float(np.partition(residuals, rank - 1)[rank - 1])


def calibration_needed(coverage):
    """The fewest calibration images whose conformal rank exists: ``m >= c / (1 - c)``."""
    return math.ceil(coverage / (1 - coverage) - _ROUND_OFF)


def concept_counts(y):
    """The number of concepts of each image: from counts, concept lists or an indicator."""
    if y is None:
        raise ValueError("ConceptCountRegressor requires y to be passed, but the target y is "
                         "None: give each image's count, concepts or indicator row.")
    y = as_target(y)
    if is_concept_lists(y):
        _refuse_numbers_as_concepts(y)
        try:
            return np.array([len(set(split_concepts(concepts))) for concepts in y],
                            dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"Unknown label type: y was read as concept lists, but {error}"
                             ) from None
    if not sparse.issparse(y):
        y = check_array(y, ensure_2d=False, dtype=None, input_name="y")
    if sparse.issparse(y) or y.ndim == 2:
        return np.asarray(as_binary_csr(y, "y").sum(axis=1), dtype=np.float64).ravel()
    if y.dtype.kind not in "biuf":
        raise ValueError(f"Unknown label type: y of dtype {y.dtype} is neither counts nor "
                         "concept lists.")
    counts = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
    if (counts < 0).any():
        raise ValueError("y must be each image's number of concepts (whole numbers >= 0), "
                         f"an indicator matrix or concept lists; got {counts.min():g}.")
    if (counts != np.round(counts)).any():
        warnings.warn("y holds counts that are not whole numbers: the interval's bounds are "
                      "whole numbers all the same.", UserWarning, stacklevel=3)
    return counts


def _refuse_numbers_as_concepts(y):
    """Counts read from a text file (``["3", "2"]``) are not one concept each: refused.

    Concept identifiers (CUIs such as ``C0040405``) are never bare numbers, so
    a target whose every item is one is counts given as strings.
    """
    def is_number(item):
        try:
            float(item)
        except ValueError:
            return False
        return True

    if len(y) and all(isinstance(item, str) and is_number(item) for item in y):
        raise ValueError(f"y holds numbers written as strings ({', '.join(map(repr, y[:3]))}"
                         f"{', ...' if len(y) > 3 else ''}): give each image's count as a "
                         "number (np.asarray(y, dtype=float)), or its concepts; a single "
                         "concept per image named by a number would count 1 for each.")


def with_width(model, n_features):
    """``model`` for scores of ``n_features`` concepts (its features are order-free summaries).

    A tuner's final estimator may know a few concepts more or fewer than its
    folds did; the sum and the highest scores are defined for any width.
    """
    if model.n_features_in_ == n_features:
        return model
    if model.features != "scores":
        raise ValueError(f"The count model was fitted on {model.n_features_in_} raw features; "
                         f"it cannot take the scores of {n_features} concepts.")
    resized = ConceptCountRegressor.from_dict(model.to_dict())
    resized.n_features_in_ = n_features
    return resized


def _ridge(derived, counts, alpha):
    """Ridge regression on standardised features, its coefficients back in the features' units."""
    from sklearn.linear_model import Ridge

    mean, scale = derived.mean(axis=0), derived.std(axis=0)
    scale[scale == 0] = 1.0  # a constant feature: no information, no division by zero
    fitted = Ridge(alpha=alpha).fit((derived - mean) / scale, counts)
    coef = fitted.coef_ / scale
    return coef, float(fitted.intercept_ - mean @ coef)


def _is_number(value):
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_whole(value):
    return isinstance(value, Integral) and not isinstance(value, bool)
