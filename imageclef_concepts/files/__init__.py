"""The library's own files: written atomically, and training checkpoints.

Every file the library writes goes through :mod:`._atomic` (a temporary file in
the same folder, then ``os.replace``), so that a failed or interrupted write
never damages what was there; :mod:`._checkpoints` keeps a training's epochs
in a folder the library marks as its own and alone may remove. Below every
other subpackage, it also holds what sizes work: :mod:`._sizes` (bytes against
this machine's memory and disks) and :mod:`._numbers` (a size or count is a
whole number, not a bool); and :mod:`._digests`, the digest that fingerprints
large data (images, concepts, weights), with :mod:`._identity`, what tells a callable
parameter or a user's network from another in a checkpoint's fingerprint.
"""

from typing import TYPE_CHECKING

from .._api import lazy_attribute

_MODULE_OF = {
    "CheckpointError": "._checkpoints",
    "remove_checkpoint": "._checkpoints",
}
__all__ = [
    "CheckpointError",
    "remove_checkpoint",
]

if TYPE_CHECKING:
    from ._checkpoints import CheckpointError, remove_checkpoint


if not TYPE_CHECKING:  # checkers read the imports above: a misspelt name is an error
    def __getattr__(name):
        return lazy_attribute(__name__, _MODULE_OF, name)
