"""Model files are checked at load like parameters at fit: one ModelFileError, never a traceback."""

import copy
import io
import json
import os
import re
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imageclef_concepts import (
    ConceptCNNClassifier,
    ConceptEnsemble,
    ConceptKNNClassifier,
    ModelFileError,
    MostFrequentConcepts,
)
from imageclef_concepts.cli._main import main
from imageclef_concepts.recipes._workflows import load_model

RECORD = "imageclef_concepts.json"
X = np.random.default_rng(1).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
Y = ["C1", "C1;C2", "C2", "C1", "C2", "C1;C2"]


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory):
    model = ConceptCNNClassifier(image_size=16, filters=(2,), dense_units=(4,), epochs=1,
                                 random_state=0).fit(X, Y)
    path = tmp_path_factory.mktemp("cnn") / "model.keras"
    model.save(path)
    return model, path


@pytest.fixture(scope="module")
def archive(tmp_path_factory, cnn_file):
    ensemble = ConceptEnsemble([("knn", ConceptKNNClassifier(2, pixel_size=4).fit(X, Y)),
                                ("top", MostFrequentConcepts(k=1).fit(X, Y)),
                                ("cnn", cnn_file[0])], prefit=True).fit(X, Y)
    path = tmp_path_factory.mktemp("ensemble") / "ensemble.zip"
    ensemble.save(path)
    return ensemble, path


