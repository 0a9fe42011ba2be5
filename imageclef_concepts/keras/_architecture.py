"""From a :class:`ConceptCNNClassifier`'s parameters to its compiled network.

:mod:`._network` builds networks in plain Keras and knows no estimator; this module reads the
estimator's parameters and passes every one of them to a builder (the builders' own defaults
are for direct callers only):

* :data:`PARAMETER_CONSTRAINTS`: each parameter's range; :func:`check_architecture` refuses,
  before any image is read, parameters that cannot make a network or a training, or that this
  machine's memory cannot hold (:func:`check_memory`, :func:`._prediction.check_network_memory`);
* :func:`build_network` chooses the network (the user's ``model``, a backbone's or the paper's),
  checks the user's shapes, and compiles it; :func:`compile_network` compiles with the loss and
  optimizer, freezing or freeing the backbone first (also the second stage of a fine-tuning);
* where and how the network computes: :func:`apply_thread_limit` (this process's TensorFlow
  threads, so that workers x threads <= cores), :func:`strategy_for` (a ``tf.distribute``
  strategy by name, in whose scope the network is built and compiled) and :func:`dtype_policy`
  (mixed precision for the layers built inside, the global policy restored after).
"""

import os
import warnings
from contextlib import contextmanager, nullcontext
from numbers import Real

import keras
import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ..files._checkpoints import check_checkpoint_folder
from ..files._numbers import WholeNumber, check_sizes
from ..files._sizes import check_allocation, in_bytes, memory_limit, setting
from ..images._decoding import RESAMPLING, usable_cores
from ..images._sources import ON_ERROR, check_image_size
from ..images._store import ImageStore
from ..models import _paper as paper_constants
from ..models._card import ModelFileError
from ..models._decision import DecisionRule
from ..models._ranges import check_pos_weight
from . import AUGMENTATIONS, BACKBONES, LOSSES
from ._ema import ema_settings
from ._losses import balanced_pos_weight, make_loss
from ._network import (
    LARGEST_OBJECT_STATE,
    POOLINGS,
    SMALLEST_BACKBONE_INPUT,
    block_kernel_sizes,
    build_backbone_network,
    build_concept_cnn,
    keras_objects_in_bounds,
    learning_rate_schedule,
    smallest_image_size,
)
from ._training import seeded

# Ranges shared by several parameters.
_POSITIVE = WholeNumber(1)
_NATURAL = WholeNumber(0)
_FRACTION = Interval(Real, 0, 1, closed="left")
_ABOVE_ZERO = Interval(Real, 0, None, closed="neither")
_AT_LEAST_ZERO = Interval(Real, 0, None, closed="left")
# The tf.distribute strategies and Keras dtype policies a network may compute with.
DISTRIBUTIONS = ("mirrored", "multi_worker_mirrored")
DTYPE_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
# Each parameter's range, as ConceptCNNClassifier._parameter_constraints.
PARAMETER_CONSTRAINTS = {
    "image_size": [_POSITIVE], "filters": ["array-like"],
    "kernel_size": [_POSITIVE, "array-like"], "padding": [StrOptions({"valid", "same"})],
    "conv_dropout": [_FRACTION], "dense_units": ["array-like"], "dense_dropout": [_FRACTION],
    "learning_rate": [_ABOVE_ZERO], "decay": [_AT_LEAST_ZERO], "batch_size": [_POSITIVE],
    "epochs": [_POSITIVE], "validation_fraction": [Interval(Real, 0, 1, closed="neither"),
                                                   None],
    "monitor": [str], "metrics": [list, None],
    "threshold": [Interval(Real, 0, 1, closed="both"), DecisionRule],
    "warm_start": ["boolean"], "random_state": ["random_state"], "verbose": ["verbose"],
    "resample": [StrOptions(set(RESAMPLING))], "on_error": [StrOptions(set(ON_ERROR))],
    "n_jobs": [_POSITIVE, None], "image_cache_mb": [_AT_LEAST_ZERO],
    "image_store": [str, os.PathLike, ImageStore, None],
    "backbone": [StrOptions({"paper", *BACKBONES})],
    "weights": [StrOptions({"imagenet"}), str, os.PathLike, None],
    "trainable_backbone": ["boolean"], "min_count": [_POSITIVE],
    "max_labels": [_POSITIVE, None], "early_stopping_patience": [_NATURAL, None],
    "checkpoint_dir": [str, os.PathLike, None], "model": [callable, None],
    "loss": [StrOptions(set(LOSSES)), str, keras.losses.Loss, callable],
    "optimizer": [str, keras.optimizers.Optimizer],
    "callbacks": [list, keras.callbacks.Callback, None],
    "pos_weight": [_ABOVE_ZERO, StrOptions({"balanced"}), "array-like", None],
    "augmentation": [StrOptions(set(AUGMENTATIONS)), None],
    "pooling": [StrOptions(set(POOLINGS))], "freeze_epochs": [_NATURAL],
    "fine_tune_learning_rate": [_ABOVE_ZERO], "reduce_lr_patience": [_NATURAL, None],
    "test_time_augmentation": ["boolean"],
    "ema_momentum": [Interval(Real, 0, 1, closed="neither"), None],
    "n_threads": [_POSITIVE, None],
    "distribution": [StrOptions(set(DISTRIBUTIONS)), None],
    "dtype_policy": [StrOptions(set(DTYPE_POLICIES))],
}


