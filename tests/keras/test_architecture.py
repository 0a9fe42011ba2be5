"""``keras/_architecture.py``: parameter ranges, their combinations, and the network built."""

import inspect

import keras
import numpy as np
import pytest

from imageclef_concepts import ConceptCNNClassifier
from imageclef_concepts.keras._architecture import (
    PARAMETER_CONSTRAINTS,
    build_network,
    check_architecture,
)

from ..conftest import TINY


def test_every_parameter_has_a_range():
    assert list(PARAMETER_CONSTRAINTS) == list(inspect.signature(ConceptCNNClassifier).parameters)


@pytest.mark.parametrize("params, message", [
    (dict(image_size=8), "the smallest image_size that works is 16"),
    (dict(backbone="resnet50", image_size=16), "too small for resnet50"),
    (dict(freeze_epochs=1), "freeze_epochs freezes a pretrained backbone"),
    (dict(model=keras.Sequential(), freeze_epochs=1), "freeze_epochs freezes"),
    (dict(weights="w.h5"), "backbone='paper'"),
    (dict(decay=1e-6, reduce_lr_patience=2), "set decay=0"),
    (dict(loss="focal", pos_weight=2.0), "pos_weight weighs binary cross-entropy"),
    (dict(monitor="val_auc"), "monitor='val_auc' is not logged"),
])
def test_parameters_that_do_not_go_together_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        check_architecture(ConceptCNNClassifier(**{**TINY, **params}))


def test_the_network_built_is_compiled_with_the_estimators_settings():
    estimator = ConceptCNNClassifier(**{**TINY, "loss": "focal", "learning_rate": 1e-3,
                                        "decay": 0})
    estimator.classes_ = np.array(["A", "B", "C"])
    network = build_network(estimator, seed=0)
    assert network.output_shape == (None, 3) and network.input_shape == (None, 32, 32, 3)
    assert [layer.filters for layer in network.layers if hasattr(layer, "filters")] == [4, 8]
    assert isinstance(network.loss, keras.losses.BinaryFocalCrossentropy)
    assert float(network.optimizer.learning_rate) == pytest.approx(1e-3)
    estimator.__dict__.pop("_strategy")
