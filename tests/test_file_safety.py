"""Nothing the user did not give us to destroy is destroyed (issue 20).

Checkpoints own only their own files and resume only their own run; outputs
never replace an input, a device or a pipe; reading never blocks on a pipe;
an archive is never decompressed beyond what its manifest states.
"""

import errno
import fcntl
import json
import os
import stat
import threading
import tracemalloc
import zipfile

import keras
import numpy as np
import pytest

from imageclef_concepts import (
    CheckpointError,
    ConceptCNNClassifier,
    ConceptEnsemble,
    ImageDecodeError,
    MostFrequentConcepts,
    decode_image,
    make_concept_images,
    remove_checkpoint,
    write_run,
)
from imageclef_concepts.cli._main import main
from imageclef_concepts.files._atomic import NotARegularFileError
from imageclef_concepts.files._checkpoints import LOCK, MANIFEST
from imageclef_concepts.images._sources import ImageFiles
from imageclef_concepts.models._persistence import load_estimator

from .conftest import TINY
from .conftest import labels_of as _labels
from .conftest import snapshot as _snapshot
from .conftest import tiny_cnn as _tiny_cnn

# ---------------------------------------------------------------- command line

@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dataset")
    return folder, make_concept_images(30, 3, 16, random_state=0, directory=folder / "train")


def _train_args(dataset, output, *extra):
    folder, train = dataset
    return ["train", "--images", str(folder / "train" / "images"), "--concepts",
            train.concepts_file, "--output", str(output), "--image-size", "16",
            "--epochs", "2", "--filters", "4", "--dense-units", "8", "--quiet",
            "--random-state", "0", *extra]


def test_train_checkpoint_dir_dot_leaves_the_working_folder_intact(tmp_path, dataset,
                                                                   monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.txt").write_text("x")
    monkeypatch.chdir(work)
    assert main(_train_args(dataset, tmp_path / "model.keras", "--checkpoint-dir", ".")) == 2
    err = capsys.readouterr().err
    assert "--checkpoint-dir" in err and "thesis.txt" in err and len(err.splitlines()) == 1
    assert _snapshot(work) == {"thesis.txt": b"x"}


def test_train_into_a_project_folder_used_as_checkpoint_is_refused(tmp_path, dataset, capsys):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "model.keras").write_bytes(b"older model")
    (project / "results.csv").write_text("f1\n0.3\n")
    before = _snapshot(project)
    assert main(_train_args(dataset, project / "model.keras",
                            "--checkpoint-dir", str(project))) == 2
    assert "outside the checkpoint folder" in capsys.readouterr().err
    assert main(_train_args(dataset, tmp_path / "model.keras",
                            "--checkpoint-dir", str(project))) == 2
    assert "not a checkpoint" in capsys.readouterr().err
    assert _snapshot(project) == before


@pytest.mark.slow  # networks trained end to end: seconds (the README's 6 minutes)
def test_a_full_disk_at_the_save_keeps_the_training_resumable(tmp_path, dataset, monkeypatch,
                                                              capsys):
    import keras

    output = tmp_path / "model.keras"
    checkpoint = tmp_path / "model.keras.checkpoint"
    real_save = keras.Model.save

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", disk_full)
    assert main(_train_args(dataset, output)) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and str(checkpoint) in err
    assert "run the same command again" in err and len(err.splitlines()) == 1
    assert (checkpoint / MANIFEST).is_file() and not output.exists()

    monkeypatch.setattr(keras.Model, "save", real_save)
    monkeypatch.setattr(keras.callbacks.Callback, "on_train_batch_end",
                        lambda self, batch, logs=None: pytest.fail("trained again"))
    assert main(_train_args(dataset, output)) == 0
    assert output.is_file() and not checkpoint.exists()
    assert len(ConceptCNNClassifier.load(output).history_["loss"]) == 2


