"""Medical concept detection in radiology images, as scikit-learn estimators.

The ImageCLEFmed Caption concept-detection task: predict the set of UMLS
concepts of a radiology image, scored by the organisers' mean per-image F1.
"""

import importlib
import os
from typing import TYPE_CHECKING

# TensorFlow's C++ start-up banner (oneDNN, CUDA probing) says nothing useful
# to our users; set TF_CPP_MIN_LOG_LEVEL yourself to see it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Every public name is imported on first use (PEP 562), so that the command
# line's --help and --version answer without importing scikit-learn (about a
# second) or TensorFlow (seconds). Type checkers read the imports below.
_MODULE_OF = {
    "MostFrequentConcepts": "._baselines",
    "SplitBounds": "._bounds",
    "oracle_bounds": "._bounds",
    "write_report": "._report",
    "CheckpointError": "._checkpoints",
    "remove_checkpoint": "._checkpoints",
    "ConceptCountRegressor": "._concept_count",
    "ConceptFile": "._concept_files",
    "ConceptFileError": "._concept_text",
    "read_concepts": "._concept_files",
    "write_run": "._concept_files",
    "DatasetMismatchWarning": "._datasets",
    "load_imageclef": "._datasets",
    "make_concept_images": "._datasets",
    "make_imageclef_2019_layout": "._datasets",
    "DecisionRule": "._decision",
    "find_imageclef_layout": "._layout_2026",
    "make_imageclef_layout": "._layout_2026",
    "Recipe2026": "._recipe_2026",
    "RecipeResult": "._recipe_2026",
    "run_recipe_2026": "._recipe_2026",
    "ConceptEncoder": "._encoder",
    "UnknownConceptWarning": "._encoder",
    "ConceptEnsemble": "._ensemble",
    "EnsembleTuner": "._ensemble_tuning",
    "ImageDecodeError": "._image_decoding",
    "decode_image": "._image_decoding",
    "ImageLoader": "._image_loader",
    "ImageStore": "._image_store",
    "ImageStoreError": "._image_store",
    "ImageStoreWarning": "._image_store",
    "PreparedImages": "._image_preparation",
    "prepare_images": "._image_preparation",
    "SkippedImagesWarning": "._images",
    "ModelFileError": "._model_card",
    "imageclef_f1": "._metrics",
    "imageclef_f1_score": "._metrics",
    "imageclef_f1_scorer": "._metrics",
    "per_image_f1_scores": "._metrics",
    "plot_concept_frequencies": "._plots",
    "plot_per_concept_f1": "._plots",
    "plot_threshold_curve": "._plots",
    "plot_training_history": "._plots",
    "reproduce_2019": "._reproduce",
    "RunEvaluation": "._run_evaluation",
    "evaluate_run": "._run_evaluation",
    "ConceptKNNClassifier": "._retrieval",
    "concept_sample_weight": "._sample_weights",
    "ConceptSpecialists": "._specialists",
    "refine_grid": "._search",
    "ThresholdTuner": "._thresholds",
    # The Keras estimators, through the keras subpackage.
    "BackboneEmbedding": ".keras",
    "ConceptCNNClassifier": ".keras",
}

# The public concept estimators: the only public classes a model archive may name,
# imported on first use when a file names one (no other name is imported).
_ESTIMATORS = ("ConceptCNNClassifier", "ConceptEnsemble", "ConceptKNNClassifier",
               "ConceptSpecialists", "MostFrequentConcepts", "ThresholdTuner")

if TYPE_CHECKING:
    from ._baselines import MostFrequentConcepts
    from ._bounds import SplitBounds, oracle_bounds
    from ._checkpoints import CheckpointError, remove_checkpoint
    from ._concept_count import ConceptCountRegressor
    from ._concept_files import ConceptFile, read_concepts, write_run
    from ._concept_text import ConceptFileError
    from ._datasets import (
        DatasetMismatchWarning,
        load_imageclef,
        make_concept_images,
        make_imageclef_2019_layout,
    )
    from ._decision import DecisionRule
    from ._encoder import ConceptEncoder, UnknownConceptWarning
    from ._ensemble import ConceptEnsemble
    from ._ensemble_tuning import EnsembleTuner
    from ._image_decoding import ImageDecodeError, decode_image
    from ._image_loader import ImageLoader
    from ._image_preparation import PreparedImages, prepare_images
    from ._image_store import ImageStore, ImageStoreError, ImageStoreWarning
    from ._images import SkippedImagesWarning
    from ._layout_2026 import find_imageclef_layout, make_imageclef_layout
    from ._metrics import (
        imageclef_f1,
        imageclef_f1_score,
        imageclef_f1_scorer,
        per_image_f1_scores,
    )
    from ._model_card import ModelFileError
    from ._plots import (
        plot_concept_frequencies,
        plot_per_concept_f1,
        plot_threshold_curve,
        plot_training_history,
    )
    from ._recipe_2026 import Recipe2026, RecipeResult, run_recipe_2026
    from ._report import write_report
    from ._reproduce import reproduce_2019
    from ._retrieval import ConceptKNNClassifier
    from ._run_evaluation import RunEvaluation, evaluate_run
    from ._sample_weights import concept_sample_weight
    from ._search import refine_grid
    from ._specialists import ConceptSpecialists
    from ._thresholds import ThresholdTuner
    from .keras import BackboneEmbedding, ConceptCNNClassifier

__version__ = "0.1.0"


def __getattr__(name):
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name], __name__), name)
        globals()[name] = value  # once: later lookups do not come here
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_MODULE_OF])

__all__ = [
    "BackboneEmbedding",
    "CheckpointError",
    "ConceptCNNClassifier",
    "ConceptCountRegressor",
    "ConceptEncoder",
    "ConceptEnsemble",
    "ConceptFile",
    "ConceptKNNClassifier",
    "ConceptFileError",
    "ConceptSpecialists",
    "DatasetMismatchWarning",
    "DecisionRule",
    "EnsembleTuner",
    "ImageDecodeError",
    "ImageLoader",
    "ImageStore",
    "ImageStoreError",
    "ImageStoreWarning",
    "ModelFileError",
    "MostFrequentConcepts",
    "PreparedImages",
    "Recipe2026",
    "RecipeResult",
    "RunEvaluation",
    "SkippedImagesWarning",
    "SplitBounds",
    "ThresholdTuner",
    "UnknownConceptWarning",
    "concept_sample_weight",
    "decode_image",
    "evaluate_run",
    "find_imageclef_layout",
    "imageclef_f1",
    "imageclef_f1_score",
    "imageclef_f1_scorer",
    "load_imageclef",
    "make_concept_images",
    "make_imageclef_2019_layout",
    "make_imageclef_layout",
    "oracle_bounds",
    "per_image_f1_scores",
    "plot_concept_frequencies",
    "plot_per_concept_f1",
    "plot_threshold_curve",
    "plot_training_history",
    "prepare_images",
    "read_concepts",
    "refine_grid",
    "remove_checkpoint",
    "reproduce_2019",
    "run_recipe_2026",
    "write_report",
    "write_run",
]
