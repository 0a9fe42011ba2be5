"""Progress in notebooks: tqdm.auto bars or Keras' epoch lines in place of Keras' bar."""

import numpy as np

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
