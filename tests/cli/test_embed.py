"""The embed command: a folder's images into an embedding store, mistakes named."""

import os

import numpy as np
import pytest
from PIL import Image

from imageclef_concepts import EmbeddingStore
from imageclef_concepts.cli._main import main
from imageclef_concepts.embeddings._store import shelf_name

ENCODER = ["--encoder", "efficientnetb0", "--image-size", "32", "--weights", "none"]


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(4):
        Image.fromarray(np.full((40, 40, 3), 50 * index, np.uint8)).save(folder / f"{index}.png")
    return folder


def _embed(images, store, *more):
    return main(["embed", "--images", str(images), "--store", str(store), *ENCODER, *more])


def test_embed_fills_a_store_and_a_second_run_embeds_nothing(images, tmp_path, capsys):
    assert _embed(images, tmp_path / "store") == 0
    assert "4 new in" in capsys.readouterr().out
    assert _embed(images, tmp_path / "store") == 0
    assert "0 new in" in capsys.readouterr().out
    (shelf,) = EmbeddingStore(tmp_path / "store").summary().values()
    assert shelf["embeddings"] == 4


@pytest.mark.parametrize("hostile", ["images", "user_folder", "dev_null", "fifo"])
def test_a_store_that_is_not_the_librarys_is_refused_naming_it(images, tmp_path, capsys,
                                                               hostile):
    store = {"images": images, "user_folder": tmp_path / "mine", "dev_null": "/dev/null",
             "fifo": tmp_path / "fifo"}[hostile]
    if hostile == "user_folder":
        store.mkdir()
        (store / "notes.txt").write_text("mine")
    if hostile == "fifo":
        os.mkfifo(store)
    before = sorted(os.listdir(images))
    assert _embed(images, store) == 2
    error = capsys.readouterr().err
    named = (f"--store {store} is --images" if hostile == "images"  # before it opens
             else f"embedding store {os.path.abspath(store)}")
    assert named in error and "Traceback" not in error
    assert sorted(os.listdir(images)) == before


def test_a_store_inside_the_images_folder_and_dot(images, tmp_path, capsys, monkeypatch):
    # Review 18 F7: a store inside --images was made and filled there without a word
    # (recipe-2026 refused one inside its data folder already); refused before it is made.
    before = sorted(os.listdir(images))
    assert _embed(images, images / "store") == 2
    assert f"--store {images / 'store'} is inside --images {images}: name a folder outside " \
           "it" in capsys.readouterr().err
    monkeypatch.chdir(images)
    assert _embed(images, ".") == 2  # the images' folder itself
    assert f"--store . is --images {images}" in capsys.readouterr().err
    assert sorted(os.listdir(images)) == before


@pytest.mark.parametrize("argument, message", [
    (["--encoder", "biomedclip-typo"], "is not an encoder: choose one of"),
    (["--weights", "missing.weights.h5"], "missing.weights.h5: no such file"),
    # It said image_size=100000 (and created the store before refusing).
    (["--image-size", "100000"], "--image-size 100000: decoding one image at that size takes "
                                 "121.1 GiB (130,000,000,000 bytes), more than this machine's "
                                 "memory"),
    # Refused by the network's memory check, after the store was made: it was left. And
    # only after one image had run through the network at that size (the store's probe).
    (["--image-size", "20000"], "--image-size 20000 and --batch-size 32: running the "
                                "network on a batch of 4 image"),
])
def test_user_mistakes_are_one_line(images, tmp_path, capsys, argument, message):
    code = main(["embed", "--images", str(images), "--store", str(tmp_path / "s"), *ENCODER,
                 *argument])
    error = capsys.readouterr().err
    assert code == 2 and message in error and "Traceback" not in error
    assert "image_size" not in error
    assert not (tmp_path / "s").exists()  # refused before the store is made


