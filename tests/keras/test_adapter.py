"""Pins the scikeras behaviour that ``imageclef_concepts.keras._adapter`` relies on.

If a scikeras release changes the order or arguments of these private hooks,
these tests fail before users see wrong results.
"""

import numpy as np
import scikeras

from imageclef_concepts import ConceptCNNClassifier
from imageclef_concepts.keras._adapter import KerasTargets

from ..conftest import TINY


class RecordingCNN(ConceptCNNClassifier):
    """Records the scikeras hooks as they are called."""

    def _validate_data(self, X=None, y=None, reset=False, y_numeric=False):
        self.calls_.append(("_validate_data", reset))
        return super()._validate_data(X, y, reset=reset, y_numeric=y_numeric)

    def _build_keras_model(self):
        self.calls_.append(("_build_keras_model", hasattr(self, "targets_")))
        return super()._build_keras_model()

    def _fit_keras_model(self, X, y, **kwargs):
        self.calls_.append(("_fit_keras_model", type(y).__name__))
        return super()._fit_keras_model(X, y, **kwargs)


def _fit(model, X, y):
    model.calls_ = []
    model.fit(X, y)
    return model.calls_


def test_scikeras_version_is_the_one_pinned():
    assert scikeras.__version__.startswith("0.13")


def test_fit_calls_the_hooks_in_the_order_the_adapter_expects():
    X = np.zeros((6, 32, 32, 3), dtype=np.uint8)
    y = ["C1", "C2", "C1;C2"] * 2
    model = RecordingCNN(**{**TINY, "epochs": 1, "validation_fraction": None})
    calls = _fit(model, X, y)
    # A new model: data validated with reset=True, the target encoder fitted and
    # its metadata set (targets_ exists) before the network is built, then y
    # reaches _fit_keras_model already encoded (a CSR indicator).
    assert calls == [("_validate_data", True), ("_build_keras_model", True),
                     ("_fit_keras_model", "csr_matrix")]
    assert isinstance(model.targets_, KerasTargets)
    assert list(model.classes_) == ["C1", "C2"]


def test_warm_start_validates_without_reset_and_keeps_the_network():
    X = np.zeros((6, 32, 32, 3), dtype=np.uint8)
    y = ["C1", "C2", "C1;C2"] * 2
    model = RecordingCNN(**{**TINY, "epochs": 1, "validation_fraction": None})
    _fit(model, X, y)
    network = model.model_
    model.set_params(warm_start=True)
    calls = _fit(model, X, y)
    assert calls == [("_validate_data", False), ("_fit_keras_model", "csr_matrix")]
    assert model.model_ is network


# The scikeras internals the adapter hides: no other module of the Keras package names them.
SCIKERAS_INTERNALS = ("_fit(", "_initialize", "_build_keras_model", "_fit_keras_model",
                      "_check_model_compatibility", "target_encoder_", "feature_encoder_",
                      "_random_state", "_fit_callbacks", "_predict_callbacks")


def test_no_module_but_the_adapter_names_a_scikeras_internal():
    import re
    from pathlib import Path

    from imageclef_concepts import keras as package

    pattern = re.compile("|".join(r"(?<!\w)" + re.escape(name) for name in SCIKERAS_INTERNALS))
    named = {(path.name, found) for path in Path(package.__file__).parent.glob("*.py")
             if path.name != "_adapter.py"
             for found in pattern.findall(path.read_text(encoding="utf-8"))}
    assert named == set()
    # The pattern finds what it looks for (partial_fit( is not scikeras' _fit().
    assert pattern.findall("self._fit(X) partial_fit(X) m._random_state") == [
        "_fit(", "_random_state"]


def test_a_loaded_model_has_every_attribute_scikeras_initialize_sets(tmp_path):
    X = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    y = ["C1", "C2", "C1;C2"] * 2
    fitted = ConceptCNNClassifier(**{**TINY, "epochs": 1, "validation_fraction": None})
    fitted.fit(X, y)
    fitted.save(tmp_path / "m.keras")
    loaded = ConceptCNNClassifier.load(tmp_path / "m.keras")
    # What _initialize set on the fitted model (the model file holds the rest).
    from_initialize = {"target_encoder_", "feature_encoder_", "_random_state", "_fit_callbacks",
                       "_predict_callbacks", "classes_", "n_classes_", "n_outputs_expected_",
                       "targets_"}
    assert from_initialize <= set(vars(fitted))
    assert from_initialize <= set(vars(loaded))
    assert loaded.target_encoder_ is loaded.targets_
    assert loaded._seed == fitted._seed == 0
    np.testing.assert_array_equal(loaded.feature_encoder_.transform(X), X)
    # ... so that scikeras' warm path trains the loaded network further.
    network = loaded.model_
    loaded.partial_fit(X, y)
    assert loaded.model_ is network and len(loaded.history_["loss"]) == 2


def test_the_seed_is_the_int_scikeras_draws_from_a_random_state():
    X = np.zeros((6, 32, 32, 3), dtype=np.uint8)
    y = ["C1", "C2", "C1;C2"] * 2
    seeds = [ConceptCNNClassifier(**{**TINY, "random_state": np.random.RandomState(3)})
             .initialize(X, y)._seed for _ in range(2)]
    assert isinstance(seeds[0], int) and seeds[0] == seeds[1]
    assert ConceptCNNClassifier(**{**TINY, "random_state": None}).initialize(X, y)._seed is None


def test_the_users_callbacks_are_routed_by_scikeras_and_run():
    import keras

    class Epochs(keras.callbacks.Callback):
        seen = 0

        def on_epoch_end(self, epoch, logs=None):
            Epochs.seen += 1

    X = np.zeros((6, 32, 32, 3), dtype=np.uint8)
    y = ["C1", "C2", "C1;C2"] * 2
    callback = Epochs()
    model = ConceptCNNClassifier(**{**TINY, "epochs": 2, "validation_fraction": None,
                                    "callbacks": [callback]}).fit(X, y)
    assert model._user_callbacks == [callback] and Epochs.seen == 2


def test_callbacks_set_after_the_fit_run_in_the_next_partial_fit():
    # scikeras routes callbacks when it initialises: the next partial_fit (or warm start)
    # ran the ones of the first fit, those set since silently left out.
    import keras

    class Epochs(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = 0

        def on_epoch_end(self, epoch, logs=None):
            self.seen += 1

    X = np.zeros((6, 32, 32, 3), dtype=np.uint8)
    y = ["C1", "C2", "C1;C2"] * 2
    first, later = Epochs(), Epochs()
    model = ConceptCNNClassifier(**{**TINY, "epochs": 1, "validation_fraction": None,
                                    "callbacks": [first]}).fit(X, y)
    model.set_params(callbacks=[later]).partial_fit(X, y)
    assert (first.seen, later.seen) == (1, 1)
    model.partial_fit(X, y)  # the same list: the same instances, not routed anew
    assert model._user_callbacks[0] is later and later.seen == 2
