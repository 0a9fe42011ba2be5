"""Export for serving: the artefact computes what ``predict_proba`` computes, and says so.

ONNX is served by the real ONNX Runtime; TensorFlow's SavedModel by TensorFlow.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from imageclef_concepts import ConceptCNNClassifier, DecisionRule

from ..conftest import labels_of

INPUT_NAME, OUTPUT_NAME = "images", "probabilities"  # what export's documentation promises


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "test_time_augmentation"])
def fitted(request, tiny_images):
    # Not symmetric, so that the mirrored image's probabilities differ from the image's.
    return ConceptCNNClassifier(image_size=32, filters=(4,), dense_units=(8,), epochs=1,
                                random_state=0, test_time_augmentation=request.param,
                                ).fit(tiny_images.images, labels_of(tiny_images))


def _onnx_session(path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_onnx_export_computes_predict_proba(tmp_path, tiny_images, fitted):
    fitted.export(tmp_path / "model.onnx", format="onnx")
    (probabilities,) = _onnx_session(tmp_path / "model.onnx").run(
        [OUTPUT_NAME], {INPUT_NAME: tiny_images.images})
    np.testing.assert_allclose(probabilities, fitted.predict_proba(tiny_images.images),
                               rtol=0, atol=1e-5)
    # With test-time augmentation the network alone gives something else: the mirrored
    # images are in the exported graph, not just the network.
    network_alone = fitted.model_.predict(tiny_images.images, verbose=0)
    differs = np.abs(probabilities - network_alone).max() > 1e-4
    assert bool(differs) == fitted.test_time_augmentation


def test_saved_model_export_computes_predict_proba(tmp_path, tiny_images, fitted):
    import tensorflow as tf

    fitted.export(tmp_path / "served")
    served = tf.saved_model.load(str(tmp_path / "served"))
    probabilities = served.serve(tf.constant(tiny_images.images, dtype=tf.uint8)).numpy()
    np.testing.assert_allclose(probabilities, fitted.predict_proba(tiny_images.images),
                               rtol=0, atol=1e-5)


def test_onnx_export_names_its_input_and_output(tmp_path, fitted):
    fitted.export(tmp_path / "model.onnx", format="onnx")
    session = _onnx_session(tmp_path / "model.onnx")
    (images,), (probabilities,) = session.get_inputs(), session.get_outputs()
    assert (images.name, images.type, images.shape) == ("images", "tensor(uint8)",
                                                        ["batch", 32, 32, 3])
    assert (probabilities.name, probabilities.shape) == ("probabilities",
                                                         ["batch", len(fitted.classes_)])


def test_onnx_export_carries_concepts_and_decision_rule(tmp_path, tiny_images, fitted):
    rule = DecisionRule(np.linspace(0.2, 0.6, len(fitted.classes_)), min_concepts=1,
                        max_concepts=3)
    saved = fitted.threshold
    fitted.set_params(threshold=rule)
    try:
        fitted.export(tmp_path / "model.onnx", format="onnx")
        decided_here = fitted.decide(tiny_images.images)
    finally:
        fitted.set_params(threshold=saved)
    metadata = _onnx_session(tmp_path / "model.onnx").get_modelmeta().custom_metadata_map
    assert json.loads(metadata["concepts"]) == list(fitted.classes_)
    assert DecisionRule.from_dict(json.loads(metadata["decision_rule"])) == rule
    about = json.loads(metadata["imageclef_concepts"])
    assert about["estimator"] == "ConceptCNNClassifier"
    assert (about["input"], about["output"]) == ("images", "probabilities")
    assert about["image_size"] == 32
    assert about["test_time_augmentation"] is fitted.test_time_augmentation
    # A reader applies the rule to the file's probabilities and gets predict's concepts.
    (probabilities,) = _onnx_session(tmp_path / "model.onnx").run(
        None, {"images": tiny_images.images})
    decided = DecisionRule.from_dict(json.loads(metadata["decision_rule"])).apply(probabilities)
    np.testing.assert_array_equal(decided, decided_here)


def test_a_failed_onnx_export_leaves_the_file_that_was_there(tmp_path, fitted, monkeypatch):
    import onnx

    target = tmp_path / "model.onnx"
    target.write_bytes(b"the previous model")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(onnx, "save_model", fail)
    with pytest.raises(OSError, match="disk full"):
        fitted.export(target, format="onnx")
    assert target.read_bytes() == b"the previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]



@pytest.mark.parametrize("format", ["tf_saved_model", "onnx"])
def test_an_export_path_no_file_name_can_hold_is_refused_by_name(tmp_path, fitted, format):
    # A lone surrogate: one error naming the path (it was a UnicodeEncodeError naming none).
    with pytest.raises(ValueError, match=r"export path .*m\\ud800 is not a file name"):
        fitted.export(str(tmp_path / "m\ud800"), format=format)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_onnx_export_refuses_a_mixed_precision_network_by_name(tmp_path, tiny_images):
    # Keras converts float32 networks only: bfloat16 gives a file ONNX Runtime cannot load.
    model = ConceptCNNClassifier(image_size=32, filters=(4,), dense_units=(8,), epochs=1,
                                 random_state=0, dtype_policy="mixed_bfloat16",
                                 ).fit(tiny_images.images[:8], labels_of(tiny_images)[:8])
    with pytest.raises(ValueError, match="bfloat16 .dtype_policy='mixed_bfloat16'.: ONNX"):
        model.export(tmp_path / "model.onnx", format="onnx")
    assert list(tmp_path.iterdir()) == []


def test_a_keras_file_with_npz_weights_is_refused_unread(tmp_path):
    # Keras reads a .keras's model.weights.npz through NumPy, each inner member inflated and
    # made a Python list (tolist) before its shape is compared: a 74 KB file whose one
    # deflated member held 64 MiB of zeros took 1.35 GB in load (Keras' own guard starts at
    # 4 GiB). The library writes its weights as .h5, and Keras cannot read back the .npz it
    # writes (pickled arrays, refused): such a member is refused unread.
    import keras
    from keras.src.saving import saving_lib

    from imageclef_concepts import ModelFileError
    from imageclef_concepts.keras._model_file import check_keras_members

    inputs = keras.Input((4,))
    network = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    saving_lib.save_model(network, path := tmp_path / "npz.keras", weights_format="npz")
    with pytest.raises(ModelFileError, match=r"npz.keras holds 1 member\(s\) that a .keras "
                                             r"model file does not \(model.weights.npz\)"):
        check_keras_members(path)


@pytest.mark.slow
def test_a_model_fitted_with_keras_metric_objects_is_saved_and_loaded(tmp_path, tiny_images):
    # metrics takes Keras Metric objects (as documented), which the record wrote as they
    # were: save() raised 'Object of type AUC is not JSON serializable', naming nothing,
    # after the whole fit. They are kept by their Keras config, as a loss or optimizer.
    import keras

    model = ConceptCNNClassifier(image_size=32, filters=(4,), dense_units=(8,), epochs=1,
                                 random_state=0, validation_fraction=None,
                                 metrics=["mse", keras.metrics.AUC(num_thresholds=50, name="a")])
    model.fit(tiny_images.images, labels_of(tiny_images))
    model.save(path := tmp_path / "m.keras")
    loaded = ConceptCNNClassifier.load(path)
    assert loaded.metrics[0] == "mse"
    assert isinstance(loaded.metrics[1], keras.metrics.AUC)
    assert loaded.metrics[1].get_config() == model.metrics[1].get_config()
    np.testing.assert_allclose(loaded.predict_proba(tiny_images.images),
                               model.predict_proba(tiny_images.images), atol=1e-6)


def test_load_reads_the_archive_train_output_zip_writes(tmp_path):
    # train --output m.zip writes a ConceptCNNClassifier's archive, which
    # ConceptCNNClassifier.load refused, saying to load it with ConceptCNNClassifier.load.
    from pathlib import Path

    from imageclef_concepts import ConceptEnsemble, ModelFileError
    from imageclef_concepts.recipes._workflows import save_model

    fixtures = Path(__file__).parents[1] / "models" / "fixtures"
    model = ConceptCNNClassifier.load(fixtures / "cnn.keras")
    save_model(model, tmp_path / "m.zip")  # as train --output m.zip saves it
    loaded = ConceptCNNClassifier.load(tmp_path / "m.zip")
    images = np.random.default_rng(0).integers(0, 256, (3, model.image_size, model.image_size,
                                                         3), dtype=np.uint8)
    np.testing.assert_array_equal(loaded.predict_proba(images), model.predict_proba(images))
    assert loaded.get_params()["threshold"] == model.get_params()["threshold"]
    with pytest.raises(ModelFileError, match=r"ensemble.zip is the .zip archive of a "
                                             r"ConceptEnsemble, not a .keras model file: load "
                                             r"it with ConceptEnsemble.load \(predict reads"):
        ConceptCNNClassifier.load(fixtures / "ensemble.zip")
    with pytest.raises(ModelFileError, match=r"cnn.keras is a ConceptCNNClassifier's \.keras "
                                             r"file, not an archive: load it with "
                                             r"ConceptCNNClassifier.load \(predict reads both\)"):
        ConceptEnsemble.load(fixtures / "cnn.keras")


@pytest.mark.parametrize("name", ["renamed.zip", "renamed", "renamed.KERAS"])
def test_a_keras_file_under_another_name_is_named_in_one_line_by_every_loader(tmp_path, name):
    # Review 20 r20b M1: load showed Keras' raw multi-sentence error ("File format not
    # supported ... Keras 3 only supports ..."), load_model said "(predict reads both)".
    import shutil

    from imageclef_concepts import ModelFileError
    from imageclef_concepts.recipes._workflows import load_model

    renamed = tmp_path / name
    shutil.copy(Path(__file__).parents[1] / "models" / "fixtures" / "cnn.keras", renamed)
    expected = (rf"^{re.escape(str(renamed))} is a ConceptCNNClassifier's \.keras file under "
                r"another name: rename it to end in \.keras, the one name Keras reads a "
                r"network from\.$")
    with pytest.raises(ModelFileError, match=expected):
        ConceptCNNClassifier.load(renamed)
    if name.endswith(".zip"):
        with pytest.raises(ModelFileError, match=expected):
            load_model(renamed)
