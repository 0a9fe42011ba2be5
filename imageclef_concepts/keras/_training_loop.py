"""One fit's training loop: validation split, batches, callbacks, stages, checkpoint, history.

:func:`train_network` is what :class:`ConceptCNNClassifier` runs once scikeras
has turned ``X`` into an image source and ``y`` into an indicator matrix and
built the network (``estimator.model_``):

1. the checkpoint folder, if any, is opened with the run's fingerprint
   (:func:`run_fingerprint`), which refuses another run's checkpoint;
2. the usable images are split into training and validation
   (:func:`split_validation`) with the run's seed;
3. :class:`~._batches.ImageBatches` stream them, shuffled per epoch from its
   number, so that a resumed run sees the same order;
4. the callbacks: the best-epoch keeper, the learning-rate reduction, the
   user's, then the checkpoint (after them, so that an epoch commits their
   decisions), the batches' epoch counter; with EMA weights, the swap that
   shows the averages to all of them (:mod:`._ema`);
5. ``Model.fit`` once per stage (:func:`training_stages`: the frozen
   backbone, then everything at ``fine_tune_learning_rate``);
6. the history continued or started afresh (:func:`continued_history`);
7. the checkpoint told the state the training ended in (the next ``partial_fit`` or
   warm start goes on from it, and replaces the checkpoint); a continued training that
   fails puts back the state it went on from, so that running it again resumes it.

The callbacks themselves and the process-state guards are in :mod:`._training`
(no estimator there); compiling is :mod:`._architecture`'s.
"""

import json
from collections import defaultdict, namedtuple
from contextlib import contextmanager

import keras
import numpy as np

from ..files._checkpoints import CheckpointFolder
from ..files._digests import digest
from ..files._identity import Unidentifiable, identity_digest, network_identity
from ..files._sizes import bytes_held, check_disks, setting
from ..images._fingerprints import images_digest, weights_identity
from ..models._persistence import jsonable
from ._architecture import _optimizer, _uncompiled_network, compile_network, strategy_scope
from ._batches import ImageBatches, decode_errors_surfaced
from ._ema import EMASwap, uses_ema
from ._nan_guard import NaNGuard
from ._prediction import check_network_memory
from ._training import (
    TrainingCheckpoint,
    best_epoch_keeper,
    random_streams,
    seed_or_fresh,
    seeded,
    shown_progress,
)

# Parameters that do not change the network a training produces: a checkpoint
# is resumed whatever their values.
NOT_IN_FINGERPRINT = ("epochs", "threshold", "verbose", "checkpoint_dir", "n_jobs",
                      "image_cache_mb", "n_threads", "test_time_augmentation", "callbacks",
                      "on_error", "warm_start", "image_store")


