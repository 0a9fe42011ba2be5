"""``keras/_architecture.py``: parameter ranges, their combinations, and the network built."""

import inspect
import re

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



@pytest.mark.parametrize("params, named", [
    (dict(filters=[[4]]), "filters=[[4]]"),
    (dict(filters=np.array([[2**20]])), "filters=[[1048576]]"),
    (dict(dense_units=[(4,)]), "dense_units=[(4,)]"),
    (dict(filters=(4, 4), kernel_size=((3, 3), (3, 3)), padding="same"),
     "kernel_size=((3, 3), (3, 3))"),
    (dict(filters=(4, 4), kernel_size=np.array([[3, 3], [10**5, 10**5]]), padding="same"),
     "kernel_size=[[3, 3], [100000, 100000]]"),
])
def test_sizes_that_are_not_numbers_are_named(params, named):
    # A nested list (or a kernel side per block given as Keras' (3, 3) pair) ended in
    # "int() argument must be ... not 'tuple'" or "only 0-dimensional arrays can be
    # converted to Python scalars", naming nothing (issue 30 review 14).
    with pytest.raises(ValueError, match=r"^" + re.escape(named) + ": "):
        check_architecture(ConceptCNNClassifier(**{**TINY, **params}))


# Values of the wrong kind for a size: sklearn's Interval(Integral) refuses all but True
# (a bool is an int to Python); the sizes' lists took them, or failed naming nothing.
WRONG_SIZES = {"0-d array": np.array(4), "nan": float("nan"), "inf": float("inf"),
               "2.0": 2.0, "True": True, "'4'": "4", "nested": [[4]],
               "np.float64": np.float64(4)}
SCALAR_SIZES = ("image_size", "batch_size", "epochs", "kernel_size", "n_jobs", "n_threads",
                "min_count", "max_labels", "early_stopping_patience", "freeze_epochs",
                "reduce_lr_patience")
LIST_SIZES = ("filters", "dense_units", "kernel_size")


def _refused_before_training(monkeypatch, params):
    """The message of fit's error on tiny images, failing if training was reached."""
    monkeypatch.setattr(ConceptCNNClassifier, "_fit_with_scikeras",
                        lambda *a, **k: pytest.fail("training started"))
    X = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError) as error:
        ConceptCNNClassifier(**{**TINY, **params}).fit(X, ["C1", "C2"] * 2)
    return str(error.value)


@pytest.mark.parametrize("name", SCALAR_SIZES)
@pytest.mark.parametrize("kind", WRONG_SIZES)
def test_a_size_of_the_wrong_kind_is_refused_naming_it_before_training(monkeypatch, name,
                                                                       kind):
    # epochs=True trained one epoch, image_size=True was 'too small for 1 blocks', a 0-d
    # array of kernel_size ended in 'iteration over a 0-d array' (issue 30 review 15).
    message = _refused_before_training(monkeypatch, {name: WRONG_SIZES[kind]})
    assert "\n" not in message and name in message and repr(WRONG_SIZES[kind]) in message
    assert "whole number" in message


@pytest.mark.parametrize("name", LIST_SIZES)
@pytest.mark.parametrize("kind", WRONG_SIZES)
def test_a_size_of_the_wrong_kind_in_a_list_is_refused_naming_it(monkeypatch, name, kind):
    # filters=(2.0,) passed every check and failed in Keras ('Cannot convert (5, 5, 3, 2.0)
    # to a shape'), filters=[nan] in int() ('cannot convert float NaN to integer') and
    # filters=np.array(4) in len(), naming nothing (issue 30 review 15).
    params = {name: [WRONG_SIZES[kind]]} if name != "kernel_size" else {
        name: [WRONG_SIZES[kind], 3]}
    message = _refused_before_training(monkeypatch, params)
    assert "\n" not in message and message.startswith(f"{name}=")
    assert "whole number" in message
    assert ", 0.0" not in message  # the value as given, not as NumPy converts it
    if name != "kernel_size":
        message = _refused_before_training(monkeypatch, {name: WRONG_SIZES[kind]})
        assert name in message and "\n" not in message


