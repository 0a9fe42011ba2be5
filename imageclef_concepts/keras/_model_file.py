"""The ``.keras`` model file of a :class:`ConceptCNNClassifier`: save, load, export, card.

A model file is Keras' native ``.keras`` archive with, beside the network, a JSON record
(:data:`~imageclef_concepts.models._card.METADATA_ENTRY`): the file format, versions, every
parameter (:func:`saved_params`), the concept vocabulary, the history and the decision rule.
:class:`ModelFileMixin` gives the estimator ``save``, ``load``, ``export``, ``model_card``
and ``remove_checkpoint``; :func:`read_keras_file` checks a file like a fit's input: the
record's structure, every parameter, and the network against the record (and, before Keras
builds it, its variables against its weights). Nothing in a file is unpickled.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import keras
from sklearn.utils.validation import check_is_fitted

from ..files._atomic import replaced_atomically
from ..files._checkpoints import CheckpointError, remove_checkpoint
from ..models._archive import archive_holds
from ..models._card import (
    METADATA_ENTRY,
    ModelFileError,
    check_record,
    is_archive_record,
    model_card,
)
from ..models._decision import DecisionRule
from ..models._keras_members import KERAS_MEMBERS, check_keras_zip
from ..models._persistence import (
    estimator_from_params,
    jsonable,
    load_estimator,
    model_file_errors,
)
from ..models._zip import read_model_record
from ._adapter import KerasTargets
from ._export import export_network
from ._network import check_stored_variables, keras_objects_in_bounds

if TYPE_CHECKING:  # names for annotations only
    from typing_extensions import Self

    from .._typing import PathLike

# Version of what save() writes beside the network; load() refuses newer ones.
FILE_FORMAT = 2


class ModelFileMixin:
    """``save``, ``load``, ``export``, ``model_card`` for a fitted Keras concept estimator."""

    # The estimator's, for the type checker: its parameters and its fitted network.
    image_size: int
    test_time_augmentation: bool
    dtype_policy: str
    model_: keras.Model

    def save(self, path: PathLike) -> None:
        """Save the fitted model in Keras' native ``.keras`` format, atomically.

    The file holds the network and, beside it in the same archive, the estimator's parameters (the
    decision rule included), concept vocabulary and history as JSON: :meth:`load` unpickles
    nothing. The file is written to a temporary name in the same folder and moved into place, so a
    failed or interrupted save leaves what was at ``path`` untouched. Once it is written, the
    training checkpoint is removed (:meth:`remove_checkpoint`).

        Parameters
        ----------
        path : str or path-like
            Must end in ``.keras``.
        """
        check_is_fitted(self, "model_")
        path = os.fsdecode(path)  # bytes: a name that is not UTF-8, as os.listdir(b"") gives it
        if not path.endswith(".keras"):
            raise ValueError(f"The file name must end in .keras, got {path!r}.")
        metadata = json.dumps(self._metadata())  # fails here, before any file is touched
        with replaced_atomically(path) as temporary:
            write_network(self.model_, temporary)
            with zipfile.ZipFile(temporary, "a") as archive:
                archive.writestr(METADATA_ENTRY, metadata)
        self.remove_checkpoint()

    def remove_checkpoint(self) -> bool:
        """Remove the training checkpoint this model was trained with, if it is still there.

    ``fit`` keeps its checkpoint (``checkpoint_dir``) after training, so that nothing is lost if
    saving the model fails; :meth:`save` calls this once the model file is written. Only the
    checkpoint of this very training is removed, and only the library's own files in it
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
            warnings.warn(f"The training checkpoint was not removed: {error}", stacklevel=2)
            return False
        self._checkpoint_run = None
        return removed

    def _metadata(self):
        """The JSON record written beside the network."""
        import datetime

        import tensorflow as tf

        from .._version import __version__

        return {
            "format": FILE_FORMAT,
            "library_version": __version__,
            "keras_version": keras.__version__,
            "tensorflow_version": tf.__version__,
            "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "tuning": getattr(self, "tuning_", None),
            "params": saved_params(self.get_params()),
            "custom_model": self.model is not None,
            "targets": self.targets_.to_dict(),
            "history": {key: jsonable(values) for key, values in self.history_.items()},
            "best_epoch": self.best_epoch_,
        }

    def export(self, path: PathLike, format: str = "tf_saved_model") -> None:
        """Export for serving what :meth:`predict_proba` computes, preprocessing included.

        The exported artefact takes raw uint8 images of ``image_size`` x
        ``image_size`` x 3 (the batch an :class:`~imageclef_concepts.ImageLoader`
        gives) and returns one probability per concept, in ``classes_``
        order; scaling (and a backbone's normalisation) is inside, and so is
        test-time augmentation (``test_time_augmentation=True``: the mean of
        each image's and its mirror's probabilities). Keras' own export
        does the work.

        Parameters
        ----------
        path : str or path-like
            A folder for ``"tf_saved_model"`` (``served = tf.saved_model.load(path)``, then
            ``served.serve(images)``; keep ``served``, which owns the variables), a file for
            ``"onnx"``, written atomically.
        format : {"tf_saved_model", "onnx"}, default="tf_saved_model"
            ``"onnx"`` converts through ``tf2onnx`` (``pip install "imageclef_concepts[onnx]"``);
            serve the file with ONNX Runtime. Its input is ``"images"`` and its output
            ``"probabilities"``; its ``metadata_props`` hold, as JSON, the output's concepts
            (``"concepts"``), the decision rule (``"decision_rule"``, as
            :meth:`DecisionRule.to_dict <imageclef_concepts.DecisionRule.to_dict>`: apply it with
            :class:`~imageclef_concepts.DecisionRule` or by hand) and the estimator and library
            version (``"imageclef_concepts"``).

        Examples
        --------
        >>> import json, onnxruntime  # doctest: +SKIP
        >>> model.export("model.onnx", format="onnx")  # doctest: +SKIP
        >>> served = onnxruntime.InferenceSession("model.onnx")  # doctest: +SKIP
        >>> (scores,) = served.run(["probabilities"], {"images": images})  # doctest: +SKIP
        >>> about = served.get_modelmeta().custom_metadata_map  # doctest: +SKIP
        >>> concepts = json.loads(about["concepts"])  # doctest: +SKIP
        """
        export_network(self, path, format)

    def model_card(self) -> str:
        """This model's card (Markdown): provenance, data, validation, rule, parameters.

        Returns
        -------
        str
        """
        check_is_fitted(self, "model_")
        return model_card(self._metadata(), name=type(self).__name__)

    @classmethod
    def load(cls, path: PathLike) -> Self:
        """Load a model written by :meth:`save`, or the library's ``.zip`` archive of one.

        Only Keras' safe mode is used: nothing in the file is unpickled. The archive is what
        ``imageclef-concepts train --output model.zip`` writes: its network is read as a
        ``.keras`` file is.

        Parameters
        ----------
        path : str or path-like
            A ``.keras`` file, or an archive holding a ConceptCNNClassifier.

        Returns
        -------
        ConceptCNNClassifier
            Fitted, predicting exactly as the saved one (its decision rule included);
            ``partial_fit`` and ``warm_start`` continue training.

        Raises
        ------
        ModelFileError
            Naming the file and what is wrong: not a model file, a missing or mistyped entry, a
            parameter outside its range, a network whose input or outputs disagree with the record.
            Parameters unknown to this version (a newer one wrote the file) are dropped with a
            warning naming them.
        """
        path = os.fsdecode(path)  # bytes: a name that is not UTF-8
        record = read_model_record(path)
        if is_archive_record(record) and archive_holds(record, cls):  # train --output m.zip
            return load_estimator(path, cls, manifest=record)
        return read_keras_file(path, cls, record=record)  # another's archive: named there

    def _to_archive(self, writer):  # inside an archive (an ensemble's), its own .keras file
        return {"keras_file": writer.file("model.keras", self.save)}

    @classmethod
    def _from_archive(cls, description, reader):
        return reader.file(reader.expect(description, "keras_file", (str,)),
                           lambda file, shown: read_keras_file(file, cls, shown_as=shown),
                           suffix=".keras")

    def __getstate__(self):  # pickle's and skops': see keras_free_state
        return keras_free_state(super().__getstate__())

    def __setstate__(self, state):
        shown = f"a pickled or skops {type(self).__name__}"
        super().__setstate__(keras_restored_state(state, shown))
        if "model_" in self.__dict__:  # checked as load checks a model file's network
            with model_file_errors(shown):
                check_network(self.model_, self.image_size, len(self.classes_))