def rewritten(source, target, change_record=None, entries=None):
    """A copy of a model file with its JSON record changed and entries replaced."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = (entries or {}).get(name, old.read(name))
            if name == RECORD and change_record is not None:
                record = json.loads(data)
                change_record(record)
                data = json.dumps(record)
            new.writestr(name, data)
    return target


def knn_params(record):
    return record["estimator"]["members"][0][1]["params"]


@pytest.mark.parametrize("change, message", [
    (lambda r: knn_params(r).update(n_neighbors=0), "n_neighbors"),
    (lambda r: knn_params(r).update(n_neighbors=10), "more than the 6 training images"),
    (lambda r: r["estimator"]["params"].update(weights=[1, -1, 1]), "weights"),
    (lambda r: r["estimator"]["params"].update(threshold=2), "threshold"),
    (lambda r: r["estimator"]["members"][1][1].update(k=0), "k=0"),
    (lambda r: r["estimator"]["members"][1][1].pop("targets"), "no 'targets'"),
    (lambda r: r["estimator"].update(members="knn"), "must be a list"),
    (lambda r: r["estimator"]["targets"].update(classes=["C1", "C9"]), "members"),
    (lambda r: r["estimator"].update({"class": "Pickle"}), "unknown estimator class"),
])
def test_bad_archive_values_are_one_model_file_error(archive, tmp_path, change, message):
    broken = rewritten(archive[1], tmp_path / "broken.zip", change)
    with pytest.raises(ModelFileError, match=message) as raised:
        load_model(broken)
    assert str(broken) in str(raised.value)
    assert main(["predict", "--model", str(broken), "--images", str(tmp_path),
                 "--output", str(tmp_path / "run.tsv")]) == 2


def test_members_nested_deeper_than_any_model_are_one_model_file_error(archive, tmp_path):
    # An 8 KB archive whose ensemble held an ensemble holding an ensemble... 300 deep loaded,
    # then predict was a RecursionError traceback (info printed 10,000 lines).
    def nest(record):
        ensemble, knn = record["estimator"], record["estimator"]["members"][0]
        node = knn[1]
        for _ in range(300):
            node = {**copy.deepcopy(ensemble), "members": [["e", node], knn]}
        record["estimator"] = node

    deep = rewritten(archive[1], tmp_path / "deep.zip", nest)
    with pytest.raises(ModelFileError, match=r"deep\.zip: .*nested more than 32 deep"):
        load_model(deep)
    assert main(["predict", "--model", str(deep), "--images", str(tmp_path),
                 "--output", str(tmp_path / "run.tsv")]) == 2


def test_bad_archive_arrays_are_one_model_file_error(archive, tmp_path):
    names = zipfile.ZipFile(archive[1]).namelist()
    embeddings = next(n for n in names if n.endswith("embeddings.npy"))
    for data in (np.array(["a", "b"]), np.zeros((3, 2)), np.zeros(4)):
        buffer = io.BytesIO()
        np.save(buffer, data)
        broken = rewritten(archive[1], tmp_path / "broken.zip",
                           entries={embeddings: buffer.getvalue()})
        with pytest.raises(ModelFileError, match="embeddings|3 training images"):
            load_model(broken)
    broken = rewritten(archive[1], tmp_path / "broken.zip", entries={embeddings: b"junk"})
    with pytest.raises(ModelFileError, match="not a NumPy array file"):
        load_model(broken)


def test_an_array_whose_header_states_more_than_memory_is_one_model_file_error(archive,
                                                                              tmp_path):
    # NumPy allocates the shape a .npy header states before reading its data: a few
    # bytes stating 512 PiB were a MemoryError, a traceback from predict --model.
    embeddings = next(n for n in zipfile.ZipFile(archive[1]).namelist()
                      if n.endswith("embeddings.npy"))
    header = repr({"descr": "<f8", "fortran_order": False, "shape": (2**56,)}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    stated = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    broken = rewritten(archive[1], tmp_path / "broken.zip", entries={embeddings: stated})
    with pytest.raises(ModelFileError, match="embeddings.npy.*not a NumPy array file"):
        load_model(broken)
    assert main(["predict", "--model", str(broken), "--images", str(tmp_path),
                 "--output", str(tmp_path / "run.tsv")]) == 2


@pytest.mark.parametrize("change, message", [
    (lambda r: r["params"].update(threshold=-3), "threshold"),
    (lambda r: r["params"].update(image_size=20), "image_size=20"),
    (lambda r: r.pop("targets"), "no 'targets'"),
    (lambda r: r["targets"].update(classes=["A", "B", "C"], concept_counts=[1, 1, 1],
                                   column_counts=None), "3 concepts"),
    (lambda r: r.update(best_epoch="last"), "best_epoch"),
    (lambda r: r.update(params=[]), "must be an object"),
    (lambda r: r["history"].update(val_loss=[0.5, 0.4]),
     r"history\['val_loss'\] has 2 values for the 1 epochs"),
    (lambda r: r.update(best_epoch=1), "best_epoch=1 is not one of the 1 epochs"),
])
def test_bad_keras_records_are_one_model_file_error(cnn_file, tmp_path, change, message):
    broken = rewritten(cnn_file[1], tmp_path / "broken.keras", change)
    with pytest.raises(ModelFileError, match=message):
        ConceptCNNClassifier.load(broken)


def test_unknown_parameters_are_dropped_with_a_warning_naming_them(cnn_file, archive, tmp_path):
    model, path = cnn_file
    newer = rewritten(path, tmp_path / "newer.keras",
                      lambda r: r["params"].update(label_smoothing=0.1))
    with pytest.warns(UserWarning, match="label_smoothing"):
        loaded = ConceptCNNClassifier.load(newer)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    newer = rewritten(archive[1], tmp_path / "newer.zip",
                      lambda r: knn_params(r).update(metric="cosine"))
    with pytest.warns(UserWarning, match="metric"):
        loaded = load_model(newer)
    np.testing.assert_array_equal(loaded.predict(X), archive[0].predict(X))


def test_foreign_and_renamed_files_are_named(cnn_file, archive, tmp_path, capsys):
    renamed = tmp_path / "ensemble.keras"
    renamed.write_bytes(archive[1].read_bytes())
    with pytest.raises(ModelFileError, match="archive of a ConceptEnsemble"):
        load_model(renamed)
    renamed = tmp_path / "model.zip"
    renamed.write_bytes(cnn_file[1].read_bytes())  # Keras reads a network from no other name
    with pytest.raises(ModelFileError, match=r"\.keras file under another name: rename it to "
                                             r"end in \.keras"):
        load_model(renamed)
    text = tmp_path / "notes.keras"
    text.write_text("hello")
    assert main(["info", str(text)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "not a zip file" in error


@pytest.mark.parametrize("history, best, expected", [
    ({"loss": [0.7], "val_loss": []}, None, "- val_loss: not logged"),
    # What partial_fit writes when only its second call had validation data.
    ({"loss": [0.7, 0.6], "val_loss": [0.5]}, 1,
     "- val_loss logged in 1 of the 2 epochs (validation data in only some partial_fit "
     "calls); the last: 0.5000"),
])
def test_info_prints_a_history_with_fewer_validation_values(cnn_file, tmp_path, capsys,
                                                              history, best, expected):
    changed = rewritten(cnn_file[1], tmp_path / "m.keras",
                        lambda r: r.update(history=history, best_epoch=best))
    assert main(["info", str(changed)]) == 0  # was an IndexError traceback
    assert expected in capsys.readouterr().out
    ConceptCNNClassifier.load(changed).predict(X[:1])


def test_info_escapes_control_characters_read_from_the_file(cnn_file, archive, tmp_path,
                                                            capsys):
    hostile = "\x1b]0;pwned\x07\x1b[2J\nline"

    def change(record):
        record.update(saved_at=hostile, keras_version=hostile)
        record["params"][hostile] = hostile
        record["tuning"] = {"official_f1": 0.5, "strategy": hostile, "n_images": 3}

    assert main(["info", str(rewritten(cnn_file[1], tmp_path / "m.keras", change))]) == 0
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "\x07" not in printed and "\nline" not in printed
    assert printed.count("\\x1b]0;pwned\\x07\\x1b[2J\\nline") == 5

    def change_archive(record):
        record["library_version"] = hostile
        record["estimator"]["members"][0][0] = hostile
        knn_params(record)["embedding"] = hostile

    assert main(["info", str(rewritten(archive[1], tmp_path / "e.zip", change_archive))]) == 0
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "\x07" not in printed and "\nline" not in printed


def test_a_card_shows_a_names_bytes_that_are_not_utf8_as_elsewhere():
    from imageclef_concepts.models._card import printable

    # An image store or checkpoint folder b"/data/d\xe9" (os.fsdecode: "/data/d\udce9"):
    # shown as the reports and the command line's messages show it.
    assert printable("/data/d\udce9/store") == "/data/d\\xe9/store"
    assert printable("caf\u00e9\x1b") == "caf\u00e9\\x1b"


def test_info_reads_archives(archive, capsys):
    assert main(["info", str(archive[1])]) == 0
    card = capsys.readouterr().out
    for expected in ("ConceptEnsemble", "member knn (ConceptKNNClassifier)",
                     "member cnn (ConceptCNNClassifier)", "6 training images, 2 concepts"):
        assert expected in card
    assert "threshold None" not in card and "0 training images" not in card


def test_a_failed_imagenet_download_is_one_line_on_what_to_do(monkeypatch):
    import keras

    from imageclef_concepts import BackboneEmbedding

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/x.h5: None -- "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", offline)
    with pytest.raises(ConnectionError, match="internet access once.*weights file"):
        BackboneEmbedding("mobilenet", image_size=32).embed(np.zeros((1, 32, 32, 3), np.uint8))


# ---------------------------------------------------------------- mutations

def paths_of(value, prefix=()):
    """Every (path to a value) in a JSON tree."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths_of(item, (*prefix, key))
    elif isinstance(value, list) and len(value) <= 4:
        for index, item in enumerate(value):
            yield from paths_of(item, (*prefix, index))


