"""Checkpoint folders: the library owns only its own files in them, and resumes only its own run."""

import fcntl
import json
import os

import keras
import numpy as np
import pytest

from imageclef_concepts import CheckpointError, ConceptCNNClassifier, remove_checkpoint
from imageclef_concepts.files._checkpoints import LOCK, MANIFEST

from ..conftest import labels_of as _labels
from ..conftest import snapshot as _snapshot
from ..conftest import tiny_cnn as _tiny_cnn


def test_a_folder_holding_a_users_file_is_refused_and_survives(tmp_path, tiny_images):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.txt").write_text("four years of work")
    model = _tiny_cnn(checkpoint_dir=victim)
    with pytest.raises(CheckpointError, match="thesis.txt"):
        model.fit(tiny_images.images, _labels(tiny_images))
    assert _snapshot(victim) == {"thesis.txt": b"four years of work"}


@pytest.mark.slow  # networks trained end to end: seconds (the README's 6 minutes)
def test_a_checkpoint_owns_only_its_files_and_is_removed_after_the_save(tmp_path,
                                                                        tiny_images):
    empty = tmp_path / "mine"
    empty.mkdir()  # the user's own empty folder: used, marked, and kept
    model = _tiny_cnn(checkpoint_dir=empty).fit(tiny_images.images, _labels(tiny_images))
    assert (empty / MANIFEST).is_file()  # kept after fit: a failed save loses nothing
    (empty / "notes.txt").write_text("mine")  # the user adds a file meanwhile
    model.save(tmp_path / "model.keras")
    assert _snapshot(empty) == {"notes.txt": b"mine"}  # only the library's files went
    created = tmp_path / "created" / "here"
    model = _tiny_cnn(checkpoint_dir=created).fit(tiny_images.images, _labels(tiny_images))
    assert created.is_dir()
    assert model.remove_checkpoint() and not created.exists()  # the library made it


@pytest.mark.slow  # networks trained end to end: seconds (the README's 6 minutes)
def test_a_relative_checkpoint_dir_is_resolved_and_never_saved(tmp_path, tiny_images,
                                                              monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
    monkeypatch.chdir(first)
    model = _tiny_cnn(checkpoint_dir="ckpt").fit(tiny_images.images, _labels(tiny_images))
    monkeypatch.chdir(second)  # the namesake in another folder is the user's
    (second / "ckpt").mkdir()
    (second / "ckpt" / "results.csv").write_text("a,b\n")
    model.save(tmp_path / "model.keras")
    assert not (first / "ckpt").exists()  # the checkpoint it trained with, at its real place
    assert _snapshot(second / "ckpt") == {"results.csv": b"a,b\n"}
    loaded = ConceptCNNClassifier.load(tmp_path / "model.keras")
    assert loaded.checkpoint_dir is None  # a model file names no folder
    loaded.fit(tiny_images.images, _labels(tiny_images))
    assert _snapshot(second / "ckpt") == {"results.csv": b"a,b\n"}


def test_a_tampered_manifest_cannot_make_removal_touch_other_files(tmp_path):
    folder = tmp_path / "fake"
    folder.mkdir()
    (folder / "data.csv").write_text("precious")
    (folder / MANIFEST).write_text(json.dumps({"mark": "imageclef_concepts training "
                                               "checkpoint", "run_id": "x", "seed": 0,
                                               "created_folder": True, "fingerprint": {}}))
    assert remove_checkpoint(folder)
    assert _snapshot(folder) == {"data.csv": b"precious"}  # not ours, by name: kept


def test_a_manifest_nested_past_the_recursion_limit_is_a_checkpoint_error(tmp_path):
    # json raises RecursionError (not ValueError) for "[[[[...": remove_checkpoint and a
    # fit with that checkpoint_dir ended in a traceback (issue 30 review 13).
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / MANIFEST).write_text("[" * 100_000)
    with pytest.raises(CheckpointError, match="not a readable checkpoint manifest"):
        remove_checkpoint(folder)
    assert (folder / MANIFEST).read_bytes() == b"[" * 100_000