def check_architecture(estimator, n_images=None):
    """Raise ValueError for parameters that are each valid but do not go together.
    ``n_images`` (those of ``X``, when known) caps the batch :func:`check_memory` checks."""
    _check_sizes_are_numbers(estimator)
    _check_network_params(estimator)
    _check_training_params(estimator)
    check_memory(estimator, n_images)


def check_memory(estimator, n_images=None, *, training=True, names=None):
    """Refuse, before anything is allocated, images and a network this machine cannot hold.

    One image decoded at ``image_size`` (``images._sources.check_image_size``), then a batch
    of ``batch_size`` images (``n_images`` when fewer) as the network takes it: the uint8 batch
    and its float32 input, and for the paper's network the outputs of its convolution blocks
    and hidden layers (kept for the gradients when training) and its weights (with their
    gradients and Adam's two moments when training). A lower bound, before a network is built:
    :func:`._prediction.check_network_memory` counts a built one's layers. ``estimator``: a
    ConceptCNNClassifier or a BackboneEmbedding; ``training``: False for prediction;
    ``names``: the command line's flags for the parameters, named in errors."""
    names = {name: (names or {}).get(name, name) for name in _SIZING}
    size = estimator.image_size
    check_image_size(size, name=names["image_size"])
    paper = training and getattr(estimator, "model", None) is None and estimator.backbone == "paper"
    shape = {name: getattr(estimator, name) for name in _SIZING[:2 + 3 * paper]}
    padding = estimator.padding if paper else None
    need, what, batch = _memory_needed(shape, n_images, padding)
    limit = memory_limit()
    if need <= limit:
        return
    # Name what makes it too big: each parameter that, alone back at its default,
    # brings the need within the memory; else every one above its default.
    defaults = {name: _PAPER_DEFAULTS[name] for name in shape}
    culprits = [name for name in shape if not np.array_equal(shape[name], defaults[name])
                and _within({**shape, name: defaults[name]}, n_images, padding, limit)]
    culprits = culprits or [name for name in shape if _larger(shape[name], defaults[name])]
    culprits = culprits or list(shape)
    shown = [setting(names[name], shape[name]) for name in culprits]
    doing = "training the network on" if paper else "holding the input of"
    check_allocation(need, " and ".join(shown), f"{doing} a batch of {batch} image(s) ({what})",
                     f"choose a smaller {' or '.join(names[name] for name in culprits)}")


# What sizes the memory of a batch through the network, in the order named.
_SIZING = ("batch_size", "image_size", "filters", "dense_units", "kernel_size")
_PAPER_DEFAULTS = {name: getattr(paper_constants, name.upper()) for name in _SIZING}
_PAPER_DEFAULTS.update(filters=tuple(_PAPER_DEFAULTS["filters"]),
                       dense_units=tuple(_PAPER_DEFAULTS["dense_units"]))


def _check_sizes_are_numbers(estimator):  # "array-like" lets any list through
    for name in ("filters", "dense_units", "kernel_size"):
        check_sizes(getattr(estimator, name), name, one=name == "kernel_size")


def _larger(value, default):  # a number or sizes (a tuple, a list, a NumPy array)
    return max(np.ravel(value).tolist(), default=0) > max(np.ravel(default), default=0)


def _within(shape, n_images, padding, limit):
    """False also for a ``shape`` making no network (a kernel_size per block, fewer blocks)."""
    try:
        return _memory_needed(shape, n_images, padding)[0] <= limit
    except ValueError:
        return False


