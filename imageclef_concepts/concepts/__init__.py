"""Concepts as data: an image's concept list, the encoder, targets and the official score.

An image's concepts in every form a user gives them (:mod:`._lists`), turned
into indicator matrices and back (:class:`ConceptEncoder`, :mod:`._targets`),
scored as the organisers score a run (:func:`imageclef_f1` and its scorer),
with the ceilings a split allows (:func:`oracle_bounds`) and weights for the
long tail (:func:`concept_sample_weight`).
"""

from typing import TYPE_CHECKING

from .._api import lazy_attribute

_MODULE_OF = {
    "concept_sample_weight": "._sample_weights",
    "ConceptEncoder": "._encoder",
    "imageclef_f1": "._metrics",
    "imageclef_f1_score": "._metrics",
    "imageclef_f1_scorer": "._metrics",
    "oracle_bounds": "._bounds",
    "per_image_f1_scores": "._metrics",
    "SplitBounds": "._bounds",
    "UnknownConceptWarning": "._encoder",
}
__all__ = [
    "ConceptEncoder",
    "SplitBounds",
    "UnknownConceptWarning",
    "concept_sample_weight",
    "imageclef_f1",
    "imageclef_f1_score",
    "imageclef_f1_scorer",
    "oracle_bounds",
    "per_image_f1_scores",
]

if TYPE_CHECKING:
    from ._bounds import SplitBounds, oracle_bounds
    from ._encoder import ConceptEncoder, UnknownConceptWarning
    from ._metrics import (
        imageclef_f1,
        imageclef_f1_score,
        imageclef_f1_scorer,
        per_image_f1_scores,
    )
    from ._sample_weights import concept_sample_weight


if not TYPE_CHECKING:  # checkers read the imports above: a misspelt name is an error
    def __getattr__(name):
        return lazy_attribute(__name__, _MODULE_OF, name)
