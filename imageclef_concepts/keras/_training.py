"""Training that keeps the best epoch, survives interruption and leaves no global state behind.

* The best epoch by ``monitor`` is kept by Keras' own ``EarlyStopping``
  (``restore_best_weights=True``; with no patience it never stops early).
* :class:`TrainingCheckpoint` makes a training resumable: after every
  epoch it commits the weights and optimizer state, the random streams,
  the history so far and the counters of early stopping and of the
  learning-rate reduction in one backup (:mod:`._backup`: a kill at any
  instant loses at most the epoch being saved). Started again with the same
  arguments, a killed training goes on from its last finished epoch. The
  folder itself (ownership, fingerprint, lock, removal) is
  :mod:`imageclef_concepts.files._checkpoints`'.
* :func:`seeded` seeds Python, NumPy and TensorFlow for reproducible
  training and puts every piece of global state back as it was.
* :func:`train_dense_head`: a linear or MLP multi-label head on embeddings,
  returned as NumPy arrays (``ConceptMLPClassifier`` predicts without Keras).
* :func:`shown_progress`: in a Jupyter kernel, ``verbose=1`` is shown by
  :class:`ProgressBars` (``tqdm.auto``) instead of Keras' progress bar.
"""

import copy
import os
import random
import sys
import warnings
from contextlib import contextmanager

import keras
import numpy as np

from ..files._checkpoints import BACKUP, CheckpointError
from ._backup import (
    _RESTART_ADVICE,
    BEST_WEIGHTS,
    PLATEAU_COUNTERS,
    RANDOM_STREAMS,
    WEIGHTS,
    KerasRestore,
    TrainingBackup,
)


def best_epoch_keeper(monitor, patience, has_validation):
    """Keras' ``EarlyStopping`` that restores the best epoch's weights, or None.

    Returns None when ``monitor`` is a validation log and there is no
    validation data (the last epoch is kept, as documented).
    """
    if monitor.startswith("val_") and not has_validation:
        return None
    return keras.callbacks.EarlyStopping(
        monitor=monitor, mode="min" if "loss" in monitor else "max",
        patience=10**9 if patience is None else patience, restore_best_weights=True)


class TrainingCheckpoint(keras.callbacks.Callback):
    """Resumable training: the weights, the random streams, the history and the best epoch.

    After every epoch all of it is committed at once by
    :class:`~._backup.TrainingBackup` (a kill at any instant resumes the last
    committed epoch, never a mixture of two); at the start, the newest
    backup is restored, the weights by :class:`~._backup.KerasRestore`.

    Parameters
    ----------
    folder : imageclef_concepts.files._checkpoints.CheckpointFolder
        The run's checkpoint folder, opened (marked, fingerprinted and locked).
    keeper : keras.callbacks.EarlyStopping or None
        The best-epoch keeper whose state is saved and restored.
    plateau : keras.callbacks.ReduceLROnPlateau or None
        The learning-rate reduction whose counters are saved and restored
        (the rate itself is the optimizer's, saved with the weights).
    announce : callable or None
        Called with one line once a backup is restored whole (weights
        loaded), never before a backup that is then refused.
    first_epoch : int, default=0
        The epoch the run starts at (``partial_fit`` goes on from the
        estimator's): a record counts the run's own epochs, as its history
        holds them, and its best epoch from there.
    """

    def __init__(self, folder, keeper, plateau=None, announce=None, first_epoch=0):
        super().__init__()
        self.folder = folder
        self.keeper = keeper
        self.plateau = plateau
        self.files = TrainingBackup(os.path.join(folder.path, BACKUP))
        self.first_epoch = first_epoch
        self.backup = KerasRestore(self.files, announce and (
            lambda: announce(f"Resuming the training checkpointed in {folder.path}")),
            first_epoch)
        self.history = {}
        self.resumed_epochs = 0
        self.lost = False  # the checkpoint folder was deleted or replaced (warned once)

    def callbacks(self):
        """This, then the restoring of the weights: after every callback that decides at
        an epoch's end (the keeper, the rate reduction, the user's), whose decisions each
        epoch commits."""
        return [self, self.backup]

    def check_epochs(self, epochs):
        """Refuse, before training, a fit of fewer ``epochs`` than the checkpoint holds
        finished: it would go on past them, train nothing and return the longer training.
        (``epochs`` is not in the run's fingerprint, so that a finished run trains further.)"""
        record = self.files.restore()
        if record is not None and record["epoch"] > epochs:
            held = record["epoch"]
            raise CheckpointError(
                f"epochs={epochs}, but checkpoint folder {self.folder.path} holds {held} "
                f"finished epochs of this training: give epochs={held} or more to go on from "
                f"them, or {_RESTART_ADVICE}.")

    def on_train_begin(self, logs=None):
        # Runs after the keeper reset itself and before Keras loads the weights.
        record = self.files.restore()
        if record is None:
            return
        state, finished = record["state"], record["epoch"]
        self.history = {key: list(values) for key, values in state["history"].items()}
        self.resumed_epochs = finished
        streams = random_streams(self.model)
        if RANDOM_STREAMS in record["files"]:  # read within bounds (a forged file)
            for variable, value in zip(streams, self.files.arrays(
                    RANDOM_STREAMS, "s", [(v.shape, v.dtype) for v in streams])):
                variable.assign(value)
        if self.keeper is not None and state["best_epoch"] is not None:
            self.keeper.best_weights = self.files.arrays(
                BEST_WEIGHTS, "w", [(w.shape, w.dtype) for w in self.model.weights])
            self.keeper.best = state["best_value"]
            self.keeper.best_epoch = self.first_epoch + state["best_epoch"]
            self.keeper.wait = state["wait"]
        if self.plateau is not None and state["plateau"] is not None:
            for name in PLATEAU_COUNTERS:
                setattr(self.plateau, name, state["plateau"][name])

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        keeper = self.keeper
        streams = {f"s{i}": keras.ops.convert_to_numpy(variable)
                   for i, variable in enumerate(random_streams(self.model))}
        writers = {WEIGHTS: self.model.save_weights,
                   RANDOM_STREAMS: lambda path: np.savez(path, **streams)}
        if keeper is not None and keeper.best_weights is not None and \
                keeper.best_epoch == epoch:  # improved: the new best weights
            arrays = {f"w{i}": weights for i, weights in enumerate(keeper.best_weights)}
            writers[BEST_WEIGHTS] = lambda path: np.savez(path, **arrays)
        if not self.folder.still_own():  # deleted or replaced: nothing written there
            if not self.lost:
                self.lost = True
                warnings.warn(f"the checkpoint folder {self.folder.path} is no longer the one "
                              "this training opened (deleted, or another folder put at its "
                              "path): no more epochs are saved there, and it is not made "
                              "again; the training goes on.", UserWarning, stacklevel=2)
            return
        self.files.save(epoch + 1 - self.first_epoch, writers, self._state())

    def _state(self):
        """What the record holds besides files: the history and the callbacks' counters."""
        keeper, plateau = self.keeper, self.plateau
        kept = keeper is not None and keeper.best_weights is not None
        return {"history": self.history,
                "best_epoch": int(keeper.best_epoch) - self.first_epoch if kept else None,
                "best_value": float(keeper.best) if kept else None,
                "wait": 0 if keeper is None else int(keeper.wait),
                "stopped": bool(self.model.stop_training),
                "plateau": None if plateau is None else {
                    "best": float(plateau.best), "wait": int(plateau.wait),
                    "cooldown_counter": int(plateau.cooldown_counter)}}


