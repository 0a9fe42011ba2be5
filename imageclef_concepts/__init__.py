"""Medical concept detection in radiology images, as scikit-learn estimators.

The ImageCLEFmed Caption concept-detection task: predict the set of UMLS
concepts of a radiology image, scored by the organisers' mean per-image F1.
"""

from ._cnn_classifier import ConceptCNNClassifier
from ._concept_files import (
    ConceptFile,
    ConceptFileError,
    RunEvaluation,
    evaluate_run,
    read_concepts,
    write_run,
)
from ._datasets import DatasetMismatchWarning, load_imageclef, make_concept_images
from ._encoder import ConceptEncoder, UnknownConceptWarning
from ._images import (
    ImageDecodeError,
    ImageLoader,
    SkippedImagesWarning,
    decode_image,
)
from ._metrics import imageclef_f1, imageclef_f1_score, per_image_f1_scores
from ._search import refine_grid
from ._thresholds import ThresholdTuner

__version__ = "0.1.0"

__all__ = [
    "ConceptCNNClassifier",
    "ConceptEncoder",
    "ConceptFile",
    "ConceptFileError",
    "DatasetMismatchWarning",
    "ImageDecodeError",
    "ImageLoader",
    "SkippedImagesWarning",
    "ThresholdTuner",
    "decode_image",
    "load_imageclef",
    "RunEvaluation",
    "UnknownConceptWarning",
    "evaluate_run",
    "imageclef_f1",
    "make_concept_images",
    "imageclef_f1_score",
    "per_image_f1_scores",
    "read_concepts",
    "refine_grid",
    "write_run",
]
