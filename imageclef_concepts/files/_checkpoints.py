"""Training checkpoints that own only their own files and resume only their own run.

A checkpoint folder is the library's by its manifest, ``imageclef_concepts-checkpoint.json``,
naming its run: an id and a fingerprint of the images, concepts, parameters and seed. So:

* a folder that exists, is not empty and carries no manifest is refused: the library never
  writes into, nor removes anything from, a folder of the user's;
* a checkpoint whose fingerprint differs from the training about to start is refused,
  naming what differs, unless it holds no epoch (nothing lost), or its training ended in
  the very state the new one goes on from (``continued_from``: a ``partial_fit`` or warm
  start after the call that wrote it, whose result the estimator holds): then it is the
  new run's, its epochs removed;
* a lock (``imageclef_concepts-checkpoint.lock``, held with ``flock`` for the
  whole training) makes a second training on the same folder fail at once;
* removing a checkpoint removes the files the library writes there, by their
  fixed names, and the folder itself only when the library created it and
  nothing else is left in it.

Standard library only: the command line checks a folder before anything heavy is imported.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import uuid

from ._atomic import (
    NotARegularFileError,
    checked_file_name,
    folder_identity,
    folder_replaced,
    open_regular_file,
    write_atomically,
)
from ._sizes import in_bytes

MANIFEST = "imageclef_concepts-checkpoint.json"
LOCK = "imageclef_concepts-checkpoint.lock"
BACKUP = "backup"  # each epoch's files and record (keras/_backup.py)
# Every file the library writes in a checkpoint folder: removal deletes these
# names, with their temporary names, and nothing else. In BACKUP, the files of
# an epoch and of the one before (keras/_backup.py), the records first: a
# removal killed half-way leaves files that no record names, never records
# whose files are gone. In the folder itself, what earlier versions wrote.
BACKUP_RECORD, BACKUP_EPOCH_FILES = ("training_metadata.json",
                                     ("latest.weights.h5", "best_weights.npz",
                                      "random_streams.npz"))
PREVIOUS = ".bkp"
# The most a checkpoint's JSON (manifest, backup record) is read of: kilobytes as written
# (thousands of unusable images' names, a history of many epochs fit), whatever a forger puts.
LARGEST_JSON = 2**26
BACKUP_FILES = tuple(name + slot for name in (BACKUP_RECORD, *BACKUP_EPOCH_FILES)
                     for slot in ("", PREVIOUS))
STATE_FILES = ("progress.json", "best_weights.npz", "random_streams.npz")
# Each file is written under a fixed name first, then moved into place: one
# training writes at a time (the folder is locked), and a write killed half-way
# leaves a file whose name removal knows.
_TEMPORARY_PREFIX = "saving."


def temporary_name(path):
    """The name ``path`` (a checkpoint's file) is written under before it replaces it."""
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, _TEMPORARY_PREFIX + name)


_MARK = "imageclef_concepts training checkpoint"
_RESTART_ADVICE = ("To start afresh, remove it (imageclef_concepts.remove_checkpoint(path), or "
                   "train --restart on the command line) or name another checkpoint folder. "
                   "(Cross-validation and grid searches fit many models: give checkpoint_dir "
                   "to a single training only.)")


