"""ConceptCNNClassifier: the paper's network as a scikit-learn multi-label estimator.

Built on scikeras' ``KerasClassifier`` through :class:`~._adapter.ScikerasAdapter`
(the one place its private hooks are overridden); ``predict``,
``predict_concepts`` and ``score`` come from the library's shared
:class:`~imageclef_concepts._base.ConceptClassifierMixin`, so the network's
probabilities become concepts by the same :class:`~imageclef_concepts.DecisionRule`
as every other concept estimator.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from collections import defaultdict
from contextlib import nullcontext
from numbers import Integral, Real
from typing import TYPE_CHECKING

import keras
import numpy as np
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .. import _paper as paper
from .._atomic_files import replaced_atomically
from .._base import ConceptClassifierMixin
from .._checkpoints import (
    CheckpointError,
    CheckpointFolder,
    check_checkpoint_folder,
    digest,
    remove_checkpoint,
)
from .._decision import DecisionRule
from .._image_decoding import RESAMPLING
from .._images import ON_ERROR, images_digest
from .._model_card import (
    METADATA_ENTRY,
    ModelFileError,
    check_record,
    is_archive_record,
    model_card,
    read_model_record,
)
from .._persistence import estimator_from_params, jsonable, model_file_errors
from . import AUGMENTATIONS, BACKBONES, LOSSES
from ._adapter import KerasTargets, ScikerasAdapter
from ._batches import ImageBatches, decode_errors_surfaced
from ._devices import (
    DISTRIBUTIONS,
    DTYPE_POLICIES,
    apply_thread_limit,
    dtype_policy,
    strategy_for,
)
from ._losses import balanced_pos_weight, make_loss
from ._network import (
    SMALLEST_BACKBONE_INPUT,
    build_backbone_network,
    build_concept_cnn,
    learning_rate_schedule,
    smallest_image_size,
)
from ._training import (
    TrainingCheckpoint,
    best_epoch_keeper,
    process_state_kept,
    seed_or_fresh,
    seeded,
)

if TYPE_CHECKING:  # names for annotations only
    from numpy.typing import ArrayLike
    from typing_extensions import Self

    from .._typing import FloatArray, Images, PathLike, Targets

# Version of what save() writes beside the network; load() refuses newer ones.
_FILE_FORMAT = 2
# Parameters that do not change the network a training produces: a checkpoint
# is resumed whatever their values.
_NOT_IN_FINGERPRINT = ("epochs", "threshold", "verbose", "checkpoint_dir", "n_jobs",
                       "image_cache_mb", "n_threads", "test_time_augmentation", "callbacks",
                       "on_error", "warm_start")


class ConceptCNNClassifier(ConceptClassifierMixin, ScikerasAdapter):
    """The MacUni-CSIRO ImageCLEF 2019 CNN as a multi-label estimator.

    Four blocks of Conv2D (5x5, stride 1, ReLU; 16, 32, 64, 128 filters),
    each followed by 2x2 max pooling and dropout 0.25; flatten; hidden fully
    connected layers; one sigmoid unit per concept. Binary cross-entropy,
    Adam (learning rate 1e-4, legacy time-based decay 1e-6), batch size 32,
    10 epochs, the best epoch on validation data kept, and a concept
    predicted when its probability is at least ``threshold`` (0.1).

    Parameters
    ----------
    image_size : int, default=400
        Images are resized to ``image_size x image_size`` (the paper: 400).
    filters : tuple of int, default=(16, 32, 64, 128)
        Filters of each convolution block; the number of blocks is its length.
    kernel_size : int or tuple of int, default=5
        Kernel side of every block's convolution, or one per block. **The
        paper states 5 x 5 for the first convolution only: the same size for
        the later blocks is our assumption** (``kernel_size=(5, 3, 3, 3)``
        is another reading).
    padding : {"valid", "same"}, default="valid"
        Convolution padding (the paper does not say; Keras' default).
    conv_dropout : float, default=0.25
        Dropout after each block.
    dense_units : tuple of int, default=(128, 64)
        Hidden fully connected layers. **The paper does not give their sizes:
        this default is our choice.**
    dense_dropout : float, default=0.5
        Dropout after each hidden layer (our choice, like ``dense_units``).
    learning_rate : float, default=1e-4
        Adam's learning rate.
    decay : float, default=1e-6
        Legacy Keras time-based decay per step (Keras 3:
        ``InverseTimeDecay(learning_rate, decay_steps=1, decay_rate=decay)``).
    batch_size : int, default=32
    epochs : int, default=10
    validation_fraction : float or None, default=0.1
        Share of the training images held out to pick the best epoch, drawn
        at random (``random_state``). None trains on everything. Ignored when
        ``fit`` gets ``validation_data``.
    monitor : str, default="val_loss"
        The Keras log that picks the best epoch: ``"loss"``, ``"val_loss"``
        or ``[val_]<metric>`` for a metric in ``metrics``. Minimised when it
        names a loss, maximised otherwise. The paper picked by accuracy, but
        binary accuracy is ~99.9% for any model over thousands of sparse
        labels. Without validation data a ``val_`` monitor keeps the last epoch.
    metrics : list of str or keras.metrics.Metric, default=None
        Extra Keras metrics to log (and to monitor).
    threshold : float or DecisionRule, default=0.1
        A concept is predicted when its probability is at least this; or a
        whole :class:`~imageclef_concepts.DecisionRule` (per-concept
        thresholds, min/max concepts per image), as
        :class:`~imageclef_concepts.ThresholdTuner` tunes it. Saved with the
        model.
    warm_start : bool, default=False
        When True, ``fit`` continues training the existing model.
    random_state : int, numpy.random.RandomState or None, default=None
        Seeds weights, shuffling and the validation split; the same seed
        gives the same model on the CPU.
    verbose : int, default=0
        Keras' progress output: 0 silent, 1 a progress bar per epoch, 2 one
        line per epoch.
    resample : {"bilinear", "nearest", "bicubic", "lanczos", "box", "hamming"}, \
            default="bilinear"
        How images of another size are resized.
    on_error : {"raise", "skip"}, default="raise"
        For image files that are missing, empty, truncated or not images:
        ``"raise"`` stops with an error naming the file (missing, empty and
        non-image files are found before training starts); ``"skip"`` leaves
        them out of training with a warning naming them, and gives them NaN
        probabilities (no concepts) in prediction.
    n_jobs : int, default=2
        Threads that decode image files while the network trains.
    image_cache_mb : float, default=256
        When ``X`` is image paths, decoded images are kept in memory up to
        this many megabytes during a ``fit``, so that later epochs do not
        decode them again (images beyond it are decoded at every epoch; 0
        decodes every image every epoch). At 48 px, 256 MB holds about 38,000
        images; at 400 px about 560. Small images decode in about as long as
        a training step on them takes, so without the cache training from
        files is markedly slower than from arrays.
    backbone : {"paper", "densenet121", "resnet50", "efficientnetb0"}, default="paper"
        ``"paper"`` is the network above. The others replace the four
        convolution blocks by a Keras applications network (global average
        pooled), each with its own input preprocessing, under the same
        hidden layers and sigmoid outputs; ``filters``, ``kernel_size``,
        ``padding`` and ``conv_dropout`` then do not apply. DenseNet-121 is
        what the best 2019 system used, at 224 px.
    weights : None, "imagenet" or path, default="imagenet"
        Backbone weights: ImageNet (downloaded by Keras on first use), a
        weights file saved from the same backbone, or None (random). A
        weights file is refused with the paper's network or your own
        ``model``, which have no backbone to load it into.
    trainable_backbone : bool, default=False
        Fine-tune the backbone (True) or keep it frozen (False).
    min_count : int, default=1
        For concept lists: give an output only to concepts of at least this
        many training images (the long tail's rarest are left out).
    max_labels : int or None, default=None
        For concept lists: give outputs to this many most frequent concepts
        only.
    early_stopping_patience : int or None, default=None
        Stop when ``monitor`` has not improved for this many epochs (Keras'
        ``EarlyStopping``); None trains every epoch. Either way the best
        epoch's weights are kept.
    checkpoint_dir : str, path-like or None, default=None
        Make training resumable: after every epoch the weights, optimizer
        state, history and best epoch so far are saved here (Keras'
        ``BackupAndRestore`` and the library's own state), and ``fit`` with
        the same arguments after a crash or a kill goes on from the last
        finished epoch: the same number of epochs in all, the history
        continued, the best epoch kept across the interruption. The folder
        must be new, empty, or a checkpoint of the library's (marked by its
        manifest): a folder holding anything else is refused, and only the
        library's own files are ever removed. A checkpoint of another run
        (other images or concepts, other parameters or seed) is refused,
        naming what differs; a second training on the same folder at the
        same time fails at once (a lock). A relative path is resolved when
        training starts. The checkpoint stays after ``fit``, so that nothing
        is lost if saving fails, and is removed by :meth:`save` once the
        model file is written (or by :meth:`remove_checkpoint`). Not saved
        with the model.
    model : keras.Model, callable or None, default=None
        Any network instead of the paper's (scikeras' convention): a Keras
        model (copied with ``keras.models.clone_model`` for each fit) or a
        callable ``model(n_concepts=..., image_size=...)`` returning one. It
        takes ``image_size`` x ``image_size`` x 3 pixels in 0-255 and gives
        one sigmoid probability per concept; streaming, thresholds and
        saving work as for the paper's network.
    loss : {"binary_crossentropy", "focal", "asymmetric", "soft_f1"} or Keras loss, \
            default="binary_crossentropy"
        ``"focal"`` is Keras' ``BinaryFocalCrossentropy(gamma=2)``;
        ``"asymmetric"`` and ``"soft_f1"`` are described in
        :mod:`imageclef_concepts.keras._losses`; any Keras loss (name or
        object) works too.
    optimizer : str or keras.optimizers.Optimizer, default="adam"
        The optimizer, given ``learning_rate`` (with ``decay``'s legacy
        schedule) unless it is an optimizer object with its own.
    callbacks : list of keras.callbacks.Callback or None, default=None
        Your callbacks, run alongside the library's own (best epoch,
        checkpoint, learning-rate reduction). Not saved with the model.
    pos_weight : float, array-like, "balanced" or None, default=None
        Weight of each concept's positives in binary cross-entropy, for rare
        concepts: one number, one per concept, or ``"balanced"`` (negatives
        per positive in the training data, from 1 to 100).
    augmentation : {None, "light", "standard"}, default=None
        Random flips and small rotations (``"light"``), plus zoom and
        contrast (``"standard"``), as Keras preprocessing layers applied in
        training only, seeded by ``random_state``.
    pooling : {"avg", "max", "gem"}, default="avg"
        How a backbone's feature maps become one vector (``"gem"``:
        generalised mean with a learned exponent).
    freeze_epochs : int, default=0
        The winners' two-stage fine-tuning: this many epochs with the
        backbone frozen (the new head only), then the whole network at
        ``fine_tune_learning_rate`` for the remaining ``epochs``. Needs a
        backbone.
    fine_tune_learning_rate : float, default=1e-5
        The learning rate of the second stage.
    reduce_lr_patience : int or None, default=None
        Divide the learning rate by 10 when ``monitor`` has not improved for
        this many epochs (Keras' ``ReduceLROnPlateau``); needs ``decay=0``.
    test_time_augmentation : bool, default=False
        ``predict_proba`` averages the probabilities of each image and of its
        horizontal mirror.
    n_threads : int or None, default=None
        TensorFlow's threads in this process (intra- and inter-op), set at
        the first fit or prediction. None leaves TensorFlow's choice, every
        core. The rule on a cluster: workers x ``n_threads`` <= cores, so
        with 2 worker processes on a 2-core machine, ``n_threads=1``.
    distribution : {None, "mirrored", "multi_worker_mirrored"}, default=None
        Train one network over several devices with ``tf.distribute``: the
        network is built and compiled in the strategy's scope and every batch
        is split across the replicas (``batch_size`` stays the global batch).
        ``"multi_worker_mirrored"`` spans machines described by ``TF_CONFIG``.
    dtype_policy : {"float32", "mixed_float16", "mixed_bfloat16"}, default="float32"
        Keras' mixed precision: layers compute in 16 bits, the sigmoid
        outputs stay float32.

    Attributes
    ----------
    model_ : keras.Model
        The fitted network.
    classes_ : ndarray
        The concepts, one per output unit: concept names when ``y`` was
        concept lists, column indices ``0..n-1`` when it was an indicator.
    history_ : dict of list
        Per-epoch losses and metrics (``loss``, ``val_loss``, ...).
    best_epoch_ : int or None
        Index in ``history_`` of the epoch whose weights were kept, None when
        the last one was kept for lack of the monitored value.
    targets_ : ConceptTargets
        The concept vocabulary and the form of ``y``.

    Notes
    -----
    ``predict`` returns the target in the form it was given: an indicator
    matrix (int, n x n_concepts) for an indicator ``y``; a 1-d object array of
    tuples of concept names for concept lists (``";"`` strings or
    collections). That way ``GridSearchCV(scoring=imageclef_f1)`` compares
    each fold's ``y`` with ``predict`` in one form, and concepts that occur
    only in a validation fold count as misses instead of vanishing from the
    encoder's matrix. ``predict_concepts`` always gives concept tuples.

    Examples
    --------
    >>> import numpy as np
    >>> from imageclef_concepts import ConceptCNNClassifier
    >>> X = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    >>> y = ["C1;C2", "C2"] * 4
    >>> model = ConceptCNNClassifier(image_size=32, filters=(4, 8), dense_units=(8,),
    ...                              epochs=1, random_state=0).fit(X, y)
    >>> model.predict_proba(X).shape
    (8, 2)
    """

    _parameter_constraints = {
        "image_size": [Interval(Integral, 1, None, closed="left")],
        "filters": ["array-like"],
        "kernel_size": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "padding": [StrOptions({"valid", "same"})],
        "conv_dropout": [Interval(Real, 0, 1, closed="left")],
        "dense_units": ["array-like"],
        "dense_dropout": [Interval(Real, 0, 1, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "decay": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither"), None],
        "monitor": [str],
        "metrics": [list, None],
        "threshold": [Interval(Real, 0, 1, closed="both"), DecisionRule],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "resample": [StrOptions(set(RESAMPLING))],
        "on_error": [StrOptions(set(ON_ERROR))],
        "n_jobs": [Interval(Integral, 1, None, closed="left")],
        "image_cache_mb": [Interval(Real, 0, None, closed="left")],
        "backbone": [StrOptions({"paper", *BACKBONES})],
        "weights": [StrOptions({"imagenet"}), str, os.PathLike, None],
        "trainable_backbone": ["boolean"],
        "min_count": [Interval(Integral, 1, None, closed="left")],
        "max_labels": [Interval(Integral, 1, None, closed="left"), None],
        "early_stopping_patience": [Interval(Integral, 0, None, closed="left"), None],
        "checkpoint_dir": [str, os.PathLike, None],
        "model": [callable, None],
        "loss": [StrOptions(set(LOSSES)), str, keras.losses.Loss, callable],
        "optimizer": [str, keras.optimizers.Optimizer],
        "callbacks": [list, keras.callbacks.Callback, None],
        "pos_weight": [Interval(Real, 0, None, closed="neither"), StrOptions({"balanced"}),
                       "array-like", None],
        "augmentation": [StrOptions(set(AUGMENTATIONS)), None],
        "pooling": [StrOptions({"avg", "max", "gem"})],
        "freeze_epochs": [Interval(Integral, 0, None, closed="left")],
        "fine_tune_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "reduce_lr_patience": [Interval(Integral, 0, None, closed="left"), None],
        "test_time_augmentation": ["boolean"],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "distribution": [StrOptions(set(DISTRIBUTIONS)), None],
        "dtype_policy": [StrOptions(set(DTYPE_POLICIES))],
    }

    def __init__(
        self,
        *,
        image_size=paper.IMAGE_SIZE,
        filters=paper.FILTERS,
        kernel_size=paper.KERNEL_SIZE,
        padding="valid",
        conv_dropout=paper.CONV_DROPOUT,
        dense_units=paper.DENSE_UNITS,
        dense_dropout=paper.DENSE_DROPOUT,
        learning_rate=paper.LEARNING_RATE,
        decay=paper.DECAY,
        batch_size=paper.BATCH_SIZE,
        epochs=paper.EPOCHS,
        validation_fraction=0.1,
        monitor="val_loss",
        metrics=None,
        threshold=paper.THRESHOLD,
        warm_start=False,
        random_state=None,
        verbose=0,
        resample="bilinear",
        on_error="raise",
        n_jobs=2,
        image_cache_mb=256,
        backbone="paper",
        weights="imagenet",
        trainable_backbone=False,
        min_count=1,
        max_labels=None,
        early_stopping_patience=None,
        checkpoint_dir=None,
        model=None,
        loss="binary_crossentropy",
        optimizer="adam",
        callbacks=None,
        pos_weight=None,
        augmentation=None,
        pooling="avg",
        freeze_epochs=0,
        fine_tune_learning_rate=1e-5,
        reduce_lr_patience=None,
        test_time_augmentation=False,
        n_threads=None,
        distribution=None,
        dtype_policy="float32",
    ):
        # scikeras' __init__ would add parameters we do not have; ours are all explicit.
        self.image_size = image_size
        self.filters = filters
        self.kernel_size = kernel_size
        self.padding = padding
        self.conv_dropout = conv_dropout
        self.dense_units = dense_units
        self.dense_dropout = dense_dropout
        self.learning_rate = learning_rate
        self.decay = decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.validation_fraction = validation_fraction
        self.monitor = monitor
        self.metrics = metrics
        self.threshold = threshold
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.resample = resample
        self.on_error = on_error
        self.n_jobs = n_jobs
        self.image_cache_mb = image_cache_mb
        self.backbone = backbone
        self.weights = weights
        self.trainable_backbone = trainable_backbone
        self.min_count = min_count
        self.max_labels = max_labels
        self.early_stopping_patience = early_stopping_patience
        self.checkpoint_dir = checkpoint_dir
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.callbacks = callbacks
        self.pos_weight = pos_weight
        self.augmentation = augmentation
        self.pooling = pooling
        self.freeze_epochs = freeze_epochs
        self.fine_tune_learning_rate = fine_tune_learning_rate
        self.reduce_lr_patience = reduce_lr_patience
        self.test_time_augmentation = test_time_augmentation
        self.n_threads = n_threads
        self.distribution = distribution
        self.dtype_policy = dtype_policy

    # ------------------------------------------------------------------ fit

    def fit(self, X: Images, y: Targets, *, validation_data: tuple[Images, Targets] | None = None,
            sample_weight: ArrayLike | None = None) -> Self:
        """Train the network on images and their concepts.

        Parameters
        ----------
        X : array-like of shape (n, h, w, 3), (n, h, w, 1) or (n, h, w), or sequence of paths
            uint8 pixels (0-255) or floats in [0, 1]; or image file paths (str
            or path-like, any format Pillow reads), decoded batch by batch in
            background threads while the network trains. Resized to
            ``image_size``.
        y : indicator matrix of shape (n, n_concepts), or sequence of concept lists
            Concept lists are collections of strings or ``;``-joined strings.
        validation_data : tuple (X_val, y_val), default=None
            Images and concepts to pick the best epoch on, instead of
            holding out ``validation_fraction`` of ``X``.
        sample_weight : array-like of shape (n,), default=None
            Finite and non-negative.

        Returns
        -------
        self : ConceptCNNClassifier
        """
        self._validate_params()
        self._check_architecture()
        with process_state_kept():  # the user's Keras, TensorFlow and random settings stay
            self._fit(X, y, sample_weight=sample_weight, warm_start=self.warm_start,
                      epochs=self.epochs, initial_epoch=0, validation_data=validation_data)
        return self

    def partial_fit(self, X: Images, y: Targets, *,
                    validation_data: tuple[Images, Targets] | None = None,
                    sample_weight: ArrayLike | None = None) -> Self:
        """Train for one more epoch, keeping the model and its history.

        The first call builds the model and fixes ``classes_`` from ``y``;
        later calls encode their ``y`` with those classes.

        Parameters
        ----------
        X, y, validation_data, sample_weight
            As for :meth:`fit`.

        Returns
        -------
        self : ConceptCNNClassifier
        """
        self._validate_params()
        self._check_architecture()
        with process_state_kept():
            self._fit(X, y, sample_weight=sample_weight, warm_start=True, epochs=1,
                      initial_epoch=self.current_epoch, validation_data=validation_data)
        return self

    def _check_architecture(self):
        if self.weights not in (None, "imagenet") and (self.model is not None
                                                      or self.backbone == "paper"):
            raise ValueError(
                f"weights={os.fspath(self.weights)!r} is a weights file for a pretrained "
                "backbone, but " + ("model= is your own network" if self.model is not None
                                    else "backbone='paper' (the paper's network) has none")
                + " to load it into: choose a backbone (backbone='densenet121'...), or leave "
                "weights out.")
        if self.model is not None:
            pass  # the user's network: its shapes are checked when it is built
        elif self.backbone != "paper":
            if self.image_size < SMALLEST_BACKBONE_INPUT:
                raise ValueError(f"image_size={self.image_size} is too small for "
                                 f"{self.backbone}: the smallest that works is "
                                 f"{SMALLEST_BACKBONE_INPUT}.")
            if self.weights not in (None, "imagenet") and not os.path.isfile(self.weights):
                raise ValueError(f"weights={self.weights!r}: no such weights file.")
        else:
            smallest = smallest_image_size(len(self.filters), self.kernel_size, self.padding)
            if self.image_size < smallest:
                raise ValueError(
                    f"image_size={self.image_size} is too small for {len(self.filters)} "
                    f"blocks of kernel_size={self.kernel_size} '{self.padding}' convolution "
                    f"and 2x2 pooling: the smallest image_size that works is {smallest}."
                )
        if self.freeze_epochs and self.backbone == "paper":
            raise ValueError("freeze_epochs freezes a pretrained backbone: set backbone= "
                             "(the paper's network has none).")
        if self.checkpoint_dir is not None:
            check_checkpoint_folder(self.checkpoint_dir)  # before any image is read
        if self.freeze_epochs and self.checkpoint_dir is not None:
            raise ValueError("checkpoint_dir cannot resume a two-stage fine-tuning yet: use "
                             "freeze_epochs=0 with checkpoint_dir, or no checkpoint_dir.")
        if self.reduce_lr_patience is not None and self.decay:
            raise ValueError("reduce_lr_patience changes the learning rate, which decay "
                             f"(={self.decay}) already schedules: set decay=0.")
        if self.pos_weight is not None and self.loss != "binary_crossentropy":
            raise ValueError(f"pos_weight weighs binary cross-entropy; it cannot be combined "
                             f"with loss={self.loss!r}.")
        if self.monitor.removeprefix("val_") not in {"loss", *self._metric_names()}:
            raise ValueError(
                f"monitor={self.monitor!r} is not logged: use 'loss', 'val_loss' or "
                f"[val_]<name> for a name in metrics={self.metrics!r}."
            )

    def _metric_names(self):
        return [m if isinstance(m, str) else m.name for m in self.metrics or ()]

    def _build_keras_model(self):
        # A grid search builds many models in one process: drop Keras' global
        # state (graph, layer names) and collect garbage, about 0.3 s a fit;
        # without the collection each fit leaves ~2.5 MB more behind. The
        # user's settings it wipes are put back when the fit ends
        # (process_state_kept around fit and partial_fit).
        keras.backend.clear_session()
        apply_thread_limit(self.n_threads)
        self._strategy = strategy_for(self.distribution)
        with seeded(self._random_state), dtype_policy(self.dtype_policy), \
                self._strategy.scope():
            network = self._network()
            trainable = self.trainable_backbone and not self.freeze_epochs
            self._compile(network, self.learning_rate, backbone_trainable=trainable)
        return network

    def _network(self):
        """The uncompiled network: the user's ``model``, a backbone's or the paper's."""
        n_concepts = len(self.classes_)
        if self.model is not None:
            return self._users_network(n_concepts)
        head = dict(image_size=self.image_size, dense_units=tuple(self.dense_units),
                    dense_dropout=self.dense_dropout, augmentation=self.augmentation,
                    seed=self._random_state)
        if self.backbone != "paper":
            return build_backbone_network(
                n_concepts, self.backbone, weights=self.weights, pooling=self.pooling,
                trainable_backbone=self.trainable_backbone and not self.freeze_epochs, **head)
        return build_concept_cnn(
            n_concepts, filters=tuple(self.filters),
            kernel_size=(self.kernel_size if isinstance(self.kernel_size, Integral)
                         else tuple(self.kernel_size)),
            padding=self.padding, conv_dropout=self.conv_dropout, **head)

    def _users_network(self, n_concepts):
        if isinstance(self.model, keras.Model):
            network = keras.models.clone_model(self.model)  # each fit starts afresh
        else:
            network = self.model(n_concepts=n_concepts, image_size=self.image_size)
        if not isinstance(network, keras.Model):
            raise TypeError(f"model= must be a keras.Model or return one; got "
                            f"{type(network).__name__}.")
        expected_input = (None, self.image_size, self.image_size, 3)
        if tuple(network.input_shape) != expected_input or \
                tuple(network.output_shape) != (None, n_concepts):
            raise ValueError(
                f"model= must take {expected_input} images and give {n_concepts} "
                f"probabilities (one per concept); it takes {network.input_shape} and gives "
                f"{network.output_shape}.")
        return network

    def _compile(self, network, learning_rate, backbone_trainable=None):
        """Compile with the loss and optimizer; freeze or free the backbone first."""
        if backbone_trainable is not None and self.backbone != "paper" and self.model is None:
            network.get_layer(self.backbone).trainable = backbone_trainable
        network.compile(optimizer=self._optimizer(learning_rate),
                        loss=make_loss(self.loss, self._pos_weight()),
                        metrics=list(self.metrics or ()))

    def _optimizer(self, learning_rate):
        if isinstance(self.optimizer, keras.optimizers.Optimizer):
            return self.optimizer.__class__.from_config(self.optimizer.get_config())
        rate = learning_rate_schedule(learning_rate, self.decay)
        return keras.optimizers.get({"class_name": self.optimizer,
                                     "config": {"learning_rate": rate}})

    def _pos_weight(self):
        if self.pos_weight is None:
            return None
        if isinstance(self.pos_weight, str):  # "balanced"
            return balanced_pos_weight(self.targets_.column_counts_, self.targets_.n_images_)
        weights = np.asarray(self.pos_weight, dtype=np.float64)
        if weights.ndim == 1 and len(weights) != len(self.classes_):
            raise ValueError(f"pos_weight has {len(weights)} values for "
                             f"{len(self.classes_)} concepts.")
        return weights

    def _strategy_scope(self):
        strategy = getattr(self, "_strategy", None)
        return strategy.scope() if strategy is not None else nullcontext()

    def _check_model_compatibility(self, y):
        # scikeras compares the loss parameter with the compiled loss by Keras
        # name, which fails for the library's own names ("focal", "soft_f1").
        if len(self.model_.outputs) != 1:
            raise ValueError(f"The network has {len(self.model_.outputs)} outputs; a concept "
                             "network has one (a probability per concept).")

    def _fit_keras_model(self, X, y, sample_weight, warm_start, epochs, initial_epoch,
                         validation_data=None):
        has_validation = validation_data is not None or self.validation_fraction is not None
        keeper = best_epoch_keeper(self.monitor, self.early_stopping_patience, has_validation)
        folder = None if self.checkpoint_dir is None else CheckpointFolder.open(
            self.checkpoint_dir, self._run_fingerprint(X, y, sample_weight, validation_data),
            fresh_seed=lambda: seed_or_fresh(self._random_state))
        try:
            self._train(X, y, sample_weight, warm_start, epochs, initial_epoch,
                        validation_data, keeper, folder)
        finally:
            if folder is not None:
                folder.release()  # the files stay until the model is saved
        # Which checkpoint this model came from: save() removes it once the model is safe.
        self._checkpoint_run = None if folder is None else (folder.path, folder.run_id)
        self.__dict__.pop("_strategy", None)  # a strategy does not pickle; the network is built

    def _train(self, X, y, sample_weight, warm_start, epochs, initial_epoch, validation_data,
               keeper, folder):
        checkpoint = None if folder is None else TrainingCheckpoint(folder, keeper)
        seed = seed_or_fresh(self._random_state) if folder is None else folder.seed
        if folder is not None and folder.resumed and self.verbose:
            print(f"Resuming the training checkpointed in {folder.path}")
        train, validation = self._split_validation(X, np.random.default_rng(seed),
                                                   validation_data)
        batches = ImageBatches(X, indices=train, targets=y, sample_weight=sample_weight,
                               batch_size=self.batch_size, shuffle_seed=seed,
                               first_epoch=initial_epoch)
        validation_batches = self._validation_batches(X, y, validation, validation_data)
        callbacks = (checkpoint.callbacks() if checkpoint is not None
                     else [keeper] if keeper is not None else [])
        callbacks.append(batches.epoch_callback())  # each epoch's order, from its number
        callbacks += self._fit_callbacks  # the user's, by scikeras' own routing
        if self.reduce_lr_patience is not None:
            callbacks.append(keras.callbacks.ReduceLROnPlateau(
                monitor=self.monitor if keeper is not None else "loss",
                mode="min" if "loss" in self.monitor else "max",
                patience=self.reduce_lr_patience, factor=0.1))
        known_failures = len(X.failures)
        history = {}
        with seeded(self._random_state), decode_errors_surfaced(batches, validation_batches):
            for first, last, stage_rate in self._stages(initial_epoch, epochs, warm_start):
                if stage_rate is not None:  # the second stage: everything, at a lower rate
                    with self._strategy_scope():
                        self._compile(self.model_, stage_rate, backbone_trainable=True)
                stage = self.model_.fit(
                    batches.dataset(),
                    validation_data=(None if validation_batches is None
                                     else validation_batches.dataset()),
                    epochs=last, initial_epoch=first, verbose=self.verbose, shuffle=False,
                    callbacks=callbacks)
                for key, values in stage.history.items():
                    history.setdefault(key, []).extend(values)
                if self.model_.stop_training:
                    break  # early stopping ends both stages
        X.warn_failures("during training", reported=known_failures)
        self._record_history(history if checkpoint is None else checkpoint.history,
                             warm_start, initial_epoch, keeper)

    def _run_fingerprint(self, X, y, sample_weight, validation_data):
        """What defines a training run, for its checkpoint: a checkpoint with another is
        not resumed. Settings that do not change the trained network (``epochs``, so that a
        finished run can be trained further; the threshold; verbosity, threads, caches)
        are left out."""
        params = self.get_params()
        if isinstance(params["random_state"], np.random.RandomState):
            params["random_state"] = "RandomState"  # not reproducible: the stored seed is
        params = _saved_params(params)
        for name in _NOT_IN_FINGERPRINT:
            params.pop(name, None)
        if isinstance(self.model, keras.Model):
            params["model"] = digest(self.model.to_json())
        elif self.model is not None:
            params["model"] = f"{self.model.__module__}.{self.model.__qualname__}"
        fingerprint = {
            "images": images_digest(X),
            "unusable_images": sorted(int(index) for index in X.failures),
            "concepts": digest(*map(str, self.classes_)),
            "image_concepts": _indicator_digest(y),
            "sample_weight": None if sample_weight is None else digest(
                np.ascontiguousarray(sample_weight, dtype=np.float64)),
            "validation_images": None if validation_data is None else images_digest(
                validation_data[0]),
            "validation_concepts": None if validation_data is None else _indicator_digest(
                self.targets_.transform(validation_data[1])),
            "parameters": json.loads(json.dumps(params, sort_keys=True,
                                                default=lambda value: type(value).__name__)),
        }
        return fingerprint

    def _stages(self, initial_epoch, epochs, warm_start):
        """(first epoch, end epoch, learning rate to recompile with or None) per stage."""
        end = initial_epoch + epochs
        if not self.freeze_epochs or warm_start or initial_epoch >= self.freeze_epochs:
            return [(initial_epoch, end, None)]
        frozen_end = min(self.freeze_epochs, end)
        stages = [(initial_epoch, frozen_end, None)]
        if frozen_end < end:
            stages.append((frozen_end, end, self.fine_tune_learning_rate))
        return stages

    def _record_history(self, new_history, warm_start, initial_epoch, keeper):
        if not warm_start or not hasattr(self, "history_") or initial_epoch == 0:
            self.history_ = defaultdict(list)
        first_new_epoch = len(self.history_["loss"])
        for key, values in new_history.items():
            self.history_[key] += [float(value) for value in values]
        kept = keeper is not None and keeper.best_weights is not None
        self.best_epoch_ = (first_new_epoch + keeper.best_epoch - initial_epoch if kept
                            else None)

    def _split_validation(self, X, rng, validation_data):
        everything = X.usable_indices()
        if validation_data is not None or self.validation_fraction is None:
            return everything, None
        n_validation = int(round(self.validation_fraction * len(everything)))
        if n_validation < 1 or n_validation >= len(everything):
            raise ValueError(
                f"validation_fraction={self.validation_fraction} of {len(everything)} images "
                f"leaves {n_validation} for validation and {len(everything) - n_validation} "
                "for training; "
                "each needs at least one. Use validation_fraction=None or pass validation_data."
            )
        shuffled = rng.permutation(everything)
        return np.sort(shuffled[n_validation:]), np.sort(shuffled[:n_validation])

    def _validation_batches(self, X, y, validation, validation_data):
        if validation_data is not None:
            X_val, y_val = validation_data
            images, _ = self._validate_data(X_val, y_val)
            targets = self.targets_.transform(y_val)
            return ImageBatches(images, indices=images.usable_indices(), targets=targets,
                                batch_size=self.batch_size)
        if validation is None:
            return None
        return ImageBatches(X, indices=validation, targets=y, batch_size=self.batch_size)

    # -------------------------------------------------------------- predict

    def predict_proba(self, X: Images) -> FloatArray:
        """Probability of each concept for each image.

        Parameters
        ----------
        X : array-like of images or sequence of paths
            As for :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_images, n_concepts)
            Column ``j`` is concept ``classes_[j]``.
        """
        check_is_fitted(self, "model_")
        apply_thread_limit(self.n_threads)
        probabilities = self._outputs_of(self.model_, X)
        if self.test_time_augmentation:
            mirrored = self._outputs_of(self.model_, X, mirrored=True)
            probabilities = (probabilities + mirrored) / 2
        return probabilities

    def _outputs_of(self, network, X, mirrored=False):
        """Run ``network`` over the images of ``X``; NaN rows for unreadable files."""
        images, _ = self._validate_data(X)
        known_failures = len(images.failures)
        batches = ImageBatches(images, batch_size=self.batch_size, mirrored=mirrored)
        with decode_errors_surfaced(batches):
            outputs = network.predict(batches.dataset(), verbose=self.verbose)
        images.warn_failures("during prediction", reported=known_failures)
        outputs[list(images.failures)] = np.nan  # no image, no output
        return outputs

    def embed(self, X: Images) -> FloatArray:
        """The penultimate layer's activations: the network's image embedding.

        Used by :class:`~imageclef_concepts.ConceptKNNClassifier` to retrieve
        similar images in the space the network learned.

        Parameters
        ----------
        X : array-like of images or sequence of paths

        Returns
        -------
        ndarray of shape (n_images, n_units)
        """
        check_is_fitted(self, "model_")
        penultimate = keras.Model(self.model_.inputs, self.model_.layers[-2].output)
        return self._outputs_of(penultimate, X)

    def save(self, path: PathLike) -> None:
        """Save the fitted model in Keras' native ``.keras`` format, atomically.

        The file holds the network and, beside it in the same archive, the
        estimator's parameters (the decision rule included), concept
        vocabulary and history as JSON: :meth:`load` unpickles nothing. The
        file is written to a temporary name in the same folder and moved
        into place, so a failed or interrupted save leaves what was at
        ``path`` untouched.

        Parameters
        ----------
        path : str or path-like
            Must end in ``.keras``.
        """
        check_is_fitted(self, "model_")
        path = os.fspath(path)
        if not path.endswith(".keras"):
            raise ValueError(f"The file name must end in .keras, got {path!r}.")
        metadata = json.dumps(self._metadata())  # fails here, before any file is touched
        with replaced_atomically(path) as temporary:
            self.model_.save(temporary)
            with zipfile.ZipFile(temporary, "a") as archive:
                archive.writestr(METADATA_ENTRY, metadata)
        self.remove_checkpoint()

    def remove_checkpoint(self) -> bool:
        """Remove the training checkpoint this model was trained with, if it is still there.

        ``fit`` keeps its checkpoint (``checkpoint_dir``) after training, so
        that nothing is lost if saving the model fails; :meth:`save` calls
        this once the model file is written. Only the checkpoint of this very
        training is removed, and only the library's own files in it
        (:func:`~imageclef_concepts.remove_checkpoint`).

        Returns
        -------
        bool
            True if a checkpoint was removed.
        """
        run = getattr(self, "_checkpoint_run", None)
        if run is None:
            return False
        try:
            removed = remove_checkpoint(run[0], run_id=run[1])
        except CheckpointError as error:  # the model is safe; only the clean-up waits
            warnings.warn(f"The training checkpoint was not removed: {error}", UserWarning,
                          stacklevel=2)
            return False
        self._checkpoint_run = None
        return removed

    def _metadata(self):
        import datetime

        import tensorflow as tf

        from .. import __version__

        return {
            "format": _FILE_FORMAT,
            "library_version": __version__,
            "keras_version": keras.__version__,
            "tensorflow_version": tf.__version__,
            "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "tuning": getattr(self, "tuning_", None),
            "params": _saved_params(self.get_params()),
            "custom_model": self.model is not None,
            "targets": self.targets_.to_dict(),
            "history": {key: jsonable(values) for key, values in self.history_.items()},
            "best_epoch": self.best_epoch_,
        }

    def export(self, path: PathLike, format: str = "tf_saved_model") -> None:
        """Export the network for serving, with its input preprocessing included.

        The exported artefact takes raw uint8 images of ``image_size`` x
        ``image_size`` x 3 (the batch an :class:`~imageclef_concepts.ImageLoader`
        gives) and returns one probability per concept, in ``classes_``
        order; scaling (and a backbone's normalisation) is inside. Keras'
        own export does the work.

        Parameters
        ----------
        path : str or path-like
            A folder for ``"tf_saved_model"`` (``served =
            tf.saved_model.load(path)``, then ``served.serve(images)``; keep
            ``served``, which owns the variables), a file for ``"onnx"``.
        format : {"tf_saved_model", "onnx"}, default="tf_saved_model"
            ``"onnx"`` converts through ``tf2onnx`` (``pip install
            "imageclef_concepts[onnx]"``); serve the file with ONNX Runtime,
            whose input is named ``uint8_image``.
        """
        check_is_fitted(self, "model_")
        if format not in ("tf_saved_model", "onnx"):
            raise ValueError(f"format={format!r}: use 'tf_saved_model' or 'onnx'.")
        inputs = keras.Input((self.image_size, self.image_size, 3), dtype="uint8",
                             name="uint8_image")
        serving = keras.Model(inputs, self.model_(CastToFloat(name="to_float")(inputs),
                                                  training=False))
        import tensorflow as tf

        # The signature is given, not traced from a first call: a serving
        # model that was never called is refused by Keras' ONNX exporter.
        signature = [tf.TensorSpec((None, self.image_size, self.image_size, 3), tf.uint8,
                                   name="uint8_image")]
        serving.export(os.fspath(path), format=format, verbose=False,
                       input_signature=signature)

    def model_card(self) -> str:
        """This model's card (Markdown): provenance, data, validation, rule, parameters.

        Returns
        -------
        str
        """
        check_is_fitted(self, "model_")
        return model_card(self._metadata(), name=type(self).__name__)

    @classmethod
    def load(cls, path: PathLike) -> ConceptCNNClassifier:
        """Load a model written by :meth:`save`.

        Only Keras' safe mode is used: nothing in the file is unpickled.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        ConceptCNNClassifier
            Fitted, predicting exactly as the saved one (its decision rule
            included); ``partial_fit`` and ``warm_start`` continue training.

        Raises
        ------
        ModelFileError
            Naming the file and what is wrong: not a model file, a missing or
            mistyped entry, a parameter outside its range, a network whose
            input or outputs disagree with the record. Parameters unknown to
            this version (a newer one wrote the file) are dropped with a
            warning naming them.
        """
        return load_keras_file(path, cls=cls)

    def _to_archive(self, writer):  # inside an archive (an ensemble's), its own .keras file
        return {"keras_file": writer.file("model.keras", self.save)}

    @classmethod
    def _from_archive(cls, description, reader):
        return reader.file(reader.expect(description, "keras_file", (str,)),
                           lambda file, shown: load_keras_file(file, cls=cls, shown_as=shown))


def load_keras_file(path, *, cls=ConceptCNNClassifier, shown_as=None):
    """A :class:`ConceptCNNClassifier` from a ``.keras`` file, checked like a fit's input.

    The record's structure (:func:`~imageclef_concepts._model_card.check_record`),
    every parameter (the estimator's ``_validate_params``, unknown ones
    dropped with a warning), and the network against the record: its input
    size and one output per concept. Anything wrong is one
    :class:`~imageclef_concepts.ModelFileError` naming the file (``shown_as``
    when it sits inside an archive).
    """
    shown = path if shown_as is None else shown_as
    metadata = _read_metadata(path, shown)
    with model_file_errors(shown):
        params = _loaded_params(metadata["params"])
        estimator = estimator_from_params(cls, params, shown)
    try:
        estimator.model_ = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # a damaged archive makes Keras raise many kinds
        raise ModelFileError(f"{shown}: the network cannot be loaded ({type(error).__name__}: "
                             f"{error})") from None
    with model_file_errors(shown):
        targets = KerasTargets.from_dict(metadata["targets"])
        _check_network(estimator, estimator.model_, len(targets.classes_))
    estimator.__dict__.update(targets.get_metadata())
    if metadata.get("custom_model"):
        estimator.model = estimator.model_  # the saved architecture, for refits
    estimator.history_ = defaultdict(list, metadata["history"])
    estimator.best_epoch_ = metadata["best_epoch"]
    if metadata.get("tuning"):
        estimator.tuning_ = metadata["tuning"]
    # What scikeras' _initialize would have set, so that training continues.
    estimator.target_encoder_ = targets
    estimator._random_state = estimator.random_state
    estimator.feature_encoder_ = FunctionTransformer().fit(np.zeros((1, 1)))
    with model_file_errors(shown):
        estimator._initialize_callbacks()
    return estimator


def _check_network(estimator, network, n_concepts):
    """The loaded network takes ``image_size`` RGB images and gives one output per concept."""
    inputs, outputs = getattr(network, "inputs", None), getattr(network, "outputs", None)
    if not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
        raise ModelFileError("the network must have one input and one output")
    size = estimator.image_size
    if tuple(network.input_shape[1:]) != (size, size, 3):
        raise ModelFileError(f"the network takes {tuple(network.input_shape[1:])} images but "
                             f"image_size={size} says ({size}, {size}, 3)")
    if tuple(network.output_shape[1:]) != (n_concepts,):
        raise ModelFileError(f"the network has {network.output_shape[1:]} outputs but the "
                             f"record names {n_concepts} concepts")


def _read_metadata(path, shown=None):
    """The JSON record of a file written by ``save``, its structure checked."""
    shown = path if shown is None else shown
    try:
        metadata = read_model_record(path)
    except ModelFileError as error:
        raise ModelFileError(str(error).replace(str(path), str(shown))) from None
    version = metadata.get("format", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version > _FILE_FORMAT:
        raise ModelFileError(f"{shown} was written by a newer imageclef_concepts (file format "
                             f"{version}; this version reads up to {_FILE_FORMAT}): upgrade it.")
    if isinstance(version, int) and version < 2 and "targets" not in metadata \
            and not is_archive_record(metadata):  # format 1: classes and counts at the top
        with model_file_errors(shown):
            metadata["targets"] = {"on_concepts": metadata["concept_counts"] is not None,
                                   "classes": metadata["classes"],
                                   "concept_counts": metadata["concept_counts"]}
    check_record(metadata, shown)
    return metadata


@keras.saving.register_keras_serializable(package="imageclef_concepts")
class CastToFloat(keras.layers.Layer):
    """uint8 pixels to float32, unchanged in value: the serving model's first step."""

    def call(self, inputs):
        return keras.ops.cast(inputs, "float32")


def _indicator_digest(indicator):
    """A digest of an indicator matrix (CSR, as the targets are encoded, or dense)."""
    from scipy import sparse

    if not sparse.issparse(indicator):
        indicator = sparse.csr_matrix(np.asarray(indicator))
    indicator = sparse.csr_matrix(indicator, dtype=np.float32)
    indicator.sum_duplicates()  # canonical: sorted indices, no repeats
    return digest(str(indicator.shape), *(np.ascontiguousarray(part) for part in
                                          (indicator.indptr, indicator.indices, indicator.data)))


def _saved_params(params):
    """Parameters as JSON: Keras losses and optimizers by their Keras config.

    The network itself is in the file, so a custom ``model`` is not repeated;
    ``callbacks`` and ``checkpoint_dir`` belong to a training run and are not
    saved (a path read from a model file is never used to write or delete).
    """
    saved = {}
    for name, value in params.items():
        if name in ("model", "callbacks", "checkpoint_dir"):
            value = None
        elif isinstance(value, (keras.losses.Loss, keras.optimizers.Optimizer)):
            value = {"keras_object": keras.saving.serialize_keras_object(value)}
        saved[name] = jsonable(value)
    return saved


def _loaded_params(params):
    loaded = {}
    for name, value in params.items():
        if name in ("model", "callbacks") and value is not None:  # never saved: see above
            raise ModelFileError(f"parameter {name} is {value!r:.80}; a model file holds "
                                 "null there (the network is in the file, callbacks are not)")
        if isinstance(value, dict) and "keras_object" in value:
            try:
                value = keras.saving.deserialize_keras_object(value["keras_object"])
            except Exception as error:  # Keras raises many kinds for a bad config
                raise ModelFileError(f"parameter {name}: not a Keras object Keras can "
                                     f"rebuild ({type(error).__name__}: {error})") from None
        elif isinstance(value, dict) and name == "threshold":
            value = DecisionRule.from_dict(value)
        elif name in ("filters", "dense_units") or (name == "kernel_size"
                                                    and isinstance(value, list)):
            value = tuple(value)
        loaded[name] = value
    return loaded
