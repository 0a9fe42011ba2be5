import numpy as np
import pytest

from imageclef_concepts import MostFrequentConcepts, ThresholdTuner, imageclef_f1_score


def test_predicts_the_k_most_frequent_concepts():
    y = ["A;B", "A;C", "A;B", "D"]
    model = MostFrequentConcepts(k=2).fit(np.zeros((4, 1)), y)
    assert list(model.predict(np.zeros((3, 1)))) == [("A", "B")] * 3
    assert model.predict_concepts(np.zeros((1, 1))) == [("A", "B")]
    np.testing.assert_allclose(model.predict_proba(np.zeros((1, 1)))[0], [0.75, 0.5, 0.25, 0.25])


def test_auto_k_maximises_the_official_score_on_training_data():
    rng = np.random.default_rng(0)
    names = np.array([f"C{i}" for i in range(10)])
    presence = rng.random((200, 10)) < np.linspace(0.9, 0.05, 10)
    y = [";".join(names[row]) for row in presence]
    model = MostFrequentConcepts().fit(np.zeros((200, 1)), y)
    by_k = [MostFrequentConcepts(k=k).fit(np.zeros((200, 1)), y).score(np.zeros((200, 1)), y)
            for k in range(1, 11)]
    assert model.k_ == int(np.argmax(by_k)) + 1
    assert model.score(np.zeros((200, 1)), y) == pytest.approx(max(by_k))


def test_indicator_targets_and_thresholding():
    Y = np.array([[1, 0, 1], [1, 0, 0], [1, 1, 0]])
    model = MostFrequentConcepts(k=1).fit(np.zeros((3, 2)), Y)
    np.testing.assert_array_equal(model.predict(np.zeros((2, 2))), [[1, 0, 0], [1, 0, 0]])
    tuner = ThresholdTuner(MostFrequentConcepts(k=1), cv=3, thresholds=[0.2, 0.5, 0.9])
    tuner.fit(np.zeros((3, 2)), Y)
    assert tuner.predict(np.zeros((1, 2))).shape == (1, 3)
    assert imageclef_f1_score(Y, model.predict(np.zeros((3, 2)))) == model.score(
        np.zeros((3, 2)), Y)


def test_bad_input():
    with pytest.raises(ValueError, match="no positive label"):
        MostFrequentConcepts().fit(np.zeros((2, 1)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="3 images but y has 2 rows"):
        MostFrequentConcepts().fit(np.zeros((3, 1)), ["A", "B"])


def test_in_grid_search_with_the_official_scorer():
    from sklearn.model_selection import GridSearchCV, KFold

    from imageclef_concepts import imageclef_f1

    y = np.array(["A;B", "A", "A;C", "B", "A;B", "A"] * 5, dtype=object)
    search = GridSearchCV(MostFrequentConcepts(), {"k": [1, 2, 3]}, scoring=imageclef_f1,
                          cv=KFold(3)).fit(np.zeros((30, 1)), y)
    expected = [MostFrequentConcepts(k=k).fit(np.zeros((30, 1)), y).score(np.zeros((30, 1)), y)
                for k in (1, 2, 3)]
    assert search.best_params_["k"] == int(np.argmax(expected)) + 1
