"""A run looked at: the HTML report and the plots.

:func:`write_report` writes one self-contained HTML file of a run's scores,
ceilings, concepts and images. The plots are display objects in
scikit-learn's way (``...Display.from_estimator(...)``, ``.plot(ax=...)``)
drawn with matplotlib (the ``plots`` extra); each ``plot_*`` function draws
one and returns its figure.
"""

from typing import TYPE_CHECKING

from .._api import lazy_attribute

_MODULE_OF = {
    "ConceptFrequencyDisplay": "._concept_frequencies",
    "PerConceptF1Display": "._per_concept",
    "ThresholdCurveDisplay": "._threshold_curve",
    "TrainingHistoryDisplay": "._training_history",
    "plot_concept_frequencies": "._plots",
    "plot_per_concept_f1": "._plots",
    "plot_threshold_curve": "._plots",
    "plot_training_history": "._plots",
    "write_report": "._html",
}
__all__ = [
    "ConceptFrequencyDisplay",
    "PerConceptF1Display",
    "ThresholdCurveDisplay",
    "TrainingHistoryDisplay",
    "plot_concept_frequencies",
    "plot_per_concept_f1",
    "plot_threshold_curve",
    "plot_training_history",
    "write_report",
]

if TYPE_CHECKING:
    from ._concept_frequencies import ConceptFrequencyDisplay
    from ._html import write_report
    from ._per_concept import PerConceptF1Display
    from ._plots import (
        plot_concept_frequencies,
        plot_per_concept_f1,
        plot_threshold_curve,
        plot_training_history,
    )
    from ._threshold_curve import ThresholdCurveDisplay
    from ._training_history import TrainingHistoryDisplay


if not TYPE_CHECKING:  # checkers read the imports above: a misspelt name is an error
    def __getattr__(name):
        return lazy_attribute(__name__, _MODULE_OF, name)
