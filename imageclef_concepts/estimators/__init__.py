"""The concept estimators beside the network: baselines, retrieval, ensembles, specialists.

Each is a scikit-learn classifier under the library's contract
(:mod:`imageclef_concepts.models`); a user's own estimator joins an ensemble
on equal terms.
"""

from typing import TYPE_CHECKING

from .._api import lazy_attribute

_MODULE_OF = {
    "ConceptEnsemble": "._ensemble",
    "ConceptKNNClassifier": "._retrieval",
    "ConceptMLPClassifier": "._heads",
    "ConceptSpecialists": "._specialists",
    "MostFrequentConcepts": "._baselines",
}
__all__ = [
    "ConceptEnsemble",
    "ConceptKNNClassifier",
    "ConceptMLPClassifier",
    "ConceptSpecialists",
    "MostFrequentConcepts",
]

if TYPE_CHECKING:
    from ._baselines import MostFrequentConcepts
    from ._ensemble import ConceptEnsemble
    from ._heads import ConceptMLPClassifier
    from ._retrieval import ConceptKNNClassifier
    from ._specialists import ConceptSpecialists


if not TYPE_CHECKING:  # checkers read the imports above: a misspelt name is an error
    def __getattr__(name):
        return lazy_attribute(__name__, _MODULE_OF, name)
