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


# Review 20 (r20a): what the identity missed or refused wrongly.

def test_a_function_reading_a_users_module_is_known_by_what_it_reads(tmp_path, monkeypatch):
    # `import lossconf` then `lossconf.WEIGHT` in a loss: the module was known by its name
    # only, so a changed WEIGHT (or a changed helper called through the module) resumed.
    import importlib

    (tmp_path / "lossconf_r20.py").write_text("WEIGHT = 1.0\n\ndef core(x):\n    return x\n")
    monkeypatch.syspath_prepend(tmp_path)
    conf = importlib.import_module("lossconf_r20")
    namespace = {"lossconf_r20": conf, "np": np}
    exec("def loss(y, p):\n    return lossconf_r20.WEIGHT * np.mean(lossconf_r20.core(p))\n",
         namespace)
    first = identity_digest(namespace["loss"])
    conf.WEIGHT = 50.0
    assert identity_digest(namespace["loss"]) != first
    conf.WEIGHT = 1.0
    assert identity_digest(namespace["loss"]) == first
    monkeypatch.setattr(conf, "core", lambda x: -x)
    assert identity_digest(namespace["loss"]) != first


def test_modules_of_the_user_that_import_each_other_are_read_once(tmp_path, monkeypatch):
    import importlib

    (tmp_path / "cyc_a_r20.py").write_text("import cyc_b_r20\nWEIGHT = 1.0\n")
    (tmp_path / "cyc_b_r20.py").write_text("import cyc_a_r20\n")
    monkeypatch.syspath_prepend(tmp_path)
    first = importlib.import_module("cyc_a_r20")
    namespace = {"cyc_a_r20": first}
    exec("def loss(y, p):\n    return cyc_a_r20.cyc_b_r20.cyc_a_r20.WEIGHT * p\n", namespace)
    before = identity_digest(namespace["loss"])
    first.WEIGHT = 2.0
    assert identity_digest(namespace["loss"]) != before


def _function(source, name="fn"):
    namespace = {"keras": keras}
    exec(source, namespace)
    return namespace[name]


def test_a_docstring_added_is_the_same_function():
    plain = _function("def fn(y, p):\n    return p - y\n")
    documented = _function('def fn(y, p):\n    """The difference."""\n    return p - y\n')
    other = _function('def fn(y, p):\n    """The difference."""\n    return y - p\n')
    assert identity_digest(plain) == identity_digest(documented) != identity_digest(other)


class _Weighted(keras.losses.Loss):
    """A user's loss keeping an argument its get_config does not return."""

    def __init__(self, weight, name="weighted"):
        super().__init__(name=name)
        self.weight = weight

    def call(self, y_true, y_pred):
        return self.weight * keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)


class _WeightedConfigured(_Weighted):
    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


def test_a_keras_object_is_known_by_its_config_its_code_and_the_functions_it_wraps():
    # A user's Loss subclass was its config only: W(1.0) and W(50.0) resumed each other.
    with pytest.raises(Unidentifiable, match="weight"):
        identity_digest(_Weighted(1.0))
    assert identity_digest(_WeightedConfigured(1.0)) == identity_digest(_WeightedConfigured(1.0))
    assert identity_digest(_WeightedConfigured(1.0)) != identity_digest(_WeightedConfigured(50.0))
    # A wrapped user function was known by its name.
    up = _function("def fn(y, p):\n    return keras.ops.mean(p)\n")
    down = _function("def fn(y, p):\n    return -keras.ops.mean(p)\n")
    wrapper = keras.metrics.MeanMetricWrapper
    assert identity_digest(wrapper(up, name="m")) == identity_digest(wrapper(up, name="m"))
    assert identity_digest(wrapper(up, name="m")) != identity_digest(wrapper(down, name="m"))
    # A lambda with no source (eval, python -c) made Keras' config raise OSError.
    with pytest.raises(Unidentifiable, match="MeanMetricWrapper"):
        identity_digest(wrapper(eval("lambda y, p: keras.ops.mean(p)"), name="m"))


