"""The train command's checks before training: the disk room for the model and checkpoint."""

import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from imageclef_concepts.cli._main import main
from imageclef_concepts.datasets import make_concept_images

_Usage = namedtuple("_Usage", "total used free")
_SMALL = ["--image-size", "16", "--filters", "4", "--dense-units", "8", "--epochs", "1",
          "--quiet"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_concept_images(12, 3, 16, random_state=0,
                               directory=tmp_path_factory.mktemp("dataset"))


def _train(dataset, *flags):
    images = Path(dataset.concepts_file).with_name("images")
    return main(["train", "--images", str(images), "--concepts", dataset.concepts_file,
                 *_SMALL, *flags])


def _needed(dataset):
    """What the check asks of a disk holding both the model and the checkpoint."""
    from imageclef_concepts import ConceptCNNClassifier
    from imageclef_concepts.keras._training_loop import (
        checkpoint_bytes,
        count_weights,
        saved_bytes,
    )

    n_concepts = len({c for cs in dataset.concepts for c in cs})
    counted = count_weights(ConceptCNNClassifier(image_size=16, filters=(4,), dense_units=(8,)),
                            n_concepts)
    return saved_bytes(counted), checkpoint_bytes(counted)


def _free_on(monkeypatch, free_of):
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda folder: _Usage(2**41, 2**41 - free_of(str(folder)),
                                              free_of(str(folder))))


@pytest.mark.slow
def test_a_disk_that_cannot_take_the_model_and_its_checkpoint_is_refused_before_training(
        tmp_path, dataset, capsys, monkeypatch):
    # A full disk lost the first epoch (the checkpoint's write failed after it), or the
    # whole training (the model's write failed after the last epoch).
    from imageclef_concepts.recipes import _workflows

    model, checkpoint = _needed(dataset)
    trained = []
    real = _workflows.train_and_tune
    monkeypatch.setattr(_workflows, "train_and_tune",
                        lambda *args, **kwargs: trained.append(1) or real(*args, **kwargs))
    _free_on(monkeypatch, lambda folder: model + checkpoint - 1)
    output = tmp_path / "model.keras"
    assert _train(dataset, "--output", str(output), "--image-store",
                  str(tmp_path / "store")) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert f"error: --output {output}: the model file, and the checkpoint, and " \
        "storing 12 image(s) at 16 px take" in error, error
    assert "name an --output on another disk or give --checkpoint-dir a folder on another " \
        "disk" in error
    assert not trained and list(tmp_path.iterdir()) == []  # no checkpoint, no store left
    _free_on(monkeypatch, lambda folder: model + checkpoint)
    assert _train(dataset, "--output", str(output)) == 0 and trained
    assert output.is_file()


@pytest.mark.slow
def test_each_disk_is_asked_for_what_goes_on_it(tmp_path, dataset, capsys, monkeypatch):
    model, checkpoint = _needed(dataset)
    elsewhere = tmp_path / "other"  # taken for another disk
    elsewhere.mkdir()
    from imageclef_concepts.files import _sizes

    monkeypatch.setattr(_sizes, "_device", lambda path: "other" in str(path))
    _free_on(monkeypatch, lambda folder: checkpoint - 1 if "other" in folder else model)
    output, folder = tmp_path / "model.keras", elsewhere / "checkpoint"
    assert _train(dataset, "--output", str(output), "--checkpoint-dir", str(folder)) == 2
    error = capsys.readouterr().err
    assert f"error: --checkpoint-dir {folder}: the checkpoint takes" in error, error
    assert not folder.exists() and not output.exists()
    _free_on(monkeypatch, lambda folder: checkpoint if "other" in folder else model)
    assert _train(dataset, "--output", str(output), "--checkpoint-dir", str(folder)) == 0


