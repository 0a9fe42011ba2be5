"""The command line's export: a tiny trained model to an ONNX file served by ONNX Runtime."""

import json
import os

import numpy as np
import pytest

from imageclef_concepts import ConceptCNNClassifier, DecisionRule, MostFrequentConcepts
from imageclef_concepts.cli._main import main

from ..conftest import labels_of


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, tiny_images):
    folder = tmp_path_factory.mktemp("export")
    rule = DecisionRule(0.3, min_concepts=1, max_concepts=2)
    model = ConceptCNNClassifier(image_size=32, filters=(4,), dense_units=(8,), epochs=1,
                                 random_state=0, test_time_augmentation=True, threshold=rule)
    model.fit(tiny_images.images, labels_of(tiny_images)).save(folder / "model.keras")
    return folder / "model.keras"


def test_export_writes_an_onnx_file_that_predicts_as_the_model(tmp_path, tiny_images,
                                                               model_file, capsys):
    import onnxruntime

    output = tmp_path / "model.onnx"
    assert main(["export", str(model_file), str(output)]) == 0
    printed = capsys.readouterr()
    assert f"Wrote {output}: input 'images'" in printed.out
    assert printed.err == ""  # no warning of Keras' or tf2onnx's own
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["probabilities"], {"images": tiny_images.images})
    loaded = ConceptCNNClassifier.load(model_file)
    np.testing.assert_allclose(probabilities, loaded.predict_proba(tiny_images.images),
                               rtol=0, atol=1e-5)
    metadata = session.get_modelmeta().custom_metadata_map
    rule = DecisionRule.from_dict(json.loads(metadata["decision_rule"]))
    assert rule == DecisionRule(0.3, min_concepts=1, max_concepts=2)
    concepts = json.loads(metadata["concepts"])
    decided = [tuple(np.asarray(concepts)[row]) for row in rule.apply(probabilities)]
    assert decided == loaded.predict_concepts(tiny_images.images)
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]  # no temporary file left


def _one_line_error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_export_refuses_an_output_that_is_its_input(tmp_path, model_file, capsys):
    alias = tmp_path / "alias.onnx"
    os.symlink(model_file, alias)
    before = model_file.read_bytes()
    err = _one_line_error(capsys, ["export", str(model_file), str(alias)])
    assert "is also an input" in err
    assert model_file.read_bytes() == before


@pytest.mark.parametrize("kind", ["device", "pipe", "folder"])
def test_export_refuses_a_device_a_pipe_or_a_folder(tmp_path, model_file, capsys, kind):
    target = tmp_path / f"{kind}.onnx"
    if kind == "device":
        os.symlink("/dev/null", target)
    elif kind == "pipe":
        os.mkfifo(target)
    else:
        target.mkdir()
    err = _one_line_error(capsys, ["export", str(model_file), str(target)])
    assert {"device": "character device", "pipe": "named pipe", "folder": "folder"}[kind] in err


def test_export_user_mistakes_are_one_line(tmp_path, model_file, tiny_images, capsys):
    err = _one_line_error(capsys, ["export", str(model_file), str(tmp_path / "model.keras")])
    assert "must end in .onnx" in err
    err = _one_line_error(capsys, ["export", str(tmp_path / "missing.keras"),
                                   str(tmp_path / "m.onnx")])
    assert "model file not found" in err
    baseline = tmp_path / "baseline.zip"
    MostFrequentConcepts(k=2).fit(tiny_images.images, labels_of(tiny_images)).save(baseline)
    err = _one_line_error(capsys, ["export", str(baseline), str(tmp_path / "m.onnx")])
    assert "holds a MostFrequentConcepts: only a ConceptCNNClassifier" in err
    assert sorted(os.listdir(tmp_path)) == ["baseline.zip"]
