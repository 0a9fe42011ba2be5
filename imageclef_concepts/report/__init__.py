"""A run looked at: the HTML report and the plots.

:func:`write_report` writes one self-contained HTML file of a run's scores,
ceilings, concepts and images; the ``plot_*`` functions draw with matplotlib
(the ``plots`` extra).
"""

from typing import TYPE_CHECKING

from .._api import lazy_attribute

_MODULE_OF = {
    "plot_concept_frequencies": "._plots",
    "plot_per_concept_f1": "._plots",
    "plot_threshold_curve": "._plots",
    "plot_training_history": "._plots",
    "write_report": "._html",
}
__all__ = [
    "plot_concept_frequencies",
    "plot_per_concept_f1",
    "plot_threshold_curve",
    "plot_training_history",
    "write_report",
]

if TYPE_CHECKING:
    from ._html import write_report
    from ._plots import (
        plot_concept_frequencies,
        plot_per_concept_f1,
        plot_threshold_curve,
        plot_training_history,
    )


if not TYPE_CHECKING:  # checkers read the imports above: a misspelt name is an error
    def __getattr__(name):
        return lazy_attribute(__name__, _MODULE_OF, name)
