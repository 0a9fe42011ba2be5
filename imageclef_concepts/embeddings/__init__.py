"""Image embeddings from foundation models, computed once and kept.

Encoders turn images into L2-normalised vectors with the preprocessing their
authors used; the embedding store keeps each image's vector on disk, keyed by
the image's version and the encoder's identity, for every fit, fold and
process. Retrieval and heads on embeddings live in
:mod:`imageclef_concepts.estimators`.
"""

from typing import TYPE_CHECKING

from .._api import lazy_attribute

_MODULE_OF = {
    "EmbeddingStore": "._store",
    "EmbeddingStoreError": "._store",
    "EmbeddingStoreWarning": "._store",
    "FoundationEncoder": "._encoder",
    "embed_images": "._once",
}
__all__ = [
    "EmbeddingStore",
    "EmbeddingStoreError",
    "EmbeddingStoreWarning",
    "FoundationEncoder",
    "embed_images",
]

if TYPE_CHECKING:
    from ._encoder import FoundationEncoder
    from ._once import embed_images
    from ._store import EmbeddingStore, EmbeddingStoreError, EmbeddingStoreWarning


if not TYPE_CHECKING:  # checkers read the imports above: a misspelt name is an error
    def __getattr__(name):
        return lazy_attribute(__name__, _MODULE_OF, name)