def read_keras_file(path, cls, *, shown_as=None, record=None):
    """An estimator of class ``cls`` from a ``.keras`` file, checked like a fit's input.

    The record's structure (:func:`~imageclef_concepts.models._card.check_record`), every parameter
    (the estimator's ``_validate_params``, unknown ones dropped with a warning), and the network
    against the record: its input size and one output per concept. Anything wrong is one
    :class:`~imageclef_concepts.ModelFileError` naming the file (``shown_as`` in an archive).
    ``record`` is the file's record, when the caller has read it."""
    shown = path if shown_as is None else shown_as
    metadata = read_metadata(path, shown, record)  # an archive of another kind is named here
    check_keras_members(path, shown)  # before Keras extracts anything
    with model_file_errors(shown):
        estimator = estimator_from_params(cls, loaded_params(metadata["params"]), shown)
    estimator.model_ = read_network(path, shown)
    with model_file_errors(shown):
        targets = KerasTargets.from_dict(metadata["targets"])
        check_network(estimator.model_, estimator.image_size, len(targets.classes_))
    if metadata.get("custom_model"):
        estimator.model = estimator.model_  # the saved architecture, for refits
    estimator.history_ = defaultdict(list, metadata["history"])
    estimator.best_epoch_ = metadata["best_epoch"]
    if metadata.get("tuning"):
        estimator.tuning_ = metadata["tuning"]
    with model_file_errors(shown):
        estimator._restore_scikeras_state(targets)  # so that training continues
    return estimator


