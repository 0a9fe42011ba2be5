"""scikit-learn's estimator checks on the library's estimators.

scikit-learn runs its data checks only on estimators whose input is a 2-d
array (``input_tags.two_d_array``). Images are 4-d and concept lists are
sequences, so for these estimators ``parametrize_with_checks`` yields the
checks that need no data; we run the API checks that do not depend on input
shape by name as well, and list the ones expected to fail with the reason.
"""

import pytest
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import parametrize_with_checks

from imageclef_concepts import ConceptCNNClassifier, ConceptEncoder

from .conftest import TINY

ESTIMATORS = [ConceptCNNClassifier(**TINY), ConceptEncoder()]

# Checks that take no data, by name, run on every estimator above.
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

EXPECTED_FAILURES = {
    ("ConceptCNNClassifier", "check_mixin_order"): (
        "scikeras' KerasClassifier lists BaseEstimator before ClassifierMixin; the "
        "classifier tags are set explicitly in __sklearn_tags__ instead"
    ),
    ("ConceptCNNClassifier", "check_estimator_tags_renamed"): (
        "scikeras' BaseWrapper defines the pre-1.6 _more_tags without __sklearn_tags__; "
        "ConceptCNNClassifier defines __sklearn_tags__, which scikit-learn uses"
    ),
}

# The data checks scikit-learn does not run on these estimators, and why.
NOT_APPLICABLE = {
    "ConceptCNNClassifier": "its X is images (n, h, w[, c]), not a 2-d feature matrix, and "
    "its y is an indicator matrix or concept lists, not the 1-d labels the checks generate",
    "ConceptEncoder": "its X is a sequence of concept lists, not a 2-d feature matrix",
}


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("check_name", API_CHECKS)
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_api_checks(estimator, check_name):
    name = type(estimator).__name__
    check = getattr(estimator_checks, check_name)
    reason = EXPECTED_FAILURES.get((name, check_name))
    if reason is None:
        check(name, estimator)
    else:
        with pytest.raises((AssertionError, TypeError)):
            check(name, estimator)


def test_every_estimator_says_why_data_checks_do_not_apply():
    for estimator in ESTIMATORS:
        assert not estimator.__sklearn_tags__().input_tags.two_d_array
        assert type(estimator).__name__ in NOT_APPLICABLE
