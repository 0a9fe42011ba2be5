"""Medical concept detection in radiology images, as scikit-learn estimators.

The ImageCLEFmed Caption concept-detection task: predict the set of UMLS
concepts of a radiology image, scored by the organisers' mean per-image F1.
"""

import os

# TensorFlow's C++ start-up banner (oneDNN, CUDA probing) says nothing useful
# to our users; set TF_CPP_MIN_LOG_LEVEL yourself to see it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# ruff: noqa: E402 (the environment variable above must come first)
from ._baselines import MostFrequentConcepts
from ._concept_files import (
    ConceptFile,
    ConceptFileError,
    RunEvaluation,
    evaluate_run,
    read_concepts,
    write_run,
)
from ._datasets import (
    DatasetMismatchWarning,
    load_imageclef,
    make_concept_images,
    make_imageclef_2019_layout,
)
from ._decision import DecisionRule
from ._encoder import ConceptEncoder, UnknownConceptWarning
from ._ensemble import ConceptEnsemble
from ._images import ImageDecodeError, ImageLoader, SkippedImagesWarning, decode_image
from ._metrics import (
    imageclef_f1,
    imageclef_f1_score,
    imageclef_f1_scorer,
    per_image_f1_scores,
)
from ._plots import (
    plot_concept_frequencies,
    plot_per_concept_f1,
    plot_threshold_curve,
    plot_training_history,
)
from ._reproduce import reproduce_2019
from ._retrieval import ConceptKNNClassifier
from ._search import refine_grid
from ._thresholds import ThresholdTuner

__version__ = "0.1.0"

# The Keras estimators import TensorFlow (seconds): only when first used.
_FROM_KERAS = ("BackboneEmbedding", "ConceptCNNClassifier")


def __getattr__(name):
    if name in _FROM_KERAS:
        from . import keras

        return getattr(keras, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_FROM_KERAS])

__all__ = [
    "BackboneEmbedding",
    "ConceptCNNClassifier",
    "ConceptEncoder",
    "ConceptEnsemble",
    "ConceptFile",
    "ConceptKNNClassifier",
    "ConceptFileError",
    "DatasetMismatchWarning",
    "DecisionRule",
    "ImageDecodeError",
    "ImageLoader",
    "MostFrequentConcepts",
    "RunEvaluation",
    "SkippedImagesWarning",
    "ThresholdTuner",
    "UnknownConceptWarning",
    "decode_image",
    "evaluate_run",
    "imageclef_f1",
    "imageclef_f1_score",
    "imageclef_f1_scorer",
    "load_imageclef",
    "make_concept_images",
    "make_imageclef_2019_layout",
    "per_image_f1_scores",
    "plot_concept_frequencies",
    "plot_per_concept_f1",
    "plot_threshold_curve",
    "plot_training_history",
    "read_concepts",
    "refine_grid",
    "reproduce_2019",
    "write_run",
]
