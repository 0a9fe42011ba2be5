"""The training backup: killed at any step of a save, it resumes the last whole epoch."""

import json
import os

import pytest

from imageclef_concepts import CheckpointError
from imageclef_concepts.files._checkpoints import BACKUP_FILES, temporary_name
from imageclef_concepts.keras._backup import (
    BEST_WEIGHTS,
    RANDOM_STREAMS,
    RECORD,
    WEIGHTS,
    TrainingBackup,
)


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it in the save runs."""


def _writer(what, epochs, half=False):
    def write(path):
        text = json.dumps({what: epochs, "padding": "x" * 1000}).encode()
        with open(path, "wb") as handle:
            handle.write(text[:len(text) // 2] if half else text)
        if half:
            raise _Killed
    return write


def _save(backup, epochs, half=None):
    """Epoch ``epochs``: new weights and streams; the best weights only at odd epochs."""
    writers = {name: _writer(name, epochs, half=name == half)
               for name in (WEIGHTS, RANDOM_STREAMS, BEST_WEIGHTS)
               if name != BEST_WEIGHTS or epochs % 2}
    best = epochs if epochs % 2 else epochs - 1
    backup.save(epochs, writers, {"history": {"loss": [0.5] * epochs}, "best_epoch": best - 1,
                                  "best_value": 0.5, "wait": epochs - best,
                                  "stopped": False, "plateau": None})


def _two_epochs_saved(tmp_path):
    """A backup folder where epochs 1 and 2 were saved, and its backup."""
    folder = str(tmp_path / "backup")
    backup = TrainingBackup(folder)
    for epochs in (1, 2):
        _save(backup, epochs)
    return folder, backup


def test_a_weights_file_that_cannot_be_written_is_an_os_error_naming_it(tmp_path):
    # On a full disk (a real 1 MiB tmpfs), h5py reported the failed write of the epoch's
    # weights as a RuntimeError ('Disable slist on flush dest failure failed ... errno = 28'),
    # which train showed as a traceback. Epoch 2 stays the one restored.
    folder, backup = _two_epochs_saved(tmp_path)

    def full(path):
        raise RuntimeError("Disable slist on flush dest failure failed (file write failed: "
                           "errno = 28, error message = 'No space left on device')")

    with pytest.raises(OSError, match=rf"^cannot write {WEIGHTS} in .*backup: Disable slist"):
        backup.save(3, {WEIGHTS: full}, {})
    assert _restored(folder) == 2


def _kill_at_step(monkeypatch, step):
    """Make the ``step``-th ``os.replace`` of what follows a kill (before it happens)."""
    calls = []
    replace = os.replace

    def replace_or_die(source, target):
        calls.append(target)
        if len(calls) == step:
            raise _Killed
        replace(source, target)

    monkeypatch.setattr(os, "replace", replace_or_die)
    return calls


def _restored(folder):
    """The epoch restored; every file at its latest name is that epoch's, none another's."""
    record = TrainingBackup(folder).restore()
    epochs = record["epoch"]
    for name, written in ((WEIGHTS, epochs), (RANDOM_STREAMS, epochs),
                          (BEST_WEIGHTS, record["state"]["best_epoch"] + 1)):
        with open(os.path.join(folder, name)) as handle:
            assert json.load(handle)[name] == written
    assert record["state"]["wait"] == epochs - record["state"]["best_epoch"] - 1
    return epochs


# A save of epoch 3 (weights, streams and best weights) renames 8 times: each
# file to .bkp and the new one into place, then the record the same way.
@pytest.mark.parametrize("kill", [*range(1, 9), WEIGHTS, RANDOM_STREAMS, BEST_WEIGHTS])
def test_a_save_killed_at_any_step_resumes_the_last_whole_epoch(tmp_path, monkeypatch, kill):
    folder, backup = _two_epochs_saved(tmp_path)
    with monkeypatch.context() as patched:
        calls = _kill_at_step(patched, kill) if isinstance(kill, int) else []
        with pytest.raises(_Killed):
            _save(backup, 3, half=None if isinstance(kill, int) else kill)
    assert len(calls) == (kill if isinstance(kill, int) else 0)
    # Only a save that put its record in place resumes epoch 3; none loses epoch 2.
    assert _restored(folder) == 2
    resumed = TrainingBackup(folder)
    resumed.restore()
    for epochs in (3, 4):  # resumed, the next saves work as any other
        _save(resumed, epochs)
    assert _restored(folder) == 4
    leftovers = {os.path.basename(temporary_name(name)) for name in BACKUP_FILES}
    assert set(os.listdir(folder)) <= {*BACKUP_FILES, *leftovers}


@pytest.mark.parametrize("step", range(1, 4))
def test_a_kill_while_restoring_is_resumed_too(tmp_path, monkeypatch, step):
    folder, backup = _two_epochs_saved(tmp_path)
    with monkeypatch.context() as patched:
        _kill_at_step(patched, 7)  # everything but the new record in place
        with pytest.raises(_Killed):
            _save(backup, 3)
    with monkeypatch.context() as patched:
        _kill_at_step(patched, step)  # part of the .bkp files put back in place
        with pytest.raises(_Killed):
            TrainingBackup(folder).restore()
    assert _restored(folder) == 2


def test_files_that_match_no_record_are_a_clear_error_not_a_silent_resume(tmp_path):
    folder, _ = _two_epochs_saved(tmp_path)
    for name in (WEIGHTS, WEIGHTS + ".bkp"):  # both weights files changed by someone
        with open(os.path.join(folder, name), "ab") as handle:
            handle.write(b"!")
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        TrainingBackup(folder).restore()


@pytest.mark.parametrize("record", [
    {"epoch": 2, "batch": 0},  # Keras' own, or an earlier version's: no digests
    "not json",
    {"epoch": "2", "batch": 0, "files": {}, "state": {}},
])
def test_records_not_of_this_backup_are_a_clear_error(tmp_path, record):
    folder = tmp_path / "backup"
    folder.mkdir()
    (folder / WEIGHTS).write_bytes(b"weights")
    (folder / RECORD).write_text(record if isinstance(record, str) else json.dumps(record))
    with pytest.raises(CheckpointError, match=r"earlier version .*\. Remove the checkpoint"):
        TrainingBackup(str(folder)).restore()


@pytest.mark.parametrize("change", [
    lambda record: record.update(epoch=100),  # its history holds 2 epochs
    lambda record: record.update(batch=5),  # save writes whole epochs only
    lambda record: record.update(batch=False),  # == 0, but not what save writes
    lambda record: record.update(extra="x" * 100),  # a key save never writes
    lambda record: record["state"].update(note=[1, 2, 3]),
    lambda record: record["state"].pop("plateau"),
])
def test_a_record_inconsistent_in_itself_is_not_resumed(tmp_path, change):
    folder, _ = _two_epochs_saved(tmp_path)
    path = os.path.join(folder, RECORD)
    with open(path) as handle:
        record = json.load(handle)
    change(record)
    with open(path, "w") as handle:
        json.dump(record, handle)
    assert _restored(folder) == 1  # the previous record, whole


def test_weights_without_a_record_are_never_loaded(tmp_path):
    # A kill during the first save, after its weights but before its record:
    # Keras would load them as if no epoch were finished.
    folder = tmp_path / "backup"
    folder.mkdir()
    (folder / WEIGHTS).write_bytes(b"weights of epoch 1")
    (folder / os.path.basename(temporary_name(RECORD))).write_bytes(b'{"epo')
    assert TrainingBackup(str(folder)).restore() is None
    assert not (folder / WEIGHTS).exists()


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory, tiny_images):
    """The checkpoint folder of one tiny training, trained once for the tests that forge it."""
    from ..conftest import labels_of, tiny_cnn

    checkpoint = tmp_path_factory.mktemp("trained") / "ckpt"
    tiny_cnn(checkpoint_dir=checkpoint).fit(tiny_images.images, labels_of(tiny_images))
    return checkpoint


@pytest.fixture
def checkpoint(tmp_path, trained_checkpoint):
    """A copy of that folder, for one test to forge."""
    import shutil

    shutil.copytree(trained_checkpoint, tmp_path / "ckpt")
    return tmp_path / "ckpt"


def _record_digest(folder, name):
    """Write the digest of the file ``name`` as it is now into the backup's record."""
    import hashlib

    record = json.loads((folder / RECORD).read_text())
    record["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / RECORD).write_text(json.dumps(record))


def _forged_npz(path, members, method=None):
    """Rewrite the .npz at ``path`` with ``members`` ({name: .npy bytes}), deflated (or
    compressed with ``method``)."""
    import zipfile

    with zipfile.ZipFile(path, "w", method or zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _npy(array=None, stated_shape=None, dtype="<f4", data=b""):
    import io

    import numpy as np

    buffer = io.BytesIO()
    if array is not None:
        np.save(buffer, array)
        return buffer.getvalue()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": dtype, "fortran_order": False, "shape": stated_shape})
    return buffer.getvalue() + data


@pytest.mark.slow
@pytest.mark.parametrize("name", [BEST_WEIGHTS, RANDOM_STREAMS])
@pytest.mark.parametrize("forgery", ["4 TiB stated", "64 MiB of zeros deflated", "other shape",
                                     "64 MiB of zeros in bzip2"])
def test_a_forged_checkpoint_array_file_is_refused_by_name_without_reading_it_whole(
        checkpoint, tiny_images, name, forgery):
    # Its digest is in the record, which a forger rewrites too. NumPy allocated the shape
    # a member's header states (a 4 TiB MemoryError naming nothing) and inflated whatever
    # a member held (1 GB from a 1 MB file), before the wrong shape was found.
    import zipfile

    import numpy as np

    folder = checkpoint / "backup"
    with zipfile.ZipFile(folder / name) as archive:
        members = {member: archive.read(member) for member in archive.namelist()}
    first = sorted(members)[0]
    members[first] = {
        "4 TiB stated": _npy(stated_shape=(2**20, 2**20)),
        "64 MiB of zeros deflated": _npy(stated_shape=(2**24,), data=bytes(2**26)),
        "other shape": _npy(np.zeros((3, 5), "float32")),
        # zipfile hands bzip2 data to the decompressor whole: a few hundred bytes inflated
        # to all of it in one read, whatever size was asked for
        "64 MiB of zeros in bzip2": _npy(stated_shape=(2**24,), data=bytes(2**26))}[forgery]
    _forged_npz(folder / name, members, zipfile.ZIP_BZIP2 if "bzip2" in forgery else None)
    _record_digest(folder, name)  # as a forger would
    _refused_within_32_mib(checkpoint, tiny_images, f"{name} is not the file the training saved")


def test_forged_compressed_checkpoint_weights_are_refused_before_keras_reads_them(
        checkpoint, tiny_images):
    # Keras reads each dataset of latest.weights.h5 whole before comparing its shape with
    # the variable's: a dataset stated (2**27, 4), gzip, never written, in a file of a few
    # KB, took 9 GB and 130 s before the shape was found wrong.
    import h5py

    folder = checkpoint / "backup"
    with h5py.File(folder / WEIGHTS, "a") as weights:
        del weights["layers/dense/vars/0"]
        weights.create_dataset("layers/dense/vars/0", shape=(2**22, 4), dtype="f4",
                               compression="gzip", chunks=(2**16, 4), fillvalue=0)
    _record_digest(folder, WEIGHTS)  # as a forger would
    _refused_within_32_mib(checkpoint, tiny_images, f"{WEIGHTS} holds datasets of 64.* compressed")


@pytest.mark.parametrize("file", ["record", "manifest"])
def test_a_checkpoint_json_larger_than_any_written_is_refused_unparsed(checkpoint, tiny_images,
                                                                      monkeypatch, file):
    # The manifest and the backup record were read and parsed whole: a forged one of
    # gigabytes (a list of zeros beside the keys) took its size several times in memory,
    # and was resumed. Read at most LARGEST_JSON (64 MiB; 4 KiB here), refused past it.
    import imageclef_concepts.files._checkpoints as checkpoints_module
    import imageclef_concepts.keras._backup as backup_module

    from ..conftest import labels_of, tiny_cnn

    path = checkpoint / ("backup/" + RECORD if file == "record" else checkpoints_module.MANIFEST)
    written = json.loads(path.read_text())
    path.write_text(json.dumps({**written, "padding": [0] * 4096}))
    monkeypatch.setattr(checkpoints_module, "LARGEST_JSON", 2**12, raising=False)
    monkeypatch.setattr(backup_module, "LARGEST_JSON", 2**12, raising=False)
    shown = "none of its records" if file == "record" else f"{path}"
    with pytest.raises(CheckpointError, match=shown):
        tiny_cnn(checkpoint_dir=checkpoint).fit(tiny_images.images, labels_of(tiny_images))


def _refused_within_32_mib(checkpoint, tiny_images, match):
    """Resuming the forged checkpoint is one CheckpointError matching ``match``, reached
    while Python's allocations peak under 32 MiB."""
    import tracemalloc

    from ..conftest import labels_of, tiny_cnn

    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=match):
            tiny_cnn(checkpoint_dir=checkpoint).fit(tiny_images.images, labels_of(tiny_images))
        assert tracemalloc.get_traced_memory()[1] < 2**25
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("forged", [False, True])
def test_resuming_is_announced_only_once_the_backup_is_restored(checkpoint, tiny_images, capsys,
                                                                forged):
    # The line was printed before the weights were read: a refused checkpoint said
    # "Resuming the training ..." and then that it could not be resumed.
    import h5py

    from ..conftest import labels_of, tiny_cnn

    folder = checkpoint / "backup"
    if forged:
        with h5py.File(folder / WEIGHTS, "a") as weights:
            del weights["layers/dense/vars/0"]
            weights.create_dataset("layers/dense/vars/0", shape=(2**16, 4), dtype="f4",
                                   compression="gzip", fillvalue=0)
        _record_digest(folder, WEIGHTS)
    model = tiny_cnn(checkpoint_dir=checkpoint, verbose=1)
    if forged:
        with pytest.raises(CheckpointError):
            model.fit(tiny_images.images, labels_of(tiny_images))
    else:
        model.fit(tiny_images.images, labels_of(tiny_images))
    said = "Resuming the training checkpointed in" in capsys.readouterr().out
    assert said is not forged