def _broken(file, what):
    """The error for a file in a checkpoint folder that is not what the library writes."""
    return CheckpointError(
        f"{file} {what}: this is not a checkpoint as the library writes it, so nothing in the "
        "folder is read or removed. Delete that file yourself if it is yours to delete, or "
        "name another checkpoint folder.")


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be used for this training, and why.

    Examples
    --------
    >>> import os, tempfile
    >>> from imageclef_concepts import CheckpointError, ConceptCNNClassifier
    >>> folder = tempfile.mkdtemp()
    >>> _ = open(os.path.join(folder, "thesis.txt"), "w").write("my thesis")
    >>> model = ConceptCNNClassifier(image_size=16, filters=(4,), checkpoint_dir=folder)
    >>> try:
    ...     model.fit([[[[0, 0, 0]] * 16] * 16] * 2, [["C1"], ["C2"]])
    ... except CheckpointError as error:
    ...     print("thesis.txt" in str(error), os.listdir(folder))
    True ['thesis.txt']
    """


def check_checkpoint_folder(path, writing=True):
    """Refuse, before any work, a folder that is not the library's to write in.

    Parameters
    ----------
    path : str or path-like
        A checkpoint folder: missing, empty, or marked as a checkpoint.
    writing : bool, default=True
        Whether it is to be written: then a folder (or, when it is missing,
        the folder it is made in) this user cannot write is refused too.

    Raises
    ------
    CheckpointError
        For a path that is a file, or a folder that holds anything and
        carries no checkpoint manifest, or a name no folder can have.
    """
    try:  # a lone surrogate: refused by name, not a UnicodeEncodeError once training began
        path = os.path.abspath(checked_file_name(path, "checkpoint folder"))
    except ValueError as error:
        raise CheckpointError(str(error)) from None
    if not os.path.lexists(path):
        parent = os.path.dirname(path)  # the folder there that the missing ones are made in
        while not os.path.lexists(parent) and os.path.dirname(parent) != parent:
            parent = os.path.dirname(parent)
        if writing:
            _check_writable(path, parent)
        return
    if os.path.islink(path):
        raise CheckpointError(f"checkpoint folder {path} is a symbolic link: name the folder "
                              "itself, new or empty.")
    if not os.path.isdir(path):
        raise CheckpointError(f"checkpoint folder {path} exists and is not a folder: name a "
                              "new or empty folder.")
    if writing:
        _check_writable(path, path)
    # A lock alone, or with a half-written manifest, is a start that died before its
    # manifest was in place: still ours.
    entries = sorted(set(os.listdir(path)) - {LOCK, os.path.basename(temporary_name(MANIFEST))})
    if entries and MANIFEST not in entries:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise CheckpointError(
            f"checkpoint folder {path} holds {len(entries)} file(s) that are not a checkpoint "
            f"of imageclef_concepts ({shown}); the library only writes into a new or empty "
            "folder, or one of its own checkpoints: name another folder.")
    if entries:
        _check_own_files(path)
        _Lock(os.path.join(path, LOCK)).release()  # in use by another training: fail now


def _check_writable(path, folder):
    """Refuse a checkpoint ``folder`` (or the one it is made in) this user cannot write."""
    if not (os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)):  # or a file
        raise CheckpointError(f"checkpoint folder {path}: the folder {folder} cannot be written "
                              "(a file, another user's, a read-only disk): name another folder.")


def _check_own_files(path):
    """Every name the library uses in a checkpoint is a regular file or absent, never a link,
    a pipe or a device (nothing is read or removed through it); True when an epoch's file is."""
    backup = os.path.join(path, BACKUP)
    if os.path.lexists(backup) and (os.path.islink(backup) or not os.path.isdir(backup)):
        raise _broken(backup, "is not a plain folder (a symbolic link or a file)")
    epoch = [os.path.join(path, name) for name in STATE_FILES]  # saved, or being saved
    epoch += [os.path.join(backup, name) for name in BACKUP_FILES]
    epoch += [temporary_name(name) for name in epoch]
    own = [os.path.join(path, name) for name in (MANIFEST, LOCK)]
    for name in epoch + own + [temporary_name(name) for name in own]:
        if os.path.lexists(name) and not stat.S_ISREG(os.lstat(name).st_mode):
            raise _broken(name, "is not a regular file (a symbolic link, a pipe, a device or a "
                                "folder)")
    return any(map(os.path.lexists, epoch))


def _read_manifest(path):
    manifest_path = os.path.join(path, MANIFEST)
    try:
        with open_regular_file(manifest_path, "checkpoint manifest") as handle:
            if os.fstat(handle.fileno()).st_size > LARGEST_JSON:  # a regular file's size
                raise ValueError(f"larger than {in_bytes(LARGEST_JSON, False)}")
            manifest = json.loads(handle.read())
    except FileNotFoundError:
        return None
    except (NotARegularFileError, ValueError, UnicodeDecodeError, RecursionError) as error:
        raise _broken(manifest_path, f"is not a readable checkpoint manifest ({error})") \
            from None
    if not isinstance(manifest, dict) or manifest.get("mark") != _MARK or any(
            not isinstance(manifest.get(key), kind)
            for key, kind in (("fingerprint", dict), ("run_id", str), ("seed", int))):
        raise _broken(manifest_path, "is not a checkpoint manifest of imageclef_concepts")
    return manifest


