"""Each concept's F1 against its frequency: PerConceptF1Display, and the counts behind it.

:func:`per_concept_counts` is also what the HTML report's concept table counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..concepts._encoder import sparse_encoder
from ..concepts._lists import canonical_concept
from ..concepts._metrics import f1_from_counts, imageclef_f1_score

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Collection, Sequence

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure
    from numpy.typing import ArrayLike
    from sklearn.base import BaseEstimator

    from .._typing import ImageConcepts, Images

TITLE = "Per-concept F1 against concept frequency"


class PerConceptF1Display:
    """Each concept's F1 on a test set against its frequency, the concepts named.

    Make one with :meth:`from_estimator` or :meth:`from_predictions`; the
    parameters are the data it draws.

    Parameters
    ----------
    concepts : array-like of str
        The concepts of the true sets.
    f1 : array-like of float
        Each concept's binary F1 over the images, in the same order.
    frequencies : array-like of int
        Images with each concept where they were counted (the training set).
    non_visual : array-like of bool
        True for concepts known to leave no mark in the image.
    score : float
        The official mean per-image F1 of the predictions.

    Attributes
    ----------
    ax_ : matplotlib.axes.Axes
    figure_ : matplotlib.figure.Figure

    Examples
    --------
    >>> from imageclef_concepts import PerConceptF1Display
    >>> display = PerConceptF1Display.from_predictions(["C1;C2", "C1"], ["C1", "C1;C3"],
    ...                                                non_visual={"C2"})
    >>> display.concepts.tolist(), display.f1.tolist(), display.non_visual.tolist()
    (['C1', 'C2'], [1.0, 0.0], [False, True])
    >>> sorted(text.get_text() for text in display.ax_.texts)
    ['C1', 'C2']
    """

    ax_: Axes
    figure_: Figure | SubFigure

    def __init__(self, *, concepts: ArrayLike, f1: ArrayLike, frequencies: ArrayLike,
                 non_visual: ArrayLike, score: float) -> None:
        self.concepts = np.asarray(concepts, dtype=object)
        self.f1 = np.asarray(f1, dtype=float)
        self.frequencies = np.asarray(frequencies)
        self.non_visual = np.asarray(non_visual, dtype=bool)
        self.score = score

    def plot(self, ax: Axes | None = None, *, title: str = TITLE,
             max_labels: int = 30) -> PerConceptF1Display:
        """Draw each concept's F1 against its frequency (log scale).

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Where to draw; a new figure when None.
        title : str
            Followed by the official score.
        max_labels : int or None, default=30
            Every point is named when there are at most this many concepts;
            otherwise the most frequent ones are (0: none; None: every one).

        Returns
        -------
        PerConceptF1Display
            ``self``, with ``ax_`` and ``figure_``.
        """
        from ..files._numbers import check_whole_number
        from ._figures import label_points, new_axes, plain_ticks

        if max_labels is not None:  # None: every point named; -3 named all but 3, silently
            check_whole_number(max_labels, "max_labels", smallest=0)
        ax = new_axes(ax, (7, 4.5))
        x = np.maximum(self.frequencies, 0.8)  # a concept never counted, left of 1 (log axis)
        hidden = self.non_visual
        ax.scatter(x[~hidden], self.f1[~hidden], s=18, label="visual concepts")
        if hidden.any():
            ax.scatter(x[hidden], self.f1[hidden], s=30, marker="x", color="tab:red",
                       label="concepts that leave no mark in the image")
        ax.set(xscale="log", ylim=(-0.05, 1.1),
               title=f"{title}\n(official mean per-image F1: {self.score:.3f})",
               xlabel="training images with the concept", ylabel="F1 of the concept")
        plain_ticks(ax.xaxis)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2, frameon=False)
        named = np.argsort(-x, kind="stable")[:max_labels]
        label_points(ax, x[named], self.f1[named], self.concepts[named])
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_predictions(cls, y_true: Sequence[ImageConcepts], y_pred: Sequence[ImageConcepts],
                         *, train_concepts: Sequence[ImageConcepts] | None = None,
                         non_visual: Collection[str] | None = None, ax: Axes | None = None,
                         title: str = TITLE, max_labels: int = 30) -> PerConceptF1Display:
        """Score each concept of ``y_true`` in ``y_pred`` and draw them.

        Parameters
        ----------
        y_true, y_pred : sequences of concept lists
        train_concepts : sequence of concept lists, default=None
            Frequencies are counted here (the training set); on ``y_true`` if None.
        non_visual : collection of str, default=None
            Concepts known to leave no mark in the image ("advertisement",
            "copyright", or a synthetic dataset's ``is_visual`` False): drawn
            as crosses, so that their F1 is read as what it is.
        ax : matplotlib Axes, default=None
        title : str
        max_labels : int, default=30

        Returns
        -------
        PerConceptF1Display
        """
        names, f1 = per_concept_f1(y_true, y_pred)
        counted = sparse_encoder().fit(
            y_true if train_concepts is None else train_concepts)
        frequency = dict(zip(counted.classes_, counted.concept_counts_))
        hidden = {canonical_concept(str(concept)) for concept in (non_visual or ())}
        return cls(concepts=names, f1=f1,
                   frequencies=[frequency.get(name, 0) for name in names],
                   non_visual=[name in hidden for name in names],
                   score=imageclef_f1_score(y_true, y_pred),
                   ).plot(ax=ax, title=title, max_labels=max_labels)

    @classmethod
    def from_estimator(cls, estimator: BaseEstimator, X: Images, y: Sequence[ImageConcepts],
                       *, train_concepts: Sequence[ImageConcepts] | None = None,
                       non_visual: Collection[str] | None = None, ax: Axes | None = None,
                       title: str = TITLE, max_labels: int = 30) -> PerConceptF1Display:
        """Score each concept of ``y`` in ``estimator.predict(X)`` and draw them.

        Parameters
        ----------
        estimator : fitted concept estimator
            Fitted on concept lists, so that ``predict`` names concepts.
        X : array-like of images or sequence of paths
        y : sequence of concept lists
            The true concepts of ``X``.
        train_concepts, non_visual, ax, title, max_labels
            As for :meth:`from_predictions`.

        Returns
        -------
        PerConceptF1Display
        """
        return cls.from_predictions(y, estimator.predict(X), train_concepts=train_concepts,
                                    non_visual=non_visual, ax=ax, title=title,
                                    max_labels=max_labels)


def per_concept_f1(y_true, y_pred):
    """Binary F1 of each concept present in ``y_true``, over all images.

    Returns
    -------
    names : ndarray of str
    f1 : ndarray of float
    """
    names, n_both, n_true, n_pred = per_concept_counts(y_true, y_pred)
    present = n_true > 0
    return names[present], f1_from_counts(n_both, n_true, n_pred)[present]


def per_concept_counts(y_true, y_pred):
    """Each concept's images where it is true and predicted, true, and predicted.

    Over every concept of ``y_true`` or ``y_pred`` (concept lists), sorted
    by name: precision is ``n_both / n_pred``, recall ``n_both / n_true``.

    Returns
    -------
    names : ndarray of str
    n_both, n_true, n_pred : ndarray of int
    """
    encoder = sparse_encoder().fit(list(y_true) + list(y_pred))
    true, pred = encoder.transform(y_true), encoder.transform(y_pred)
    n_true = np.asarray(true.sum(axis=0)).ravel()
    n_pred = np.asarray(pred.sum(axis=0)).ravel()
    n_both = np.asarray(true.multiply(pred).sum(axis=0)).ravel()
    return encoder.classes_, n_both, n_true, n_pred