@pytest.mark.slow
@pytest.mark.parametrize("change", ["concepts", "images", "learning_rate", "random_state"])
def test_a_checkpoint_of_another_run_is_refused_naming_what_differs(tmp_path, tiny_images,
                                                                    change):
    checkpoint = tmp_path / "ckpt"
    X, y = tiny_images.images, _labels(tiny_images)
    _tiny_cnn(checkpoint_dir=checkpoint).fit(X, y)  # finished, not saved: still there
    params, expected = {"checkpoint_dir": checkpoint}, change
    if change == "concepts":
        y = y[1:] + y[:1]  # the same vocabulary, given to other images
        expected = "image concepts"
    elif change == "images":
        X = X[::-1]
    else:
        params[change] = {"learning_rate": 0.5, "random_state": 7}[change]
        expected = f"parameter {change}"
    before = _snapshot(checkpoint)
    with pytest.raises(CheckpointError, match=f"differs: [^)]*{expected}"):
        _tiny_cnn(**params).fit(X, y)
    assert _snapshot(checkpoint) == before


@pytest.mark.slow
def test_images_rewritten_in_place_with_their_times_put_back_are_another_run(tmp_path,
                                                                           tiny_images):
    from PIL import Image

    paths = []
    for index, pixels in enumerate(tiny_images.images):
        paths.append(str(tmp_path / f"{index}.png"))
        Image.fromarray(pixels).save(paths[-1], compress_level=0)  # stored: a fixed size
    checkpoint, y = tmp_path / "ckpt", _labels(tiny_images)
    _tiny_cnn(checkpoint_dir=checkpoint).fit(paths, y)  # finished, not saved: still there
    for path, pixels in zip(paths, tiny_images.images):
        before = os.stat(path)
        Image.fromarray(255 - pixels).save(path, compress_level=0)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        after = os.stat(path)
        assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    before = _snapshot(checkpoint)
    with pytest.raises(CheckpointError, match="differs: [^)]*images"):
        _tiny_cnn(checkpoint_dir=checkpoint).fit(paths, y)  # not resumed: other pixels
    assert _snapshot(checkpoint) == before


@pytest.mark.slow
def test_the_same_run_resumes_its_finished_checkpoint_without_training(tmp_path, tiny_images,
                                                                       monkeypatch):
    checkpoint = tmp_path / "ckpt"
    first = _tiny_cnn(checkpoint_dir=checkpoint).fit(tiny_images.images, _labels(tiny_images))

    def no_training(self, logs=None):
        raise AssertionError("an epoch was trained again")

    monkeypatch.setattr(keras.callbacks.Callback, "on_train_batch_end", no_training)
    again = _tiny_cnn(checkpoint_dir=checkpoint).fit(tiny_images.images, _labels(tiny_images))
    np.testing.assert_allclose(again.predict_proba(tiny_images.images),
                               first.predict_proba(tiny_images.images), rtol=1e-6)
    assert again.history_ == first.history_


def test_a_second_training_on_a_checkpoint_in_use_fails_at_once(tmp_path, tiny_images):
    checkpoint = tmp_path / "ckpt"
    _tiny_cnn(checkpoint_dir=checkpoint).fit(tiny_images.images, _labels(tiny_images))
    with open(checkpoint / LOCK, "a") as held:  # another training holds the lock
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(CheckpointError, match="in use by another training"):
            _tiny_cnn(checkpoint_dir=checkpoint).fit(tiny_images.images, _labels(tiny_images))
        with pytest.raises(CheckpointError, match="in use"):
            remove_checkpoint(checkpoint)
    assert (checkpoint / MANIFEST).is_file()


def test_a_checkpoint_path_that_is_a_file_is_refused(tmp_path, tiny_images):
    file = tmp_path / "model.keras"
    file.write_bytes(b"an older model")
    with pytest.raises(CheckpointError, match="not a folder"):
        _tiny_cnn(checkpoint_dir=file).fit(tiny_images.images, _labels(tiny_images))
    assert file.read_bytes() == b"an older model"


