"""Estimators, searches, ensembles and the command line over an image store: decoded once."""

import json
import zipfile

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold

from imageclef_concepts import (
    ConceptCNNClassifier,
    ConceptEnsemble,
    ConceptKNNClassifier,
    ImageStore,
    ThresholdTuner,
    imageclef_f1,
    make_concept_images,
    read_concepts,
)
from imageclef_concepts.cli._main import main
from imageclef_concepts.recipes._workflows import load_model, save_model, use_image_store

TINY = dict(image_size=16, filters=(4,), dense_units=(8,), epochs=1, random_state=0,
            validation_fraction=None)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return make_concept_images(30, 3, 24, random_state=0, directory=folder / "train")


def _joined(concepts):
    return [";".join(c) for c in concepts]  # one string per image, as folds split them


@pytest.mark.slow  # networks trained end to end: seconds (the README's 6 minutes)
def test_training_from_the_store_equals_training_from_the_files(tmp_path, data):
    without = ConceptCNNClassifier(**TINY).fit(data.paths, data.concepts)
    store = ImageStore(tmp_path / "store")
    first = ConceptCNNClassifier(**TINY, image_store=store).fit(data.paths, data.concepts)
    again = ConceptCNNClassifier(**TINY, image_store=store).fit(data.paths, data.concepts)
    expected = without.predict_proba(data.paths)
    for model in (first, again):  # decoding into the store, then reading from it
        np.testing.assert_allclose(model.predict_proba(data.paths), expected, atol=1e-6)


@pytest.mark.slow
def test_a_grid_search_decodes_each_image_once(tmp_path, data, decodes):
    store = str(tmp_path / "store")
    search = GridSearchCV(ConceptCNNClassifier(**TINY, image_store=store),
                          {"learning_rate": [1e-3, 1e-4], "dense_units": [(4,), (8,)]},
                          cv=KFold(2, shuffle=True, random_state=0),
                          scoring=imageclef_f1).fit(data.paths, _joined(data.concepts))
    assert len(search.cv_results_["params"]) == 4  # 8 fits, 8 scorings and a refit
    assert decodes["decoded"] == len(data.paths)


@pytest.mark.slow
def test_ensemble_members_tuner_and_retrieval_share_one_decoding(tmp_path, data, decodes):
    store = ImageStore(tmp_path / "store")
    ensemble = ConceptEnsemble([
        ("cnn", ConceptCNNClassifier(**TINY, image_store=store)),
        ("other_seed", ConceptCNNClassifier(**{**TINY, "random_state": 1}, image_store=store)),
        ("knn", ConceptKNNClassifier(3, pixel_size=16, image_store=store))])
    tuned = ThresholdTuner(ensemble, cv=2, thresholds=5).fit(data.paths, _joined(data.concepts))
    tuned.predict(data.paths)
    assert decodes["decoded"] == len(data.paths)  # one size (16 px): decoded once in all


@pytest.mark.slow
def test_the_store_is_not_saved_with_a_model(tmp_path, data):
    store = ImageStore(tmp_path / "store")
    cnn = ConceptCNNClassifier(**TINY, image_store=store).fit(data.paths, data.concepts)
    knn = ConceptKNNClassifier(3, pixel_size=8, image_store=store).fit(data.paths, data.concepts)
    for model, path in ((cnn, tmp_path / "cnn.keras"), (knn, tmp_path / "knn.zip")):
        save_model(model, path)
        assert load_model(path).image_store is None
        assert str(tmp_path) not in (_archive_text(path) if path.suffix == ".zip" else "")


def test_a_store_path_written_into_a_model_file_is_never_used(tmp_path, data):
    knn = ConceptKNNClassifier(3, pixel_size=8).fit(data.paths, data.concepts)
    save_model(knn, tmp_path / "knn.zip")
    planted = tmp_path / "planted.zip"
    with zipfile.ZipFile(tmp_path / "knn.zip") as source, zipfile.ZipFile(planted, "w") as out:
        for item in source.infolist():
            data_bytes = source.read(item)
            if item.filename.endswith(".json") and b'"image_store"' in data_bytes:
                data_bytes = data_bytes.replace(b'"image_store": null',
                                                json.dumps({"image_store": str(
                                                    tmp_path / "elsewhere")})[1:-1].encode())
            out.writestr(item, data_bytes)
    loaded = load_model(planted)
    assert loaded.image_store is None
    loaded.predict(data.paths)
    assert not (tmp_path / "elsewhere").exists()


def _archive_text(path):
    with zipfile.ZipFile(path) as archive:
        return "".join(archive.read(name).decode("utf-8", "replace")
                       for name in archive.namelist() if name.endswith(".json"))


@pytest.mark.slow
def test_use_image_store_reaches_every_fitted_member(tmp_path, data):
    ensemble = ConceptEnsemble([("cnn", ConceptCNNClassifier(**TINY)),
                                ("knn", ConceptKNNClassifier(3, pixel_size=8))])
    tuned = ThresholdTuner(ensemble, cv=2, thresholds=3).fit(data.paths, _joined(data.concepts))
    store = ImageStore(tmp_path / "store")
    assert use_image_store(tuned, store) >= 2
    members = tuned.estimator_.estimators_
    assert all(member.image_store is store for member in members)
    before = tuned.predict_proba(data.paths)
    assert store.summary()["16px-bilinear"]["images"] == len(data.paths)
    np.testing.assert_allclose(tuned.predict_proba(data.paths), before, atol=1e-6)