def train_network(estimator, images, indicator, *, sample_weight, warm_start, epochs,
                  initial_epoch, validation_data):
    """Train ``estimator.model_`` on ``images`` and their ``indicator`` rows.

    Returns
    -------
    history : defaultdict of list
        The estimator's whole history: this fit's epochs, after the earlier
        ones when training continues.
    best_epoch : int or None
        Index in ``history`` of the epoch whose weights the network now has.
    checkpoint_run : tuple (path, run id) or None
        The checkpoint this training wrote, to remove once the model is saved.
    """
    check_network_memory(estimator, estimator.model_, len(images))  # before any epoch
    has_validation = validation_data is not None or estimator.validation_fraction is not None
    keeper = best_epoch_keeper(estimator.monitor, estimator.early_stopping_patience,
                               has_validation)
    seed = estimator._seed
    # Checked before the checkpoint is made (a refused run left one that refused the
    # corrected rerun as another training): the validation images (an unreadable one), and
    # that validation_fraction leaves images on each side (the split itself needs the seed).
    if validation_data is not None:
        try:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                shown = type(validation_data).__name__  # a third item, Keras' weights: not used
                raise ValueError(f"must be a pair (X_val, y_val); got a {shown}" + (
                    f" of {len(validation_data)} item(s)." if isinstance(
                        validation_data, (tuple, list)) else "."))
            validation_data = estimator._validate_data(*validation_data)
            estimator.targets_.transform(validation_data[1])  # concepts as the training's
        except ValueError as error:  # its words name X and y: say they are the validation's
            if type(error) is not ValueError:
                raise
            raise ValueError(f"validation_data: {error}") from None
    split_validation(images.usable_indices(), estimator.validation_fraction,
                     np.random.default_rng(0), validation_data)
    continued = warm_start and hasattr(estimator, "history_")
    folder = None if estimator.checkpoint_dir is None else CheckpointFolder.open(
        estimator.checkpoint_dir,
        run_fingerprint(estimator, images, indicator, sample_weight, validation_data,
                        continued=continued),
        fresh_seed=lambda: seed_or_fresh(seed))
    try:
        with _state_kept_if_failing(estimator.model_, continued and folder is not None):
            new_history = _fit_stages(estimator, images, indicator, sample_weight, warm_start,
                                      epochs, initial_epoch, validation_data, keeper, folder)
            if folder is not None:  # a training going on from this state replaces it
                folder.finish(weights_digest(estimator.model_))
    finally:
        if folder is not None:
            folder.release()  # the files stay until the model is saved
    history, best_epoch = continued_history(
        getattr(estimator, "history_", None), new_history, warm_start, initial_epoch, keeper)
    return history, best_epoch, None if folder is None else (folder.path, folder.run_id)


def _fit_stages(estimator, X, y, sample_weight, warm_start, epochs, initial_epoch,
                validation_data, keeper, folder):
    """Run ``Model.fit`` for each stage; return this fit's history."""
    plateau = None if estimator.reduce_lr_patience is None else keras.callbacks.ReduceLROnPlateau(
        monitor=estimator.monitor if keeper is not None else "loss",
        mode="min" if "loss" in estimator.monitor else "max",
        patience=estimator.reduce_lr_patience, factor=0.1)
    checkpoint = None if folder is None else TrainingCheckpoint(
        folder, keeper, plateau, announce=print if estimator.verbose else None,
        first_epoch=initial_epoch)
    if checkpoint is not None:
        checkpoint.check_epochs(epochs)
    seed = seed_or_fresh(estimator._seed) if folder is None else folder.seed
    train, validation = split_validation(X.usable_indices(), estimator.validation_fraction,
                                         np.random.default_rng(seed), validation_data)
    batches = ImageBatches(X, indices=train, targets=y, sample_weight=sample_weight,
                           batch_size=estimator.batch_size, shuffle_seed=seed,
                           first_epoch=initial_epoch)
    validation_batches = _validation_batches(estimator, X, y, validation, validation_data)
    # First: a diverged epoch is refused before anything sees it. Then what decides at an
    # epoch's end (the keeper, the rate reduction, the user's callbacks), then the
    # checkpoint, which commits those decisions with the epoch.
    verbose, shown = shown_progress(estimator.verbose)
    callbacks = [NaNGuard(), *(c for c in (keeper, plateau) if c is not None),
                 *estimator._user_callbacks,
                 *(checkpoint.callbacks() if checkpoint is not None else []),
                 batches.epoch_callback(),  # each epoch's order, from its number
                 *shown]  # last: the progress shows the logs the others left
    known_failures = len(X.failures)
    network, history = estimator.model_, {}
    stages = training_stages(initial_epoch, epochs, warm_start, estimator.freeze_epochs,
                             estimator.fine_tune_learning_rate)
    with seeded(estimator._seed), decode_errors_surfaced(batches, validation_batches), \
            _resumed_epoch_cleared(network):
        for first, last, stage_rate in stages:
            if stage_rate is not None:  # the second stage: everything, at a lower rate
                with strategy_scope(estimator):
                    compile_network(estimator, network, stage_rate, backbone_trainable=True)
            stage = network.fit(
                batches.dataset(),
                validation_data=(None if validation_batches is None
                                 else validation_batches.dataset()),
                epochs=last, initial_epoch=first, verbose=verbose, shuffle=False,
                callbacks=_with_ema_swap(callbacks, network, checkpoint))
            for key, values in stage.history.items():
                history.setdefault(key, []).extend(values)
            if network.stop_training:
                break  # early stopping ends both stages
    X.warn_failures("during training", reported=known_failures)
    return history if checkpoint is None else checkpoint.history


