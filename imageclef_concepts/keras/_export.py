"""A fitted network exported for serving: what ``predict_proba`` computes, in one graph.

The serving model takes raw uint8 images and returns one probability per
concept: the cast to float, the network (its scaling and a backbone's
normalisation inside) and test-time augmentation (the mean with each
image's mirror) are layers of one Keras model, which Keras exports as a
SavedModel or, through ``tf2onnx``, as an ONNX file that carries the
concepts and the decision rule as metadata (:mod:`..models._onnx`).
"""

import os
import warnings

import keras
from sklearn.utils.validation import check_is_fitted

from ..files._atomic import checked_file_name, replaced_atomically
from ..models._onnx import INPUT_NAME, OUTPUT_NAME, check_onnx_installed, label_onnx_file
from ..models._persistence import jsonable


def export_network(estimator, path, format):
    """``estimator.export(path, format)``: see :meth:`ModelFileMixin.export`."""
    check_is_fitted(estimator, "model_")
    path = checked_file_name(path, "export path")  # a lone surrogate: refused by name
    if format not in ("tf_saved_model", "onnx"):
        raise ValueError(f"format={format!r}: use 'tf_saved_model' or 'onnx'.")
    import tensorflow as tf

    # The signature is given, not traced from a first call: a serving
    # model that was never called is refused by Keras' ONNX exporter.
    signature = [tf.TensorSpec((None, estimator.image_size, estimator.image_size, 3), tf.uint8,
                               name=INPUT_NAME)]
    if format == "tf_saved_model":
        serving_model(estimator).export(os.fspath(path), format=format, verbose=False,
                                     input_signature=signature)
        return
    check_onnx_installed()
    check_float32_network(estimator.model_, estimator.dtype_policy)
    metadata = onnx_metadata(estimator)  # fails here, before any file is touched
    with replaced_atomically(path) as temporary, warnings.catch_warnings():
        # Keras' patch of tf2onnx for NumPy 2 asks NumPy for np.object: nothing of ours.
        warnings.filterwarnings("ignore", "In the future `np.object`", FutureWarning)
        serving_model(estimator).export(temporary, format=format, verbose=False,
                                     input_signature=signature)
        label_onnx_file(temporary, metadata)


def serving_model(estimator):
    """uint8 pixels to :meth:`predict_proba`'s probabilities, as one Keras model."""
    images = keras.Input((estimator.image_size, estimator.image_size, 3), dtype="uint8",
                         name=INPUT_NAME)
    pixels = CastToFloat(name="to_float")(images)
    probabilities = estimator.model_(pixels, training=False)
    if estimator.test_time_augmentation:  # as predict_proba: the mean with the mirror's
        mirrored = estimator.model_(MirrorImages(name="mirror")(pixels), training=False)
        probabilities = keras.layers.Average(name="test_time_augmentation")(
            [probabilities, mirrored])
    return keras.Model(images, probabilities)


def onnx_metadata(estimator):
    """What an ONNX file says besides its graph: concepts, decision rule, provenance."""
    from .._version import __version__

    return {"concepts": jsonable(list(estimator.classes_)),
            "decision_rule": estimator._decision_rule().to_dict(),
            "imageclef_concepts": {
                "estimator": type(estimator).__name__, "library_version": __version__,
                "input": INPUT_NAME, "output": OUTPUT_NAME, "image_size": estimator.image_size,
                "test_time_augmentation": bool(estimator.test_time_augmentation)}}


def check_float32_network(network, dtype_policy):
    """Refuse an ONNX export of a network that computes in 16 bits (mixed precision).

    Keras converts float32 networks only: a bfloat16 one gives a file ONNX
    Runtime cannot load, a float16 one other probabilities than ``predict_proba``'s.
    """
    dtypes, layers = set(), [network]
    while layers:
        layer = layers.pop()
        dtypes.add(layer.compute_dtype)
        layers.extend(getattr(layer, "layers", ()))
    if dtypes - {"float32"}:
        raise ValueError(f"This network computes in {', '.join(sorted(dtypes - {'float32'}))} "
                         f"(dtype_policy={dtype_policy!r}): ONNX export takes float32 networks "
                         "only; export format='tf_saved_model', or train with "
                         "dtype_policy='float32'.")


@keras.saving.register_keras_serializable(package="imageclef_concepts")
class CastToFloat(keras.layers.Layer):
    """uint8 pixels to float32, unchanged in value: the serving model's first step."""

    def call(self, inputs):
        return keras.ops.cast(inputs, "float32")


@keras.saving.register_keras_serializable(package="imageclef_concepts")
class MirrorImages(keras.layers.Layer):
    """Images flipped left to right, as test-time augmentation flips them
    (:class:`~._batches.ImageBatches` with ``mirrored=True``)."""

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=2)