@pytest.mark.slow
def test_cli_prepare_train_and_predict_with_a_store(tmp_path, data, capsys, decodes):
    images, store = data.paths[0].rsplit("/", 1)[0], tmp_path / "store"
    assert main(["prepare", "--images", images, "--store", str(store), "--image-size", "16",
                 "--quiet"]) == 0
    assert main(["prepare", "--images", images, "--store", str(store), "--image-size", "16"
                 ]) == 0
    assert "0 decoded" in capsys.readouterr().out and decodes["decoded"] == len(data.paths)
    model, run = tmp_path / "model.keras", tmp_path / "run.tsv"
    assert main(["train", "--images", images, "--concepts", data.concepts_file, "--output",
                 str(model), "--image-size", "16", "--epochs", "1", "--filters", "4",
                 "--dense-units", "8", "--image-store", str(store), "--quiet"]) == 0
    assert main(["predict", "--model", str(model), "--images", images, "--output", str(run),
                 "--image-store", str(store), "--quiet"]) == 0
    assert decodes["decoded"] == len(data.paths)  # train and predict decoded nothing
    ids, concepts, _ = read_concepts(run)
    plain = tmp_path / "plain.tsv"
    assert main(["predict", "--model", str(model), "--images", images, "--output", str(plain),
                 "--quiet"]) == 0
    assert read_concepts(plain)[:2] == (ids, concepts)


@pytest.mark.parametrize("where", ["a users folder", "the output", "the checkpoint"])
def test_cli_refuses_a_store_that_would_destroy_or_mix_files(tmp_path, data, capsys, where):
    images = data.paths[0].rsplit("/", 1)[0]
    model = tmp_path / "model.keras"
    store = {"a users folder": tmp_path / "mine", "the output": model,
             "the checkpoint": tmp_path / "model.keras.checkpoint"}[where]
    if where == "a users folder":
        store.mkdir()
        (store / "notes.txt").write_text("mine")
    code = main(["train", "--images", images, "--concepts", data.concepts_file, "--output",
                 str(model), "--image-size", "16", "--epochs", "1", "--image-store", str(store),
                 "--quiet"])
    error = capsys.readouterr().err
    assert code == 2 and len(error.strip().splitlines()) == 1
    assert ("not an image store" in error if where == "a users folder" else "overlap" in error)
    assert not model.exists()
    if where == "a users folder":
        assert sorted(p.name for p in store.iterdir()) == ["notes.txt"]


def test_cli_prepare_names_a_foreign_folder_in_one_line(tmp_path, data, capsys):
    images = data.paths[0].rsplit("/", 1)[0]
    assert main(["prepare", "--images", images, "--store", images, "--quiet"]) == 2
    error = capsys.readouterr().err
    assert f"--store {images} is --images {images}: name a folder outside it" in error
    assert len(error.strip().splitlines()) == 1


def test_cli_predict_with_a_model_that_reads_no_images_makes_no_store(tmp_path, data, capsys):
    from imageclef_concepts import MostFrequentConcepts

    images = data.paths[0].rsplit("/", 1)[0]
    save_model(MostFrequentConcepts(k=1).fit(data.paths, data.concepts), tmp_path / "top.zip")
    assert main(["predict", "--model", str(tmp_path / "top.zip"), "--images", images,
                 "--output", str(tmp_path / "run.tsv"), "--image-store",
                 str(tmp_path / "store"), "--quiet"]) == 2
    assert "reads no image files" in capsys.readouterr().err
    assert not (tmp_path / "store").exists() and not (tmp_path / "run.tsv").exists()


@pytest.mark.slow
def test_cli_sees_an_output_inside_the_store_through_dot_dot(tmp_path, data, capsys):
    images = data.paths[0].rsplit("/", 1)[0]
    model = tmp_path / "model.keras"
    assert main(["train", "--images", images, "--concepts", data.concepts_file, "--output",
                 str(model), "--image-size", "16", "--epochs", "1", "--filters", "4",
                 "--dense-units", "8", "--quiet"]) == 0
    (tmp_path / "elsewhere").mkdir()
    main(["prepare", "--images", images, "--store", str(tmp_path / "store"), "--quiet"])
    sneaky = tmp_path / "elsewhere" / ".." / "store" / "run.tsv"
    assert main(["predict", "--model", str(model), "--images", images, "--output", str(sneaky),
                 "--image-store", str(tmp_path / "store"), "--quiet"]) == 2
    assert "overlap" in capsys.readouterr().err


def test_cli_prepare_with_an_image_size_beyond_memory_is_one_line_before_the_store(
        tmp_path, data, capsys):
    # 100000 px: 65 GiB to decode one image, more than any machine the tests run on.
    import time

    images = data.paths[0].rsplit("/", 1)[0]
    started = time.monotonic()
    assert main(["prepare", "--images", images, "--store", str(tmp_path / "store"),
                 "--image-size", "100000", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert "--image-size 100000" in error and "130,000,000,000 bytes" in error
    assert time.monotonic() - started < 5
    assert not (tmp_path / "store").exists()
