"""What tells a callable or a user's network from another (``files/_identity.py``)."""

import threading
from functools import partial

import keras
import numpy as np
import pytest

from imageclef_concepts.files._identity import (
    Unidentifiable,
    identity_digest,
    network_identity,
)


def _countdown(n):
    return n if n == 0 else _countdown(n - 1)


class _Scaled:
    def __init__(self, factor):
        self.factor = factor

    def __call__(self, y_true, y_pred):
        return self.factor * (y_true - y_pred)


_LOCK = threading.Lock()


def _locked(y_true, y_pred):
    with _LOCK:
        return y_true - y_pred


def test_identity_tells_callables_by_what_they_hold_not_their_name():
    assert identity_digest(_countdown) == identity_digest(_countdown)  # calls itself
    assert identity_digest(_Scaled(1)) != identity_digest(_Scaled(2))
    assert identity_digest(_Scaled(2)) == identity_digest(_Scaled(np.int64(2)))
    assert identity_digest(_Scaled(1).__call__) != identity_digest(_Scaled(2).__call__)
    assert identity_digest(partial(_Scaled(np.arange(3)))) != identity_digest(
        partial(_Scaled(np.arange(4))))
    assert identity_digest(_Scaled(np.array(["a", 1], dtype=object))) != identity_digest(
        _Scaled(np.array(["a", 2], dtype=object)))  # arrays of Python objects too
    focal = keras.losses.BinaryFocalCrossentropy
    assert identity_digest(_Scaled(focal(gamma=1.0))) != identity_digest(_Scaled(focal(gamma=2.0)))
    # installed code by its name
    assert identity_digest(keras.losses.binary_crossentropy) != identity_digest(
        keras.losses.binary_focal_crossentropy)


def test_identity_refuses_what_it_cannot_tell_apart():
    with pytest.raises(Unidentifiable, match="lock"):
        identity_digest(_locked)  # the global it reads: a lock
    with pytest.raises(Unidentifiable, match="lock"):
        identity_digest(_Scaled(threading.Lock()))


class _Subclassed(keras.Model):
    """A network without a config (its own class, no get_config)."""

    def __init__(self, activation, token):
        super().__init__()  # token: an argument without config
        self.dense = keras.layers.Dense(2, activation=activation)

    def call(self, images):
        return self.dense(keras.ops.reshape(images, (keras.ops.shape(images)[0], -1)))


def _subclassed(activation):
    def build(n_concepts, image_size):
        network = _Subclassed(activation, object())
        network(keras.ops.zeros((1, image_size, image_size, 3)))
        return network
    return build


def test_a_network_without_config_is_known_by_its_factory_or_refused():
    relu, tanh = _subclassed("relu"), _subclassed("tanh")
    assert (network_identity(relu(2, 4), relu) == network_identity(relu(2, 4), relu)
            != network_identity(tanh(2, 4), tanh))
    with pytest.raises(Unidentifiable, match="without get_config"):
        network_identity(relu(2, 4), relu(2, 4))  # given as a keras.Model: nothing else