def test_a_weights_file_refused_leaves_no_store_made(images, tmp_path, capsys):
    # The store was made before the encoder loaded its weights: a file Keras cannot read
    # was refused, and left a new (empty) store folder at the path named.
    weights = tmp_path / "mine.weights.h5"
    weights.write_bytes(b"garbage")
    code = main(["embed", "--images", str(images), "--store", str(tmp_path / "s"),
                 "--encoder", "efficientnetb0", "--image-size", "32", "--weights", str(weights)])
    error = capsys.readouterr().err
    assert code == 2 and f"{weights}: its weights cannot be loaded" in error, error
    assert not (tmp_path / "s").exists()
    assert weights.read_bytes() == b"garbage"


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_store_the_command_made_is_removed_only_while_it_holds_nothing(
        images, tmp_path, monkeypatch, when):
    # Interrupted before any embedding was stored, the new store goes; after, its rows are
    # kept for the rerun. A folder that was there (the user's, empty) is never removed.
    from imageclef_concepts.embeddings import _once

    real = _once.embed_images

    def interrupted(*args, **kwargs):
        if when == "after":
            real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(_once, "embed_images", interrupted)
    (tmp_path / "mine").mkdir()
    # "mine/missing/..": a path that does not exist, naming the user's folder (the store
    # opens it): it was taken as made, and removed.
    for store in (tmp_path / "new", tmp_path / "mine", tmp_path / "mine" / "missing" / ".."):
        assert _embed(images, store) == 130  # interrupted
    assert (tmp_path / "new").exists() == (when == "after")
    if when == "after":
        (shelf,) = EmbeddingStore(tmp_path / "new").summary().values()
        assert shelf["embeddings"] == 4
    assert (tmp_path / "mine").is_dir()
    if when == "before":  # the user's folder as it was: no marker, no index
        assert not list((tmp_path / "mine").iterdir())


def test_a_failed_embed_removes_the_parent_folders_it_made_and_no_other(images, tmp_path,
                                                                        monkeypatch):
    # --store a/b/c on a new path: a failure before any embedding left a/b behind. The
    # folders the store made go; one that was there, or that a user filled since, stays.
    from imageclef_concepts.embeddings import _once

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_once, "embed_images", interrupted)
    (tmp_path / "there").mkdir()
    assert _embed(images, tmp_path / "there" / "a" / "b" / "c") == 130
    assert not list((tmp_path / "there").iterdir())

    def user_fills_a(*args, **kwargs):
        (tmp_path / "there" / "a" / "notes.txt").write_text("mine")
        raise KeyboardInterrupt

    monkeypatch.setattr(_once, "embed_images", user_fills_a)
    assert _embed(images, tmp_path / "there" / "a" / "b" / "c") == 130
    assert sorted(p.name for p in (tmp_path / "there" / "a").iterdir()) == ["notes.txt"]


def test_missing_or_empty_image_folder(tmp_path, capsys):
    assert main(["embed", "--images", str(tmp_path / "nope"), "--store", str(tmp_path / "s"),
                 *ENCODER]) == 2
    assert "image folder not found" in capsys.readouterr().err


@pytest.mark.slow
def test_the_command_keys_the_store_by_the_encoders_identity(images, tmp_path):
    from imageclef_concepts import BackboneEmbedding

    _embed(images, tmp_path / "store")
    identity = BackboneEmbedding("efficientnetb0", 32, weights=None).embedding_identity()
    assert list(EmbeddingStore(tmp_path / "store").summary()) == [shelf_name(identity)]


def test_a_foundation_model_embeds_from_its_weights_file_and_its_mistakes_are_flags(
        images, tmp_path, capsys, monkeypatch):
    from imageclef_concepts.embeddings._presets import PRESETS

    from ..embeddings.onnx_models import TINY, write_vit

    monkeypatch.setitem(PRESETS, "tiny", TINY)
    weights = write_vit(tmp_path / "tiny.onnx")
    base = ["embed", "--images", str(images), "--store", str(tmp_path / "store"),
            "--encoder", "tiny"]
    assert main([*base, "--weights", weights]) == 0
    assert "4 new in" in capsys.readouterr().out
    (shelf,) = EmbeddingStore(tmp_path / "store").summary().values()
    assert shelf["embeddings"] == 4
    assert main(base) == 2  # the default, imagenet, is a backbone's
    assert "--weights 'imagenet': the tiny encoder needs its own weights file" in (
        capsys.readouterr().err)
    assert main([*base, "--weights", weights, "--image-size", "64"]) == 2
    error = capsys.readouterr().err
    assert "--image-size 64: the tiny encoder sees images at its authors' size" in error
    assert "Traceback" not in error


def test_an_unreadable_image_is_named_with_the_command_lines_advice(images, tmp_path, capsys):
    (images / "broken.png").write_bytes(b"not a png")
    assert _embed(images, tmp_path / "store") == 2
    error = capsys.readouterr().err
    assert "broken.png" in error and f"move them out of {images}" in error
    assert "on_error" not in error and "Traceback" not in error