@pytest.mark.slow  # networks trained end to end: seconds (the README's 6 minutes)
def test_train_restart_discards_an_earlier_checkpoint(tmp_path, dataset, capsys):
    output = tmp_path / "model.keras"
    checkpoint = tmp_path / "model.keras.checkpoint"
    folder, train = dataset
    other = ConceptCNNClassifier(**{**TINY, "image_size": 16, "epochs": 1,
                                    "checkpoint_dir": checkpoint})
    other.fit(train.paths[:10], train.concepts[:10])  # another run's checkpoint
    assert main(_train_args(dataset, output)) == 2
    assert "--restart" in capsys.readouterr().err
    assert main(_train_args(dataset, output, "--restart")) == 0
    assert output.is_file() and not checkpoint.exists()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, dataset):
    _, train = dataset
    path = tmp_path_factory.mktemp("model") / "model.keras"
    ConceptCNNClassifier(**{**TINY, "image_size": 16, "epochs": 1}).fit(
        train.paths, train.concepts).save(path)
    return path


def _predict_args(model_file, images, output):
    return ["predict", "--model", str(model_file), "--images", str(images), "--output",
            str(output), "--quiet"]


def test_predict_refuses_an_output_that_is_one_of_the_input_images(dataset, model_file,
                                                                   capsys):
    folder, train = dataset
    image = train.paths[3]
    before = open(image, "rb").read()
    assert main(_predict_args(model_file, folder / "train" / "images", image)) == 2
    assert "is also an input" in capsys.readouterr().err
    assert open(image, "rb").read() == before


@pytest.mark.parametrize("kind", ["device", "pipe"])
def test_outputs_that_are_devices_or_pipes_are_refused(tmp_path, dataset, model_file, capsys,
                                                       kind):
    folder, _ = dataset
    if kind == "device":
        target = "/dev/null"
    else:
        target = str(tmp_path / "pipe")
        os.mkfifo(target)
    assert main(_predict_args(model_file, folder / "train" / "images", target)) == 2
    err = capsys.readouterr().err
    assert ("character device" if kind == "device" else "named pipe") in err
    assert len(err.splitlines()) == 1
    mode = os.stat(target).st_mode
    assert stat.S_ISCHR(mode) if kind == "device" else stat.S_ISFIFO(mode)
    with pytest.raises(NotARegularFileError, match="named pipe|character device"):
        write_run(target, ["a"], [["C1"]])  # the library refuses it too, not only the CLI
    assert stat.S_ISCHR(os.stat(target).st_mode) or stat.S_ISFIFO(os.stat(target).st_mode)


# ----------------------------------------------------------------- no hangs

def _finishes(function, seconds=60):
    """Run ``function`` in a thread; its result, or a failure if it blocks."""
    outcome = {}

    def run():
        try:
            outcome["value"] = function()
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"blocked for {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def test_a_pipe_among_images_is_a_bad_file_not_a_hang(tmp_path):
    data = make_concept_images(4, 2, 16, random_state=0, directory=tmp_path)
    pipe = str(tmp_path / "images" / "pipe.png")
    os.mkfifo(pipe)
    with pytest.raises(ImageDecodeError, match="named pipe"):
        _finishes(lambda: decode_image(pipe, 16))
    with pytest.warns(UserWarning, match="1 of 5 image file"):
        files = _finishes(lambda: ImageFiles([*data.paths, pipe], 16, on_error="skip"))
    assert list(files.failures) == [4] and "named pipe" in files.failures[4]


def test_predict_with_a_pipe_in_the_image_folder_skips_it(tmp_path, dataset, model_file,
                                                          capsys):
    images = tmp_path / "images"
    images.mkdir()
    _, train = dataset
    for path in train.paths[:3]:
        (images / os.path.basename(path)).write_bytes(open(path, "rb").read())
    os.mkfifo(images / "zz_pipe.jpg")
    run = tmp_path / "run.tsv"
    code = _finishes(lambda: main(_predict_args(model_file, images, run) +
                                  ["--on-error", "skip"]))
    assert code == 0
    err = capsys.readouterr().err
    assert "zz_pipe.jpg" in err and "named pipe" in err
    assert len(run.read_text().splitlines()) == 4  # the pipe's id, with no concepts


