"""Metadata routing through every meta-estimator, tested as scikit-learn tests its routers.

As ``sklearn/tests/test_metaestimators_metadata_routing.py`` does: members
that record what their ``fit`` received (:class:`tests.doubles.RecordingConcepts`),
each meta-estimator fitted with ``sample_weight`` and another per-image
metadata, under ``enable_metadata_routing=True`` and without it.
"""

import numpy as np
import pytest
import sklearn
from sklearn.exceptions import UnsetMetadataPassedError
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold

from imageclef_concepts import (
    ConceptCNNClassifier,
    ConceptEnsemble,
    ConceptKNNClassifier,
    ConceptSpecialists,
    EnsembleTuner,
    ThresholdTuner,
    imageclef_f1,
    make_concept_images,
)
from tests.doubles import RecordingConcepts, Registry

N = 24
X = np.arange(N)[:, np.newaxis]  # image indices: each fit's images are known
Y = ["C1;C2" if i % 3 else "C1;C3" for i in range(N)]
WEIGHT = np.linspace(0.5, 2.0, N)
METADATA = np.arange(N) * 10

# Each meta-estimator, from two members (a, b).
META = {
    "ThresholdTuner": lambda a, b: ThresholdTuner(a, cv=2, thresholds=3),
    "ConceptEnsemble": lambda a, b: ConceptEnsemble([("a", a), ("b", b)], combine="union"),
    "ConceptEnsemble(subsample)": lambda a, b: ConceptEnsemble(
        [("a", a), ("b", b)], subsample=0.5, random_state=0),
    "ConceptSpecialists": lambda a, b: ConceptSpecialists(a, [("b", "C3", b)], min_images=2),
    "EnsembleTuner": lambda a, b: EnsembleTuner(
        ConceptEnsemble([("a", a), ("b", b)], combine="vote", min_votes=1), cv=2,
        thresholds=3),
}
# Those with two members to route apart.
TWO_MEMBERS = [name for name in META if name != "ThresholdTuner"]


@pytest.fixture
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


def _members(a_request=None, b_request=None):
    registries, members = (Registry(), Registry()), []
    for registry, request in zip(registries, (a_request, b_request)):
        member = RecordingConcepts(registry=registry)
        members.append(member if request is None else member.set_fit_request(**request))
    return registries, members


def _assert_received(registry, *, sample_weight=True, metadata=True):
    """Every fit recorded got the metadata (cut to its images), or none."""
    assert registry, "the member was never fitted"
    for fitted in registry:
        rows, got = fitted.received_["rows"], fitted.received_
        for name, given, expected in (("sample_weight", sample_weight, WEIGHT),
                                      ("metadata", metadata, METADATA)):
            if given:
                np.testing.assert_array_equal(got[name], expected[rows])
            else:
                assert got[name] is None, name


@pytest.mark.parametrize("meta", META)
def test_requested_metadata_reach_every_fit_cut_to_its_images(routing, meta):
    (a, b), members = _members({"sample_weight": True, "metadata": True},
                               {"sample_weight": True, "metadata": True})
    META[meta](*members).fit(X, Y, sample_weight=WEIGHT, metadata=METADATA)
    _assert_received(a)
    if meta != "ThresholdTuner":
        _assert_received(b)


@pytest.mark.parametrize("meta", TWO_MEMBERS)
def test_a_member_that_declines_gets_nothing_while_the_other_gets_it(routing, meta):
    # Before: ConceptEnsemble passed sample_weight to a member that declined it.
    (a, b), members = _members({"sample_weight": True, "metadata": False},
                               {"sample_weight": False, "metadata": True})
    META[meta](*members).fit(X, Y, sample_weight=WEIGHT, metadata=METADATA)
    _assert_received(a, metadata=False)
    _assert_received(b, sample_weight=False)


@pytest.mark.parametrize("meta", META)
def test_an_alias_routes_a_parameter_of_another_name(routing, meta):
    (a, _), members = _members({"sample_weight": "a_weight"}, {"sample_weight": False})
    META[meta](*members).fit(X, Y, a_weight=WEIGHT)
    _assert_received(a, metadata=False)


