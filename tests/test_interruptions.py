"""Fault injection: trainings killed and resumed, saves killed or failing over a good model."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from imageclef_concepts import ConceptCNNClassifier

from .conftest import TINY

# Slow by nature: trainings and saves killed in subprocesses (run by `pytest -m slow`).
pytestmark = pytest.mark.slow


TRAIN_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from imageclef_concepts import ConceptCNNClassifier, make_concept_images

    folder, checkpoint, output = sys.argv[1:4]
    if len(sys.argv) > 4:  # killed while writing the weights of that epoch
        import os, signal, keras
        kill_in_save, saves, save_weights = int(sys.argv[4]), [], keras.Model.save_weights

        def save_weights_then_die(self, *args, **kwargs):
            save_weights(self, *args, **kwargs)
            path = args[0] if args else kwargs["filepath"]
            saves.append(path)
            if len(saves) == kill_in_save:  # the later blocks never reached the disk
                size = os.path.getsize(path)
                with open(path, "r+b") as handle:
                    handle.seek(size // 10)
                    handle.write(bytes(size - size // 10))
                os.kill(os.getpid(), signal.SIGKILL)

        keras.Model.save_weights = save_weights_then_die
    data = make_concept_images(300, 4, 32, random_state=0)
    y = [";".join(c) for c in data.concepts]
    model = ConceptCNNClassifier(image_size=32, filters=(8, 16), dense_units=(16,), epochs=8,
                                 learning_rate=3e-3, decay=0.0, random_state=0,
                                 checkpoint_dir=checkpoint)
    model.fit(data.images, y)
    model.save(output + ".keras")  # removes the checkpoint, now that the model is safe
    with open(output, "w") as handle:
        json.dump({"history": model.history_, "best_epoch": model.best_epoch_}, handle)
""")


def _start(tmp_path, script, *args):
    path = tmp_path / "script.py"
    path.write_text(script)
    return subprocess.Popen([sys.executable, str(path), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _committed_history(checkpoint):
    """The history of the epochs the checkpoint's backup committed."""
    return json.loads((checkpoint / "backup" / "training_metadata.json").read_text())[
        "state"]["history"]


def _finished_epochs(checkpoint):
    try:
        return len(_committed_history(checkpoint)["loss"])
    except (OSError, ValueError, KeyError):
        return 0


def test_a_killed_training_resumes_from_its_last_finished_epoch(tmp_path):
    checkpoint, output = tmp_path / "checkpoint", tmp_path / "result.json"
    first = _start(tmp_path, TRAIN_SCRIPT, tmp_path, checkpoint, output)
    deadline = time.monotonic() + 240
    while _finished_epochs(checkpoint) < 3 and first.poll() is None:
        assert time.monotonic() < deadline, "the training never reached epoch 3"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL and not output.exists()
    before = _committed_history(checkpoint)
    killed_after = len(before["loss"])
    assert 3 <= killed_after < 8

    second = _start(tmp_path, TRAIN_SCRIPT, tmp_path, checkpoint, output)
    _, errors = second.communicate(timeout=300)
    assert second.returncode == 0, errors.decode()[-2000:]
    result = json.loads(output.read_text())
    history = result["history"]
    assert len(history["loss"]) == 8  # the same number of epochs in all
    # The epochs committed before the kill start the history, as they were.
    assert {key: values[:killed_after] for key, values in history.items()} == before
    assert result["best_epoch"] == int(np.argmin(history["val_loss"]))
    assert not checkpoint.exists()  # removed once the model was saved
    print(f"killed after {killed_after} epochs; resumed to {len(history['loss'])} in all")


def test_a_training_killed_while_writing_its_backup_resumes(tmp_path):
    # The weights file of epoch 3 half-written when the kill comes (Keras wrote
    # it in place: the resumed training died on the damaged file, as h5py
    # raised an error Keras does not expect).
    checkpoint, output = tmp_path / "checkpoint", tmp_path / "result.json"
    first = _start(tmp_path, TRAIN_SCRIPT, tmp_path, checkpoint, output, 3)
    first.wait(timeout=300)
    assert first.returncode == -signal.SIGKILL and not output.exists()
    killed = _committed_history(checkpoint)
    assert len(killed["loss"]) == 2  # the third epoch's save did not commit
    leftovers = [name for name in os.listdir(checkpoint / "backup") if "saving" in name]
    assert leftovers  # the half-written weights are there, under their temporary name

    second = _start(tmp_path, TRAIN_SCRIPT, tmp_path, checkpoint, output)
    _, errors = second.communicate(timeout=300)
    assert second.returncode == 0, errors.decode()[-2000:]
    history = json.loads(output.read_text())["history"]
    assert len(history["loss"]) == 8
    assert {key: values[:2] for key, values in history.items()} == killed
    assert not checkpoint.exists()  # every file removed, the half-written one too


SAVE_SCRIPT = textwrap.dedent("""
    import os, signal, sys, zipfile
    import numpy as np
    from imageclef_concepts import ConceptCNNClassifier

    target = sys.argv[1]
    X = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    model = ConceptCNNClassifier(image_size=32, filters=(4, 8), dense_units=(8,), epochs=1,
                                 random_state=1).fit(X, ["C7", "C8"] * 4)
    original = zipfile.ZipFile.writestr

    def killed_while_writing(self, *args, **kwargs):  # dies half-way through the save
        os.kill(os.getpid(), signal.SIGKILL)

    zipfile.ZipFile.writestr = killed_while_writing
    model.save(target)
""")


@pytest.fixture
def saved_model(tmp_path, tiny_images):
    model = ConceptCNNClassifier(**{**TINY, "epochs": 1}).fit(
        tiny_images.images, [";".join(c) for c in tiny_images.concepts])
    path = tmp_path / "good.keras"
    model.save(path)
    return model, path


def test_a_save_killed_half_way_leaves_the_old_model_intact(tmp_path, saved_model, tiny_images):
    model, path = saved_model
    before = path.read_bytes()
    process = _start(tmp_path, SAVE_SCRIPT, path)
    process.wait(timeout=120)
    assert process.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    np.testing.assert_allclose(ConceptCNNClassifier.load(path).predict_proba(tiny_images.images),
                               model.predict_proba(tiny_images.images))


@pytest.mark.parametrize("breaking", [
    dict(random_state=np.random.RandomState(0)),
    dict(metrics=["binary_accuracy", object()]),
])
def test_a_save_that_fails_leaves_the_old_model_intact(saved_model, tiny_images, breaking):
    model, path = saved_model
    before = path.read_bytes()
    broken = ConceptCNNClassifier(**{**TINY, "epochs": 1}).fit(
        tiny_images.images, [";".join(c) for c in tiny_images.concepts])
    vars(broken).update(breaking)  # parameters JSON cannot hold
    with pytest.raises((ValueError, TypeError)):
        broken.save(path)
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".saving-")]
    ConceptCNNClassifier.load(path)