@contextmanager
def _state_kept_if_failing(network, keep):
    """Put the weights, optimizer state and random streams a continued training started
    from back if it fails (``keep``: its checkpoint holds the epochs it finished): they are
    its fingerprint's ``continued_from`` and the dropout masks its batches draw, so that
    running the call again resumes that checkpoint as if never stopped."""
    optimizer = getattr(network, "optimizer", None)
    variables = [] if optimizer is None else list(optimizer.variables)
    variables += random_streams(network)
    state = (network.get_weights(), [keras.ops.convert_to_numpy(v) for v in variables]) \
        if keep else None
    try:
        yield
    except BaseException:
        if state is not None:
            network.set_weights(state[0])
            for variable, value in zip(variables, state[1]):
                variable.assign(value)
        raise


@contextmanager
def _resumed_epoch_cleared(network):
    """Clear, however the fits end, the epoch a resumed fit went on from: Keras keeps it
    on the network (``Model._initial_epoch``), where a later fit would skip epochs."""
    try:
        yield
    finally:
        network._initial_epoch = None


def _with_ema_swap(callbacks, network, checkpoint):
    """The callbacks, with a new EMA swap right after the divergence guard when the
    network's optimizer (each stage compiles its own) keeps averages."""
    if not uses_ema(network.optimizer):
        return callbacks
    return [callbacks[0], EMASwap(checkpoint), *callbacks[1:]]


def training_stages(initial_epoch, epochs, warm_start, freeze_epochs, fine_tune_learning_rate):
    """(first epoch, end epoch, learning rate to recompile with or None) per stage.

    With ``freeze_epochs``, a fresh training runs the frozen backbone up to
    that epoch, then everything at ``fine_tune_learning_rate``; a training
    that continues (``warm_start``, or past the frozen epochs) is one stage.
    """
    end = initial_epoch + epochs
    if not freeze_epochs or warm_start or initial_epoch >= freeze_epochs:
        return [(initial_epoch, end, None)]
    frozen_end = min(freeze_epochs, end)
    stages = [(initial_epoch, frozen_end, None)]
    if frozen_end < end:
        stages.append((frozen_end, end, fine_tune_learning_rate))
    return stages


Counted = namedtuple("Counted", "weights state variables")


def count_weights(estimator, n_concepts):
    """:class:`Counted` ``(weights, state, variables)``: the numbers a model file of
    ``estimator`` for ``n_concepts`` holds at most (built on random weights, then dropped),
    its network's weights and its optimizer's state (Adam keeps two numbers a weight) for the
    weights it trains to the last epoch: those trained from the first, or all when a
    fine-tuning stage may come (:func:`training_stages`): early stopping seldom ends the frozen
    stage, and a file counted without the backbone's state was a third of its size; and how many
    variables hold them."""
    fine_tuned = (estimator.model is None and estimator.backbone != "paper"
                  and 0 < estimator.freeze_epochs < estimator.epochs)
    try:
        network = _uncompiled_network(estimator, n_concepts, seed=0, pretrained=False)
        if fine_tuned:  # as compile_network frees it (no loss: pos_weight needs the data)
            network.get_layer(estimator.backbone).trainable = True
        optimizer = _optimizer(estimator.optimizer, 1e-3, estimator.decay,
                               getattr(estimator, "ema_momentum", None))
        optimizer.build(network.trainable_variables)
        return Counted(network.count_params(),
                       sum(int(np.prod(variable.shape)) for variable in optimizer.variables),
                       len(network.weights) + len(optimizer.variables))
    finally:
        keras.backend.clear_session()  # as build_network drops Keras' global state


