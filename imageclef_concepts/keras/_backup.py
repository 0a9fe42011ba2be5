"""Keras' backup of a training, written so that a kill at any instant keeps the last saved epoch.

Keras' ``BackupAndRestore`` writes its weights file in place: a training
killed during that write leaves a damaged file, which h5py refuses with an
error Keras does not expect, and the training cannot be resumed (nor can it
when the kill falls between the weights and the record of their epoch).
:class:`AtomicBackupAndRestore` keeps Keras' callback (its loading of the
weights and optimizer state, and its setting of the epoch to resume from)
and Keras' file names, and changes how they are written:

1. the latest weights and record become the previous ones (``.bkp``), by
   renaming;
2. the new weights are written under a temporary name, then renamed;
3. the new record, which names the SHA-256 of its weights, is written the
   same way.

Each step is one atomic rename, so that whichever a kill interrupts, a
record remains whose weights are on disk with their digest. Before Keras
loads the backup, :func:`put_newest_in_place` finds the newest such pair
and moves it to the latest names: a kill loses at most the epoch being
saved, and never resumes weights with another epoch's number.
"""

import hashlib
import json
import os

import keras

from .._atomic_files import open_regular_file, replaced_atomically, write_atomically
from .._checkpoints import BACKUP_FILES, CheckpointError, temporary_name

WEIGHTS, PREVIOUS_WEIGHTS, RECORD, PREVIOUS_RECORD = BACKUP_FILES


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' ``BackupAndRestore`` that a kill never leaves unable to resume.

    Saves after every epoch; at the start of training, the newest intact
    backup is put in place, then Keras restores it.

    Parameters
    ----------
    backup_dir : str
        The folder of the backup, inside a locked checkpoint folder.
    """

    def __init__(self, backup_dir):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=False)

    def on_train_begin(self, logs=None):
        put_newest_in_place(self.backup_dir)
        super().on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        save_backup(self.backup_dir, self.model.save_weights, epoch + 1)


def save_backup(folder, save_weights, epochs):
    """Save the weights of ``epochs`` finished epochs; the previous backup stays until the
    new one is whole (see the module's steps). ``save_weights(path)`` writes the file."""
    os.makedirs(folder, exist_ok=True)
    weights, record = os.path.join(folder, WEIGHTS), os.path.join(folder, RECORD)
    for latest, previous in ((weights, PREVIOUS_WEIGHTS), (record, PREVIOUS_RECORD)):
        if os.path.exists(latest):
            os.replace(latest, os.path.join(folder, previous))
    with replaced_atomically(weights, temporary_name(weights)) as temporary:
        save_weights(temporary)
        sha256 = _file_sha256(temporary)
    text = json.dumps({"epoch": int(epochs), "batch": 0, "weights_sha256": sha256})
    write_atomically(record, lambda handle: handle.write(text.encode()), temporary_name(record))


def newest_intact(folder):
    """The newest backup whose weights are on disk, whole: ``(epochs, record, weights)``
    (file names in ``folder``), or None when nothing was saved yet.

    A record names the digest of its weights; one written by Keras itself (no
    digest) goes with the weights of its own slot (latest or previous).

    Raises
    ------
    CheckpointError
        When records are there but none has its weights: the backup was
        damaged by something other than an interruption.
    """
    records = {name: _read_record(os.path.join(folder, name)) for name in (RECORD, PREVIOUS_RECORD)}
    records = {name: record for name, record in records.items() if record is not None}
    if not records:
        return None
    digests = {name: _file_sha256(os.path.join(folder, name))
               for name in (WEIGHTS, PREVIOUS_WEIGHTS)
               if os.path.isfile(os.path.join(folder, name))}
    intact = []
    for name, record in records.items():
        own_slot = WEIGHTS if name == RECORD else PREVIOUS_WEIGHTS
        wanted = record.get("weights_sha256")
        matching = [weights for weights, sha256 in digests.items()
                    if sha256 == wanted or (wanted is None and weights == own_slot)]
        intact += [(record["epoch"], name, weights) for weights in matching]
    if not intact:
        raise CheckpointError(
            f"the training backup in {folder} is damaged: none of its records "
            f"({', '.join(sorted(records))}) has its weights file. A killed training never "
            "leaves it so; remove the checkpoint (imageclef_concepts.remove_checkpoint, or "
            "train --restart) to start afresh.")
    return max(intact)


def put_newest_in_place(folder):
    """Move the newest intact backup to Keras' latest names; return its finished epochs."""
    newest = newest_intact(folder)
    if newest is None:
        return 0
    epochs, record, weights = newest
    for name, latest in ((weights, WEIGHTS), (record, RECORD)):
        if name != latest:
            os.replace(os.path.join(folder, name), os.path.join(folder, latest))
    return epochs


def _read_record(path):
    """A record ``{"epoch": int, ...}``, or None when absent or not whole."""
    try:
        with open_regular_file(path, "training backup record") as handle:
            record = json.loads(handle.read())
    except FileNotFoundError:
        return None
    except ValueError:  # a record is replaced atomically: not whole means not ours
        return None
    if not (isinstance(record, dict) and type(record.get("epoch")) is int
            and record["epoch"] >= 0):
        return None
    return record


def _file_sha256(path):
    sha256 = hashlib.sha256()
    with open_regular_file(path, "training backup weights") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha256.update(block)
    return sha256.hexdigest()
