"""Targets: a DataFrame of 0/1 columns named by concept is an indicator matrix, everywhere."""

import numpy as np
import pandas as pd
import pytest

from imageclef_concepts import (
    ConceptEncoder,
    ConceptEnsemble,
    ConceptKNNClassifier,
    MostFrequentConcepts,
    ThresholdTuner,
    imageclef_f1_score,
)

T = pd.DataFrame([[1, 0], [0, 1], [1, 1]], columns=["C1", "C2"])


def images(n):
    return np.random.default_rng(0).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)


def test_metric_reads_frames_by_concept_name():
    assert imageclef_f1_score(T, 1 - T) == 0.0  # the opposite, not a perfect score
    assert imageclef_f1_score(T, T) == 1.0
    reordered = T[["C2", "C1"]]
    assert imageclef_f1_score(T, reordered) == 1.0  # by name, not by position
    assert imageclef_f1_score(T, ["C1", "C2", "C1;C2"]) == 1.0


def test_encoder_and_estimators_learn_the_rows_not_the_column_names():
    assert list(ConceptEncoder().fit(T).transform(T).sum(axis=0)) == [2, 2]
    model = MostFrequentConcepts(k=1).fit(images(3), T)
    assert list(model.classes_) == ["C1", "C2"]
    assert model.targets_.n_images_ == 3
    knn = ConceptKNNClassifier(1, pixel_size=4).fit(images(3), T)
    assert imageclef_f1_score(T, knn.predict(images(3))) == 1.0


def test_tuner_and_ensemble_take_frames():
    y = pd.DataFrame(np.tile([[1, 0], [0, 1]], (6, 1)), columns=["A", "B"])
    tuner = ThresholdTuner(ConceptKNNClassifier(1, pixel_size=4), cv=2, thresholds=5)
    assert list(tuner.fit(images(12), y).classes_) == ["A", "B"]
    ensemble = ConceptEnsemble([("knn", ConceptKNNClassifier(1, pixel_size=4)),
                                ("top", MostFrequentConcepts(k=1))]).fit(images(12), y)
    assert list(ensemble.classes_) == ["A", "B"]


@pytest.mark.parametrize("bad, named", [([[2, 0]], "'C1' holds 2"),
                                        ([[np.nan, 1]], "'C1' holds nan"),
                                        ([["yes", 1]], "'C1' is not numeric")])
def test_frames_with_other_values_are_refused_naming_the_column(bad, named):
    frame = pd.DataFrame(bad, columns=["C1", "C2"])
    with pytest.raises(ValueError, match=named):
        imageclef_f1_score(frame, frame)
    with pytest.raises(ValueError, match=named):
        MostFrequentConcepts().fit(images(1), frame)


def test_series_of_strings_stays_concept_lists_and_unnamed_frames_stay_positional():
    series = pd.Series(["C1;C2", "C2"])
    assert list(ConceptEncoder().fit(series).classes_) == ["C1", "C2"]
    Y = np.array([[1, 0], [0, 1]])
    assert imageclef_f1_score(pd.DataFrame(Y), Y) == 1.0


def test_cnn_fits_a_frame(tiny_images):
    from imageclef_concepts import ConceptCNNClassifier

    names = list(tiny_images.concept_names)
    frame = pd.DataFrame([[int(n in c) for n in names] for c in tiny_images.concepts],
                         columns=names)
    model = ConceptCNNClassifier(image_size=16, filters=(2,), dense_units=(4,), epochs=1,
                                 random_state=0).fit(tiny_images.images, frame)
    assert list(model.classes_) == sorted(n.upper() for n in names)
    imageclef_f1_score(frame, model.predict(tiny_images.images))  # compares by name


@pytest.mark.parametrize("columns, message", [
    ([" ", "C1"], "column ' ' has no name"),
    (["", "C1"], "column '' has no name"),
    (["C1", "C1"], "columns 'C1' and 'C1' are the same concept"),
    (["C1", "c1"], "columns 'C1' and 'c1' are the same concept 'C1'"),
    (["C1;C2", "C3"], "column 'C1;C2' holds ';'"),
])
def test_frame_columns_that_are_not_one_distinct_concept_each_are_refused(columns, message):
    truth = pd.DataFrame([[1, 0], [0, 1]], columns=columns)
    predicted = pd.DataFrame([[0, 0], [0, 1]], columns=columns)
    with pytest.raises(ValueError, match=message):
        imageclef_f1_score(truth, predicted)  # was 1.0: the first column silently dropped
    with pytest.raises(ValueError, match=message):
        MostFrequentConcepts().fit(images(2), truth)


