"""The backup of a training: each epoch's files committed by one record, killed at any instant.

After every epoch a training saves its weights and optimizer state (Keras'
``save_weights``), the states of its random streams and, when the epoch is
the best so far, the best weights; the history and the best-epoch keeper's
counters go into the record itself. Keras' ``BackupAndRestore`` wrote its
weights in place, so that a kill during the write left a damaged file that
h5py refused with an error Keras does not expect (or, with blocks of zeros,
loaded without one), and the library's own files were written beside it at
other instants, so that a kill between them resumed a mixture of two epochs.

Here the record is the one commit point:

1. each file rewritten at this epoch becomes the previous one (``.bkp``, by
   renaming), then the new one is written under a temporary name and
   renamed into place;
2. the record (``training_metadata.json``, Keras' name) becomes the
   previous one, and the new record, which names the SHA-256 of every file
   of the epoch, is written the same way.

Every step is one atomic rename, so that whichever a kill interrupts, a
record remains whose files are all on disk with their digests (the
previous record's files are moved only when they are replaced, into the
``.bkp`` slot). :meth:`TrainingBackup.restore` finds the newest such record,
moves its files to the latest names, and :class:`KerasRestore` loads the
weights and tells ``fit`` the epoch to go on from.
"""

import hashlib
import io
import json
import math
import os
import zipfile

import keras
import numpy as np

from ..files._atomic import open_regular_file, replaced_atomically
from ..files._checkpoints import (
    BACKUP_EPOCH_FILES,
    BACKUP_RECORD,
    LARGEST_JSON,
    PREVIOUS,
    CheckpointError,
    temporary_name,
)
from ..files._sizes import in_bytes
from ..models._zip import hdf5_datasets_bytes, unbounded_member

RECORD, FILES = BACKUP_RECORD, BACKUP_EPOCH_FILES  # the record and weights: Keras' names
WEIGHTS, BEST_WEIGHTS, RANDOM_STREAMS = FILES
# Keras' ReduceLROnPlateau keeps these between epochs: a record holds them.
PLATEAU_COUNTERS = ("best", "wait", "cooldown_counter")
_RESTART_ADVICE = ("remove the checkpoint (imageclef_concepts.remove_checkpoint, or train "
                   "--restart) to start afresh")
_RESTART_SENTENCE = _RESTART_ADVICE[0].upper() + _RESTART_ADVICE[1:]


class KerasRestore(keras.callbacks.Callback):
    """Load the restored backup's weights and optimizer state, and tell ``fit`` where to go on.

    The weights restored by :meth:`TrainingBackup.restore` (the checkpoint's
    ``on_train_begin``, which runs just before) are loaded; ``fit`` goes on
    after the record's epoch, set as Keras' own ``BackupAndRestore`` sets it
    (``Model._initial_epoch``), or trains no further when the record says
    the training had stopped (early stopping): it then only ends, as the
    uninterrupted one did.

    Parameters
    ----------
    backup : TrainingBackup
    on_restored : callable or None
        Called without arguments once the weights are loaded.
    first_epoch : int, default=0
        The epoch the run started at: a record counts the run's epochs from there.
    """

    def __init__(self, backup, on_restored=None, first_epoch=0):
        super().__init__()
        self.backup = backup
        self.on_restored = on_restored
        self.first_epoch = first_epoch

    def on_train_begin(self, logs=None):
        record = self.backup.restored
        if record is None:
            return
        optimizer = self.model.optimizer
        weights = self.backup.path(WEIGHTS)
        held = hdf5_datasets_bytes(weights)  # digests match: a forger rewrote the record
        if held > os.path.getsize(weights):  # Keras reads each dataset whole, then its shape
            raise CheckpointError(
                f"{weights} holds datasets of {in_bytes(held)} in "
                f"{in_bytes(os.path.getsize(weights), False)}: compressed, not the file the "
                f"training saved; nothing in it was read. {_RESTART_SENTENCE}.")
        try:
            if optimizer is not None and not optimizer.built:
                optimizer.build(self.model.trainable_variables)  # its state is in the file
            self.model.load_weights(self.backup.path(WEIGHTS))
        except Exception as error:  # digests match: only a forged file gets here
            raise CheckpointError(
                f"the weights of the training backup in {self.backup.folder} cannot be loaded "
                f"({type(error).__name__}: {error}); {_RESTART_ADVICE}.") from None
        stopped = record["state"]["stopped"]
        self.model._initial_epoch = (self.params["epochs"] if stopped
                                     else self.first_epoch + record["epoch"])
        if self.on_restored is not None:
            self.on_restored()


