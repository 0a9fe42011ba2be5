"""Every contact with scikeras, and why: the one module that knows its internals.

scikeras' ``KerasClassifier`` gives :class:`ConceptCNNClassifier` its life
cycle: ``_fit`` -> ``_initialize`` (random state, ``_validate_data``,
``target_encoder.fit``, ``_build_keras_model``, callbacks) ->
``_check_model_compatibility`` -> ``_fit_keras_model``, and ``initialize``,
``warm_start``, ``current_epoch`` and the pickling of Keras models.

Public extension points first: the ``target_encoder`` property (the
targets, :class:`KerasTargets`) and the ``callbacks`` parameter (the user's
callbacks, routed by scikeras). The rest goes through private hooks, each
behind one method of :class:`ScikerasAdapter` so that the estimator never
names a scikeras internal:

* :meth:`~ScikerasAdapter._fit_with_scikeras` runs scikeras' ``_fit``, which
  calls back the estimator's two hooks: ``_build_network()`` (from
  ``_build_keras_model``) and ``_train_network(...)`` (from
  ``_fit_keras_model``);
* :meth:`~ScikerasAdapter._restore_scikeras_state` sets, for a loaded model,
  what ``_initialize`` would have set, so that it trains further;
* :attr:`~ScikerasAdapter._seed` and :attr:`~ScikerasAdapter._user_callbacks`
  read what ``_initialize`` left (an int seed, the routed callbacks).

Four things scikeras does are wrong for this task (scikeras 0.13,
scikit-learn 1.7+) and are replaced here:

* parameter introspection: scikeras reads every public attribute as a
  parameter; scikit-learn's reads ``__init__``'s signature;
* tags: scikeras leaves modern tags unset (``is_classifier`` is False);
* ``_validate_data``: scikeras wants 2-d in-memory arrays; ours takes images
  as arrays or file paths (an image source, decoded batch by batch);
* ``_validate_sample_weight``: scikeras' needs the 2-d ``X`` as well;

and ``_check_model_compatibility`` compares the loss parameter with the
compiled loss by Keras name, which fails for the library's own losses.

``tests/keras/test_adapter.py`` pins the scikeras behaviour these rely on.
"""

import numpy as np
from scikeras.wrappers import KerasClassifier
from sklearn.base import BaseEstimator
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import ClassifierTags

from ..concepts._targets import ConceptTargets, incremental_concepts
from ..images._shared import check_stores_room
from ..images._sources import as_image_source
from ..models._base import set_multilabel_tags
from ..models._ranges import check_sample_weight


