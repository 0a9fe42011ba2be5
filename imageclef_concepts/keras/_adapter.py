"""The one place where scikeras' private hooks are overridden, and why.

scikeras' ``KerasClassifier`` gives :class:`ConceptCNNClassifier` its life
cycle: ``_fit`` -> ``_initialize`` (random state, ``_validate_data``,
``target_encoder.fit``, ``_build_keras_model``) -> ``_fit_keras_model``,
``partial_fit``, ``warm_start``, ``current_epoch`` and the pickling of Keras
models. Its public extension point ``target_encoder`` is used for the
targets. Four things it does are wrong for this task (scikeras 0.13,
scikit-learn 1.7+) and are replaced here, through private hooks:

* parameter introspection: scikeras reads every public attribute as a
  parameter; scikit-learn's reads ``__init__``'s signature;
* tags: scikeras leaves modern tags unset (``is_classifier`` is False);
* ``_validate_data``: scikeras wants 2-d in-memory arrays; ours takes images
  as arrays or file paths (an image source, decoded batch by batch);
* ``_validate_sample_weight``: scikeras' needs the 2-d ``X`` as well.

``tests/test_keras_adapter.py`` pins the scikeras behaviour these rely on.
"""

import numpy as np
from scikeras.wrappers import KerasClassifier
from sklearn.base import BaseEstimator
from sklearn.utils import ClassifierTags
from sklearn.utils.validation import _check_sample_weight

from .._base import set_multilabel_tags
from .._images import as_image_source
from .._targets import ConceptTargets


class ScikerasAdapter(KerasClassifier):
    """``KerasClassifier`` with scikit-learn's parameters and tags, images as ``X``."""

    # scikit-learn's parameter introspection (from __init__'s signature), not
    # scikeras' (every public attribute in __dict__).
    _get_param_names = classmethod(  # type: ignore[var-annotated]
        BaseEstimator._get_param_names.__func__)
    set_params = BaseEstimator.set_params

    def __sklearn_tags__(self):
        tags = BaseEstimator.__sklearn_tags__(self)  # scikeras' own tags are wrong
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags(poor_score=True)
        tags.non_deterministic = True  # bitwise reproducible only with random_state
        return set_multilabel_tags(tags)

    def __repr__(self, N_CHAR_MAX=700):
        return BaseEstimator.__repr__(self, N_CHAR_MAX)

    def _validate_data(self, X=None, y=None, reset=False, y_numeric=False):
        # scikeras calls this with reset=True on a new model, False otherwise.
        # (getattr: estimators pickled before image_cache_mb existed have none.)
        images = as_image_source(X, self.image_size, self.resample, self.on_error, self.n_jobs,
                                 getattr(self, "image_cache_mb", 0))
        if y is not None:
            n_rows = y.shape[0] if hasattr(y, "shape") else len(y)
            if n_rows != len(images):
                raise ValueError(f"X has {len(images)} images but y has {n_rows} rows.")
        return images, y

    def _validate_sample_weight(self, X, y, sample_weight):
        # Finite (scikit-learn checks) and non-negative: a negative weight turns
        # the loss into a reward for being wrong.
        sample_weight = _check_sample_weight(sample_weight, np.empty((len(X), 0)),
                                             ensure_non_negative=True)
        return X, y, sample_weight

    @property
    def target_encoder(self):
        return KerasTargets(min_count=self.min_count, max_labels=self.max_labels)


class KerasTargets(ConceptTargets):
    """:class:`ConceptTargets` as scikeras' target encoder.

    ``get_metadata`` hands scikeras the fitted attributes it sets on the
    estimator: ``targets_`` (this object) and ``classes_``.
    """

    def get_metadata(self):
        return {"targets_": self, "classes_": self.classes_, "n_classes_": len(self.classes_),
                "n_outputs_expected_": 1}