@pytest.mark.parametrize("where", ["--secondary-concepts", "--secondary-truth", "truth"])
def test_evaluate_with_a_pipe_for_a_file_fails_at_once(tmp_path, capsys, where):
    truth, run, pipe = tmp_path / "truth.tsv", tmp_path / "run.tsv", tmp_path / "pipe"
    truth.write_text("a\tC1\n")
    run.write_text("a\tC1\n")
    os.mkfifo(pipe)
    argv = ["evaluate", str(run), str(pipe if where == "truth" else truth)]
    if where != "truth":
        argv += [where, str(pipe), "--edition", "2025"]
    code = _finishes(lambda: main(argv))
    err = capsys.readouterr().err
    assert code == 2 and "named pipe" in err and len(err.splitlines()) == 1


# ---------------------------------------------------------------- archives

@pytest.fixture
def archive(tmp_path):
    X = np.zeros((6, 8, 8, 3), dtype=np.uint8)
    y = [["C1", "C2"], ["C1"], ["C3"], ["C1"], ["C2"], ["C1", "C3"]]
    ensemble = ConceptEnsemble([("a", MostFrequentConcepts()),
                                ("b", MostFrequentConcepts(k=1))]).fit(X, y)
    path = tmp_path / "ensemble.zip"
    ensemble.save(path)
    return path, X, ensemble


def _peak_megabytes(function):
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_an_archive_with_an_unnamed_bomb_member_is_refused_in_bounded_memory(archive):
    path, _, _ = archive
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as bombed:
        with bombed.open("padding.bin", "w", force_zip64=True) as member:
            chunk = bytes(2**24)
            for _ in range(64):  # 1 GiB of zeros, about 1 MB compressed
                member.write(chunk)
    assert path.stat().st_size < 5 * 2**20

    def load():
        with pytest.raises(ValueError, match="padding.bin"):
            load_estimator(path)

    assert _peak_megabytes(load) < 50


def test_an_archive_member_larger_than_its_manifest_states_is_refused(archive, tmp_path):
    path, _, _ = archive
    with zipfile.ZipFile(path) as original:
        entries = {name: original.read(name) for name in original.namelist()}
    target = next(name for name in entries if name.endswith(".npy"))
    # 128 MiB more than stated: within the file's budget (ModelZip), so the size its
    # manifest states is what stops it
    entries[target] = entries[target] + bytes(2**27)
    bombed = tmp_path / "bombed.zip"
    with zipfile.ZipFile(bombed, "w", compression=zipfile.ZIP_DEFLATED) as writer:
        for name, data in entries.items():
            writer.writestr(name, data)

    def load():
        with pytest.raises(ValueError, match="larger than its manifest states"):
            load_estimator(bombed)

    assert _peak_megabytes(load) < 50


def test_a_saved_archive_loads_and_predicts_the_same(archive):
    path, X, ensemble = archive
    loaded = load_estimator(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), ensemble.predict_proba(X))
    with zipfile.ZipFile(path) as saved:
        manifest = json.loads(saved.read("imageclef_concepts.json"))
        assert manifest["members"] == {info.filename: info.file_size
                                       for info in saved.infolist()
                                       if info.filename != "imageclef_concepts.json"}


# ------------------------------------------- what a hostile user tried next

@pytest.mark.slow  # networks trained end to end: seconds (the README's 6 minutes)
def test_images_rewritten_under_the_same_names_are_another_run(tmp_path):
    data = make_concept_images(20, 3, 16, random_state=0, directory=tmp_path / "a")
    other = make_concept_images(20, 3, 16, random_state=5, directory=tmp_path / "b")
    checkpoint = tmp_path / "ckpt"
    params = {"image_size": 16, "checkpoint_dir": checkpoint}
    _tiny_cnn(**params).fit(data.paths, data.concepts)
    for mine, theirs in zip(data.paths, other.paths):
        with open(mine, "wb") as handle:
            handle.write(open(theirs, "rb").read())
        os.utime(mine, ns=(1, 1))  # a modification time of its own
    with pytest.raises(CheckpointError, match=r"differs: images\b"):
        _tiny_cnn(**params).fit(data.paths, data.concepts)