@pytest.mark.parametrize("params", [dict(filters=(0, 4)), dict(dense_units=(-8,)),
                                    dict(kernel_size=(3, 0))])
def test_a_size_below_one_in_a_list_is_refused_naming_it(monkeypatch, params):
    (name, value), = params.items()
    assert _refused_before_training(monkeypatch, params).startswith(f"{name}={value!r}: ")


@pytest.mark.parametrize("integer", [np.int64, np.int32])
def test_numpy_integers_are_accepted_as_sizes_as_scikit_learn_takes_them(integer):
    estimator = ConceptCNNClassifier(**{**TINY, "image_size": integer(32),
                                        "epochs": integer(1), "batch_size": integer(2),
                                        "filters": np.array([4, 8], dtype=integer),
                                        "dense_units": [integer(8)],
                                        "kernel_size": integer(3), "n_jobs": integer(1)})
    estimator._validate_params()
    check_architecture(estimator)


@pytest.mark.parametrize("integer", [np.int64, np.int32, np.uint8])
def test_numpy_integer_sizes_build_the_network_they_pass(integer):
    # dense_units=(np.int64(8),) passed every check, then Keras refused it ('Received an
    # invalid value for `units`, expected a positive integer. Received: units=8', review 16).
    from imageclef_concepts.keras._architecture import _uncompiled_network

    estimator = ConceptCNNClassifier(**{**TINY, "image_size": integer(32),
                                        "filters": np.array([4], dtype=integer),
                                        "dense_units": [integer(8)],
                                        "kernel_size": (integer(3),)})
    network = _uncompiled_network(estimator, 2, seed=0)
    assert [layer.units for layer in network.layers if isinstance(layer, keras.layers.Dense)
            ] == [8, 2]


def test_more_threads_than_a_machine_runs_are_refused_before_tensorflow_starts_them(
        monkeypatch):
    # TensorFlow starts n_threads threads at once: n_threads=10**6 ran for minutes and was
    # killed for memory, naming nothing (issue 30 review 12).
    import os

    from imageclef_concepts.keras import _architecture

    def started(n_threads):
        raise AssertionError(f"TensorFlow was given n_threads={n_threads}")

    monkeypatch.setattr(_architecture, "apply_thread_limit", started)
    with pytest.raises(ValueError, match=r"^n_threads=1000000: TensorFlow starts"):
        ConceptCNNClassifier(**{**TINY, "n_threads": 10**6}).fit(
            np.zeros((2, 32, 32, 3), np.uint8), ["C1", "C2"])
    check_architecture(ConceptCNNClassifier(**{**TINY, "n_threads": os.cpu_count()}))
    # the cores this process may use (a container's quota), not the host's
    monkeypatch.setattr(_architecture, "usable_cores", lambda: 1)
    check_architecture(ConceptCNNClassifier(**{**TINY, "n_threads": 16}))
    with pytest.raises(ValueError, match=r"^n_threads=17: .* the 1 core\(s\) this process may use"):
        check_architecture(ConceptCNNClassifier(**{**TINY, "n_threads": 17}))


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


def test_sizes_beyond_memory_are_refused_naming_them_before_any_image_is_read(decodes):
    from imageclef_concepts.keras._architecture import check_memory

    paths = ["nowhere/a.png", "nowhere/b.png"]  # never looked at
    with pytest.raises(ValueError, match=r"^image_size=100000: decoding one image at that "
                                         r"size takes 121.1 GiB \(130,000,000,000 bytes\)"):
        ConceptCNNClassifier(image_size=100000).fit(paths, ["C1", "C2"])
    with pytest.raises(ValueError, match=r"^image_size=100000: "):
        ConceptCNNClassifier(image_size=100000).partial_fit(paths, ["C1", "C2"])
    # The paper's network at 6000 px: its weights alone are more than any machine here.
    with pytest.raises(ValueError, match=r"^image_size=6000: training the "
                                         r"network on a batch of 2 image\(s\)"):
        ConceptCNNClassifier(image_size=6000).fit(paths, ["C1", "C2"])
    assert decodes == {"decoded": 0, "checked": 0}
    # A batch as large as asked only when there are that many images.
    huge_batch = ConceptCNNClassifier(batch_size=10**8)
    check_memory(huge_batch, n_images=2)
    with pytest.raises(ValueError, match=r"^batch_size=100000000: .*choose a smaller "
                                         r"batch_size\.$"):
        check_memory(huge_batch)