def check_keras_members(path, shown=None):
    """Refuse, before Keras reads anything, a ``.keras`` file that ``info`` would refuse
    (:func:`~imageclef_concepts.models._keras_members.check_keras_zip`: its members) or
    whose ``config.json`` declares more variables than its weights hold
    (``check_stored_variables``, which builds the network in Keras' stateless scope)."""
    shown = path if shown is None else shown
    config, stored = check_keras_zip(path, shown)
    if config is not None:  # what building it allocates, before Keras does
        check_stored_variables(config, stored, shown)


def write_network(network, path):
    """Write ``network`` as a ``.keras`` file (Keras' own), as a model file holds it."""
    network.save(path)
    with zipfile.ZipFile(path) as archive:
        unexpected = sorted(set(archive.namelist()) - KERAS_MEMBERS)
    if unexpected:  # load would refuse it: never write what cannot be read
        raise ValueError(f"The network saves files of its own ({', '.join(unexpected[:5])}), "
                         "which a model file does not hold: a network whose layers keep "
                         "assets cannot be saved by the library; save it with Keras.")


def read_network(path, shown):
    """The network of a checked ``.keras`` file, read in Keras' safe mode (no code run)."""
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # a damaged archive makes Keras raise many kinds
        raise ModelFileError(f"{shown}: the network cannot be loaded ({type(error).__name__}: "
                             f"{error})") from None


def check_network(network, image_size, n_concepts):
    """The network takes ``image_size`` RGB images and gives one output per concept."""
    inputs, outputs = getattr(network, "inputs", None), getattr(network, "outputs", None)
    if not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
        raise ModelFileError("the network must have one input and one output")
    if tuple(network.input_shape[1:]) != (image_size, image_size, 3):
        raise ModelFileError(f"the network takes {tuple(network.input_shape[1:])} images but "
                             f"image_size={image_size} says ({image_size}, {image_size}, 3)")
    if tuple(network.output_shape[1:]) != (n_concepts,):
        raise ModelFileError(f"the network has {network.output_shape[1:]} outputs but the "
                             f"record names {n_concepts} concepts")