def test_a_checkpoint_folder_no_file_name_can_hold_is_refused_by_name_before_any_image(
        tmp_path):
    # A lone surrogate (no file name's bytes give it): one error naming the folder, before
    # the images are read; it was a UnicodeEncodeError naming nothing once training began.
    from imageclef_concepts import ConceptCNNClassifier
    from imageclef_concepts.files._checkpoints import check_checkpoint_folder

    folder = str(tmp_path / "ck\ud800")
    with pytest.raises(CheckpointError, match=r"checkpoint folder .*ck\\ud800 is not a file name"):
        check_checkpoint_folder(folder)
    model = ConceptCNNClassifier(image_size=16, filters=(4,), epochs=1, checkpoint_dir=folder)
    with pytest.raises(CheckpointError, match="checkpoint folder"):
        model.fit([str(tmp_path / "missing.png")] * 2, [["A"], ["B"]])
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_folder_that_cannot_be_written_is_named_before_any_image(
        tmp_path, monkeypatch):
    # As user nobody, an empty checkpoint folder of root's said '.../imageclef_concepts-
    # checkpoint.lock cannot be used as a lock (Permission denied): this is not a checkpoint
    # as the library writes it ... Delete that file yourself', a file that does not exist;
    # a new folder in root's folder said only 'Permission denied: <path>'.
    from imageclef_concepts.files._checkpoints import check_checkpoint_folder

    locked = tmp_path / "locked"
    (locked / "empty").mkdir(parents=True)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: os.fspath(path) not in (
        os.fspath(locked), os.fspath(locked / "empty")) and real_access(path, mode, **kw))
    # locked/new/deeper: only the folder it is made in was asked (locked/new, missing, so
    # passed), and a second member's was refused at its turn, once the first had trained.
    for folder in (locked / "empty", locked / "new", locked / "new" / "deeper"):
        with pytest.raises(CheckpointError, match=rf"^checkpoint folder .*{folder.name}: the "
                                                  r"folder .*locked.* cannot be written"):
            check_checkpoint_folder(folder)
    assert os.listdir(locked / "empty") == [] and not (locked / "new").exists()
    check_checkpoint_folder(tmp_path / "new")  # a folder that can be made
    # Nothing of the library's there: nothing to remove, as before.
    assert remove_checkpoint(locked / "empty") is False
    assert remove_checkpoint(locked / "new") is False


def test_a_full_disk_at_the_lock_names_the_checkpoint_folder(tmp_path, monkeypatch):
    # train --checkpoint-dir on a real full 1 MiB tmpfs said only 'error: [Errno 28] No
    # space left on device': the lock file's first write names no file
    import errno

    from imageclef_concepts.files._checkpoints import CheckpointFolder

    class _Full:
        def __init__(self, handle):
            self._handle = handle

        def __getattr__(self, name):
            return getattr(self._handle, name)

        def flush(self):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda *a, **kw: _Full(real_fdopen(*a, **kw)))
    with pytest.raises(OSError) as raised:
        CheckpointFolder.open(tmp_path / "ck", {"run": 1}, lambda: 7)
    assert raised.value.errno == errno.ENOSPC
    assert "ck" in os.fspath(raised.value.filename)
    # the folder it made is not left (an empty folder beside the model, never removed)
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()  # space freed
    CheckpointFolder.open(tmp_path / "ck", {"run": 1}, lambda: 7).release()
    assert (tmp_path / "ck" / MANIFEST).is_file()
    # an (empty) folder of the user's named as the checkpoint is not removed
    mine = tmp_path / "mine"
    mine.mkdir()
    monkeypatch.setattr(os, "fdopen", lambda *a, **kw: _Full(real_fdopen(*a, **kw)))
    with pytest.raises(OSError):
        CheckpointFolder.open(mine, {"run": 1}, lambda: 7)
    assert mine.is_dir()


def test_a_lock_another_training_took_in_a_folder_this_one_made_is_left_to_it(tmp_path,
                                                                              monkeypatch):
    # Two trainings started on one new folder: the one that made it, finding the lock
    # taken, removed the lock file the other held (so that a third could take one too)
    from imageclef_concepts.files import _checkpoints

    path, held = tmp_path / "new" / "ck", []
    made = _checkpoints._make_folders

    def made_then_locked_by_another(folder):
        created = made(folder)
        held.append(open(os.path.join(folder, LOCK), "a+"))  # noqa: SIM115 (held open)
        fcntl.flock(held[0], fcntl.LOCK_EX | fcntl.LOCK_NB)
        return created

    monkeypatch.setattr(_checkpoints, "_make_folders", made_then_locked_by_another)
    try:
        with pytest.raises(CheckpointError, match="is in use by another training"):
            _checkpoints.CheckpointFolder.open(path, {"run": 1}, lambda: 0)
        assert os.path.samestat(os.stat(path / LOCK), os.fstat(held[0].fileno()))
    finally:
        held[0].close()


