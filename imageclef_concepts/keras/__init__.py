"""Everything of the library that needs Keras and TensorFlow, and nothing else.

The networks (:func:`build_concept_cnn`, pretrained backbones), the
``tf.data`` batches that stream images into them, the scikeras adapter, the
estimator :class:`ConceptCNNClassifier` and :class:`BackboneEmbedding`.
Importing :mod:`imageclef_concepts` (or this package) does not import
TensorFlow: the first use of one of these names does, which keeps
``imageclef-concepts --help`` and ``evaluate`` fast.
"""

import functools
import os
from typing import TYPE_CHECKING

from .._api import lazy_attribute

# The names users give, as plain data, so that parameter checks and the command
# line can list them without importing TensorFlow.
# Keras applications backbones, by lower-case name:
BACKBONES = {name.lower(): name for name in (
    "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny", "ConvNeXtXLarge",
    "DenseNet121", "DenseNet169", "DenseNet201",
    "EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetB4",
    "EfficientNetB5", "EfficientNetB6", "EfficientNetB7",
    "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3",
    "EfficientNetV2L", "EfficientNetV2M", "EfficientNetV2S",
    "InceptionResNetV2", "InceptionV3", "MobileNet", "MobileNetV2", "MobileNetV3Large",
    "MobileNetV3Small", "ResNet101", "ResNet101V2", "ResNet152", "ResNet152V2", "ResNet50",
    "ResNet50V2", "VGG16", "VGG19", "Xception",
)}
# The library's own losses (any Keras loss name works too) and augmentations:
LOSSES = ("binary_crossentropy", "focal", "asymmetric", "soft_f1")
AUGMENTATIONS = ("light", "standard")

_LAZY = {
    "ConceptCNNClassifier": "._cnn_classifier",
    "BackboneEmbedding": "._embedding",
    "build_concept_cnn": "._network",
    "build_backbone_network": "._network",
}

__all__ = ["AUGMENTATIONS", "BACKBONES", "LOSSES", "BackboneEmbedding", "ConceptCNNClassifier",
           "build_backbone_network", "build_concept_cnn", "start_quietly"]


def start_quietly() -> None:
    """Import TensorFlow and find its devices with standard error muted.

    TensorFlow's C++ start-up lines (absl, oneDNN, CUDA probing on a machine
    without a GPU) are written straight to file descriptor 2, before any
    setting of ours can reach them; they say nothing to our users. The
    command line calls this unless ``--verbose``; it also mutes TensorFlow's
    later log lines.
    """
    import logging

    # Python-side warnings too: a grid search builds a network per fit, and
    # TensorFlow's "retracing" warnings about that are expected noise.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _import_tensorflow_muted()


@functools.cache
def _start_tensorflow():
    """Import TensorFlow and find its devices, once, before a name of this package needs it.

    Quietly unless ``TF_CPP_MIN_LOG_LEVEL`` is ``0``: importing the library
    sets it to 2, but TensorFlow writes its start-up lines before reading it,
    to file descriptor 2, which a Jupyter kernel shows in the cell that
    imported TensorFlow. Its later log lines follow the level as usual.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "0":
        _import_tensorflow_muted()


def _import_tensorflow_muted():
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()  # probing the devices writes lines too (CUDA)
    finally:
        os.dup2(saved, 2)
        os.close(null)
        os.close(saved)


if TYPE_CHECKING:
    from ._cnn_classifier import ConceptCNNClassifier
    from ._embedding import BackboneEmbedding
    from ._network import build_backbone_network, build_concept_cnn


if not TYPE_CHECKING:  # checkers read the imports above: a misspelt name is an error
    def __getattr__(name):
        if name in _LAZY:
            _start_tensorflow()
        return lazy_attribute(__name__, _LAZY, name)