def random_streams(network):
    """The states of ``network``'s random streams (dropout, augmentation): variables that
    are not weights, so that Keras' backup leaves them out and a resumed run would
    otherwise draw other dropout masks than the uninterrupted one (a checkpoint keeps them
    each epoch, a continued training stopped mid-epoch puts them back)."""
    weights = {id(weight) for weight in network.weights}
    return [variable for variable in network.variables if id(variable) not in weights]


def seed_or_fresh(random_state):
    """``random_state`` as an int seed, or a fresh random one for None."""
    if random_state is None:
        return int(np.random.default_rng().integers(2**31))
    return int(random_state)


# Keras' process-wide settings, kept in its global state beside per-session
# objects; keras.backend.clear_session() wipes them all, so they are put back.
_KERAS_SETTINGS = ("dtype_policy", "global_random_seed", "global_seed_generator",
                   "safe_mode_saving", "flash_attention", "nnx_enabled", "use_legacy_config",
                   # the layer-name counters: without them the user's next Dense would
                   # be named "dense" again and clash with one made before the fit
                   "object_name_uids")


@contextmanager
def process_state_kept():
    """Put every process-wide setting a fit may touch back as it was, whatever happens.

    Keras' settings (dtype policy, global seed and seed generator, safe mode:
    ``keras.backend.clear_session()`` wipes them), TensorFlow's global seed
    and op determinism, NumPy's and Python's global random states, and
    ``TF_DETERMINISTIC_OPS``.
    """
    from keras.src.backend.common import global_state
    from tensorflow.python.eager import context
    from tensorflow.python.framework import config

    missing = object()
    keras_settings = {name: getattr(global_state.GLOBAL_STATE_TRACKER, name, missing)
                      for name in _KERAS_SETTINGS}
    keras_settings = {name: copy.copy(value) if isinstance(value, dict) else value
                      for name, value in keras_settings.items()}  # the counters mutate
    saved_environment = os.environ.get("TF_DETERMINISTIC_OPS")
    saved_python, saved_numpy = random.getstate(), np.random.get_state()
    saved_seed = context.global_seed()
    was_deterministic = config.is_op_determinism_enabled()
    try:
        yield
    finally:
        for name, value in keras_settings.items():
            if value is missing:
                if hasattr(global_state.GLOBAL_STATE_TRACKER, name):
                    delattr(global_state.GLOBAL_STATE_TRACKER, name)
            else:
                global_state.set_global_attribute(name, value)
        if config.is_op_determinism_enabled() != was_deterministic:
            (config.enable_op_determinism if was_deterministic
             else config.disable_op_determinism)()
        if context.global_seed() != saved_seed:
            import tensorflow as tf

            tf.random.set_seed(saved_seed)
        np.random.set_state(saved_numpy)
        random.setstate(saved_python)
        if saved_environment is None:
            os.environ.pop("TF_DETERMINISTIC_OPS", None)
        else:
            os.environ["TF_DETERMINISTIC_OPS"] = saved_environment