@pytest.mark.parametrize("columns", [[10, 20], [1, 0], [b"C1", b"C2"], [None, "C2"],
                                     [np.nan, "C2"], ["C1", 5],
                                     pd.MultiIndex.from_tuples([("a", "C1"), ("a", "C2")])])
def test_frames_labelled_other_than_by_strings_or_0_to_n_are_refused(columns):
    truth = pd.DataFrame([[1, 0], [0, 1]], columns=columns)
    with pytest.raises(ValueError, match="must all be concept names .strings., or be the "
                                         "default 0..n-1"):
        imageclef_f1_score(truth, truth)  # positional: a reordered frame would score 1.0
    assert imageclef_f1_score(pd.DataFrame(np.eye(2, dtype=int), columns=[0, 1]),
                              np.eye(2, dtype=int)) == 1.0


def test_messages_describe_a_frame_as_a_frame():
    with pytest.raises(ValueError, match=r"got a DataFrame of shape \(3, 2\) with "
                                         r"concept-named columns and an array"):
        imageclef_f1_score(T, T.to_numpy())
    model = MostFrequentConcepts(k=1).fit(images(3), T)
    with pytest.raises(ValueError, match=r"got a DataFrame of shape \(3, 2\) with unnamed"):
        model.targets_.transform(pd.DataFrame(T.to_numpy()))


def test_a_table_as_x_is_named_a_table_not_a_dtype():
    paths = pd.DataFrame({"path": ["a.png", "b.png"], "ID": ["a", "b"]})
    with pytest.raises(ValueError, match=r"X is a DataFrame of 2 columns \('path', 'ID'\).*"
                                         r"X\['path'\]"):
        ConceptKNNClassifier(1, pixel_size=4).fit(paths, ["C1", "C2"])


@pytest.mark.parametrize("integer", [np.int64, np.int32])
def test_numpy_integer_counts_are_saved_as_json_numbers(integer, tmp_path):
    # MostFrequentConcepts(min_count=np.int64(1)) and ConceptKNNClassifier(max_labels=
    # np.int32(2)) fitted, then save() failed ('Object of type int64 is not JSON
    # serializable'): the vocabulary's dict kept the NumPy integers (review 16).
    import json

    from imageclef_concepts.concepts._targets import ConceptTargets

    targets = ConceptTargets(min_count=integer(1), max_labels=integer(2)).fit(["C1;C2", "C1"])
    values = json.loads(json.dumps(targets.to_dict()))
    assert (values["min_count"], values["max_labels"]) == (1, 2)
    model = MostFrequentConcepts(k=1, min_count=integer(1), max_labels=integer(2)).fit(
        [[0], [0]], ["C1;C2", "C1"])
    model.save(tmp_path / "m.zip")
    assert MostFrequentConcepts.load(tmp_path / "m.zip").targets_.max_labels == 2


def test_the_library_fits_under_a_pandas_transform_output():
    # sklearn.set_config(transform_output="pandas") wrapped the library's own sparse concept
    # encoders too: every estimator's fit, oracle_bounds and the concept plots failed with
    # 'The transformer outputs a scipy sparse matrix' (review 16).
    import matplotlib
    import sklearn
    from scipy import sparse

    from imageclef_concepts import oracle_bounds
    from imageclef_concepts.concepts._targets import ConceptTargets

    matplotlib.use("Agg")
    from imageclef_concepts import plot_concept_frequencies

    y = ["C1;C2", "C1", "C2;C3", "C1"]
    with sklearn.config_context(transform_output="pandas"):
        targets = ConceptTargets().fit(y)
        assert sparse.issparse(targets.transform(y))
        assert list(ConceptTargets.from_dict(targets.to_dict()).classes_) == ["C1", "C2", "C3"]
        assert sparse.issparse(ConceptTargets(concepts=["C1", "C2"]).fit(y).transform(y))
        assert MostFrequentConcepts(k=1).fit(images(4), y).predict_concepts(images(1)) == [
            ("C1",)]
        oracle_bounds(y, y)
        plot_concept_frequencies(y)
        # the user's own encoder follows the setting, as scikit-learn's transformers do
        assert isinstance(ConceptEncoder().fit_transform(y), pd.DataFrame)
