"""skops files of every estimator kind: dumped, loaded with skops_trusted_types(), alike."""

import pickle

import keras
import numpy as np
import pytest
import skops.io
from skops.io.exceptions import UntrustedTypesFoundException

from imageclef_concepts import (
    BackboneEmbedding,
    ConceptCNNClassifier,
    ConceptEncoder,
    ConceptEnsemble,
    ConceptKNNClassifier,
    ConceptSpecialists,
    EnsembleTuner,
    ModelFileError,
    MostFrequentConcepts,
    ThresholdTuner,
    make_concept_images,
    skops_trusted_types,
)


@pytest.fixture(scope="module")
def data():
    images = make_concept_images(30, 4, 16, random_state=0)
    return images.images, [";".join(concepts) for concepts in images.concepts]


@pytest.fixture(scope="module")
def cnn(data):
    X, y = data
    return ConceptCNNClassifier(image_size=16, filters=(4,), dense_units=(8,), epochs=1,
                                random_state=0).fit(X, y)


def _knn():
    return ConceptKNNClassifier(3, pixel_size=4)


def _specialists(X, y):
    trigger = y[0].split(";")[0]
    return ConceptSpecialists(_knn(), [("s", trigger, MostFrequentConcepts(k=1))],
                              min_images=2).fit(X, y)


def _ensemble_tuner(X, y):
    ensemble = ConceptEnsemble.from_grid(_knn(), {"n_neighbors": [3, 5]}, combine="vote")
    return EnsembleTuner(ensemble, cv=2, thresholds=4).fit(X, y)


KINDS = {
    "most_frequent": lambda X, y: MostFrequentConcepts(k=2).fit(X, y),
    "knn": lambda X, y: _knn().fit(X, y),
    "tuner_with_count_model": lambda X, y: ThresholdTuner(
        _knn(), cv=2, thresholds=5, count_coverage=0.8).fit(X, y),
    "ensemble": lambda X, y: ConceptEnsemble(
        [("knn", _knn()), ("top", MostFrequentConcepts(k=1))]).fit(X, y),
    "specialists": _specialists,
    "ensemble_tuner": _ensemble_tuner,
    "ensemble_tuner_ensemble": lambda X, y: _ensemble_tuner(X, y).ensemble_,
}


def _round_trip(model):
    return skops.io.loads(skops.io.dumps(model), trusted=skops_trusted_types())


def _assert_same(loaded, model, X):
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.predict_concepts(X) == model.predict_concepts(X)


@pytest.mark.parametrize("kind", KINDS)
def test_every_estimator_kind_round_trips_with_the_trusted_types(data, kind):
    X, y = data
    model = KINDS[kind](X, y)
    _assert_same(_round_trip(model), model, X)


@pytest.mark.parametrize("kind", ["cnn", "tuner", "ensemble"])
def test_a_network_round_trips_alone_and_inside_meta_estimators(data, cnn, kind):
    # Before: skops.io.dumps(cnn) raised RecursionError (it walked the Keras model).
    X, y = data
    model = {"cnn": lambda: cnn,
             "tuner": lambda: ThresholdTuner(cnn, cv="prefit", refit=False,
                                             thresholds=5).fit(X, y),
             "ensemble": lambda: ConceptEnsemble([("cnn", cnn), ("knn", _knn().fit(X, y))],
                                                 prefit=True).fit(X, y)}[kind]()
    _assert_same(_round_trip(model), model, X)


def test_the_loaded_network_trains_on_and_keeps_its_history(data, cnn):
    X, y = data
    loaded = _round_trip(cnn)
    assert loaded.history_ == cnn.history_ and loaded.get_params() == cnn.get_params()
    loaded.partial_fit(X, y)
    assert len(loaded.history_["loss"]) == 2 and len(cnn.history_["loss"]) == 1


def test_the_file_holds_no_keras_object_but_the_network_file(cnn):
    # The state skops walks: the network is the bytes of its .keras file.
    dumped = skops.io.dumps(cnn)
    untrusted = skops.io.get_untrusted_types(data=dumped)
    assert "imageclef_concepts.keras._cnn_classifier.ConceptCNNClassifier" in untrusted
    assert [name for name in untrusted if name.startswith(("keras", "tensorflow"))] == []
    assert set(untrusted) <= set(skops_trusted_types())
    assert b"model_" in dumped and b"_keras_state" in dumped


def test_without_the_trusted_types_skops_refuses_the_library_types(data):
    X, y = data
    dumped = skops.io.dumps(_knn().fit(X, y))
    with pytest.raises(UntrustedTypesFoundException, match="ConceptKNNClassifier"):
        skops.io.loads(dumped)


def test_the_trusted_types_are_exactly_what_the_files_need(data, cnn):
    X, y = data
    needed = set()
    for model in [cnn, ThresholdTuner(cnn, cv="prefit", refit=False, thresholds=5).fit(X, y),
                  *(make(X, y) for make in KINDS.values()), ConceptEncoder().fit(y)]:
        needed |= set(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    trusted = set(skops_trusted_types())
    assert needed <= trusted
    # What is trusted beyond them: public classes not in these files (the image
    # loader, the backbone embedding), nothing of another library.
    assert {name for name in trusted - needed if not name.startswith("imageclef_concepts.")} \
        == set()


def test_keras_objects_among_the_parameters_keep_their_config():
    model = ConceptCNNClassifier(loss=keras.losses.BinaryFocalCrossentropy(gamma=3.0),
                                 optimizer=keras.optimizers.SGD(learning_rate=0.5),
                                 metrics=["auc", keras.metrics.Precision(thresholds=0.3)])
    loaded = _round_trip(model)
    assert isinstance(loaded.loss, keras.losses.BinaryFocalCrossentropy)
    assert loaded.loss.get_config()["gamma"] == 3.0
    assert float(loaded.optimizer.learning_rate) == 0.5
    assert loaded.metrics[0] == "auc" and loaded.metrics[1].get_config()["thresholds"] == 0.3


def test_pickle_keeps_working_and_reads_the_state_of_older_pickles(data, cnn):
    X, _ = data
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(cnn)).predict_proba(X),
                                  cnn.predict_proba(X))
    # Before this version the state held the Keras model itself (scikeras pickled it).
    older = ConceptCNNClassifier.__new__(ConceptCNNClassifier)
    older.__setstate__(dict(vars(cnn)))
    np.testing.assert_array_equal(older.predict_proba(X), cnn.predict_proba(X))


def test_a_damaged_network_in_the_state_is_one_model_file_error(cnn):
    state = cnn.__getstate__()
    state["_keras_state"]["model_"] = {"keras_file": b"not a zip file"}
    restored = ConceptCNNClassifier.__new__(ConceptCNNClassifier)
    with pytest.raises(ModelFileError, match="a pickled or skops ConceptCNNClassifier"):
        restored.__setstate__(state)


def test_a_network_that_disagrees_with_the_vocabulary_is_refused(cnn):
    state = cnn.__getstate__()
    state["classes_"] = state["classes_"][:2]
    restored = ConceptCNNClassifier.__new__(ConceptCNNClassifier)
    with pytest.raises(ModelFileError, match="outputs but the record names 2 concepts"):
        restored.__setstate__(state)


@pytest.mark.slow
def test_a_backbone_embedding_keeps_its_random_network():
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    embedding = BackboneEmbedding("mobilenetv3small", image_size=32, weights=None).fit()
    embedded = embedding.embed(images)
    np.testing.assert_array_equal(_round_trip(embedding).embed(images), embedded)
