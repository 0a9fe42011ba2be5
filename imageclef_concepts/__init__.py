"""Medical concept detection in radiology images, as scikit-learn estimators.

The ImageCLEFmed Caption concept-detection task: predict the set of UMLS
concepts of a radiology image, scored by the organisers' mean per-image F1.

The library is cut by the data flow, one subpackage per idea, each importing
only those before it: :mod:`~imageclef_concepts.files` (the library's own
files), :mod:`~imageclef_concepts.concepts` (concept lists, the encoder, the
official metric), :mod:`~imageclef_concepts.concept_files` (each edition's
files), :mod:`~imageclef_concepts.images`, :mod:`~imageclef_concepts.models`
(the estimator contract, decision rules, model files),
:mod:`~imageclef_concepts.datasets`, :mod:`~imageclef_concepts.keras` (the
networks), :mod:`~imageclef_concepts.estimators`,
:mod:`~imageclef_concepts.tuning`, :mod:`~imageclef_concepts.report`,
:mod:`~imageclef_concepts.recipes` and :mod:`~imageclef_concepts.cli`.
Every public name is importable from here too.
"""

import os
from typing import TYPE_CHECKING

from ._api import HOME_OF, lazy_attribute, serve_moved_modules
from ._version import __version__ as __version__

# TensorFlow's C++ start-up banner (oneDNN, CUDA probing) says nothing useful
# to our users; set TF_CPP_MIN_LOG_LEVEL yourself to see it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
serve_moved_modules()  # .joblib files of 0.1.0 name the modules as they were then

# Every public name is imported on first use (PEP 562), so that the command
# line's --help and --version answer without importing scikit-learn (about a
# second) or TensorFlow (seconds). Type checkers read the imports below.
_MODULE_OF = {name: f".{home}" for name, home in HOME_OF.items()}

if TYPE_CHECKING:
    from .concept_files import (
        ConceptFile,
        ConceptFileError,
        RunEvaluation,
        evaluate_run,
        read_concepts,
        write_run,
    )
    from .concepts import (
        ConceptEncoder,
        SplitBounds,
        UnknownConceptWarning,
        concept_sample_weight,
        imageclef_f1,
        imageclef_f1_score,
        imageclef_f1_scorer,
        oracle_bounds,
        per_image_f1_scores,
    )
    from .datasets import (
        DatasetMismatchWarning,
        find_imageclef_layout,
        load_imageclef,
        make_concept_images,
        make_imageclef_2019_layout,
        make_imageclef_layout,
    )
    from .embeddings import (
        EmbeddingStore,
        EmbeddingStoreError,
        EmbeddingStoreWarning,
        FoundationEncoder,
        embed_images,
    )
    from .estimators import (
        ConceptEnsemble,
        ConceptKNNClassifier,
        ConceptMLPClassifier,
        ConceptSpecialists,
        MostFrequentConcepts,
    )
    from .files import CheckpointError, remove_checkpoint
    from .images import (
        ImageDecodeError,
        ImageLoader,
        ImageStore,
        ImageStoreError,
        ImageStoreWarning,
        PreparedImages,
        SkippedImagesWarning,
        decode_image,
        prepare_images,
    )
    from .keras import BackboneEmbedding, ConceptCNNClassifier
    from .models import (
        ConceptCountRegressor,
        DecisionRule,
        ModelFileError,
        skops_trusted_types,
    )
    from .recipes import Recipe2026, RecipeResult, reproduce_2019, run_recipe_2026
    from .report import (
        ConceptFrequencyDisplay,
        PerConceptF1Display,
        ThresholdCurveDisplay,
        TrainingHistoryDisplay,
        plot_concept_frequencies,
        plot_per_concept_f1,
        plot_threshold_curve,
        plot_training_history,
        write_report,
    )
    from .tuning import EnsembleTuner, ThresholdTuner, refine_grid


if not TYPE_CHECKING:  # checkers read the imports above: a misspelt name is an error
    def __getattr__(name):
        return lazy_attribute(__name__, _MODULE_OF, name)


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
    "ConceptFrequencyDisplay",
    "ConceptKNNClassifier",
    "ConceptMLPClassifier",
    "ConceptFileError",
    "ConceptSpecialists",
    "DatasetMismatchWarning",
    "DecisionRule",
    "EmbeddingStore",
    "EmbeddingStoreError",
    "EmbeddingStoreWarning",
    "EnsembleTuner",
    "FoundationEncoder",
    "ImageDecodeError",
    "ImageLoader",
    "ImageStore",
    "ImageStoreError",
    "ImageStoreWarning",
    "ModelFileError",
    "MostFrequentConcepts",
    "PerConceptF1Display",
    "PreparedImages",
    "Recipe2026",
    "RecipeResult",
    "RunEvaluation",
    "SkippedImagesWarning",
    "SplitBounds",
    "ThresholdCurveDisplay",
    "ThresholdTuner",
    "TrainingHistoryDisplay",
    "UnknownConceptWarning",
    "concept_sample_weight",
    "decode_image",
    "embed_images",
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
    "skops_trusted_types",
    "write_report",
    "write_run",
]
