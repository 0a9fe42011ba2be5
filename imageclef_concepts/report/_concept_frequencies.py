"""ConceptFrequencyDisplay: images per concept, the long tail of the task."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..concepts._encoder import sparse_encoder

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Sequence

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure
    from matplotlib.lines import Line2D
    from numpy.typing import ArrayLike

    from .._typing import ImageConcepts

TITLE = "Concept frequencies: a long tail"


class ConceptFrequencyDisplay:
    """Images per concept, concepts ranked from the most frequent (log scales).

    The shape of the paper's Fig. 3: a few concepts in many images, most
    concepts in very few. Make one with :meth:`from_concepts`; the
    parameters are the data it draws.

    Parameters
    ----------
    concepts : array-like of str
        The concepts, from the most frequent.
    frequencies : array-like of int
        Images with each concept, in the same order.
    n_images : int
        Images counted.

    Attributes
    ----------
    line_ : matplotlib.lines.Line2D
        Frequency against rank.
    ax_ : matplotlib.axes.Axes
    figure_ : matplotlib.figure.Figure

    Examples
    --------
    >>> from imageclef_concepts import ConceptFrequencyDisplay
    >>> display = ConceptFrequencyDisplay.from_concepts(["C1;C2", "C1", "c1;C3"])
    >>> display.concepts.tolist(), display.frequencies.tolist()
    (['C1', 'C2', 'C3'], [3, 1, 1])
    >>> display.ax_.get_xlabel()
    'concepts, ranked from the most frequent'
    """

    line_: Line2D
    ax_: Axes
    figure_: Figure | SubFigure

    def __init__(self, *, concepts: ArrayLike, frequencies: ArrayLike, n_images: int) -> None:
        self.concepts = np.asarray(concepts, dtype=object)
        self.frequencies = np.asarray(frequencies)
        self.n_images = n_images

    def plot(self, ax: Axes | None = None, *, title: str = TITLE) -> ConceptFrequencyDisplay:
        """Draw the ranked frequencies.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Where to draw; a new figure when None.
        title : str

        Returns
        -------
        ConceptFrequencyDisplay
            ``self``, with ``line_``, ``ax_`` and ``figure_``.
        """
        from ._figures import new_axes, plain_ticks

        ax = new_axes(ax, (6, 4))
        (self.line_,) = ax.plot(np.arange(1, len(self.frequencies) + 1), self.frequencies,
                                marker="o", markersize=3)
        ax.set(xscale="log", yscale="log", title=title,
               xlabel="concepts, ranked from the most frequent",
               ylabel="images with the concept")
        plain_ticks(ax.xaxis)
        plain_ticks(ax.yaxis)
        ax.annotate(f"{len(self.concepts):,} concepts over {self.n_images:,} images",
                    xy=(0.98, 0.95), xycoords="axes fraction", ha="right", va="top")
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_concepts(cls, concepts: Sequence[ImageConcepts], *, ax: Axes | None = None,
                      title: str = TITLE) -> ConceptFrequencyDisplay:
        """Count the images of each concept and draw them.

        Parameters
        ----------
        concepts : sequence of concept lists
            Each image's concepts (``;``-joined strings or collections),
            compared as the official score compares them (upper-cased).
        ax : matplotlib Axes, default=None
        title : str

        Returns
        -------
        ConceptFrequencyDisplay
        """
        encoder = sparse_encoder().fit(concepts)
        order = np.argsort(-encoder.concept_counts_, kind="stable")  # classes_ sorted: ties by name
        return cls(concepts=encoder.classes_[order],
                   frequencies=encoder.concept_counts_[order],
                   n_images=len(concepts)).plot(ax=ax, title=title)
