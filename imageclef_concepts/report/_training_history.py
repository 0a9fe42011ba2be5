"""TrainingHistoryDisplay: the losses of a training, epoch by epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Mapping, Sequence

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure
    from matplotlib.lines import Line2D
    from sklearn.base import BaseEstimator

TITLE = "Training history"
CURVES = {"loss": "training loss", "val_loss": "validation loss"}


class TrainingHistoryDisplay:
    """Loss and validation loss per epoch, the epoch whose weights were kept marked.

    Make one with :meth:`from_estimator` or :meth:`from_history`; the
    parameters are the data it draws.

    Parameters
    ----------
    history : dict of list of float
        Per-epoch values by name, as Keras gives them (``loss``,
        ``val_loss``...); the losses are drawn.
    kept_epoch : int or None, default=None
        Index in ``history`` of the epoch kept; None marks none.

    Attributes
    ----------
    lines_ : dict of matplotlib.lines.Line2D
        The curve of each loss drawn, by its name in ``history``.
    ax_ : matplotlib.axes.Axes
    figure_ : matplotlib.figure.Figure

    Examples
    --------
    >>> from imageclef_concepts import TrainingHistoryDisplay
    >>> display = TrainingHistoryDisplay.from_history(
    ...     {"loss": [0.7, 0.5, 0.4], "val_loss": [0.6, 0.5, 0.55]})
    >>> display.kept_epoch
    1
    >>> [text.get_text() for text in display.ax_.get_legend().get_texts()][-1]
    'kept: epoch 2'
    """

    lines_: dict[str, Line2D]
    ax_: Axes
    figure_: Figure | SubFigure

    def __init__(self, *, history: Mapping[str, Sequence[float]],
                 kept_epoch: int | None = None) -> None:
        self.history = {key: list(values) for key, values in history.items()}
        self.kept_epoch = kept_epoch

    def plot(self, ax: Axes | None = None, *, title: str = TITLE) -> TrainingHistoryDisplay:
        """Draw the losses.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Where to draw; a new figure when None.
        title : str

        Returns
        -------
        TrainingHistoryDisplay
            ``self``, with ``lines_``, ``ax_`` and ``figure_``.
        """
        from matplotlib.ticker import MaxNLocator

        from ._figures import new_axes

        ax = new_axes(ax, (6, 4))
        self.lines_ = {}
        for key, label in CURVES.items():
            if key in self.history:
                epochs = np.arange(1, len(self.history[key]) + 1)
                (self.lines_[key],) = ax.plot(epochs, self.history[key], marker="o",
                                              label=label)
        marked = "val_loss" if "val_loss" in self.history else "loss"
        if self.kept_epoch is not None and marked in self.history:
            ax.scatter([self.kept_epoch + 1], [self.history[marked][self.kept_epoch]], s=120,
                       facecolors="none", edgecolors="tab:red",
                       label=f"kept: epoch {self.kept_epoch + 1}", zorder=3)
        ax.set(title=title, xlabel="epoch", ylabel="binary cross-entropy")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="best")
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_history(cls, history: Mapping[str, Sequence[float]], *, ax: Axes | None = None,
                     title: str = TITLE) -> TrainingHistoryDisplay:
        """Draw a history, marking the epoch of the lowest validation loss.

        Parameters
        ----------
        history : dict of list of float
            Keras' ``History.history``, or a ``ConceptCNNClassifier.history_``.
        ax : matplotlib Axes, default=None
        title : str

        Returns
        -------
        TrainingHistoryDisplay
        """
        kept = int(np.argmin(history["val_loss"])) if "val_loss" in history else None
        return cls(history=history, kept_epoch=kept).plot(ax=ax, title=title)

    @classmethod
    def from_estimator(cls, estimator: BaseEstimator, *, ax: Axes | None = None,
                       title: str = TITLE) -> TrainingHistoryDisplay:
        """Draw a fitted network's history, marking the epoch whose weights it kept.

        Parameters
        ----------
        estimator : fitted ConceptCNNClassifier
            Or any estimator with ``history_`` and ``best_epoch_`` (the
            index of the epoch kept, by its ``monitor``; None: the last).
        ax : matplotlib Axes, default=None
        title : str

        Returns
        -------
        TrainingHistoryDisplay
        """
        history, kept = estimator.history_, estimator.best_epoch_
        if kept is None:
            kept = len(history["loss"]) - 1
        return cls(history=history, kept_epoch=kept).plot(ax=ax, title=title)