class ScikerasAdapter(KerasClassifier):
    """``KerasClassifier`` with scikit-learn's parameters and tags, images as ``X``.

    A subclass provides ``_build_network()`` (the compiled network for
    ``classes_``) and ``_train_network(images, indicator, *, sample_weight,
    warm_start, epochs, initial_epoch, validation_data)``.
    """

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

    # ------------------------------------------------- public extension points

    @property
    def target_encoder(self):
        return KerasTargets(min_count=self.min_count, max_labels=self.max_labels,
                            concepts=self.__dict__.get("_concepts_given"))

    # ------------------------------------------------------------ the fit

    def _fit_with_scikeras(self, X, y, *, sample_weight, warm_start, epochs, initial_epoch,
                           validation_data, classes=None):
        """scikeras' ``_fit``: initialise (or validate, when warm), encode ``y``, train.

        It calls :meth:`_validate_data` (``X`` -> an image source), the
        target encoder (``y`` -> a CSR indicator; ``classes_``, ``targets_``),
        then ``_build_network()`` for a new model and ``_train_network(...)``.
        ``classes``: ``partial_fit``'s, checked against ``y`` and a built
        model's vocabulary (:func:`incremental_concepts`); for a new model its
        concepts are the vocabulary, which the target encoder (made by
        scikeras from the property above) reads for the length of the call.
        """
        if validation_data is not None:  # stored with X: its store asked for both at once
            check_stores_room(self, X, validation_data)
        fitted = self.targets_ if warm_start and self.initialized_ else None
        self._concepts_given = incremental_concepts(
            classes, y, fitted, min_count=self.min_count, max_labels=self.max_labels)
        try:
            self._fit(X, y, sample_weight=sample_weight, warm_start=warm_start, epochs=epochs,
                      initial_epoch=initial_epoch, validation_data=validation_data)
        finally:
            del self._concepts_given

    def _image_shelves(self):
        # The store a fit or predict fills, at which size and filter: a meta-estimator checks
        # its room for all its parts' images at once (images._shared.check_stores_room).
        return [(getattr(self, "image_store", None), "image_size", self.image_size,
                 self.resample)]

    def _build_keras_model(self):
        return self._build_network()

    def _check_model_compatibility(self, y):
        # scikeras compares the loss parameter with the compiled loss by Keras
        # name, which fails for the library's own names ("focal", "soft_f1").
        if len(self.model_.outputs) != 1:
            raise ValueError(f"The network has {len(self.model_.outputs)} outputs; a concept "
                             "network has one (a probability per concept).")

    def _fit_keras_model(self, X, y, sample_weight, warm_start, epochs, initial_epoch,
                         validation_data=None):
        self._train_network(X, y, sample_weight=sample_weight, warm_start=warm_start,
                            epochs=epochs, initial_epoch=initial_epoch,
                            validation_data=validation_data)

    def _validate_data(self, X=None, y=None, reset=False, y_numeric=False):
        # scikeras calls this with reset=True on a new model, False otherwise.
        # (getattr: estimators pickled before image_cache_mb or image_store existed
        # have none.)
        images = as_image_source(X, self.image_size, self.resample, self.on_error, self.n_jobs,
                                 getattr(self, "image_cache_mb", 0),
                                 getattr(self, "image_store", None),
                                 size_name="image_size" if reset else None)  # else the model's
        if y is not None:
            n_rows = y.shape[0] if hasattr(y, "shape") else len(y)
            if n_rows != len(images):
                raise ValueError(f"X has {len(images)} images but y has {n_rows} rows.")
        return images, y

    def _validate_sample_weight(self, X, y, sample_weight):
        # Finite, non-negative (a negative weight rewards being wrong) and within
        # float32, which the loss is computed in.
        return X, y, check_sample_weight(sample_weight, len(X))

    # ----------------------------------------- what scikeras' _initialize left

    @property
    def _seed(self):
        """The int seed (or None) scikeras drew from ``random_state`` at initialisation."""
        return self._random_state

    @property
    def _user_callbacks(self):
        """The user's ``callbacks``, as scikeras routed them for ``Model.fit``: routed again
        when ``set_params`` changed them after the fit (scikeras routes them when it
        initialises, so the next ``partial_fit`` or warm start ran the old ones)."""
        if getattr(self, "_routed_callbacks", None) is not self.callbacks:
            self._initialize_callbacks()
        return self._fit_callbacks

    def _initialize_callbacks(self):
        super()._initialize_callbacks()
        self._routed_callbacks = self.callbacks  # what was routed: a change is seen

    def _restore_scikeras_state(self, targets):
        """Set what scikeras' ``_initialize`` sets, for a model read from a file.

        ``targets`` is the fitted :class:`KerasTargets`; ``random_state`` must
        be an int or None (as a model file holds it). Afterwards ``partial_fit``
        and ``warm_start`` continue training the loaded network.
        """
        self.__dict__.update(targets.get_metadata())
        self.target_encoder_ = targets
        self._random_state = self.random_state
        self.feature_encoder_ = FunctionTransformer().fit(np.zeros((1, 1)))
        self._initialize_callbacks()


class KerasTargets(ConceptTargets):
    """:class:`ConceptTargets` as scikeras' target encoder.

    ``get_metadata`` hands scikeras the fitted attributes it sets on the
    estimator: ``targets_`` (this object) and ``classes_``.
    """

    def get_metadata(self):
        return {"targets_": self, "classes_": self.classes_, "n_classes_": len(self.classes_),
                "n_outputs_expected_": 1}