def _differences(stored, current):
    """Names of what differs between two fingerprints, parameters one by one."""
    differing = []
    for key in sorted(set(stored) | set(current)):
        old, new = stored.get(key), current.get(key)
        if key == "parameters" and isinstance(old, dict) and isinstance(new, dict):
            differing += [f"parameter {name}" for name in sorted(set(old) | set(new))
                          if old.get(name) != new.get(name)]
        elif old != new:
            differing.append(key.replace("_", " "))
    return differing


class _Lock:
    """An exclusive, non-blocking lock on a file, released when the process ends."""

    def __init__(self, path):
        self.path = path
        # Never through a link, and only onto a regular file: the lock file is truncated.
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                                 | getattr(os, "O_NONBLOCK", 0), 0o666)
        except OSError as error:
            raise _broken(path, f"cannot be used as a lock ({error.strerror})") from None
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            raise _broken(path, "is not a regular file")
        self._handle = os.fdopen(descriptor, "r+")
        try:
            self._lock()
        except OSError:
            self._handle.seek(0)
            holder = self._handle.read().strip() or "another process"
            self._handle.close()
            raise CheckpointError(f"checkpoint folder {os.path.dirname(path)} is in use by "
                                  f"another training ({holder}): wait for it to finish, or "
                                  "name another checkpoint folder.") from None
        try:
            self._handle.truncate(0)  # at 0: nothing was read
            print(f"process {os.getpid()}", end="", file=self._handle, flush=True)
        except OSError as error:  # a full disk: the write names no file
            with contextlib.suppress(OSError):  # its flush fails again; the file is closed
                self._handle.close()
            raise OSError(error.errno, error.strerror, path) from None

    def _lock(self):
        try:
            import fcntl
        except ImportError:  # Windows
            import msvcrt

            msvcrt.locking(self._handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self):
        if not self._handle.closed:
            self._handle.close()  # closing the descriptor releases the lock


class CheckpointFolder:
    """A checkpoint folder of the library's, opened for one run and locked.

    Use :meth:`open`; ``path`` is absolute, resolved when training starts.

    Attributes
    ----------
    path : str
    run_id : str
        Unique to the run that created the checkpoint.
    seed : int
        The run's seed, kept so that a resumed run splits and shuffles as
        the first start did.
    resumed : bool
        True when the checkpoint was there already (a resume).
    """

    def __init__(self, path, manifest, lock, resumed):
        self.path = path
        self.manifest = manifest
        self.run_id = manifest["run_id"]
        self.seed = manifest["seed"]
        self.resumed = resumed
        self._lock = lock
        self._identity = folder_identity(path)  # the folder opened

    def still_own(self):
        """Whether the folder at ``path`` is still the one this run opened (same device and
        inode, its manifest there): False once it was deleted or another folder put at its
        path, where nothing more may be written (nor the folder made again)."""
        return folder_replaced(self.path, self._identity, MANIFEST) is None

    @classmethod
    def open(cls, path, fingerprint, fresh_seed):
        """Open (or create) the checkpoint folder of the run ``fingerprint`` describes.

        Parameters
        ----------
        path : str or path-like
        fingerprint : dict
            JSON values that define the run: a checkpoint with another one is
            refused, unless it ended (:meth:`finish`) in the state this run's
            ``continued_from`` names.
        fresh_seed : callable
            Draws the run's seed when the checkpoint is new.
        """
        path = os.path.abspath(os.fspath(path))
        check_checkpoint_folder(path)
        created = _make_folders(path)
        if not created:
            check_checkpoint_folder(path)  # another process may have made it meanwhile
        try:
            lock = _Lock(os.path.join(path, LOCK))
        except BaseException as error:  # a full disk: the lock and folders made are not left
            mine = [] if isinstance(error, CheckpointError) else created  # not another's lock
            for made in [os.path.join(path, LOCK)] * bool(mine) + mine:  # deepest first
                with contextlib.suppress(OSError):
                    (os.rmdir if made in mine else os.remove)(made)
            raise
        try:
            progress = _check_own_files(path)
            manifest = _read_manifest(path)
            fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back from JSON
            differing = manifest and _differences(manifest["fingerprint"], fingerprint)
            past = differing and manifest.get("ended_with") is not None and \
                manifest["ended_with"] == fingerprint.get("continued_from")  # what we went on from
            if manifest is None or (differing and (past or not progress)):  # nothing to lose
                _remove_epochs(path)  # before the new manifest: never resumed as the new run's
                manifest = {"mark": _MARK, "run_id": uuid.uuid4().hex, "fingerprint": fingerprint,
                            "created_folders": (manifest or {}).get("created_folders", created),
                            "seed": int(fresh_seed())}
                _write_manifest(path, manifest)
                return cls(path, manifest, lock, resumed=False)
            if differing:
                raise CheckpointError(
                    f"checkpoint folder {path} holds the checkpoint of another training, "
                    f"which is not resumed (what differs: {', '.join(differing)}). "
                    f"{_RESTART_ADVICE}")
            return cls(path, manifest, lock, resumed=True)
        except BaseException:
            lock.release()
            raise

    def finish(self, ended_with):
        """Record the digest of the state the training ended in (see :meth:`open`)."""
        if self.still_own():  # else nothing is written there
            self.manifest = {**self.manifest, "ended_with": ended_with}
            _write_manifest(self.path, self.manifest)

    def release(self):
        """Release the lock (the files stay, for a resume or a later removal)."""
        self._lock.release()