# A model file (HDF5 in a zip, stored or deflated) holds each weight and state number as
# float32, beside each variable's HDF5 header (1.6-1.9 KB measured) and its layer's share
# of the network's config (0.4 MB for DenseNet-121's 610 weights: 0.7 KB a weight), and a
# few KB of the library's own; a checkpoint's best weights (.npz) take 0.2 KB a variable.
_BYTES_PER_NUMBER = 4
_BYTES_PER_VARIABLE = 2**12
_BYTES_PER_FILE = 2**18


def saved_bytes(counted):
    """The most a model file of the :class:`Counted` numbers takes on disk. Measured
    against ``.keras`` files (stored, not deflated): 1.01-1.05 times those of the paper's
    network at 128 px, EfficientNet-B0 and DenseNet-121, 1.1 MobileNetV3-Small's."""
    return (_BYTES_PER_NUMBER * (counted.weights + counted.state)
            + _BYTES_PER_VARIABLE * counted.variables + _BYTES_PER_FILE)


def checkpoint_bytes(counted):
    """The most a training's checkpoint folder holds while it saves an epoch: the weights
    with the optimizer's state (HDF5) and the best weights (.npz), each the previous
    epoch's beside the new one being written (``keras._backup``)."""
    best = counted._replace(state=0)
    return 2 * (saved_bytes(counted) + saved_bytes(best))


def checkpoint_demand(counted, folder, name):
    """What a checkpoint in ``folder`` asks of its disk (``files._sizes.check_disks``'s
    demand), given as ``name``: :func:`checkpoint_bytes`, less what a checkpoint to be
    resumed holds there already."""
    return (max(checkpoint_bytes(counted) - bytes_held(folder), 0), folder,
            setting(name, folder), "the checkpoint",
            f"give {name} a folder on another disk")


def check_checkpoint_room(estimator, n_concepts):
    """Refuse, before a new network is built, a ``checkpoint_dir`` whose disk cannot take
    the checkpoint's epochs: a full disk lost the first epoch. It costs one more build of
    the network with random weights (0.7-2.7 s for the paper's network to DenseNet-121)."""
    if estimator.checkpoint_dir is not None:
        counted = count_weights(estimator, n_concepts)
        check_disks([checkpoint_demand(counted, estimator.checkpoint_dir, "checkpoint_dir")])


def continued_history(previous, new_history, warm_start, initial_epoch, keeper):
    """The history after this fit, and the index in it of the epoch kept (or None).

    A warm or partial fit past epoch 0 continues ``previous``; any other fit
    starts afresh.
    """
    history = defaultdict(list)
    if warm_start and previous is not None and initial_epoch != 0:
        history = previous
    first_new_epoch = len(history["loss"])
    for key, values in new_history.items():
        history[key] += [float(value) for value in values]
    kept = keeper is not None and keeper.best_weights is not None
    best_epoch = first_new_epoch + keeper.best_epoch - initial_epoch if kept else None
    return history, best_epoch


def split_validation(usable, validation_fraction, rng, validation_data=None):
    """(training indices, validation indices or None) among the ``usable`` images.

    ``validation_fraction`` of them, drawn by ``rng``, are held out, unless
    ``validation_data`` is given or the fraction is None; each side gets
    at least one image or a ValueError says so.
    """
    if validation_data is not None or validation_fraction is None:
        return usable, None
    n_validation = int(round(validation_fraction * len(usable)))
    if n_validation < 1 or n_validation >= len(usable):
        raise ValueError(
            f"validation_fraction={validation_fraction} of {len(usable)} images "
            f"leaves {n_validation} for validation and {len(usable) - n_validation} "
            "for training; "
            "each needs at least one. Use validation_fraction=None or pass validation_data."
        )
    shuffled = rng.permutation(usable)
    return np.sort(shuffled[n_validation:]), np.sort(shuffled[:n_validation])


