"""The prepare subcommand: sizes beyond the disk refused in one line before any decoding."""

import os
import shutil
from collections import namedtuple

import numpy as np
from PIL import Image

from imageclef_concepts.cli._main import main

_Usage = namedtuple("_Usage", "total used free")


def _two_images(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(images / f"{i}.png")
    return images


def test_prepare_names_its_on_error_option_for_unreadable_files(tmp_path, capsys):
    images = _two_images(tmp_path)
    (images / "broken.png").write_bytes(b"")
    code = main(["prepare", "--images", str(images), "--store", str(tmp_path / "store"),
                 "--image-size", "8", "--quiet"])
    error = capsys.readouterr().err
    assert code == 2 and "broken.png: empty file" in error
    assert "(--on-error skip leaves them out)" in error and "on_error=" not in error


def _one_gib_free(monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: _Usage(2**31, 2**31 - 2**30, 2**30))


def test_prepare_refuses_chunks_beyond_the_free_disk_naming_image_size(tmp_path, capsys,
                                                                        monkeypatch):
    images = _two_images(tmp_path)
    _one_gib_free(monkeypatch)
    code = main(["prepare", "--images", str(images), "--store", str(tmp_path / "store"),
                 "--image-size", "20000", "--quiet"])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "Traceback" not in error
    assert "--image-size 20000: storing 2 image(s) at that size takes 2.2 GiB" in error
    assert "free space" in error
    assert not list((tmp_path / "store").glob("*px-*"))


def test_a_store_prepare_made_is_removed_while_it_holds_nothing(tmp_path, capsys, monkeypatch):
    # The free disk refusing --image-size came after the new store was made, and it was left
    # (marked, empty); so was one a Ctrl-C stopped before any image was stored. A store that
    # holds images is kept for the rerun; a folder that was there is never removed.
    from imageclef_concepts.images import _preparation

    images = _two_images(tmp_path)
    _one_gib_free(monkeypatch)
    (tmp_path / "mine").mkdir()
    # "mine/missing/..": a path that does not exist, naming the user's folder (the store
    # opens it): it was taken as made, and removed.
    for store in (tmp_path / "new", tmp_path / "mine", tmp_path / "mine" / "missing" / ".."):
        assert main(["prepare", "--images", str(images), "--store", str(store),
                     "--image-size", "20000", "--quiet"]) == 2
    assert not (tmp_path / "new").exists() and (tmp_path / "mine").is_dir()
    assert not list((tmp_path / "mine").iterdir())  # as it was: no marker left in it
    assert main(["prepare", "--images", str(images), "--store",
                 str(tmp_path / "mine" / "a" / "b"), "--image-size", "20000", "--quiet"]) == 2
    assert not list((tmp_path / "mine").iterdir())  # nor the parent folder it made
    monkeypatch.undo()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_preparation, "ImageFiles", interrupted)
    assert main(["prepare", "--images", str(images), "--store", str(tmp_path / "new"),
                 "--image-size", "8", "--quiet"]) == 130
    assert not (tmp_path / "new").exists()
    monkeypatch.undo()
    assert main(["prepare", "--images", str(images), "--store", str(tmp_path / "new"),
                 "--image-size", "8", "--quiet"]) == 0
    _one_gib_free(monkeypatch)
    assert main(["prepare", "--images", str(images), "--store", str(tmp_path / "new"),
                 "--image-size", "20000", "--quiet"]) == 2
    assert (tmp_path / "new" / "8px-bilinear").is_dir()  # kept: it holds images
    capsys.readouterr()


def test_prepare_refuses_a_store_inside_the_images_folder_before_making_it(tmp_path, capsys):
    # Review 18 F7: prepare made and filled a store inside --images without a word (the
    # user's dataset folder gained the library's files); recipe-2026 refused it already.
    images = _two_images(tmp_path)
    code = main(["prepare", "--images", str(images), "--store", str(images / "store.jpg"),
                 "--image-size", "8", "--quiet"])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1
    assert f"--store {images / 'store.jpg'} is inside --images {images}: name a folder " \
           "outside it" in error
    assert sorted(os.listdir(images)) == ["0.png", "1.png"]
