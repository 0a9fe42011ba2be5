"""What the image embedding transformers share: they learn nothing, embed what they are
given and name their features, so that they work as any scikit-learn transformer does
(``Pipeline``, ``set_output(transform="pandas")``, ``FeatureUnion``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.base import TransformerMixin

if TYPE_CHECKING:  # names for annotations only
    from numpy.typing import NDArray
    from typing_extensions import Self

    from .._typing import FloatArray, Images


class EmbedderMixin(TransformerMixin):
    """``fit`` checks, ``transform`` embeds, features are named ``<class name><i>``.

    A subclass gives ``_check()`` (the parameters, raising before any work),
    ``embed(X)`` and ``_n_features()`` (the embedding's length).
    """

    def _check(self) -> None:  # the parameters, before any work
        raise NotImplementedError

    def _n_features(self) -> int:  # the embedding's length
        raise NotImplementedError

    def embed(self, X: Images) -> FloatArray:
        raise NotImplementedError

    def fit(self, X: Images | None = None, y: None = None) -> Self:
        """Check the parameters; nothing is learned.

        Parameters
        ----------
        X, y : ignored

        Returns
        -------
        self
        """
        self._check()
        return self

    def transform(self, X: Images) -> FloatArray:
        """Same as :meth:`embed`.

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        ndarray of shape (n_images, n_features)
        """
        return self.embed(X)

    def get_feature_names_out(self, input_features: None = None) -> NDArray[np.object_]:
        """The embedding's features: the class's name in lower case and a number.

        Parameters
        ----------
        input_features : ignored
            Images have no feature names of their own.

        Returns
        -------
        ndarray of str objects, shape (n_features,)
        """
        self._check()
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self._n_features())], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.requires_fit = False
        return tags
