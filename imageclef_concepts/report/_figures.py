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
    """Counts as plain numbers (300, not 3x10^2) on a log axis."""
    from matplotlib import ticker

    axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())
