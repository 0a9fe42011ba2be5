import os
import pickle

import keras
import numpy as np
import pytest

from imageclef_concepts import ConceptCNNClassifier, ModelFileError
from imageclef_concepts.keras._network import build_backbone_network

PREPROCESS = {
    "densenet121": keras.applications.densenet.preprocess_input,
    "resnet50": keras.applications.resnet50.preprocess_input,
    "efficientnetb0": keras.applications.efficientnet.preprocess_input,
}


def _images(n=6, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("backbone", sorted(PREPROCESS))
def test_each_backbone_applies_its_own_preprocessing(backbone):
    model = build_backbone_network(3, backbone, image_size=32, weights=None, dense_units=(8,))
    assert model.output_shape == (None, 3)
    base = model.get_layer(backbone)
    before_backbone = model.layers[model.layers.index(base) - 1]
    preprocessing = keras.Model(model.inputs, before_backbone.output)
    X = _images().astype("float32")
    np.testing.assert_allclose(preprocessing.predict(X, verbose=0),
                               PREPROCESS[backbone](X.copy()), rtol=1e-4, atol=1e-3)


def _fitted(trainable_backbone, **params):
    model = ConceptCNNClassifier(backbone="resnet50", weights=None, image_size=32,
                                 dense_units=(8,), epochs=1, learning_rate=1e-2, decay=0.0,
                                 validation_fraction=None, random_state=0,
                                 trainable_backbone=trainable_backbone, **params)
    model.initialize(_images(), ["A;B", "B"] * 3)
    backbone_before = [w.copy() for w in model.model_.get_layer("resnet50").get_weights()]
    head_before = model.model_.get_layer("concepts").get_weights()[0].copy()
    model.warm_start = True
    model.fit(_images(), ["A;B", "B"] * 3)
    return model, backbone_before, head_before


@pytest.mark.slow
def test_frozen_backbone_stays_frozen_and_the_head_learns():
    model, backbone_before, head_before = _fitted(trainable_backbone=False)
    after = model.model_.get_layer("resnet50").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(backbone_before, after))  # BN stats too
    assert not np.array_equal(head_before, model.model_.get_layer("concepts").get_weights()[0])
    assert not model.model_.get_layer("resnet50").trainable


@pytest.mark.slow
def test_fine_tuned_backbone_changes():
    model, backbone_before, _ = _fitted(trainable_backbone=True)
    after = model.model_.get_layer("resnet50").get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(backbone_before, after))


@pytest.mark.slow
def test_weights_from_a_saved_file(tmp_path):
    source = build_backbone_network(2, "resnet50", image_size=32, weights=None)
    path = tmp_path / "resnet50.weights.h5"
    source.get_layer("resnet50").save_weights(path)
    model = ConceptCNNClassifier(backbone="resnet50", weights=path, image_size=32,
                                 dense_units=(8,), epochs=1, validation_fraction=None)
    model.initialize(_images(), ["A", "B"] * 3)
    for loaded, saved in zip(model.model_.get_layer("resnet50").get_weights(),
                             source.get_layer("resnet50").get_weights()):
        np.testing.assert_array_equal(loaded, saved)


@pytest.mark.slow
def test_backbone_model_persists(tmp_path):
    model, _, _ = _fitted(trainable_backbone=False)
    proba = model.predict_proba(_images(seed=1))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict_proba(
        _images(seed=1)), proba)
    model.save(tmp_path / "model.keras")
    restored = ConceptCNNClassifier.load(tmp_path / "model.keras")
    np.testing.assert_allclose(restored.predict_proba(_images(seed=1)), proba, atol=1e-6)
    assert restored.backbone == "resnet50"