@contextmanager
def seeded(seed):
    """Seed Python, NumPy and TensorFlow; restore all global state afterwards.

    With a seed, training is reproducible: TensorFlow's op determinism is on
    and its global seed set. With None, Python's and NumPy's generators (from
    which Keras draws its layers' seeds) get a fresh seed from the operating
    system, so each fit differs, and the user's generators do not advance.
    Either way everything :func:`process_state_kept` keeps is put back.
    """
    with process_state_kept():
        fresh = seed_or_fresh(seed)
        random.seed(fresh)
        np.random.seed(fresh)
        if seed is not None:
            import tensorflow as tf
            from tensorflow.python.framework import config

            os.environ["TF_DETERMINISTIC_OPS"] = "1"
            tf.random.set_seed(seed)
            config.enable_op_determinism()
        yield


def shown_progress(verbose):
    """``(verbose for Keras, callbacks)`` that show an estimator's ``verbose`` progress.

    Keras' own progress bar redraws itself with backspaces, carriage returns
    and colour codes, which a notebook keeps in its outputs. In a Jupyter
    kernel ``verbose=1`` is drawn by :class:`ProgressBars` (widgets) instead,
    or without ipywidgets by Keras' line per epoch (``verbose=2``); outside
    notebooks Keras prints as asked.
    """
    if verbose == 1 and in_jupyter_kernel():
        return (0, [ProgressBars()]) if has_widgets() else (2, [])
    return verbose, []


def in_jupyter_kernel():
    """True in a Jupyter kernel (outputs go to cells), as ``tqdm.auto`` tells it."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in shell.config


def has_widgets():
    """True when ``tqdm.auto`` draws widgets in a notebook (ipywidgets is installed)."""
    try:
        from tqdm.notebook import IProgress  # None without ipywidgets
    except ImportError:
        return False
    return IProgress is not None


class ProgressBars(keras.callbacks.Callback):
    """Training and prediction progress as ``tqdm.auto`` bars.

    Widgets in a notebook when ipywidgets is installed, text otherwise.
    Training shows a bar over the epochs, with the last epoch's losses, and
    one over the current epoch's batches, removed at the epoch's end;
    prediction a bar over the batches.
    """

    def on_train_begin(self, logs=None):
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self._epochs = tqdm(total=self.params.get("epochs"), unit="epoch", desc="training")

    def on_epoch_begin(self, epoch, logs=None):
        if self._epochs.n < epoch:  # a fit that goes on from an earlier epoch
            self._epochs.n = self._epochs.last_print_n = self._epochs.initial = epoch
        self._batches = self._tqdm(total=self.params.get("steps"), unit="batch",
                                   desc=f"epoch {epoch + 1}", leave=False)

    def on_train_batch_end(self, batch, logs=None):
        self._batches.set_postfix(logs or {}, refresh=False)
        self._batches.update()

    def on_epoch_end(self, epoch, logs=None):
        self._batches.close()
        self._epochs.set_postfix(logs or {}, refresh=False)
        self._epochs.update()

    def on_train_end(self, logs=None):
        self._epochs.close()

    def on_predict_begin(self, logs=None):
        from tqdm.auto import tqdm

        self._batches = tqdm(total=self.params.get("steps"), unit="batch", desc="predicting")

    def on_predict_batch_end(self, batch, logs=None):
        self._batches.update()

    def on_predict_end(self, logs=None):
        self._batches.close()


def train_dense_head(vectors, targets, units, *, epochs, batch_size, learning_rate, l2,
                     dropout, random_state):
    """Train ReLU layers of ``units`` and a sigmoid layer on ``(vectors, targets)``.

    Adam on binary cross-entropy, seeded by ``random_state`` (:func:`seeded`).
    Returns each dense layer's kernel and bias as float32 NumPy arrays.
    """
    with seeded(random_state):
        regulariser = keras.regularizers.L2(l2) if l2 else None
        inputs = keras.Input((vectors.shape[1],))
        values = inputs
        for width in units:
            values = keras.layers.Dense(width, activation="relu",
                                        kernel_regularizer=regulariser)(values)
            if dropout:
                values = keras.layers.Dropout(dropout)(values)
        if dropout and not units:
            values = keras.layers.Dropout(dropout)(values)
        outputs = keras.layers.Dense(targets.shape[1], activation="sigmoid",
                                     kernel_regularizer=regulariser)(values)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
        model.fit(vectors, targets, epochs=epochs, batch_size=batch_size, shuffle=True,
                  verbose=0)
        dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        return ([keras.ops.convert_to_numpy(layer.kernel).astype(np.float32) for layer in dense],
                [keras.ops.convert_to_numpy(layer.bias).astype(np.float32) for layer in dense])
