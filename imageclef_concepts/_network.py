"""The MacUni-CSIRO ImageCLEF 2019 network, in plain Keras.

Four blocks of Conv2D (5x5, stride 1, ReLU) with 16, 32, 64 and 128 filters,
each followed by 2x2 max pooling and dropout 0.25; flatten; fully connected
hidden layers; one sigmoid unit per concept. Binary cross-entropy, Adam with
the legacy Keras time-based learning-rate decay.
"""

import keras

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
    for layer, units in enumerate(dense_units, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"hidden{layer}")(x)
        x = keras.layers.Dropout(dense_dropout, name=f"hidden{layer}_dropout")(x)
    outputs = keras.layers.Dense(n_concepts, activation="sigmoid", name="concepts")(x)
    model = keras.Model(inputs, outputs, name="concept_cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=_learning_rate(learning_rate, decay)),
        loss="binary_crossentropy",
        metrics=list(metrics),
    )
    return model


def _learning_rate(learning_rate, decay):
    # Keras 3 optimisers have no ``decay``; this schedule is the legacy one.
    if not decay:
        return learning_rate
    return keras.optimizers.schedules.InverseTimeDecay(
        learning_rate, decay_steps=1, decay_rate=decay
    )
