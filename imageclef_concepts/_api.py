"""The public API's table: which subpackage holds each public name. A leaf.

The root package and each subpackage import their public names on first use
(PEP 562), so that ``imageclef-concepts --help`` imports neither scikit-learn
nor TensorFlow. Model files name their estimator's class by its public name:
:func:`public_object` finds it here, never by the private module that defined
it when the file was saved, so modules may move without breaking files.
"""

import importlib
import importlib.abc
import importlib.util
import sys

#: Each subpackage and the public names it holds, in the order of the data flow.
HOMES = {
    "files": ("CheckpointError", "remove_checkpoint"),
    "concepts": ("ConceptEncoder", "SplitBounds", "UnknownConceptWarning",
                 "concept_sample_weight", "imageclef_f1", "imageclef_f1_score",
                 "imageclef_f1_scorer", "oracle_bounds", "per_image_f1_scores"),
    "concept_files": ("ConceptFile", "ConceptFileError", "RunEvaluation", "evaluate_run",
                      "read_concepts", "write_run"),
    "images": ("ImageDecodeError", "ImageLoader", "ImageStore", "ImageStoreError",
               "ImageStoreWarning", "PreparedImages", "SkippedImagesWarning", "decode_image",
               "prepare_images"),
    "models": ("ConceptCountRegressor", "DecisionRule", "ModelFileError", "skops_trusted_types"),
    "datasets": ("DatasetMismatchWarning", "find_imageclef_layout", "load_imageclef",
                 "make_concept_images", "make_imageclef_2019_layout", "make_imageclef_layout"),
    "keras": ("BackboneEmbedding", "ConceptCNNClassifier"),
    "embeddings": ("EmbeddingStore", "EmbeddingStoreError", "EmbeddingStoreWarning",
                   "FoundationEncoder", "embed_images"),
    "estimators": ("ConceptEnsemble", "ConceptKNNClassifier", "ConceptMLPClassifier",
                   "ConceptSpecialists", "MostFrequentConcepts"),
    "tuning": ("EnsembleTuner", "ThresholdTuner", "refine_grid"),
    "report": ("ConceptFrequencyDisplay", "PerConceptF1Display", "ThresholdCurveDisplay",
               "TrainingHistoryDisplay", "plot_concept_frequencies", "plot_per_concept_f1",
               "plot_threshold_curve", "plot_training_history", "write_report"),
    "recipes": ("Recipe2026", "RecipeResult", "reproduce_2019", "run_recipe_2026"),
}
PACKAGE = __name__.rpartition(".")[0]
#: Public name -> the subpackage holding it.
HOME_OF = {name: home for home, names in HOMES.items() for name in names}

#: The public concept estimators: the only public classes a model file may name,
#: imported on first use when a file names one (no other name is imported).
ESTIMATORS = ("ConceptCNNClassifier", "ConceptEnsemble", "ConceptKNNClassifier",
              "ConceptMLPClassifier",
              "ConceptSpecialists", "MostFrequentConcepts", "ThresholdTuner")


def public_object(name):
    """The public object ``name`` of the library (its subpackage imported on first use)."""
    return getattr(importlib.import_module(f"{PACKAGE}.{HOME_OF[name]}"), name)


#: Where each module of 0.1.0, when all sat at the root, lives now. Pickles
#: (``.joblib`` files) name a class by its module; an old name is served by
#: the module that holds that code now (``.zip`` and ``.keras`` files name the
#: public class and need no table).
MOVED = {
    "_archive": "models._archive",
    "_atomic_files": "files._atomic",
    "_base": "models._base",
    "_baselines": "estimators._baselines",
    "_bounds": "concepts._bounds",
    "_checkpoints": "files._checkpoints",
    "_cli": "cli._main",
    "_cli_arguments": "cli._arguments",
    "_cli_images": "cli._images",
    "_cli_models": "cli._models",
    "_cli_procedures": "cli._procedures",
    "_cli_recipe": "cli._recipe",
    "_concept_count": "models._count",
    "_concept_files": "concept_files._io",
    "_concept_lines": "concept_files._lines",
    "_concept_text": "concept_files._text",
    "_concepts": "concepts._lists",
    "_datasets": "datasets._imageclef",
    "_decision": "models._decision",
    "_demo": "recipes._demo",
    "_editions": "concept_files._editions",
    "_encoder": "concepts._encoder",
    "_ensemble": "estimators._ensemble",
    "_ensemble_grid": "estimators._members",
    "_ensemble_search": "tuning._ensemble_search",
    "_ensemble_tuning": "tuning._ensemble",
    "_image_decoding": "images._decoding",
    "_image_loader": "images._loader",
    "_image_preparation": "images._preparation",
    "_image_shelf": "images._shelf",
    "_image_store": "images._store",
    "_images": "images._sources",
    "_layout_2026": "datasets._layout_2026",
    "_metrics": "concepts._metrics",
    "_model_card": "models._card",
    "_paper": "models._paper",
    "_persistence": "models._persistence",
    "_plots": "report._plots",
    "_ranges": "models._ranges",
    "_recipe_2026": "recipes._2026",
    "_recipe_checks": "recipes._2026_checks",
    "_recipe_parts": "recipes._2026_parts",
    "_report": "report._html",
    "_report_parts": "report._parts",
    "_reproduce": "recipes._reproduce",
    "_retrieval": "estimators._retrieval",
    "_rule_tuning": "tuning._rule",
    "_run_evaluation": "concept_files._evaluation",
    "_sample_weights": "concepts._sample_weights",
    "_search": "tuning._refine",
    "_specialists": "estimators._specialists",
    "_targets": "concepts._targets",
    "_thresholds": "tuning._thresholds",
    "_workflows": "recipes._workflows",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports a module's name of before the move as the module it moved to."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, old = fullname.rpartition(".")
        if package != PACKAGE or old not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(f"{PACKAGE}.{MOVED[spec.name.rpartition('.')[2]]}")
        spec.loader_state = module.__spec__  # importing under the old name replaces it
        return module

    def exec_module(self, module):
        # The module it moved to has run already: give it back its own spec.
        module.__spec__ = module.__spec__.loader_state


def serve_moved_modules():
    """Let ``import imageclef_concepts._retrieval`` (an old pickle's) find the moved module."""
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModules())


def lazy_attribute(package, module_of, name):
    """``package.name`` imported from its module ``module_of[name]`` on first use.

    A package's ``__getattr__`` (PEP 562) calls this; the value is kept in the
    package's namespace, so later lookups do not come here.
    """
    if name not in module_of:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_of[name], package), name)
    setattr(importlib.import_module(package), name, value)
    return value