def _write_manifest(path, manifest):
    write_atomically(os.path.join(path, MANIFEST), lambda handle: handle.write(
        json.dumps(manifest).encode()), temporary_name(os.path.join(path, MANIFEST)))


def _make_folders(path):
    """Create ``path`` and any missing parents; return the folders created, deepest first."""
    missing, folder = [], path
    while not os.path.lexists(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:  # another process made it meanwhile: not ours
            missing.remove(folder)
    return missing


def remove_checkpoint(path: str | os.PathLike[str], run_id: str | None = None) -> bool:
    """Remove a training checkpoint of the library's: its own files, nothing else.

    Deletes the files the library and Keras write in a checkpoint, by their
    names; the folder itself (and the parents made for it) goes only when the
    library created it and nothing else is left in it. A folder without the
    library's manifest is never touched, and neither is one where any of those
    names is a link, a pipe or a device instead of a regular file.

    Parameters
    ----------
    path : str or path-like
        The checkpoint folder (``checkpoint_dir``).
    run_id : str, default=None
        Remove it only if it belongs to this run.

    Returns
    -------
    bool
        True if a checkpoint was removed.

    Raises
    ------
    CheckpointError
        When ``path`` holds files but is not a checkpoint of the library's,
        or another training is using it.

    Examples
    --------
    >>> import tempfile
    >>> from imageclef_concepts import remove_checkpoint
    >>> remove_checkpoint(tempfile.mkdtemp())  # an empty folder: nothing to remove
    False
    """
    path = os.path.abspath(os.fspath(path))
    check_checkpoint_folder(path, writing=False)  # nothing there, or nothing of ours: False
    if not os.path.isdir(path):
        return False
    manifest = _read_manifest(path)
    if manifest is None or (run_id is not None and manifest.get("run_id") != run_id):
        return False
    lock = _Lock(os.path.join(path, LOCK))
    try:
        _check_own_files(path)  # a link in place of a file or of backup/ stops everything
        _remove_epochs(path)
        _remove_file(os.path.join(path, MANIFEST))  # unmarked from here on
        _remove_file(temporary_name(os.path.join(path, MANIFEST)))
        _remove_file(os.path.join(path, LOCK))
    finally:
        lock.release()
    created = manifest.get("created_folders")
    if isinstance(created, list):  # the folder and the parents made for it, deepest first
        for folder in created:
            if isinstance(folder, str) and (folder == path or path.startswith(
                    os.path.join(folder, ""))):
                _remove_empty_folder(folder)
    return True


def _remove_epochs(path):
    """Remove the epochs' files of the (locked, checked) checkpoint at ``path``."""
    backup = os.path.join(path, BACKUP)
    for name in BACKUP_FILES:
        _remove_file(os.path.join(backup, name))
        if not name.endswith(PREVIOUS):  # a .bkp file is renamed, never written
            _remove_file(temporary_name(os.path.join(backup, name)))
    _remove_empty_folder(backup)
    for name in STATE_FILES:
        _remove_file(os.path.join(path, name))


def _remove_file(path):
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)  # checked to be a regular file (or absent) under the lock


def _remove_empty_folder(path):
    with contextlib.suppress(OSError):
        os.rmdir(path)  # fails on a folder that holds anything: that is not ours to remove