@pytest.mark.parametrize("params, named", [
    ({"filters": (10**6,)}, r"filters=\(1000000,\)"),
    ({"dense_units": (10**7,)}, r"dense_units=\(10000000,\)"),
    ({"filters": (10**5,), "dense_units": (10**7,)},
     r"filters=\(100000,\) and dense_units=\(10000000,\)"),
    # 'same' padding keeps the side: the kernels' weights alone were 87 TiB, and the error
    # named batch_size, image_size, filters and dense_units (issue 30 review 12).
    ({"kernel_size": 10**6, "padding": "same"}, r"kernel_size=1000000"),
    # NumPy arrays (array-like, as the constraints take): comparing one with a default of
    # another length was "The truth value of an array ... is ambiguous" (issue 30 review 13).
    ({"filters": np.array([10**6])}, r"filters=\[1000000\]"),
    ({"filters": np.array([2, 10**6])}, r"filters=\[2, 1000000\]"),
    ({"dense_units": np.array([10**7, 4])}, r"dense_units=\[10000000, 4\]"),
    # A kernel_size per block: tried with filters back at their default (another number of
    # blocks), the search itself failed with 'kernel_size has 3 sizes for 4 blocks'.
    ({"kernel_size": (10**6, 3, 3), "filters": (2, 2, 2), "padding": "same"},
     r"kernel_size=\(1000000, 3, 3\)"),
    ({"kernel_size": np.array([10**6, 3, 3]), "filters": (2, 2, 2), "padding": "same"},
     r"kernel_size=\[1000000, 3, 3\]"),
])
def test_a_network_beyond_memory_names_the_parameter_that_makes_it(params, named):
    from imageclef_concepts.keras._architecture import check_memory

    with pytest.raises(ValueError, match=f"^{named}: training the network") as caught:
        check_memory(ConceptCNNClassifier(image_size=32, batch_size=4, **params))
    assert "image_size" not in str(caught.value) and "batch_size" not in str(caught.value)


def test_the_dense_layers_outputs_are_counted_in_the_memory_a_batch_takes():
    # Each hidden layer's output (and its dropout's), for every image of the batch, with
    # their gradients: not counted, train --dense-units 60000000 passed the check (8.6 GiB
    # of weights counted), then TensorFlow ran out of memory after 77 s and 19 GB on a
    # tensor of shape [22, 60000000] (a traceback); 100000000 crashed with SIGSEGV.
    from imageclef_concepts.keras._architecture import _memory_needed

    shape = {"image_size": 16, "batch_size": 24, "filters": (4, 8), "dense_units": (10**6,),
             "kernel_size": 5}
    need = _memory_needed(shape, None, "valid")[0]
    without = _memory_needed({**shape, "dense_units": ()}, None, "valid")[0]
    weights = 4 * 4 * (8 * 10**6 + 10**6)  # 8 features into 10**6 units, Adam's moments
    assert need - without == weights + 4 * 24 * 2 * 2 * 10**6