def _memory_needed(shape, n_images, padding):
    """(bytes, what takes them, images in the batch) for ``shape``: image_size, batch_size and,
    for the paper's network in training (``padding`` not None), its other sizing parameters."""
    size, batch_size = int(shape["image_size"]), int(shape["batch_size"])  # not NumPy's
    batch = batch_size if n_images is None else max(1, min(batch_size, int(n_images)))
    need = batch_input_bytes(batch, size)
    if padding is None:
        return need, "the uint8 batch and its float32 input", batch
    # The paper's network is counted from its parameters before training only,
    # once check_architecture has validated them: a fitted network (loaded from
    # a file whose record may say anything) is what it is.
    outputs, weights = _paper_network_numbers(size, shape["filters"], shape["kernel_size"],
                                              padding, shape["dense_units"])
    need += 4 * (batch * outputs * 2 + weights * 4)
    return need, ("the images, the layers' outputs and the weights, with their gradients "
                  "and Adam's moments"), batch


def batch_input_bytes(batch, image_size):  # Python integers: NumPy's would overflow
    """The uint8 batch of ``batch`` images and its float32 input, in bytes."""
    return int(batch) * int(image_size) ** 2 * 3 * (1 + 4)


def _paper_network_numbers(image_size, filters, kernel_size, padding, dense_units):
    """(values its convolution blocks and hidden layers output for one image, its weights)
    of the paper's network, without the output layer (one unit per concept, unknown before
    the fit)."""
    side, channels, outputs, weights = int(image_size), 3, 0, 0
    filters, dense_units = [int(n) for n in filters], [int(n) for n in dense_units]
    for n_filters, size in zip(filters, block_kernel_sizes(kernel_size, len(filters))):
        weights += size * size * channels * n_filters + n_filters
        side = side - size + 1 if padding == "valid" else side
        outputs += side * side * n_filters  # the convolution's
        side //= 2
        outputs += side * side * n_filters  # the pooling's
        channels = n_filters
    features = side * side * channels
    for units in dense_units:
        weights += features * units + units
        outputs += 2 * units  # the dense layer's and its dropout's
        features = units
    return outputs, weights


def _check_network_params(estimator):
    weights, backbone, size = estimator.weights, estimator.backbone, estimator.image_size
    if weights not in (None, "imagenet") and (estimator.model is not None
                                             or backbone == "paper"):
        raise ValueError(
            f"weights={os.fspath(weights)!r} is a weights file for a pretrained "
            "backbone, but " + ("model= is your own network" if estimator.model is not None
                                else "backbone='paper' (the paper's network) has none")
            + " to load it into: choose a backbone (backbone='densenet121'...), or leave "
            "weights out.")
    if estimator.model is not None:
        pass  # the user's network: its shapes are checked when it is built
    elif backbone != "paper":
        if size < SMALLEST_BACKBONE_INPUT:
            raise ValueError(f"image_size={size} is too small for {backbone}: the smallest "
                             f"that works is {SMALLEST_BACKBONE_INPUT}.")
        if weights not in (None, "imagenet") and not os.path.isfile(weights):
            raise ValueError(f"weights={weights!r}: " + ("not a file (a device, a pipe or a "
                             "folder)" if os.path.exists(weights) else "no such weights file")
                             + ": give a weights file saved from the backbone.")
    else:
        _check_paper_image_size(size, len(estimator.filters), estimator.kernel_size,
                                estimator.padding)
    if estimator.freeze_epochs and backbone == "paper":
        raise ValueError("freeze_epochs freezes a pretrained backbone: set backbone= "
                         "(the paper's network has none).")


def _check_paper_image_size(size, n_blocks, kernel_size, padding):
    smallest = smallest_image_size(n_blocks, kernel_size, padding)
    if size < smallest:
        raise ValueError(
            f"image_size={size} is too small for {n_blocks} blocks of "
            f"kernel_size={kernel_size} '{padding}' convolution and 2x2 pooling: the "
            f"smallest image_size that works is {smallest}.")


def _check_training_params(estimator):
    cores = usable_cores()  # a container's allowance, not the host's cores
    if (estimator.n_threads or 0) > 16 * cores:  # 10**6 ran out of memory
        raise ValueError(f"n_threads={estimator.n_threads}: TensorFlow starts that many threads "
                         f"at once, more than 16 for each of the {cores} core(s) this process "
                         "may use.")
    if estimator.checkpoint_dir is not None:
        check_checkpoint_folder(estimator.checkpoint_dir)  # before any image is read
        if estimator.freeze_epochs:
            raise ValueError("checkpoint_dir cannot resume a two-stage fine-tuning yet: use "
                             "freeze_epochs=0 with checkpoint_dir, or no checkpoint_dir.")
    if estimator.reduce_lr_patience is not None and estimator.decay:
        raise ValueError("reduce_lr_patience changes the learning rate, which decay "
                         f"(={estimator.decay}) already schedules: set decay=0.")
    if estimator.pos_weight is not None and estimator.loss != "binary_crossentropy":
        raise ValueError(f"pos_weight weighs binary cross-entropy; it cannot be combined "
                         f"with loss={estimator.loss!r}.")
    names = [_metric_name(metric, i) for i, metric in enumerate(estimator.metrics or ())]
    if estimator.monitor.removeprefix("val_") not in {"loss", *names}:
        raise ValueError(
            f"monitor={estimator.monitor!r} is not logged: use 'loss', 'val_loss' or "
            f"[val_]<name> for a name in metrics={estimator.metrics!r}.")


