"""Heads on embeddings: the MLP head and the k-NN on precomputed embeddings or an encoder,
tuned, fused with a CNN, cloned, pickled and saved with their encoder's identity."""

import json
import zipfile

import joblib
import numpy as np
import pytest
from sklearn.base import clone

from imageclef_concepts import (
    BackboneEmbedding,
    ConceptEnsemble,
    ConceptKNNClassifier,
    ConceptMLPClassifier,
    EnsembleTuner,
    ThresholdTuner,
)
from imageclef_concepts.embeddings._once import clear_process_cache
from imageclef_concepts.models import ModelFileError

from ..conftest import TINY, tiny_cnn
from ..doubles import CountingEncoder


def _embeddings(n=60, d=16, seed=0):
    """Embeddings in two clusters: C1 on the first, C2 on the second, C3 on every third."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, d))
    side = np.arange(n) % 2
    X = (centres[side] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)
    y = [(["C1"] if s == 0 else ["C2"]) + (["C3"] if i % 3 == 0 else [])
         for i, s in enumerate(side)]
    return X, y


@pytest.mark.slow  # networks trained end to end: seconds (the README's 6 minutes)
@pytest.mark.parametrize("hidden_units", [(), (16,)])
def test_the_head_learns_from_precomputed_embeddings(hidden_units):
    X, y = _embeddings()
    head = ConceptMLPClassifier(hidden_units, epochs=60, learning_rate=0.02, random_state=0)
    head.fit(X[:40], y[:40])
    assert [c.shape for c in head.coefs_][-1] == ((16,) + hidden_units)[-1:] + (3,)
    assert head.predict_proba(X[40:]).shape == (20, 3)
    first_two = np.array([["C1" in c, "C2" in c] for c in head.predict_concepts(X[40:])])
    assert np.array_equal(first_two[:, 0], np.arange(40, 60) % 2 == 0)
    again = clone(head).fit(X[:40], y[:40])  # random_state: the same head
    assert np.allclose(again.predict_proba(X), head.predict_proba(X), atol=1e-6)


def test_precomputed_input_is_checked_by_name():
    X, y = _embeddings()
    head = ConceptMLPClassifier(epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="fitted on embeddings of 16"):
        head.predict(X[:, :8])
    with pytest.raises(ValueError, match="NaN"):
        head.predict(np.full((2, 16), np.nan))
    with pytest.raises(ValueError, match="not image paths"):
        ConceptMLPClassifier(epochs=1).fit(["a.png", "b.png"], [["C1"], ["C2"]])
    with pytest.raises(ValueError, match="hidden_units"):
        ConceptMLPClassifier((0,), epochs=1).fit(X, y)
    assert ConceptMLPClassifier(epochs=1).fit(X[:, :8], y).coefs_[0].shape[0] == 8  # refit


def test_knn_votes_plain_or_by_similarity():
    X, y = _embeddings()
    similar = ConceptKNNClassifier(4, embedding="precomputed").fit(X, y)
    plain = ConceptKNNClassifier(4, embedding="precomputed", weights="uniform").fit(X, y)
    shares = plain.predict_proba(X[:5])
    assert np.allclose(shares * 4, np.round(shares * 4))  # whole votes of 4 neighbours
    assert not np.allclose(similar.predict_proba(X[:5]), shares)
    assert similar.score(X, y) > 0.9


@pytest.mark.parametrize("head", [ConceptMLPClassifier(epochs=8, learning_rate=0.1,
                                                       random_state=0),
                                  ConceptKNNClassifier(3, embedding="precomputed")],
                         ids=["mlp", "knn"])
def test_heads_are_tuned_cloned_and_pickled(head, tmp_path):
    X, y = _embeddings()
    tuner = ThresholdTuner(head, cv=3, thresholds=5).fit(X, y)
    assert tuner.score(X, y) > 0.8
    joblib.dump(tuner, tmp_path / "t.joblib")
    assert np.array_equal(joblib.load(tmp_path / "t.joblib").predict(X), tuner.predict(X))
    ensemble = ConceptEnsemble([("a", clone(head)), ("b", ConceptKNNClassifier(
        5, embedding="precomputed"))])
    tuned = EnsembleTuner(ensemble, cv=2, thresholds=5, random_state=0).fit(X, y)
    assert tuned.score(X, y) > 0.8


def test_heads_on_an_encoder_fuse_with_a_cnn_on_the_same_images(tiny_images):
    X, concepts = tiny_images.images, tiny_images.concepts
    clear_process_cache()
    CountingEncoder.embedded = 0
    ensemble = ConceptEnsemble([
        ("cnn", tiny_cnn()),
        ("knn", ConceptKNNClassifier(3, embedding=CountingEncoder())),
        ("mlp", ConceptMLPClassifier(embedding=CountingEncoder(), epochs=2, random_state=0))])
    ensemble.fit(X, concepts)
    assert ensemble.predict_proba(X).shape == (len(X), len(ensemble.classes_))
    assert CountingEncoder.embedded == len(X)  # two members, one embedding pass


@pytest.mark.parametrize("kind", [ConceptKNNClassifier, ConceptMLPClassifier])
def test_saved_with_the_encoders_identity_not_its_weights(tiny_images, tmp_path, kind):
    X, concepts = tiny_images.images, tiny_images.concepts
    encoder = BackboneEmbedding("efficientnetb0", TINY["image_size"], weights=None)
    model = kind(embedding=encoder, **({"epochs": 1} if kind is ConceptMLPClassifier else {}))
    model.fit(X, concepts).save(tmp_path / "m.zip")
    with zipfile.ZipFile(tmp_path / "m.zip") as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("imageclef_concepts.json"))
    assert not [name for name in names if name.endswith(".keras")]  # no weights
    saved = manifest["estimator"]["encoder"]
    assert saved["identity"] == encoder.embedding_identity()
    assert np.allclose(kind.load(tmp_path / "m.zip").predict_proba(X), model.predict_proba(X))
    saved["identity"] = saved["identity"].replace("sha256=", "sha256=0")
    with zipfile.ZipFile(tmp_path / "m.zip") as archive:
        entries = {name: archive.read(name) for name in names}
    entries["imageclef_concepts.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    with pytest.raises(ModelFileError, match="embeddings would not be comparable"):
        kind.load(tmp_path / "other.zip")


def test_a_head_too_big_for_memory_is_refused_by_name_before_keras_allocates(monkeypatch):
    X, y = _embeddings()
    with pytest.raises(ValueError, match=r"hidden_units=\(100000000000,\)"):
        ConceptMLPClassifier((10**11,), epochs=1).fit(X, y)
    from imageclef_concepts.files import _sizes

    monkeypatch.setattr(_sizes, "memory_limit", lambda: 8 * 2**20)
    with pytest.raises(ValueError, match="batch_size=512"):
        ConceptMLPClassifier((20_000,), epochs=1).fit(X, y)


def test_a_head_whose_weights_and_activations_together_exceed_memory_is_refused(monkeypatch):
    # Training holds both at once: each was checked alone, so hidden_units=(5_000_000,) on
    # 512 or more 192-d embeddings (14.6 GiB of weights, 19.1 GiB of activations) passed
    # on a 23.5 GiB machine. Here 3.1 MiB of weights and 4.6 MiB of activations, in 6 MiB.
    from imageclef_concepts.files import _sizes

    X, y = _embeddings()
    monkeypatch.setattr(_sizes, "memory_limit", lambda: 6 * 2**20)
    with pytest.raises(ValueError, match=r"^hidden_units=\(10000,\) and batch_size=512: "
                                         r"training a head .* with the activations"):
        ConceptMLPClassifier((10_000,), epochs=1).fit(X, y)


def test_hidden_units_may_be_numpy_integers():
    X, y = _embeddings()
    head = ConceptMLPClassifier((np.int64(3),), epochs=1).fit(X, y)
    assert [c.shape for c in head.coefs_] == [(16, 3), (3, len(head.classes_))]


def test_prediction_holds_a_block_of_activations_not_every_images():
    import tracemalloc

    X, y = _embeddings()
    head = ConceptMLPClassifier((4,), epochs=1, random_state=0).fit(X, y)
    head.coefs_[0] = np.tile(head.coefs_[0], 1024)  # 4096 hidden units, same outputs x 1024
    head.intercepts_[0] = np.tile(head.intercepts_[0], 1024)
    head.coefs_[1] = np.tile(head.coefs_[1], (1024, 1)) / 1024
    many = np.repeat(X, 100, axis=0)  # 6,000 images: 98 MB of activations at once
    expected = head.predict_proba(X)
    tracemalloc.start()
    probabilities = head.predict_proba(many)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_allclose(probabilities, np.repeat(expected, 100, axis=0), rtol=1e-4)
    assert peak < 40 * 2**20, peak


def test_a_small_numpy_integer_batch_size_trains_as_its_int():
    # batch_size=np.uint8(200) passed the checks (a whole number), then TensorFlow refused
    # it ("Value passed to parameter 'begin' has DataType uint8", review 16).
    # Below the images' count, np.uint8(8) wrapped in the memory check ('Python integer 1026
    # out of bounds for uint8').
    X, y = _embeddings()
    for batch_size in (200, 8):
        head = ConceptMLPClassifier(epochs=np.uint8(1), batch_size=np.uint8(batch_size),
                                    hidden_units=(np.uint8(16),), random_state=0)
        expected = ConceptMLPClassifier(epochs=1, batch_size=batch_size, hidden_units=(16,),
                                        random_state=0)
        np.testing.assert_allclose(head.fit(X, y).predict_proba(X),
                                   expected.fit(X, y).predict_proba(X), atol=1e-6)
