"""Weights averaged over training (EMA): Keras' optimizer EMA, swapped in wherever weights are read.

With ``ema_momentum``, Keras' optimizer keeps an exponential moving average
of the trainable weights (``use_ema=True``: after each step ``average =
ema_momentum * average + (1 - ema_momentum) * weights``, the first step's
average being the weights themselves), and ``Model.fit`` ends by copying
the averages into the weights (``finalize_variable_values``). This module
decides where else the averages are seen, with Keras' own
``SwapEMAWeights(swap_on_epoch=True)``:

* validation runs on the averages (the callback swaps them in for it);
* at each epoch's end the averages are in the model, the raw weights in the
  optimizer's slots, from the swap's ``on_epoch_end`` (it runs right after
  the divergence guard) to the next epoch's start: the best-epoch keeper
  (``EarlyStopping(restore_best_weights=True)``) keeps the averaged weights
  of the best epoch, and so does the checkpoint; the user's callbacks see
  them too;
* the fitted (and saved) model holds the averages: of the last epoch, or of
  the best one the keeper restores.

What combines, and how:

* a checkpoint (``checkpoint_dir``): Keras' backup is written at an epoch's
  end, so it holds the averages as weights and the raw weights as
  averages; :class:`EMASwap` starts a resumed fit swapped, and its first
  ``on_epoch_begin`` puts them back. A resumed run continues as the
  uninterrupted one (``tests/keras/test_ema.py``);
* two stages (``freeze_epochs``): the second stage compiles a new
  optimizer, whose average starts from the weights the first stage ended
  with (its averages, or its best epoch's); each stage has its own swap.
  (Not resumable from a checkpoint, with or without EMA.)
* ``warm_start``, ``partial_fit`` and training a finished checkpoint
  further: each fit ends with the averages as weights, and the next fit
  goes on from them, not from the raw weights: ``k`` calls of
  ``partial_fit`` are not one fit of ``k`` epochs;
* a user's optimizer object with ``use_ema=True`` is swapped the same way;
  ``ema_momentum`` overrides its momentum; its ``ema_overwrite_frequency``
  (the averages written into the weights every so many steps) is Keras'.
"""

import keras


def ema_settings(ema_momentum):
    """The optimizer configuration entries that turn Keras' EMA on (none for None)."""
    if ema_momentum is None:
        return {}
    return {"use_ema": True, "ema_momentum": float(ema_momentum)}


def uses_ema(optimizer):
    """Whether a compiled network's optimizer (or the one a loss-scale optimizer wraps)
    keeps averages."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return bool(getattr(inner, "use_ema", False))


class EMASwap(keras.callbacks.SwapEMAWeights):
    """Keras' ``SwapEMAWeights(swap_on_epoch=True)`` that resumes a checkpoint swapped.

    Parameters
    ----------
    checkpoint : TrainingCheckpoint or None
        The fit's checkpoint callback: when it resumed finished epochs
        (``resumed_epochs``), the weights Keras' backup restored are the
        averages (see the module's description).
    """

    def __init__(self, checkpoint=None):
        super().__init__(swap_on_epoch=True)
        self.checkpoint = checkpoint
        self._first_epoch = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch and self.checkpoint is not None and \
                self.checkpoint.resumed_epochs:
            self._ema_weights_in_model = True  # Keras' flag: swap back before training
        self._first_epoch = False
        super().on_epoch_begin(epoch, logs)
