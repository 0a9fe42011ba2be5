"""scikit-learn's estimator checks on every public estimator and transformer.

scikit-learn runs its data checks only on estimators whose input is a 2-d
array (``input_tags.two_d_array``): of ours, the :class:`ThresholdTuner`
around a tabular classifier and the :class:`ConceptCountRegressor`. The
image estimators and the encoder take images, paths or concept lists, so
``parametrize_with_checks`` yields only the checks that need no data for
them; the API checks that do not depend on input shape run by name as well.
One table lists every check expected to fail, with the reason.
"""

import pytest
from sklearn.neighbors import KNeighborsClassifier
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import parametrize_with_checks

from imageclef_concepts import (
    BackboneEmbedding,
    ConceptCNNClassifier,
    ConceptCountRegressor,
    ConceptEncoder,
    ConceptEnsemble,
    ConceptKNNClassifier,
    ConceptMLPClassifier,
    ConceptSpecialists,
    EnsembleTuner,
    FoundationEncoder,
    ImageLoader,
    MostFrequentConcepts,
    ThresholdTuner,
)

from .conftest import TINY

ESTIMATORS = [
    ConceptCNNClassifier(**TINY),
    ConceptKNNClassifier(),
    MostFrequentConcepts(),
    ThresholdTuner(KNeighborsClassifier(), cv=3, thresholds=10),
    ThresholdTuner(ConceptCNNClassifier(**TINY)),
    ConceptEnsemble.from_grid(ConceptKNNClassifier(), {"n_neighbors": [3, 5]}, subsample=0.8,
                              random_state=0, combine="vote"),
    EnsembleTuner(ConceptEnsemble.from_grid(ConceptKNNClassifier(), {"n_neighbors": [3, 5]}),
                  cv=2, thresholds=5),
    ConceptEncoder(),
    ImageLoader(),
    BackboneEmbedding(weights=None),
    FoundationEncoder(weights="random"),
    # Heads on embeddings: an encoder of random weights (kept in model files by identity).
    ConceptKNNClassifier(3, embedding=BackboneEmbedding("efficientnetb0", 32, weights=None),
                         weights="uniform"),
    ConceptMLPClassifier((8,), embedding=BackboneEmbedding("efficientnetb0", 32, weights=None),
                         epochs=2, random_state=0),
    ConceptSpecialists(ConceptKNNClassifier(), [("c2", "C2", ConceptKNNClassifier())]),
    # A regressor of counts: every check of check_estimator applies (the calibration
    # share and coverage fit the checks' 10-sample data sets).
    ConceptCountRegressor(features="raw", coverage=0.75, calibration_size=0.5),
    ConceptCountRegressor(coverage=0.75, calibration_size=0.5),
]

# (estimator, check) -> why it is expected to fail. One table for the library.
EXPECTED_FAILURES = {
    ("ConceptCNNClassifier", "check_mixin_order"): (
        "scikeras' KerasClassifier lists BaseEstimator before ClassifierMixin; the "
        "classifier tags are set explicitly in __sklearn_tags__ instead"
    ),
    ("ConceptCNNClassifier", "check_estimator_tags_renamed"): (
        "scikeras' BaseWrapper defines the pre-1.6 _more_tags without __sklearn_tags__; "
        "ConceptCNNClassifier defines __sklearn_tags__, which scikit-learn uses"
    ),
    ("ThresholdTuner", "check_estimator_sparse_array"): (
        "binary-shaped y gets one probability column per concept, not scikit-learn's (n, 2) "
        "binary layout"
    ),
    ("ThresholdTuner", "check_estimator_sparse_matrix"): "as check_estimator_sparse_array",
    ("ThresholdTuner", "check_classifiers_train"): (
        "predict returns y's own 2-d form, (n, 1) for a one-concept indicator, where the "
        "check expects (n,)"
    ),
    ("ThresholdTuner", "check_classifiers_classes"): (
        "a 1-d string y is read as concept lists, which KNeighborsClassifier cannot name in "
        "classes_"
    ),
    ("ThresholdTuner", "check_classifiers_one_label_sample_weights"): (
        "1-d targets are refused before the inner estimator sees sample_weight: the tuner "
        "takes multi-label targets only"
    ),
    ("ThresholdTuner", "check_classifiers_multilabel_output_format_predict_proba"): (
        "KNeighborsClassifier's probabilities are vote shares, exactly 0 or 1 when neighbours "
        "agree; the check wants them strictly inside (0, 1)"
    ),
    ("ThresholdTuner", "check_estimators_dtypes"): (
        "the check's y takes values such as {1, 2}: an indicator holds 0 and 1 only, and a "
        "2 is refused rather than silently read as a label"
    ),
    ("ThresholdTuner", "check_fit2d_1feature"): "as check_estimators_dtypes",
    ("ThresholdTuner", "check_classifier_data_not_an_array"): "as check_estimators_dtypes",
    ("ConceptCountRegressor", "check_supervised_y_2d"): (
        "a 2-d y is an indicator matrix (one column per concept) whose row sums are the "
        "counts, not a column of counts: the check's values such as 2 are refused"
    ),
}

# Checks that take no data, run by name on the estimators that take images,
# paths or concept lists (scikit-learn skips its data checks for those).
API_CHECKS = [
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_estimator_repr",
    "check_valid_tag_types",
    "check_estimator_tags_renamed",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_mixin_order",
]

# Why scikit-learn's data checks do not apply to the others.
NOT_APPLICABLE = {
    "ConceptCNNClassifier": "its X is images (n, h, w[, c]) or paths, not a 2-d feature matrix",
    "ConceptKNNClassifier": "its X is images or paths",
    "ConceptMLPClassifier": ("its X is images or paths (or embeddings, with "
                             "embedding='precomputed', where y is still concept lists or an "
                             "indicator)"),
    "MostFrequentConcepts": "it takes images or paths and ignores them",
    "ConceptEncoder": "its X is a sequence of concept lists",
    "ImageLoader": "its X is a sequence of image paths",
    "BackboneEmbedding": "its X is images or paths",
    "FoundationEncoder": "its X is images or paths",
    "ThresholdTuner": "around an image estimator, X is what that estimator takes",
    "ConceptEnsemble": "its X is what its members take: here images or paths",
    "EnsembleTuner": "its X is what its ensemble's members take: here images or paths",
    "ConceptSpecialists": "X is what its base and specialists take: images or paths here",
}


def _name(estimator):
    return type(estimator).__name__


def _expected_failures(estimator):
    return {check: reason for (name, check), reason in EXPECTED_FAILURES.items()
            if name == _name(estimator)}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


IMAGE_ESTIMATORS = [e for e in ESTIMATORS if not e.__sklearn_tags__().input_tags.two_d_array]


@pytest.mark.parametrize("check_name", API_CHECKS)
@pytest.mark.parametrize("estimator", IMAGE_ESTIMATORS, ids=_name)
def test_api_checks(estimator, check_name):
    check = getattr(estimator_checks, check_name)
    if check_name in _expected_failures(estimator):
        with pytest.raises((AssertionError, TypeError)):
            check(_name(estimator), estimator)
    else:
        check(_name(estimator), estimator)


def test_the_table_names_real_estimators_and_checks():
    names = {_name(e) for e in ESTIMATORS}
    for estimator_name, check_name in EXPECTED_FAILURES:
        assert estimator_name in names
        assert hasattr(estimator_checks, check_name), check_name


def test_every_image_estimator_says_why_data_checks_do_not_apply():
    for estimator in IMAGE_ESTIMATORS:
        assert _name(estimator) in NOT_APPLICABLE
