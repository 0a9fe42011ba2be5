"""``files/_numbers.py``: the one check of whole numbers that size or count, every estimator's."""

import os

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

import imageclef_concepts as ic
from imageclef_concepts.files._numbers import WholeNumber, check_sizes

# Each public estimator's (or function's) sizes and counts, as (name, make(value), check).
_ESTIMATORS = {
    "ImageLoader": lambda **p: ic.ImageLoader(**{"image_size": 8, **p}),
    "BackboneEmbedding": lambda **p: ic.BackboneEmbedding(
        "resnet50", **{"image_size": 32, "weights": None, **p}),
    "FoundationEncoder": lambda **p: ic.FoundationEncoder("vit-b16", weights="random", **p),
    "ConceptMLPClassifier": lambda **p: ic.ConceptMLPClassifier(**p),
    "ConceptKNNClassifier": lambda **p: ic.ConceptKNNClassifier(**p),
    "MostFrequentConcepts": lambda **p: ic.MostFrequentConcepts(**p),
    "ConceptEnsemble": lambda **p: ic.ConceptEnsemble([], **p),
    "ConceptSpecialists": lambda **p: ic.ConceptSpecialists(ic.MostFrequentConcepts(), [], **p),
    "ThresholdTuner": lambda **p: ic.ThresholdTuner(ic.MostFrequentConcepts(), **p),
    "EnsembleTuner": lambda **p: ic.EnsembleTuner(ic.ConceptEnsemble([]), **p),
    "ConceptCountRegressor": lambda **p: ic.ConceptCountRegressor(**p),
}
SIZES = [
    ("ImageLoader", "image_size"), ("ImageLoader", "n_jobs"),
    ("BackboneEmbedding", "image_size"), ("BackboneEmbedding", "batch_size"),
    ("FoundationEncoder", "batch_size"),
    ("ConceptMLPClassifier", "epochs"), ("ConceptMLPClassifier", "batch_size"),
    ("ConceptKNNClassifier", "n_neighbors"), ("ConceptKNNClassifier", "pixel_size"),
    ("ConceptKNNClassifier", "block_size"), ("MostFrequentConcepts", "k"),
    ("MostFrequentConcepts", "max_k"), ("ConceptEnsemble", "min_votes"),
    ("ConceptEnsemble", "n_jobs"), ("ConceptSpecialists", "min_images"),
    ("ThresholdTuner", "n_jobs"), ("ThresholdTuner", "min_support"),
    ("EnsembleTuner", "n_jobs"),
    ("EnsembleTuner", "max_sweeps"), ("ConceptCountRegressor", "n_top"),
]
WRONG = {"True": True, "0-d array": np.array(40), "nan": float("nan"), "inf": float("inf"),
         "2.0": 40.0, "'40'": "40", "nested": [[40]], "np.float64": np.float64(40)}


@pytest.mark.parametrize("estimator, name", SIZES)
@pytest.mark.parametrize("kind", WRONG)
def test_every_estimators_sizes_refuse_values_of_the_wrong_kind_naming_them(estimator, name,
                                                                          kind):
    # True is an int to Python, and to scikit-learn's Interval(Integral): epochs=True
    # trained one epoch, ImageLoader(image_size=True) decoded 1-pixel images (issue 30
    # review 15). The rest scikit-learn refused already: checked here for every size.
    value = WRONG[kind]
    with pytest.raises(InvalidParameterError, match=rf"^The '{name}' parameter of {estimator} "
                                                    r"must be .*whole number.* Got "):
        _ESTIMATORS[estimator](**{name: value})._validate_params()


@pytest.mark.parametrize("estimator, name", SIZES)
def test_every_estimators_sizes_take_numpy_integers_as_scikit_learn_does(estimator, name):
    _ESTIMATORS[estimator](**{name: np.int64(40)})._validate_params()


@pytest.mark.parametrize("name, value", [("image_size", True), ("n_jobs", True),
                                         ("image_size", np.float64(8))])
def test_prepare_images_refuses_sizes_of_the_wrong_kind_before_any_work(tmp_path, name,
                                                                        value):
    from imageclef_concepts.images._preparation import prepare_images

    params = {"image_size": 8, name: value}
    with pytest.raises(InvalidParameterError, match=rf"^The '{name}' parameter of "
                                                    r"prepare_images must be a whole number"):
        prepare_images([os.fspath(tmp_path / "a.png")], tmp_path / "store", **params)
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("value", [True, np.bool_(True), 2.0, float("nan"), "4", np.array(4)])
def test_a_whole_number_is_an_integral_that_is_not_a_bool(value):
    assert not WholeNumber(1).is_satisfied_by(value)
    assert WholeNumber(1).is_satisfied_by(np.int64(4)) and WholeNumber(1).is_satisfied_by(4)
    assert not WholeNumber(1).is_satisfied_by(0)


def test_sizes_are_made_python_integers_and_the_wrong_ones_named():
    assert check_sizes(np.array([4, 8]), "filters") == (4, 8)
    assert check_sizes([np.int32(3)], "dense_units") == (3,)
    assert check_sizes(np.int64(5), "kernel_size", one=True) == 5
    with pytest.raises(ValueError, match=r"^filters=\(4, 2.0\): .*whole numbers.*2.0"):
        check_sizes((4, 2.0), "filters")
    with pytest.raises(ValueError, match=r"^filters=array\(4\): .*0-d array"):
        check_sizes(np.array(4), "filters")
    with pytest.raises(ValueError, match=r"^--filters 4,0: "):
        check_sizes((4, 0), "--filters")
