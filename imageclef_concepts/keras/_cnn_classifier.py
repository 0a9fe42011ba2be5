"""ConceptCNNClassifier: the paper's network as a scikit-learn multi-label estimator.

Built on scikeras' ``KerasClassifier`` through :class:`~._adapter.ScikerasAdapter`
(the one place its private hooks are overridden); ``predict``,
``predict_concepts`` and ``score`` come from the library's shared
:class:`~imageclef_concepts._base.ConceptClassifierMixin`, so the network's
probabilities become concepts by the same :class:`~imageclef_concepts.DecisionRule`
as every other concept estimator.
"""

import json
import os
import shutil
import tempfile
import zipfile
from collections import defaultdict
from numbers import Integral, Real

import keras
import numpy as np
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._base import ConceptClassifierMixin
from .._decision import DecisionRule
from .._images import ON_ERROR, RESAMPLING
from . import BACKBONES
from ._adapter import KerasTargets, ScikerasAdapter
from ._batches import ImageBatches, decode_errors_surfaced
from ._network import (
    PAPER_FILTERS,
    SMALLEST_BACKBONE_INPUT,
    build_backbone_network,
    build_concept_cnn,
    smallest_image_size,
)
from ._training import TrainingCheckpoint, best_epoch_keeper, seed_or_fresh, seeded