def test_predicting_at_a_size_beyond_memory_is_refused_before_any_image_is_read(decodes):
    X = np.zeros((4, 16, 16, 3), dtype=np.uint8)
    cnn = ConceptCNNClassifier(image_size=16, filters=(2,), dense_units=(4,), epochs=1,
                               padding="same", validation_fraction=None,
                               random_state=0).fit(X, ["C1", "C2", "C1", "C2"])
    cnn.set_params(image_size=100000)
    for method in (cnn.predict_proba, cnn.embed):
        with pytest.raises(ValueError, match=r"^image_size=100000: decoding one image"):
            method(["nowhere/a.png"])
    assert decodes == {"decoded": 0, "checked": 0}



@pytest.mark.parametrize("integer", [np.int32, np.int64])
def test_numpy_integer_sizes_are_checked_without_overflowing(integer):
    # A grid's np.arange gives NumPy integers: batch_size times image_size squared, or
    # the paper's blocks at np.int32 filters, overflowed and passed the check.
    from imageclef_concepts.keras._architecture import check_memory

    with pytest.raises(ValueError, match=r"^batch_size=.*: holding the input of a batch"):
        check_memory(ConceptCNNClassifier(image_size=integer(4096), batch_size=integer(2**20),
                                          backbone="resnet50"))
    with pytest.raises(ValueError, match="filters=.* training the network"):
        check_memory(ConceptCNNClassifier(image_size=integer(512), batch_size=integer(2),
                                          filters=(integer(2**20),)))


@pytest.mark.parametrize("metrics, message", [
    # A Keras Metric of more than one value an epoch (as documented, metrics takes any
    # keras.metrics.Metric): fit trained every epoch, then raised 'only 0-dimensional arrays
    # can be converted to Python scalars' keeping the history, the training lost.
    ([keras.metrics.F1Score(threshold=0.5)], r"^metrics\[0\] \(F1Score 'f1_score'\) logs "
                                             r"2 values an epoch"),
    (["auc", keras.metrics.Precision(thresholds=[0.1, 0.5])], r"^metrics\[1\] \(Precision"),
    # Not a name nor a Keras Metric: 'function' (or 'list') object has no attribute 'name'.
    ([keras.metrics.binary_accuracy], r"^metrics\[0\] is <function binary_accuracy.*: give "
                                      r"a metric's name or a keras\.metrics\.Metric"),
    ([["auc"]], r"^metrics\[0\] is \['auc'\]"),
    # The same metric by its name (as the docs allow: 'list of str'): fit trained, then
    # raised 'only 0-dimensional arrays can be converted to Python scalars'.
    (["f1_score"], r"^metrics\[0\] \(F1Score 'f1_score'\) logs 2 values an epoch"),
    (["auc", "F1Score"], r"^metrics\[1\] \(F1Score 'F1Score'\) logs 2 values"),
])
def test_metrics_the_history_cannot_keep_are_refused_before_training(metrics, message):
    with pytest.raises(ValueError, match=message):
        check_architecture(ConceptCNNClassifier(**{**TINY, "metrics": metrics}))
    # A metric of one value passes, its object untouched (no state added to it).
    auc = keras.metrics.AUC(name="a")
    check_architecture(ConceptCNNClassifier(**{**TINY, "metrics": ["auc", auc]}))
    assert float(auc.result()) == 0.0


def test_a_metric_a_model_file_could_not_make_again_is_refused_before_training():
    # State beyond what a model file may make (thresholds x labels x 16 bytes > 64 MiB): fit
    # trained and save wrote a file whose load refused it ('not a file as the library writes
    # it'), the trained model lost. Counted from its config: the probe makes no copy of it.
    big = keras.metrics.AUC(num_thresholds=2100, multi_label=True, num_labels=2000, name="big")
    with pytest.raises(ValueError, match=r"^metrics\[1\] \(AUC 'big'\) makes more than "
                                         r"64\.0 MiB of state .*could not be loaded"):
        check_architecture(ConceptCNNClassifier(**{**TINY, "metrics": ["auc", big]}))
    check_architecture(ConceptCNNClassifier(**{**TINY, "metrics": [keras.metrics.AUC(
        num_thresholds=2000, multi_label=True, num_labels=2000)]}))  # 61 MiB: loads again