@pytest.mark.slow
def test_a_checkpoint_with_no_epoch_saved_is_not_another_training(tmp_path):
    # A training image truncated mid-pixels passes the check and fails to decode in the
    # first epoch, after the checkpoint was made: the user replaced the file and reran, and
    # the rerun was refused as "the checkpoint of another training" (nothing was trained).
    # With an epoch saved, another training is refused as before.
    from PIL import Image

    from imageclef_concepts.images import ImageDecodeError

    rng = np.random.default_rng(0)
    paths, y = [], [["C1"], ["C2"], ["C1", "C2"], ["C1"]]
    for i in range(4):
        paths.append(str(tmp_path / f"{i}.jpg"))
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(paths[-1])
    whole = open(paths[1], "rb").read()
    with open(paths[1], "wb") as handle:
        handle.write(whole[:len(whole) * 8 // 10])
    checkpoint = tmp_path / "ckpt"

    def fit():
        return ConceptCNNClassifier(image_size=16, filters=(2,), dense_units=(4,), epochs=1,
                                    batch_size=4, validation_fraction=None, random_state=0,
                                    verbose=0, checkpoint_dir=checkpoint).fit(paths, y)

    with pytest.raises(ImageDecodeError, match="1.jpg"):
        fit()
    assert set(os.listdir(checkpoint)) == {MANIFEST, LOCK}  # no epoch saved
    with open(paths[1], "wb") as handle:
        handle.write(whole)
    assert len(fit().history_["loss"]) == 1
    assert os.path.isdir(checkpoint / "backup")  # the epoch of the rerun, kept until saved
    y = y[::-1]
    with pytest.raises(CheckpointError, match="another training"):
        fit()


def test_a_checkpoint_folder_below_a_file_or_a_dangling_link_is_named_at_once(tmp_path):
    # notes.txt/ck: the nearest path there was a file, which passed, so a member's
    # checkpoint_dir was refused by mkdir only at its turn, after the members before it
    # had trained (issue 30 review 13).
    from imageclef_concepts.files._checkpoints import check_checkpoint_folder

    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for path in (tmp_path / "notes.txt" / "ck", tmp_path / "notes.txt" / "a" / "ck",
                 tmp_path / "dangling" / "ck"):
        with pytest.raises(CheckpointError, match=f"^checkpoint folder {path}: "):
            check_checkpoint_folder(path)
    check_checkpoint_folder(tmp_path / "a" / "ck")  # a folder there: taken
    assert (tmp_path / "notes.txt").read_text() == "mine" and not (tmp_path / "a").exists()


# Continued trainings (partial_fit, warm_start) on one checkpoint_dir: the checkpoint of the
# call before, which ended in the very state the next one goes on from, is the training's
# own past, not another training's (review 18).
_SMALL = dict(image_size=16, filters=(2,), dense_units=(4,), epochs=1, batch_size=4,
              validation_fraction=None, random_state=0, verbose=0)


@pytest.fixture(scope="module")
def chunks():
    from imageclef_concepts import make_concept_images

    data = make_concept_images(16, 3, 16, random_state=0)
    y = _labels(data)
    return [(data.images[:8], y[:8]), (data.images[8:], y[8:])]


class _Crash(Exception):
    pass


class _CrashAfterTheSave(keras.callbacks.Callback):
    """Once ``armed``, a crash when the epochs are saved (the checkpoint's callbacks run
    before this one's ``on_train_end``): the interrupted call has its epochs in the
    checkpoint. (A fitted estimator keeps the callbacks it was first fitted with.)"""

    armed = False

    def on_train_end(self, logs=None):
        if self.armed:
            raise _Crash


def _no_training(self, logs=None):
    raise AssertionError("an epoch was trained again")


@pytest.mark.slow
def test_partial_fits_on_one_checkpoint_dir_go_on_from_each_other(tmp_path, chunks):
    # The second partial_fit was refused: "holds the checkpoint of another training ...
    # (what differs: continued from)", the checkpoint of the first being kept after fit.
    (X, y), (X2, y2) = chunks
    model = ConceptCNNClassifier(**_SMALL, checkpoint_dir=tmp_path / "ckpt").partial_fit(X, y)
    first = model.predict_proba(X)
    model.partial_fit(X, y)
    model.partial_fit(X2, y2)  # a chunk of other images
    assert len(model.history_["loss"]) == model.current_epoch == 3
    assert not np.allclose(model.predict_proba(X), first)
    plain = ConceptCNNClassifier(**_SMALL)  # the same calls without a checkpoint
    plain.partial_fit(X, y).partial_fit(X, y).partial_fit(X2, y2)
    np.testing.assert_allclose(model.predict_proba(X), plain.predict_proba(X), rtol=1e-5)
    assert model.history_ == plain.history_
    with open(tmp_path / "ckpt" / MANIFEST) as handle:  # the last call's, kept until the save
        assert json.load(handle)["fingerprint"]["continued_from"] is not None


@pytest.mark.slow
def test_warm_start_fits_on_one_checkpoint_dir_go_on_from_each_other(tmp_path, chunks):
    (X, y), _ = chunks
    params = {**_SMALL, "warm_start": True}
    model = ConceptCNNClassifier(**params, checkpoint_dir=tmp_path / "ckpt")
    plain = ConceptCNNClassifier(**params)
    for _ in range(3):
        model.fit(X, y)
        plain.fit(X, y)
        assert len(model.history_["loss"]) == 1  # a fit's history: its own epochs
        np.testing.assert_allclose(model.predict_proba(X), plain.predict_proba(X), rtol=1e-5)


@pytest.mark.slow
def test_another_estimators_checkpoint_is_still_refused_when_going_on(tmp_path, chunks):
    (X, y), (X2, y2) = chunks
    checkpoint = tmp_path / "ckpt"
    ConceptCNNClassifier(**_SMALL, checkpoint_dir=checkpoint).partial_fit(X, y)
    other = ConceptCNNClassifier(**_SMALL).partial_fit(X2, y2)  # another state
    before = _snapshot(checkpoint)
    with pytest.raises(CheckpointError, match=r"another training.*differs: continued from\)"):
        other.set_params(checkpoint_dir=checkpoint).partial_fit(X, y)
    with pytest.raises(CheckpointError, match=r"another training.*differs: continued from\)"):
        other.set_params(warm_start=True).fit(X, y)
    assert _snapshot(checkpoint) == before


@pytest.mark.slow
@pytest.mark.parametrize("validation_fraction", [None, 0.25])  # 0.25: a best epoch kept
def test_an_interrupted_second_partial_fit_is_resumed_by_its_rerun(tmp_path, chunks,
                                                                   monkeypatch,
                                                                   validation_fraction):
    # Its checkpoint's record counted the epochs from 0, its history from the call's first:
    # 'none of its records is whole', and the estimator's weights, trained on in place,
    # were no longer those the call went on from ('what differs: continued from').
    (X, y), (X2, y2) = chunks
    params = {**_SMALL, "validation_fraction": validation_fraction}
    crash = _CrashAfterTheSave()
    model = ConceptCNNClassifier(**params, checkpoint_dir=tmp_path / "ckpt", callbacks=[crash])
    model.partial_fit(X, y)
    crash.armed = True
    with pytest.raises(_Crash):
        model.partial_fit(X2, y2)
    crash.armed = False
    with pytest.raises(CheckpointError, match=r"differs: image concepts, images\)"):
        model.partial_fit(X, y)  # the interrupted call's checkpoint is of other images
    with monkeypatch.context() as patch:
        patch.setattr(keras.callbacks.Callback, "on_train_batch_end", _no_training)
        model.partial_fit(X2, y2)  # its epoch is in the checkpoint: resumed, not trained
    plain = ConceptCNNClassifier(**params).partial_fit(X, y).partial_fit(X2, y2)
    np.testing.assert_allclose(model.predict_proba(X), plain.predict_proba(X), rtol=1e-5)
    assert model.history_ == plain.history_ and model.best_epoch_ == plain.best_epoch_


def test_a_checkpoint_that_ended_where_a_run_goes_on_from_is_replaced_with_its_epochs(
        tmp_path):
    from imageclef_concepts.files._checkpoints import CheckpointFolder

    path = tmp_path / "ck"
    first = CheckpointFolder.open(path, {"images": "a", "continued_from": None}, lambda: 7)
    (path / "backup").mkdir()
    (path / "backup" / "training_metadata.json").write_text("{}")  # an epoch saved
    first.finish("state-1")
    first.release()
    with pytest.raises(CheckpointError, match=r"differs: continued from\)"):  # another's
        CheckpointFolder.open(path, {"images": "a", "continued_from": "state-2"}, lambda: 8)
    again = CheckpointFolder.open(path, {"images": "a", "continued_from": None}, lambda: 8)
    again.release()  # the same run: resumed
    assert (again.resumed, again.run_id) == (True, first.run_id)
    goes_on = {"images": "b", "continued_from": "state-1"}  # from the state it ended in
    second = CheckpointFolder.open(path, goes_on, lambda: 8)
    second.release()
    assert (second.resumed, second.seed) == (False, 8) and second.run_id != first.run_id
    assert sorted(os.listdir(path)) == sorted([LOCK, MANIFEST])  # the past's epochs gone
    rerun = CheckpointFolder.open(path, goes_on, lambda: 9)
    rerun.release()
    assert (rerun.resumed, rerun.run_id) == (True, second.run_id)
