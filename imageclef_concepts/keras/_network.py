"""The networks, in plain Keras: the paper's CNN, pretrained backbones, and their parts.

The MacUni-CSIRO ImageCLEF 2019 network: four blocks of Conv2D (16, 32, 64 and 128 filters,
ReLU, stride 1), each followed by 2x2 max pooling and dropout 0.25; flatten; fully connected
hidden layers; one sigmoid unit per concept. The same head also sits on any Keras applications
backbone (DenseNet, ResNet, EfficientNet(V2), ConvNeXt, ...), each with its own input
preprocessing and average, max or generalised-mean (GeM) pooling. Optional augmentation layers
(flips, small rotations, zoom, contrast) come first; Keras runs them in training only. Networks
are returned uncompiled: the estimator compiles them with its loss and optimizer.
"""

from __future__ import annotations

import json
import math
import os
from numbers import Integral
from typing import TYPE_CHECKING

import keras
import numpy as np

from ..files._sizes import in_bytes
from ..models import _paper as paper
from ..models._card import ModelFileError
from ..models._zip import check_weights_file, load_weights_file
from . import BACKBONES

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Sequence

    from .._typing import Augmentation, Padding, PathLike, Pooling

SMALLEST_BACKBONE_INPUT = 32
# How a backbone's feature maps become one vector (GeM: generalised mean).
POOLINGS = ("avg", "max", "gem")


def block_kernel_sizes(kernel_size, n_blocks):
    """One kernel side per block: an int for all of them, or one per block."""
    if isinstance(kernel_size, Integral):
        return (int(kernel_size),) * n_blocks
    sizes = tuple(int(k) for k in kernel_size)
    if len(sizes) != n_blocks:
        raise ValueError(f"kernel_size has {len(sizes)} sizes for {n_blocks} blocks.")
    return sizes


def smallest_image_size(n_blocks, kernel_size, padding="valid"):
    """The smallest input side that leaves at least one pixel after every block.

    Each block is a convolution (a ``valid`` one shrinks the side by its kernel side minus
    one, a ``same`` one keeps it) and a 2x2 pooling (halves, rounding down). Worked
    backwards from one pixel.
    """
    side = 1
    for size in reversed(block_kernel_sizes(kernel_size, n_blocks)):
        side = 2 * side + (size - 1 if padding == "valid" else 0)
    return side


def augmentation_layers(augmentation, seed=None):
    """Random image transformations for training, as Keras preprocessing layers.

    ``"light"``: horizontal flips and rotations up to 5% of a turn (18 degrees).
    ``"standard"``: also zoom by up to 10% and contrast by up to 10%. Keras applies them
    only when training; prediction sees the images as they are.
    """
    if augmentation is None:
        return []
    layers = [keras.layers.RandomFlip("horizontal", seed=seed, name="augment_flip"),
              keras.layers.RandomRotation(0.05, seed=seed, name="augment_rotation")]
    if augmentation == "standard":
        layers += [keras.layers.RandomZoom(0.1, seed=seed, name="augment_zoom"),
                   keras.layers.RandomContrast(0.1, seed=seed, name="augment_contrast")]
    return layers


def _input_with_augmentation(image_size, augmentation, seed):
    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = inputs
    for layer in augmentation_layers(augmentation, seed):
        x = layer(x)
    return inputs, x