def test_backbone_input_checks(tmp_path):
    with pytest.raises(ValueError, match="too small for densenet121: the smallest .* 32"):
        ConceptCNNClassifier(backbone="densenet121", weights=None, image_size=16).fit(
            _images(size=16), ["A"] * 6)
    with pytest.raises(ValueError, match="no such weights file"):
        ConceptCNNClassifier(backbone="resnet50", weights=str(tmp_path / "none.h5"),
                             image_size=32).fit(_images(), ["A"] * 6)
    for there in ("/dev/zero", str(tmp_path)):  # it said "no such weights file"
        with pytest.raises(ValueError, match=rf"^weights='{there}': not a file \(a device, a "
                                             r"pipe or a folder\)"):
            ConceptCNNClassifier(backbone="resnet50", weights=there,
                                 image_size=32).fit(_images(), ["A"] * 6)


def test_a_weights_pipe_is_refused_without_being_opened(tmp_path):
    import threading

    from imageclef_concepts.files._atomic import NotARegularFileError
    from imageclef_concepts.keras._network import pooled_backbone

    pipe = tmp_path / "w.weights.h5"
    os.mkfifo(pipe)

    def writer():  # so that a reader opening the pipe is not blocked forever
        with open(pipe, "wb") as f:
            f.write(b"\x89HDF\r\n\x1a\n")

    threading.Thread(target=writer, daemon=True).start()
    try:
        with pytest.raises(NotARegularFileError, match="w.weights.h5 is a named pipe"):
            pooled_backbone("efficientnetb0", 32, str(pipe))
    finally:  # release the writer when nothing read the pipe
        os.close(os.open(pipe, os.O_RDONLY | os.O_NONBLOCK))


@pytest.mark.parametrize("kind", ["bzip2 .keras", "compressed HDF5"])
def test_a_weights_file_that_would_inflate_is_refused_before_keras_reads_it(
        tmp_path, monkeypatch, kind):
    # weights= (BackboneEmbedding, ConceptCNNClassifier, --retrieval-weights) went to Keras'
    # load_weights unread: a 1,123-byte .keras whose model.weights.h5 was 1 GiB of bzip2 took
    # 2 GB more memory, then 'Unable to synchronously open file (file signature not found)'
    import zipfile

    import h5py

    from imageclef_concepts.keras._network import pooled_backbone

    if kind == "bzip2 .keras":
        path = tmp_path / "w.keras"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("model.weights.h5", bytes(2**16), compress_type=zipfile.ZIP_BZIP2)
        match = r"w.keras: member model.weights.h5 is compressed with bzip2"
    else:
        path = tmp_path / "w.weights.h5"
        with h5py.File(path, "w") as weights:
            weights.create_dataset("layers/conv/vars/0", shape=(2**24,), dtype="float32",
                                   compression="gzip")
        match = r"w.weights.h5 holds datasets of 64.0 MiB"
    monkeypatch.setattr(keras.applications, "EfficientNetB0", None)  # never built
    with pytest.raises(ModelFileError, match=match):
        pooled_backbone("efficientnetb0", 32, str(path))


def test_a_backbone_too_large_for_memory_is_refused_before_embedding(monkeypatch):
    from imageclef_concepts import BackboneEmbedding
    from imageclef_concepts.files import _sizes

    monkeypatch.setattr(_sizes, "memory_limit", lambda: 20_000)  # one 32 px image: 7 KiB
    embedding = BackboneEmbedding("efficientnetb0", image_size=32, weights=None)
    with pytest.raises(ValueError, match=r"^image_size=32: running the network on a batch "
                                         r"of 1 image\(s\) \(its input batch"):
        embedding.fit_transform(np.zeros((1, 32, 32, 3), dtype=np.uint8))


def _resized_keras_file(source, path, units):
    """``source``'s .keras file with its hidden Dense layer given ``units`` units in its
    config.json alone (its weights as they were)."""
    import json
    import zipfile

    with zipfile.ZipFile(source) as original, zipfile.ZipFile(path, "w") as resized:
        for info in original.infolist():
            data = original.read(info.filename)
            if info.filename == "config.json":
                config = json.loads(data)
                for layer in config["config"]["layers"]:
                    if layer["config"].get("name") == "hidden1":
                        layer["config"]["units"] = units
                    if layer["config"].get("name") == "concepts":
                        layer["build_config"]["input_shape"] = [None, units]
                data = json.dumps(config).encode()
            resized.writestr(info, data)


