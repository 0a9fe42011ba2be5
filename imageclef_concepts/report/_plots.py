"""Figures for the task and for fitted models (needs the ``plots`` extra: matplotlib).

Each function returns a matplotlib ``Figure`` and draws nothing on screen.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from ..concepts._encoder import ConceptEncoder
from ..concepts._lists import split_concepts
from ..concepts._metrics import f1_from_counts, imageclef_f1_score

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Collection, Mapping, Sequence

    from matplotlib.figure import Figure

    from .._typing import ImageConcepts
    from ..tuning._thresholds import ThresholdTuner


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("Plots need matplotlib: pip install 'imageclef_concepts[plots]'") \
            from error
    return plt


def plot_concept_frequencies(concepts: Sequence[ImageConcepts],
                             title: str = "Concept frequencies: a long tail") -> Figure:
    """Images per concept, concepts ranked from the most frequent (log scales).

    The shape of the paper's Fig. 3: a few concepts in many images, most
    concepts in very few.

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
    plt = _pyplot()
    counts = Counter(c for image in concepts for c in set(split_concepts(image)))
    frequencies = np.sort(np.array(list(counts.values())))[::-1]
    figure, axes = plt.subplots(figsize=(6, 4), layout="constrained")
    axes.plot(np.arange(1, len(frequencies) + 1), frequencies, marker="o", markersize=3)
    axes.set(xscale="log", yscale="log", title=title,
             xlabel="concepts, ranked from the most frequent",
             ylabel="images with the concept")
    _plain_ticks(axes.xaxis)
    _plain_ticks(axes.yaxis)
    axes.annotate(f"{len(counts):,} concepts over {len(concepts):,} images",
                  xy=(0.98, 0.95), xycoords="axes fraction", ha="right", va="top")
    return figure


def plot_threshold_curve(tuner: ThresholdTuner,
                         title: str = "Official F1 against the decision threshold") -> Figure:
    """Tuning score of every candidate threshold, the chosen one marked.

    Parameters
    ----------
    tuner : fitted ThresholdTuner
        Fitted with ``store_cv_results=True``.
    title : str

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
    if tuner.cv_results_ is None:
        raise ValueError("The tuner kept no scores: fit it with store_cv_results=True.")
    plt = _pyplot()
    thresholds, scores = tuner.cv_results_["thresholds"], tuner.cv_results_["scores"]
    best = thresholds[int(np.argmax(scores))]
    figure, axes = plt.subplots(figsize=(6, 4), layout="constrained")
    axes.plot(thresholds, scores, label="out-of-fold official F1")
    axes.axvline(best, color="tab:red", linestyle="--",
                 label=f"chosen threshold {best:.3f} (F1 {scores.max():.3f})")
    axes.axvline(0.1, color="tab:gray", linestyle=":", label="the paper's 0.1")
    axes.set(title=title, xlabel="decision threshold", ylabel="official F1",
             ylim=(0, max(1e-3, scores.max()) * 1.1))
    # Below the axes: inside, a legend covers part of the curve.
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2, frameon=False)
    return figure


def plot_training_history(history: Mapping[str, Sequence[float]],
                          title: str = "Training history") -> Figure:
    """Loss and validation loss per epoch.

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
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4), layout="constrained")
    for key, label in (("loss", "training loss"), ("val_loss", "validation loss")):
        if key in history:
            epochs = np.arange(1, len(history[key]) + 1)
            axes.plot(epochs, history[key], marker="o", label=label)
    if "val_loss" in history:
        best = int(np.argmin(history["val_loss"]))
        axes.scatter([best + 1], [history["val_loss"][best]], s=120, facecolors="none",
                     edgecolors="tab:red", label=f"kept: epoch {best + 1}", zorder=3)
    axes.set(title=title, xlabel="epoch", ylabel="binary cross-entropy")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.legend(loc="best")
    return figure


def plot_per_concept_f1(y_true: Sequence[ImageConcepts], y_pred: Sequence[ImageConcepts],
                        train_concepts: Sequence[ImageConcepts] | None = None,
                        non_visual: Collection[str] | None = None,
                        title: str = "Per-concept F1 against concept frequency",
                        max_labels: int = 30) -> Figure:
    """Each concept's F1 on a test set against its frequency, the concepts named.

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
    plt = _pyplot()
    frequency_source = y_true if train_concepts is None else train_concepts
    frequency = Counter(c for image in frequency_source for c in set(split_concepts(image)))
    names, f1 = per_concept_f1(y_true, y_pred)
    counts = np.array([max(frequency.get(name, 0), 0.8) for name in names])
    hidden = np.array([name in {c.upper() for c in (non_visual or ())} for name in names],
                      dtype=bool)
    figure, axes = plt.subplots(figsize=(7, 4.5), layout="constrained")
    axes.scatter(counts[~hidden], f1[~hidden], s=18, label="visual concepts")
    if hidden.any():
        axes.scatter(counts[hidden], f1[hidden], s=30, marker="x", color="tab:red",
                     label="concepts that leave no mark in the image")
    named = np.argsort(-counts, kind="stable")[:max_labels]
    for index in named:
        axes.annotate(names[index], (counts[index], f1[index]), xytext=(3, 3),
                      textcoords="offset points", fontsize=7)
    score = imageclef_f1_score(y_true, y_pred)
    axes.set(xscale="log", ylim=(-0.05, 1.1),
             title=f"{title}\n(official mean per-image F1: {score:.3f})",
             xlabel="training images with the concept", ylabel="F1 of the concept")
    _plain_ticks(axes.xaxis)
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2, frameon=False)
    return figure


def _plain_ticks(axis):
    """Counts as plain numbers (300, not 3x10^2) on a log axis."""
    from matplotlib import ticker

    axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


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
    encoder = ConceptEncoder(sparse_output=True).fit(list(y_true) + list(y_pred))
    true, pred = encoder.transform(y_true), encoder.transform(y_pred)
    n_true = np.asarray(true.sum(axis=0)).ravel()
    n_pred = np.asarray(pred.sum(axis=0)).ravel()
    n_both = np.asarray(true.multiply(pred).sum(axis=0)).ravel()
    return encoder.classes_, n_both, n_true, n_pred


def save_figure(figure, path, dpi=100):
    """Write a figure atomically: to a temporary file beside ``path``, then moved into place."""
    from ..files._atomic import replaced_atomically

    with replaced_atomically(path) as temporary:
        figure.savefig(temporary, dpi=dpi)
