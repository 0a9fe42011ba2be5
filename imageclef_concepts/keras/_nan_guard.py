"""A training that diverges stops with an error naming the epoch, not a model that predicts nothing.

Once the loss is NaN or infinite, every weight it updates becomes NaN: the
network's probabilities are NaN, which never pass a threshold, and the model
predicts no concept for any image, silently. Keras' ``TerminateOnNaN`` only
stops training and prints a line; :class:`NaNGuard` raises
:class:`TrainingDivergedError` instead, naming the epoch and batch, the
learning rate, and the usual causes (a learning rate too high, sample
weights or ``pos_weight`` too large).
"""

import math

import keras
import numpy as np


class TrainingDivergedError(ValueError):
    """Training produced a NaN or infinite loss: the network is unusable.

    A ``ValueError``, as the values that cause it (``learning_rate``,
    ``sample_weight``, ``pos_weight``) are the user's parameters.
    """


class NaNGuard(keras.callbacks.Callback):
    """Raise :class:`TrainingDivergedError` as soon as a logged loss is NaN or infinite.

    Checks the training loss after every batch (stopping hours of wasted
    training at the first bad batch); after every epoch, every logged value
    ending in ``loss`` (the validation loss included), the network's weights
    and its output for two blank images (the last update of an epoch shows in
    no loss of that epoch, and huge but finite weights overflow in the forward
    pass): one tiny forward pass an epoch.

    Examples
    --------
    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer=keras.optimizers.SGD(1e30), loss="mse")
    >>> try:
    ...     model.fit(np.ones((4, 1)), np.ones((4, 1)) * 1e30, epochs=3, verbose=0,
    ...               callbacks=[NaNGuard()])
    ... except TrainingDivergedError as error:
    ...     print(str(error)[:44])
    Training diverged: the loss became inf at ep
    """

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not _finite(loss):
            self._diverged("loss", loss, f"epoch {self._epoch + 1}, batch {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        for key, value in sorted((logs or {}).items()):
            if key.endswith("loss") and not _finite(value):
                self._diverged(key, value, f"the end of epoch {epoch + 1}")
        for variable in getattr(self.model, "trainable_weights", ()):
            values = keras.ops.convert_to_numpy(variable)
            if not np.isfinite(values).all():
                bad = values[~np.isfinite(values)].flat[0]
                self._diverged(f"weight {variable.path!r}", bad,
                               f"the end of epoch {epoch + 1}")
        probe = self._probe_output()
        if probe is not None and not np.isfinite(probe).all():
            self._diverged("output for a blank image", probe[~np.isfinite(probe)].flat[0],
                           f"the end of epoch {epoch + 1}")

    def _probe_output(self):
        """The network's output for an all-0 and an all-0.5 image (None: no single input)."""
        inputs = getattr(self.model, "inputs", None)
        if not inputs or len(inputs) != 1 or any(d is None for d in inputs[0].shape[1:]):
            return None
        shape = tuple(inputs[0].shape[1:])
        blank = np.stack([np.zeros(shape, np.float32), np.full(shape, 0.5, np.float32)])
        return keras.ops.convert_to_numpy(self.model(blank, training=False))

    def _diverged(self, key, value, where):
        raise TrainingDivergedError(
            f"Training diverged: the {key} became {float(value)} at {where}: the "
            "network no longer computes finite numbers and would predict no concept at all. "
            f"Likely causes: the learning rate ({self._learning_rate()}) is too high; "
            "sample_weight holds values too large (float32 overflows past 3.4e38, and "
            "much smaller weights can already make the loss overflow); pos_weight is too "
            "large. Lower them (e.g. sample weights with a mean of 1) and train again.")

    def _learning_rate(self):
        """The optimizer's current learning rate, as text ("unknown" if it cannot be read)."""
        try:
            rate = self.model.optimizer.learning_rate
            return f"{float(keras.ops.convert_to_numpy(rate)):g}"
        except Exception:  # a schedule or a custom optimizer: the message stays useful
            return "unknown"


def _finite(value):
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True  # not a number (a string log): not ours to judge
