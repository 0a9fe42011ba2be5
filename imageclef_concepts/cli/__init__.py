"""The ``imageclef-concepts`` command line (also ``python -m imageclef_concepts``).

:func:`main` parses the arguments (:mod:`._arguments`) and runs one of the
commands of :mod:`._images`, :mod:`._models`, :mod:`._export`,
:mod:`._procedures` and :mod:`._recipe`. A user's mistake is one line on standard error, never a
traceback.
"""

from ._main import main

__all__ = ["main"]
