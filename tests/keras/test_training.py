"""Progress in notebooks: tqdm.auto bars or Keras' epoch lines in place of Keras' bar."""

import numpy as np
import pytest

from imageclef_concepts.keras import _training
from imageclef_concepts.keras._training import ProgressBars, shown_progress


def test_outside_a_notebook_keras_shows_the_progress_it_is_asked_for():
    assert not _training.in_jupyter_kernel()
    assert shown_progress(0) == (0, []) and shown_progress(1) == (1, [])
    assert shown_progress(2) == (2, [])


def test_in_a_notebook_bars_replace_keras_bar_or_lines_without_widgets(monkeypatch):
    import tqdm.notebook

    monkeypatch.setattr(_training, "in_jupyter_kernel", lambda: True)
    verbose, callbacks = shown_progress(1)
    assert verbose == 0 and [type(c) for c in callbacks] == [ProgressBars]
    assert shown_progress(2) == (2, []) and shown_progress(0) == (0, [])
    monkeypatch.setattr(tqdm.notebook, "IProgress", None)  # as without ipywidgets
    assert shown_progress(1) == (2, [])  # Keras' line per epoch: no control characters


def test_the_bars_count_epochs_and_batches_and_show_the_losses(capsys):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    X, y = np.ones((12, 2)), np.ones((12, 1))
    model.fit(X, y, batch_size=4, epochs=3, initial_epoch=1, validation_data=(X, y),
              verbose=0, callbacks=[ProgressBars()])
    model.predict(X, batch_size=4, verbose=0, callbacks=[ProgressBars()])
    shown = capsys.readouterr().err  # outside a notebook tqdm.auto writes text
    final = [line for line in shown.replace("\r", "\n").splitlines() if line.strip()]
    assert any(line.startswith("training: 100%") and "3/3" in line and "val_loss=" in line
               for line in final)
    assert any(line.startswith("predicting: 100%") and "3/3" in line for line in final)
    # A bar per epoch over its batches (removed at the epoch's end), from the first one run.
    assert any(line.startswith("epoch 3:") and "/3 " in line for line in final)
    assert not any(line.startswith("epoch 1:") for line in final)


def _fit_losing_the_folder_after_one_epoch(folder, lose, monkeypatch):
    """Fit three epochs with checkpoint_dir=folder; ``lose(folder)`` once epoch 1 is saved."""
    import warnings

    from imageclef_concepts import ConceptCNNClassifier

    end = _training.TrainingCheckpoint.on_epoch_end

    def lose_then_end(self, epoch, logs=None):
        if epoch == 1:  # the second epoch ends: the first was saved
            lose(folder)
        return end(self, epoch, logs)

    monkeypatch.setattr(_training.TrainingCheckpoint, "on_epoch_end", lose_then_end)
    images = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = ConceptCNNClassifier(image_size=16, filters=(2,), dense_units=(4,), epochs=3,
                                     batch_size=3, validation_fraction=None, verbose=0,
                                     checkpoint_dir=folder).fit(images, ["C1", "C2"] * 3)
    assert len(model.history_["loss"]) == 3  # the training went on
    return [str(warning.message) for warning in caught if "checkpoint folder" in
            str(warning.message)]


@pytest.mark.slow
def test_a_checkpoint_folder_deleted_during_training_is_not_made_again(tmp_path, monkeypatch):
    # "Delete the folder to start afresh": the backup's next epoch made it again (backup/
    # without the manifest), and the next fit there was refused as not a checkpoint.
    import shutil

    folder = tmp_path / "checkpoint"
    said = _fit_losing_the_folder_after_one_epoch(folder, shutil.rmtree, monkeypatch)
    assert not folder.exists()
    assert len(said) == 1 and str(folder) in said[0]


def test_a_checkpoint_folder_replaced_during_training_gets_nothing(tmp_path, monkeypatch):
    # A user's folder put at its path (another training's checkpoint moved there): the
    # backup's files were written into it, a user's backup/ files renamed to .bkp.
    import shutil

    def replace(folder):
        shutil.rmtree(folder)
        (folder / "backup").mkdir(parents=True)
        (folder / "backup" / "training_metadata.json").write_text("mine")

    folder = tmp_path / "checkpoint"
    said = _fit_losing_the_folder_after_one_epoch(folder, replace, monkeypatch)
    assert sorted(path.name for path in folder.rglob("*")) == ["backup",
                                                                "training_metadata.json"]
    assert (folder / "backup" / "training_metadata.json").read_text() == "mine"
    assert len(said) == 1


@pytest.mark.slow
def test_fewer_epochs_than_the_checkpoint_holds_are_refused_before_training(tmp_path):
    # Killed after 2 of 3 epochs, then fit(epochs=1) with the same checkpoint_dir: it went
    # on "from epoch 2", trained nothing and returned the 2-epoch network without a word.
    import keras

    from imageclef_concepts import ConceptCNNClassifier
    from imageclef_concepts.files._checkpoints import CheckpointError

    class Stop(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    folder = tmp_path / "checkpoint"
    params = dict(image_size=16, filters=(2,), dense_units=(4,), batch_size=3, verbose=0,
                  validation_fraction=None, random_state=0, checkpoint_dir=folder)
    images = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    with pytest.raises(KeyboardInterrupt):
        ConceptCNNClassifier(**params, epochs=3, callbacks=[Stop()]).fit(images,
                                                                         ["C1", "C2"] * 3)
    with pytest.raises(CheckpointError, match=(
            rf"^epochs=1, but checkpoint folder {folder} holds 2 finished epochs of this "
            r"training: .*epochs=2 or more.*remove_checkpoint.*--restart[^\n]*$")):
        ConceptCNNClassifier(**params, epochs=1).fit(images, ["C1", "C2"] * 3)
    model = ConceptCNNClassifier(**params, epochs=2).fit(images, ["C1", "C2"] * 3)
    assert len(model.history_["loss"]) == 2  # as many: the finished run, as it was
