"""Concept files as each edition's evaluator reads them: truth and runs, read, written, scored.

The editions' rules (:mod:`._editions`), a file's text and lines
(:mod:`._text`, :mod:`._lines`), reading and writing them
(:func:`read_concepts`, :func:`write_run`) and scoring a run file against its
ground truth (:func:`evaluate_run`). The organisers' published evaluators are
the specification: a file they accept is scored here to the last digit, a
file they refuse is refused here, with its line.
"""

from typing import TYPE_CHECKING

from .._api import lazy_attribute

_MODULE_OF = {
    "ConceptFile": "._io",
    "ConceptFileError": "._text",
    "evaluate_run": "._evaluation",
    "read_concepts": "._io",
    "RunEvaluation": "._evaluation",
    "write_run": "._io",
}
__all__ = [
    "ConceptFile",
    "ConceptFileError",
    "RunEvaluation",
    "evaluate_run",
    "read_concepts",
    "write_run",
]

if TYPE_CHECKING:
    from ._evaluation import RunEvaluation, evaluate_run
    from ._io import ConceptFile, read_concepts, write_run
    from ._text import ConceptFileError


if not TYPE_CHECKING:  # checkers read the imports above: a misspelt name is an error
    def __getattr__(name):
        return lazy_attribute(__name__, _MODULE_OF, name)