def _metric_name(metric, index):
    """The name ``metric`` (``metrics[index]``) logs, refusing, before training, one the
    history cannot keep: not a name nor a Keras Metric, or a Metric of more than one value
    an epoch (an F1Score's per-concept values; the history keeps a number a metric), given
    as an object or by a name Keras makes one of ('f1_score')."""
    if isinstance(metric, str):
        try:
            made = keras.metrics.get(metric)
        except Exception:  # noqa: BLE001 (not a name Keras knows: compile says so, untrained)
            return metric
        name = metric
    elif isinstance(metric, keras.metrics.Metric):
        made, name = metric, metric.name
    else:
        raise ValueError(f"metrics[{index}] is {metric!r:.80}: give a metric's name or a "
                         "keras.metrics.Metric.")
    try:  # load_model's bound on what a model file's objects make: beyond, it is refused
        keras_objects_in_bounds(keras.saving.serialize_keras_object(made), name, make=False)
    except ModelFileError:
        raise ValueError(f"metrics[{index}] ({type(made).__name__} {name!r}) makes more than "
                         f"{in_bytes(LARGEST_OBJECT_STATE, False)} of state (thresholds x "
                         "labels): a model saved with it could not be loaded; give fewer "
                         "thresholds.") from None
    except Exception:  # noqa: BLE001, S110 (not made here: Keras will say why when it runs)
        pass
    try:  # a copy, on two images of two concepts: the user's object gets no state
        probe = type(made).from_config(made.get_config())
        probe.update_state(np.zeros((2, 2), "float32"), np.full((2, 2), 0.5, "float32"))
        n_values = int(np.size(probe.result()))
    except Exception:  # noqa: BLE001 (Keras will say why when it runs; a name's function)
        return name
    if n_values != 1:
        raise ValueError(f"metrics[{index}] ({type(made).__name__} {name!r}) logs "
                         f"{n_values} values an epoch (one a concept or a threshold here); "
                         "the history keeps one number a metric: give a metric of one value "
                         "(an average, one threshold).")
    return name


def build_network(estimator, seed):
    """The estimator's network for its ``classes_``, compiled, in its strategy's scope.

    A grid search builds many models in one process: Keras' global state (graph, layer names)
    is dropped first and garbage collected, about 0.3 s a fit; without it each fit leaves
    ~2.5 MB more behind. The user's settings this wipes are put back when the fit ends (the
    estimator's ``process_state_kept``). The strategy is kept on the estimator as ``_strategy``
    for the rest of the fit (:func:`strategy_scope`).
    """
    keras.backend.clear_session()
    apply_thread_limit(estimator.n_threads)
    estimator._strategy = strategy_for(estimator.distribution)
    with seeded(seed), dtype_policy(estimator.dtype_policy), estimator._strategy.scope():
        network = _uncompiled_network(estimator, len(estimator.classes_), seed)
        trainable = estimator.trainable_backbone and not estimator.freeze_epochs
        compile_network(estimator, network, estimator.learning_rate,
                        backbone_trainable=trainable)
    return network


def strategy_scope(estimator):
    """The scope of the ``tf.distribute`` strategy the network was built in, if any."""
    strategy = getattr(estimator, "_strategy", None)
    return strategy.scope() if strategy is not None else nullcontext()


def _uncompiled_network(estimator, n_concepts, seed, pretrained=True):
    image_size = int(estimator.image_size)  # Python ints: Keras' layers refuse NumPy's
    if estimator.model is not None:  # a user's network: as given
        return _users_network(estimator.model, n_concepts, image_size)
    head = dict(image_size=image_size,
                dense_units=check_sizes(estimator.dense_units, "dense_units"),
                dense_dropout=estimator.dense_dropout, augmentation=estimator.augmentation,
                seed=seed)
    if estimator.backbone != "paper":
        return build_backbone_network(
            n_concepts, estimator.backbone, pooling=estimator.pooling,  # counting: no weights
            weights=estimator.weights if pretrained else None,
            trainable_backbone=estimator.trainable_backbone and not estimator.freeze_epochs,
            **head)
    return build_concept_cnn(
        n_concepts, filters=check_sizes(estimator.filters, "filters"),
        kernel_size=check_sizes(estimator.kernel_size, "kernel_size", one=True),
        padding=estimator.padding, conv_dropout=estimator.conv_dropout, **head)


