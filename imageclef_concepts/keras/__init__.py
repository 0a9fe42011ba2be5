"""Everything of the library that needs Keras and TensorFlow, and nothing else.

The networks (:func:`build_concept_cnn`, pretrained backbones), the
``tf.data`` batches that stream images into them, the scikeras adapter, the
estimator :class:`ConceptCNNClassifier` and :class:`BackboneEmbedding`.
Importing :mod:`imageclef_concepts` (or this package) does not import
TensorFlow: the first use of one of these names does, which keeps
``imageclef-concepts --help`` and ``evaluate`` fast.
"""

import importlib
import os

# Keras applications backbones by the name users give: plain data, so that
# parameter checks can name them without importing TensorFlow.
BACKBONES = {
    "densenet121": "DenseNet121",
    "resnet50": "ResNet50",
    "efficientnetb0": "EfficientNetB0",
}

_LAZY = {
    "ConceptCNNClassifier": "._cnn_classifier",
    "BackboneEmbedding": "._embedding",
    "build_concept_cnn": "._network",
    "build_backbone_network": "._network",
}

__all__ = ["BACKBONES", "start_quietly", *_LAZY]


def start_quietly():
    """Import TensorFlow and find its devices with standard error muted.

    TensorFlow's C++ start-up lines (absl, oneDNN, CUDA probing on a machine
    without a GPU) are written straight to file descriptor 2, before any
    setting of ours can reach them; they say nothing to our users. The
    command line calls this unless ``--verbose``.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(null)
        os.close(saved)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