def read_metadata(path, shown=None, record=None):
    """The JSON record of a file written by ``save`` (``record``, when already read), its
    structure checked.

    A format-1 record (classes and counts at the top, library 0.1.0) is
    read into today's form; a newer format than :data:`FILE_FORMAT` is refused.
    """
    shown = path if shown is None else shown
    try:
        metadata = read_model_record(path) if record is None else record
    except ModelFileError as error:
        raise ModelFileError(str(error).replace(str(path), str(shown))) from None
    version = metadata.get("format", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version > FILE_FORMAT:
        raise ModelFileError(f"{shown} was written by a newer imageclef_concepts (file format "
                             f"{version}; this version reads up to {FILE_FORMAT}): upgrade it.")
    if isinstance(version, int) and version < 2 and "targets" not in metadata \
            and not is_archive_record(metadata):  # format 1: classes and counts at the top
        with model_file_errors(shown):
            metadata["targets"] = {"on_concepts": metadata["concept_counts"] is not None,
                                   "classes": metadata["classes"],
                                   "concept_counts": metadata["concept_counts"]}
    check_record(metadata, shown, file=path)
    return metadata


_NEVER_SAVED = ("model", "callbacks", "checkpoint_dir", "image_store")


def saved_params(params):
    """Parameters as JSON: Keras losses, optimizers and metrics by their Keras config.

    The network itself is in the file, so a custom ``model`` is not repeated; ``callbacks``,
    ``checkpoint_dir`` and ``image_store`` belong to a training run and are not saved (a
    path read from a model file is never used to write or delete).
    """
    return {name: jsonable(None if name in _NEVER_SAVED else _by_config(value))
            for name, value in params.items()}


def _by_config(value):
    """Keras losses, optimizers and metrics (alone or in a list) by their Keras config."""
    if isinstance(value, list):
        return [_by_config(item) for item in value]
    return ({"keras_object": keras.saving.serialize_keras_object(value)}
            if isinstance(value, _KERAS_OBJECTS) else value)


def loaded_params(params):
    """The parameters :func:`saved_params` wrote, as the estimator takes them."""
    loaded = {}
    for name, value in params.items():
        if name in ("model", "callbacks") and value is not None:  # never saved: see above
            raise ModelFileError(f"parameter {name} is {value!r:.80}; a model file holds "
                                 "null there (the network is in the file, callbacks are not)")
        if name in _NEVER_SAVED:  # a path in a file (older ones wrote it) is never used
            value = None
        value = _keras_parameter(value, name)
        if isinstance(value, dict) and name == "threshold":
            value = DecisionRule.from_dict(value)
        elif name in ("filters", "dense_units") or (name == "kernel_size"
                                                    and isinstance(value, list)):
            value = tuple(value)
        loaded[name] = value
    return loaded


def _keras_parameter(value, name):
    """``value`` with the Keras objects :func:`saved_params` wrote (alone or in a list) made."""
    if isinstance(value, list):
        return [_keras_parameter(item, name) for item in value]
    try:
        return (keras_objects_in_bounds(value["keras_object"], f"parameter {name}")
                if isinstance(value, dict) and "keras_object" in value else value)
    except Exception as error:  # Keras raises many kinds for a bad config
        raise error if isinstance(error, ModelFileError) else ModelFileError(
            f"parameter {name}: not a Keras object Keras can rebuild "
            f"({type(error).__name__}: {error})") from None


# ------------------------------------------------------------- pickle and skops

KERAS_STATE = "_keras_state"  # the state's entry for what keras_free_state converted
_KERAS_OBJECTS = (keras.losses.Loss, keras.optimizers.Optimizer, keras.metrics.Metric)


def keras_free_state(state):
    """An estimator's state (its ``__getstate__``) without Keras objects, for pickle and skops.

    skops rebuilds an object from the plain values of its state and cannot walk a Keras network
    (RecursionError). A network becomes the bytes of its ``.keras`` file (as ``save`` writes it), a
    Keras loss, optimizer or metric its Keras config (as a model file keeps parameters), in lists
    and tuples too. Pickle stores the same; :func:`keras_restored_state` reads it back.
    """
    converted = {name: _portable(value) for name, value in state.items() if _holds_keras(value)}
    if not converted:
        return state
    return {**{name: value for name, value in state.items() if name not in converted},
            KERAS_STATE: converted}


def keras_restored_state(state, shown):
    """The state :func:`keras_free_state` made, its Keras objects read back: networks
    as a model file's are (:func:`check_keras_members`, then Keras' safe mode)."""
    if KERAS_STATE not in state:  # no Keras object, or pickled by an older version
        return state
    with model_file_errors(shown):
        restored = {name: _restored(value, shown) for name, value in state[KERAS_STATE].items()}
    return {**{name: value for name, value in state.items() if name != KERAS_STATE}, **restored}


def _holds_keras(value):
    return isinstance(value, (keras.Model, *_KERAS_OBJECTS)) or (
        isinstance(value, (list, tuple)) and any(_holds_keras(item) for item in value))


def _portable(value):
    if isinstance(value, keras.Model):
        with tempfile.TemporaryDirectory() as folder:
            write_network(value, path := Path(folder, "network.keras"))
            return {"keras_file": path.read_bytes()}
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [_portable(item) for item in value]}
    if isinstance(value, _KERAS_OBJECTS):
        return {"keras_object": keras.saving.serialize_keras_object(value)}
    return {"value": value}


def _restored(value, shown):
    (kind, content), = value.items()
    if kind == "keras_file":
        with tempfile.TemporaryDirectory() as folder:
            (path := Path(folder, "network.keras")).write_bytes(content)
            check_keras_members(path, shown)
            return read_network(path, shown)
    if kind in ("list", "tuple"):
        return (list if kind == "list" else tuple)(_restored(item, shown) for item in content)
    return keras_objects_in_bounds(content, shown) if kind == "keras_object" else content
