"""A fit leaves every process-wide setting as it found it, with or without random_state."""

import os
import random

import numpy as np
import pytest

from imageclef_concepts import ConceptCNNClassifier

SMALL = dict(image_size=16, filters=(2,), dense_units=(4,), epochs=1)


def settings():
    import keras
    from keras.src.backend.common import global_state
    from tensorflow.python.eager import context
    from tensorflow.python.framework import config

    return {"dtype policy": keras.config.dtype_policy().name,
            "Keras seed": global_state.get_global_attribute("global_random_seed"),
            "TensorFlow seed": context.global_seed(),
            "op determinism": config.is_op_determinism_enabled(),
            "Python random": random.getstate(),
            "NumPy random": np.random.get_state()[1].tolist(),
            "environment": dict(os.environ)}


@pytest.mark.parametrize("random_state", [None, 3])
def test_fit_leaves_keras_tensorflow_numpy_and_python_settings(random_state, tiny_images):
    import keras

    y = [";".join(c) for c in tiny_images.concepts]
    keras.config.set_dtype_policy("mixed_bfloat16")
    keras.utils.set_random_seed(1234)
    try:
        before = settings()
        model = ConceptCNNClassifier(**SMALL, random_state=random_state)
        model.fit(tiny_images.images, y)
        model.partial_fit(tiny_images.images, y)
        after = settings()
    finally:
        keras.config.set_dtype_policy("float32")
    assert [key for key in before if before[key] != after[key]] == []
    assert model.model_.layers[-1].dtype_policy.name == "float32"  # its own policy


@pytest.mark.slow
def test_unseeded_fits_still_differ(tiny_images):
    y = [";".join(c) for c in tiny_images.concepts]
    first, second = (ConceptCNNClassifier(**SMALL).fit(tiny_images.images, y)
                     .predict_proba(tiny_images.images) for _ in range(2))
    assert not np.allclose(first, second)


@pytest.mark.slow
def test_a_fit_keeps_the_users_layer_names_unique():
    import keras
    import numpy as np

    from imageclef_concepts import ConceptCNNClassifier

    inputs = keras.Input((3,))
    first = keras.layers.Dense(2)
    ConceptCNNClassifier(image_size=16, filters=(2,), dense_units=(4,), epochs=1,
                         validation_fraction=None, random_state=0).fit(
        np.zeros((4, 16, 16, 3), np.uint8), [["C1"], ["C2"], ["C1"], ["C2"]])
    second = keras.layers.Dense(2)
    assert first.name != second.name
    keras.Model(inputs, second(first(inputs)))  # no "name used 2 times" error
