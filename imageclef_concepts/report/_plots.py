"""Figures for the task and for fitted models (needs the ``plots`` extra: matplotlib).

Each ``plot_*`` function draws with its display object
(:class:`~imageclef_concepts.ConceptFrequencyDisplay`,
:class:`~imageclef_concepts.ThresholdCurveDisplay`,
:class:`~imageclef_concepts.TrainingHistoryDisplay`,
:class:`~imageclef_concepts.PerConceptF1Display`) and returns its matplotlib
``Figure``, to save or to change; it draws nothing on screen by itself. As a
notebook cell's value the figure is shown once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from ._concept_frequencies import ConceptFrequencyDisplay
from ._per_concept import PerConceptF1Display
from ._threshold_curve import ThresholdCurveDisplay
from ._training_history import TrainingHistoryDisplay

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Collection, Mapping, Sequence
    from typing import Any

    from matplotlib.figure import Figure

    from .._typing import ImageConcepts
    from ..tuning._thresholds import ThresholdTuner


def plot_concept_frequencies(concepts: Sequence[ImageConcepts],
                             title: str = "Concept frequencies: a long tail") -> Figure:
    """Images per concept, concepts ranked from the most frequent (log scales).

    The shape of the paper's Fig. 3: a few concepts in many images, most
    concepts in very few. :meth:`ConceptFrequencyDisplay.from_concepts
    <imageclef_concepts.ConceptFrequencyDisplay.from_concepts>` draws it
    and keeps its data.

    Parameters
    ----------
    concepts : sequence of concept lists
    title : str

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from imageclef_concepts import plot_concept_frequencies
    >>> figure = plot_concept_frequencies(["C1;C2", "C1", "C1;C3"])
    >>> figure.axes[0].get_xlabel()
    'concepts, ranked from the most frequent'
    """
    return _figure(ConceptFrequencyDisplay.from_concepts(concepts, title=title))


def plot_threshold_curve(tuner: ThresholdTuner, title: str | None = None) -> Figure:
    """Tuning score of every candidate threshold, the chosen one marked.

    The scores are the tuner's out-of-fold ones, on the images it was fitted
    on; the title says so unless you give another.

    :meth:`ThresholdCurveDisplay.from_tuner
    <imageclef_concepts.ThresholdCurveDisplay.from_tuner>` draws it and keeps
    its data.

    Parameters
    ----------
    tuner : fitted ThresholdTuner
        Fitted with ``store_cv_results=True``.
    title : str, default=None
        None: "Official F1 against the decision threshold (out of fold, on
        the training images)".

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from imageclef_concepts import ThresholdTuner, plot_threshold_curve
    >>> X = np.random.default_rng(0).normal(size=(60, 3)); y = (X > 0).astype(int)
    >>> tuner = ThresholdTuner(KNeighborsClassifier(5), cv=3, thresholds=10,
    ...                        store_cv_results=True).fit(X, y)
    >>> plot_threshold_curve(tuner).axes[0].get_ylabel()
    'official F1'
    """
    if title is None:
        return _figure(ThresholdCurveDisplay.from_tuner(tuner))
    return _figure(ThresholdCurveDisplay.from_tuner(tuner, title=title))


def plot_training_history(history: Mapping[str, Sequence[float]],
                          title: str = "Training history") -> Figure:
    """Loss and validation loss per epoch, the lowest validation loss marked.

    :meth:`TrainingHistoryDisplay.from_history
    <imageclef_concepts.TrainingHistoryDisplay.from_history>` draws it and
    keeps its data.

    Parameters
    ----------
    history : dict of list
        A ``ConceptCNNClassifier.history_``.
    title : str

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from imageclef_concepts import plot_training_history
    >>> figure = plot_training_history({"loss": [0.7, 0.5, 0.4], "val_loss": [0.6, 0.5, 0.55]})
    >>> [text.get_text() for text in figure.axes[0].get_legend().get_texts()][-1]
    'kept: epoch 2'
    """
    return _figure(TrainingHistoryDisplay.from_history(history, title=title))


def plot_per_concept_f1(y_true: Sequence[ImageConcepts], y_pred: Sequence[ImageConcepts],
                        train_concepts: Sequence[ImageConcepts] | None = None,
                        non_visual: Collection[str] | None = None,
                        title: str = "Per-concept F1 against concept frequency",
                        max_labels: int = 30) -> Figure:
    """Each concept's F1 on a test set against its frequency, the concepts named.

    :meth:`PerConceptF1Display.from_predictions
    <imageclef_concepts.PerConceptF1Display.from_predictions>` draws it and
    keeps its data.

    Parameters
    ----------
    y_true, y_pred : sequences of concept lists
    train_concepts : sequence of concept lists, default=None
        Frequencies are counted here (the training set); on ``y_true`` if None.
    non_visual : collection of str, default=None
        Concepts known to leave no mark in the image ("advertisement",
        "copyright", or a synthetic dataset's ``is_visual`` False): drawn as
        crosses, so that their F1 is read as what it is.
    title : str
    max_labels : int, default=30
        Every point is named when there are at most this many concepts;
        otherwise the most frequent ones are.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from imageclef_concepts import plot_per_concept_f1
    >>> figure = plot_per_concept_f1(["C1;C2", "C1"], ["C1", "C1;C3"], non_visual={"C2"})
    >>> sorted(text.get_text() for text in figure.axes[0].texts)[:2]
    ['C1', 'C2']
    """
    return _figure(PerConceptF1Display.from_predictions(
        y_true, y_pred, train_concepts=train_concepts, non_visual=non_visual, title=title,
        max_labels=max_labels))


def _figure(display: Any) -> Figure:
    """The figure of a display drawn on new axes: a whole ``Figure``, not a ``SubFigure``."""
    return cast("Figure", display.figure_)


def save_figure(figure, path, dpi=100):
    """Write a figure atomically: to a temporary file beside ``path``, then moved into place."""
    from ..files._atomic import replaced_atomically

    with replaced_atomically(path) as temporary:
        figure.savefig(temporary, dpi=dpi)