REPLACEMENTS = st.sampled_from([None, True, 0, -1, 7, 2.5, 0.3, "x", "", [], [1, "a"], {},
                                {"format": 1}])
# Parameters whose change legitimately changes predictions (the rule, test-time mirroring).
DECIDING = {"threshold", "test_time_augmentation"}


@pytest.mark.slow
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_record_loads_and_predicts_the_same_or_is_a_model_file_error(
        data, cnn_file, tmp_path):
    model, path = cnn_file
    record = json.loads(zipfile.ZipFile(path).read(RECORD))
    where = data.draw(st.sampled_from([p for p in paths_of(record) if p]))
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    mutated = copy.deepcopy(record)
    parent = mutated
    for key in where[:-1]:
        parent = parent[key]
    if action == "delete":
        del parent[where[-1]]
    elif action == "add" and isinstance(parent, dict):
        parent["unexpected_" + str(where[-1])] = data.draw(REPLACEMENTS)
    else:
        parent[where[-1]] = data.draw(REPLACEMENTS)
    broken = rewritten(path, tmp_path / "mutated.keras", lambda r: (r.clear(), r.update(mutated)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            loaded = ConceptCNNClassifier.load(broken)
        except ModelFileError:
            return
        probabilities = loaded.predict_proba(X)
        predicted = loaded.predict(X)
    if not DECIDING & set(map(str, where)):
        np.testing.assert_allclose(probabilities, model.predict_proba(X), rtol=1e-6)
        if where[:1] != ("targets",):  # the same columns, perhaps renamed
            assert list(map(tuple, predicted)) == list(map(tuple, model.predict(X)))


@pytest.mark.parametrize("pos_weight", [[float("nan"), 1], [float("inf"), 1], 1e39, [0, 0],
                                        [-1, 1]])
def test_a_pos_weight_out_of_range_is_refused_at_fit_and_at_load(cnn_file, tmp_path,
                                                                 pos_weight):
    with pytest.raises(ValueError, match="pos_weight must be positive and finite"):
        ConceptCNNClassifier(image_size=16, filters=(2,), dense_units=(4,), epochs=1,
                             pos_weight=pos_weight).fit(X, Y)
    broken = rewritten(cnn_file[1], tmp_path / "broken.keras",
                       lambda r: r["params"].update(pos_weight=pos_weight))
    with pytest.raises(ModelFileError, match="pos_weight must be positive and finite"):
        ConceptCNNClassifier.load(broken)


# ------------------------------------------------ keras/_model_file.py, directly

def test_saved_params_round_trip_through_json():
    import keras

    from imageclef_concepts import DecisionRule
    from imageclef_concepts.keras._model_file import loaded_params, saved_params

    params = ConceptCNNClassifier(
        filters=(4, 8), kernel_size=(5, 3), loss=keras.losses.BinaryFocalCrossentropy(gamma=3),
        threshold=DecisionRule(0.3, max_concepts=4), checkpoint_dir="/somewhere",
        callbacks=[keras.callbacks.TerminateOnNaN()]).get_params()
    saved = json.loads(json.dumps(saved_params(params)))
    # A training run's own settings are not saved: a path read from a file is never used.
    assert saved["checkpoint_dir"] is None and saved["callbacks"] is None
    loaded = loaded_params(saved)
    assert loaded["filters"] == (4, 8) and loaded["kernel_size"] == (5, 3)
    assert loaded["threshold"] == DecisionRule(0.3, max_concepts=4)
    assert isinstance(loaded["loss"], keras.losses.BinaryFocalCrossentropy)
    assert loaded["loss"].get_config()["gamma"] == 3
    with pytest.raises(ModelFileError, match="parameter callbacks"):
        loaded_params({**saved, "callbacks": ["os.system"]})
    with pytest.raises(ModelFileError, match="parameter loss: not a Keras object"):
        loaded_params({**saved, "loss": {"keras_object": {
            "class_name": "Nothing", "config": {}, "module": "keras.losses"}}})


def test_a_subclass_loads_as_itself(cnn_file):
    from imageclef_concepts.keras._model_file import read_keras_file

    class MyCNN(ConceptCNNClassifier):
        pass

    model, path = cnn_file
    loaded = read_keras_file(path, MyCNN)
    assert type(loaded) is MyCNN and type(MyCNN.load(path)) is MyCNN
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_check_network_names_what_disagrees(cnn_file):
    from imageclef_concepts.keras._model_file import check_network

    network = cnn_file[0].model_
    check_network(network, 16, 2)
    with pytest.raises(ModelFileError, match="takes \\(16, 16, 3\\) images but image_size=32"):
        check_network(network, 32, 2)
    with pytest.raises(ModelFileError, match="record names 3 concepts"):
        check_network(network, 16, 3)


def test_a_newer_format_is_refused_and_format_1_is_read(cnn_file, tmp_path):
    from imageclef_concepts.keras._model_file import FILE_FORMAT, read_metadata

    path = cnn_file[1]
    assert read_metadata(path)["format"] == FILE_FORMAT
    newer = rewritten(path, tmp_path / "newer.keras",
                      lambda r: r.update(format=FILE_FORMAT + 1))
    with pytest.raises(ModelFileError, match=f"file format {FILE_FORMAT + 1}"):
        read_metadata(newer, shown="shown.keras")

    def as_format_1(record):  # 0.1.0: the classes and their counts at the top
        targets = record.pop("targets")
        record.update(format=1, classes=targets["classes"],
                      concept_counts=targets["concept_counts"])

    old = rewritten(path, tmp_path / "old.keras", as_format_1)
    assert read_metadata(old)["targets"]["classes"] == list(cnn_file[0].classes_)


def _top_file(tmp_path, module):
    """A saved MostFrequentConcepts whose description names ``module`` as its class's."""
    path = tmp_path / "top.zip"
    MostFrequentConcepts(k=1).fit(X, Y).save(path)

    def rename(record):
        record["estimator"]["module"] = module
    return rewritten(path, tmp_path / "renamed.zip", rename)


@pytest.mark.parametrize("module", ["__main__", "mypackage.models"])
def test_a_users_class_not_loaded_is_refused_not_replaced_by_the_librarys(tmp_path, module):
    # A user's MostFrequentConcepts subclass of the same name, saved by a script: in
    # a process that has not defined it, the library's class must not stand in.
    with pytest.raises(ModelFileError, match=rf"{module}.MostFrequentConcepts, which is "
                                             r"not loaded.*(import|define) it first"):
        load_model(_top_file(tmp_path, module))


def test_a_users_class_of_a_library_name_loads_as_itself_once_defined(tmp_path):
    from imageclef_concepts import MostFrequentConcepts as Public

    class Inverted(Public):
        def decide(self, X):
            return ~super().decide(X)

    Inverted.__name__ = "MostFrequentConcepts"
    Inverted.__qualname__ = "MostFrequentConcepts"
    path = tmp_path / "inverted.zip"
    Inverted(k=1).fit(X, Y).save(path)
    loaded = load_model(path)
    assert type(loaded) is Inverted
    # A library module that no longer defines it (moved since): the public class.
    assert type(load_model(_top_file(tmp_path, "imageclef_concepts._old"))) is Public


def test_a_file_naming_a_library_class_that_is_no_estimator_is_refused_unimported(tmp_path):
    import subprocess
    import sys

    broken = rewritten(_top_file(tmp_path, "imageclef_concepts.keras._embedding"),
                       tmp_path / "embedding.zip",
                       lambda r: r["estimator"].update({"class": "BackboneEmbedding"}))
    code = ("import sys\nfrom imageclef_concepts import MostFrequentConcepts\n"
            "try:\n    MostFrequentConcepts.load(sys.argv[1])\n"
            "except Exception as error:\n    print(error)\n"
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(broken)], capture_output=True,
                         text=True, check=True).stdout
    assert "unknown estimator class 'BackboneEmbedding'" in out
    assert "imageclef_concepts.keras._embedding" in out and out.split()[-1] == "False"


class TopWithState(MostFrequentConcepts):
    """A user's subclass with fitted state of its own, not saved by its base's pair."""

    def fit(self, X, y):
        super().fit(X, y)
        self.extra_ = 42
        return self


class TopSavingItsState(TopWithState):
    """The same, saving and restoring its state as the user guide shows."""

    def _to_archive(self, writer):
        return {**super()._to_archive(writer), "extra": self.extra_}

    @classmethod
    def _from_archive(cls, description, reader):
        model = super()._from_archive(description, reader)
        model.extra_ = reader.expect(description, "extra", (int,))
        return model


def test_a_subclass_whose_state_would_be_lost_is_not_saved(tmp_path):
    with pytest.raises(TypeError, match=r"TopWithState has fitted attribute\(s\) extra_ that "
                                        "MostFrequentConcepts's _to_archive does not save"):
        TopWithState(k=1).fit(X, Y).save(tmp_path / "top.zip")
    assert not (tmp_path / "top.zip").exists()
    TopSavingItsState(k=1).fit(X, Y).save(tmp_path / "top.zip")
    assert TopSavingItsState.load(tmp_path / "top.zip").extra_ == 42


def test_what_cannot_go_into_an_archive_says_what_to_do(tmp_path):
    from sklearn.dummy import DummyClassifier

    from imageclef_concepts import ThresholdTuner

    knn = ConceptKNNClassifier(2, pixel_size=4).fit(X, Y)
    tuner = ThresholdTuner(knn, cv="prefit", refit=False, thresholds=3).fit(X, Y)
    with pytest.raises(TypeError, match=r"ThresholdTuner is not saved .* tuned_estimator\(\)"):
        ConceptEnsemble([("tuned", tuner)], prefit=True).fit(X, Y).save(tmp_path / "e.zip")
    ConceptEnsemble([("tuned", tuner.tuned_estimator())], prefit=True).fit(X, Y).save(
        tmp_path / "e.zip")
    foreign = DummyClassifier().fit(X.reshape(6, -1), Y)
    foreign.classes_ = np.array(["C1", "C2"], dtype=object)
    foreign.predict_proba = lambda X: np.full((len(X), 2), 0.5)
    with pytest.raises(TypeError, match=r"sklearn.dummy.DummyClassifier cannot be saved "
                                        r"without pickle.*joblib.dump"):
        ConceptEnsemble([("mine", foreign)], prefit=True).fit(X, Y).save(tmp_path / "f.zip")


def test_an_ensemble_tuner_given_to_save_model_is_told_to_save_its_ensemble(tmp_path):
    from imageclef_concepts import EnsembleTuner
    from imageclef_concepts.recipes._workflows import save_model

    ensemble = ConceptEnsemble([("a", ConceptKNNClassifier(1, pixel_size=4)),
                                ("b", ConceptKNNClassifier(2, pixel_size=4))],
                               combine="vote").fit(X, Y)
    tuner = EnsembleTuner(ensemble, cv="prefit", refit=False, thresholds=3).fit(X, Y)
    with pytest.raises(TypeError, match=r"EnsembleTuner is saved as the ensemble it tuned: "
                                        r"tuner.save\('model.zip'\)"):
        save_model(tuner, tmp_path / "x.zip")
    tuner.save(tmp_path / "x.zip")  # the advice works
    assert load_model(tmp_path / "x.zip").min_votes == tuner.min_votes_


# ------------------------------------------------------ bounded inflation (_zip.ModelZip)

def _peak_megabytes(function):
    import tracemalloc

    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _with_padded_member(source, target, name, padding):
    """A copy of a model file whose member ``name`` is followed by ``padding`` zero bytes,
    streamed (a highly compressible member), the manifest left stating its true size."""
    with zipfile.ZipFile(source) as old, \
            zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            data = old.read(info.filename)
            if info.filename != name:
                new.writestr(info.filename, data)
                continue
            with new.open(name, "w", force_zip64=True) as member:
                member.write(data)
                zeros = bytes(2**22)
                for start in range(0, padding, len(zeros)):
                    member.write(zeros[:padding - start])
    return target


def _network_member(path):
    return next(name for name in zipfile.ZipFile(path).namelist() if name.endswith(".keras"))


def _refusal(command, path, tmp_path, capsys):
    """What loading ``path`` by ``command`` says: the one line of the command line, or the
    error's message."""
    if command in ("info", "predict"):
        images = tmp_path / "images"
        images.mkdir(exist_ok=True)
        argv = (["info", str(path)] if command == "info" else
                ["predict", "--model", str(path), "--images", str(images),
                 "--output", str(tmp_path / "run.csv")])
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "Traceback" not in error
        return error
    with pytest.raises(ModelFileError) as caught:
        (load_model if command == "load_model" else ConceptEnsemble.load)(path)
    return str(caught.value)


@pytest.mark.parametrize("command", ["info", "predict", "load_model", "ConceptEnsemble.load"])
def test_a_member_inflating_past_its_manifest_stops_there(archive, tmp_path, capsys, command):
    # The network entry inflates to 64 MiB (64 KB on disk), its manifest stating its
    # true size: reading stops at that size, whoever reads.
    name = _network_member(archive[1])
    padded = _with_padded_member(archive[1], tmp_path / "padded.zip", name, 2**26)
    assert padded.stat().st_size < 2**20
    said = []
    peak = _peak_megabytes(lambda: said.append(_refusal(command, padded, tmp_path, capsys)))
    assert f"member {name} is larger than its manifest states" in said[0]
    assert peak < 16  # not the 64 MiB, nor twice it (the CLI read the whole entry)


@pytest.mark.parametrize("command", ["info", "predict", "load_model", "ConceptEnsemble.load"])
def test_an_archive_declaring_more_than_its_budget_is_refused_uninflated(
        archive, tmp_path, capsys, monkeypatch, command):
    import imageclef_concepts.models._zip as model_card

    monkeypatch.setattr(model_card, "INFLATION_FLOOR", 2**22)  # 4 MiB, for a small test file
    name = _network_member(archive[1])
    padded = _with_padded_member(archive[1], tmp_path / "bomb.zip", name, 2**25)
    said = []
    peak = _peak_megabytes(lambda: said.append(_refusal(command, padded, tmp_path, capsys)))
    assert "decompression bomb" in said[0] and name in said[0]
    assert "nothing was inflated" in said[0]
    assert peak < 8


def test_a_member_read_again_and_again_stops_at_the_files_budget(archive, tmp_path, capsys,
                                                                  monkeypatch):
    # An ensemble whose 300 members all name the one network entry: the zip directory is
    # small, and only counting what is inflated, whichever member, bounds the work.
    import imageclef_concepts.models._zip as model_card

    monkeypatch.setattr(model_card, "INFLATION_FLOOR", 2**20)
    name = _network_member(archive[1])
    record = json.loads(zipfile.ZipFile(archive[1]).read(RECORD))
    network = next(member for member in record["estimator"]["members"]
                   if member[1].get("keras_file") == name)
    cnn_only = tmp_path / "many.zip"
    with zipfile.ZipFile(archive[1]) as old, \
            zipfile.ZipFile(cnn_only, "w", compression=zipfile.ZIP_DEFLATED) as new:
        record["estimator"]["members"] = [[f"cnn{i}", network[1]] for i in range(300)]
        record["members"] = {name: record["members"][name]}
        new.writestr(name, old.read(name))
        new.writestr(RECORD, json.dumps(record))
    assert 300 * zipfile.ZipFile(cnn_only).getinfo(name).file_size > \
        100 * cnn_only.stat().st_size  # more than the budget, in reads only
    error = _refusal("info", cnn_only, tmp_path, capsys)
    # Each network's record and members are checked (as load checks them) out of what
    # the archive has left: the budget refuses it, by what is read or what is declared.
    assert re.search(r"(reading its members inflates|would inflate to .*) more than .*"
                     r"budget of", error), error


@pytest.mark.parametrize("command", ["predict", "load_model", "ConceptEnsemble.load"])
def test_an_entry_named_by_two_parts_is_refused_before_it_is_built_twice(archive, tmp_path,
                                                                        capsys, command):
    # The library writes each part's own entry. Members all naming one network entry were
    # each built: a 17 KB archive naming one 47 KB .keras 2,500 times loaded networks for
    # 350 s, up to 1.6 GB, before its budget refused it (issue 30 review 13).
    name = _network_member(archive[1])
    record = json.loads(zipfile.ZipFile(archive[1]).read(RECORD))
    network = next(member for member in record["estimator"]["members"]
                   if member[1].get("keras_file") == name)
    twice = tmp_path / "twice.zip"
    with zipfile.ZipFile(archive[1]) as old, \
            zipfile.ZipFile(twice, "w", compression=zipfile.ZIP_DEFLATED) as new:
        record["estimator"]["members"] = [["cnn0", network[1]], ["cnn1", network[1]]]
        record["members"] = {name: record["members"][name]}
        new.writestr(name, old.read(name))
        new.writestr(RECORD, json.dumps(record))
    said = _refusal(command, twice, tmp_path, capsys)
    assert f"entry {name} is named by two parts of the model" in said


@pytest.mark.parametrize("command", ["info", "ConceptEnsemble.load"])
def test_networks_inside_an_archive_inflate_within_the_archives_own_budget(
        archive, tmp_path, capsys, monkeypatch, command):
    # Two members naming one .keras entry whose weights inflate to 3 MiB: under the
    # floor of a file of its own (4 MiB), but twice that is past the archive's budget.
    import imageclef_concepts.models._zip as model_card

    monkeypatch.setattr(model_card, "INFLATION_FLOOR", 2**22)
    name = _network_member(archive[1])
    inner = tmp_path / "inner.keras"
    inner.write_bytes(zipfile.ZipFile(archive[1]).read(name))
    padded = _with_padded_member(inner, tmp_path / "padded.keras", "model.weights.h5",
                                 3 * 2**20).read_bytes()
    record = json.loads(zipfile.ZipFile(archive[1]).read(RECORD))
    network = next(member for member in record["estimator"]["members"]
                   if member[1].get("keras_file") == name)
    nested = tmp_path / "nested.zip"
    with zipfile.ZipFile(nested, "w", compression=zipfile.ZIP_DEFLATED) as new:
        record["estimator"]["members"] = [["cnn0", network[1]], ["cnn1", network[1]]]
        record["members"] = {name: len(padded)}
        new.writestr(name, padded)
        new.writestr(RECORD, json.dumps(record))
    assert 100 * nested.stat().st_size < 2**22  # the archive's budget is its floor
    said = _refusal(command, nested, tmp_path, capsys)
    assert f"({name})" in said and "left of the budget of" in said


def _patched_sizes(path, name, claimed):
    """The zip at ``path`` with member ``name``'s declared size (directory and local header)
    changed to ``claimed``: a lying header."""
    import struct

    data = bytearray(path.read_bytes())
    encoded = name.encode()
    for signature, size_at, name_at in ((b"PK\x01\x02", 24, 46), (b"PK\x03\x04", 22, 30)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            if data[start + name_at:start + name_at + len(encoded)] == encoded:
                struct.pack_into("<I", data, start + size_at, claimed)
            start += 4
    path.write_bytes(bytes(data))
    return path


def test_a_member_whose_data_inflate_past_its_header_is_caught_while_reading(archive,
                                                                           tmp_path):
    # The directory states the true size; the data inflate 32 MiB further. Nothing past
    # the stated size is inflated (zipfile stops there too, and the CRC then fails).
    name = next(n for n in zipfile.ZipFile(archive[1]).namelist() if n.endswith(".npy"))
    stated = zipfile.ZipFile(archive[1]).getinfo(name).file_size
    lying = tmp_path / "lying.zip"
    with zipfile.ZipFile(archive[1]) as old, \
            zipfile.ZipFile(lying, "w", compression=zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            data = old.read(info.filename)
            new.writestr(info.filename, data + bytes(2**25) if info.filename == name else data)
    _patched_sizes(lying, name, stated)
    assert zipfile.ZipFile(lying).getinfo(name).file_size == stated

    def load():
        with pytest.raises(ModelFileError, match=rf"^{lying} is damaged: member {name} "
                                                 r"does not hold what the zip directory "
                                                 r"states \(Bad CRC-32"):
            load_model(lying)

    assert _peak_megabytes(load) < 16


def _with_members(source, target, members):
    import shutil

    shutil.copy(source, target)
    with zipfile.ZipFile(target, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, size in members.items():
            archive.writestr(name, bytes(size))
    return target


@pytest.mark.parametrize("members, message", [
    ({f"assets/junk{i}.bin": 2**20 for i in range(8)}, r"8 member\(s\) that a .keras model"),
    ({"notes.txt": 10}, "notes.txt"),
])
def test_a_keras_file_with_unexpected_members_is_refused_before_keras_reads_it(
        cnn_file, tmp_path, monkeypatch, members, message):
    import keras

    extended = _with_members(cnn_file[1], tmp_path / "extended.keras", members)

    def never(*args, **kwargs):
        raise AssertionError("Keras read (and extracted) the file")

    monkeypatch.setattr(keras.saving, "load_model", never)
    for load in (ConceptCNNClassifier.load, load_model):
        with pytest.raises(ModelFileError, match=message):
            load(extended)


def test_a_keras_file_declaring_more_than_its_budget_is_refused(cnn_file, tmp_path,
                                                                 monkeypatch):
    import keras

    import imageclef_concepts.models._zip as model_card

    monkeypatch.setattr(model_card, "INFLATION_FLOOR", 2**22)
    padded = _with_padded_member(cnn_file[1], tmp_path / "padded.keras", "model.weights.h5",
                                 2**25)
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: pytest.fail("read"))
    with pytest.raises(ModelFileError, match="model.weights.h5 alone 32.0 MiB"):
        ConceptCNNClassifier.load(padded)


def test_a_network_with_assets_is_not_saved_as_a_file_load_would_refuse(cnn_file, tmp_path):
    import copy as copying

    model = copying.copy(cnn_file[0])
    network, save = model.model_, type(model.model_).save

    class WithAssets(type(network)):
        def save(self, path, **kwargs):
            save(self, path, **kwargs)
            with zipfile.ZipFile(path, "a") as archive:
                archive.writestr("assets/vocabulary.txt", "a\nb\n")

    network.__class__ = WithAssets
    try:
        with pytest.raises(ValueError, match="assets/vocabulary.txt"):
            model.save(tmp_path / "model.keras")
    finally:
        network.__class__ = WithAssets.__bases__[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("entry", ["members/a/..", ".", "members/a/", "a/" + "x" * 300 + ".keras"])
def test_a_network_entry_named_as_no_file_can_be_is_a_model_file_error(
        archive, tmp_path, capsys, entry):
    # The record names the entry holding a network; a name whose last part is "..", "."
    # or nothing, or too long for a file name, was written to a temporary file of that
    # name: "Is a directory: /tmp/tmpXXXX/.." naming neither the model file nor the entry.
    name = _network_member(archive[1])
    record = json.loads(zipfile.ZipFile(archive[1]).read(RECORD))
    for member in record["estimator"]["members"]:
        if member[1].get("keras_file") == name:
            member[1]["keras_file"] = entry
    record["members"][entry] = record["members"].pop(name)
    renamed = tmp_path / "renamed.zip"
    with zipfile.ZipFile(archive[1]) as old, zipfile.ZipFile(renamed, "w") as new:
        for info in old.infolist():
            new.writestr(entry if info.filename == name else info.filename,
                         json.dumps(record) if info.filename == RECORD else old.read(info))
    if entry.endswith(".keras"):  # a long name is fine: the temporary file has its own
        assert load_model(renamed).predict(np.zeros((1, 16, 16, 3), np.uint8)) is not None
        return
    for command in ("predict", "load_model"):
        said = _refusal(command, renamed, tmp_path, capsys)
        assert f"{renamed}: " in said and f"entry {entry!r} is not a .keras" in said


def test_model_files_named_by_bytes_are_written_and_read(cnn_file, archive, tmp_path):
    # A name that is not UTF-8 comes as bytes (os.listdir(b"...")): saved and loaded
    # as str paths are (it was a TypeError on str.endswith, an AttributeError on seek).
    model, ensemble = cnn_file[0], archive[0]
    network = os.path.join(os.fsencode(tmp_path), b"r\xe9seau.keras")
    model.save(network)
    assert ConceptCNNClassifier.load(network).predict_concepts(X) == model.predict_concepts(X)
    whole = os.path.join(os.fsencode(tmp_path), b"ensembl\xe9.zip")
    ensemble.save(whole)
    assert ConceptEnsemble.load(whole).predict_concepts(X) == ensemble.predict_concepts(X)
    assert sorted(os.listdir(os.fsencode(tmp_path))) == [b"ensembl\xe9.zip", b"r\xe9seau.keras"]
    with pytest.raises(FileNotFoundError, match=r"none\\xe9.keras|none\udce9.keras"):
        ConceptCNNClassifier.load(os.path.join(os.fsencode(tmp_path), b"none\xe9.keras"))
