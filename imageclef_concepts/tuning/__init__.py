"""Tuning the decision for the official score: thresholds, ensembles, coarse-to-fine search.

:class:`ThresholdTuner` tunes one global or per-concept threshold (and count
bounds) out of fold; :class:`EnsembleTuner` tunes an ensemble's combination;
:func:`refine_grid` narrows a ``GridSearchCV`` grid around its best point.
"""

from typing import TYPE_CHECKING

from .._api import lazy_attribute

_MODULE_OF = {
    "EnsembleTuner": "._ensemble",
    "refine_grid": "._refine",
    "ThresholdTuner": "._thresholds",
}
__all__ = [
    "EnsembleTuner",
    "ThresholdTuner",
    "refine_grid",
]

if TYPE_CHECKING:
    from ._ensemble import EnsembleTuner
    from ._refine import refine_grid
    from ._thresholds import ThresholdTuner


if not TYPE_CHECKING:  # checkers read the imports above: a misspelt name is an error
    def __getattr__(name):
        return lazy_attribute(__name__, _MODULE_OF, name)
