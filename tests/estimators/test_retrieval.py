import pickle

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

from imageclef_concepts import (
    ConceptCNNClassifier,
    ConceptKNNClassifier,
    ThresholdTuner,
    imageclef_f1,
    make_concept_images,
)

from ..conftest import TINY


def _brute_force_neighbours(model, X, k):
    queries = model._embed(X)
    similarities = queries @ model.embeddings_.T
    order = np.argsort(-similarities, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(similarities, order, axis=1), order


def test_blocks_give_the_same_neighbours_as_the_whole_matrix(tiny_images):
    X, y = tiny_images.images, tiny_images.concepts
    whole = ConceptKNNClassifier(n_neighbors=4, block_size=10_000).fit(X, y)
    blocked = ConceptKNNClassifier(n_neighbors=4, block_size=3).fit(X, y)
    s_whole, i_whole = whole.kneighbors(X[:17])
    s_block, i_block = blocked.kneighbors(X[:17])
    np.testing.assert_array_equal(i_whole, i_block)
    np.testing.assert_allclose(s_whole, s_block, rtol=1e-6)
    s_brute, _ = _brute_force_neighbours(whole, X[:17], 4)
    np.testing.assert_allclose(s_whole, s_brute, rtol=1e-6)
    np.testing.assert_allclose(blocked.predict_proba(X), whole.predict_proba(X), rtol=1e-5)


@pytest.mark.parametrize("cores", [1, 3, 64])
def test_rows_partitioned_in_threads_give_the_neighbours_of_one_thread(monkeypatch, cores):
    # Blocks of 5 rows split over 1, 3 or 64 threads (more threads than rows): each row's
    # neighbours as one thread finds them, ties broken the same way.
    rng = np.random.default_rng(0)
    train = rng.standard_normal((60, 8)).astype(np.float32)
    queries = np.concatenate([train[:4], train[:4], rng.standard_normal((9, 8))]).astype(
        np.float32)
    model = ConceptKNNClassifier(n_neighbors=4, embedding="precomputed", block_size=5).fit(
        np.concatenate([train, train[:3]]), rng.random((63, 3)) < 0.5)  # 3 exact ties
    monkeypatch.setattr("joblib.cpu_count", lambda *args, **kwargs: 1)
    expected = model.kneighbors(queries)
    monkeypatch.setattr("joblib.cpu_count", lambda *args, **kwargs: cores)
    found = model.kneighbors(queries)
    np.testing.assert_array_equal(found[1], expected[1])
    np.testing.assert_array_equal(found[0], expected[0])
    s_brute, _ = _brute_force_neighbours(model, queries, 4)
    np.testing.assert_allclose(found[0], s_brute, rtol=1e-6)


def test_votes_are_similarity_weighted_shares(tiny_images, tiny_indicator):
    X = tiny_images.images
    model = ConceptKNNClassifier(n_neighbors=3).fit(X, tiny_indicator)
    similarities, indices = model.kneighbors(X[:5])
    weights = np.clip(similarities, 1e-6, None)
    expected = (weights[:, :, None] * tiny_indicator[indices]).sum(axis=1) / weights.sum(
        axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict_proba(X[:5]), expected, rtol=1e-5)
    np.testing.assert_array_equal(model.predict(X[:5]), expected >= 0.5)


def test_an_image_finds_itself_first(tiny_images):
    model = ConceptKNNClassifier(n_neighbors=1).fit(tiny_images.images, tiny_images.concepts)
    _, indices = model.kneighbors(tiny_images.images)
    np.testing.assert_array_equal(indices[:, 0], np.arange(40))
    assert list(model.predict(tiny_images.images)) == [tuple(sorted(c)) for c in
                                                       tiny_images.concepts]


def test_mean_count_voting_predicts_the_neighbours_average_number():
    X = np.zeros((6, 16, 16, 3), dtype=np.uint8)
    X[:3, :, :8] = 200  # first group: left half bright
    X[3:, :, 8:] = 200  # second group: right half bright
    X[np.arange(6), 0, np.arange(6), 0] = 90  # no two images alike
    y = ["A;B;C", "A;B", "A;B;D", "E", "E", "F"]
    model = ConceptKNNClassifier(n_neighbors=3, voting="mean_count").fit(X, y)
    predicted = model.predict_concepts(X[:1])[0]
    assert set(predicted) == {"A", "B", "C"} or set(predicted) == {"A", "B", "D"}
    assert len(predicted) == 3  # (3 + 2 + 3) / 3 rounds to 3


def test_cnn_penultimate_layer_as_embedding(tiny_images, tiny_indicator):
    cnn = ConceptCNNClassifier(**TINY).fit(tiny_images.images, tiny_indicator)
    assert cnn.embed(tiny_images.images).shape == (40, 8)  # dense_units=(8,)
    model = ConceptKNNClassifier(n_neighbors=3, embedding=cnn).fit(tiny_images.images,
                                                                    tiny_indicator)
    assert model.embeddings_.shape == (40, 8)
    # Unit length, except an image whose ReLU activations are all 0: it stays 0, not NaN.
    norms = np.linalg.norm(model.embeddings_, axis=1)
    assert np.all(np.isclose(norms, 1, rtol=1e-5) | (norms == 0)) and (norms > 0).sum() > 30


def test_threshold_tuner_grid_search_and_pickle(tiny_images):
    X = tiny_images.images
    y = np.array([";".join(c) for c in tiny_images.concepts], dtype=object)
    tuner = ThresholdTuner(ConceptKNNClassifier(3), cv=3, thresholds=10).fit(X, y)
    assert tuner.predict(X).shape == (40,)
    search = GridSearchCV(ConceptKNNClassifier(), {"n_neighbors": [1, 5]}, cv=KFold(2),
                          scoring=imageclef_f1).fit(X, y)
    by_hand = {k: cross_val_score(ConceptKNNClassifier(k), X, y, cv=KFold(2),
                                  scoring=imageclef_f1).mean() for k in (1, 5)}
    assert search.best_params_["n_neighbors"] == max(by_hand, key=by_hand.get)
    assert search.best_score_ == pytest.approx(max(by_hand.values()))
    restored = pickle.loads(pickle.dumps(search.best_estimator_))
    np.testing.assert_array_equal(restored.predict_proba(X), search.predict_proba(X))


def test_pixel_retrieval_beats_chance_on_synthetic_concepts():
    data = make_concept_images(400, 6, 32, non_visual_fraction=0, random_state=5)
    model = ConceptKNNClassifier(n_neighbors=5, pixel_size=32, threshold=0.4)
    model.fit(data.images[:300], data.concepts[:300])
    assert model.score(data.images[300:], data.concepts[300:]) > 0.5


def test_bad_parameters():
    X = np.zeros((3, 16, 16, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="n_neighbors=5 is more than the 3 training"):
        ConceptKNNClassifier(5).fit(X, ["A", "B", "C"])
    with pytest.raises(ValueError, match="embedding"):
        ConceptKNNClassifier(embedding="resnet").fit(X, ["A", "B", "C"])


def test_too_many_or_boolean_neighbours_are_refused_before_any_image_is_embedded(monkeypatch):
    # n_neighbors was compared with the training images once every one was embedded (a
    # backbone's hours for nothing), and n_neighbors=True, which Interval(Integral) lets
    # through, was NumPy's 'an integer is required' in predict, naming nothing.
    X = np.zeros((3, 16, 16, 3), dtype=np.uint8)
    embedded = []
    monkeypatch.setattr(ConceptKNNClassifier, "_embed",
                        lambda self, X: embedded.append(len(X)) or np.zeros((len(X), 4)))
    with pytest.raises(ValueError, match="n_neighbors=5 is more than the 3 training"):
        ConceptKNNClassifier(5).fit(X, ["A", "B", "C"])
    with pytest.raises(TypeError, match=r"'n_neighbors' parameter of ConceptKNNClassifier "
                                        r"must be a whole number \(an int, not a bool\)"):
        ConceptKNNClassifier(True).fit(X, ["A", "B", "C"])
    assert embedded == []


def test_backbone_embedding(tiny_images, tmp_path):
    from imageclef_concepts import BackboneEmbedding

    embedding = BackboneEmbedding("efficientnetb0", image_size=32, weights=None)
    vectors = embedding.embed(tiny_images.images[:6])
    assert vectors.shape == (6, 1280)  # EfficientNet-B0's pooled features
    model = ConceptKNNClassifier(3, embedding=embedding).fit(tiny_images.images,
                                                             tiny_images.concepts)
    assert model.embeddings_.shape == (40, 1280)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(restored.predict_proba(tiny_images.images[:5]),
                               model.predict_proba(tiny_images.images[:5]), rtol=1e-5)


def test_sizes_beyond_memory_are_refused_naming_them_before_any_work(decodes):
    from imageclef_concepts import BackboneEmbedding

    paths, concepts = ["nowhere/a.png", "nowhere/b.png"], ["C1", "C2"]  # never looked at
    with pytest.raises(ValueError, match=r"^pixel_size=100000: decoding one image"):
        ConceptKNNClassifier(1, pixel_size=100000).fit(paths, concepts)
    with pytest.raises(ValueError, match=r"^pixel_size=30000: storing the pixel vectors of 2 "):
        ConceptKNNClassifier(1, pixel_size=30000).fit(paths, concepts)
    with pytest.raises(ValueError, match=r"^image_size=100000: decoding one image"):
        BackboneEmbedding("mobilenet", image_size=100000, weights=None).embed(paths)
    with pytest.raises(ValueError, match=r"^image_size=20000: holding the "
                                         r"input of a batch of 64 image\(s\)"):
        BackboneEmbedding("mobilenet", image_size=20000, weights=None,
                          batch_size=64).embed(paths * 32)
    assert decodes == {"decoded": 0, "checked": 0}


def test_a_block_size_beyond_memory_is_refused_naming_it_before_any_work(tiny_images,
                                                                       monkeypatch):
    from imageclef_concepts.files import _sizes

    X, y = tiny_images.images, tiny_images.concepts
    model = ConceptKNNClassifier(n_neighbors=2, block_size=10**6).fit(X, y)
    # Memory for a block of 2 queries against the training images, not of 17.
    monkeypatch.setattr(_sizes, "memory_limit", lambda: 2 * len(X) * 16)
    monkeypatch.setattr(model, "_embed", lambda X: pytest.fail("embedded"))
    with pytest.raises(ValueError, match=r"^block_size=1000000: comparing a block of 17 "
                                         r"images .*choose a smaller block_size"):
        model.kneighbors(X[:17])


def test_precomputed_embeddings_of_huge_values_find_their_neighbours():
    # Finite float32 values whose squares overflow: the rows must still be told apart.
    X = (np.eye(4, 8, dtype=np.float32) + 0.1) * np.float32(1e30)
    model = ConceptKNNClassifier(1, embedding="precomputed").fit(X, ["C1", "C2", "C3", "C4"])
    assert model.kneighbors(X)[1].ravel().tolist() == [0, 1, 2, 3]


def test_precomputed_embeddings_sparse_or_beyond_float32():
    from scipy import sparse

    X = np.eye(4, 6)
    model = ConceptKNNClassifier(1, embedding="precomputed").fit(
        sparse.csr_matrix(X), ["C1", "C2", "C3", "C4"])
    assert model.kneighbors(sparse.csr_matrix(X[[2]]))[1].tolist() == [[2]]
    with pytest.raises(ValueError, match="beyond float32's range"):
        ConceptKNNClassifier(1, embedding="precomputed").fit(X * 1e300, ["C1"] * 4)


@pytest.mark.parametrize("integer", [np.uint8, np.int8])
def test_a_small_numpy_integer_pixel_size_embeds_as_its_int(tiny_images, integer):
    # pixel_size=np.uint8(16) passed the checks (a whole number), then 16 * 16 * 3 wrapped
    # in uint8: 'cannot reshape array of size 18432 into shape (0)' (review 16).
    X, y = tiny_images.images[:6], tiny_images.concepts[:6]
    model = ConceptKNNClassifier(n_neighbors=2, pixel_size=integer(16)).fit(X, y)
    expected = ConceptKNNClassifier(n_neighbors=2, pixel_size=16).fit(X, y)
    assert model.embeddings_.shape == (6, 16 * 16 * 3)
    np.testing.assert_array_equal(model.predict_proba(X), expected.predict_proba(X))
