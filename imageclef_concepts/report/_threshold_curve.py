"""ThresholdCurveDisplay: the official F1 against the decision threshold."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..concepts._metrics import threshold_curve
from ..concepts._targets import ConceptTargets, targets_of
from ..models import _paper as paper
from ..models._base import aligned_scores
from ..models._decision import candidate_thresholds, check_candidate_memory

if TYPE_CHECKING:  # names for annotations only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure
    from matplotlib.lines import Line2D
    from numpy.typing import ArrayLike
    from sklearn.base import BaseEstimator

    from .._typing import Images, Targets
    from ..tuning._thresholds import ThresholdTuner

TITLE = "Official F1 against the decision threshold"
TUNER_TITLE = ("Official F1 against the decision threshold\n"
               "(out of fold, on the training images)")


class ThresholdCurveDisplay:
    """The official F1 of every candidate threshold, the best one and the paper's 0.1 marked.

    Make one with :meth:`from_estimator` or :meth:`from_predictions` (the
    curve on data you give), or :meth:`from_tuner` (the out-of-fold curve a
    :class:`~imageclef_concepts.ThresholdTuner` chose its threshold on); the
    parameters are the data it draws.

    Parameters
    ----------
    thresholds : array-like of shape (n_thresholds,)
        Increasing.
    scores : array-like of shape (n_thresholds,)
        The official F1 when each image's concepts are those scoring at
        least the threshold.
    reference_threshold : float or None, default=0.1
        A threshold marked for comparison (the paper's); None marks none.
    name : str, default="official F1"
        The curve's label.

    Attributes
    ----------
    best_threshold : float
        The threshold of the highest score (the first, on ties).
    best_score : float
    line_ : matplotlib.lines.Line2D
        The curve.
    best_line_ : matplotlib.lines.Line2D
        The vertical line at ``best_threshold``.
    ax_ : matplotlib.axes.Axes
    figure_ : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from imageclef_concepts import ThresholdCurveDisplay
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 3)); y = (X > 0).astype(int)
    >>> model = KNeighborsClassifier(5).fit(X[:40], y[:40])
    >>> display = ThresholdCurveDisplay.from_estimator(model, X[40:], y[40:], thresholds=11)
    >>> display.thresholds.round(1).tolist()
    [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    >>> display.ax_.get_ylabel()
    'official F1'
    """

    line_: Line2D
    best_line_: Line2D
    ax_: Axes
    figure_: Figure | SubFigure

    def __init__(self, *, thresholds: ArrayLike, scores: ArrayLike,
                 reference_threshold: float | None = paper.THRESHOLD,
                 name: str = "official F1") -> None:
        self.thresholds = np.asarray(thresholds)
        self.scores = np.asarray(scores)
        self.reference_threshold = reference_threshold
        self.name = name

    @property
    def best_threshold(self) -> float:
        """The threshold of the highest score (the first, on ties)."""
        return float(self.thresholds[int(np.argmax(self.scores))])

    @property
    def best_score(self) -> float:
        """The highest score."""
        return float(np.max(self.scores))

    def plot(self, ax: Axes | None = None, *, title: str = TITLE) -> ThresholdCurveDisplay:
        """Draw the curve.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Where to draw; a new figure when None.
        title : str

        Returns
        -------
        ThresholdCurveDisplay
            ``self``, with ``line_``, ``best_line_``, ``ax_`` and ``figure_``.
        """
        from ._figures import new_axes

        ax = new_axes(ax, (6, 4))
        (self.line_,) = ax.plot(self.thresholds, self.scores, label=self.name)
        self.best_line_ = ax.axvline(
            self.best_threshold, color="tab:red", linestyle="--",
            label=f"best threshold {self.best_threshold:.3f} (F1 {self.best_score:.3f})")
        if self.reference_threshold is not None:
            ax.axvline(self.reference_threshold, color="tab:gray", linestyle=":",
                       label=f"the paper's {self.reference_threshold:g}")
        ax.set(title=title, xlabel="decision threshold", ylabel="official F1",
               ylim=(0, max(1e-3, self.best_score) * 1.1))
        # Below the axes: inside, a legend covers part of the curve.
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2, frameon=False)
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_predictions(cls, y_true: Targets, y_score: ArrayLike, *,
                         thresholds: int | ArrayLike = 100, ax: Axes | None = None,
                         title: str = TITLE) -> ThresholdCurveDisplay:
        """The official F1 of thresholding ``y_score`` against ``y_true``, drawn.

        Parameters
        ----------
        y_true : indicator matrix of shape (n_images, n_concepts)
            The true concepts, one column per column of ``y_score`` (concept
            lists: use :meth:`from_estimator`, or encode them with
            :class:`~imageclef_concepts.ConceptEncoder`).
        y_score : array-like of shape (n_images, n_concepts)
            Probabilities or decision scores; NaN is never predicted.
        thresholds : int or array-like, default=100
            That many thresholds evenly spaced between the lowest and the
            highest score, or the thresholds given (as
            :class:`~imageclef_concepts.ThresholdTuner` tries them).
        ax : matplotlib Axes, default=None
        title : str

        Returns
        -------
        ThresholdCurveDisplay
        """
        y_score = np.asarray(y_score)
        if y_score.dtype.kind != "f":  # the thresholds are in the scores' precision
            y_score = y_score.astype(np.float64)
        truth, n_true = ConceptTargets.from_classes(np.arange(y_score.shape[1])).truth(y_true)
        return cls._drawn(y_score, truth, n_true, thresholds, ax, title)

    @classmethod
    def from_estimator(cls, estimator: BaseEstimator, X: Images, y: Targets, *,
                       thresholds: int | ArrayLike = 100, ax: Axes | None = None,
                       title: str = TITLE) -> ThresholdCurveDisplay:
        """The official F1 of thresholding ``estimator``'s scores of ``X`` against ``y``, drawn.

        Parameters
        ----------
        estimator : fitted multi-label classifier
            With ``predict_proba`` or ``decision_function``.
        X : array-like of images or sequence of paths
        y : indicator matrix or sequence of concept lists
            The true concepts of ``X``, in the form the estimator was fitted
            on; concepts it does not know count as misses.
        thresholds : int or array-like, default=100
            As for :meth:`from_predictions`.
        ax : matplotlib Axes, default=None
        title : str

        Returns
        -------
        ThresholdCurveDisplay
        """
        targets = targets_of(estimator, y)
        truth, n_true = targets.truth(y)
        check_candidate_memory(thresholds, truth)  # before any image is predicted
        scores = aligned_scores(estimator, X, targets, targets.classes_)
        return cls._drawn(scores, truth, n_true, thresholds, ax, title)

    @classmethod
    def from_tuner(cls, tuner: ThresholdTuner, *, ax: Axes | None = None,
                   title: str = TUNER_TITLE) -> ThresholdCurveDisplay:
        """The out-of-fold curve a fitted tuner chose its threshold on, drawn.

        Parameters
        ----------
        tuner : fitted ThresholdTuner
            Fitted with ``store_cv_results=True``; its ``best_threshold_`` is
            the curve's best.
        ax : matplotlib Axes, default=None
        title : str
            By default it says the scores are out of fold (they are not the
            score on held-out images, which is usually a little different).

        Returns
        -------
        ThresholdCurveDisplay
        """
        if tuner.cv_results_ is None:
            raise ValueError("The tuner kept no scores: fit it with store_cv_results=True.")
        return cls(thresholds=tuner.cv_results_["thresholds"],
                   scores=tuner.cv_results_["scores"],
                   name="out-of-fold official F1").plot(ax=ax, title=title)

    @classmethod
    def _drawn(cls, scores, truth, n_true, thresholds, ax, title):
        check_candidate_memory(thresholds, truth)
        candidates = candidate_thresholds(scores, thresholds)
        return cls(thresholds=candidates,
                   scores=threshold_curve(scores, truth, n_true, candidates),
                   ).plot(ax=ax, title=title)
