"""Weights averaged over training (``ema_momentum``): Keras' EMA, where the library reads them."""

import keras
import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from imageclef_concepts import ConceptCNNClassifier, make_concept_images
from imageclef_concepts.keras import _training_loop

SMALL = dict(image_size=16, filters=(4,), dense_units=(8,), batch_size=8, decay=0.0)
MOMENTUM = 0.5


@pytest.fixture(scope="module")
def data():
    images = make_concept_images(40, 4, 16, random_state=0)
    return images.images, [";".join(c) for c in images.concepts]


class WeightsRecorder(keras.callbacks.Callback):
    """The trainable weights after every training step, and as callbacks see them at an
    epoch's end; optionally a kill after some epoch."""

    def __init__(self, kill_after=None):
        super().__init__()
        self.steps, self.epoch_ends, self.steps_at_epoch_end = [], [], []
        self.kill_after = kill_after

    def _weights(self):
        return [keras.ops.convert_to_numpy(w) for w in self.model.trainable_weights]

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(self._weights())

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_ends.append(self._weights())
        self.steps_at_epoch_end.append(len(self.steps))
        if epoch + 1 == self.kill_after:
            raise KeyboardInterrupt("killed after an epoch")


def _averages(steps, momentum=MOMENTUM):
    """Keras' EMA by hand: the first step's weights, then momentum * average + (1 - m) * w."""
    averages, average = [], None
    for weights in steps:
        average = [w.copy() for w in weights] if average is None else [
            momentum * a + (1 - momentum) * w for a, w in zip(average, weights)]
        averages.append(average)
    return averages


def _trainable(model):
    return [keras.ops.convert_to_numpy(w) for w in model.model_.trainable_weights]


def _max_difference(first, second):
    return max(float(np.abs(a - b).max()) for a, b in zip(first, second))


@pytest.mark.slow  # networks trained end to end: seconds (the README's 6 minutes)
def test_the_model_keeps_the_average_of_its_best_epoch_and_saves_it(tmp_path, data):
    X, y = data
    params = dict(SMALL, learning_rate=0.3, epochs=3, validation_fraction=0.25, random_state=1)
    recorder = WeightsRecorder()
    model = ConceptCNNClassifier(**params, ema_momentum=MOMENTUM,
                                 callbacks=[recorder]).fit(X, y)
    averages = _averages(recorder.steps)
    for end, seen in zip(recorder.steps_at_epoch_end, recorder.epoch_ends):
        assert _max_difference(seen, averages[end - 1]) < 1e-6  # callbacks see the averages
    best = model.best_epoch_
    assert best < 2  # the best epoch is not the last: the keeper restored it
    assert _max_difference(_trainable(model), recorder.epoch_ends[best]) == 0
    raw = recorder.steps[recorder.steps_at_epoch_end[best] - 1]
    assert _max_difference(_trainable(model), raw) > 1e-3  # not the raw weights

    without = WeightsRecorder()
    ConceptCNNClassifier(**params, callbacks=[without]).fit(X, y)
    # The averages change nothing of the raw training (but float rounding in the fused step).
    assert _max_difference(without.steps[-1], recorder.steps[-1]) < 1e-5

    model.save(tmp_path / "ema.keras")
    loaded = ConceptCNNClassifier.load(tmp_path / "ema.keras")
    assert loaded.ema_momentum == MOMENTUM
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


@pytest.mark.slow
def test_a_resumed_training_averages_as_the_uninterrupted_one(tmp_path, data):
    X, y = data
    params = dict(SMALL, learning_rate=1e-2, epochs=2, random_state=0, ema_momentum=MOMENTUM)
    whole = ConceptCNNClassifier(**params).fit(X, y)
    checkpoint = tmp_path / "checkpoint"
    with pytest.raises(KeyboardInterrupt):
        ConceptCNNClassifier(**params, checkpoint_dir=checkpoint,
                             callbacks=[WeightsRecorder(kill_after=1)]).fit(X, y)
    resumed = ConceptCNNClassifier(**params, checkpoint_dir=checkpoint).fit(X, y)
    assert resumed.history_ == whole.history_
    for kept, uninterrupted in zip(resumed.model_.get_weights(), whole.model_.get_weights()):
        np.testing.assert_array_equal(kept, uninterrupted)


@pytest.mark.slow
def test_a_second_stage_averages_from_its_own_start(monkeypatch, data):
    # Two stages on the paper's network (freeze_epochs needs a backbone, slow to build):
    # the second compiles a new optimizer, whose average starts afresh.
    monkeypatch.setattr(_training_loop, "training_stages",
                        lambda *args: [(0, 1, None), (1, 2, 1e-2)])
    recorder = WeightsRecorder()
    X, y = data
    model = ConceptCNNClassifier(**SMALL, learning_rate=1e-2, epochs=2, random_state=0,
                                 validation_fraction=None, ema_momentum=MOMENTUM,
                                 callbacks=[recorder]).fit(X, y)
    first_stage = recorder.steps_at_epoch_end[0]
    assert _max_difference(recorder.epoch_ends[0],
                           _averages(recorder.steps[:first_stage])[-1]) < 1e-6
    second = _averages(recorder.steps[first_stage:])[-1]
    assert _max_difference(_trainable(model), second) < 1e-6
    assert _max_difference(_trainable(model), _averages(recorder.steps)[-1]) > 1e-4


@pytest.mark.parametrize("value", [0, 1, -0.5, 1.5, float("nan"), "0.9", True])
def test_an_ema_momentum_outside_zero_to_one_is_refused_at_fit(value, data):
    X, y = data
    with pytest.raises(InvalidParameterError, match="'ema_momentum' parameter"):
        ConceptCNNClassifier(**SMALL, ema_momentum=value).fit(X, y)