def _validation_batches(estimator, X, y, validation, validation_data):
    if validation_data is not None:
        X_val, y_val = validation_data
        images, _ = estimator._validate_data(X_val, y_val)
        targets = estimator.targets_.transform(y_val)
        return ImageBatches(images, indices=images.usable_indices(), targets=targets,
                            batch_size=estimator.batch_size)
    if validation is None:
        return None
    return ImageBatches(X, indices=validation, targets=y, batch_size=estimator.batch_size)


def run_fingerprint(estimator, X, y, sample_weight, validation_data, continued=False):
    """What defines a training run, for its checkpoint: a checkpoint with another is
    not resumed. Settings that do not change the trained network (``epochs``, so that a
    finished run can be trained further; the threshold; verbosity, threads, caches)
    are left out. A training that goes on from a fitted network (``continued``:
    ``warm_start``, ``partial_fit``) starts from its weights: other weights, another run
    (the checkpoint of the fit before it is not resumed in its place; it ended in those
    weights, :func:`weights_digest`, so the new run replaces it). A callable parameter is
    known by its code and the values it holds, a user's ``model`` by the network built
    (:mod:`._identity`); one that neither tells apart is refused, naming it. A backbone's
    weights file is known as the images are, by its path and its version."""
    params = estimator.get_params()
    if isinstance(params["random_state"], np.random.RandomState):
        params["random_state"] = "RandomState"  # not reproducible: the stored seed is
    params["weights"] = weights_identity(params["weights"])  # a file: by path and version
    # a callable or Keras object by what it computes (not its name, nor its saved config
    # alone), a user's network by the one built
    params = {name: _identified(estimator, name, lambda value=value: json.loads(
        json.dumps(jsonable(value), sort_keys=True, default=identity_digest)))
        for name, value in params.items() if name not in (*NOT_IN_FINGERPRINT, "model")}
    params["model"] = None if estimator.model is None else _identified(
        estimator, "model", lambda: network_identity(estimator.model_, estimator.model))
    return {
        "continued_from": weights_digest(estimator.model_) if continued else None,
        "images": images_digest(X),
        "unusable_images": sorted(int(index) for index in X.failures),
        "concepts": digest(*map(str, estimator.classes_)),
        "image_concepts": indicator_digest(y),
        "sample_weight": None if sample_weight is None else digest(
            np.ascontiguousarray(sample_weight, dtype=np.float64)),
        "validation_images": None if validation_data is None else images_digest(
            validation_data[0]),
        "validation_concepts": None if validation_data is None else indicator_digest(
            estimator.targets_.transform(validation_data[1])),
        "parameters": params,
    }


def _identified(estimator, name, identify):
    """``identify()``, or the refusal of ``checkpoint_dir`` with parameter ``name``, which
    the fingerprint cannot tell from another (it would resume another training)."""
    try:
        return identify()
    except Unidentifiable as error:
        raise ValueError(
            f"checkpoint_dir: {name}={getattr(estimator, name)!r:.80} holds {error}, which "
            "a checkpoint cannot tell from another's (it could resume another training): "
            f"make {name} of functions, partials, Keras objects (whose get_config returns "
            "their arguments) and plain values, or give no checkpoint_dir.") from None


def weights_digest(network):
    """A digest of a network's weights: the state a continued training goes on from."""
    return digest(*(np.ascontiguousarray(weights) for weights in network.get_weights()))


def indicator_digest(indicator):
    """A digest of an indicator matrix (CSR, as the targets are encoded, or dense)."""
    from scipy import sparse

    if not sparse.issparse(indicator):
        indicator = sparse.csr_matrix(np.asarray(indicator))
    indicator = sparse.csr_matrix(indicator, dtype=np.float32)
    indicator.sum_duplicates()  # canonical: sorted indices, no repeats
    return digest(str(indicator.shape), *(np.ascontiguousarray(part) for part in
                                          (indicator.indptr, indicator.indices, indicator.data)))
