"""What every plot of the library shares: matplotlib, new axes, plain tick labels.

The plots are display objects in scikit-learn's way
(``sklearn.metrics.RocCurveDisplay``): a ``...Display`` holds the data it
draws, ``plot(ax=None)`` draws it (on new axes, or on the ones given) and
keeps the axes and figure as ``ax_`` and ``figure_``, and class methods
compute the data (``from_estimator``, ``from_predictions``...) and plot it.
As a notebook cell's value a display shows no figure of its own: Jupyter's
inline backend shows the figure, once.

This module needs matplotlib (the ``plots`` extra); the displays import it
when they draw, so that their data and the HTML report's tables do not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

try:
    from matplotlib.figure import Figure
except ImportError as error:
    raise ImportError("Plots need matplotlib: pip install 'imageclef_concepts[plots]'") \
        from error

if TYPE_CHECKING:  # names for annotations only
    from matplotlib.axes import Axes


#: Jupyter's inline backend, as matplotlib names it.
INLINE_BACKENDS = ("inline", "module://matplotlib_inline.backend_inline")


def pyplot():
    """``matplotlib.pyplot``."""
    import matplotlib.pyplot as plt

    return plt


class ShownOnceFigure(Figure):
    """A pyplot figure that a Jupyter notebook shows once, even as a cell's value.

    With the inline backend, pyplot shows every figure still open at the end
    of a cell, so IPython would show a figure that is the cell's value (or
    that ``display`` shows) a second time. When IPython shows this one, pyplot
    lets it go first (``plt.close``): it is shown there and then, once. With
    other backends, or outside IPython, it is a plain ``Figure``. The
    displays draw on such figures, so the ``plot_*`` functions return them.
    """

    _showing = False

    @property
    def _ipython_display_(self):
        # IPython shows an object by this method when it has one; None while the
        # method itself shows the figure, so that IPython shows it as any Figure.
        import matplotlib

        inline = matplotlib.get_backend() in INLINE_BACKENDS
        return self._show_once if inline and not self._showing else None

    def _show_once(self):
        from IPython.display import display

        pyplot().close(self)  # not shown again at the end of the cell
        self._showing = True
        try:
            display(self)
        finally:
            self._showing = False


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax``, or the axes of a new pyplot :class:`ShownOnceFigure` of ``figsize`` inches
    (laid out to keep legends and labels inside it)."""
    if ax is not None:
        return ax
    _, ax = pyplot().subplots(figsize=figsize, layout="constrained",
                              FigureClass=ShownOnceFigure)
    return ax


def plain_ticks(axis):
    """Counts as plain numbers (300, not 3x10^2) on a log axis, enough of them to read.

    Besides the powers of ten, the in-between ticks are labelled when the axis
    spans few decades: 2 and 5 times a power of ten up to two decades, every
    one within one decade (a log axis from 40 to 700 would otherwise show the
    single label 100).
    """
    import math

    from matplotlib import ticker

    def in_between(value, _):
        low, high = sorted(axis.get_view_interval())
        if value <= 0 or low <= 0:
            return ""
        decades = math.log10(high / low)
        mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
        if abs(mantissa - round(mantissa)) > 1e-6 or decades > 2:
            return ""
        return f"{value:g}" if decades <= 1 or round(mantissa) in (2, 5) else ""

    axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(ticker.FuncFormatter(in_between))


# Where a point's label may go, in points from the point, nearest first: beside
# it, then further above or below and aside (with a thin line back to the point).
_LABEL_OFFSETS = [(3, 3), (3, -10), (-3, 3), (-3, -10)] + [
    (dx, dy) for distance in (14, 24, 34, 44, 56, 68, 80) for dx in (6, -6, 30, -30)
    for dy in (distance, -distance - 7)]


def label_points(ax, x, y, labels, fontsize=7):
    """Name points without two names overlapping: each label takes the nearest
    free place around its point (:data:`_LABEL_OFFSETS`); a label placed away
    from its point gets a thin line back to it. Returns the labels' texts."""
    from matplotlib.transforms import Bbox

    figure = ax.figure
    figure.draw_without_rendering()  # the layout (and so the points' places) settled,
    # then kept: laid out again around the names, the points would move under them.
    figure.set_layout_engine("none")
    renderer = figure.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    points = ax.transData.transform(np.column_stack([x, y]).astype(float))
    # The points themselves are taken too: a name never covers a point.
    taken = [Bbox.from_extents(px - 3, py - 3, px + 3, py + 3) for px, py in points]
    texts = []
    for x_value, y_value, label in zip(x, y, labels):
        candidates = []
        for dx, dy in _LABEL_OFFSETS:
            # Measured without its line (an annotation's extent includes it).
            text = ax.annotate(
                label, (x_value, y_value), xytext=(dx, dy), textcoords="offset points",
                fontsize=fontsize, ha="left" if dx > 0 else "right", va="bottom")
            box = text.get_window_extent(renderer).expanded(1.05, 1.1)
            free = not any(box.overlaps(other) for other in taken)
            within = inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)
            text.remove()
            candidates.append((not free, not within, (dx, dy), box))
            if free and within:
                break
        # The nearest free place inside the axes; else the nearest free one; else beside.
        _, _, (dx, dy), box = min(candidates, key=lambda c: c[:2])
        texts.append(ax.annotate(
            label, (x_value, y_value), xytext=(dx, dy), textcoords="offset points",
            fontsize=fontsize, ha="left" if dx > 0 else "right", va="bottom",
            arrowprops=dict(arrowstyle="-", lw=0.4, color="0.6") if abs(dy) > 10 else None))
        taken.append(box)
    return texts