def test_a_keras_optimizer_made_again_in_one_process_is_the_same():
    # Keras names a second Adam() 'adam_1': a notebook cell rerun after a Ctrl-C was
    # "another training".
    adam = keras.optimizers.Adam
    assert identity_digest(adam(1e-3)) == identity_digest(adam(1e-3)) != identity_digest(
        adam(1e-2))


def test_a_tf_function_is_known_by_its_python_function():
    import tensorflow as tf

    up = _function("def fn(y, p):\n    return keras.ops.mean(p)\n")
    down = _function("def fn(y, p):\n    return -keras.ops.mean(p)\n")
    assert identity_digest(tf.function(up)) == identity_digest(tf.function(up))
    assert identity_digest(tf.function(up)) != identity_digest(tf.function(down))


# Review 21: what the identity of review 20 still missed or refused wrongly.

class _Warm(keras.optimizers.schedules.LearningRateSchedule):
    """A user's schedule inside a library optimizer: its code decides the rates."""

    def __init__(self, peak):
        self.peak = peak

    def __call__(self, step):
        return self.peak * 1e-3

    def get_config(self):
        return {"peak": self.peak}


class _Warmer(_Warm):
    def __call__(self, step):
        return self.peak * 1e-1


class _Scaler:
    def __init__(self, factor):
        self.factor = factor

    def scaled(self, y_true, y_pred):
        return self.factor * keras.ops.mean(y_pred)


def test_what_a_library_keras_object_holds_of_the_users_is_known_by_its_code():
    # A user's schedule in Adam was Adam's config ('Warm', {'peak': 1.0}) only, and a
    # wrapped bound method its name only: changed code or values resumed.
    adam = keras.optimizers.Adam
    assert identity_digest(adam(_Warm(1.0))) == identity_digest(adam(_Warm(1.0)))
    assert identity_digest(adam(_Warm(1.0))) != identity_digest(adam(_Warmer(1.0)))
    wrapper = keras.metrics.MeanMetricWrapper
    assert identity_digest(wrapper(_Scaler(1.0).scaled, name="m")) != identity_digest(
        wrapper(_Scaler(50.0).scaled, name="m"))


class _MyBCE(keras.losses.BinaryCrossentropy):
    """A user's subclass that leaves __init__ to Keras: nothing of its own to lose."""


class _MyAUC(keras.metrics.AUC):
    pass


def test_a_users_subclass_keeping_keras_init_is_not_refused():
    # The argument check read Keras' own __init__ (dtype, thresholds), whose get_config
    # Keras itself wrote: MyBCE(), MyAUC() were refused (review 21).
    assert identity_digest(_MyBCE()) == identity_digest(_MyBCE())
    assert identity_digest(_MyBCE(from_logits=True)) != identity_digest(_MyBCE())
    assert identity_digest(_MyAUC()) == identity_digest(_MyAUC())


def test_a_users_module_is_read_for_the_attributes_the_function_reads_of_it(tmp_path,
                                                                           monkeypatch):
    # Every attribute of the module named like any name the function used was read: a
    # logger at usercfg.log (the loss used keras.ops.log) refused it as 'holds a RLock'.
    import importlib

    (tmp_path / "usercfg_r21.py").write_text(
        "import logging\nW = 1.0\nlog = logging.getLogger('usercfg_r21')\n")
    monkeypatch.syspath_prepend(tmp_path)
    conf = importlib.import_module("usercfg_r21")
    namespace = {"usercfg_r21": conf, "keras": keras}
    exec("def loss(y, p):\n    return usercfg_r21.W * keras.ops.log(p)\n", namespace)
    first = identity_digest(namespace["loss"])
    conf.W = 2.0
    assert identity_digest(namespace["loss"]) != first