def build_concept_cnn(
    n_concepts: int,
    *,
    image_size: int = paper.IMAGE_SIZE,
    filters: Sequence[int] = paper.FILTERS,
    kernel_size: int | Sequence[int] = paper.KERNEL_SIZE,
    padding: Padding = paper.PADDING,
    conv_dropout: float = paper.CONV_DROPOUT,
    dense_units: Sequence[int] = paper.DENSE_UNITS,
    dense_dropout: float = paper.DENSE_DROPOUT,
    augmentation: Augmentation | None = None,
    seed: int | None = None,
) -> keras.Model:
    """Build the paper's CNN (uncompiled).

    :class:`~imageclef_concepts.ConceptCNNClassifier` passes every argument;
    the defaults are its own (:mod:`imageclef_concepts.models._paper`), for direct
    callers.

    Parameters
    ----------
    n_concepts : int
        Output units, one sigmoid per concept.
    image_size : int, default=400
        Input side; inputs are ``image_size x image_size x 3`` pixels in
        0-255, scaled by 1/255 inside the model.
    filters : sequence of int, default=(16, 32, 64, 128)
        Filters of each convolution block.
    kernel_size : int or sequence of int, default=5
        The convolutions' kernel side, for every block or one per block. The
        paper states 5 x 5 for the first convolution only.
    padding : {"valid", "same"}, default="valid"
        Convolution padding; the paper does not say, and ``"valid"`` is
        Keras' default.
    conv_dropout : float, default=0.25
        Dropout after each block's pooling.
    dense_units : sequence of int, default=(128, 64)
        Hidden fully connected layers (ReLU). The paper does not give their
        sizes; this default is ours.
    dense_dropout : float, default=0.5
        Dropout after each hidden fully connected layer.
    augmentation : {None, "light", "standard"}, default=None
        Training-time augmentation (:func:`augmentation_layers`).
    seed : int, default=None
        Seeds the augmentation.

    Returns
    -------
    keras.Model
    """
    inputs, x = _input_with_augmentation(image_size, augmentation, seed)
    seeds = _layer_seeds(seed)
    x = keras.layers.Rescaling(1.0 / 255, name="scale_to_unit")(x)
    sizes = block_kernel_sizes(kernel_size, len(filters))
    for block, (n_filters, size) in enumerate(zip(filters, sizes), start=1):
        x = keras.layers.Conv2D(
            n_filters, size, strides=1, padding=padding, activation="relu",
            kernel_initializer=keras.initializers.GlorotUniform(seed=next(seeds)),
            name=f"block{block}_conv")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        x = keras.layers.Dropout(conv_dropout, seed=next(seeds), name=f"block{block}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return _with_concept_head(inputs, x, n_concepts, "concept_cnn", dense_units=dense_units,
                              dense_dropout=dense_dropout, seeds=seeds)


def _layer_seeds(seed):
    """One seed per random layer, from ``seed``: None leaves Keras to draw them.

    Keras draws a layer's default seed from Python's global ``random``, which other threads
    of the process (a cluster worker's) may draw from at the same time; explicit seeds make
    a seeded network the same in any process.
    """
    number = 0 if seed is None else int(seed) * 1000
    while True:
        yield None if seed is None else number
        number += 1


def _with_concept_head(inputs, features, n_concepts, name, *, dense_units, dense_dropout,
                       seeds):
    """Hidden layers and one sigmoid per concept on ``features``."""
    x = features
    for layer, units in enumerate(dense_units, start=1):
        x = keras.layers.Dense(
            units, activation="relu", name=f"hidden{layer}",
            kernel_initializer=keras.initializers.GlorotUniform(seed=next(seeds)))(x)
        x = keras.layers.Dropout(dense_dropout, seed=next(seeds), name=f"hidden{layer}_dropout")(x)
    # float32 outputs whatever the layers' dtype policy: sigmoid probabilities stay exact.
    outputs = keras.layers.Dense(
        n_concepts, activation="sigmoid", name="concepts", dtype="float32",
        kernel_initializer=keras.initializers.GlorotUniform(seed=next(seeds)))(x)
    return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="imageclef_concepts")
class ReverseChannels(keras.layers.Layer):
    """RGB to BGR, as the Caffe-trained ImageNet weights (ResNet, VGG) expect."""

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=-1)