def test_training_with_a_seed_leaves_global_state_as_it_was(tiny_images):
    import tensorflow as tf
    from tensorflow.python.framework import config

    random.seed(123)
    np.random.seed(123)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    environment = dict(os.environ)
    assert not config.is_op_determinism_enabled()
    paths_free_model = ConceptCNNClassifier(**{**TINY, "epochs": 1, "random_state": 7})
    paths_free_model.fit(tiny_images.images, [";".join(c) for c in tiny_images.concepts])
    assert not config.is_op_determinism_enabled()
    assert random.getstate() == python_state
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))
    assert dict(os.environ) == environment
    # An unseeded dropout of the user's own works afterwards (it would not
    # under op determinism).
    tf.nn.dropout(tf.ones((2, 2)), rate=0.5)


def test_a_loaded_model_trains_further(saved_model, tiny_images):
    _, path = saved_model
    loaded = ConceptCNNClassifier.load(path)
    y = [";".join(c) for c in tiny_images.concepts]
    epochs = len(loaded.history_["loss"])
    loaded.partial_fit(tiny_images.images, y)
    assert len(loaded.history_["loss"]) == epochs + 1
    network = loaded.model_
    loaded.set_params(warm_start=True, epochs=2).fit(tiny_images.images, y)
    assert loaded.model_ is network  # the same network trained on, not a new one
    assert len(loaded.history_["loss"]) == 2  # a fit's history is its own epochs


def test_a_newer_file_format_is_refused_clearly(tmp_path, saved_model):
    import zipfile

    _, path = saved_model
    newer = tmp_path / "newer.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(newer, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "imageclef_concepts.json":
                metadata = json.loads(data)
                metadata["format"] = 99
                data = json.dumps(metadata)
            target.writestr(name, data)
    with pytest.raises(ValueError, match="newer imageclef_concepts"):
        ConceptCNNClassifier.load(newer)
    for content in (b"", b"not a zip", path.read_bytes()[:100]):
        broken = tmp_path / "broken.keras"
        broken.write_bytes(content)
        with pytest.raises(ValueError, match="not a .keras model file"):
            ConceptCNNClassifier.load(broken)