class TrainingBackup:
    """The backup folder of one training (inside its locked checkpoint folder).

    Parameters
    ----------
    folder : str
    """

    def __init__(self, folder):
        self.folder = folder
        self.restored = None  # the record :meth:`restore` put in place
        self._digests = {}  # of the files the newest record names

    def path(self, name):
        """Where the file ``name`` of the restored (or last saved) record is."""
        return os.path.join(self.folder, name)

    def save(self, epochs, writers, state):
        """Commit the files and state of ``epochs`` finished epochs.

        Parameters
        ----------
        epochs : int
        writers : dict
            ``{name: write(path)}`` for the files (of :data:`FILES`) rewritten
            at this epoch; the others stay as the last record named them.
        state : dict
            JSON values (the history, the keeper's counters).
        """
        try:  # in its checkpoint folder, never made again if that was deleted
            os.mkdir(self.folder)
        except FileExistsError:
            pass
        digests = dict(self._digests)
        for name, write in writers.items():
            digests[name] = self._replace(name, write)
        record = {"epoch": int(epochs), "batch": 0, "files": digests, "state": state}
        self._replace(RECORD, lambda path: _write_json(path, record))
        self._digests = digests

    def _replace(self, name, write):
        """Keep the latest ``name`` as the previous one, write the new one; its SHA-256."""
        path = self.path(name)
        if os.path.exists(path):
            os.replace(path, path + PREVIOUS)
        try:
            with replaced_atomically(path, temporary_name(path)) as temporary:
                write(temporary)
                return _file_sha256(temporary)
        except RuntimeError as error:  # h5py's failed write (a full disk): named, not a traceback
            raise OSError(f"cannot write {name} in {self.folder}: {error}") from None

    def restore(self):
        """Put the newest intact backup's files at the latest names; return its record.

        Returns None when nothing was saved yet (files that no record names,
        left by a kill during the first save, are removed: Keras would load
        weights without an epoch).

        Raises
        ------
        CheckpointError
            When records are there but none is whole with all its files: the
            backup was damaged by something other than an interruption, or
            written by an earlier version of the library.
        """
        present = [name for name in (RECORD, RECORD + PREVIOUS)
                   if os.path.lexists(self.path(name))]
        if not present:
            for name in FILES:
                for slot in ("", PREVIOUS):
                    _remove(self.path(name + slot))
            return None
        records = [record for record in map(self._read_record, present) if record is not None]
        digests = {(name, slot): _file_sha256(self.path(name + slot))
                   for name in FILES for slot in ("", PREVIOUS)
                   if os.path.isfile(self.path(name + slot))}
        for slot, record in sorted(records, key=lambda found: -found[1]["epoch"]):
            places = {name: [s for s in ("", PREVIOUS) if digests.get((name, s)) == digest]
                      for name, digest in record["files"].items()}
            if all(places.values()):
                for name, slots in places.items():
                    if "" not in slots:
                        os.replace(self.path(name + PREVIOUS), self.path(name))
                if slot:
                    os.replace(self.path(RECORD + PREVIOUS), self.path(RECORD))
                self._digests = dict(record["files"])
                self.restored = record
                return record
        raise CheckpointError(
            f"the training backup in {self.folder} cannot be resumed: none of its records "
            f"({', '.join(present)}) is whole with all the files it names (a kill never leaves "
            f"it so; an earlier version of the library wrote other records). {_RESTART_SENTENCE}.")

    def arrays(self, name, prefix, expected):
        """The arrays ``{prefix}0`` ... of the ``.npz`` file ``name``, each of the shape and
        dtype ``expected`` states (``[(shape, dtype), ...]``), read within their sizes.

        Its digest matches the record, which a forger can rewrite too: NumPy allocates
        the shape a member's header states and inflates whatever it holds, so that a
        few bytes made a 4 TiB MemoryError and a 1 MB member inflated to 1 GB, naming
        nothing. Each member is read only up to the size its array takes.

        Raises
        ------
        CheckpointError
            Naming the file, when it is not what the training saved.
        """
        path, margin = self.path(name), 1 << 16  # a .npy header is at most 64 KiB
        sizes = [math.prod(shape) * np.dtype(dtype).itemsize for shape, dtype in expected]
        arrays = []
        try:
            if os.path.getsize(path) > sum(sizes) + margin * (len(sizes) + 1):
                raise ValueError("larger than the arrays it should hold")
            with open_regular_file(path, "training backup file") as handle, \
                    zipfile.ZipFile(handle) as archive:
                members = [f"{prefix}{i}.npy" for i in range(len(expected))]
                if sorted(archive.namelist()) != sorted(members):
                    raise ValueError(f"its members are not {prefix}0 to "
                                     f"{prefix}{len(expected) - 1}")
                if why := unbounded_member(archive):  # read, it would inflate whole
                    raise ValueError(why)
                for member, (shape, dtype), size in zip(members, expected, sizes):
                    with archive.open(member) as stored:
                        data = io.BytesIO(stored.read(size + margin + 1))
                    version = np.lib.format.read_magic(data)
                    header = {(1, 0): np.lib.format.read_array_header_1_0,
                              (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if header is None or header(data)[::2] != (tuple(shape), np.dtype(dtype)):
                        raise ValueError(f"{member} is not an array of shape {tuple(shape)} "
                                         f"and dtype {np.dtype(dtype)}")
                    data.seek(0)
                    arrays.append(np.load(data, allow_pickle=False))
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, RuntimeError,
                NotImplementedError) as error:
            raise CheckpointError(
                f"{path} is not the file the training saved ({error}); "
                f"{_RESTART_ADVICE}.") from None
        return arrays

    def _read_record(self, name):
        """``(slot, record)`` when the record is whole and well formed, else None."""
        try:
            with open_regular_file(self.path(name), "training backup record") as handle:
                if os.fstat(handle.fileno()).st_size > LARGEST_JSON:  # a forger's
                    return None
                record = json.loads(handle.read())
        except (OSError, ValueError, RecursionError):  # RecursionError: "[[[[..." as JSON
            return None
        return (name[len(RECORD):], record) if _well_formed(record) else None


_RECORD_KEYS = {"epoch", "batch", "files", "state"}  # what save writes, and nothing else
_STATE_KEYS = {"history", "best_epoch", "best_value", "wait", "stopped", "plateau"}


def _well_formed(record):
    """Whether a record is one :meth:`TrainingBackup.save` writes, consistent in itself."""
    if not (isinstance(record, dict) and set(record) == _RECORD_KEYS
            and type(record["batch"]) is int and record["batch"] == 0
            and isinstance(record["state"], dict)
            and set(record["state"]) == _STATE_KEYS):  # nothing save does not write
        return False
    epochs, files, state = record["epoch"], record["files"], record["state"]
    if not (type(epochs) is int and 0 < epochs < 10**6 and isinstance(files, dict)
            and WEIGHTS in files and set(files) <= set(FILES)
            and all(isinstance(d, str) and len(d) == 64 for d in files.values())):
        return False
    history, best_epoch = state.get("history"), state.get("best_epoch")
    return (isinstance(history, dict) and "loss" in history and all(
        isinstance(values, list) and len(values) == epochs
        and all(type(v) is float for v in values)  # as json reads what save wrote
        for values in history.values())
        and (best_epoch is None or (type(best_epoch) is int and 0 <= best_epoch < epochs
                                    and BEST_WEIGHTS in files
                                    and _is_number(state.get("best_value"))))
        and type(state.get("wait")) is int and state["wait"] >= 0
        and type(state.get("stopped")) is bool and _plateau_well_formed(state.get("plateau")))


def _plateau_well_formed(plateau):
    """None, or the counters of Keras' ``ReduceLROnPlateau`` (see TrainingCheckpoint)."""
    return plateau is None or (
        isinstance(plateau, dict) and set(plateau) == set(PLATEAU_COUNTERS)
        and _is_number(plateau["best"])
        and all(type(plateau[key]) is int and plateau[key] >= 0 for key in PLATEAU_COUNTERS[1:]))


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        not math.isnan(value)


def _write_json(path, value):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle)


def _remove(path):
    try:
        os.remove(path)  # the checkpoint's own names, checked to be regular files
    except FileNotFoundError:
        pass


def _file_sha256(path):
    sha256 = hashlib.sha256()
    with open_regular_file(path, "training backup file") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha256.update(block)
    return sha256.hexdigest()