@keras.saving.register_keras_serializable(package="imageclef_concepts")
class GeneralizedMeanPooling(keras.layers.Layer):
    """GeM pooling: ``(mean(x ** p)) ** (1 / p)`` over the spatial axes, ``p`` learned.

    ``p = 1`` is average pooling and a large ``p`` approaches max pooling;
    several ImageCLEF winners (AUEB NLP Group) pooled their backbones so.

    Parameters
    ----------
    p : float, default=3.0
        The initial exponent.
    epsilon : float, default=1e-6
        Activations are clipped to at least this before the power.
    """

    def __init__(self, p=3.0, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.initial_p = p
        self.epsilon = epsilon

    def build(self, input_shape):
        self.p = self.add_weight(name="p", shape=(), initializer=keras.initializers.Constant(
            self.initial_p), trainable=True)

    def call(self, inputs):
        clipped = keras.ops.maximum(inputs, self.epsilon)
        pooled = keras.ops.mean(keras.ops.power(clipped, self.p), axis=(1, 2))
        return keras.ops.power(pooled, 1.0 / self.p)

    def get_config(self):
        return {**super().get_config(), "p": self.initial_p, "epsilon": self.epsilon}


# Input preprocessing of each backbone family, from 0-255 RGB pixels, as its
# ImageNet weights expect: "torch" (DenseNet: scale to 0-1, ImageNet mean and
# std), "caffe" (ResNet, VGG: BGR, ImageNet mean subtracted), "tf" (scale to
# -1..1), "inside" (EfficientNet, EfficientNetV2, ConvNeXt, MobileNetV3 do it
# themselves).
_IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def preprocessing_mode(backbone):
    """The input preprocessing of a backbone family (see above)."""
    name = BACKBONES[backbone]
    if name.startswith("DenseNet"):
        return "torch"
    if name.startswith(("EfficientNet", "ConvNeXt", "MobileNetV3")):
        return "inside"
    if name.startswith(("ResNet", "VGG")) and not name.endswith("V2"):
        return "caffe"
    return "tf"


def backbone_preprocessing(backbone, x):
    """Apply ``backbone``'s ImageNet input preprocessing to 0-255 RGB ``x`` (Keras layers)."""
    mode = preprocessing_mode(backbone)
    if mode == "torch":
        x = keras.layers.Rescaling(1.0 / 255, name="scale_to_unit")(x)
        return keras.layers.Normalization(mean=_IMAGENET_MEAN_RGB,
                                          variance=[s**2 for s in _IMAGENET_STD_RGB],
                                          name="imagenet_standardise")(x)
    if mode == "caffe":
        x = ReverseChannels(name="rgb_to_bgr")(x)
        return keras.layers.Normalization(mean=_CAFFE_MEAN_BGR, variance=[1.0, 1.0, 1.0],
                                          name="imagenet_mean_subtracted")(x)
    if mode == "tf":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_to_signed")(x)
    return x


def pooled_backbone(backbone, image_size, weights, pooling="avg"):
    """The Keras applications network, without its top, pooled to one vector per image.

    Returned as a model named ``backbone`` (the applications' own names
    cannot be changed: EfficientNetV2 reads its blocks from its name).
    """
    if weights not in (None, "imagenet"):  # a pipe, a device or a file that inflates is
        check_weights_file(weights)  # refused, never opened and waited on nor inflated
    constructor = getattr(keras.applications, BACKBONES[backbone])
    try:
        base = constructor(include_top=False, pooling=None if pooling == "gem" else pooling,
                           weights=weights if weights in (None, "imagenet") else None,
                           input_shape=(image_size, image_size, 3))
    except Exception as error:  # Keras' get_file raises a bare Exception when offline
        if weights != "imagenet" or "URL fetch failure" not in str(error):
            raise
        raise ConnectionError(offline_message(backbone, error)) from None
    if weights not in (None, "imagenet"):
        load_weights_file(base, weights)  # what Keras cannot read in it named by the file
    pooled = (GeneralizedMeanPooling(name="gem_pooling")(base.output) if pooling == "gem"
              else base.output)
    return keras.Model(base.input, pooled, name=backbone)


def offline_message(backbone, error):
    """What to do when a backbone's ImageNet weights cannot be downloaded: one line."""
    from keras.src.backend.config import keras_home

    return (f"the ImageNet weights of {backbone} could not be downloaded ({error}): they need "
            "internet access once, after which Keras keeps them in "
            f"{os.path.join(keras_home(), 'models')}; offline, copy them there, or pass a "
            "weights file saved from the same backbone (weights=PATH, --weights FILE; "
            "BackboneEmbedding(weights=PATH) for a k-NN) or weights=None for random ones.")


def build_backbone_network(
    n_concepts: int,
    backbone: str,
    *,
    image_size: int = 224,
    weights: PathLike | None = paper.WEIGHTS,
    trainable_backbone: bool = False,
    pooling: Pooling = paper.POOLING,
    dense_units: Sequence[int] = paper.DENSE_UNITS,
    dense_dropout: float = paper.DENSE_DROPOUT,
    augmentation: Augmentation | None = None,
    seed: int | None = None,
) -> keras.Model:
    """A Keras applications backbone with the concept head (uncompiled).

    :class:`~imageclef_concepts.ConceptCNNClassifier` passes every argument;
    the defaults are its own (:mod:`imageclef_concepts.models._paper`) but for
    ``image_size``: 224, the input the ImageNet weights were trained at.

    Parameters
    ----------
    n_concepts : int
    backbone : str
        A key of :data:`~imageclef_concepts.keras.BACKBONES` (any Keras
        applications network, lower-cased: ``"densenet121"``,
        ``"efficientnetv2b0"``, ``"convnexttiny"``...). DenseNet-121 is what
        the best 2019 system (AUEB NLP Group) used.
    image_size : int, default=224
    weights : None, "imagenet" or path, default="imagenet"
        ImageNet weights are downloaded by Keras on first use; a path loads
        a weights file saved from the same backbone (``save_weights``).
    trainable_backbone : bool, default=False
        False freezes the backbone; True fine-tunes it. Its batch
        normalisation runs in inference mode unless it is trainable from
        the start (Keras' advice for fine-tuning in stages).
    pooling : {"avg", "max", "gem"}, default="avg"
        How the feature maps become one vector (:data:`POOLINGS`; ``"gem"``:
        :class:`GeneralizedMeanPooling`).
    dense_units, dense_dropout, augmentation, seed
        As for :func:`build_concept_cnn`.

    Returns
    -------
    keras.Model
        The backbone is the layer named ``backbone``.
    """
    inputs, x = _input_with_augmentation(image_size, augmentation, seed)
    x = backbone_preprocessing(backbone, x)
    base = pooled_backbone(backbone, image_size, weights, pooling)
    base.trainable = trainable_backbone
    features = base(x, training=None if trainable_backbone else False)
    return _with_concept_head(inputs, features, n_concepts, f"concept_{backbone}",
                              dense_units=dense_units, dense_dropout=dense_dropout,
                              seeds=_layer_seeds(seed))


def learning_rate_schedule(learning_rate, decay):
    """Adam's learning rate with the legacy Keras time-based decay.

    Keras 3 optimisers have no ``decay``; the legacy schedule is
    ``InverseTimeDecay(learning_rate, decay_steps=1, decay_rate=decay)``.
    """
    if not decay:
        return learning_rate
    return keras.optimizers.schedules.InverseTimeDecay(
        learning_rate, decay_steps=1, decay_rate=decay
    )


# What the Keras objects a model file makes beside its network (its compile config's, a record's
# or pickle's losses, optimizers and metrics) may hold as they are made: a metric's state is
# not in the file (an AUC of 200 thresholds for 1,000 labels holds 3.2 MB).
LARGEST_OBJECT_STATE = 2**26  # 64 MiB


def keras_objects_in_bounds(config, shown, make=True):
    """The Keras objects (in lists and dicts) of a file's ``config``, made once a first making
    in a TensorFlow graph (variables get no memory there) finds their variables within
    ``LARGEST_OBJECT_STATE``: a metric makes its state as it is made (``MeanIoU(num_classes=
    2**16)``: 32 GiB). ``make=False`` only checks. Raises ModelFileError, or what Keras does."""
    import tensorflow as tf

    # A metric's thresholds (an AUC's) are a Python list as it is made: counted unmade first,
    # four float32 counts each (a multi-label one's variables are made only in training).
    held = max((16 * count * labels for count, labels in _thresholds_in(config)), default=0)
    if held <= LARGEST_OBJECT_STATE:
        with tf.Graph().as_default():
            made = keras.saving.deserialize_keras_object(config, safe_mode=True)
            held = sum(math.prod(variable.shape) * np.dtype(variable.dtype).itemsize
                       for item in keras.tree.flatten(made)
                       for variable in getattr(item, "variables", None) or ())
    if held > LARGEST_OBJECT_STATE:
        raise ModelFileError(f"{shown} makes Keras objects whose variables take "
                             f"{in_bytes(held, False)} as they are made, more than "
                             f"{in_bytes(LARGEST_OBJECT_STATE, False)}: not a file as the "
                             "library writes it; nothing was made.")
    return keras.saving.deserialize_keras_object(config, safe_mode=True) if make else None


def _thresholds_in(config):
    """``(num_thresholds, num_labels or 1)`` of each metric config (an AUC's...) in ``config``."""
    if isinstance(config, (list, dict)):
        count, labels = (config.get("num_thresholds"), config.get("num_labels")) if isinstance(
            config, dict) else (None, None)
        if isinstance(count, int) and count > 0:
            yield count, labels if isinstance(labels, int) and labels > 1 else 1
        for value in config.values() if isinstance(config, dict) else config:
            yield from _thresholds_in(value)


def check_stored_variables(config, stored, shown):
    """Refuse a ``.keras`` file whose ``config.json`` (``config``, bytes) declares more than its
    weights members (``stored`` bytes, per its zip directory) hold: Keras allocates every
    variable (a 2**24-unit ``Dense``: gigabytes), and computes what layers compute as they are
    built (a scalar ``Normalization`` mean broadcast to a 2**26-value input: 512 MiB), before
    reading a weight. Built in Keras' stateless scope (no variable gets a value) in a TensorFlow
    graph (nothing is run; its outputs are counted). Raises ModelFileError."""
    try:  # Keras' own modules: a Keras that moved them loads without this check
        import tensorflow as tf
        from keras.src.backend.common import global_state, stateless_scope
    except ImportError:  # pragma: no cover
        return
    try:
        config = dict(json.loads(config))
    except (ValueError, TypeError, RecursionError):  # not a JSON object: Keras says so
        return
    compiled = config.pop("compile_config", None)  # Keras compiles the network it loads
    pending = list(global_state.get_global_attribute("uninitialized_variables") or [])
    graph = tf.Graph()
    try:  # the variables made here are given no value, nor left for Keras to give one
        with graph.as_default(), stateless_scope.StatelessScope(initialize_variables=False):
            network = keras.saving.deserialize_keras_object(config, safe_mode=True)
            declared = sum(math.prod(variable.shape) * np.dtype(variable.dtype).itemsize
                           for variable in network.weights)
        declared += sum(output.shape.num_elements() * output.dtype.size  # computed
                        for operation in graph.get_operations() for output in operation.outputs
                        if output.shape.is_fully_defined() and output.dtype.is_numpy_compatible)
        if compiled:
            keras_objects_in_bounds(compiled, f"{shown}: its config.json's compile_config",
                                    make=False)
    except ModelFileError:
        raise
    except Exception as error:  # a damaged config makes Keras raise many kinds
        if "stateless scope" in str(error):
            return
        raise ModelFileError(f"{shown}: the network cannot be loaded ({type(error).__name__}: "
                             f"{error})") from None
    finally:
        global_state.set_global_attribute("uninitialized_variables", pending)
    if declared > stored:
        raise ModelFileError(
            f"{shown}: its config.json declares variables of {in_bytes(declared, False)}, its "
            f"weights hold {in_bytes(stored, False)}: not a .keras file as Keras writes it; "
            "nothing was built.")
