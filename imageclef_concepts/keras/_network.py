"""The networks, in plain Keras: the paper's CNN and pretrained backbones.

The MacUni-CSIRO ImageCLEF 2019 network: four blocks of Conv2D (5x5, stride
1, ReLU) with 16, 32, 64 and 128 filters, each followed by 2x2 max pooling
and dropout 0.25; flatten; fully connected hidden layers; one sigmoid unit
per concept. Binary cross-entropy, Adam with the legacy Keras time-based
learning-rate decay. The same head also sits on Keras applications
backbones (DenseNet-121, as the best 2019 system used; ResNet-50;
EfficientNet-B0), each with its own input preprocessing.
"""

import keras

from . import BACKBONES

PAPER_FILTERS = (16, 32, 64, 128)


def smallest_image_size(n_blocks, kernel_size, padding="valid"):
    """The smallest input side that leaves at least one pixel after every block.

    Each block is a convolution (a ``valid`` one shrinks the side by
    ``kernel_size - 1``, a ``same`` one keeps it) and a 2x2 pooling (halves,
    rounding down). Worked backwards from one pixel.
    """
    shrink = kernel_size - 1 if padding == "valid" else 0
    side = 1
    for _ in range(n_blocks):
        side = 2 * side + shrink
    return side


def build_concept_cnn(
    n_concepts,
    *,
    image_size=400,
    filters=PAPER_FILTERS,
    kernel_size=5,
    padding="valid",
    conv_dropout=0.25,
    dense_units=(128, 64),
    dense_dropout=0.5,
    learning_rate=1e-4,
    decay=1e-6,
    metrics=(),
):
    """Build and compile the paper's CNN.

    Parameters
    ----------
    n_concepts : int
        Output units, one sigmoid per concept.
    image_size : int, default=400
        Input side; inputs are ``image_size x image_size x 3`` pixels in
        0-255, scaled by 1/255 inside the model.
    filters : sequence of int, default=(16, 32, 64, 128)
        Filters of each convolution block.
    kernel_size : int, default=5
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
    learning_rate : float, default=1e-4
    decay : float, default=1e-6
        Legacy Keras time-based decay per step:
        ``learning_rate / (1 + decay * step)``.
    metrics : sequence, default=()
        Extra Keras metrics to compile with (for ``monitor``).

    Returns
    -------
    keras.Model
        Compiled with binary cross-entropy and Adam.
    """
    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="scale_to_unit")(inputs)
    for block, n_filters in enumerate(filters, start=1):
        x = keras.layers.Conv2D(
            n_filters, kernel_size, strides=1, padding=padding, activation="relu",
            name=f"block{block}_conv",
        )(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        x = keras.layers.Dropout(conv_dropout, name=f"block{block}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return _with_concept_head(inputs, x, n_concepts, "concept_cnn", dense_units=dense_units,
                              dense_dropout=dense_dropout, learning_rate=learning_rate,
                              decay=decay, metrics=metrics)


def _with_concept_head(inputs, features, n_concepts, name, *, dense_units, dense_dropout,
                       learning_rate, decay, metrics):
    """Hidden layers and one sigmoid per concept on ``features``; compiled."""
    x = features
    for layer, units in enumerate(dense_units, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"hidden{layer}")(x)
        x = keras.layers.Dropout(dense_dropout, name=f"hidden{layer}_dropout")(x)
    outputs = keras.layers.Dense(n_concepts, activation="sigmoid", name="concepts")(x)
    model = keras.Model(inputs, outputs, name=name)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=_learning_rate(learning_rate, decay)),
        loss="binary_crossentropy",
        metrics=list(metrics),
    )
    return model


@keras.saving.register_keras_serializable(package="imageclef_concepts")
class ReverseChannels(keras.layers.Layer):
    """RGB to BGR, as the Caffe-trained ImageNet weights of ResNet-50 expect."""

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=-1)


# Each backbone with its own input preprocessing, from 0-255 RGB pixels.
# DenseNet: "torch" mode (scale to 0-1, ImageNet mean and std); ResNet-50:
# "caffe" mode (BGR, ImageNet mean subtracted); EfficientNet scales inside.
_IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
SMALLEST_BACKBONE_INPUT = 32


def backbone_preprocessing(backbone, x):
    """Apply ``backbone``'s ImageNet input preprocessing to 0-255 RGB ``x`` (Keras layers)."""
    if backbone == "densenet121":
        x = keras.layers.Rescaling(1.0 / 255, name="scale_to_unit")(x)
        return keras.layers.Normalization(mean=_IMAGENET_MEAN_RGB,
                                          variance=[s**2 for s in _IMAGENET_STD_RGB],
                                          name="imagenet_standardise")(x)
    if backbone == "resnet50":
        x = ReverseChannels(name="rgb_to_bgr")(x)
        return keras.layers.Normalization(mean=_CAFFE_MEAN_BGR, variance=[1.0, 1.0, 1.0],
                                          name="imagenet_mean_subtracted")(x)
    return x  # EfficientNet rescales and normalises inside


def pooled_backbone(backbone, image_size, weights):
    """The Keras applications network, without its top, global average pooled."""
    constructor = getattr(keras.applications, BACKBONES[backbone])
    base = constructor(include_top=False, pooling="avg",
                       weights=weights if weights in (None, "imagenet") else None,
                       input_shape=(image_size, image_size, 3), name=backbone)
    if weights not in (None, "imagenet"):
        base.load_weights(weights)
    return base


def build_backbone_network(
    n_concepts,
    backbone,
    *,
    image_size=224,
    weights="imagenet",
    trainable_backbone=False,
    dense_units=(128, 64),
    dense_dropout=0.5,
    learning_rate=1e-4,
    decay=1e-6,
    metrics=(),
):
    """A Keras applications backbone with the concept head, compiled.

    Parameters
    ----------
    n_concepts : int
    backbone : {"densenet121", "resnet50", "efficientnetb0"}
        DenseNet-121 is what the best 2019 system (AUEB NLP Group) used.
    image_size : int, default=224
    weights : None, "imagenet" or path, default="imagenet"
        ImageNet weights are downloaded by Keras on first use; a path loads
        a weights file saved from the same backbone (``save_weights``).
    trainable_backbone : bool, default=False
        False freezes the backbone (its batch normalisation stays in
        inference mode); True fine-tunes it.
    dense_units, dense_dropout, learning_rate, decay, metrics
        As for :func:`build_concept_cnn`.

    Returns
    -------
    keras.Model
    """
    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = backbone_preprocessing(backbone, inputs)
    base = pooled_backbone(backbone, image_size, weights)
    base.trainable = trainable_backbone
    features = base(x, training=None if trainable_backbone else False)
    return _with_concept_head(inputs, features, n_concepts, f"concept_{backbone}",
                              dense_units=dense_units, dense_dropout=dense_dropout,
                              learning_rate=learning_rate, decay=decay, metrics=metrics)


def _learning_rate(learning_rate, decay):
    # Keras 3 optimisers have no ``decay``; this schedule is the legacy one.
    if not decay:
        return learning_rate
    return keras.optimizers.schedules.InverseTimeDecay(
        learning_rate, decay_steps=1, decay_rate=decay
    )
