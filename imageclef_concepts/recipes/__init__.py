"""Whole systems in one call: the workflows, the demo, the 2019 paper and the 2026 recipe.

The workflows the command line runs (:mod:`._workflows`), the demo on
synthetic data, the reproduction of the 2019 paper (:func:`reproduce_2019`)
and the 2026-style system of members, votes and a count model
(:func:`run_recipe_2026`).
"""

from typing import TYPE_CHECKING

from .._api import lazy_attribute

_MODULE_OF = {
    "Recipe2026": "._2026",
    "RecipeResult": "._2026",
    "reproduce_2019": "._reproduce",
    "run_recipe_2026": "._2026",
}
__all__ = [
    "Recipe2026",
    "RecipeResult",
    "reproduce_2019",
    "run_recipe_2026",
]

if TYPE_CHECKING:
    from ._2026 import Recipe2026, RecipeResult, run_recipe_2026
    from ._reproduce import reproduce_2019


if not TYPE_CHECKING:  # checkers read the imports above: a misspelt name is an error
    def __getattr__(name):
        return lazy_attribute(__name__, _MODULE_OF, name)