def _users_network(model, n_concepts, image_size):
    subclassed = (f"model={model!r:.60} gives a subclassed keras.Model, without a layer "
                  "graph (embed, save and export read it): build it from keras.Input with "
                  "Keras' functional API, or as a keras.Sequential.")
    if isinstance(model, keras.Model) and not hasattr(model, "input_shape"):
        raise ValueError(subclassed)  # before Keras' copy fails on it, in 12 lines
    network = (keras.models.clone_model(model) if isinstance(model, keras.Model)  # each fit
               else model(n_concepts=n_concepts, image_size=image_size))  # starts afresh
    if not isinstance(network, keras.Model):
        raise TypeError(f"model= must be a keras.Model or return one; got {type(network)}.")
    if not hasattr(network, "input_shape"):
        raise ValueError(subclassed)
    expected = (None, image_size, image_size, 3)
    taken, given = tuple(network.input_shape), tuple(network.output_shape)
    if taken != expected or given != (None, n_concepts):
        raise ValueError(f"model= must take {expected} images and give {n_concepts} "
                         f"probabilities (one per concept); it takes {taken} and gives {given}.")
    return network


def compile_network(estimator, network, learning_rate, backbone_trainable=None):
    """Compile with the loss and optimizer; freeze or free the backbone first."""
    if backbone_trainable is not None and estimator.backbone != "paper" and estimator.model is None:
        network.get_layer(estimator.backbone).trainable = backbone_trainable
    # (getattr: an estimator pickled before ema_momentum existed has none)
    network.compile(optimizer=_optimizer(estimator.optimizer, learning_rate, estimator.decay,
                                         getattr(estimator, "ema_momentum", None)),
                    loss=make_loss(estimator.loss, _pos_weight(estimator)),
                    metrics=list(estimator.metrics or ()))


def _optimizer(optimizer, learning_rate, decay, ema_momentum=None):
    """A new optimizer: a copy of the user's object, or one by name at ``learning_rate``
    (``decay``'s schedule); with Keras' weight averaging for an ``ema_momentum``."""
    if isinstance(optimizer, keras.optimizers.Optimizer):
        config = {**optimizer.get_config(), **ema_settings(ema_momentum)}
        return optimizer.__class__.from_config(config)
    config = {"learning_rate": learning_rate_schedule(learning_rate, decay),
              **ema_settings(ema_momentum)}
    return keras.optimizers.get({"class_name": optimizer, "config": config})


def _pos_weight(estimator):
    pos_weight = estimator.pos_weight
    if pos_weight is None:
        return None
    if isinstance(pos_weight, str):  # "balanced"
        targets = estimator.targets_
        return balanced_pos_weight(targets.column_counts_, targets.n_images_)
    return check_pos_weight(pos_weight, len(estimator.classes_))


# ------------------------------------------------ where and how it computes


def apply_thread_limit(n_threads):
    """Limit TensorFlow to ``n_threads`` threads in this process (None: leave it); a limit
    TensorFlow's started runtime cannot take (it fixes its pools) is warned of."""
    if n_threads is None:
        return
    import tensorflow as tf

    threading = tf.config.threading
    if (threading.get_intra_op_parallelism_threads() == n_threads
            and threading.get_inter_op_parallelism_threads() == n_threads):
        return
    try:
        threading.set_intra_op_parallelism_threads(n_threads)
        threading.set_inter_op_parallelism_threads(n_threads)
    except RuntimeError:
        warnings.warn(f"n_threads={n_threads} cannot be applied: TensorFlow already started "
                      "in this process with other thread settings. Set n_threads before "
                      "TensorFlow's first use in the process (a fresh worker applies it at "
                      "its first fit).", RuntimeWarning, stacklevel=3)


def strategy_for(distribution):
    """The ``tf.distribute`` strategy of a ``distribution`` parameter."""
    import tensorflow as tf

    if distribution is None:  # the default: one device, no-op scope
        return tf.distribute.get_strategy()
    return (tf.distribute.MirroredStrategy() if distribution == "mirrored"
            else tf.distribute.MultiWorkerMirroredStrategy())


@contextmanager
def dtype_policy(name):
    """Build layers under Keras' ``name`` dtype policy; restore the global one after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