@pytest.mark.slow
def test_a_config_declaring_more_variables_than_its_weights_is_refused_unbuilt(tmp_path):
    # A few bytes of config.json made Keras allocate every variable it declares before
    # reading any weight: a 21 KB file peaked at 3.7 GB for 26 s (and 2**24 units would
    # take tens of GB) before Keras found the weights did not fit.
    from keras.src.backend.common import global_state

    model = ConceptCNNClassifier(image_size=16, filters=(4,), dense_units=(8,), epochs=1,
                                 validation_fraction=None, random_state=0, verbose=0)
    model.fit(_images(4, 16), ["A;B", "B"] * 2)
    model.save(source := tmp_path / "m.keras")
    _resized_keras_file(source, same := tmp_path / "same.keras", 8)
    assert list(ConceptCNNClassifier.load(same).classes_) == list(model.classes_)
    _resized_keras_file(source, huge := tmp_path / "huge.keras", 2**16)  # 37 MiB declared
    declared = r"huge.keras: its config.json declares variables of 36.8 MiB, its weights hold"
    with pytest.raises(ModelFileError, match=declared):
        ConceptCNNClassifier.load(huge)
    # nothing left for Keras to give a value later
    assert not global_state.get_global_attribute("uninitialized_variables")
    assert list(ConceptCNNClassifier.load(source).classes_) == list(model.classes_)


def test_a_config_whose_layers_compute_more_than_its_weights_hold_is_refused_unbuilt(tmp_path):
    # A Normalization given a scalar mean broadcasts it to its input's shape as Keras builds
    # it: no variable, so the check counted nothing and built it, as Keras then did. A 12 KB
    # file stating an input of 2**26 values took 512 MiB (2**30: 8 GiB) in each.
    import zipfile

    from imageclef_concepts.keras._model_file import check_keras_members

    inputs = keras.Input((4,))
    network = keras.Model(inputs, keras.layers.Normalization(mean=0.0, variance=1.0)(inputs))
    network.save(small := tmp_path / "small.keras")
    check_keras_members(small)  # a few bytes computed: the file holds more
    with zipfile.ZipFile(small) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["config.json"] = members["config.json"].replace(b"[null, 4]", b"[null, 4194304]")
    with zipfile.ZipFile(large := tmp_path / "large.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ModelFileError, match=r"large.keras: its config.json declares "
                                             r"variables of 32.0 MiB"):
        check_keras_members(large)


def _mean_iou(num_classes):
    return {"module": "keras.metrics", "class_name": "MeanIoU", "registered_name": None,
            "config": {"num_classes": num_classes, "name": "mean_iou"}}


def test_a_compile_config_whose_metrics_hold_gigabytes_is_refused_unbuilt(tmp_path):
    # Keras compiles a loaded network from its config.json's compile_config, and a metric
    # makes its state as it is made (not saved: nothing in the file bounds it): a 60 KB
    # file whose MeanIoU counts 16,000 classes took 2 GB in load (2**17 classes: 128 GiB).
    import json
    import zipfile

    from imageclef_concepts.keras._model_file import check_keras_members

    inputs = keras.Input((4,))
    network = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    network.compile(loss="mse", metrics=[keras.metrics.MeanIoU(num_classes=3)])
    network.save(small := tmp_path / "small.keras")
    check_keras_members(small)  # a normal metric: a few bytes
    with zipfile.ZipFile(small) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["compile_config"]["metrics"] = [_mean_iou(2**14)]  # 2 GiB
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(large := tmp_path / "large.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ModelFileError, match=r"large.keras: its config.json's compile_config "
                                             r"makes Keras objects whose variables take "
                                             r"2.0 GiB as they are made"):
        check_keras_members(large)