@pytest.mark.slow
def test_a_resumed_training_is_the_uninterrupted_one(tmp_path, tiny_images):
    X, y = tiny_images.images, _labels(tiny_images)
    params = {**TINY, "learning_rate": 3e-3}
    whole = ConceptCNNClassifier(**{**params, "epochs": 4}).fit(X, y)
    checkpoint = tmp_path / "ckpt"
    ConceptCNNClassifier(**{**params, "epochs": 2, "checkpoint_dir": checkpoint}).fit(X, y)
    resumed = ConceptCNNClassifier(**{**params, "epochs": 4,
                                      "checkpoint_dir": checkpoint}).fit(X, y)
    assert resumed.history_ == whole.history_  # dropout's random stream restored too
    np.testing.assert_array_equal(resumed.predict_proba(X), whole.predict_proba(X))


class _Interrupted(Exception):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("settings, commit", [
    ({}, 2),
    # the rate reduced at the end of an epoch is in what the epoch commits,
    # and the reduction's counters go on where they were (reduced at epoch 3)
    ({"reduce_lr_patience": 1, "learning_rate": 0.2, "decay": 0.0, "epochs": 5}, 4),
])
def test_a_training_interrupted_before_its_epoch_is_committed_is_the_uninterrupted_one(
        tmp_path, tiny_images, monkeypatch, settings, commit):
    # Interrupted after an epoch's weights, streams and best weights are written
    # but before its record commits them: that epoch is trained again, exactly.
    X, y = tiny_images.images, _labels(tiny_images)
    params = {**TINY, "learning_rate": 3e-3, "epochs": 3, **settings}
    whole = ConceptCNNClassifier(**params).fit(X, y)
    if "reduce_lr_patience" in settings:  # the case is one where the rate was reduced
        assert float(whole.model_.optimizer.learning_rate) < settings["learning_rate"]
    checkpoint, commits, replace = tmp_path / "ckpt", [], os.replace

    def replace_or_stop(source, target):
        if os.fspath(target).endswith("training_metadata.json"):
            commits.append(target)
            if len(commits) == commit:
                raise _Interrupted
        replace(source, target)

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", replace_or_stop)
        with pytest.raises(_Interrupted):
            ConceptCNNClassifier(**params, checkpoint_dir=checkpoint).fit(X, y)
    resumed = ConceptCNNClassifier(**params, checkpoint_dir=checkpoint).fit(X, y)
    assert resumed.history_ == whole.history_
    np.testing.assert_array_equal(resumed.predict_proba(X), whole.predict_proba(X))


class _StopAtSecondEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = epoch == 1


@pytest.mark.slow
@pytest.mark.parametrize("stopper", [{"early_stopping_patience": 1},
                                     {"callbacks": [_StopAtSecondEpoch()]}])
def test_a_training_that_stopped_early_trains_no_further_when_run_again(tmp_path,
                                                                       tiny_images, stopper):
    # The checkpoint stays until the model is saved: running the same fit again
    # (a crash before the save) gives the same model, not one more epoch,
    # whether early stopping or a user's callback (run after the checkpoint) stopped it.
    X, y = tiny_images.images, _labels(tiny_images)
    params = {**TINY, "learning_rate": 0.05, "epochs": 8, **stopper,
              "checkpoint_dir": tmp_path / "ckpt"}
    first = ConceptCNNClassifier(**params).fit(X, y)
    assert len(first.history_["loss"]) < 8  # it stopped early
    again = ConceptCNNClassifier(**params).fit(X, y)
    assert again.history_ == first.history_ and again.best_epoch_ == first.best_epoch_
    np.testing.assert_array_equal(again.predict_proba(X), first.predict_proba(X))


