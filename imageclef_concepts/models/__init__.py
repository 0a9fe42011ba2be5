"""What every concept estimator shares: the contract, its decision rule, its model file.

The contract and the one implementation of the shared public methods
(:mod:`._base`), the rule that turns scores into concepts
(:class:`DecisionRule`, with an optional :class:`ConceptCountRegressor`),
weights and their ranges, the paper's settings (:mod:`._paper`), model files
without pickle (:mod:`._archive`, :mod:`._persistence`, :mod:`._card`), and the
types to trust in a skops file (:func:`skops_trusted_types`).
"""

from typing import TYPE_CHECKING

from .._api import lazy_attribute

_MODULE_OF = {
    "ConceptCountRegressor": "._count",
    "DecisionRule": "._decision",
    "ModelFileError": "._card",
    "skops_trusted_types": "._skops",
}
__all__ = [
    "ConceptCountRegressor",
    "DecisionRule",
    "ModelFileError",
    "skops_trusted_types",
]

if TYPE_CHECKING:
    from ._card import ModelFileError
    from ._count import ConceptCountRegressor
    from ._decision import DecisionRule
    from ._skops import skops_trusted_types


if not TYPE_CHECKING:  # checkers read the imports above: a misspelt name is an error
    def __getattr__(name):
        return lazy_attribute(__name__, _MODULE_OF, name)