@pytest.mark.parametrize("meta", META)
def test_metadata_a_member_has_not_decided_on_is_an_error_naming_it(routing, meta):
    _, members = _members()
    with pytest.raises(UnsetMetadataPassedError, match=r"\[sample_weight\].*RecordingConcepts"):
        META[meta](*members).fit(X, Y, sample_weight=WEIGHT)


@pytest.mark.parametrize("meta", META)
def test_metadata_no_member_requests_is_an_error(routing, meta):
    _, members = _members({"sample_weight": False}, {"sample_weight": False})
    with pytest.raises(TypeError, match="sample_weight.*not routed to any object"):
        META[meta](*members).fit(X, Y, sample_weight=WEIGHT)


@pytest.mark.parametrize("meta", META)
def test_the_router_says_who_consumes_what(routing, meta):
    _, members = _members({"sample_weight": True}, {"sample_weight": False})
    router = META[meta](*members).get_metadata_routing()
    assert router.consumes("fit", ["sample_weight", "groups"]) == {"sample_weight"}


@pytest.mark.parametrize("meta", META)
def test_without_routing_every_member_gets_everything_as_before(meta):
    (a, b), members = _members()
    META[meta](*members).fit(X, Y, sample_weight=WEIGHT, metadata=METADATA)
    _assert_received(a)
    if meta != "ThresholdTuner":
        _assert_received(b)


@pytest.mark.parametrize("tuner", ["ThresholdTuner", "EnsembleTuner"])
def test_groups_reach_a_group_splitter(routing, tuner):
    # No image of a group is tuned on by a model that trained on its group.
    groups = np.arange(N) % 4
    (a, _), members = _members()
    model = META[tuner](*members).set_params(cv=GroupKFold(2)).fit(X, Y, groups=groups)
    folds = [fitted.received_["rows"] for fitted in a][:2]  # the two folds, then the refit
    assert [len(set(groups[rows])) for rows in folds] == [2, 2]
    assert set(groups[folds[0]]).isdisjoint(groups[folds[1]])
    assert model.get_metadata_routing().consumes("fit", ["groups"]) == {"groups"}


@pytest.mark.slow  # the line as written, on a network: nine fits
def test_grid_search_over_a_tuned_network_with_sample_weight(routing):
    # The line: "sample_weight ... not routed to any object" before.
    data = make_concept_images(24, 3, 16, random_state=0)
    y = [";".join(concepts) for concepts in data.concepts]
    cnn = ConceptCNNClassifier(image_size=16, filters=(4,), dense_units=(8,), epochs=1,
                               validation_fraction=None, random_state=0)
    search = GridSearchCV(ThresholdTuner(cnn.set_fit_request(sample_weight=True), cv=0.5,
                                         refit=False, thresholds=3),
                          {"min_concepts": [0, 1]}, cv=KFold(2), scoring=imageclef_f1)
    search.fit(data.images, y, sample_weight=np.linspace(0.5, 1.5, 24))
    assert search.best_params_["min_concepts"] in (0, 1)
    with pytest.raises(TypeError, match="sample_weight.*not routed to any object"):
        search.set_params(estimator__estimator=cnn.set_fit_request(sample_weight=False)).fit(
            data.images, y, sample_weight=np.ones(24))


def test_a_library_member_is_routed_as_any_other(routing):
    # The library's k-NN learns from every image alike and requests nothing: a
    # weighted member beside it gets the weights.
    images = np.repeat(X[:, :, np.newaxis, np.newaxis], 3, axis=3).astype(np.uint8)
    registry = Registry()
    ConceptEnsemble([("knn", ConceptKNNClassifier(2, pixel_size=1)),
                     ("weighted", RecordingConcepts(registry=registry).set_fit_request(
                         sample_weight=True))]).fit(images, Y, sample_weight=WEIGHT)
    np.testing.assert_array_equal(registry[0].received_["sample_weight"], WEIGHT)