def test_a_resumed_checkpoints_files_are_counted_as_there(tmp_path, dataset, monkeypatch):
    # Resuming, the checkpoint's earlier epochs are on the disk already: the free space
    # is what the new epochs add.
    from imageclef_concepts.keras import _training_loop

    model, checkpoint = _needed(dataset)
    monkeypatch.setattr(_training_loop, "bytes_held", lambda folder: 1000)
    _free_on(monkeypatch, lambda folder: model + checkpoint - 1000)
    assert _train(dataset, "--output", str(tmp_path / "model.keras")) == 0


def test_a_training_that_fails_before_storing_leaves_no_store_it_made(tmp_path, dataset,
                                                                     monkeypatch):
    # train --image-store NEW refused or interrupted before any image was stored left the
    # new (empty) store; one that holds images is kept for the rerun, and a store that was
    # there is never removed.
    from imageclef_concepts.recipes import _workflows

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_workflows, "train_and_tune", interrupted)
    store = tmp_path / "a" / "store"
    assert _train(dataset, "--output", str(tmp_path / "m.keras"), "--image-store",
                  str(store)) == 130
    assert not (tmp_path / "a").exists()
    monkeypatch.undo()
    assert _train(dataset, "--output", str(tmp_path / "m.keras"), "--image-store",
                  str(store)) == 0
    monkeypatch.setattr(_workflows, "train_and_tune", interrupted)
    assert _train(dataset, "--output", str(tmp_path / "m2.keras"), "--image-store",
                  str(store)) == 130
    assert list(store.glob("16px-*"))  # kept: it holds the images


def test_a_network_that_cannot_be_built_is_named_before_it_is_counted(tmp_path, dataset,
                                                                      capsys):
    # The paper's network at 16 px: counting its weights for the disk check built it, and
    # Keras' own words came out ("Computed output size would be zero or negative").
    images = Path(dataset.concepts_file).with_name("images")
    assert main(["train", "--images", str(images), "--concepts", dataset.concepts_file,
                 "--output", str(tmp_path / "m.keras"), "--image-size", "16", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "--image-size 16 is too small for 4 blocks" in error, error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_images_an_image_store_on_the_same_disk_takes_are_counted(tmp_path, dataset,
                                                                      capsys, monkeypatch):
    # --image-store on the disk of the model and checkpoint: each fitted alone, all three
    # did not; the training ran whole and then failed to write the model (issue 30 review 13).
    from imageclef_concepts.cli import _models

    model, checkpoint = _needed(dataset)
    trained = []
    real = _models._train_and_save
    monkeypatch.setattr(_models, "_train_and_save",
                        lambda *args: trained.append(1) or real(*args))
    _free_on(monkeypatch, lambda folder: model + checkpoint)
    output, store = tmp_path / "model.keras", tmp_path / "store"
    assert _train(dataset, "--output", str(output), "--image-store", str(store)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert f"error: --output {output}: the model file, and the checkpoint, and " \
        "storing 12 image(s) at 16 px take" in error, error
    assert "or give --image-store a folder on another disk, or none" in error
    assert not trained and list(tmp_path.iterdir()) == []  # no checkpoint, no store
    _free_on(monkeypatch, lambda folder: 2**30)
    assert _train(dataset, "--output", str(output), "--image-store", str(store)) == 0
    _free_on(monkeypatch, lambda folder: model + checkpoint)  # the store holds them now
    assert _train(dataset, "--output", str(tmp_path / "again.keras"), "--image-store",
                  str(store)) == 0


def test_too_few_images_for_the_validation_split_name_the_validation_options(tmp_path, capsys):
    # Without validation images the best epoch is picked on 10% of the training images; the
    # error of 3 images named the library's validation_fraction=None and validation_data,
    # which train has no option for.
    small = make_concept_images(3, 2, 16, random_state=0, directory=tmp_path / "small")
    assert _train(small, "--output", str(tmp_path / "m.keras")) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--validation-images and --validation-concepts" in error
    assert "validation_fraction" not in error and "validation_data" not in error
    assert not list(tmp_path.glob("m.keras*"))