@pytest.mark.slow
@pytest.mark.parametrize("go_on, epochs", [
    (lambda model, X, y: model.partial_fit(X, y), 3),  # the fit's two, then one more
    (lambda model, X, y: model.set_params(warm_start=True, epochs=2).fit(X, y), 2)])
def test_training_on_from_a_fitted_network_never_resumes_the_checkpoint_before_it(
        tmp_path, tiny_images, go_on, epochs):
    # The first fit's checkpoint is still there (no save yet). Resumed in place of going on
    # from the fitted network, it trained nothing and doubled the history (review 3); then
    # it was refused as another training's (what differs: continued from), so partial_fit
    # could not be called twice with a checkpoint_dir (review 18). It ended in the state
    # the network goes on from: the training's own past, replaced by the new call's.
    X, y = tiny_images.images, _labels(tiny_images)
    model = _tiny_cnn(epochs=2, checkpoint_dir=tmp_path / "ckpt").fit(X, y)
    before = model.predict_proba(X)
    go_on(model, X, y)
    assert len(model.history_["loss"]) == epochs
    assert not np.allclose(model.predict_proba(X), before)  # trained further


class _Crash(Exception):
    pass


class _CrashAtEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Crash


@pytest.mark.slow
def test_a_resumed_fit_that_fails_leaves_no_epoch_behind_for_the_next_fit(tmp_path,
                                                                          tiny_images):
    X, y = tiny_images.images, _labels(tiny_images)
    params = {"epochs": 4, "checkpoint_dir": tmp_path / "ckpt"}
    with pytest.raises(_Crash):
        _tiny_cnn(**params, callbacks=[_CrashAtEpoch(1)]).fit(X, y)
    model = _tiny_cnn(**params, callbacks=[_CrashAtEpoch(2)])
    with pytest.raises(_Crash):  # resumed from epoch 1, then failed
        model.fit(X, y)
    model.set_params(checkpoint_dir=None, callbacks=None, warm_start=True, epochs=2)
    assert len(model.fit(X, y).history_["loss"]) == 2  # both epochs trained


@pytest.mark.slow
@pytest.mark.parametrize("name", ["backup/best_weights.npz", "backup/latest.weights.h5", LOCK,
                                  "backup/saving.latest.weights.h5",
                                  "backup/saving.training_metadata.json"])
def test_a_pipe_in_a_checkpoint_is_refused_not_read(tmp_path, tiny_images, name):
    # Also at the names files are written under before they are moved into place.
    checkpoint = tmp_path / "ckpt"
    _tiny_cnn(checkpoint_dir=checkpoint).fit(tiny_images.images, _labels(tiny_images))
    (checkpoint / name).unlink(missing_ok=True)
    os.mkfifo(checkpoint / name)
    model = _tiny_cnn(checkpoint_dir=checkpoint)
    with pytest.raises(CheckpointError, match="Delete that file yourself"):
        _finishes(lambda: model.fit(tiny_images.images, _labels(tiny_images)))
    with pytest.raises(CheckpointError, match="not a regular file"):
        _finishes(lambda: remove_checkpoint(checkpoint))
    assert stat.S_ISFIFO(os.lstat(checkpoint / name).st_mode)


@pytest.mark.slow
def test_a_start_killed_while_writing_its_manifest_is_taken_up_again(tmp_path, tiny_images):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / LOCK).write_text("")
    (checkpoint / "saving.imageclef_concepts-checkpoint.json").write_text('{"mark": "imagec')
    model = _tiny_cnn(checkpoint_dir=checkpoint).fit(tiny_images.images, _labels(tiny_images))
    assert len(model.history_["loss"]) == _tiny_cnn().epochs
    assert remove_checkpoint(checkpoint)
    assert os.listdir(checkpoint) == []  # the leftover too; the folder was not ours to remove


