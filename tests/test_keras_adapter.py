"""Pins the scikeras behaviour that ``imageclef_concepts.keras._adapter`` relies on.

If a scikeras release changes the order or arguments of these private hooks,
these tests fail before users see wrong results.
"""

import numpy as np
import scikeras

from imageclef_concepts import ConceptCNNClassifier
from imageclef_concepts.keras._adapter import KerasTargets

from .conftest import TINY


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
