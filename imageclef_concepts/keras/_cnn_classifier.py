"""ConceptCNNClassifier: the paper's network as a scikit-learn multi-label estimator.

It composes one module per idea: :mod:`._architecture` (its parameters and
the network they describe, built by :mod:`._network`), :mod:`._training_loop`,
:mod:`._model_file` (save, load, export, card), :mod:`._prediction`
(probabilities, embeddings) and :mod:`._adapter` (every contact with scikeras);
``predict`` and ``score`` are :class:`~imageclef_concepts.models._base.ConceptClassifierMixin`'s.

The walk of ``X`` from ``fit`` to the network reads here, top to bottom:

1. :meth:`~ConceptCNNClassifier.fit` checks the parameters
   (``_validate_params``, :func:`~._architecture.check_architecture`);
2. ``_fit_with_scikeras`` hands ``X`` and ``y`` to scikeras, which makes
   ``X`` an image source (``_validate_data``: arrays, or paths decoded batch
   by batch) and ``y`` a CSR indicator (``target_encoder``: ``classes_``);
3. for a new model it calls back ``_build_network``
   (:func:`~._architecture.build_network`), then ``_train_network``, where
   the images meet the network in ``tf.data`` batches
   (:func:`~._training_loop.train_network`);
4. ``predict_proba`` (:mod:`._prediction`) takes ``X`` the same way through
   :class:`~._batches.ImageBatches` to ``Model.predict``.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from ..models import _paper as paper
from ..models._base import ConceptClassifierMixin
from ._adapter import ScikerasAdapter
from ._architecture import PARAMETER_CONSTRAINTS, build_network, check_architecture
from ._model_file import ModelFileMixin, read_keras_file
from ._prediction import NetworkOutputsMixin, n_images
from ._training import process_state_kept
from ._training_loop import check_checkpoint_room, train_network

if TYPE_CHECKING:  # names for annotations only
    from collections.abc import Callable, Sequence
    from typing import Any, Literal

    import keras
    from numpy.typing import ArrayLike
    from typing_extensions import Self

    from .._typing import (
        Augmentation,
        Distribution,
        DtypePolicy,
        Images,
        ImageStoreLike,
        Numbers,
        OnError,
        Padding,
        PathLike,
        Pooling,
        RandomState,
        Resample,
        Targets,
    )
    from ..models._decision import DecisionRule


class ConceptCNNClassifier(ConceptClassifierMixin, NetworkOutputsMixin, ModelFileMixin,
                           ScikerasAdapter):
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
        line per epoch. In a Jupyter notebook, 1 draws ``tqdm.auto`` widgets
        in place of Keras' bar, whose control characters a notebook would
        keep in its outputs (without ipywidgets: one line per epoch).
    resample : {"bilinear", "nearest", "bicubic", "lanczos", "box", "hamming"}, \
            default="bilinear"
        How images of another size are resized.
    on_error : {"raise", "skip"}, default="raise"
        For image files that are missing, empty, truncated or not images:
        ``"raise"`` stops with an error naming the file (missing, empty and
        non-image files are found before training starts); ``"skip"`` leaves
        them out of training with a warning naming them, and gives them NaN
        probabilities (no concepts) in prediction.
    n_jobs : int or None, default=None
        Threads that decode image files while the network trains (None: one per core, <= 32).
    image_cache_mb : float, default=256
        When ``X`` is image paths, decoded images are kept in memory up to
        this many megabytes during a ``fit``, so that later epochs do not
        decode them again (at 48 px, 256 MB holds about 38,000 images; at
        400 px about 560; the others are decoded at every epoch).
    image_store : str, path-like, ImageStore or None, default=None
        A folder of prepared images (:class:`~imageclef_concepts.ImageStore`): paths are
        decoded once for every fit, fold, member and process. Not saved with the model.
    backbone : "paper" or a key of BACKBONES, default="paper"
        ``"paper"`` is the network above. A key of
        :data:`~imageclef_concepts.keras.BACKBONES` (any Keras applications
        network by lower-case name) replaces the four convolution blocks by
        that network, pooled by ``pooling``, with its own input
        preprocessing, under the same hidden layers and sigmoid outputs;
        ``filters``, ``kernel_size``, ``padding`` and ``conv_dropout`` then do
        not apply. DenseNet-121 is what the best 2019 system used, at 224 px.
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
        state, history and best epoch so far are saved here, and ``fit`` with
        the same arguments after a crash or a kill goes on from the last
        finished epoch, as if uninterrupted. The folder must be new, empty or
        a checkpoint of the library's (another run's is refused, naming what
        differs), on a disk with room for the epochs (asked before training).
        The checkpoint stays after ``fit`` (the next ``partial_fit`` or warm
        start, going on from it, replaces it) until :meth:`save` writes the
        model file (or :meth:`remove_checkpoint`). Not saved with the model.
    model : keras.Model, callable or None, default=None
        Any network instead of the paper's (scikeras' convention): a functional
        or Sequential Keras model (copied with ``clone_model`` for each fit)
        or a callable ``model(n_concepts=..., image_size=...)`` returning one. It
        takes ``image_size`` x ``image_size`` x 3 pixels in 0-255 and gives
        one sigmoid probability per concept; streaming, thresholds and
        saving work as for the paper's network.
    loss : str, keras.losses.Loss or callable, default="binary_crossentropy"
        A name of :data:`~imageclef_concepts.keras.LOSSES` (``"focal"`` is Keras'
        ``BinaryFocalCrossentropy(gamma=2)``; ``"asymmetric"``, ``"soft_f1"``: see
        :mod:`imageclef_concepts.keras._losses`), any Keras loss by name or object, or
        a function ``loss(y_true, y_pred)`` (a ``functools.partial`` too).
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
    ema_momentum : float in (0, 1) or None, default=None
        Keep an exponential moving average of the weights (Keras' optimizer
        ``use_ema=True, ema_momentum=...``: after each step ``average =
        ema_momentum * average + (1 - ema_momentum) * weights``). Validation,
        the best epoch kept, the checkpoint, your callbacks' ``on_epoch_end``
        and the fitted model all see the averaged weights (Keras'
        ``SwapEMAWeights``); the training loss is the raw weights'. None: off.
        How it combines with resuming, two stages and ``warm_start`` is in
        :mod:`imageclef_concepts.keras._ema`.
    n_threads : int or None, default=None
        TensorFlow's threads in this process (intra- and inter-op, at most 16 a
        core), set at the first fit or prediction. None leaves TensorFlow's
        choice, every core. The rule on a cluster: workers x ``n_threads`` <= cores,
        so with 2 worker processes on a 2-core machine, ``n_threads=1``.
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

    _parameter_constraints = PARAMETER_CONSTRAINTS

    def __init__(
        self, *,
        # the network
        image_size: int = paper.IMAGE_SIZE, filters: Sequence[int] = paper.FILTERS,
        kernel_size: int | Sequence[int] = paper.KERNEL_SIZE, padding: Padding = paper.PADDING,
        conv_dropout: float = paper.CONV_DROPOUT, dense_units: Sequence[int] = paper.DENSE_UNITS,
        dense_dropout: float = paper.DENSE_DROPOUT,
        # training
        learning_rate: float = paper.LEARNING_RATE, decay: float = paper.DECAY,
        batch_size: int = paper.BATCH_SIZE, epochs: int = paper.EPOCHS,
        validation_fraction: float | None = 0.1, monitor: str = "val_loss",
        metrics: list[str | keras.metrics.Metric] | None = None,
        threshold: float | DecisionRule = paper.THRESHOLD, warm_start: bool = False,
        random_state: RandomState = None, verbose: int = 0,
        # images
        resample: Resample = "bilinear", on_error: OnError = paper.ON_ERROR,
        n_jobs: int | None = None, image_cache_mb: float = 256, image_store: ImageStoreLike = None,
        # pretrained backbones and the long tail
        backbone: str = paper.BACKBONE, weights: PathLike | None = paper.WEIGHTS,
        trainable_backbone: bool = False, min_count: int = 1, max_labels: int | None = None,
        early_stopping_patience: int | None = None, checkpoint_dir: PathLike | None = None,
        model: keras.Model | Callable[..., keras.Model] | None = None,
        loss: str | keras.losses.Loss | Callable[..., Any] = paper.LOSS,
        optimizer: str | keras.optimizers.Optimizer = paper.OPTIMIZER,
        callbacks: list[keras.callbacks.Callback] | keras.callbacks.Callback | None = None,
        pos_weight: float | Literal["balanced"] | Numbers | None = None,
        augmentation: Augmentation | None = None, pooling: Pooling = paper.POOLING,
        freeze_epochs: int = 0, fine_tune_learning_rate: float = 1e-5,
        reduce_lr_patience: int | None = None, test_time_augmentation: bool = False,
        ema_momentum: float | None = None,
        # devices
        n_threads: int | None = None, distribution: Distribution | None = None,
        dtype_policy: DtypePolicy = "float32",
    ) -> None:
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
        self.image_store = image_store
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
        self.ema_momentum = ema_momentum
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
            background threads while the network trains (a one-column
            DataFrame of paths is read as its column). Resized to ``image_size``.
        y : indicator matrix of shape (n, n_concepts), or sequence of concept lists
            Concept lists are collections of strings or ``;``-joined strings
            (None or NaN: no concepts).
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
        check_architecture(self, n_images(X))
        with process_state_kept():  # the user's Keras, TensorFlow and random settings stay
            self._fit_with_scikeras(X, y, sample_weight=sample_weight,
                                    warm_start=self.warm_start, epochs=self.epochs,
                                    initial_epoch=0, validation_data=validation_data)
        return self

    def partial_fit(self, X: Images, y: Targets, classes: ArrayLike | None = None, *,
                    validation_data: tuple[Images, Targets] | None = None,
                    sample_weight: ArrayLike | None = None) -> Self:
        """Train for one more epoch, keeping the model and its history.

        The first call builds the model and fixes ``classes_``; later calls keep them.

        Parameters
        ----------
        X, y, validation_data, sample_weight
            As for :meth:`fit`.
        classes : array-like, default=None
            Every class ``y`` may hold over all calls, as scikit-learn's
            incremental classifiers take it (Optuna's pruning passes
            ``np.unique(y)``). For concept lists: concept names or concept
            lists (``;``-joined strings), whose concepts are ``classes_`` from
            the first call on, whether its ``y`` holds them or not (with
            ``min_count=1`` and ``max_labels=None``); for an indicator: its
            values (0 and 1) or its columns ``0..n-1``. Checked at every call:
            a concept of ``y`` missing from it, or ``classes`` other than
            ``classes_`` at a later call, is an error naming them.

        Returns
        -------
        self : ConceptCNNClassifier
        """
        self._validate_params()
        check_architecture(self, n_images(X))
        with process_state_kept():
            self._fit_with_scikeras(X, y, sample_weight=sample_weight, warm_start=True,
                                    epochs=1, initial_epoch=self.current_epoch,
                                    validation_data=validation_data, classes=classes)
        return self

    def _build_network(self):
        """Called back by scikeras for a new model: the compiled network for ``classes_``."""
        check_checkpoint_room(self, len(self.classes_))  # before the network takes memory
        return build_network(self, self._seed)

    def _train_network(self, images, indicator, **fit_args):
        """Called back by scikeras with ``X`` as an image source and ``y`` encoded."""
        self.history_, self.best_epoch_, self._checkpoint_run = train_network(
            self, images, indicator, **fit_args)
        self.__dict__.pop("_strategy", None)  # a strategy does not pickle; the network is built


# A ConceptCNNClassifier from a .keras file, an archive's member too (for _persistence).
load_keras_file = partial(read_keras_file, cls=ConceptCNNClassifier)