@pytest.mark.slow
def test_a_backup_folder_linked_to_a_users_folder_is_never_emptied(tmp_path, tiny_images):
    checkpoint, users = tmp_path / "ckpt", tmp_path / "users"
    _tiny_cnn(checkpoint_dir=checkpoint).fit(tiny_images.images, _labels(tiny_images))
    users.mkdir()
    for name in ("latest.weights.h5", "training_metadata.json", "keep.txt"):
        (users / name).write_text(name)
    for name in os.listdir(checkpoint / "backup"):
        os.remove(checkpoint / "backup" / name)
    os.rmdir(checkpoint / "backup")
    os.symlink(users, checkpoint / "backup")
    with pytest.raises(CheckpointError, match="not a plain folder"):
        remove_checkpoint(checkpoint)
    with pytest.raises(CheckpointError, match="not a plain folder"):
        _tiny_cnn(checkpoint_dir=checkpoint).fit(tiny_images.images, _labels(tiny_images))
    assert sorted(os.listdir(users)) == ["keep.txt", "latest.weights.h5",
                                         "training_metadata.json"]


@pytest.mark.slow
def test_a_save_while_another_holds_the_checkpoint_writes_and_warns(tmp_path, tiny_images):
    checkpoint = tmp_path / "ckpt"
    model = _tiny_cnn(checkpoint_dir=checkpoint).fit(tiny_images.images, _labels(tiny_images))
    with open(checkpoint / LOCK, "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.warns(UserWarning, match="checkpoint was not removed"):
            model.save(tmp_path / "model.keras")
    assert (tmp_path / "model.keras").is_file() and (checkpoint / MANIFEST).is_file()
    model.save(tmp_path / "model.keras")  # free again: now it goes
    assert not checkpoint.exists()


@pytest.mark.slow
def test_parent_folders_made_for_a_checkpoint_go_with_it(tmp_path, tiny_images):
    checkpoint = tmp_path / "a b" / "ç ✓" / "ckpt"
    model = _tiny_cnn(checkpoint_dir=checkpoint).fit(tiny_images.images, _labels(tiny_images))
    model.save(tmp_path / "model.keras")
    assert sorted(os.listdir(tmp_path)) == ["model.keras"]


@pytest.mark.slow
def test_a_mismatch_message_says_checkpoints_are_for_single_trainings(tmp_path, tiny_images):
    checkpoint = tmp_path / "ckpt"
    _tiny_cnn(checkpoint_dir=checkpoint).fit(tiny_images.images, _labels(tiny_images))
    with pytest.raises(CheckpointError, match="single training only"):
        _tiny_cnn(checkpoint_dir=checkpoint, random_state=3).fit(tiny_images.images,
                                                                 _labels(tiny_images))


@pytest.mark.parametrize("checkpoint", ["output", "parent"])
def test_train_refuses_a_checkpoint_folder_that_would_hold_the_model(tmp_path, dataset, capsys,
                                                                     checkpoint):
    output = tmp_path / "out" / "m.keras"
    output.parent.mkdir()
    folder = output if checkpoint == "output" else output.parent
    assert main(_train_args(dataset, output, "--checkpoint-dir", str(folder))) == 2
    assert "outside the checkpoint folder" in capsys.readouterr().err
    assert os.listdir(output.parent) == []


def test_train_names_a_pipe_given_as_the_concept_file(tmp_path, dataset, capsys):
    folder, _ = dataset
    pipe = tmp_path / "concepts.tsv"
    os.mkfifo(pipe)
    argv = _train_args(dataset, tmp_path / "m.keras")
    argv[argv.index("--concepts") + 1] = str(pipe)
    assert _finishes(lambda: main(argv)) == 2
    assert "is a named pipe, not a concept file" in capsys.readouterr().err


@pytest.mark.slow
def test_a_start_that_died_before_its_manifest_is_resumable(tmp_path, tiny_images):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / LOCK).write_text("process 1")  # killed between the lock and the manifest
    model = _tiny_cnn(checkpoint_dir=checkpoint).fit(tiny_images.images, _labels(tiny_images))
    assert (checkpoint / MANIFEST).is_file()
    model.save(tmp_path / "model.keras")
    assert os.listdir(checkpoint) == []  # the user's folder stays; the library's files go
