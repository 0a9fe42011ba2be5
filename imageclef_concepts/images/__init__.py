"""Images as the network sees them: decoded once, checked, stored and streamed.

Decoding (:func:`decode_image`), the sources estimators read batch by batch
(:mod:`._sources`), the on-disk store of decoded pixels (:class:`ImageStore`),
a loader for pipelines (:class:`ImageLoader`) and preparation of a whole
folder ahead of training (:func:`prepare_images`).
"""

from typing import TYPE_CHECKING

from .._api import lazy_attribute

_MODULE_OF = {
    "decode_image": "._decoding",
    "ImageDecodeError": "._decoding",
    "ImageLoader": "._loader",
    "ImageStore": "._store",
    "ImageStoreError": "._store_folder",
    "ImageStoreWarning": "._store",
    "prepare_images": "._preparation",
    "PreparedImages": "._preparation",
    "SkippedImagesWarning": "._sources",
}
__all__ = [
    "ImageDecodeError",
    "ImageLoader",
    "ImageStore",
    "ImageStoreError",
    "ImageStoreWarning",
    "PreparedImages",
    "SkippedImagesWarning",
    "decode_image",
    "prepare_images",
]

if TYPE_CHECKING:
    from ._decoding import ImageDecodeError, decode_image
    from ._loader import ImageLoader
    from ._preparation import PreparedImages, prepare_images
    from ._sources import SkippedImagesWarning
    from ._store import ImageStore, ImageStoreWarning
    from ._store_folder import ImageStoreError


if not TYPE_CHECKING:  # checkers read the imports above: a misspelt name is an error
    def __getattr__(name):
        return lazy_attribute(__name__, _MODULE_OF, name)
