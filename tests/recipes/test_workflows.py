"""The workflows the command line, the demo and the reproduction share, tested directly.

Scikit-learn-only estimators stand in for the CNN, so that these run
without TensorFlow; the CNN goes through them in test_cli and
test_reproduce.
"""

import shutil

import numpy as np
import pytest
from sklearn.model_selection import KFold

from imageclef_concepts import (
    ConceptKNNClassifier,
    MostFrequentConcepts,
    ThresholdTuner,
    load_imageclef,
    make_concept_images,
)
from imageclef_concepts.datasets._imageclef import image_files_by_id, image_path
from imageclef_concepts.recipes._workflows import (
    coarse_to_fine_search,
    concepts_at_thresholds,
    load_model,
    predict_folder,
    save_model,
    tune_rule,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("workflows")
    make_concept_images(12, 3, 16, random_state=0, directory=root)
    return root


def _knn_and_data(tiny_images):
    y = [";".join(c) for c in tiny_images.concepts]
    return ConceptKNNClassifier(3).fit(tiny_images.images, y), tiny_images.images, y


def test_an_id_with_several_files_uses_the_first_by_name(tmp_path):
    for name in ("a.png", "a.jpg", "b.png"):
        shutil.copy(__file__, tmp_path / name)  # only the names matter here
    files = image_files_by_id(tmp_path)
    assert image_path(files, "a") == str(tmp_path / "a.jpg")
    assert image_path(files, "b") == str(tmp_path / "b.png")


def test_predict_folder_gives_every_image_sorted_or_the_ids_asked(folder):
    data = load_imageclef(folder / "images", folder / "concepts.tsv")
    model = MostFrequentConcepts(k=1).fit(data.paths, data.concepts)
    ids, concepts = predict_folder(model, folder / "images", batch_size=5, progress=False)
    assert ids == sorted(data.ids) and len(concepts) == len(ids)
    wanted = data.ids[::-1][:4]
    ids, concepts = predict_folder(model, folder / "images", ids=wanted, progress=False)
    assert ids == wanted and len(concepts) == 4


def test_predict_folder_refuses_ids_without_a_file(folder):
    model = MostFrequentConcepts(k=1).fit(["x"] * 2, ["C1", "C1"])
    with pytest.raises(FileNotFoundError, match="1 image.s. have no file in .*'nowhere'"):
        predict_folder(model, folder / "images", ids=["nowhere"], progress=False)


def test_coarse_to_fine_search_refines_the_grid_each_round(tiny_images):
    _, X, y = _knn_and_data(tiny_images)
    said = []
    searches = coarse_to_fine_search(ConceptKNNClassifier(), {"n_neighbors": [1, 9]}, X, y,
                                     cv=KFold(2), refit=False, say=said.append)
    assert len(searches) == 2
    first, second = (search.param_grid["n_neighbors"] for search in searches)
    assert first == [1, 9] and second != first
    assert said[0].startswith("Round 1 of the coarse-to-fine search: 2 configuration(s)")
    assert "official F1" in said[1] and said[2].startswith("Round 2")


def test_tune_rule_never_refits_and_keeps_the_model(tiny_images):
    model, X, y = _knn_and_data(tiny_images)
    tuner = tune_rule(model, X, y, thresholds=[0.2, 0.5])
    assert isinstance(tuner, ThresholdTuner) and tuner.estimator_ is model
    assert tuner.best_threshold_ in (0.2, 0.5)


def test_concepts_at_thresholds_are_the_predictions_at_each(tiny_images):
    model, X, _ = _knn_and_data(tiny_images)
    at = concepts_at_thresholds(model, X, (0.2, 0.9))
    for threshold, concepts in at.items():
        assert concepts == list(model.set_params(threshold=threshold).predict_concepts(X))
    assert sum(map(len, at[0.2])) >= sum(map(len, at[0.9]))


def test_save_model_and_load_model_round_trip_a_pickle_only_when_allowed(tmp_path,
                                                                       tiny_images):
    model, X, _ = _knn_and_data(tiny_images)
    path = tmp_path / "knn.joblib"
    save_model(model, path)
    with pytest.raises(ValueError, match="allow_pickle=True"):
        load_model(path)
    np.testing.assert_array_equal(load_model(path, allow_pickle=True).predict_proba(X),
                                  model.predict_proba(X))
    with pytest.raises(ValueError, match="must end in"):
        save_model(model, tmp_path / "knn.txt")


def test_a_pickle_holding_no_model_is_refused_by_name(tmp_path):
    # predict --model x.joblib --allow-pickle on a pickle of something else (a dict) was
    # AttributeError: 'dict' object has no attribute 'get_params', a traceback.
    import joblib

    joblib.dump({"a": 1}, path := tmp_path / "other.joblib")
    with pytest.raises(ValueError, match=r"other.joblib holds a dict, not a model"):
        load_model(path, allow_pickle=True)
    # A pickled class (not an estimator) passed as a model: predict raised TypeError:
    # BaseEstimator.get_params() missing 1 required positional argument: 'self', a traceback;
    # an estimator never fitted said 'This ConceptCNNClassifier instance is not fitted yet',
    # naming no file.
    from imageclef_concepts import ConceptCNNClassifier

    joblib.dump(ConceptCNNClassifier, path)
    with pytest.raises(ValueError, match=r"other.joblib holds the class ConceptCNNClassifier, "
                                         r"not a model"):
        load_model(path, allow_pickle=True)
    joblib.dump(ConceptCNNClassifier(), path)
    with pytest.raises(ValueError, match=r"other.joblib holds a ConceptCNNClassifier that was "
                                         r"never fitted"):
        load_model(path, allow_pickle=True)


def test_save_model_refuses_a_pickle_load_model_would_refuse(tmp_path):
    # save_model wrote an unfitted estimator, a Pipeline or a GridSearchCV to a .joblib file
    # without a word, which load_model (and predict --model) then refuse: the model saved
    # is found unusable only when it is needed.
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    X, y = [[0], [0], [1], [1]], ["C1", "C1", "C2", "C2"]
    path = tmp_path / "m.joblib"
    path.write_bytes(b"kept")
    for model, message in [
            (MostFrequentConcepts(), r"^m.joblib: a MostFrequentConcepts that was never fitted"),
            (make_pipeline(MostFrequentConcepts(k=1)).fit(X, y), r"^m.joblib: a Pipeline, not "),
            (GridSearchCV(MostFrequentConcepts(), {"k": [1, 2]}, cv=2).fit(X, y),
             r"^m.joblib: a GridSearchCV, not a model"),
            (MostFrequentConcepts, r"^m.joblib: the class MostFrequentConcepts, not a model")]:
        with pytest.raises(ValueError, match=message.replace("m.joblib", r".*m\.joblib")):
            save_model(model, path)
        assert path.read_bytes() == b"kept"
    save_model(MostFrequentConcepts(k=1).fit(X, y), path)
    assert load_model(path, allow_pickle=True).predict_concepts([[0]]) == [("C1",)]


def test_save_model_writes_a_zip_archive_that_load_model_reads(tmp_path, tiny_images):
    model, X, _ = _knn_and_data(tiny_images)
    path = tmp_path / "knn.zip"
    save_model(model, path)  # was "must end in .keras or .joblib"
    np.testing.assert_array_equal(load_model(path).predict_proba(X), model.predict_proba(X))
    with pytest.raises(Exception, match="not fitted"):
        save_model(MostFrequentConcepts(), tmp_path / "unfitted.zip")
    assert not (tmp_path / "unfitted.zip").exists()


def test_a_search_whose_fits_all_fail_says_the_first_error_in_one_line(tiny_images):
    # scikit-learn's "All the 2 fits failed. ... Below are more details about the failures"
    # with each traceback reached the command line as its error line (review 18 F9).
    _, X, y = _knn_and_data(tiny_images)
    with pytest.raises(ValueError) as raised:
        coarse_to_fine_search(ConceptKNNClassifier(), {"n_neighbors": [-1, -2]}, X, y,
                              cv=KFold(2), refit=False, say=lambda line: None)
    message = str(raised.value)
    assert message.startswith("every configuration of the coarse-to-fine search failed "
                              "(4 fit(s)); the first error: InvalidParameterError: The "
                              "'n_neighbors' parameter of ConceptKNNClassifier must be")
    assert "\n" not in message and "Traceback" not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_fits_that_fail_in_a_search_are_said_in_one_line_warning(tiny_images):
    # scikit-learn's FitFailedWarning held each failure's whole traceback.
    from sklearn.exceptions import FitFailedWarning

    _, X, y = _knn_and_data(tiny_images)
    with pytest.warns(FitFailedWarning) as caught:
        searches = coarse_to_fine_search(ConceptKNNClassifier(), {"n_neighbors": [-1, 2]}, X,
                                         y, n_rounds=1, cv=KFold(2), refit=False,
                                         say=lambda line: None)
    assert searches[0].best_params_ == {"n_neighbors": 2}
    (warning,) = [w for w in caught if w.category is FitFailedWarning]
    message = str(warning.message)
    assert message.startswith("2 of the 4 fits of the coarse-to-fine search failed and score "
                              "nan; the first error: InvalidParameterError: The 'n_neighbors' "
                              "parameter of ConceptKNNClassifier must be")
    assert "\n" not in message and "Traceback" not in message