def test_a_record_or_pickle_naming_a_keras_object_of_gigabytes_is_refused_unmade():
    # A model file's record (and a pickled or skops estimator's state) holds losses and
    # optimizers as Keras configs, rebuilt before the parameters are checked: one naming a
    # MeanIoU of 16,000 classes took 2 GB as it was made.
    from imageclef_concepts.keras._model_file import (
        KERAS_STATE,
        keras_restored_state,
        loaded_params,
    )

    loss = keras.losses.BinaryCrossentropy()
    assert isinstance(loaded_params({"loss": {"keras_object": keras.saving.serialize_keras_object(
        loss)}})["loss"], keras.losses.BinaryCrossentropy)
    with pytest.raises(ModelFileError, match=r"parameter loss makes Keras objects whose "
                                             r"variables take 512.0 MiB as they are made"):
        loaded_params({"loss": {"keras_object": _mean_iou(2**13)}})
    with pytest.raises(ModelFileError, match=r"a pickle makes Keras objects whose variables "
                                             r"take 512.0 MiB"):
        keras_restored_state({KERAS_STATE: {"metrics": {"list": [
            {"keras_object": _mean_iou(2**13)}]}}}, "a pickle")


def test_a_metric_of_too_many_thresholds_is_refused_before_it_is_made(monkeypatch):
    # An AUC (or SensitivityAtSpecificity...) makes a Python list of its num_thresholds as it
    # is made, before its variables could be counted: a 48 KB .keras whose record's AUC has
    # 10**7 thresholds took 615 MB and 4 s in load, and loaded (multi_label: its variables
    # are made only in training, 10**7 x concepts x 16 bytes); 10**9 would take 32 GB.
    from imageclef_concepts.keras._model_file import loaded_params

    def auc(num_thresholds, **more):
        return {"keras_object": {"module": "keras.metrics", "class_name": "AUC",
                                 "registered_name": None, "config": {
                                     "num_thresholds": num_thresholds, "name": "a", **more}}}

    assert isinstance(loaded_params({"metrics": [auc(200, multi_label=True)]})["metrics"][0],
                      keras.metrics.AUC)
    monkeypatch.setattr(keras.saving, "deserialize_keras_object",
                        lambda *a, **k: pytest.fail("made"))
    with pytest.raises(ModelFileError, match=r"^parameter metrics makes Keras objects whose "
                                             r"variables take 152.6 MiB as they are made"):
        loaded_params({"metrics": [auc(10**7, multi_label=True)]})
    with pytest.raises(ModelFileError, match=r"whose variables take 305.2 MiB"):
        loaded_params({"metrics": [auc(2 * 10**6, multi_label=True, num_labels=10)]})


@pytest.mark.parametrize("content", [b"garbage", b""])
def test_a_weights_file_keras_cannot_read_is_refused_naming_it(tmp_path, content):
    # h5py's "Unable to synchronously open file (file signature not found)" named nothing.
    from imageclef_concepts.keras._network import pooled_backbone
    from imageclef_concepts.models._card import ModelFileError

    weights = tmp_path / "mine.weights.h5"
    weights.write_bytes(content)
    with pytest.raises(ModelFileError, match=rf"^{weights}: its weights cannot be loaded"):
        pooled_backbone("efficientnetb0", 32, str(weights))
    assert weights.read_bytes() == content


def test_another_networks_weights_are_one_short_error_without_keras_warnings(tmp_path):
    # A classifier's weights (the backbone nested in it) given as a backbone's: Keras
    # warned once per nested container (121-131 lines on embed's stderr), then its error
    # listed every layer it could not load (8 KB, on one line in the command line).
    import warnings

    from imageclef_concepts.keras._network import pooled_backbone

    backbone = pooled_backbone("mobilenetv3small", 32, None)
    inputs = keras.Input((32, 32, 3))
    classifier = keras.Model(inputs, keras.layers.Dense(2)(backbone(inputs)))
    path = tmp_path / "classifier.weights.h5"
    classifier.save_weights(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ModelFileError, match=rf"^{path}: its weights cannot be loaded "
                                                 r"into \w+ \(ValueError: ") as error:
            pooled_backbone("mobilenetv3small", 32, str(path))
    assert len(str(error.value)) < 600 and "\n" not in str(error.value), str(error.value)
    assert not [w for w in caught if "Skipping" in str(w.message)], caught[0].message
