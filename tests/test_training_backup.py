"""The training backup: killed at any step of a save, it resumes the last whole epoch."""

import json
import os

import pytest

from imageclef_concepts import CheckpointError
from imageclef_concepts._checkpoints import BACKUP_FILES, temporary_name
from imageclef_concepts.keras._backup import (
    WEIGHTS,
    newest_intact,
    put_newest_in_place,
    save_backup,
)


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it in the save runs."""


def _weights_of(epochs, half=False):
    def save_weights(path):
        text = json.dumps({"weights of epoch": epochs, "padding": "x" * 1000}).encode()
        with open(path, "wb") as handle:
            handle.write(text[:len(text) // 2] if half else text)
        if half:
            raise _Killed
    return save_weights


def _kill_at_step(monkeypatch, step):
    """Make the ``step``-th ``os.replace`` of the next save a kill (before it happens)."""
    calls = []
    replace = os.replace

    def replace_or_die(source, target):
        calls.append(target)
        if len(calls) == step:
            raise _Killed
        replace(source, target)

    monkeypatch.setattr(os, "replace", replace_or_die)
    return calls


def _restored_epochs(folder):
    epochs = put_newest_in_place(folder)
    with open(os.path.join(folder, WEIGHTS)) as handle:
        assert json.load(handle)["weights of epoch"] == epochs  # never another epoch's
    return epochs


@pytest.mark.parametrize("step", [1, 2, 3, 4, "in the weights writer"])
def test_a_save_killed_at_any_step_resumes_the_last_whole_epoch(tmp_path, monkeypatch, step):
    folder = str(tmp_path / "backup")
    for epochs in (1, 2):
        save_backup(folder, _weights_of(epochs), epochs)
    with monkeypatch.context() as patched:
        if step != "in the weights writer":
            calls = _kill_at_step(patched, step)
        with pytest.raises(_Killed):
            save_backup(folder, _weights_of(3, half=step == "in the weights writer"), 3)
    if step != "in the weights writer":
        assert len(calls) == step  # the save has at least that many steps
    # Only a save that finished its record resumes epoch 3; none loses epoch 2.
    assert _restored_epochs(folder) == 2
    # Resumed, the next save works as any other.
    save_backup(folder, _weights_of(3), 3)
    assert _restored_epochs(folder) == 3
    assert set(os.listdir(folder)) <= {*BACKUP_FILES,
                                       *(os.path.basename(temporary_name(n)) for n in BACKUP_FILES)}


def test_a_kill_during_the_restoring_renames_is_resumed_too(tmp_path, monkeypatch):
    folder = str(tmp_path / "backup")
    for epochs in (1, 2):
        save_backup(folder, _weights_of(epochs), epochs)
    with monkeypatch.context() as patched:
        _kill_at_step(patched, 3)  # after both renames of the latest backup to .bkp
        with pytest.raises(_Killed):
            save_backup(folder, _weights_of(3), 3)
    with monkeypatch.context() as patched:
        _kill_at_step(patched, 2)  # half-way through putting .bkp back in place
        with pytest.raises(_Killed):
            put_newest_in_place(folder)
    assert _restored_epochs(folder) == 2


def test_weights_that_match_no_record_are_a_clear_error_not_a_silent_resume(tmp_path):
    folder = str(tmp_path / "backup")
    for epochs in (1, 2):
        save_backup(folder, _weights_of(epochs), epochs)
    for name in (WEIGHTS, BACKUP_FILES[1]):  # both weights files changed by someone
        with open(os.path.join(folder, name), "ab") as handle:
            handle.write(b"!")
    with pytest.raises(CheckpointError, match="damaged"):
        newest_intact(folder)


def test_an_empty_backup_resumes_nothing(tmp_path):
    folder = tmp_path / "backup"
    folder.mkdir()
    (folder / os.path.basename(temporary_name(WEIGHTS))).write_bytes(b"half")  # first save killed
    assert newest_intact(str(folder)) is None and put_newest_in_place(str(folder)) == 0