_METADATA_ENTRY = "imageclef_concepts.json"
# Version of what save() writes beside the network; load() refuses newer ones.
_FILE_FORMAT = 2


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
    kernel_size : int, default=5
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
    backbone : {"paper", "densenet121", "resnet50", "efficientnetb0"}, default="paper"
        ``"paper"`` is the network above. The others replace the four
        convolution blocks by a Keras applications network (global average
        pooled), each with its own input preprocessing, under the same
        hidden layers and sigmoid outputs; ``filters``, ``kernel_size``,
        ``padding`` and ``conv_dropout`` then do not apply. DenseNet-121 is
        what the best 2019 system used, at 224 px.
    weights : None, "imagenet" or path, default="imagenet"
        Backbone weights: ImageNet (downloaded by Keras on first use), a
        weights file saved from the same backbone, or None (random).
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
        is removed when training finishes.

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
        "kernel_size": [Interval(Integral, 1, None, closed="left")],
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
        "backbone": [StrOptions({"paper", *BACKBONES})],
        "weights": [StrOptions({"imagenet"}), str, os.PathLike, None],
        "trainable_backbone": ["boolean"],
        "min_count": [Interval(Integral, 1, None, closed="left")],
        "max_labels": [Interval(Integral, 1, None, closed="left"), None],
        "early_stopping_patience": [Interval(Integral, 0, None, closed="left"), None],
        "checkpoint_dir": [str, os.PathLike, None],
    }

    def __init__(
        self,
        *,
        image_size=400,
        filters=PAPER_FILTERS,
        kernel_size=5,
        padding="valid",
        conv_dropout=0.25,
        dense_units=(128, 64),
        dense_dropout=0.5,
        learning_rate=1e-4,
        decay=1e-6,
        batch_size=32,
        epochs=10,
        validation_fraction=0.1,
        monitor="val_loss",
        metrics=None,
        threshold=0.1,
        warm_start=False,
        random_state=None,
        verbose=0,
        resample="bilinear",
        on_error="raise",
        n_jobs=2,
        backbone="paper",
        weights="imagenet",
        trainable_backbone=False,
        min_count=1,
        max_labels=None,
        early_stopping_patience=None,
        checkpoint_dir=None,
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
        self.backbone = backbone
        self.weights = weights
        self.trainable_backbone = trainable_backbone
        self.min_count = min_count
        self.max_labels = max_labels
        self.early_stopping_patience = early_stopping_patience
        self.checkpoint_dir = checkpoint_dir

    # ------------------------------------------------------------------ fit

    def fit(self, X, y, *, validation_data=None, sample_weight=None):
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

        Returns
        -------
        self : ConceptCNNClassifier
        """
        self._validate_params()
        self._check_architecture()
        self._fit(X, y, sample_weight=sample_weight, warm_start=self.warm_start,
                  epochs=self.epochs, initial_epoch=0, validation_data=validation_data)
        return self

    def partial_fit(self, X, y, *, validation_data=None, sample_weight=None):
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
        self._fit(X, y, sample_weight=sample_weight, warm_start=True, epochs=1,
                  initial_epoch=self.current_epoch, validation_data=validation_data)
        return self

    def _check_architecture(self):
        if self.backbone != "paper":
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
                    f"blocks of {self.kernel_size}x{self.kernel_size} '{self.padding}' "
                    "convolution and 2x2 pooling: the smallest image_size that works is "
                    f"{smallest}."
                )
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
        # without the collection each fit leaves ~2.5 MB more behind.
        keras.backend.clear_session()
        head = dict(image_size=self.image_size, dense_units=tuple(self.dense_units),
                    dense_dropout=self.dense_dropout, learning_rate=self.learning_rate,
                    decay=self.decay, metrics=self.metrics or ())
        with seeded(self._random_state):
            if self.backbone != "paper":
                return build_backbone_network(
                    len(self.classes_), self.backbone, weights=self.weights,
                    trainable_backbone=self.trainable_backbone, **head)
            return build_concept_cnn(
                len(self.classes_), filters=tuple(self.filters), kernel_size=self.kernel_size,
                padding=self.padding, conv_dropout=self.conv_dropout, **head)

    def _fit_keras_model(self, X, y, sample_weight, warm_start, epochs, initial_epoch,
                         validation_data=None):
        has_validation = validation_data is not None or self.validation_fraction is not None
        keeper = best_epoch_keeper(self.monitor, self.early_stopping_patience, has_validation)
        checkpoint = (None if self.checkpoint_dir is None
                      else TrainingCheckpoint(self.checkpoint_dir, keeper))
        seed = (seed_or_fresh(self._random_state) if checkpoint is None
                else checkpoint.training_seed(self._random_state))
        train, validation = self._split_validation(X, np.random.default_rng(seed),
                                                   validation_data)
        batches = ImageBatches(X, indices=train, targets=y, sample_weight=sample_weight,
                               batch_size=self.batch_size, shuffle_seed=seed,
                               first_epoch=initial_epoch)
        validation_batches = self._validation_batches(X, y, validation, validation_data)
        callbacks = (checkpoint.callbacks() if checkpoint is not None
                     else [keeper] if keeper is not None else [])
        known_failures = len(X.failures)
        with seeded(self._random_state), decode_errors_surfaced(batches, validation_batches):
            history = self.model_.fit(
                batches.dataset(),
                validation_data=(None if validation_batches is None
                                 else validation_batches.dataset()),
                epochs=initial_epoch + epochs,
                initial_epoch=initial_epoch, verbose=self.verbose, shuffle=False,
                callbacks=callbacks,
            )
        X.warn_failures("during training", reported=known_failures)
        self._record_history(history.history if checkpoint is None else checkpoint.history,
                             warm_start, initial_epoch, keeper)
        if checkpoint is not None:  # finished: nothing left to resume
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)

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

    def predict_proba(self, X):
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
        return self._outputs_of(self.model_, X)

    def _outputs_of(self, network, X):
        """Run ``network`` over the images of ``X``; NaN rows for unreadable files."""
        images, _ = self._validate_data(X)
        known_failures = len(images.failures)
        batches = ImageBatches(images, batch_size=self.batch_size)
        with decode_errors_surfaced(batches):
            outputs = network.predict(batches.dataset(), verbose=self.verbose)
        images.warn_failures("during prediction", reported=known_failures)
        outputs[list(images.failures)] = np.nan  # no image, no output
        return outputs

    def embed(self, X):
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

    def save(self, path):
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
        folder = os.path.dirname(os.path.abspath(path))
        handle, temporary = tempfile.mkstemp(suffix=".keras", prefix=".saving-", dir=folder)
        os.close(handle)
        try:
            self.model_.save(temporary)
            with zipfile.ZipFile(temporary, "a") as archive:
                archive.writestr(_METADATA_ENTRY, metadata)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)

    def _metadata(self):
        from .. import __version__

        return {
            "format": _FILE_FORMAT,
            "library_version": __version__,
            "params": _jsonable(self.get_params()),
            "targets": self.targets_.to_dict(),
            "history": {key: _jsonable(values) for key, values in self.history_.items()},
            "best_epoch": self.best_epoch_,
        }

    @classmethod
    def load(cls, path):
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
        """
        metadata = _read_metadata(path)
        params = metadata["params"]
        for key in ("filters", "dense_units"):
            params[key] = tuple(params[key])
        if isinstance(params["threshold"], dict):
            params["threshold"] = DecisionRule.from_dict(params["threshold"])
        estimator = cls(**params)
        try:
            estimator.model_ = keras.saving.load_model(path, safe_mode=True)
        except Exception as error:  # a damaged archive makes Keras raise many kinds
            raise ValueError(f"{path}: the network cannot be loaded ({type(error).__name__}: "
                             f"{error})") from None
        targets = KerasTargets.from_dict(metadata["targets"])
        vars(estimator).update(targets.get_metadata())
        estimator.history_ = defaultdict(list, metadata["history"])
        estimator.best_epoch_ = metadata["best_epoch"]
        # What scikeras' _initialize would have set, so that training continues.
        estimator.target_encoder_ = targets
        estimator._random_state = params["random_state"]
        estimator.feature_encoder_ = FunctionTransformer().fit(np.zeros((1, 1)))
        estimator._initialize_callbacks()
        return estimator


def _read_metadata(path):
    """The JSON entry of a file written by ``save``, with one clear error for anything else."""
    try:
        with zipfile.ZipFile(path) as archive:
            if _METADATA_ENTRY not in archive.namelist():
                raise ValueError(f"{path} was not written by ConceptCNNClassifier.save.")
            metadata = json.loads(archive.read(_METADATA_ENTRY))
    except zipfile.BadZipFile:
        raise ValueError(f"{path} is not a .keras model file (not a zip archive: empty, "
                         "truncated or another kind of file).") from None
    version = metadata.get("format", 1)
    if version > _FILE_FORMAT:
        raise ValueError(f"{path} was written by a newer imageclef_concepts (file format "
                         f"{version}; this version reads up to {_FILE_FORMAT}): upgrade it.")
    if version < 2:  # format 1: classes and counts at the top level
        metadata["targets"] = {"on_concepts": metadata["concept_counts"] is not None,
                               "classes": metadata["classes"],
                               "concept_counts": metadata["concept_counts"]}
    return metadata


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, DecisionRule):
        return value.to_dict()
    if isinstance(value, np.random.RandomState):
        raise ValueError("A model with a RandomState random_state cannot be saved as JSON; "
                         "use an int or None.")
    return value