def _refused_read_only(images, store, capsys, monkeypatch):
    """Embed into ``store`` made read-only: exit status 2; the error and the embeddings run."""
    import sqlite3

    from imageclef_concepts.embeddings import _once
    from imageclef_concepts.images import _folder_store

    def refused(index, table):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(_folder_store, "_writable_index", refused)
    embedded = []
    monkeypatch.setattr(_once, "embed_images", lambda *args, **kwargs: embedded.append(1))
    assert _embed(images, store) == 2
    error = capsys.readouterr().err
    assert f"embedding store {store} cannot be written" in error and error.count("\n") == 1
    return error, embedded


def test_a_store_that_cannot_be_written_is_refused_before_embedding(images, tmp_path, capsys,
                                                                    monkeypatch):
    # Every image was embedded for nothing (the command's only work is filling the store):
    # "0 new", exit status 0. A store on a read-only disk learns so when its index opens.
    store = tmp_path / "store"
    EmbeddingStore(store).summary()

    error, embedded = _refused_read_only(images, store, capsys, monkeypatch)
    assert not embedded


@pytest.mark.slow
def test_a_store_whose_disk_cannot_take_the_embeddings_is_one_line_after_one_image(
        images, tmp_path, capsys, monkeypatch):
    # The encoder ran over every image; the store then warned that it could not be written
    # and the command exited 0 saying "0 new".
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(2**40, 2**40, 1000))
    assert _embed(images, tmp_path / "store") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert f"embedding store {tmp_path / 'store'}: storing 4 embedding(s) of 1280 " in error
    assert "free space there or name a store on another disk." in error
    assert EmbeddingStore(tmp_path / "store").summary() == {}


def test_a_read_only_store_holding_other_images_is_refused_before_embedding(
        images, tmp_path, capsys, monkeypatch):
    # The refusal compared the images with every embedding of the encoder in the store: one
    # holding more of another folder's (seen as a non-root user, a store made by root) let
    # embed run the encoder over every image for nothing, exit 0 and say "0 new in <store>,
    # the others already there" (none was).
    other = tmp_path / "other"
    other.mkdir()
    for index in range(6):
        Image.fromarray(np.full((40, 40, 3), 9 * index, np.uint8)).save(other / f"o{index}.png")
    store = tmp_path / "store"
    assert _embed(other, store) == 0
    capsys.readouterr()

    error, embedded = _refused_read_only(images, store, capsys, monkeypatch)
    assert "holds 0 of the 4 images" in error and not embedded


def test_a_store_whose_encoder_folder_cannot_be_written_is_refused_before_embedding(
        images, tmp_path, capsys, monkeypatch):
    # Its index writable, the encoder's folder in it made by another user (mode 755): every
    # image was embedded, each chunk refused, one warning, exit status 0.
    from imageclef_concepts.embeddings import _once

    store = tmp_path / "store"
    assert _embed(images, store) == 0
    (folder,) = [path for path in store.iterdir() if path.is_dir()]
    (images / "4.png").write_bytes((images / "0.png").read_bytes())  # one image not held
    capsys.readouterr()
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: os.fspath(path) != str(folder)
                        and real(path, mode, **kw))
    embedded = []
    monkeypatch.setattr(_once, "embed_images", lambda *args, **kwargs: embedded.append(1))
    assert _embed(images, store) == 2
    error = capsys.readouterr().err
    assert f"embedding store {store} cannot be written" in error and "holds 4 of the 5" in error
    assert not embedded


def test_every_unreadable_image_is_named_at_once_before_the_encoder_runs(images, tmp_path,
                                                                         capsys):
    # One run names them all: they were found a block at a time, the first image alone
    # ("1 of 1 image file(s) cannot be used"), the others each after the encoder had
    # run over the images before them.
    for name in ("-a.png", "2b.png", "zz.png"):
        (images / name).write_bytes(b"not a png")
    assert _embed(images, tmp_path / "store") == 2
    error = capsys.readouterr().err
    assert "3 of 7 image file(s) cannot be used" in error, error
    assert all(name in error for name in ("-a.png", "2b.png", "zz.png"))
    assert EmbeddingStore(tmp_path / "store").summary() == {}  # nothing embedded
