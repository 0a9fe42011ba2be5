"""Data sets on disk: the ImageCLEF layouts, and synthetic concept images.

:func:`load_imageclef` reads the 2019 layout (an image folder and a concept
file); :func:`find_imageclef_layout` the 2024-2026 one; the ``make_*``
functions write synthetic data in each layout for demos and tests.
"""

from typing import TYPE_CHECKING

from .._api import lazy_attribute

_MODULE_OF = {
    "DatasetMismatchWarning": "._imageclef",
    "find_imageclef_layout": "._layout_2026",
    "load_imageclef": "._imageclef",
    "make_concept_images": "._imageclef",
    "make_imageclef_2019_layout": "._imageclef",
    "make_imageclef_layout": "._layout_2026",
}
__all__ = [
    "DatasetMismatchWarning",
    "find_imageclef_layout",
    "load_imageclef",
    "make_concept_images",
    "make_imageclef_2019_layout",
    "make_imageclef_layout",
]

if TYPE_CHECKING:
    from ._imageclef import (
        DatasetMismatchWarning,
        load_imageclef,
        make_concept_images,
        make_imageclef_2019_layout,
    )
    from ._layout_2026 import find_imageclef_layout, make_imageclef_layout


if not TYPE_CHECKING:  # checkers read the imports above: a misspelt name is an error
    def __getattr__(name):
        return lazy_attribute(__name__, _MODULE_OF, name)
